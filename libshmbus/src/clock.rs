//! Wall-clock time for the library: segment creation times, random-seed
//! fallbacks, and the time stamp of every published message.
//!
//! A message's time stamp is `CLOCK_REALTIME` in nanoseconds since the Unix
//! epoch. Reading it through the vDSO cost about 30 ns per publish on the
//! project's VM — a fifth of a spin hop (docs/performance.md, "The one
//! miss"). Where the kernel itself keeps time with the CPU's time-stamp
//! counter (clocksource `tsc`, which it only selects when the counter is
//! invariant and synchronised across CPUs), [`stamp_ns`] reads the counter
//! with a plain `rdtsc` and scales it from a per-thread anchor: a pair
//! (counter, `CLOCK_REALTIME`) taken at most one millisecond earlier, and a
//! rate measured between the last two anchors. Every millisecond the anchor
//! is re-taken from the real clock, so:
//!
//! * the stamp is within about a microsecond of `CLOCK_REALTIME` (the rate's
//!   error over one millisecond, plus NTP slewing of at most 500 ppm);
//! * a step of the real clock (`settimeofday`) shows within a millisecond;
//! * a counter that misbehaves (a thread moved to a CPU whose counter
//!   differs, a counter going backwards) costs at most one re-anchor: any
//!   reading outside `[anchor, anchor + 1 ms)` takes the real clock.
//!
//! Stamps of one publisher may step back by up to that error at a re-anchor
//! (as `CLOCK_REALTIME` itself may step back); message order is the
//! sequence number, never the stamp. Elsewhere (other architectures, another
//! clocksource, under loom) [`stamp_ns`] is [`realtime_ns`].

/// `CLOCK_REALTIME` in nanoseconds since the epoch (0 before 1970).
pub(crate) fn realtime_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out-pointer; CLOCK_REALTIME always exists. Served by the
    // vDSO, no system call.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    u64::try_from(ts.tv_sec)
        .unwrap_or(0)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

/// The time stamp of a message published now: `CLOCK_REALTIME` in ns, to
/// within about a microsecond (see the module documentation).
#[inline]
pub(crate) fn stamp_ns() -> u64 {
    #[cfg(all(target_arch = "x86_64", not(loom)))]
    {
        tsc::stamp_ns()
    }
    #[cfg(not(all(target_arch = "x86_64", not(loom))))]
    {
        realtime_ns()
    }
}

#[cfg(all(target_arch = "x86_64", not(loom)))]
mod tsc {
    use super::realtime_ns;
    use std::cell::Cell;
    use std::sync::OnceLock;

    /// How long an anchor serves before the real clock is read again.
    const REANCHOR_NS: u64 = 1_000_000;
    /// The shortest and longest interval between two anchors that a rate
    /// is measured over: shorter is too coarse, longer may span a clock
    /// step or a suspend.
    const RATE_MIN_NS: u64 = 500_000;
    const RATE_MAX_NS: u64 = 1_000_000_000;
    /// An anchor is taken between two counter reads; if they are further
    /// apart than this (the thread was interrupted), the pair is not used.
    const MAX_BRACKET_TICKS: u64 = 20_000;

    /// One thread's anchor. `rate` is nanoseconds per tick in 32.32 fixed
    /// point (0: not measured yet); `span` is how many ticks the anchor
    /// serves (about [`REANCHOR_NS`]).
    #[derive(Clone, Copy)]
    struct Anchor {
        tsc: u64,
        ns: u64,
        rate: u64,
        span: u64,
    }

    thread_local! {
        static ANCHOR: Cell<Anchor> = const {
            Cell::new(Anchor { tsc: 0, ns: 0, rate: 0, span: 0 })
        };
    }

    /// Whether the kernel keeps time with the TSC (then it is invariant and
    /// synchronised across CPUs: the kernel checks both before selecting it).
    fn usable() -> bool {
        static USABLE: OnceLock<bool> = OnceLock::new();
        *USABLE.get_or_init(|| {
            std::fs::read_to_string(
                "/sys/devices/system/clocksource/clocksource0/current_clocksource",
            )
            .is_ok_and(|s| s.trim() == "tsc")
        })
    }

