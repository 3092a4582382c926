//! The round-trip latency histogram of a service: a fixed log-linear
//! histogram of nanoseconds that lives in the service segment, written by
//! every client with one Relaxed `fetch_add` per call, read as a snapshot
//! from which percentiles are computed.
//!
//! Buckets are HdrHistogram-like: values below [`SUB_BUCKETS`] have a bucket
//! each; above, every power of two `[2^e, 2^(e+1))` is cut into
//! [`SUB_BUCKETS`] equal sub-buckets, so a bucket is at most 1/8 of its
//! value wide (a percentile is reported as its bucket's highest value: never
//! under the truth, at most 12.5 % over it). Values from 2^[`MAX_EXP`] ns
//! (about 18 minutes) up land in the last bucket.
//!
//! The memory is shared with other processes and so untrusted: counts are
//! plain `u64`s for which any value is valid; sums saturate; nothing panics.

use crate::sync::{AtomicU64, Ordering};

/// Sub-buckets per power of two (a power of two itself).
pub const SUB_BUCKETS: u64 = 8;
const SUB_BITS: u32 = SUB_BUCKETS.trailing_zeros();
/// Values of 2^`MAX_EXP` ns and more share the last bucket.
pub const MAX_EXP: u32 = 40;
/// Number of buckets: the exact ones, the sub-buckets of each power of two
/// up to 2^`MAX_EXP`, and one for everything above.
pub const BUCKETS: usize = (SUB_BUCKETS + (MAX_EXP - SUB_BITS) as u64 * SUB_BUCKETS + 1) as usize;

/// The bucket of a value (ns).
#[inline]
pub fn bucket_of(ns: u64) -> usize {
    if ns < SUB_BUCKETS {
        return ns as usize;
    }
    let e = 63 - ns.leading_zeros();
    if e >= MAX_EXP {
        return BUCKETS - 1;
    }
    let sub = (ns >> (e - SUB_BITS)) & (SUB_BUCKETS - 1);
    (SUB_BUCKETS + u64::from(e - SUB_BITS) * SUB_BUCKETS + sub) as usize
}

/// The lowest value of bucket `i` (clamped into range).
pub fn bucket_low(i: usize) -> u64 {
    let i = i.min(BUCKETS - 1) as u64;
    if i < SUB_BUCKETS {
        return i;
    }
    let e = SUB_BITS + ((i - SUB_BUCKETS) / SUB_BUCKETS) as u32;
    let sub = (i - SUB_BUCKETS) % SUB_BUCKETS;
    (SUB_BUCKETS + sub) << (e - SUB_BITS)
}

/// The highest value of bucket `i` (the last bucket reports its low end:
/// it has no upper bound).
pub fn bucket_high(i: usize) -> u64 {
    if i >= BUCKETS - 1 {
        return bucket_low(BUCKETS - 1);
    }
    bucket_low(i + 1) - 1
}

/// The histogram as it lies in shared memory.
#[repr(C)]
pub struct LatencyHistogram {
    buckets: [AtomicU64; BUCKETS],
}

impl LatencyHistogram {
    /// An empty histogram on the heap (tests; segments start zero-filled).
    #[allow(dead_code)]
    pub(crate) fn new() -> LatencyHistogram {
        LatencyHistogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Adds one round trip of `ns` nanoseconds.
    #[inline]
    pub fn record(&self, ns: u64) {
        // Relaxed: a counter; readers want totals, not ordering. Wraps.
        self.buckets[bucket_of(ns)].fetch_add(1, Ordering::Relaxed);
    }

    /// The counts as they are now (each read once).
    pub fn snapshot(&self) -> LatencySnapshot {
        LatencySnapshot {
            counts: self
                .buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
        }
    }
}

/// Counts copied out of a [`LatencyHistogram`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LatencySnapshot {
    counts: Vec<u64>,
}

impl LatencySnapshot {
    /// A snapshot of these per-bucket counts (tests).
    #[allow(dead_code)]
    pub(crate) fn from_counts(counts: Vec<u64>) -> LatencySnapshot {
        LatencySnapshot { counts }
    }

    /// Round trips recorded (saturating).
    pub fn count(&self) -> u64 {
        self.counts.iter().fold(0u64, |a, &c| a.saturating_add(c))
    }

