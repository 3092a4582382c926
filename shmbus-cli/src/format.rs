//! How `shmbus sub` prints a message (and `shmbus call` a reply): `text`,
//! `json`, `hex` or `raw`.
//!
//! - `text` (default): the payload and a newline, `-v` puts the topic and a
//!   space first. Payloads are arbitrary bytes, so anything that could move
//!   the cursor, change colours or break the one-message-per-line shape
//!   (control characters, newlines, invalid UTF-8) is escaped as `\n`, `\r`,
//!   `\xHH` or `\u{HH}`; printable text, including non-ASCII, is shown as is.
//!   Text output is for people: use `json`, `hex` or `raw` for exact bytes.
//! - `json`: one object per line with `topic`, `seq`, `timestamp` (RFC 3339,
//!   UTC), `timestamp_ns`, `length`, `payload` and `base64`: the payload is a
//!   JSON string when it is valid UTF-8 (`base64: false`), else its base64
//!   (`base64: true`).
//! - `hex`: the payload as lowercase hex digits and a newline (`xxd -r -p`
//!   reads it back); `-v` puts the topic and a space first.
//! - `raw`: the payload bytes exactly, nothing added (not even with `-v`), so
//!   `shmbus sub t -c 1 --format raw > file` saves one message byte for byte.

use std::borrow::Cow;
use std::io::{self, Write};

use base64::Engine as _;

/// Output format of `shmbus sub`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Payload and newline; control characters and invalid UTF-8 escaped.
    Text,
    /// One JSON object per line (payload as string, or base64 if not UTF-8).
    Json,
    /// Payload as lowercase hex digits and newline.
    Hex,
    /// Payload bytes exactly, no separator.
    Raw,
}

/// One received message, as the formats need it.
pub struct Record<'a> {
    /// Topic it came from.
    pub topic: &'a str,
    /// Topic-wide sequence number.
    pub seq: u64,
    /// Publish time, nanoseconds since the Unix epoch.
    pub timestamp_ns: u64,
    /// Payload.
    pub data: &'a [u8],
}

/// Writes `rec` to `out` in `format`; `verbose` is `sub -v`.
pub fn write_record(
    out: &mut impl Write,
    format: Format,
    verbose: bool,
    rec: &Record<'_>,
) -> io::Result<()> {
    match format {
        Format::Text => {
            if verbose {
                out.write_all(rec.topic.as_bytes())?;
                out.write_all(b" ")?;
            }
            write_escaped(out, rec.data)?;
            out.write_all(b"\n")
        }
        Format::Hex => {
            if verbose {
                out.write_all(rec.topic.as_bytes())?;
                out.write_all(b" ")?;
            }
            write_hex(out, rec.data)?;
            out.write_all(b"\n")
        }
        Format::Raw => out.write_all(rec.data),
        Format::Json => {
            serde_json::to_writer(&mut *out, &JsonRecord::new(rec)).map_err(io::Error::from)?;
            out.write_all(b"\n")
        }
    }
}

/// The JSON object of one message (see the module doc for its fields), with
/// its keys in the order a reader expects rather than sorted.
#[derive(serde::Serialize)]
struct JsonRecord<'a> {
    topic: &'a str,
    seq: u64,
    timestamp: String,
    timestamp_ns: u64,
    length: usize,
    payload: Cow<'a, str>,
    base64: bool,
}