    #[inline]
    fn rdtsc() -> u64 {
        // SAFETY: `rdtsc` exists on every x86_64 CPU and has no memory
        // effects. Deliberately not serialising (no `lfence`/`rdtscp`): a
        // stamp may be read a few instructions early or late, which is far
        // below its precision, and a serialising read waits for the loads
        // in flight — the lines the publisher just received.
        unsafe { core::arch::x86_64::_rdtsc() }
    }

    #[inline]
    pub(super) fn stamp_ns() -> u64 {
        if !usable() {
            return realtime_ns();
        }
        let a = ANCHOR.get();
        let ticks = rdtsc().wrapping_sub(a.tsc);
        if a.rate != 0 && ticks < a.span {
            // ticks < span ≈ 1 ms of ticks, rate ≈ ns/tick << 32: the
            // product fits u128 with room to spare and the result < 2 ms.
            return a.ns + ((u128::from(ticks) * u128::from(a.rate)) >> 32) as u64;
        }
        reanchor(a)
    }

    /// Reads the real clock, returns it, and re-takes the thread's anchor
    /// (measuring the rate since the previous one when the interval allows).
    #[cold]
    fn reanchor(old: Anchor) -> u64 {
        let t0 = rdtsc();
        let ns = realtime_ns();
        let t1 = rdtsc();
        let bracket = t1.wrapping_sub(t0);
        if bracket > MAX_BRACKET_TICKS {
            return ns;
        }
        let tsc = t0.wrapping_add(bracket / 2);
        let since_ns = ns.wrapping_sub(old.ns);
        let since_ticks = tsc.wrapping_sub(old.tsc);
        // Whether the interval since the old anchor can give a rate: one
        // exists, both clocks went forward, and it is neither too short nor
        // long enough to span a clock step or a suspend.
        let forward = old.ns != 0 && ns > old.ns && since_ticks > 0 && since_ticks < u64::MAX / 2;
        if forward && old.rate == 0 && since_ns < RATE_MIN_NS {
            // The first rate needs an interval of RATE_MIN_NS: keep the
            // first anchor until then (every stamp meanwhile is the real
            // clock's).
            return ns;
        }
        let mut next = Anchor {
            tsc,
            ns,
            rate: old.rate,
            span: old.span,
        };
        if forward && (RATE_MIN_NS..=RATE_MAX_NS).contains(&since_ns) {
            let rate = ((u128::from(since_ns) << 32) / u128::from(since_ticks)) as u64;
            if rate != 0 {
                next.rate = rate;
                next.span = ((u128::from(REANCHOR_NS) << 32) / u128::from(rate)) as u64;
            }
        }
        ANCHOR.set(next);
        ns
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn stamps_stay_within_a_few_microseconds_of_the_real_clock() {
            // Over 300 ms of stamps, interleaved with real-clock reads: each
            // stamp lies between the real clock read just before and just
            // after it, give or take the documented error. Bounds are wide
            // (20 µs) so that a preempted test thread cannot fail it; a
            // wrong rate or a stale anchor would be off by far more (a rate
            // off by 1 % is 10 µs per ms).
            let start = realtime_ns();
            let mut n = 0u64;
            while realtime_ns() - start < 300_000_000 {
                let before = realtime_ns();
                let s = stamp_ns();
                let after = realtime_ns();
                assert!(
                    s + 20_000 >= before && s <= after + 20_000,
                    "stamp {s} outside [{before}, {after}] by more than 20 us"
                );
                n += 1;
                if n.is_multiple_of(1000) {
                    std::thread::sleep(std::time::Duration::from_micros(200));
                }
            }
            if usable() {
                let a = ANCHOR.get();
                assert_ne!(
                    a.rate, 0,
                    "after 300 ms of stamps the rate must be measured"
                );
            }
        }

        #[test]
        fn a_stale_anchor_falls_back_to_the_real_clock() {
            // A thread that stamps once, sleeps past the anchor's span and
            // stamps again reads the real clock the second time.
            let _ = stamp_ns();
            std::thread::sleep(std::time::Duration::from_millis(5));
            let before = realtime_ns();
            let s = stamp_ns();
            let after = realtime_ns();
            assert!(s >= before && s <= after, "{before} <= {s} <= {after}");
        }
    }
}
