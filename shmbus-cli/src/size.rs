//! Byte sizes on the command line: `4096`, `64K`, `64KiB`, `1M`, `1MiB`.
//!
//! Sizes here describe shared memory, which comes in pages, so every suffix is
//! binary (K = KiB = 1024): `--max-msg-size 64K` is 65536 bytes, the same as
//! `ls -h` and `/dev/shm` sizes in Docker mean. A bare number is bytes.

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

/// Parses a byte count such as `4096`, `64K` or `1MiB`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let s = text.trim();
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, suffix) = s.split_at(digits);
    if number.is_empty() {
        return Err(format!(
            "`{text}` is not a size: give bytes, e.g. `4096`, `64K` or `1M`"
        ));
    }
    let suffix = suffix.trim().to_ascii_lowercase();
    let scale = SUFFIXES
        .iter()
        .find(|(name, _)| *name == suffix)
        .map(|(_, scale)| *scale)
        .ok_or_else(|| format!("`{text}`: unknown size suffix (use K, M or G; 1K = 1024 bytes)"))?;
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| format!("`{text}` is too large"))
}

/// Parses a size that must fit a `u32` (the message size field).
pub fn parse_size_u32(text: &str) -> Result<u32, String> {
    let n = parse_size(text)?;
    u32::try_from(n).map_err(|_| format!("`{text}` is too large (at most 4 GiB - 1)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_are_binary() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("64K"), Ok(65536));
        assert_eq!(parse_size("64k"), Ok(65536));
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("1M"), Ok(1 << 20));
        assert_eq!(parse_size("1 MiB"), Ok(1 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("12B"), Ok(12));
    }

    #[test]
    fn refusals() {
        assert!(parse_size("").unwrap_err().contains("not a size"));
        assert!(parse_size("K").unwrap_err().contains("not a size"));
        assert!(parse_size("-1").unwrap_err().contains("not a size"));
        assert!(parse_size("1.5M")
            .unwrap_err()
            .contains("unknown size suffix"));
        assert!(parse_size("3T")
            .unwrap_err()
            .contains("unknown size suffix"));
        assert!(parse_size("99999999999999999999")
            .unwrap_err()
            .contains("too large"));
        assert!(parse_size("99999999999G")
            .unwrap_err()
            .contains("too large"));
        assert_eq!(
            parse_size_u32("4G").unwrap_err(),
            "`4G` is too large (at most 4 GiB - 1)"
        );
        assert_eq!(parse_size_u32("64M"), Ok(64 << 20));
    }
}
