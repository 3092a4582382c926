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
        let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        Some(Tag {
            origin: word(4),
            instance: word(12),
            count: word(20),
            seq: word(28),
        })
    }
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
