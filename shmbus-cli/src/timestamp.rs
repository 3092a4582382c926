//! Message timestamps (nanoseconds since the Unix epoch, `CLOCK_REALTIME`)
//! shown as RFC 3339 in UTC, e.g. `2025-11-25T09:19:00.123456789Z`, for the
//! `json` output of `shmbus sub`.
//!
//! The calendar conversion is Howard Hinnant's `civil_from_days` algorithm
//! (public domain, <https://howardhinnant.github.io/date_algorithms.html>),
//! exact for every date a `u64` of nanoseconds can reach.

/// Formats `ns` since 1970-01-01T00:00:00Z as RFC 3339 with nanoseconds.
pub fn rfc3339(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let nanos = ns % 1_000_000_000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// (year, month 1..=12, day 1..=31) of the `days`-th day after 1970-01-01.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Shift the epoch to 0000-03-01 so leap days fall at the end of a year.
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(1), "1970-01-01T00:00:00.000000001Z");
        // 2000-02-29 (a leap day in a century divisible by 400).
        assert_eq!(
            rfc3339(951_782_400_000_000_000),
            "2000-02-29T00:00:00.000000000Z"
        );
        // `date -u -d @1764062340.123456789`
        assert_eq!(
            rfc3339(1_764_062_340_123_456_789),
            "2025-11-25T09:19:00.123456789Z"
        );
        assert_eq!(rfc3339(u64::MAX), "2554-07-21T23:34:33.709551615Z");
    }

    #[test]
    fn every_day_of_a_leap_cycle_is_consecutive() {
        let mut prev = civil_from_days(0);
        for d in 1..(4 * 366) {
            let cur = civil_from_days(d);
            let next_day = (prev.0, prev.1, prev.2 + 1);
            let next_month = (prev.0, prev.1 + 1, 1);
            let next_year = (prev.0 + 1, 1, 1);
            assert!(
                cur == next_day || cur == next_month || cur == next_year,
                "{prev:?} -> {cur:?}"
            );
            prev = cur;
        }
    }
}
