//! The shmbus cases: latency ping-pong per wait strategy, one-to-one
//! throughput on the copy and zero-copy paths, fan-out to many subscribers,
//! and service request/reply. Topics are created directly with
//! [`shmbus::daemon::TopicOwner`] and services by the serving child, on a bus
//! private to the run (`bench-<pid>`), so no daemon is involved; both are
//! unlinked when the case ends.
//!
//! What a shmbus child is told to do ([`ShmbusRole`],
//! [`Wait`](crate::role::Wait)) is defined below the cases, in
//! [`crate::role`], with the other roles; the message stamps are in
//! [`crate::stamp`]. This module only dispatches a child's role to the case
//! that plays it ([`child`]).

pub mod fanout;
pub mod latency;
pub mod service;
pub mod throughput;
pub mod topic;

use crate::control::Control;
use crate::role::ShmbusRole;

/// Child-side dispatch.
pub fn child(control: &Control, index: usize, role: ShmbusRole) -> Result<(), String> {
    match role {
        ShmbusRole::Pong {
            bus,
            ping,
            pong,
            wait,
            total,
        } => latency::pong_child(control, &bus, &ping, &pong, wait, total),
        ShmbusRole::Serve {
            bus,
            service,
            wait,
            total,
        } => service::serve_child(control, &bus, &service, wait, total),
        ShmbusRole::Sink {
            bus,
            topic,
            wait,
            size,
            total,
            warmup,
            zero_copy,
            progress,
            yield_when_empty,
        } => throughput::sink_child(
            control,
            index,
            &throughput::SinkParams {
                bus: &bus,
                topic: &topic,
                wait,
                size,
                total,
                warmup,
                zero_copy,
                progress,
                yield_when_empty,
            },
        ),
    }
}
