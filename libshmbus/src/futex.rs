//! A thin wrapper over `futex(2)` `FUTEX_WAIT`/`FUTEX_WAKE` on a 32-bit word
//! in memory shared between processes.
//!
//! The calls are never `FUTEX_PRIVATE_FLAG`: the kernel then keys the wait
//! queue by the backing page (inode + offset for a shared mapping), so a
//! waiter in one process is woken by a waker in another. `wait` returns
//! whenever the word no longer holds `expected`, on a wake, on a timeout, on a
//! signal, or spuriously: every caller re-checks its condition in a loop.
//!
//! `wait_any` waits on several words at once with `futex_waitv(2)`
//! (Linux 5.16+), falling back to a short sleep where it is missing.
//!
//! Under `loom` the kernel is replaced by an exact model (a queue of waiters
//! under a lock, `wake(n)` wakes at most `n` of them in FIFO order), so a lost
//! wake-up shows up as a deadlock in the model checker.

use std::time::Duration;

use crate::sync::AtomicU32;

/// Why a futex wait returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitOutcome {
    /// Woken, the value differed from `expected`, or a spurious return.
    /// The caller re-checks its condition.
    Woken,
    /// The timeout elapsed.
    TimedOut,
    /// A signal handler ran (installed without `SA_RESTART`).
    Interrupted,
}

/// Sleeps while `*word == expected`, at most `timeout` (forever if `None`).
pub fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> WaitOutcome {
    imp::wait(word, expected, timeout)
}

/// Wakes at most `n` waiters sleeping on `word`; returns how many woke.
pub fn wake(word: &AtomicU32, n: u32) -> usize {
    imp::wake(word, n)
}

/// Wakes every waiter sleeping on `word`.
pub fn wake_all(word: &AtomicU32) -> usize {
    imp::wake(word, i32::MAX as u32)
}

#[cfg(not(loom))]
mod imp {
    use super::*;

    pub(super) fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> WaitOutcome {
        let ts = timeout.map(timespec);
        let ts_ptr = ts
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: `word` is a live, aligned u32 for the duration of the call;
        // the kernel only reads it. FUTEX_WAIT (not PRIVATE) so waiters and
        // wakers in different processes mapping the same page meet.
        let r = unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAIT,
                expected,
                ts_ptr,
                std::ptr::null::<u32>(),
                0u32,
            )
        };
        if r == 0 {
            return WaitOutcome::Woken;
        }
        match std::io::Error::last_os_error().raw_os_error() {
            Some(libc::ETIMEDOUT) => WaitOutcome::TimedOut,
            Some(libc::EINTR) => WaitOutcome::Interrupted,
            // EAGAIN: the value already differed. Anything else (EFAULT on a
            // hostile mapping cannot happen: the word is in our mapping) is
            // reported as a wake so the caller re-checks its condition.
            _ => WaitOutcome::Woken,
        }
    }

    pub(super) fn wake(word: &AtomicU32, n: u32) -> usize {
        // SAFETY: as in `wait`; FUTEX_WAKE does not access the word's value.
        let r = unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAKE,
                n.min(i32::MAX as u32),
                std::ptr::null::<libc::timespec>(),
                std::ptr::null::<u32>(),
                0u32,
            )
        };
        r.max(0) as usize
    }

    pub(super) fn timespec(d: Duration) -> libc::timespec {
        libc::timespec {
            tv_sec: d.as_secs().min(i64::MAX as u64) as libc::time_t,
            tv_nsec: d.subsec_nanos() as libc::c_long,
        }
    }
}

/// Waits until any of `words[i]` differs from its expected value, a wake, a
/// timeout or a signal (`futex_waitv(2)`, Linux 5.16+). On kernels without
/// it, sleeps at most 1 ms and reports `Woken`, so callers poll.
#[cfg(not(loom))]
pub fn wait_any(words: &[(&AtomicU32, u32)], timeout: Option<Duration>) -> WaitOutcome {
    waitv(words, timeout).unwrap_or_else(|Unsupported| {
        std::thread::sleep(
            timeout
                .unwrap_or(Duration::from_millis(1))
                .min(Duration::from_millis(1)),
        );
        WaitOutcome::Woken
    })
}

/// `futex_waitv(2)` is missing (Linux before 5.16), or `words` is empty or
/// longer than the kernel takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Unsupported;

