//! shmbus throughput, one publisher to one subscriber: a stream of messages
//! as fast as the publisher can send them, measured at the subscriber.
//!
//! Two paths: *copy* (`send` from the publisher's buffer, `recv` on the
//! subscriber) and *zero-copy* (`loan` a slot, write it in place, `commit`;
//! `recv_ref` on the subscriber). On both paths every byte of every message
//! is written once by the publisher and read once by the subscriber, so the
//! figures are bytes really delivered: `send` copies a prepared buffer into
//! the slot and `recv` copies it out; a loan is filled in place (as a
//! producer writing its message straight into shared memory would) and the
//! subscriber reads the whole payload in place. Zero-copy saves one copy on
//! each side, not the data's trip between the cores.

use std::hint::black_box;
use std::sync::atomic::Ordering;

use shmbus::{Publisher, SubscribeOptions, Subscriber};

use super::topic::BenchTopic;
use crate::clock::now_ns;
use crate::control::Control;
use crate::role::{Role, ShmbusRole, Wait};
use crate::stamp::{read_stamp, stamp};
use crate::stats::Sample;
use crate::supervisor::{Ctx, Session};

/// Ring slots for a message size: up to 1024 slots, the ring kept near
/// 4 MiB (inside the last-level cache) but never under 8 slots.
pub fn capacity_for(size: usize) -> u64 {
    let fit = ((4 << 20) / size.max(1)) as u64;
    let fit = if fit.is_power_of_two() {
        fit
    } else {
        fit.next_power_of_two() / 2
    };
    fit.clamp(8, 1024)
}

/// Streams `warmup + measured` messages of `size` bytes to one subscriber.
pub fn run(
    ctx: &Ctx,
    bus: &str,
    size: usize,
    zero_copy: bool,
    warmup: u64,
    measured: u64,
) -> Result<Sample, String> {
    let total = warmup + measured;
    let topic = BenchTopic::create(bus, "stream", capacity_for(size), size)?;
    let wait = Wait::SpinThenPark;
    let role = Role::Shmbus(ShmbusRole::Sink {
        bus: bus.to_string(),
        topic: topic.name().to_string(),
        wait,
        size,
        total,
        warmup,
        zero_copy,
        progress: false,
        yield_when_empty: false,
    });
    let session = Session::start(ctx, "shmbus throughput", vec![role])?;
    let mut publisher = Publisher::attach(bus, topic.name())
        .map_err(|e| format!("cannot publish on {}: {e}", topic.name()))?;
    publisher.set_wait_strategy(wait.strategy());
    publish(&mut publisher, size, zero_copy, 0, total)?;
    session.wait_results(1);
    let rate = session.control().result(0).rate()?;
    session.finish()?;
    Ok(Sample::Throughput { msgs_per_sec: rate })
}

/// Publishes messages `from..to` (their index stamped in), by copy or loan.
pub fn publish(
    publisher: &mut Publisher,
    size: usize,
    zero_copy: bool,
    from: u64,
    to: u64,
) -> Result<(), String> {
    if zero_copy {
        for i in from..to {
            let mut loan = publisher
                .loan(size)
                .map_err(|e| format!("loan failed: {e}"))?;
            // Produce the whole message in place: a loan's bytes hold
            // whatever the slot's previous lap left.
            loan.fill(0x5A);
            stamp(&mut loan, i);
            loan.commit();
        }
    } else {
        let mut msg = vec![0x5Au8; size];
        for i in from..to {
            stamp(&mut msg, i);
            publisher
                .send(&msg)
                .map_err(|e| format!("send failed: {e}"))?;
        }
    }
    Ok(())
}

/// What a receiving child does (see [`ShmbusRole::Sink`]).
pub struct SinkParams<'a> {
    /// Bus name.
    pub bus: &'a str,
    /// Topic.
    pub topic: &'a str,
    /// Subscriber wait strategy.
    pub wait: Wait,
    /// Message size.
    pub size: usize,
    /// Messages.
    pub total: u64,
    /// Unmeasured leading messages.
    pub warmup: u64,
    /// `recv_ref` instead of `recv`.
    pub zero_copy: bool,
    /// Store progress after every message.
    pub progress: bool,
    /// Poll and yield the core when empty instead of a blocking receive.
    pub yield_when_empty: bool,
}

/// Child side: receive and check every message, time from message `warmup`
/// to the last.
pub fn sink_child(control: &Control, index: usize, p: &SinkParams<'_>) -> Result<(), String> {
    let mut sub = Subscriber::attach(
        p.bus,
        p.topic,
        SubscribeOptions {
            from_start: false,
            wait: p.wait.strategy(),
        },
    )
    .map_err(|e| format!("cannot subscribe to {}: {e}", p.topic))?;
    let result = control.result(index);
    control.mark_ready();
    let mut first_ns = 0;
    for i in 0..p.total {
        let (len, got) = if p.yield_when_empty {
            loop {
                match sub
                    .try_recv()
                    .map_err(|e| format!("try_recv failed: {e}"))?
                {
                    Some(m) => break (m.data.len(), read_stamp(m.data)),
                    // Let the other subscribers sharing this core run: this
                    // one stays awake (never asleep in the kernel), so the
                    // publisher never has to wake it.
                    None => std::thread::yield_now(),
                }
            }
        } else if p.zero_copy {
            let m = sub
                .recv_ref()
                .map_err(|e| format!("recv_ref failed: {e}"))?;
            // Read every byte in place, as `recv`'s copy does.
            black_box(read_all(m.data()));
            (m.data().len(), read_stamp(m.data()))
        } else {
            let m = sub.recv().map_err(|e| format!("recv failed: {e}"))?;
            (m.data.len(), read_stamp(m.data))
        };
        if len != p.size || got != Some(i) {
            return Err(format!(
                "message {i} arrived wrong: {len} bytes, stamp {got:?}"
            ));
        }
        if i == p.warmup {
            first_ns = now_ns();
        }
        if p.progress {
            // SYNC POINT: pairs with the parent's Acquire in fan-out bursts.
            result.progress.store(i + 1, Ordering::Release);
        }
    }
    let last = now_ns();
    result.finish(first_ns, last, p.total - p.warmup - 1);
    Ok(())
}

/// Reads every byte of `data` (an XOR fold the compiler vectorises): the
/// zero-copy subscriber's stand-in for using the message.
#[inline]
fn read_all(data: &[u8]) -> u64 {
    let mut words = data.chunks_exact(8);
    let mut acc = words.by_ref().fold(0u64, |a, w| {
        a ^ u64::from_ne_bytes(w.try_into().expect("8 bytes"))
    });
    for &b in words.remainder() {
        acc ^= u64::from(b);
    }
    acc
}
