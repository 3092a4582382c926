//! Surviving a segment truncated under our feet.
//!
//! Any process with write access to a segment file can `ftruncate` it while
//! others have it mapped; touching a mapped page past the new end of file
//! raises `SIGBUS`, which would kill the client (or the daemon's reaper).
//! SPEC §8 says a hostile process may make clients return errors, never
//! crash them. POSIX shared memory cannot be sealed against shrinking, so,
//! like Wayland's `wl_shm`, we catch the fault instead:
//!
//! * every segment mapping is registered here (start, length) in a fixed
//!   table of atomics that a signal handler can read without locks;
//! * a process-wide `SIGBUS` handler, installed once when the first segment
//!   is mapped, checks whether the faulting address lies in a registered
//!   mapping. If so it maps a private zero page over the faulting page
//!   (`MAP_FIXED`), marks the mapping damaged and returns: the faulting
//!   instruction is retried and reads zeros. The ring treats a damaged
//!   mapping as corrupt ([`is_damaged`]), so the caller gets
//!   `Error::Corrupt` instead of a dead process;
//! * a fault anywhere else goes to the handler that was installed before
//!   ours, or, if there was none, to the default action (the process dies
//!   of `SIGBUS` as it would have without us).
//!
//! The handler only reads atomics and calls `mmap` and `sigaction`, both
//! async-signal-safe system calls.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Once;

/// How many mappings can be guarded at once (two per topic a process has
/// open). Beyond that a mapping is simply not guarded.
const SLOTS: usize = 4096;

struct Range {
    /// Start address; 0 when the slot is free.
    start: AtomicUsize,
    len: AtomicUsize,
    /// Set by the handler when it patched a page of this mapping.
    damaged: AtomicBool,
}

#[allow(clippy::declare_interior_mutable_const)]
const FREE: Range = Range {
    start: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    damaged: AtomicBool::new(false),
};

static RANGES: [Range; SLOTS] = [FREE; SLOTS];

static INSTALL: Once = Once::new();
/// Set once the previous action is saved in `PREVIOUS`.
static INSTALLED: AtomicBool = AtomicBool::new(false);
/// The `SIGBUS` action in place before ours, to chain to.
static mut PREVIOUS: std::mem::MaybeUninit<libc::sigaction> = std::mem::MaybeUninit::zeroed();

/// A registered mapping; unregisters on drop (drop it before unmapping).
#[derive(Debug)]
pub(crate) struct Guard {
    slot: Option<usize>,
}

impl Guard {
    /// Whether a truncation was caught in this mapping.
    pub(crate) fn is_damaged(&self) -> bool {
        self.slot
            .is_some_and(|i| RANGES[i].damaged.load(Ordering::Relaxed))
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(i) = self.slot {
            RANGES[i].len.store(0, Ordering::Relaxed);
            RANGES[i].damaged.store(false, Ordering::Relaxed);
            // Release: the slot is reusable only after the fields are reset.
            RANGES[i].start.store(0, Ordering::Release);
        }
    }
}

/// Guards the mapping `[start, start + len)` until the returned guard drops.
pub(crate) fn guard(start: *mut u8, len: usize) -> Guard {
    INSTALL.call_once(install);
    let start = start as usize;
    for (i, r) in RANGES.iter().enumerate() {
        if r.start.load(Ordering::Relaxed) == 0 {
            r.damaged.store(false, Ordering::Relaxed);
            r.len.store(len, Ordering::Relaxed);
            // Claim the slot; Release publishes `len` to the handler, whose
            // Acquire load of `start` pairs with it.
            if r.start
                .compare_exchange(0, start, Ordering::Release, Ordering::Relaxed)
                .is_ok()
            {
                return Guard { slot: Some(i) };
            }
        }
    }
    Guard { slot: None }
}

