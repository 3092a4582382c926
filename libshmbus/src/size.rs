//! Byte sizes as people write them: `4096`, `64K`, `64KiB`, `1M`, `1MiB`.
//!
//! Sizes here describe shared memory, which comes in pages, so every suffix
//! is binary (K = KiB = 1024): `64K` is 65536 bytes, as `ls -h` and Docker's
//! `/dev/shm` sizes mean. A bare number is bytes. The CLI and the bridge
//! read their size options with [`parse_size`].

use crate::error::{Error, Result};

/// Multipliers by suffix (case-insensitive, optional `iB`/`B`).
const SUFFIXES: &[(&str, u64)] = &[
    ("", 1),
    ("b", 1),
    ("k", 1 << 10),
    ("kb", 1 << 10),
    ("kib", 1 << 10),
    ("m", 1 << 20),
    ("mb", 1 << 20),
    ("mib", 1 << 20),
    ("g", 1 << 30),
    ("gb", 1 << 30),
    ("gib", 1 << 30),
];

/// Parses a byte count such as `4096`, `64K` or `1MiB` into any unsigned
/// type it fits (`u32` for a message size, `u64` for a segment); the error
/// says what to write instead.
pub fn parse_size<T: TryFrom<u64>>(text: &str) -> Result<T> {
    let bad = |why: String| Error::InvalidConfig(why);
    let s = text.trim();
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, suffix) = s.split_at(digits);
    if number.is_empty() {
        return Err(bad(format!(
            "`{text}` is not a size: give bytes, e.g. `4096`, `64K` or `1M`"
        )));
    }
    let suffix = suffix.trim().to_ascii_lowercase();
    let scale = SUFFIXES
        .iter()
        .find(|(name, _)| *name == suffix)
        .map(|(_, scale)| *scale)
        .ok_or_else(|| {
            bad(format!(
                "`{text}`: unknown size suffix (use K, M or G; 1K = 1024 bytes)"
            ))
        })?;
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .and_then(|n| T::try_from(n).ok())
        .ok_or_else(|| bad(format!("`{text}` is too large")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> std::result::Result<u64, String> {
        parse_size(text).map_err(|e| e.to_string())
    }

    #[test]
    fn suffixes_are_binary() {
        assert_eq!(parse("4096"), Ok(4096));
        assert_eq!(parse("0"), Ok(0));
        assert_eq!(parse("64K"), Ok(65536));
        assert_eq!(parse("64k"), Ok(65536));
        assert_eq!(parse("64KiB"), Ok(65536));
        assert_eq!(parse("1M"), Ok(1 << 20));
        assert_eq!(parse("1 MiB"), Ok(1 << 20));
        assert_eq!(parse("2G"), Ok(2 << 30));
        assert_eq!(parse("12B"), Ok(12));
    }

    #[test]
    fn refusals() {
        assert!(parse("").unwrap_err().contains("not a size"));
        assert!(parse("K").unwrap_err().contains("not a size"));
        assert!(parse("-1").unwrap_err().contains("not a size"));
        assert!(parse("1.5M").unwrap_err().contains("unknown size suffix"));
        assert!(parse("3T").unwrap_err().contains("unknown size suffix"));
        assert!(parse("99999999999999999999")
            .unwrap_err()
            .contains("too large"));
        assert!(parse("99999999999G").unwrap_err().contains("too large"));
        assert!(parse_size::<u32>("4G")
            .unwrap_err()
            .to_string()
            .contains("`4G` is too large"));
        assert_eq!(parse_size::<u32>("64M").unwrap(), 64 << 20);
    }
}
