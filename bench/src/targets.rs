//! The SPEC §9 targets (and the services targets of issue 9), each a ratio of two figures measured in the same run,
//! and the verdict on each. A target whose two sides did not both run (see
//! `--only`) is "not measured", never guessed.

use std::fmt;

use serde::Serialize;

use crate::plan::ids;
use crate::row::Row;
use crate::shmbus_cases::fanout::FanOutMode;
use crate::units::{fmt_mib, fmt_ns, fmt_rate, fmt_ratio};

/// How a ratio is judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bound {
    /// Met when the ratio is at most the limit.
    AtMost,
    /// Met when the ratio is at least the limit.
    AtLeast,
}

/// The verdict on one target.
#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    /// Short key (`spin-latency`, `park-latency`, `small-throughput`,
    /// `large-copy`, `zero-copy`, `fanout-publish`, `fanout-publish-parked`,
    /// `service-spin-latency`, `service-calls`).
    pub key: &'static str,
    /// The target in words.
    pub target: &'static str,
    /// Measured ratio, if both sides ran.
    pub ratio: Option<f64>,
    /// Limit the ratio is held to.
    pub limit: f64,
    /// Direction of the limit.
    pub bound: Bound,
    /// Whether the target is met (`None`: not measured).
    pub met: Option<bool>,
    /// The two figures the ratio was taken from.
    pub detail: String,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tag = match self.met {
            Some(true) => "MET ",
            Some(false) => "MISS",
            None => " -- ",
        };
        let op = match self.bound {
            Bound::AtMost => "<=",
            Bound::AtLeast => ">=",
        };
        match self.ratio {
            Some(r) => write!(
                f,
                "[{tag}] {}: {}x (limit {op} {}x): {}",
                self.target,
                fmt_ratio(r),
                fmt_ratio(self.limit),
                self.detail
            ),
            None => write!(f, "[{tag}] {}: not measured ({})", self.target, self.detail),
        }
    }
}