impl<'a> JsonRecord<'a> {
    fn new(rec: &Record<'a>) -> JsonRecord<'a> {
        let (payload, base64) = json_payload(rec.data);
        JsonRecord {
            topic: rec.topic,
            seq: rec.seq,
            timestamp: crate::timestamp::rfc3339(rec.timestamp_ns),
            timestamp_ns: rec.timestamp_ns,
            length: rec.data.len(),
            payload,
            base64,
        }
    }
}

/// A payload as a JSON string field: the text itself when it is valid UTF-8
/// (`false`), else its base64 (`true`, the value of the `base64` field).
pub fn json_payload(data: &[u8]) -> (Cow<'_, str>, bool) {
    match std::str::from_utf8(data) {
        Ok(text) => (Cow::Borrowed(text), false),
        Err(_) => (
            Cow::Owned(base64::engine::general_purpose::STANDARD.encode(data)),
            true,
        ),
    }
}

/// Writes `data` as text a terminal shows faithfully and safely.
pub fn write_escaped(out: &mut impl Write, data: &[u8]) -> io::Result<()> {
    for chunk in data.utf8_chunks() {
        let valid = chunk.valid();
        let mut start = 0;
        for (i, c) in valid.char_indices() {
            let escaped = match c {
                '\t' => continue,
                '\n' => "\\n".to_owned(),
                '\r' => "\\r".to_owned(),
                c if (c as u32) < 0x20 || c == '\u{7f}' => format!("\\x{:02x}", c as u32),
                // C1 controls (U+0080..U+009F): some terminals act on them.
                c if c.is_control() => format!("\\u{{{:x}}}", c as u32),
                _ => continue,
            };
            out.write_all(&valid.as_bytes()[start..i])?;
            out.write_all(escaped.as_bytes())?;
            start = i + c.len_utf8();
        }
        out.write_all(&valid.as_bytes()[start..])?;
        for byte in chunk.invalid() {
            write!(out, "\\x{byte:02x}")?;
        }
    }
    Ok(())
}

/// Writes `data` as lowercase hex digits.
pub fn write_hex(out: &mut impl Write, data: &[u8]) -> io::Result<()> {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 512];
    for chunk in data.chunks(buf.len() / 2) {
        for (i, byte) in chunk.iter().enumerate() {
            buf[2 * i] = DIGITS[usize::from(byte >> 4)];
            buf[2 * i + 1] = DIGITS[usize::from(byte & 0xf)];
        }
        out.write_all(&buf[..2 * chunk.len()])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(format: Format, verbose: bool, data: &[u8]) -> Vec<u8> {
        let rec = Record {
            topic: "a/b",
            seq: 7,
            timestamp_ns: 1_764_062_340_123_456_789,
            data,
        };
        let mut out = Vec::new();
        write_record(&mut out, format, verbose, &rec).unwrap();
        out
    }

    fn text(data: &[u8]) -> String {
        String::from_utf8(render(Format::Text, false, data)).unwrap()
    }

    #[test]
    fn text_passes_printable_text() {
        assert_eq!(text(b"hello world"), "hello world\n");
        assert_eq!(
            text("grüße ☃ \\x41\ttab".as_bytes()),
            "grüße ☃ \\x41\ttab\n"
        );
        assert_eq!(text(b""), "\n");
        assert_eq!(
            String::from_utf8(render(Format::Text, true, b"hi")).unwrap(),
            "a/b hi\n"
        );
    }

    #[test]
    fn text_escapes_what_would_harm_a_terminal() {
        assert_eq!(
            text(b"a\nb\r\x1b[2J\x07\x00\x7f"),
            "a\\nb\\r\\x1b[2J\\x07\\x00\\x7f\n"
        );
        assert_eq!(text("x\u{9b}y".as_bytes()), "x\\u{9b}y\n");
        assert_eq!(text(b"ok\xff\xfeok\xc3"), "ok\\xff\\xfeok\\xc3\n");
    }

    #[test]
    fn text_of_every_byte_is_one_printable_line() {
        let all: Vec<u8> = (0..=255u8).collect();
        let out = render(Format::Text, false, &all);
        assert_eq!(out.last(), Some(&b'\n'));
        let body = &out[..out.len() - 1];
        assert!(
            body.iter()
                .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b)),
            "{}",
            String::from_utf8_lossy(body)
        );
    }

    #[test]
    fn hex_round_trips() {
        let all: Vec<u8> = (0..=255u8).rev().cycle().take(1000).collect();
        let out = String::from_utf8(render(Format::Hex, false, &all)).unwrap();
        let digits = out.strip_suffix('\n').unwrap();
        let back: Vec<u8> = (0..digits.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap())
            .collect();
        assert_eq!(back, all);
        assert_eq!(render(Format::Hex, true, b"\x00\xab"), b"a/b 00ab\n");
        assert_eq!(render(Format::Hex, false, b""), b"\n");
    }

    #[test]
    fn raw_is_exact() {
        let all: Vec<u8> = (0..=255u8).collect();
        assert_eq!(render(Format::Raw, false, &all), all);
        assert_eq!(render(Format::Raw, true, b"x"), b"x");
    }

    #[test]
    fn json_text_and_binary() {
        let line = render(Format::Json, false, "héllo\n".as_bytes());
        assert_eq!(line.last(), Some(&b'\n'));
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["topic"], "a/b");
        assert_eq!(v["seq"], 7);
        assert_eq!(v["timestamp"], "2025-11-25T09:19:00.123456789Z");
        assert_eq!(v["timestamp_ns"], 1_764_062_340_123_456_789u64);
        assert_eq!(v["length"], 7);
        assert_eq!(v["payload"], "héllo\n");
        assert_eq!(v["base64"], false);
        let text = String::from_utf8(line).unwrap();
        assert!(
            text.starts_with(r#"{"topic":"a/b","seq":7,"timestamp":"#),
            "keys in reading order: {text}"
        );

        let all: Vec<u8> = (0..=255u8).collect();
        let v: serde_json::Value =
            serde_json::from_slice(&render(Format::Json, true, &all)).unwrap();
        assert_eq!(v["base64"], true);
        assert_eq!(v["length"], 256);
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(v["payload"].as_str().unwrap())
            .unwrap();
        assert_eq!(decoded, all);
    }
}
