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
use crate::sync::AtomicU32;
pub use crate::wait::TICK;
use crate::wait::{park, spin_round, spins_now, Deadline, Parked, WaitStrategy};

/// Polls between two clock reads while spinning.
const POLLS_PER_CLOCK: u32 = 256;

/// Waits until `poll` yields a value. `tick` runs about every [`TICK`]
/// (liveness checks; it may end the wait with a value or an error) while
/// `watch()` says the waiter depends on somebody's liveness; otherwise a
/// park checks nobody's liveness and sleeps until woken, the deadline or the
/// bounded tick of every park ([`crate::wait::TICK`]).
/// `ec` is
/// the event count whose notifications mean "poll again"; `flag` is the
/// caller's "I am announced on `ec`" word in its entry, so a reclaimer can
/// see who was waiting (stats) and clear it if the caller dies asleep.
pub(crate) fn wait_for<T>(
    strategy: WaitStrategy,
    limit: &mut Deadline,
    ec: &EventCount,
    flag: &AtomicU32,
    mut poll: impl FnMut() -> Result<Option<T>>,
    mut tick: impl FnMut() -> Result<Option<T>>,
    watch: impl Fn() -> bool,
) -> Result<T> {
    if let Some(v) = poll()? {
        return Ok(v);
    }
    if *limit == Deadline::Now {
        return Err(Error::Timeout);
    }
    let seen = crate::interrupt::generation();
    // The clock is read lazily (a vDSO read costs tens of nanoseconds on a
    // VM, as much as the rest of a call's bookkeeping): not at all if a
    // spin succeeds within its first polls, then every POLLS_PER_CLOCK polls
    // and before every park. The first read starts the tick.
    let mut next_tick: Option<Instant> = None;
    let mut spins: u32 = 0;
    let mut since_clock: u32 = 0;
    loop {
        let spin = spins_now(strategy, spins);
        if spin && since_clock < POLLS_PER_CLOCK {
            spin_round(strategy, spins);
            spins = spins.saturating_add(1);
            since_clock += 1;
            if let Some(v) = poll()? {
                return Ok(v);
            }
            continue;
        }
        since_clock = 0;
        let now = Instant::now();
        let left = limit.remaining_at(now)?;
        let mut tick_at = *next_tick.get_or_insert(now + TICK);
        if now >= tick_at {
            if let Some(v) = tick()? {
                return Ok(v);
            }
            tick_at = now + TICK;
            next_tick = Some(tick_at);
        }
        if spin {
            continue;
        }
        let nap = if watch() {
            let nap = tick_at
                .saturating_duration_since(now)
                .max(Duration::from_millis(1));
            Some(left.map_or(nap, |l| l.min(nap)))
        } else {
            left
        };
        // Announce, re-check, sleep (`crate::wait::park`); an interrupt
        // since the wait began ends it.
        if crate::interrupt::generation() != seen {
            return Err(Error::Interrupted);
        }
        match park(ec, flag, seen, nap, &mut poll) {
            Parked::Ready(result) => return result,
            Parked::Slept(WaitOutcome::Interrupted) => return Err(Error::Interrupted),
            Parked::Slept(_) => {}
        }
        if let Some(v) = poll()? {
            return Ok(v);
        }
    }
}
