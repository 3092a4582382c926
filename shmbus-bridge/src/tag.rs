//! The origin tag a bridge attaches to every sample it exports (the Zenoh
//! attachment), how an importer reads it, and where the origin comes from.
//!
//! ```text
//!  0        4                12               20               28               36
//!  +--------+----------------+----------------+----------------+----------------+
//!  | "shb2" | origin (u64 LE)| instance (LE)  | count (u64 LE) | seq (u64 LE)   |
//!  +--------+----------------+----------------+----------------+----------------+
//! ```
//!
//! * `origin` — stable per (host, bus): see [`stable_origin`]. A bridge
//!   never imports a sample of its own origin (its own bus's messages coming
//!   back), and an importer recognises a restarted exporter as the same
//!   source, so the messages published while it was down count as loss.
//! * `instance` — random per bridge process: tells a restart (a new
//!   instance of the same origin, whose count starts again) from a count
//!   going backwards.
//! * `count` — the instance's running number of messages of this topic:
//!   +1 per message sent, +n after a local `Lagged(n)`. Within one instance
//!   a jump of more than one is exactly the number of messages lost on the
//!   way (network, or the exporter's own lag). The sequence number cannot
//!   serve for this: a slot abandoned by a dead publisher, or an imported
//!   message the exporter does not send back, also advances it.
//! * `seq` — the message's sequence number on the exporting bus. Across a
//!   restart (new instance) it is all there is: the gap between the last
//!   sequence number of the old instance and the first of the new one is
//!   counted as lost (see [`crate::gaps`]).

/// Bytes of an encoded tag.
pub const TAG_LEN: usize = 36;
const MAGIC: &[u8; 4] = b"shb2";

/// The origin and position of one exported message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tag {
    /// The exporting bus's stable id ([`stable_origin`]).
    pub origin: u64,
    /// The exporting bridge process's random id.
    pub instance: u64,
    /// The instance's running message number for this topic.
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
        out[12..20].copy_from_slice(&self.instance.to_le_bytes());
        out[20..28].copy_from_slice(&self.count.to_le_bytes());
        out[28..36].copy_from_slice(&self.seq.to_le_bytes());
        out
    }

    /// Reads a tag; `None` when the bytes are not one (another program's
    /// attachment, or damage).
    pub fn decode(bytes: &[u8]) -> Option<Tag> {
        if bytes.len() != TAG_LEN || &bytes[0..4] != MAGIC {
            return None;
        }
        let word = |at| le_u64(bytes, at);
        Some(Tag {
            origin: word(4),
            instance: word(12),
            count: word(20),
            seq: word(28),
        })
    }
}

/// Bytes of an encoded frame tag.
pub const FRAME_TAG_LEN: usize = 48;
const FRAME_MAGIC: &[u8; 4] = b"shF1";
/// Bytes before each message in a frame's payload: its length (u32 LE).
pub const RECORD_HEADER: usize = 4;

/// The attachment of a **frame**: several consecutive messages of one topic
/// in one Zenoh sample (`--batch`). The payload is the messages, each
/// preceded by its length:
///
/// ```text
///  attachment (48 bytes)
///  0        4         12          20        28          36          44    48
///  +--------+---------+-----------+---------+-----------+-----------+-----+
///  | "shF1" | origin  | instance  | count   | first_seq | last_seq  |  n  |
///  +--------+---------+-----------+---------+-----------+-----------+-----+
///            u64 LE    u64 LE      u64 LE    u64 LE      u64 LE      u32 LE
///
///  payload: n records   [len: u32 LE][len bytes] [len][bytes] ...
/// ```
///
/// The messages carry the counts `count .. count + n` (consecutive: the
/// exporter ends a frame at a gap) and lie between the exporting bus's
/// sequence numbers `first_seq` and `last_seq` (not necessarily
/// consecutive: messages the exporter skips, or abandoned slots, advance
/// them too).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameTag {
    /// The exporting bus's stable id ([`stable_origin`]).
    pub origin: u64,
    /// The exporting bridge process's random id.
    pub instance: u64,
    /// The running number of the frame's first message.
    pub count: u64,
    /// The exporting bus's sequence number of the first message.
    pub first_seq: u64,
    /// The exporting bus's sequence number of the last message.
    pub last_seq: u64,
    /// Messages in the frame (at least one).
    pub n: u32,
}

