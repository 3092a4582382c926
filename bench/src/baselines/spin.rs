//! Baseline: the hardware floor. Two processes bounce a counter through
//! shared memory, one cache line each way, both sides busy-spinning; nothing
//! can hand a message to another core faster than this.
//!
//! The spin loop uses the CPU's pause hint (`spin_loop`), as any polite
//! spinner (and shmbus's `Spin` strategy) does, so the floor is the floor of
//! a spinner one would actually ship.

use std::hint::spin_loop;
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
        while control.pong.0.load(Ordering::Acquire) != i {
            spin_loop();
        }
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
        while control.ping.0.load(Ordering::Acquire) != i {
            spin_loop();
        }
        control.pong.0.store(i, Ordering::Release);
    }
    Ok(())
}
