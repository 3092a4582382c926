//! The origin tag a bridge attaches to every sample it exports (the Zenoh
//! attachment), and how an importer reads it.
//!
//! ```text
//!  0        4                12               20               28
//!  +--------+----------------+----------------+----------------+
//!  | "shb1" | origin (u64 LE)| count (u64 LE) | seq (u64 LE)   |
//!  +--------+----------------+----------------+----------------+
//! ```
//!
//! * `origin` — random per bridge process (one process serves one bus), so
//!   a bridge recognises its own samples and never imports them.
//! * `count` — the exporter's running number of messages of this topic:
//!   +1 per message sent, +n after a local `Lagged(n)`. An importer that
//!   sees `count` jump by more than one knows exactly how many messages were
//!   lost on the way (network, or the exporter's own lag). The local
//!   sequence number cannot serve for this: a slot abandoned by a dead
//!   publisher also advances it, and that is not a loss.
//! * `seq` — the message's sequence number on the exporting bus, for logs.

/// Bytes of an encoded tag.
pub const TAG_LEN: usize = 28;
const MAGIC: &[u8; 4] = b"shb1";

/// The origin and position of one exported message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tag {
    /// The exporting bridge's random id.
    pub origin: u64,
    /// The exporter's running message number for this topic.
    pub count: u64,
    /// The sequence number on the exporting bus.
    pub seq: u64,
}

impl Tag {
    /// The attachment bytes.
    pub fn encode(&self) -> [u8; TAG_LEN] {
        let mut out = [0u8; TAG_LEN];
        out[0..4].copy_from_slice(MAGIC);
        out[4..12].copy_from_slice(&self.origin.to_le_bytes());
        out[12..20].copy_from_slice(&self.count.to_le_bytes());
        out[20..28].copy_from_slice(&self.seq.to_le_bytes());
        out
    }

    /// Reads a tag; `None` when the bytes are not one (another program's
    /// attachment, or damage).
    pub fn decode(bytes: &[u8]) -> Option<Tag> {
        if bytes.len() != TAG_LEN || &bytes[0..4] != MAGIC {
            return None;
        }
        let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        Some(Tag {
            origin: word(4),
            count: word(12),
            seq: word(20),
        })
    }
}

/// A random origin id for this bridge process, from the kernel's entropy
/// pool (`/dev/urandom`), mixed with the pid so two bridges cannot share it
/// even if the read failed.
pub fn random_origin() -> u64 {
    use std::io::Read;
    let mut buf = [0u8; 8];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut buf));
    let mut id = u64::from_le_bytes(buf);
    if read.is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        id = t.rotate_left(17);
    }
    id ^ u64::from(std::process::id()).rotate_left(48)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejects() {
        let t = Tag {
            origin: 0x0102_0304_0506_0708,
            count: 42,
            seq: u64::MAX,
        };
        assert_eq!(Tag::decode(&t.encode()), Some(t));
        assert_eq!(Tag::decode(&t.encode()[..27]), None);
        let mut bad = t.encode();
        bad[0] = b'x';
        assert_eq!(Tag::decode(&bad), None);
        assert_eq!(Tag::decode(b""), None);
    }

    #[test]
    fn origins_differ() {
        assert_ne!(random_origin(), random_origin());
    }
}