impl FrameTag {
    /// The attachment bytes.
    pub fn encode(&self) -> [u8; FRAME_TAG_LEN] {
        let mut out = [0u8; FRAME_TAG_LEN];
        out[0..4].copy_from_slice(FRAME_MAGIC);
        out[4..12].copy_from_slice(&self.origin.to_le_bytes());
        out[12..20].copy_from_slice(&self.instance.to_le_bytes());
        out[20..28].copy_from_slice(&self.count.to_le_bytes());
        out[28..36].copy_from_slice(&self.first_seq.to_le_bytes());
        out[36..44].copy_from_slice(&self.last_seq.to_le_bytes());
        out[44..48].copy_from_slice(&self.n.to_le_bytes());
        out
    }

    /// Reads a frame tag; `None` when the bytes are not one, or say
    /// something impossible (no message, sequence numbers backwards, a
    /// count that would overflow).
    pub fn decode(bytes: &[u8]) -> Option<FrameTag> {
        if bytes.len() != FRAME_TAG_LEN || &bytes[0..4] != FRAME_MAGIC {
            return None;
        }
        let word = |at| le_u64(bytes, at);
        let t = FrameTag {
            origin: word(4),
            instance: word(12),
            count: word(20),
            first_seq: word(28),
            last_seq: word(36),
            n: le_u32(bytes, 44),
        };
        let sane = t.n > 0
            && t.first_seq <= t.last_seq
            && t.last_seq - t.first_seq >= u64::from(t.n) - 1
            && t.count.checked_add(u64::from(t.n)).is_some();
        sane.then_some(t)
    }

    /// The count of the frame's last message.
    pub fn last_count(&self) -> u64 {
        self.count + u64::from(self.n) - 1
    }
}

/// What a sample's attachment says it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attachment {
    /// One message exported by a bridge.
    Single(Tag),
    /// A frame of messages exported by a bridge in `--batch` mode.
    Frame(FrameTag),
    /// A frame tag that says something impossible (no message, sequence
    /// numbers backwards, a wrong length): damage; the sample is refused.
    BadFrame,
    /// No attachment: a plain Zenoh publisher's sample, one message.
    None,
    /// An attachment that is neither: damage, or another program's.
    Unknown,
}

impl Attachment {
    /// Classifies the attachment bytes (`None` when there are none).
    pub fn classify(bytes: Option<&[u8]>) -> Attachment {
        match bytes {
            None => Attachment::None,
            Some(b) => match (Tag::decode(b), FrameTag::decode(b)) {
                (Some(t), _) => Attachment::Single(t),
                (None, Some(f)) => Attachment::Frame(f),
                (None, None) if b.starts_with(FRAME_MAGIC) => Attachment::BadFrame,
                (None, None) => Attachment::Unknown,
            },
        }
    }
}

/// Appends one message to a frame payload.
pub fn push_record(frame: &mut Vec<u8>, msg: &[u8]) {
    let len = u32::try_from(msg.len()).expect("a message is smaller than 4 GiB");
    frame.extend_from_slice(&len.to_le_bytes());
    frame.extend_from_slice(msg);
}

