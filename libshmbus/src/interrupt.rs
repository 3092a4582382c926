//! Interrupting blocking calls from a signal handler or another thread,
//! without the window in which a signal is lost.
//!
//! A signal handled just *before* a waiter enters `FUTEX_WAIT` does not
//! interrupt the system call (there is none yet), so `EINTR` alone loses
//! it: Ctrl-C on an idle subscriber would be ignored until the next message.
//! Instead, [`interrupt`] bumps a process-wide generation word and wakes it;
//! every park waits on that word *and* on its event count at once
//! (`futex_waitv`), expecting the generation its handle last saw. The kernel
//! compares both words atomically with the enqueue, so an interrupt before
//! the park makes the park return at once, and one during it wakes it.
//!
//! Each handle ([`crate::Publisher`], [`crate::Subscriber`]) remembers the
//! generation it last reported, and its next blocking call that has to wait
//! returns `Err(Interrupted)` once for every round of interrupts it has not
//! reported yet: a signal that lands between a program's check of its own
//! "stop" flag and its call to `recv` is reported by that `recv`.
//!
//! On kernels without `futex_waitv` (before 5.16) a park waits on its event
//! count alone and re-checks the generation at every tick
//! ([`crate::wait::TICK`]), so an interrupt is seen within a tick.

#[cfg(not(loom))]
use std::sync::atomic::{AtomicU32, Ordering};

#[cfg(not(loom))]
static GENERATION: AtomicU32 = AtomicU32::new(0);

/// Interrupts every blocking call of this process that is waiting, and
/// makes each handle's next wait return `Err(Error::Interrupted)` if it has
/// not reported this interrupt yet.
///
/// **Async-signal-safe**: one atomic add and one `futex` system call, no
/// allocation and no lock, so a signal handler may call it (the `shmbus`
/// command line does, for SIGINT and SIGTERM; the daemon never parks on a
/// futex: its loop wakes on a self-pipe):
///
/// ```no_run
/// extern "C" fn on_sigint(_: libc::c_int) {
///     // (set the program's own stop flag here first)
///     shmbus::interrupt();
/// }
/// // SAFETY: the handler calls only async-signal-safe functions.
/// unsafe { libc::signal(libc::SIGINT, on_sigint as libc::sighandler_t) };
/// ```
pub fn interrupt() {
    #[cfg(not(loom))]
    {
        GENERATION.fetch_add(1, Ordering::SeqCst);
        crate::futex::wake_all(&GENERATION);
    }
}

/// The current interrupt generation.
#[inline]
pub(crate) fn generation() -> u32 {
    #[cfg(not(loom))]
    return GENERATION.load(Ordering::SeqCst);
    #[cfg(loom)]
    0
}

/// The generation word, for parks that wait on it beside their event count.
#[cfg(not(loom))]
pub(crate) fn word() -> &'static AtomicU32 {
    &GENERATION
}
