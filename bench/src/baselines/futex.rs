//! Baseline: the wake-up floor. The same ping-pong as the spin floor, but
//! each side sleeps in FUTEX_WAIT until the other's FUTEX_WAKE: every one-way
//! trip is a wake-up of a sleeping process on the other core. Shared (not
//! `FUTEX_PRIVATE_FLAG`) futexes, as cross-process waiting requires.
//!
//! Every ping is followed by a wake, unconditionally: this is the cost of the
//! kernel hand-over itself, the thing a parked shmbus subscriber pays.

use std::sync::atomic::{AtomicU32, Ordering};

use crate::clock::now_ns;
use crate::control::Control;
use crate::role::Role;
use crate::stats::{RttRecorder, Sample};
use crate::supervisor::{Ctx, Session};

/// Runs the ping-pong: `warmup` unmeasured round trips, then `iters`.
pub fn run(ctx: &Ctx, warmup: u64, iters: u64) -> Result<Sample, String> {
    let total = warmup + iters;
    let session = Session::start(ctx, "futex floor", vec![Role::FutexPong { total }])?;
    let control = session.control();
    let mut rec = RttRecorder::new();
    for i in 1..=total {
        let i = i as u32;
        let t0 = now_ns();
        control.ping_futex.0.store(i, Ordering::Release);
        wake(&control.ping_futex.0);
        wait_until(&control.pong_futex.0, i);
        let t1 = now_ns();
        if u64::from(i) > warmup {
            rec.record(t1 - t0);
        }
    }
    session.finish()?;
    Ok(Sample::Latency(rec.one_way()))
}

/// Child side: sleep until each ping, answer, wake the parent.
pub fn child(control: &Control, total: u64) -> Result<(), String> {
    control.mark_ready();
    for i in 1..=total {
        let i = i as u32;
        wait_until(&control.ping_futex.0, i);
        control.pong_futex.0.store(i, Ordering::Release);
        wake(&control.pong_futex.0);
    }
    Ok(())
}

/// Sleeps until `word` holds `want`. The kernel re-checks the value under its
/// lock, so a store+wake between our load and the wait is never lost.
fn wait_until(word: &AtomicU32, want: u32) {
    loop {
        let seen = word.load(Ordering::Acquire);
        if seen == want {
            return;
        }
        futex_wait(word, seen);
    }
}

/// FUTEX_WAIT (shared) while `*word == expected`, no timeout; returns on
/// wake, value change or signal — callers re-check.
fn futex_wait(word: &AtomicU32, expected: u32) {
    // SAFETY: `word` is a valid, aligned u32 for the duration of the call
    // (it lives in a mapping that outlives the call); a null timeout means
    // none. The result is ignored on purpose: EAGAIN and EINTR both mean
    // "re-check the word".
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

/// FUTEX_WAKE (shared) one waiter of `word`.
fn wake(word: &AtomicU32) {
    // SAFETY: `word` is a valid, aligned u32; FUTEX_WAKE reads no other
    // argument pointer.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            1i32,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}
