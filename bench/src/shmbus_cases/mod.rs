//! The shmbus cases: latency ping-pong per wait strategy, one-to-one
//! throughput on the copy and zero-copy paths, fan-out to many subscribers,
//! and service request/reply. Topics are created directly with
//! [`shmbus::TopicOwner`] and services by the serving child, on a bus
//! private to the run (`bench-<pid>`), so no daemon is involved; both are
//! unlinked when the case ends.

pub mod fanout;
pub mod latency;
pub mod service;
pub mod throughput;
pub mod topic;

use serde::{Deserialize, Serialize};
use shmbus::WaitStrategy;

use crate::control::Control;

/// A wait strategy as it travels to a child (serde-able mirror of
/// [`shmbus::WaitStrategy`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Wait {
    /// Busy-spin.
    Spin,
    /// Spin a little, then sleep on the futex.
    SpinThenPark,
    /// Sleep on the futex at once.
    Park,
}

impl Wait {
    /// The library's value.
    pub fn strategy(self) -> WaitStrategy {
        match self {
            Wait::Spin => WaitStrategy::Spin,
            Wait::SpinThenPark => WaitStrategy::SpinThenPark,
            Wait::Park => WaitStrategy::Park,
        }
    }

    /// Name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Wait::Spin => "spin",
            Wait::SpinThenPark => "spin-then-park",
            Wait::Park => "park",
        }
    }
}

/// What a shmbus child does.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "shmbus", rename_all = "kebab-case")]
pub enum ShmbusRole {
    /// Subscribe to `ping`, publish every message back on `pong`.
    Pong {
        /// Bus name.
        bus: String,
        /// Topic the pings arrive on.
        ping: String,
        /// Topic the pongs go to.
        pong: String,
        /// Wait strategy of both ends.
        wait: Wait,
        /// Round trips.
        total: u64,
    },
    /// Create service `service` and answer `total` requests with the
    /// request itself.
    Serve {
        /// Bus name.
        bus: String,
        /// Service name.
        service: String,
        /// Server wait strategy.
        wait: Wait,
        /// Requests to answer.
        total: u64,
    },
    /// Subscribe to `topic` and receive `total` messages of `size` bytes.
    Sink {
        /// Bus name.
        bus: String,
        /// Topic.
        topic: String,
        /// Subscriber wait strategy.
        wait: Wait,
        /// Message size.
        size: usize,
        /// Messages.
        total: u64,
        /// Unmeasured leading messages.
        warmup: u64,
        /// Receive with `recv_ref` (zero-copy) instead of `recv`.
        zero_copy: bool,
        /// Store the received count after every message (fan-out bursts
        /// need it to know when every subscriber caught up).
        progress: bool,
        /// Poll with `try_recv` and `sched_yield` when nothing is there,
        /// instead of a blocking receive (fan-out on a shared core).
        yield_when_empty: bool,
    },
}

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

/// Writes the message index into the first 8 bytes (the receiver checks it:
/// a benchmark that loses or reorders messages measures nothing).
#[inline]
pub fn stamp(buf: &mut [u8], index: u64) {
    buf[..8].copy_from_slice(&index.to_le_bytes());
}

/// Reads back what [`stamp`] wrote; `None` if the message is too short.
#[inline]
pub fn read_stamp(buf: &[u8]) -> Option<u64> {
    buf.get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
}
