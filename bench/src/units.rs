//! How figures are written in the table and the verdicts: sizes,
//! nanoseconds, rates, MiB/s and ratios.

use crate::plan::MIB;

/// `64 B`, `4 KiB`, `1 MiB`.
pub fn size_label(size: usize) -> String {
    if size >= MIB && size.is_multiple_of(MIB) {
        format!("{} MiB", size / MIB)
    } else if size >= 1024 && size.is_multiple_of(1024) {
        format!("{} KiB", size / 1024)
    } else {
        format!("{size} B")
    }
}

/// Nanoseconds with a unit that keeps 3 significant digits.
pub fn fmt_ns(ns: f64) -> String {
    if !ns.is_finite() {
        "-".into()
    } else if ns < 1_000.0 {
        format!("{ns:.0} ns")
    } else if ns < 1_000_000.0 {
        format!("{:.2} us", ns / 1e3)
    } else {
        format!("{:.2} ms", ns / 1e6)
    }
}

/// Messages per second as `12.3M`, `456k`.
pub fn fmt_rate(r: f64) -> String {
    if !r.is_finite() {
        "-".into()
    } else if r >= 1e6 {
        format!("{:.2}M", r / 1e6)
    } else if r >= 1e3 {
        format!("{:.1}k", r / 1e3)
    } else {
        format!("{r:.0}")
    }
}

/// MiB per second.
pub fn fmt_mib(m: f64) -> String {
    if !m.is_finite() {
        "-".into()
    } else if m >= 100.0 {
        format!("{m:.0}")
    } else {
        format!("{m:.1}")
    }
}

/// A ratio with 2-3 significant digits.
pub fn fmt_ratio(x: f64) -> String {
    if x < 0.1 {
        format!("{x:.3}")
    } else if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_are_readable() {
        assert_eq!(size_label(64), "64 B");
        assert_eq!(size_label(4096), "4 KiB");
        assert_eq!(size_label(MIB), "1 MiB");
        assert_eq!(fmt_ns(85.4), "85 ns");
        assert_eq!(fmt_ns(1234.0), "1.23 us");
        assert_eq!(fmt_rate(12_345_678.0), "12.35M");
        assert_eq!(fmt_rate(4_560.0), "4.6k");
    }
}