    /// The value (ns) at or under which a fraction `q` (0..=1) of the
    /// recorded round trips lie, as the highest value of that bucket;
    /// `None` if nothing was recorded.
    pub fn percentile(&self, q: f64) -> Option<u64> {
        let total: u128 = self.counts.iter().map(|&c| u128::from(c)).sum();
        if total == 0 {
            return None;
        }
        let q = if q.is_nan() { 1.0 } else { q.clamp(0.0, 1.0) };
        // The rank of the wanted sample, 1-based; at least the first.
        let rank = ((q * total as f64).ceil() as u128).clamp(1, total);
        let mut seen: u128 = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += u128::from(c);
            if seen >= rank {
                return Some(bucket_high(i));
            }
        }
        Some(bucket_high(self.counts.len().saturating_sub(1)))
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_in_order() {
        assert_eq!(BUCKETS, 305);
        assert_eq!(bucket_low(0), 0);
        for i in 0..BUCKETS - 1 {
            assert_eq!(bucket_of(bucket_low(i)), i, "low of {i}");
            assert_eq!(bucket_of(bucket_high(i)), i, "high of {i}");
            assert_eq!(bucket_high(i) + 1, bucket_low(i + 1));
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
        assert_eq!(bucket_of(1 << MAX_EXP), BUCKETS - 1);
        assert_eq!(bucket_of((1 << MAX_EXP) - 1), BUCKETS - 2);
    }

    #[test]
    fn a_bucket_is_at_most_an_eighth_of_its_value_wide() {
        for i in SUB_BUCKETS as usize..BUCKETS - 1 {
            let (lo, hi) = (bucket_low(i), bucket_high(i));
            assert!((hi - lo + 1) * 8 <= lo, "bucket {i}: {lo}..={hi}");
        }
        // Small values are exact.
        for v in 0..SUB_BUCKETS {
            assert_eq!(bucket_high(bucket_of(v)), v);
        }
    }

    #[test]
    fn percentiles_of_known_samples() {
        let h = LatencyHistogram::new();
        assert_eq!(h.snapshot().percentile(0.5), None);
        assert_eq!(h.snapshot().count(), 0);
        // 90 fast round trips of 1 µs, 9 of 100 µs, one of 10 ms.
        for _ in 0..90 {
            h.record(1_000);
        }
        for _ in 0..9 {
            h.record(100_000);
        }
        h.record(10_000_000);
        let s = h.snapshot();
        assert_eq!(s.count(), 100);
        let near = |got: Option<u64>, want: u64| {
            let got = got.expect("samples");
            assert!(
                got >= want && got <= want + want / 8,
                "{got} is not within 12.5 % above {want}"
            );
        };
        near(s.percentile(0.5), 1_000);
        near(s.percentile(0.9), 1_000);
        near(s.percentile(0.91), 100_000);
        near(s.percentile(0.99), 100_000);
        near(s.percentile(1.0), 10_000_000);
        near(s.percentile(0.0), 1_000);
        // Out-of-range quantiles are clamped, not a panic.
        near(s.percentile(7.0), 10_000_000);
        near(s.percentile(f64::NAN), 10_000_000);
    }

    #[test]
    fn hostile_counts_neither_panic_nor_overflow() {
        let mut counts = vec![0u64; BUCKETS];
        counts[3] = u64::MAX;
        counts[BUCKETS - 1] = u64::MAX;
        let s = LatencySnapshot::from_counts(counts.clone());
        assert_eq!(s.count(), u64::MAX, "saturates");
        assert!(s.percentile(0.5).is_some());
        counts[BUCKETS - 1] = 1;
        let s = LatencySnapshot::from_counts(counts);
        assert_eq!(s.percentile(0.5), Some(3));
        assert_eq!(s.percentile(1.0), Some(bucket_low(BUCKETS - 1)));
        // A wrapped bucket counter is just a count.
        let h = LatencyHistogram::new();
        h.buckets[5].store(u64::MAX, Ordering::Relaxed);
        h.record(5);
        assert_eq!(h.snapshot().count(), 0);
        assert_eq!(h.snapshot().percentile(0.5), None);
    }
}
