//! An event count: the broadcast wake-up of the ring, on one futex word.
//!
//! A counting semaphore hands out one token per `post`; a broadcast ring needs
//! the other shape — "something changed, everybody re-check". The event count
//! is that shape (Vyukov's eventcount, as in folly and Aeron's idle
//! strategies): a word that notifiers bump when someone may sleep, so that a
//! notifier with nobody asleep makes no system call.
//!
//! ```text
//!   offset 0  seq:      u32  bit 0: somebody may sleep; bits 1..: generation.
//!                            The futex word.
//! ```
//!
//! Protocol for a waiter: `key = prepare()`, re-check the condition, then
//! `park(key, ..)` if still unmet; nothing to undo after. For a
//! notifier: make the condition true (a Release store), then `notify_all()`.
//!
//! # The sleeper bit clears itself
//!
//! `prepare` sets bit 0 of `seq`; the first `notify_all` that sees it set
//! moves `seq` to the next even value (clearing the bit and changing the
//! word the sleepers wait on) and wakes them all. Notifiers after it see
//! the bit clear and make no system call until a waiter sets it again. So a
//! burst of publishes to parked subscribers costs one `FUTEX_WAKE`, not one
//! per message (a count of sleepers, which the woken only decrement once
//! they run, made every publish of the burst wake them again). And a waiter
//! that dies, or gives up without sleeping, leaves at most one needless wake
//! behind, never a permanently raised count.
//!
//! # Why no wake-up is lost
//!
//! `prepare` sets the bit with a read-modify-write and then issues a SeqCst
//! fence before the waiter's re-check of its condition; `notify_all` puts a
//! SeqCst fence between the notifier's store of the condition and its read
//! of `seq`. By the fences' total order, either the notifier's read sees the
//! bit (and bumps `seq` and wakes), or the waiter's re-check sees the
//! condition (and does not sleep). A notifier whose bump fails because
//! `seq` changed meanwhile lost to another notifier's bump, which changed
//! the word and woke every sleeper of that generation; a waiter that set the
//! bit after that bump did so after the failed notifier's fence (else the
//! notifier's read would have seen it), so its re-check sees the condition.
//! If `seq` moves after a waiter took its key, `FUTEX_WAIT(seq, key)` fails
//! at once in the kernel; if the wake comes after the waiter is queued, it
//! finds it. Exercised by the ring's loom models in `src/loom_model.rs`
//! (every parking wait goes through it).

use std::time::Duration;

use crate::futex::{self, WaitOutcome};
use crate::sync::{fence, AtomicU32, Ordering};

/// Bit 0 of `seq`: somebody may be asleep on it.
const SLEEPER: u32 = 1;

/// A broadcast wake-up word. All-zero bytes are valid.
#[repr(C)]
#[derive(Debug, Default)]
pub struct EventCount {
    /// Bit 0: a sleeper may be waiting; above: the generation. The futex
    /// word.
    seq: AtomicU32,
}

impl EventCount {
    /// A fresh event count.
    pub fn new() -> EventCount {
        EventCount::default()
    }

    /// Announces a waiter; returns the key for [`EventCount::park`]. The
    /// caller must re-check its condition after this. Nothing needs undoing
    /// after the wait: the sleeper bit is cleared by the next notifier (at
    /// the cost of at most one needless wake).
    pub fn prepare(&self) -> u32 {
        // Acquire: pairs with the AcqRel bump in `notify_all`, so a waiter
        // that reads a bumped word also sees the notifier's condition.
        let key = self.seq.fetch_or(SLEEPER, Ordering::AcqRel) | SLEEPER;
        // SYNC POINT (eventcount): pairs with the fence in `notify_all`.
        fence(Ordering::SeqCst);
        key
    }

    /// Sleeps until the word moves off `key` (a notify), `timeout` passes, a
    /// signal arrives, or spuriously, and is also ended by
    /// [`crate::interrupt`]: sleeps
    /// while the word holds `key` and the process's interrupt generation
    /// holds `seen` (both compared by the kernel, atomically with the
    /// sleep, so an interrupt just before the call is not lost). Where the
    /// kernel lacks `futex_waitv` it waits on the word alone; the caller's
    /// bounded tick then notices the interrupt.
    pub(crate) fn park(&self, key: u32, seen: u32, timeout: Option<Duration>) -> WaitOutcome {
        #[cfg(not(loom))]
        {
            let words = [(&self.seq, key), (crate::interrupt::word(), seen)];
            if let Ok(out) = futex::waitv(&words, timeout) {
                return out;
            }
        }
        let _ = seen;
        futex::wait(&self.seq, key, timeout)
    }

    /// Wakes every sleeper if any may sleep. Call after making the condition
    /// true. With nobody asleep this is a fence and a load: no system call.
    #[inline]
    pub fn notify_all(&self) {
        // SYNC POINT (eventcount): pairs with the fence in `prepare`.
        fence(Ordering::SeqCst);
        self.wake_if_sleeper(self.seq.load(Ordering::Relaxed));
    }

    /// Given `s`, a load of the word after the notifier's condition became
    /// true: if the sleeper bit is set, moves the generation (clearing the
    /// bit) and wakes everyone; the notifier whose CAS wins makes the one
    /// system call.
    #[inline]
    fn wake_if_sleeper(&self, s: u32) {
        if s & SLEEPER != 0
            && self
                .seq
                .compare_exchange(s, s.wrapping_add(1), Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            futex::wake_all(&self.seq);
        }
    }

    /// [`EventCount::notify_all`] for a notifier that made its condition
    /// true with a **SeqCst read-modify-write** (the services' queue and
    /// reply-slot CASes): no fence, since on x86 a SeqCst load is a plain
    /// load and the locked CAS before it is already the full barrier.
    ///
    /// Why no wake-up is lost (C++20 [atomics.order], as Rust uses it): the
    /// notifier's RMW `A` on the condition precedes its SeqCst load `B` of
    /// `seq` in the single total order S (sequenced-before between SeqCst
    /// operations). Let `X` be the waiter's fence in `prepare`, after its
    /// RMW setting the sleeper bit and before its re-check `R`. If `X`
    /// precedes `B` in S, `B` sees the bit (a SeqCst load after a SeqCst
    /// fence that follows a modification sees it or later). Otherwise `A`
    /// precedes `X` in S, and `R`, after `X`, sees `A` or later (the last
    /// SeqCst modification before the fence). So, as with the fence pair of
    /// `notify_all`, the notifier sees the bit or the waiter sees the
    /// condition. Loom models SeqCst accesses only as AcqRel (it would
    /// report lost wake-ups that cannot happen), so under loom this keeps
    /// the fence of `notify_all`.
    #[inline]
    pub(crate) fn notify_all_after_seqcst_rmw(&self) {
        #[cfg(loom)]
        fence(Ordering::SeqCst);
        // SYNC POINT (eventcount): pairs with the fence in `prepare`.
        self.wake_if_sleeper(self.seq.load(Ordering::SeqCst));
    }

    /// Wakes every sleeper unconditionally (close, detach, reaping: rare
    /// paths where a system call does not matter).
    pub fn force_notify_all(&self) {
        // +2 moves the generation and keeps the sleeper bit as it was.
        self.seq.fetch_add(2, Ordering::AcqRel);
        futex::wake_all(&self.seq);
    }

    /// The futex word, for waiting on several event counts at once.
    pub(crate) fn futex_word(&self) -> &AtomicU32 {
        &self.seq
    }
}

#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<EventCount>() == 4);
