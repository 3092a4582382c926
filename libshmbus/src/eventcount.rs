//! An event count: the broadcast wake-up of the ring, on one futex word.
//!
//! A counting semaphore hands out one token per `post`; a broadcast ring needs
//! the other shape — "something changed, everybody re-check". The event count
//! is that shape (Vyukov's eventcount, as in folly and Aeron's idle
//! strategies): a sequence word that notifiers bump, and a count of sleepers
//! so that a notifier with nobody asleep makes no system call.
//!
//! ```text
//!   offset 0  seq:     u32  bumped by every notify that finds sleepers; the futex word
//!   offset 4  waiters: u32  callers between `prepare` and `cancel` (a hint)
//! ```
//!
//! Protocol for a waiter: `key = prepare()`, re-check the condition, then
//! `wait(key, ..)` if still unmet, and `cancel()` in every case. For a
//! notifier: make the condition true (a Release store), then `notify_all()`.
//!
//! # Why no wake-up is lost
//!
//! `prepare` increments `waiters` (SeqCst) and then a SeqCst fence orders it
//! before the waiter's re-check of the condition; `notify_all` puts a SeqCst
//! fence between the notifier's store of the condition and its read of
//! `waiters`. By the fences' total order, either the notifier sees the waiter
//! (and bumps `seq` and wakes) or the waiter's re-check sees the condition
//! (and does not sleep). If the notifier bumps `seq` after the waiter read its
//! key, `FUTEX_WAIT(seq, key)` fails at once in the kernel; if it wakes after
//! the waiter is queued, the wake finds it. Exercised by the ring's
//! loom models in `src/loom_model.rs` (every parking wait goes through it).

use std::time::Duration;

use crate::futex::{self, WaitOutcome};
use crate::sync::{fence, AtomicU32, Ordering};

/// A broadcast wake-up word with a sleeper count. All-zero bytes are valid.
#[repr(C)]
#[derive(Debug, Default)]
pub struct EventCount {
    /// Bumped (wrapping) by notifiers that find sleepers; the futex word.
    seq: AtomicU32,
    /// Callers between `prepare` and `cancel`.
    waiters: AtomicU32,
}

impl EventCount {
    /// A fresh event count.
    pub fn new() -> EventCount {
        EventCount::default()
    }

    /// Announces a waiter; returns the key for [`EventCount::wait`]. The
    /// caller must re-check its condition after this and call `cancel` when
    /// done waiting, whatever happened.
    pub fn prepare(&self) -> u32 {
        // SYNC POINT (eventcount): pairs with the fence in `notify_all`.
        self.waiters.fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        // Acquire: pairs with the AcqRel bump in `notify_all`, so a waiter
        // that reads a bumped key also sees the notifier's condition.
        self.seq.load(Ordering::Acquire)
    }

    /// Sleeps until a notify after `prepare` returned `key`, a timeout, a
    /// signal, or spuriously.
    pub fn wait(&self, key: u32, timeout: Option<Duration>) -> WaitOutcome {
        futex::wait(&self.seq, key, timeout)
    }

    /// Withdraws the waiter announced by `prepare`.
    pub fn cancel(&self) {
        // Saturating: a hostile process may have zeroed the count; an
        // underflow would only make notifiers pay needless system calls, but
        // staying at zero keeps the hint meaningful.
        let _ = self
            .waiters
            .fetch_update(Ordering::SeqCst, Ordering::Relaxed, |w| w.checked_sub(1));
    }

    /// Wakes every sleeper if there may be one. Call after making the
    /// condition true. No system call when nobody waits.
    #[inline]
    pub fn notify_all(&self) {
        // SYNC POINT (eventcount): pairs with the fence in `prepare`.
        fence(Ordering::SeqCst);
        if self.waiters.load(Ordering::Relaxed) != 0 {
            self.force_notify_all();
        }
    }

    /// Bumps the sequence and wakes every sleeper unconditionally (used on
    /// close, and by the reaper).
    pub fn force_notify_all(&self) {
        self.seq.fetch_add(1, Ordering::AcqRel);
        futex::wake_all(&self.seq);
    }

    /// The futex word, for waiting on several event counts at once.
    pub(crate) fn futex_word(&self) -> &AtomicU32 {
        &self.seq
    }

    /// Whether anybody is announced as waiting (a snapshot).
    pub fn has_waiters(&self) -> bool {
        self.waiters.load(Ordering::Relaxed) != 0
    }

    /// Removes the announcement of a waiter that died while waiting (called
    /// by the reaper, which knows from the dead client's own flag that it had
    /// announced itself and not withdrawn).
    pub(crate) fn cancel_dead(&self) {
        self.cancel();
    }
}

#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<EventCount>() == 8);
