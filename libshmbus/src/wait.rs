//! Waiting, in one place, for topics and services alike: the strategies
//! (spin, yield, park), the deadline, the tick, and the one park step that
//! announces a waiter, re-checks its condition and sleeps.
//!
//! # Why a park never loses a wake-up, and never sleeps for ever
//!
//! [`park`] announces the waiter on its [`EventCount`] (`prepare`), then
//! re-checks the condition, and only then sleeps, on the event count and on
//! the process's interrupt generation at once ([`crate::interrupt`]): the
//! event count's fence pair makes a notifier see the announcement or the
//! waiter see the condition (`eventcount.rs`), and the kernel compares both
//! words with the sleep, so neither a notify nor an interrupt between the
//! re-check and the sleep is lost.
//!
//! That argument assumes the notifier lives to notify. A process SIGKILLed
//! between making a condition true and notifying (a publisher between its
//! commit and its wake, a subscriber inside its detach, the daemon inside a
//! reap) leaves no one to wake the sleeper. The reaper wakes both sides of
//! every topic it reclaims anything from, which covers the deaths it sees;
//! and as defence in depth no park sleeps longer than [`TICK`] before it
//! re-checks its condition, so a wake-up lost to any death costs at most a
//! tick, never a hang. Under `loom` the tick is off, so the models must
//! prove every wake-up by the protocol alone.

use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::eventcount::EventCount;
use crate::futex::WaitOutcome;
use crate::sync::{spin_hint, yield_now, AtomicU32, Ordering};

/// The longest a park sleeps before re-checking its condition (and, in a
/// service, the liveness of the process it depends on).
pub const TICK: Duration = Duration::from_millis(100);

/// How a blocked caller waits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum WaitStrategy {
    /// Busy-spin on shared memory: lowest latency, burns a core, never sleeps.
    Spin,
    /// Spin briefly, then yield the CPU a few times, then sleep on the futex
    /// (the default).
    #[default]
    SpinThenPark,
    /// Sleep on the futex at once.
    Park,
}

/// Rounds of busy-spinning (`pause`) that [`WaitStrategy::SpinThenPark`]
/// makes before it starts yielding.
pub(crate) const SPINS_BEFORE_YIELD: u32 = 100;

/// Rounds of `sched_yield` that [`WaitStrategy::SpinThenPark`] makes after
/// spinning and before it parks on the futex.
///
/// Why yield at all: a waiter whose partner is about to answer (a message
/// a microsecond away) should not pay a futex sleep and wake-up — tens of
/// microseconds on a VM — but a waiter that busy-spins for long keeps a
/// core from the very processes it waits for when cores are fewer than
/// busy processes. A yield re-checks almost as often as a spin when the
/// core is otherwise idle, and hands the core over when it is not. Measured
/// on the 2-core development host (`docs/bridge.md`): 2 000 pure spins, the
/// old budget, cost the bridged round trip 1.6-2x against 100 spins and 100
/// yields.
pub(crate) const YIELDS_BEFORE_PARK: u32 = 100;

/// One round of a [`WaitStrategy::SpinThenPark`] or [`WaitStrategy::Spin`]
/// wait before parking: `round` counts from 0. Pure `Spin` never yields.
#[inline]
pub(crate) fn spin_round(strategy: WaitStrategy, round: u32) {
    if strategy == WaitStrategy::SpinThenPark && round >= SPINS_BEFORE_YIELD {
        yield_now();
    } else {
        spin_hint();
    }
}

/// Whether a wait in round `round` (from 0) still spins or yields rather
/// than parks.
#[inline]
pub(crate) fn spins_now(strategy: WaitStrategy, round: u32) -> bool {
    match strategy {
        WaitStrategy::Spin => true,
        WaitStrategy::SpinThenPark => round < SPINS_BEFORE_YIELD + YIELDS_BEFORE_PARK,
        WaitStrategy::Park => false,
    }
}

/// When a waiting call gives up: one type for topics and services.
///
/// A timeout given as [`Deadline::After`] starts counting at the first
/// moment the wait has to read the clock (before its first park, or after a
/// few hundred polls of a spin), not when it is called: a call answered
/// within those polls reads no clock at all, and one that waits exceeds its
/// timeout by at most those few microseconds of polling. One `Deadline`
/// passed to several waits (a call's send, then its receive) is one budget:
/// the first wait fixes the instant, the later ones share it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Deadline {
    /// Do not wait at all (`try_*`).
    Now,
    /// Wait at most this long, counted from the first clock read.
    After(Duration),
    /// Wait until this instant (`*_timeout`).
    At(Instant),
    /// Wait until done, closed or interrupted.
    Never,
}

impl Deadline {
    /// The deadline `t` from now (`Never` if that overflows the clock).
    pub(crate) fn after(t: Duration) -> Deadline {
        Deadline::after_from(Instant::now(), t)
    }

    /// Time left (`None`: forever); `Err(Timeout)` once it has passed. Reads
    /// the clock only for a deadline that has a time.
    pub(crate) fn remaining(&mut self) -> Result<Option<Duration>> {
        match *self {
            Deadline::Never => Ok(None),
            Deadline::Now => Err(Error::Timeout),
            _ => self.remaining_at(Instant::now()),
        }
    }

    /// Time left at `now`; fixes an `After` to the instant it ends.
    pub(crate) fn remaining_at(&mut self, now: Instant) -> Result<Option<Duration>> {
        if let Deadline::After(timeout) = *self {
            *self = Deadline::after_from(now, timeout);
        }
        match *self {
            Deadline::Never => Ok(None),
            Deadline::Now => Err(Error::Timeout),
            Deadline::At(t) => match t.checked_duration_since(now) {
                Some(left) if !left.is_zero() => Ok(Some(left)),
                _ => Err(Error::Timeout),
            },
            // Fixed above.
            Deadline::After(left) => Ok(Some(left)),
        }
    }

    fn after_from(now: Instant, t: Duration) -> Deadline {
        now.checked_add(t).map_or(Deadline::Never, Deadline::At)
    }
}

/// What one [`park`] did.
pub(crate) enum Parked<T> {
    /// The re-check after the announcement found the condition met (or an
    /// error): the caller returns this.
    Ready(Result<T>),
    /// It slept; the caller re-checks (the outcome says why it woke).
    Slept(WaitOutcome),
}

/// One park: announce on `ec` and set `flag` (the waiter's "asleep" word
/// that stats show), re-check with `poll`, sleep at most `timeout` capped
/// at [`TICK`] (uncapped under loom) unless the re-check succeeded, clear
/// `flag`. `seen` is the interrupt generation the waiter last reported.
pub(crate) fn park<T>(
    ec: &EventCount,
    flag: &AtomicU32,
    seen: u32,
    timeout: Option<Duration>,
    poll: &mut impl FnMut() -> Result<Option<T>>,
) -> Parked<T> {
    let key = ec.prepare();
    flag.store(1, Ordering::Relaxed);
    crate::crash::point("park.prepare");
    let outcome = match poll() {
        Ok(Some(v)) => Some(Ok(v)),
        Err(e) => Some(Err(e)),
        Ok(None) => None,
    };
    let woke = if outcome.is_none() {
        #[cfg(not(loom))]
        let timeout = Some(timeout.map_or(TICK, |t| t.min(TICK)));
        ec.park(key, seen, timeout)
    } else {
        WaitOutcome::Woken
    };
    flag.store(0, Ordering::Relaxed);
    match outcome {
        Some(result) => Parked::Ready(result),
        None => Parked::Slept(woke),
    }
}
