//! Numbers for people: byte sizes (`4.0 MiB`), counts (`12.3k`) and rates
//! (`12.3k msg/s`), as shown in the `topics`, `stats` tables.
//!
//! JSON output never goes through here: scripts get exact integers.

/// A byte count with a binary unit: `512 B`, `4.0 KiB`, `4.0 MiB`, `1.5 GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    // Rounding may carry into the next unit (1023.96 KiB shows as 1.0 MiB).
    if format!("{value:.1}") == "1024.0" && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A count with a decimal suffix: `950`, `12.3k`, `4.5M`, `1.2G`.
pub fn count(n: f64) -> String {
    const UNITS: [(&str, f64); 4] = [("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)];
    if !n.is_finite() || n < 0.0 {
        return "-".into();
    }
    for (i, (suffix, scale)) in UNITS.iter().enumerate() {
        if n >= *scale * 0.99995 {
            let value = n / scale;
            // 999.96k rounds to 1000.0k: say 1.0M instead.
            if format!("{value:.1}") == "1000.0" && i > 0 {
                return format!("{:.1}{}", n / UNITS[i - 1].1, UNITS[i - 1].0);
            }
            return format!("{value:.1}{suffix}");
        }
    }
    if n.fract() == 0.0 || n >= 100.0 {
        format!("{n:.0}")
    } else {
        format!("{n:.1}")
    }
}

/// A message rate: `12.3k msg/s`.
pub fn rate(per_sec: f64) -> String {
    format!("{} msg/s", count(per_sec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1024), "1.0 KiB");
        assert_eq!(bytes(4096), "4.0 KiB");
        assert_eq!(bytes(4 << 20), "4.0 MiB");
        assert_eq!(bytes((4 << 20) + (1 << 19)), "4.5 MiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
        assert_eq!(bytes((1 << 20) - 1), "1.0 MiB");
        assert_eq!(bytes(u64::MAX), "16384.0 PiB");
    }

    #[test]
    fn counts_and_rates() {
        assert_eq!(count(0.0), "0");
        assert_eq!(count(7.0), "7");
        assert_eq!(count(2.5), "2.5");
        assert_eq!(count(950.0), "950");
        assert_eq!(count(999.4), "999");
        assert_eq!(count(1000.0), "1.0k");
        assert_eq!(count(12_345.0), "12.3k");
        assert_eq!(count(999_960.0), "1.0M");
        assert_eq!(count(4_500_000.0), "4.5M");
        assert_eq!(count(1.2e9), "1.2G");
        assert_eq!(count(f64::NAN), "-");
        assert_eq!(count(-1.0), "-");
        assert_eq!(rate(12_345.0), "12.3k msg/s");
        assert_eq!(rate(0.0), "0 msg/s");
    }
}