/// The messages of a frame payload: `Some` only if it holds exactly `n`
/// well-formed records and nothing after them, so that a damaged frame is
/// refused whole before any of it is published. Checking allocates
/// nothing; the messages are then read in place.
pub fn records(payload: &[u8], n: u32) -> Option<Records<'_>> {
    let mut found = 0u32;
    let mut rest = payload;
    while !rest.is_empty() {
        rest = split_record(rest)?.1;
        found = found.checked_add(1).filter(|&f| f <= n)?;
    }
    (found == n).then_some(Records {
        rest: payload,
        left: n as usize,
    })
}

/// The messages of a frame checked by [`records`], in order.
#[derive(Debug)]
pub struct Records<'a> {
    rest: &'a [u8],
    left: usize,
}

impl<'a> Iterator for Records<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let (msg, rest) = split_record(self.rest)?;
        self.rest = rest;
        self.left -= 1;
        Some(msg)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for Records<'_> {}

/// The first record of `payload` and what follows it; `None` if it is cut
/// short.
fn split_record(payload: &[u8]) -> Option<(&[u8], &[u8])> {
    let header = payload.get(..RECORD_HEADER)?;
    let len = le_u32(header, 0) as usize;
    let body = &payload[RECORD_HEADER..];
    (len <= body.len()).then(|| body.split_at(len))
}

