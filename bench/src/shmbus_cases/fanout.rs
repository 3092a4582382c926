//! shmbus fan-out: one publisher, N subscriber processes (N = 1..16), 64-byte
//! messages. The publisher has its own core; all subscribers share the other
//! one (a two-core machine cannot give each a core), so none of them may
//! busy-spin in the library's `Spin` strategy: a spinner would hold the core
//! for a whole time slice while the others wait. Two ways to share the core,
//! each its own series of cases ([`FanOutMode`]):
//! * *poll* — each subscriber polls with `try_recv` and `sched_yield`s the
//!   core when the ring is empty. It never sleeps in the kernel, so the
//!   publisher never has a wake-up to pay: this isolates the cost of the
//!   publish path itself as subscribers are added (the SPEC target).
//! * *park* — each subscriber blocks in `recv` with the `Park` strategy, as
//!   an idle consumer should. The publisher then pays the futex wake-ups.
//!
//! Two phases in one run:
//! 1. *publish cost*: bursts of [`BURST`] messages, timed around the `send`
//!    calls only; after each burst the publisher waits until every
//!    subscriber has received everything, so every burst is published to
//!    subscribers that keep up (the SPEC's "publish cost flat from 1 to 16
//!    subscribers"). The figure is the median over bursts of the mean cost of
//!    one `send`.
//! 2. *delivered rate*: a free-running stream; each subscriber times its own
//!    share, and the report gives the slowest and the median subscriber.

use std::sync::atomic::Ordering;
use std::time::Duration;

use shmbus::Publisher;

use super::throughput::publish;
use super::topic::BenchTopic;
use crate::clock::now_ns;
use crate::role::{Role, ShmbusRole, Wait};
use crate::stats::{median, Sample};
use crate::supervisor::{Ctx, Session};

/// Message size of the fan-out cases.
pub const SIZE: usize = 64;
/// Messages per timed burst; well under the ring's capacity, so a burst
/// never waits for room.
pub const BURST: u64 = 64;
/// Ring slots.
const CAPACITY: u64 = 1024;

/// How the subscribers of a fan-out wait (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FanOutMode {
    /// `try_recv`, `sched_yield` when empty: never asleep in the kernel.
    Poll,
    /// Blocking `recv` with the `Park` strategy.
    Park,
}

impl FanOutMode {
    /// Both, in report order.
    pub const ALL: [FanOutMode; 2] = [FanOutMode::Poll, FanOutMode::Park];

    /// Name in the report and in case ids (`shmbus/fanout-<name>/<n>`).
    pub fn name(self) -> &'static str {
        match self {
            FanOutMode::Poll => "poll",
            FanOutMode::Park => "park",
        }
    }

    /// The subscribers' library wait strategy (unused by `Poll`, which never
    /// blocks in the library).
    pub fn wait(self) -> Wait {
        match self {
            FanOutMode::Poll => Wait::Spin,
            FanOutMode::Park => Wait::Park,
        }
    }
}

/// How much of each phase to run.
#[derive(Clone, Copy, Debug)]
pub struct FanOutPlan {
    /// Subscriber processes.
    pub subscribers: usize,
    /// How the subscribers wait.
    pub mode: FanOutMode,
    /// Timed bursts of phase 1 (after one untimed warm-up burst).
    pub bursts: u64,
    /// Unmeasured leading messages of phase 2.
    pub stream_warmup: u64,
    /// Measured messages of phase 2.
    pub stream_measured: u64,
}

/// Runs both phases.
pub fn run(ctx: &Ctx, bus: &str, plan: &FanOutPlan) -> Result<Sample, String> {
    let topic = BenchTopic::create(bus, "fanout", CAPACITY, SIZE)?;
    let phase1 = (plan.bursts + 1) * BURST;
    let total = phase1 + plan.stream_warmup + plan.stream_measured;
    let roles = (0..plan.subscribers)
        .map(|_| {
            Role::Shmbus(ShmbusRole::Sink {
                bus: bus.to_string(),
                topic: topic.name().to_string(),
                wait: plan.mode.wait(),
                size: SIZE,
                total,
                warmup: phase1 + plan.stream_warmup,
                zero_copy: false,
                progress: true,
                yield_when_empty: plan.mode == FanOutMode::Poll,
            })
        })
        .collect();
    let session = Session::start(ctx, &format!("shmbus fan-out x{}", plan.subscribers), roles)?;
    let control = session.control();
    let mut publisher = Publisher::attach(bus, topic.name())
        .map_err(|e| format!("cannot publish on {}: {e}", topic.name()))?;
    publisher.set_wait_strategy(Wait::SpinThenPark.strategy());

    let mut costs = Vec::with_capacity(plan.bursts as usize);
    let mut sent = 0;
    for burst in 0..=plan.bursts {
        let t0 = now_ns();
        publish(&mut publisher, SIZE, false, sent, sent + BURST)?;
        let t1 = now_ns();
        sent += BURST;
        if burst > 0 {
            costs.push((t1 - t0) as f64 / BURST as f64);
        }
        // SYNC POINT: Acquire pairs with the subscribers' Release of
        // `progress`. Sleeping (not spinning) here keeps this core's reads
        // off the subscribers' lines while they work.
        while (0..plan.subscribers)
            .any(|k| control.result(k).progress.load(Ordering::Acquire) < sent)
        {
            std::thread::sleep(Duration::from_micros(20));
        }
    }
    publish(&mut publisher, SIZE, false, sent, total)?;
    session.wait_results(plan.subscribers);
    let rates = (0..plan.subscribers)
        .map(|k| control.result(k).rate())
        .collect::<Result<Vec<f64>, String>>()?;
    session.finish()?;
    Ok(Sample::FanOut {
        publish_ns: median(&costs),
        rate_min: rates.iter().copied().fold(f64::INFINITY, f64::min),
        rate_median: median(&rates),
    })
}