/// [`wait_any`] without the fallback: `Err(Unsupported)` where the kernel
/// has no `futex_waitv`, so the caller chooses how to degrade.
#[cfg(not(loom))]
pub(crate) fn waitv(
    words: &[(&AtomicU32, u32)],
    timeout: Option<Duration>,
) -> Result<WaitOutcome, Unsupported> {
    const FUTEX2_SIZE_U32: u32 = 0x02;
    const MAX: usize = 128;
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct FutexWaitv {
        val: u64,
        uaddr: u64,
        flags: u32,
        reserved: u32,
    }
    if words.is_empty() || words.len() > MAX {
        return Err(Unsupported);
    }
    let mut v = [FutexWaitv {
        val: 0,
        uaddr: 0,
        flags: 0,
        reserved: 0,
    }; MAX];
    for (slot, (word, expected)) in v.iter_mut().zip(words) {
        *slot = FutexWaitv {
            val: u64::from(*expected),
            uaddr: word.as_ptr() as u64,
            flags: FUTEX2_SIZE_U32, // shared (no FUTEX2_PRIVATE)
            reserved: 0,
        };
    }
    // futex_waitv takes an absolute timeout on the given clock.
    let abs = timeout.map(|d| {
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `now` is a valid out-pointer.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
        let total = Duration::new(now.tv_sec as u64, now.tv_nsec as u32).saturating_add(d);
        imp::timespec(total)
    });
    let ts_ptr = abs
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `v[..n]` is a valid array of futex_waitv entries pointing at
    // live u32 words; the kernel only reads them.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex_waitv,
            v.as_ptr(),
            words.len() as u32,
            0u32,
            ts_ptr,
            libc::CLOCK_MONOTONIC,
        )
    };
    if r >= 0 {
        return Ok(WaitOutcome::Woken);
    }
    Ok(match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::ETIMEDOUT) => WaitOutcome::TimedOut,
        Some(libc::EINTR) => WaitOutcome::Interrupted,
        Some(libc::ENOSYS) => return Err(Unsupported),
        _ => WaitOutcome::Woken,
    })
}

#[cfg(loom)]
mod imp {
    //! An exact model of the kernel's futex queue for the model checker.
    use super::*;
    use loom::sync::{Condvar, Mutex};
    use std::collections::VecDeque;

    #[derive(Default)]
    struct Queue {
        next_id: u64,
        waiting: VecDeque<(usize, u64)>,
        woken: Vec<u64>,
    }

    loom::lazy_static! {
        static ref QUEUE: Mutex<Queue> = Mutex::new(Queue::default());
        static ref CV: Condvar = Condvar::new();
    }

    pub(super) fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> WaitOutcome {
        let mut q = QUEUE.lock().unwrap();
        // The kernel compares the value under its hash-bucket lock, so the
        // check and the enqueue are atomic with respect to `wake`.
        if word.load(crate::sync::Ordering::SeqCst) != expected {
            return WaitOutcome::Woken;
        }
        if timeout.is_some() {
            // Model the timeout firing at the earliest moment: the caller's
            // handling of "timed out while a post races it" is what matters.
            return WaitOutcome::TimedOut;
        }
        let id = q.next_id;
        q.next_id += 1;
        let addr = word as *const AtomicU32 as usize;
        q.waiting.push_back((addr, id));
        loop {
            q = CV.wait(q).unwrap();
            if let Some(pos) = q.woken.iter().position(|&w| w == id) {
                q.woken.swap_remove(pos);
                return WaitOutcome::Woken;
            }
        }
    }

    pub(super) fn wake(word: &AtomicU32, n: u32) -> usize {
        let mut q = QUEUE.lock().unwrap();
        let addr = word as *const AtomicU32 as usize;
        let mut woke = 0;
        while woke < n as usize {
            let Some(pos) = q.waiting.iter().position(|&(a, _)| a == addr) else {
                break;
            };
            let (_, id) = q.waiting.remove(pos).unwrap();
            q.woken.push(id);
            woke += 1;
        }
        if woke > 0 {
            CV.notify_all();
        }
        woke
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Instant;

    #[test]
    fn wait_returns_when_value_differs() {
        let w = AtomicU32::new(1);
        assert_eq!(wait(&w, 0, None), WaitOutcome::Woken);
    }

    #[test]
    fn wait_times_out() {
        let w = AtomicU32::new(0);
        let start = Instant::now();
        assert_eq!(
            wait(&w, 0, Some(Duration::from_millis(20))),
            WaitOutcome::TimedOut
        );
        assert!(start.elapsed() >= Duration::from_millis(19));
    }

    #[test]
    fn wake_releases_a_sleeper() {
        let w = Arc::new(AtomicU32::new(0));
        let w2 = Arc::clone(&w);
        let t = std::thread::spawn(move || {
            while w2.load(crate::sync::Ordering::Acquire) == 0 {
                wait(&w2, 0, Some(Duration::from_secs(10)));
            }
        });
        std::thread::sleep(Duration::from_millis(20));
        w.store(1, crate::sync::Ordering::Release);
        wake_all(&w);
        t.join().unwrap();
    }

    #[test]
    fn wait_any_sees_a_changed_word() {
        let a = AtomicU32::new(0);
        let b = AtomicU32::new(5);
        assert_eq!(
            wait_any(&[(&a, 0), (&b, 4)], Some(Duration::from_secs(5))),
            WaitOutcome::Woken
        );
        assert_eq!(
            wait_any(&[(&a, 0), (&b, 5)], Some(Duration::from_millis(10))),
            WaitOutcome::TimedOut
        );
    }
}
