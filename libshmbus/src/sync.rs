//! The `loom` shim: the concurrent core (futex, semaphore, event count, ring)
//! is written against these names, so the very same code runs in production
//! on shared memory and under the `loom` model checker on plain memory
//! (`RUSTFLAGS="--cfg loom"`).

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

/// One iteration of a busy-wait. Under loom it yields, so the model checker
/// can schedule the thread we are waiting for.
#[inline]
pub(crate) fn spin_hint() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::hint::spin_loop();
}

/// Gives the CPU away while waiting for another process that is making
/// progress we depend on (a slow writer of the previous lap).
#[inline]
pub(crate) fn yield_now() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::thread::yield_now();
}
