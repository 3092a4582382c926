//! Waiting in a service: the ring's spin-then-park discipline on an
//! [`EventCount`], plus a **tick** every [`TICK`] while waiting, in which
//! the waiter checks that whoever it depends on is still alive.
//!
//! A topic's waiters depend on nobody in particular; a caller waiting for a
//! reply depends on one server, and a party facing a blocked queue on the
//! holder of one cell. Their deaths are not announced (SIGKILL), so the
//! waiter looks: each tick it probes the liveness lock of the process it
//! depends on (one `fcntl`) and, if it is dead, reclaims its entry itself.
//! That bounds the time from a death to the waiter's `ServerGone` by about
//! one tick, without any daemon, thread or heartbeat. A park never sleeps
//! past the next tick.

use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::eventcount::EventCount;
use crate::futex::WaitOutcome;
use crate::ring::{Deadline, WaitStrategy};
use crate::sync::{spin_hint, AtomicU32, Ordering};

/// How often a waiter checks on the process it depends on.
pub const TICK: Duration = Duration::from_millis(100);

/// Spins before parking under [`WaitStrategy::SpinThenPark`].
const SPIN_BEFORE_PARK: u32 = 2_000;

/// Time left before `deadline`; `Err(Timeout)` once it has passed.
fn remaining(deadline: Deadline, now: Instant) -> Result<Option<Duration>> {
    match deadline {
        Deadline::Never => Ok(None),
        Deadline::Now => Err(Error::Timeout),
        Deadline::At(t) => match t.checked_duration_since(now) {
            Some(left) if !left.is_zero() => Ok(Some(left)),
            _ => Err(Error::Timeout),
        },
    }
}

/// The deadline `timeout` from now (`Never` if that overflows).
pub(crate) fn deadline_after(timeout: Duration) -> Deadline {
    Instant::now()
        .checked_add(timeout)
        .map_or(Deadline::Never, Deadline::At)
}

/// Waits until `poll` yields a value. `tick` runs about every [`TICK`]
/// (liveness checks; it may end the wait with a value or an error) while
/// `watch()` says the waiter depends on somebody's liveness; otherwise a
/// park sleeps until woken or the deadline (an idle server costs nothing).
/// `ec` is
/// the event count whose notifications mean "poll again"; `flag` is the
/// caller's "I am announced on `ec`" word in its entry, so a reclaimer can
/// withdraw the announcement if the caller dies asleep.
pub(crate) fn wait_for<T>(
    strategy: WaitStrategy,
    deadline: Deadline,
    ec: &EventCount,
    flag: &AtomicU32,
    mut poll: impl FnMut() -> Result<Option<T>>,
    mut tick: impl FnMut() -> Result<Option<T>>,
    watch: impl Fn() -> bool,
) -> Result<T> {
    if let Some(v) = poll()? {
        return Ok(v);
    }
    let mut next_tick = Instant::now() + TICK;
    let mut spins: u32 = 0;
    loop {
        let spin = match strategy {
            WaitStrategy::Spin => true,
            WaitStrategy::SpinThenPark => spins < SPIN_BEFORE_PARK,
            WaitStrategy::Park => false,
        };
        if spin && spins % 256 != 0 {
            spins = spins.saturating_add(1);
            spin_hint();
            if let Some(v) = poll()? {
                return Ok(v);
            }
            continue;
        }
        // Every 256 spins, and before every park: the clock.
        let now = Instant::now();
        let left = remaining(deadline, now)?;
        if now >= next_tick {
            if let Some(v) = tick()? {
                return Ok(v);
            }
            next_tick = now + TICK;
        }
        if spin {
            spins = spins.saturating_add(1);
            spin_hint();
            if let Some(v) = poll()? {
                return Ok(v);
            }
            continue;
        }
        let nap = if watch() {
            let nap = next_tick
                .saturating_duration_since(now)
                .max(Duration::from_millis(1));
            Some(left.map_or(nap, |l| l.min(nap)))
        } else {
            left
        };
        // Announce, re-check, sleep: see `EventCount` for why no wake-up is
        // lost; the flag lets a reclaimer withdraw us if we die asleep.
        let key = ec.prepare();
        flag.store(1, Ordering::Relaxed);
        let outcome = match poll() {
            Ok(Some(v)) => Some(Ok(v)),
            Err(e) => Some(Err(e)),
            Ok(None) => None,
        };
        let woke = if outcome.is_none() {
            ec.wait(key, nap)
        } else {
            WaitOutcome::Woken
        };
        flag.store(0, Ordering::Relaxed);
        ec.cancel();
        if let Some(result) = outcome {
            return result;
        }
        if woke == WaitOutcome::Interrupted {
            return Err(Error::Interrupted);
        }
        if let Some(v) = poll()? {
            return Ok(v);
        }
    }
}
