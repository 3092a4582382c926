//! A process-shared counting semaphore on a futex, usable on its own.
//!
//! ```text
//!   offset 0  value:   u32   tokens available; the futex word
//!   offset 4  waiters: u32   processes/threads inside `wait` (a hint)
//! ```
//!
//! Like glibc's `sem_t` (the "new" 64-bit encoding), the semaphore counts its
//! waiters so that `post` makes a system call only when somebody may sleep:
//! uncontended `post`/`try_wait` are one atomic read-modify-write each.
//!
//! # Why no wake-up is lost
//!
//! A waiter increments `waiters`, issues a `SeqCst` fence, and only then
//! reads `value`; a poster increments `value`, issues a `SeqCst` fence, and
//! only then reads `waiters` (Dekker's pattern). The two fences fall in one
//! total order. If the poster's fence comes first, its increment of `value`
//! is visible to the waiter's read after the waiter's fence: the waiter sees
//! the token and does not sleep. If the waiter's fence comes first, its
//! increment of `waiters` is visible to the poster's read: the poster sees a
//! waiter and calls `FUTEX_WAKE`. A waiter that does go to
//! sleep does so with `FUTEX_WAIT(value, 0)`, which the kernel refuses
//! atomically if `value` is no longer 0, closing the window between the check
//! and the sleep ("Futexes Are Tricky", Drepper, §5). A waiter that times out
//! or is interrupted makes one last `try_wait` before reporting it, so a wake
//! meant for it that raced its timeout is not swallowed while a token sits
//! unused and another waiter sleeps.
//!
//! The semaphore is `#[repr(C)]` and valid when zeroed, so it can live in a
//! shared mapping: see [`Semaphore::from_ptr`]. The loom model in
//! `src/loom_model.rs` checks post/wait races and timeouts racing posts.

use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::futex::{self, WaitOutcome};
use crate::sync::{fence, AtomicU32, Ordering};

/// A counting semaphore whose state is two 32-bit words, shareable between
/// processes through shared memory.
#[repr(C)]
#[derive(Debug)]
pub struct Semaphore {
    /// Tokens available. The futex word: waiters sleep while it is 0.
    value: AtomicU32,
    /// Number of callers inside `wait`; `post` wakes only if it is non-zero.
    waiters: AtomicU32,
}

impl Semaphore {
    /// A semaphore holding `value` tokens.
    pub fn new(value: u32) -> Semaphore {
        Semaphore {
            value: AtomicU32::new(value),
            waiters: AtomicU32::new(0),
        }
    }

    /// Views a semaphore that lives at `ptr`, typically inside a shared
    /// mapping. All-zero bytes are a valid semaphore with no tokens.
    ///
    /// # Safety
    ///
    /// `ptr` must be 4-byte aligned, point to 8 bytes that stay mapped
    /// readable and writable for `'a`, and be accessed by other parties only
    /// through `Semaphore` (atomic operations).
    #[cfg(not(loom))]
    pub unsafe fn from_ptr<'a>(ptr: *mut u8) -> &'a Semaphore {
        // SAFETY: the caller guarantees alignment, size and lifetime;
        // `Semaphore` is repr(C) of two AtomicU32, which have the layout of
        // u32 and are valid for any bit pattern.
        unsafe { &*(ptr as *const Semaphore) }
    }

    /// Adds one token and wakes one sleeper if there may be one.
    pub fn post(&self) {
        // Release: publishes to the taker (whose CAS is Acquire) everything
        // written before the post.
        self.value.fetch_add(1, Ordering::Release);
        // SYNC POINT (semaphore, Dekker): pairs with the fence in
        // `wait_until` between the `waiters` increment and the `value` load.
        // Of the two fences one is first in the total order of SeqCst
        // fences, so either the waiter sees our token or we see its count.
        // (SeqCst on the two accesses alone would do in C++ too, but fences
        // are what loom models exactly.)
        fence(Ordering::SeqCst);
        if self.waiters.load(Ordering::Relaxed) != 0 {
            futex::wake(&self.value, 1);
        }
    }

    /// Takes a token if one is available, without waiting.
    pub fn try_wait(&self) -> bool {
        let mut v = self.value.load(Ordering::Relaxed);
        while v != 0 {
            // Acquire: pairs with the poster's increment, so what the poster
            // wrote before `post` is visible to the taker.
            match self
                .value
                .compare_exchange_weak(v, v - 1, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(now) => v = now,
            }
        }
        false
    }

    /// Takes a token, sleeping until one is posted. Returns
    /// `Err(Interrupted)` if a signal handler (without `SA_RESTART`) ran.
    pub fn wait(&self) -> Result<()> {
        self.wait_until(None)
    }

    /// Takes a token, waiting at most `timeout`; `Err(Timeout)` otherwise.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<()> {
        self.wait_until(Some(Instant::now() + timeout))
    }

    /// Tokens available right now (a snapshot).
    pub fn value(&self) -> u32 {
        self.value.load(Ordering::Relaxed)
    }

    fn wait_until(&self, deadline: Option<Instant>) -> Result<()> {
        if self.try_wait() {
            return Ok(());
        }
        // SYNC POINT (semaphore, Dekker): announce ourselves, then fence,
        // then look at `value` — pairs with the fence in `post`.
        self.waiters.fetch_add(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        let result = loop {
            if self.try_wait() {
                break Ok(());
            }
            let timeout = match deadline {
                None => None,
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => break Err(Error::Timeout),
                },
            };
            match futex::wait(&self.value, 0, timeout) {
                WaitOutcome::Woken => {}
                WaitOutcome::TimedOut => break Err(Error::Timeout),
                WaitOutcome::Interrupted => break Err(Error::Interrupted),
            }
        };
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        match result {
            // A wake-up may have been spent on us as we gave up: take the
            // token if it is there rather than leave it for nobody.
            Err(_) if self.try_wait() => Ok(()),
            other => other,
        }
    }
}

impl Default for Semaphore {
    fn default() -> Self {
        Semaphore::new(0)
    }
}

#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<Semaphore>() == 8);

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn uncontended_tokens() {
        let s = Semaphore::new(2);
        assert!(s.try_wait());
        assert!(s.try_wait());
        assert!(!s.try_wait());
        s.post();
        assert_eq!(s.value(), 1);
        s.wait().unwrap();
        assert!(matches!(
            s.wait_timeout(Duration::from_millis(5)),
            Err(Error::Timeout)
        ));
    }

    #[test]
    fn threads_pass_every_token() {
        let s = Arc::new(Semaphore::new(0));
        let n = 20_000;
        let consumers: Vec<_> = (0..2)
            .map(|_| {
                let s = Arc::clone(&s);
                std::thread::spawn(move || {
                    for _ in 0..n / 2 {
                        s.wait().unwrap();
                    }
                })
            })
            .collect();
        for _ in 0..n {
            s.post();
        }
        for c in consumers {
            c.join().unwrap();
        }
        assert_eq!(s.value(), 0);
    }
}