/// Judges every target against the rows of a run.
pub fn evaluate(rows: &[Row]) -> Vec<Verdict> {
    let find = |id: &str| rows.iter().find(|r| r.id == id);
    let p50 = |id: &str| find(id).and_then(|r| r.latency).map(|l| l.p50_ns);
    let rate = |id: &str| find(id).and_then(|r| r.msgs_per_sec);
    let mib = |id: &str| find(id).and_then(|r| r.mib_per_sec);
    let publish = |id: &str| find(id).and_then(|r| r.publish_ns);
    let p50_rtt = |id: &str| find(id).and_then(|r| r.round_trip).map(|l| l.p50_ns);
    let calls = |id: &str| find(id).and_then(|r| r.calls_per_sec);
    let fan1 = ids::fanout(1);
    let fan16 = ids::fanout(16);
    vec![
        judge(
            "spin-latency",
            "busy-spin one-way latency p50 vs raw spin floor (64 B)",
            p50(ids::SHMBUS_SPIN_64),
            p50(ids::SPIN_FLOOR),
            Bound::AtMost,
            1.5,
            |a, b| format!("shmbus {} vs floor {}", fmt_ns(a), fmt_ns(b)),
            "needs --only floors,latency",
        ),
        judge(
            "park-latency",
            "parked one-way latency p50 vs raw futex floor (64 B)",
            p50(ids::SHMBUS_PARK_64),
            p50(ids::FUTEX_FLOOR),
            Bound::AtMost,
            1.5,
            |a, b| format!("shmbus {} vs floor {}", fmt_ns(a), fmt_ns(b)),
            "needs --only floors,latency",
        ),
        judge(
            "small-throughput",
            "64 B throughput vs Unix stream socket",
            rate(ids::SHMBUS_COPY_64),
            rate(ids::UNIX_TPUT_64),
            Bound::AtLeast,
            10.0,
            |a, b| {
                format!(
                    "shmbus {} msgs/s vs unix socket {} msgs/s",
                    fmt_rate(a),
                    fmt_rate(b)
                )
            },
            "needs --only kernel,throughput",
        ),
        judge(
            "large-copy",
            "1 MiB copy-path throughput vs single-thread memcpy",
            mib(ids::SHMBUS_COPY_1M),
            mib(ids::MEMCPY),
            Bound::AtLeast,
            0.7,
            |a, b| format!("shmbus {} MiB/s vs memcpy {} MiB/s", fmt_mib(a), fmt_mib(b)),
            "needs --only floors,throughput",
        ),
        judge(
            "zero-copy",
            "1 MiB zero-copy throughput vs the copy path",
            mib(ids::SHMBUS_ZC_1M),
            mib(ids::SHMBUS_COPY_1M),
            Bound::AtLeast,
            1.0,
            |a, b| {
                format!(
                    "zero-copy {} MiB/s vs copy {} MiB/s",
                    fmt_mib(a),
                    fmt_mib(b)
                )
            },
            "needs --only throughput",
        ),
        judge(
            "fanout-publish",
            "publish cost with 16 keeping-up (polling) subscribers vs 1",
            publish(&fan16),
            publish(&fan1),
            Bound::AtMost,
            1.3,
            |a, b| format!("{} per send with 16 vs {} with 1", fmt_ns(a), fmt_ns(b)),
            "needs --only fanout",
        ),
        judge(
            "fanout-publish-parked",
            "publish cost with 16 parked subscribers vs 1 (wake-ups included)",
            publish(&ids::fanout_mode(FanOutMode::Park, 16)),
            publish(&ids::fanout_mode(FanOutMode::Park, 1)),
            Bound::AtMost,
            1.3,
            |a, b| format!("{} per send with 16 vs {} with 1", fmt_ns(a), fmt_ns(b)),
            "needs --only fanout",
        ),
        judge(
            "service-spin-latency",
            "service call round trip p50 (spin) vs raw spin round trip (2x the floor's one-way, 64 B)",
            p50_rtt(ids::SERVICE_SPIN_64),
            p50(ids::SPIN_FLOOR).map(|one_way| 2.0 * one_way),
            Bound::AtMost,
            2.5,
            |a, b| format!("call {} vs spin round trip {}", fmt_ns(a), fmt_ns(b)),
            "needs --only floors,services",
        ),
        judge(
            "service-calls",
            "service calls/s (spin, pipelined) vs Unix-socket request/reply (64 B)",
            calls(ids::SERVICE_SPIN_64),
            calls(ids::SERVICE_UNIX_64),
            Bound::AtLeast,
            10.0,
            |a, b| {
                format!(
                    "shmbus {} calls/s vs unix socket {} calls/s",
                    fmt_rate(a),
                    fmt_rate(b)
                )
            },
            "needs --only services",
        ),
    ]
}

#[allow(clippy::too_many_arguments)]
fn judge(
    key: &'static str,
    target: &'static str,
    mine: Option<f64>,
    reference: Option<f64>,
    bound: Bound,
    limit: f64,
    detail: impl Fn(f64, f64) -> String,
    missing: &str,
) -> Verdict {
    let ratio = match (mine, reference) {
        (Some(a), Some(b)) if b > 0.0 && a.is_finite() && b.is_finite() => Some(a / b),
        _ => None,
    };
    let met = ratio.map(|r| match bound {
        Bound::AtMost => r <= limit,
        Bound::AtLeast => r >= limit,
    });
    let detail = match (mine, reference, ratio) {
        (Some(a), Some(b), Some(_)) => detail(a, b),
        _ => missing.to_string(),
    };
    Verdict {
        key,
        target,
        ratio,
        limit,
        bound,
        met,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_judged_in_their_direction() {
        let d = |a: f64, b: f64| format!("{a} {b}");
        let v = judge("k", "t", Some(3.0), Some(2.0), Bound::AtMost, 1.5, d, "m");
        assert_eq!(v.met, Some(true));
        let v = judge("k", "t", Some(4.0), Some(2.0), Bound::AtMost, 1.5, d, "m");
        assert_eq!(v.met, Some(false));
        let v = judge("k", "t", Some(4.0), Some(2.0), Bound::AtLeast, 10.0, d, "m");
        assert_eq!(v.met, Some(false));
        let v = judge("k", "t", None, Some(2.0), Bound::AtLeast, 10.0, d, "m");
        assert_eq!(v.met, None);
        assert_eq!(v.detail, "m");
    }
}
