//! The one clock every case reads: CLOCK_MONOTONIC in nanoseconds.
//!
//! It is system-wide, so a child's timestamps compare with the parent's, and
//! on this class of machine (TSC clocksource) it is a vDSO read of ~20 ns, no
//! system call. Latency samples include one read per round trip on every
//! case alike, floors included, so ratios are not skewed by it.

/// Nanoseconds on CLOCK_MONOTONIC.
#[inline]
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