fn install() {
    // SAFETY: a zeroed sigaction is a valid value; we fill the fields the
    // kernel reads. `PREVIOUS` is written only here, once (inside `Once`),
    // before `INSTALLED` is set; the handler reads it only after seeing
    // `INSTALLED`.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigbus as *const () as usize;
        action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_NODEFER;
        libc::sigemptyset(&mut action.sa_mask);
        let previous = std::ptr::addr_of_mut!(PREVIOUS).cast::<libc::sigaction>();
        if libc::sigaction(libc::SIGBUS, &action, previous) == 0 {
            INSTALLED.store(true, Ordering::Release);
        }
    }
}

extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let addr = unsafe { (*info).si_addr() } as usize;
    for r in &RANGES {
        let start = r.start.load(Ordering::Acquire);
        if start != 0 && addr >= start && addr - start < r.len.load(Ordering::Relaxed) {
            let page = addr & !(page_size() - 1);
            // SAFETY: replaces one page inside a mapping we own (registered
            // above) with private zeros; nothing else is affected.
            let patched = unsafe {
                libc::mmap(
                    page as *mut libc::c_void,
                    page_size(),
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                    -1,
                    0,
                )
            };
            if patched != libc::MAP_FAILED {
                r.damaged.store(true, Ordering::Relaxed);
                return; // the faulting access is retried and reads zeros
            }
            break;
        }
    }
    chain(sig, info, ctx);
}

/// Passes a fault that is not ours to whoever handled `SIGBUS` before us,
/// or restores the default action so that the retried access kills the
/// process as it would have without us.
fn chain(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    if INSTALLED.load(Ordering::Acquire) {
        // SAFETY: `PREVIOUS` was fully written before `INSTALLED` was set
        // and is never written again.
        let prev = unsafe {
            std::ptr::addr_of!(PREVIOUS)
                .cast::<libc::sigaction>()
                .read()
        };
        let handler = prev.sa_sigaction;
        if handler != libc::SIG_DFL && handler != libc::SIG_IGN {
            if prev.sa_flags & libc::SA_SIGINFO != 0 {
                // SAFETY: the previous handler was installed as a
                // three-argument SA_SIGINFO handler.
                let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                    unsafe { std::mem::transmute(handler) };
                f(sig, info, ctx);
            } else {
                // SAFETY: the previous handler was installed as a
                // one-argument handler.
                let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(handler) };
                f(sig);
            }
            return;
        }
    }
    // SAFETY: a zeroed sigaction with SIG_DFL restores the default action.
    unsafe {
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        libc::sigaction(libc::SIGBUS, &dfl, std::ptr::null_mut());
    }
}

fn page_size() -> usize {
    static PAGE: AtomicUsize = AtomicUsize::new(0);
    match PAGE.load(Ordering::Relaxed) {
        0 => {
            // SAFETY: sysconf has no preconditions.
            let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
            let p = if p.is_power_of_two() { p } else { 4096 };
            PAGE.store(p, Ordering::Relaxed);
            p
        }
        p => p,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file mapping shrunk under us: the read past the new end returns
    /// zeros and marks the guard damaged instead of killing the process.
    #[test]
    fn truncated_mapping_reads_zeros_and_is_marked() {
        let file = tempfile_in_dev_shm();
        file.set_len(3 * 4096).unwrap();
        let map = memmap2::MmapOptions::new()
            .len(3 * 4096)
            .map_raw(&file)
            .unwrap();
        // SAFETY: in bounds of the 3-page mapping.
        unsafe { map.as_mut_ptr().add(2 * 4096).write_volatile(7) };
        let g = guard(map.as_mut_ptr(), map.len());
        assert!(!g.is_damaged());
        file.set_len(4096).unwrap();
        // SAFETY: in bounds of the mapping; past the file's end now, which
        // is what the guard is for.
        let v = unsafe { map.as_mut_ptr().add(2 * 4096).read_volatile() };
        assert_eq!(v, 0);
        assert!(g.is_damaged());
        drop(g);
    }

    fn tempfile_in_dev_shm() -> std::fs::File {
        let path = format!("/dev/shm/shmbus-unit-{}-sigbus", std::process::id());
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        f
    }
}
