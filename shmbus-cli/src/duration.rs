//! Durations on the command line: `500ms`, `5s`, `1m`, `1h`, `250us`, `1.5s`,
//! and sums like `1m30s`.
//!
//! A unit is required (SPEC §7: "Durations take units"): a bare `5` could mean
//! seconds to a `mosquitto_sub` user and milliseconds to a `ping` user, so it
//! is refused with a hint instead of guessed. The only exception is `0`,
//! which means the same in every unit. Written by hand rather than with
//! `humantime` because the grammar is ten lines and the error messages can
//! then say exactly what to type.

use std::time::Duration;

/// Units accepted after a number, longest spelling first so that `ms` is not
/// read as `m` followed by garbage.
const UNITS: &[(&str, u128)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// Parses a duration such as `500ms`, `5s`, `1m30s` or `0.25s`.
///
/// The error text is shown to the user after clap's "invalid value" prefix,
/// so it says what is expected.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration: give a number and a unit, e.g. `500ms` or `5s`".into());
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = s;
    let mut total_ns: u128 = 0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(num_len);
        if number.is_empty() {
            return Err(format!(
                "`{text}` is not a duration: expected a number before `{after}` (e.g. `500ms`, `5s`, `1m`)"
            ));
        }
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        if unit.is_empty() {
            return Err(format!(
                "`{text}` has no unit: write e.g. `{number}s` or `{number}ms` (units: ns, us, ms, s, m, h)"
            ));
        }
        let scale = UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, scale)| *scale)
            .ok_or_else(|| {
                format!("`{text}`: unknown unit `{unit}` (units: ns, us, ms, s, m, h)")
            })?;
        total_ns = total_ns
            .checked_add(scaled(number, scale, text)?)
            .ok_or_else(|| too_long(text))?;
        rest = next;
    }
    let secs = u64::try_from(total_ns / 1_000_000_000).map_err(|_| too_long(text))?;
    Ok(Duration::new(secs, (total_ns % 1_000_000_000) as u32))
}

/// `number` (digits with at most one `.`) times `scale` nanoseconds, exactly:
/// the fraction is handled in integers so `0.1s` is 100 ms, not 99.999 ms.
fn scaled(number: &str, scale: u128, text: &str) -> Result<u128, String> {
    let (int_part, frac_part) = match number.split_once('.') {
        Some((i, f)) => (i, f),
        None => (number, ""),
    };
    if frac_part.contains('.') || (int_part.is_empty() && frac_part.is_empty()) {
        return Err(format!("`{text}`: `{number}` is not a number"));
    }
    let int: u128 = if int_part.is_empty() {
        0
    } else {
        int_part.parse().map_err(|_| too_long(text))?
    };
    let mut ns = int.checked_mul(scale).ok_or_else(|| too_long(text))?;
    // Digits below one nanosecond are ignored; more than 30 cannot matter.
    let mut place = scale;
    for digit in frac_part.bytes().take(30) {
        place /= 10;
        ns += u128::from(digit - b'0') * place;
    }
    Ok(ns)
}

fn too_long(text: &str) -> String {
    format!("`{text}` is too long a duration")
}

/// Shows a duration the way the parser reads it back (`1.5s`, `250ms`),
/// for messages and tables.
pub fn format_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    let (value, unit) = if ns >= 60_000_000_000 && ns.is_multiple_of(60_000_000_000) {
        (ns as f64 / 60e9, "m")
    } else if ns >= 1_000_000_000 {
        (ns as f64 / 1e9, "s")
    } else if ns >= 1_000_000 {
        (ns as f64 / 1e6, "ms")
    } else if ns >= 1_000 {
        (ns as f64 / 1e3, "us")
    } else {
        (ns as f64, "ns")
    };
    let mut text = format!("{value:.3}");
    while text.ends_with('0') {
        text.pop();
    }
    if text.ends_with('.') {
        text.pop();
    }
    format!("{text}{unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Duration {
        parse_duration(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn every_unit() {
        assert_eq!(ok("7ns"), Duration::from_nanos(7));
        assert_eq!(ok("250us"), Duration::from_micros(250));
        assert_eq!(ok("250µs"), Duration::from_micros(250));
        assert_eq!(ok("500ms"), Duration::from_millis(500));
        assert_eq!(ok("5s"), Duration::from_secs(5));
        assert_eq!(ok("1m"), Duration::from_secs(60));
        assert_eq!(ok("1h"), Duration::from_secs(3600));
    }

    #[test]
    fn fractions_are_exact() {
        assert_eq!(ok("0.1s"), Duration::from_millis(100));
        assert_eq!(ok("1.5s"), Duration::from_millis(1500));
        assert_eq!(ok(".5ms"), Duration::from_micros(500));
        assert_eq!(ok("2.25m"), Duration::from_secs(135));
        assert_eq!(ok("1.0000000001s"), Duration::from_secs(1));
    }

    #[test]
    fn sums_and_spaces() {
        assert_eq!(ok("1m30s"), Duration::from_secs(90));
        assert_eq!(ok("1h1m1s1ms"), Duration::new(3661, 1_000_000));
        assert_eq!(ok(" 5s "), Duration::from_secs(5));
        assert_eq!(ok("0"), Duration::ZERO);
        assert_eq!(ok("0s"), Duration::ZERO);
    }

    #[test]
    fn refusals_say_what_to_write() {
        let e = parse_duration("5").unwrap_err();
        assert!(e.contains("no unit") && e.contains("`5s`"), "{e}");
        let e = parse_duration("5x").unwrap_err();
        assert!(e.contains("unknown unit `x`"), "{e}");
        let e = parse_duration("ms").unwrap_err();
        assert!(e.contains("expected a number"), "{e}");
        assert!(parse_duration("").is_err());
        assert!(parse_duration("1.2.3s").is_err());
        assert!(parse_duration(".s").is_err());
        assert!(parse_duration("-5s").is_err());
        assert!(parse_duration("5 s").is_err());
        let e = parse_duration("99999999999999999999999999999999999999999h").unwrap_err();
        assert!(e.contains("too long"), "{e}");
        assert!(parse_duration("18446744073709551616s").is_err());
    }

    #[test]
    fn format_reads_back() {
        for d in [
            Duration::from_nanos(7),
            Duration::from_micros(250),
            Duration::from_millis(500),
            Duration::from_millis(1500),
            Duration::from_secs(5),
            Duration::from_secs(120),
        ] {
            assert_eq!(ok(&format_duration(d)), d, "{}", format_duration(d));
        }
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_duration(Duration::from_secs(60)), "1m");
    }
}