/// The little-endian u64 at `at` (the caller checked the length).
fn le_u64(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

/// The little-endian u32 at `at` (the caller checked the length).
fn le_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

/// The origin id of bus `bus` on this host: a hash (64-bit FNV-1a, stable
/// across builds and versions) of the host's identity and the bus name.
///
/// The host's identity is `/etc/machine-id` (systemd's per-installation
/// id) *and* the host name: either alone is not enough — containers built
/// from one image often share a machine id but get their own host names,
/// and two installations may share a host name. A bus is named by its name
/// alone on a host (its segments are `/dev/shm/shmbus.BUS.*`), so every
/// bridge of one bus on one host has the same origin, whatever its
/// runtime directory or network namespace. `--origin TEXT` replaces the
/// host part when this guess is wrong (two hosts cloned with the same
/// machine id and host name).
pub fn stable_origin(bus: &str, host_override: Option<&str>) -> u64 {
    let host = match host_override {
        Some(text) => format!("override:{text}"),
        None => {
            let machine = std::fs::read_to_string("/etc/machine-id").unwrap_or_default();
            // The UTS host name, as `hostname` prints it (Linux only, like
            // the rest of shmbus).
            let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
            format!("machine:{}\nhost:{}", machine.trim(), name.trim())
        }
    };
    fnv1a(format!("shmbus-bridge origin v1\n{host}\nbus:{bus}").as_bytes())
}

/// 64-bit FNV-1a: tiny and fixed forever, unlike std's `DefaultHasher`,
/// whose output may change between Rust releases (the origin must survive
/// an upgrade of the bridge).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A random instance id for this bridge process, from the kernel's entropy
/// pool (`/dev/urandom`), mixed with the pid so two processes cannot share
/// it even if the read failed.
pub fn random_instance() -> u64 {
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
            instance: 7,
            count: 42,
            seq: u64::MAX,
        };
        assert_eq!(Tag::decode(&t.encode()), Some(t));
        assert_eq!(Tag::decode(&t.encode()[..35]), None);
        let mut bad = t.encode();
        bad[0] = b'x';
        assert_eq!(Tag::decode(&bad), None);
        assert_eq!(Tag::decode(b""), None);
    }

    #[test]
    fn frames_round_trip_and_damage_is_refused() {
        let t = FrameTag {
            origin: 1,
            instance: 2,
            count: 10,
            first_seq: 100,
            last_seq: 103,
            n: 3,
        };
        assert_eq!(FrameTag::decode(&t.encode()), Some(t));
        assert_eq!(t.last_count(), 12);
        assert_eq!(
            Attachment::classify(Some(&t.encode())),
            Attachment::Frame(t)
        );
        assert_eq!(Attachment::classify(None), Attachment::None);
        assert_eq!(Attachment::classify(Some(b"junk")), Attachment::Unknown);
        // Impossible headers: no message, sequence numbers backwards or too
        // close for n messages, a count that overflows.
        for bad in [
            FrameTag { n: 0, ..t },
            FrameTag { last_seq: 99, ..t },
            FrameTag { last_seq: 101, ..t },
            FrameTag {
                count: u64::MAX - 1,
                ..t
            },
        ] {
            assert_eq!(FrameTag::decode(&bad.encode()), None, "{bad:?}");
            assert_eq!(
                Attachment::classify(Some(&bad.encode())),
                Attachment::BadFrame
            );
        }
        assert_eq!(
            Attachment::classify(Some(&t.encode()[..47])),
            Attachment::BadFrame
        );

        let mut frame = Vec::new();
        for m in [&b"ab"[..], b"", b"xyz"] {
            push_record(&mut frame, m);
        }
        let msgs: Vec<&[u8]> = records(&frame, 3).expect("well formed").collect();
        assert_eq!(msgs, [&b"ab"[..], b"", b"xyz"]);
        // Wrong count, truncated, trailing bytes, a length past the end.
        assert!(records(&frame, 2).is_none());
        assert!(records(&frame, 4).is_none());
        assert!(records(&frame[..frame.len() - 1], 3).is_none());
        let mut longer = frame.clone();
        longer.push(0);
        assert!(records(&longer, 3).is_none());
        assert!(records(&[255, 255, 255, 255, 1], 1).is_none());
        assert_eq!(records(&[], 0).expect("empty").count(), 0);
    }

    proptest::proptest! {
        /// Any list of messages survives a frame exactly.
        #[test]
        fn frames_carry_any_messages(msgs in proptest::collection::vec(
            proptest::collection::vec(proptest::num::u8::ANY, 0..300), 1..40)) {
            let mut frame = Vec::new();
            for m in &msgs {
                push_record(&mut frame, m);
            }
            let r = records(&frame, msgs.len() as u32).expect("well formed");
            let back: Vec<Vec<u8>> = r.map(<[u8]>::to_vec).collect();
            proptest::prop_assert_eq!(back, msgs);
        }

        /// Hostile bytes (a frame is read from the network): no panic, and
        /// whatever is accepted lies inside the payload and covers all of it.
        #[test]
        fn hostile_frames_are_refused_or_in_bounds(
            payload in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
            n in 0u32..8,
            tag in proptest::collection::vec(proptest::num::u8::ANY, FRAME_TAG_LEN),
        ) {
            if let Some(r) = records(&payload, n) {
                proptest::prop_assert_eq!(r.len(), n as usize);
                let msgs: Vec<&[u8]> = r.collect();
                proptest::prop_assert_eq!(msgs.len(), n as usize);
                let covered: usize = msgs.iter().map(|m| RECORD_HEADER + m.len()).sum();
                proptest::prop_assert_eq!(covered, payload.len());
                let inside = payload.as_ptr_range();
                let within = |m: &&[u8]| {
                    let r = m.as_ptr_range();
                    inside.start <= r.start && r.end <= inside.end
                };
                proptest::prop_assert!(msgs.iter().all(within));
            }
            let mut tag = tag;
            tag[0..4].copy_from_slice(FRAME_MAGIC);
            if let Some(t) = FrameTag::decode(&tag) {
                proptest::prop_assert!(t.n > 0 && t.last_count() >= t.count);
            }
        }
    }

    #[test]
    fn instances_differ_origins_are_stable_per_bus() {
        assert_ne!(random_instance(), random_instance());
        assert_eq!(stable_origin("a", None), stable_origin("a", None));
        assert_ne!(stable_origin("a", None), stable_origin("b", None));
        assert_ne!(stable_origin("a", None), stable_origin("a", Some("x")));
        assert_eq!(stable_origin("a", Some("x")), stable_origin("a", Some("x")));
        // FNV-1a's published test vector: the hash never changes.
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
