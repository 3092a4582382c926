//! Baseline: the hardware floor. Two processes bounce a counter through
//! shared memory, one cache line each way, both sides busy-spinning; nothing
//! can hand a message to another core faster than this.
//!
//! The loops poll with plain loads and no pause hint: a pause can only
//! delay seeing the other side's store, and a floor must be the fastest
//! hand-over the hardware does, not the speed of one spinning style. (The
//! first version paused on every poll; its runs measured 230–260 ns
//! one-way on the development VM, this one's 40–240 ns: there, where the
//! hypervisor places the two vCPUs — same core complex or not — moves the
//! floor by up to 6× between runs, see docs/performance.md "Noise".)

use std::sync::atomic::Ordering;

use crate::child::Role;
use crate::clock::now_ns;
use crate::control::Control;
use crate::stats::{RttRecorder, Sample};
use crate::supervisor::{Ctx, Session};

/// Runs the ping-pong: `warmup` unmeasured round trips, then `iters`.
pub fn run(ctx: &Ctx, warmup: u64, iters: u64) -> Result<Sample, String> {
    let total = warmup + iters;
    let session = Session::start(ctx, "spin floor", vec![Role::SpinPong { total }])?;
    let control = session.control();
    let mut rec = RttRecorder::new();
    for i in 1..=total {
        let t0 = now_ns();
        // SYNC POINT: Release pairs with the child's Acquire in `child`.
        control.ping.0.store(i, Ordering::Release);
        // SYNC POINT: Acquire pairs with the child's Release of `pong`.
        while control.pong.0.load(Ordering::Acquire) != i {}
        let t1 = now_ns();
        if i > warmup {
            rec.record(t1 - t0);
        }
    }
    session.finish()?;
    Ok(Sample::Latency(rec.one_way()))
}

/// Child side: answer each ping with the same counter.
pub fn child(control: &Control, total: u64) -> Result<(), String> {
    control.mark_ready();
    for i in 1..=total {
        while control.ping.0.load(Ordering::Acquire) != i {}
        control.pong.0.store(i, Ordering::Release);
    }
    Ok(())
}
