//! What one repetition of a case measured, and the arithmetic to summarise
//! repetitions: hdrhistogram percentiles for latency, medians and min–max
//! ranges across repeats.

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latency percentiles in nanoseconds: one-way (half of each measured round
/// trip, [`RttRecorder::one_way`]) for the ping-pongs, the whole round trip
/// ([`RttRecorder::round_trip`]) for the request/reply cases.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Median.
    pub p50_ns: f64,
    /// 90th percentile.
    pub p90_ns: f64,
    /// 99th percentile.
    pub p99_ns: f64,
    /// 99.9th percentile.
    pub p999_ns: f64,
    /// Largest sample.
    pub max_ns: f64,
    /// Round trips measured (after warm-up).
    pub samples: u64,
}

/// Collects round-trip times of a ping-pong.
pub struct RttRecorder {
    hist: Histogram<u64>,
}

impl Default for RttRecorder {
    fn default() -> Self {
        RttRecorder::new()
    }
}

impl RttRecorder {
    /// An empty recorder for round trips of 1 ns to 60 s at 3 significant
    /// digits (0.1 % resolution, far below run-to-run noise).
    pub fn new() -> RttRecorder {
        RttRecorder {
            hist: Histogram::new_with_bounds(1, 60_000_000_000, 3)
                .expect("static histogram bounds are valid"),
        }
    }

    /// Adds one round trip; values out of range are clamped to it.
    #[inline]
    pub fn record(&mut self, rtt_ns: u64) {
        self.hist.saturating_record(rtt_ns.max(1));
    }

    /// One-way percentiles: half of the round-trip percentiles.
    pub fn one_way(&self) -> LatencySummary {
        self.scaled(0.5)
    }

    /// Round-trip percentiles, as measured (a call and its reply: halving
    /// would hide the server's turn-around, which is part of the cost).
    pub fn round_trip(&self) -> LatencySummary {
        self.scaled(1.0)
    }

    fn scaled(&self, k: f64) -> LatencySummary {
        let q = |p: f64| self.hist.value_at_quantile(p) as f64 * k;
        LatencySummary {
            p50_ns: q(0.50),
            p90_ns: q(0.90),
            p99_ns: q(0.99),
            p999_ns: q(0.999),
            max_ns: self.hist.max() as f64 * k,
            samples: self.hist.len(),
        }
    }
}

/// What one repetition of one case measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Sample {
    /// A ping-pong: one-way latency.
    Latency(LatencySummary),
    /// A stream of messages of the case's size: delivered messages per second
    /// at the receiver.
    Throughput {
        /// Messages per second.
        msgs_per_sec: f64,
    },
    /// A copy loop: bytes per second.
    Bandwidth {
        /// Bytes per second.
        bytes_per_sec: f64,
    },
    /// Request/reply: round trips of sequential calls, and the rate of
    /// pipelined calls.
    Rpc {
        /// Round-trip percentiles of one call at a time.
        round_trip: LatencySummary,
        /// Calls per second completed with several in flight.
        calls_per_sec: f64,
    },
    /// One publisher, N subscribers.
    FanOut {
        /// Mean time inside one `send` while every subscriber keeps up (ns).
        publish_ns: f64,
        /// Delivered messages per second of the slowest subscriber.
        rate_min: f64,
        /// Median over subscribers of delivered messages per second.
        rate_median: f64,
    },
}

/// Median of `v` (mean of the two middle values for an even count); NaN for
/// an empty slice.
pub fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    }
}

/// Smallest and largest of `v`.
pub fn min_max(v: &[f64]) -> (f64, f64) {
    v.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn one_way_is_half_the_round_trip() {
        let mut r = RttRecorder::new();
        for v in [200, 200, 200, 400] {
            r.record(v);
        }
        let s = r.one_way();
        assert_eq!(s.p50_ns, 100.0);
        assert_eq!(s.max_ns, 200.0);
        assert_eq!(s.samples, 4);
        let rt = r.round_trip();
        assert_eq!(rt.p50_ns, 200.0);
        assert_eq!(rt.max_ns, 400.0);
    }

    #[test]
    fn min_max_spans_the_values() {
        assert_eq!(min_max(&[2.0, -1.0, 5.0]), (-1.0, 5.0));
    }
}
