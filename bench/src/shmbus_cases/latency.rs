//! shmbus latency: a ping-pong over two topics (`ping` parent → child,
//! `pong` child → parent), both ends with the same wait strategy. One-way
//! latency is half the round trip, exactly as for the floors.

use shmbus::{Publisher, SubscribeOptions, Subscriber};

use super::topic::BenchTopic;
use crate::clock::now_ns;
use crate::control::Control;
use crate::role::{Role, ShmbusRole, Wait};
use crate::stamp::{read_stamp, stamp};
use crate::stats::{RttRecorder, Sample};
use crate::supervisor::{Ctx, Session};

/// Ring slots: a ping-pong has one message in flight, a small ring keeps the
/// footprint (and cache pressure) at what a latency-sensitive user would pick.
const CAPACITY: u64 = 64;

/// Runs `warmup + iters` round trips of `size`-byte messages.
pub fn run(
    ctx: &Ctx,
    bus: &str,
    wait: Wait,
    size: usize,
    warmup: u64,
    iters: u64,
) -> Result<Sample, String> {
    let total = warmup + iters;
    let ping = BenchTopic::create(bus, "ping", CAPACITY, size)?;
    let pong = BenchTopic::create(bus, "pong", CAPACITY, size)?;
    // Subscribe before the child can publish, so no pong is missed.
    let mut replies = Subscriber::attach(
        bus,
        pong.name(),
        SubscribeOptions {
            from_start: false,
            wait: wait.strategy(),
        },
    )
    .map_err(|e| format!("cannot subscribe to {}: {e}", pong.name()))?;
    let role = Role::Shmbus(ShmbusRole::Pong {
        bus: bus.to_string(),
        ping: ping.name().to_string(),
        pong: pong.name().to_string(),
        wait,
        total,
    });
    let session = Session::start(ctx, &format!("shmbus latency {}", wait.name()), vec![role])?;
    let mut pings = Publisher::attach(bus, ping.name())
        .map_err(|e| format!("cannot publish on {}: {e}", ping.name()))?;
    pings.set_wait_strategy(wait.strategy());
    let mut msg = vec![0xA5u8; size];
    let mut rec = RttRecorder::new();
    for i in 0..total {
        stamp(&mut msg, i);
        let t0 = now_ns();
        pings.send(&msg).map_err(|e| format!("send failed: {e}"))?;
        let reply = replies.recv().map_err(|e| format!("recv failed: {e}"))?;
        let t1 = now_ns();
        if reply.data.len() != size || read_stamp(reply.data) != Some(i) {
            return Err(format!(
                "pong {i} came back wrong ({} bytes)",
                reply.data.len()
            ));
        }
        if i >= warmup {
            rec.record(t1 - t0);
        }
    }
    session.finish()?;
    Ok(Sample::Latency(rec.one_way()))
}

/// Child side: echo every ping as a pong.
pub fn pong_child(
    control: &Control,
    bus: &str,
    ping: &str,
    pong: &str,
    wait: Wait,
    total: u64,
) -> Result<(), String> {
    let mut pings = Subscriber::attach(
        bus,
        ping,
        SubscribeOptions {
            from_start: false,
            wait: wait.strategy(),
        },
    )
    .map_err(|e| format!("cannot subscribe to {ping}: {e}"))?;
    let mut pongs =
        Publisher::attach(bus, pong).map_err(|e| format!("cannot publish on {pong}: {e}"))?;
    pongs.set_wait_strategy(wait.strategy());
    control.mark_ready();
    for _ in 0..total {
        let m = pings.recv().map_err(|e| format!("recv failed: {e}"))?;
        pongs
            .send(m.data)
            .map_err(|e| format!("send failed: {e}"))?;
    }
    Ok(())
}
