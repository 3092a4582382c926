//! The memory layout of a topic's two segments — an interface between
//! processes, so it is drawn here, bit-exact, next to the constants and the
//! structs that define it. Everything else asks this module for offsets.
//!
//! A topic is two POSIX shared-memory objects. Publishers write the *data*
//! segment; subscribers map it read-only and write only the *subs* segment
//! (SPEC §8: a subscriber cannot forge or corrupt messages for others).
//!
//! ```text
//! DATA segment  /dev/shm/shmbus.<bus>.<topic>.data     (publishers: rw, subscribers: r)
//! +--------+---------------------------------------------------------------+
//! | 0      | magic "SHMBUS\0D" u64 | version u32 | part=1 u32               |
//! | 16     | segment_size u64      | capacity u64                           |
//! | 32     | max_msg_size u32 | slot_stride u32 | policy u32 | max_pubs u32  |
//! | 48     | max_subs u32 | topic_len u32 | nonce u64                       |
//! | 64     | topic [u8; 128]                                                |
//! | 192    | created_ns u64                                                 |
//! | 256    | closed u32                      (own 128-byte line)            |
//! | 384    | tail u64: next sequence to claim (own 128-byte line)           |
//! | 512    | blocked u64 | abandoned u64 | reaped_pubs u64                 |
//! | ...    | (zero up to 4096)                                              |
//! +--------+---------------------------------------------------------------+
//! | 4096   | PubEntry[max_pubs], 128 bytes each:                           |
//! |        |   state u32 | pid u32 | inflight u64 | published u64 |         |
//! |        |   blocked u64 | waiting u32                                   |
//! |        |   (byte 0 of each entry is also its OFD liveness-lock byte)   |
//! +--------+---------------------------------------------------------------+
//! | slots  | Slot[capacity], slot_stride bytes each (slots = page-aligned)  |
//! |        |   +0  stamp u64 = seq << 2 | state (EMPTY/WRITING/COMMITTED/  |
//! |        |                                    ABANDONED)                  |
//! |        |   +8  len u32 | flags u32                                     |
//! |        |   +16 timestamp_ns u64                                         |
//! |        |   +64 payload [u8; max_msg_size rounded up to 64]             |
//! +--------+---------------------------------------------------------------+
//!
//! SUBS segment  /dev/shm/shmbus.<bus>.<topic>.subs     (everyone: rw)
//! +--------+---------------------------------------------------------------+
//! | 0      | magic "SHMBUS\0S" u64 | version u32 | part=2 u32               |
//! | 16     | segment_size u64      | max_subs u32 | _ u32                  |
//! | 32     | nonce u64 (equals the data segment's: the two belong together)|
//! | 256    | data_ready: EventCount (seq u32)               own line       |
//! | 384    | space_ready: EventCount                        own line       |
//! | 512    | reaped_subs u64                                               |
//! | ...    | (zero up to 4096)                                              |
//! +--------+---------------------------------------------------------------+
//! | 4096   | SubEntry[max_subs], 128 bytes each:                           |
//! |        |   state u32 | pid u32 | cursor u64 | delivered u64 | lost u64 |
//! |        |   waiting u32 | _ u32 | abandoned u64                         |
//! |        |   (byte 0 of each entry is also its OFD liveness-lock byte)   |
//! +--------+---------------------------------------------------------------+
//! ```
//!
//! Every field that one process writes and others poll sits on its own
//! 128-byte stretch (two cache lines, against the adjacent-line prefetcher),
//! so a publisher's tail, a subscriber's cursor and the wake words never
//! share a line. All integers are native-endian: a segment never leaves the
//! host.
//!
//! The header's sizes are read once, validated against each other and against
//! the file size, and kept in a private [`Geometry`]; nothing later re-reads
//! them from shared memory.

use crate::error::{Error, Result};
use crate::eventcount::EventCount;
use crate::sync::{AtomicU32, AtomicU64};

/// Magic of the data segment: `b"SHMBUS\0D"`.
pub const DATA_MAGIC: u64 = u64::from_le_bytes(*b"SHMBUS\0D");
/// Magic of the subs segment: `b"SHMBUS\0S"`.
pub const SUBS_MAGIC: u64 = u64::from_le_bytes(*b"SHMBUS\0S");
/// Layout version; bumped on any incompatible change.
pub const VERSION: u32 = 2;
/// Size of each segment's header area, and the page alignment used.
pub const HEADER_SIZE: usize = 4096;
/// Spacing between independently written fields.
pub const LINE: usize = 128;
/// Size of one publisher or subscriber entry.
pub const ENTRY_SIZE: usize = 128;
/// Size of a slot's header; the payload follows it.
pub const SLOT_HEADER_SIZE: usize = 64;

/// Largest capacity of a topic (slots).
pub const MAX_CAPACITY: u64 = 1 << 24;
/// Largest `max_msg_size`.
pub const MAX_MSG_SIZE: u32 = 64 << 20;
/// Largest number of publishers or subscribers of one topic.
pub const MAX_CLIENTS: u32 = 4096;
/// Largest total size of one data segment.
pub const MAX_SEGMENT_SIZE: u64 = 64 << 30;

/// Value of an entry's `state` when nobody holds it.
pub const ENTRY_FREE: u32 = 0;
/// Value of an entry's `state` while a live client holds it.
pub const ENTRY_ACTIVE: u32 = 1;
/// Value of an entry's `state` while it is being given up: by its owner
/// mid-detach (between taking itself out of the gate and waking the
/// publishers that waited on it) or by a reaper (between taking a dead
/// entry out of the rival checks and freeing it). A retiring entry gates
/// nobody and is nobody's rival; whoever next wins its lock finishes the
/// job, so a death at any step of a detach or a reap is repaired by the
/// next reap (`ring.rs`, *Dying at any step*).
pub const ENTRY_RETIRING: u32 = 2;

/// `inflight` of a publisher entry that holds no claimed sequence.
pub const NO_SEQ: u64 = u64::MAX;
/// Bit of `inflight` set once the publisher has *won* the claim of the
/// sequence in the low bits (after its CAS on `tail`); without it the value
/// is only an intent, which a lost CAS leaves stale. Sequences stay below
/// [`MAX_SEQ`] `< CLAIMED`, so the bit never collides with one.
pub const CLAIMED: u64 = 1 << 62;

/// Slot states, the low two bits of a stamp.
pub mod stamp {
    /// Never written (only the all-zero stamp of the first lap).
    pub const EMPTY: u64 = 0;
    /// A publisher is writing the slot for the stamp's sequence.
    pub const WRITING: u64 = 1;
    /// The message of the stamp's sequence is complete.
    pub const COMMITTED: u64 = 2;
    /// The stamp's sequence was claimed and will never be committed (its
    /// publisher died, or dropped a loan). Subscribers skip it.
    pub const ABANDONED: u64 = 3;

    /// Packs a sequence and a state into a stamp.
    #[inline]
    pub const fn pack(seq: u64, state: u64) -> u64 {
        (seq << 2) | state
    }
    /// The sequence of a stamp.
    #[inline]
    pub const fn seq(stamp: u64) -> u64 {
        stamp >> 2
    }
    /// The state of a stamp.
    #[inline]
    pub const fn state(stamp: u64) -> u64 {
        stamp & 3
    }
}

/// Largest sequence number a stamp can carry.
pub const MAX_SEQ: u64 = (1 << 62) - 1;

/// Overflow policy of a topic. With the `clap` feature it is a
/// `clap::ValueEnum` (`block`, `drop-oldest`), so a command line takes it as
/// it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// Lossless: a publisher never overwrites what a live subscriber has not
    /// read; it waits or gets `Full`.
    Block,
    /// Publishers never wait; a subscriber a whole ring behind is told how
    /// many messages it lost.
    DropOldest,
}

impl Policy {
    pub(crate) fn to_raw(self) -> u32 {
        match self {
            Policy::Block => 1,
            Policy::DropOldest => 2,
        }
    }
    fn from_raw(raw: u32) -> Option<Policy> {
        match raw {
            1 => Some(Policy::Block),
            2 => Some(Policy::DropOldest),
            _ => None,
        }
    }
}

impl std::fmt::Display for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Policy::Block => "block",
            Policy::DropOldest => "drop-oldest",
        })
    }
}

impl std::str::FromStr for Policy {
    type Err = Error;
    fn from_str(s: &str) -> Result<Policy> {
        match s {
            "block" => Ok(Policy::Block),
            "drop-oldest" | "drop_oldest" => Ok(Policy::DropOldest),
            _ => Err(Error::InvalidConfig(format!(
                "unknown policy `{}`: use `block` or `drop-oldest`",
                s.escape_default()
            ))),
        }
    }
}

/// Settings of a topic, fixed at creation.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TopicConfig {
    /// Number of slots; a power of two.
    pub capacity: u64,
    /// Largest message, in bytes.
    pub max_msg_size: u32,
    /// What happens when the ring is full.
    pub policy: Policy,
    /// How many publishers may be attached at once.
    pub max_publishers: u32,
    /// How many subscribers may be attached at once.
    pub max_subscribers: u32,
}

impl Default for TopicConfig {
    fn default() -> Self {
        TopicConfig {
            capacity: 1024,
            max_msg_size: 4096,
            policy: Policy::Block,
            max_publishers: 64,
            max_subscribers: 64,
        }
    }
}

impl TopicConfig {
    /// Checks every setting; the error names the rule broken.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidConfig(m));
        if self.capacity < 2 || !self.capacity.is_power_of_two() || self.capacity > MAX_CAPACITY {
            return bad(format!(
                "capacity {} must be a power of two between 2 and {MAX_CAPACITY}",
                self.capacity
            ));
        }
        if self.max_msg_size == 0 || self.max_msg_size > MAX_MSG_SIZE {
            return bad(format!(
                "max message size {} must be between 1 and {MAX_MSG_SIZE} bytes",
                self.max_msg_size
            ));
        }
        for (what, n) in [
            ("max_publishers", self.max_publishers),
            ("max_subscribers", self.max_subscribers),
        ] {
            if n == 0 || n > MAX_CLIENTS {
                return bad(format!("{what} {n} must be between 1 and {MAX_CLIENTS}"));
            }
        }
        let total = self.data_segment_size();
        if total > MAX_SEGMENT_SIZE {
            return bad(format!(
                "capacity × slot size is {total} bytes, over the limit of {MAX_SEGMENT_SIZE}: lower capacity or max message size"
            ));
        }
        Ok(())
    }

    /// Bytes of one slot: header plus payload rounded up to 64.
    pub fn slot_stride(&self) -> u64 {
        SLOT_HEADER_SIZE as u64 + u64::from(self.max_msg_size).div_ceil(64) * 64
    }

    /// Offset of the first slot in the data segment.
    pub fn slots_offset(&self) -> u64 {
        page_align(HEADER_SIZE as u64 + u64::from(self.max_publishers) * ENTRY_SIZE as u64)
    }

    /// Size of the data segment.
    pub fn data_segment_size(&self) -> u64 {
        self.slots_offset()
            .saturating_add(self.capacity.saturating_mul(self.slot_stride()))
    }

    /// Size of the subs segment.
    pub fn subs_segment_size(&self) -> u64 {
        HEADER_SIZE as u64 + page_align(u64::from(self.max_subscribers) * ENTRY_SIZE as u64)
    }

    /// Memory the topic reserves in /dev/shm.
    pub fn memory_bytes(&self) -> u64 {
        self.data_segment_size() + self.subs_segment_size()
    }
}

fn page_align(n: u64) -> u64 {
    n.div_ceil(HEADER_SIZE as u64) * HEADER_SIZE as u64
}

/// The validated shape of a topic, copied out of shared memory once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Settings.
    pub config: TopicConfig,
    /// `capacity - 1`.
    pub mask: u64,
    /// Bytes per slot.
    pub stride: usize,
    /// Offset of slot 0 in the data segment.
    pub slots_offset: usize,
    /// Size of the data segment.
    pub data_size: usize,
    /// Size of the subs segment.
    pub subs_size: usize,
    /// Ties the two segments of one topic together.
    pub nonce: u64,
}

impl Geometry {
    /// The geometry of a new topic.
    pub fn new(config: &TopicConfig, nonce: u64) -> Result<Geometry> {
        config.validate()?;
        Ok(Geometry {
            config: config.clone(),
            mask: config.capacity - 1,
            stride: config.slot_stride() as usize,
            slots_offset: config.slots_offset() as usize,
            data_size: config.data_segment_size() as usize,
            subs_size: config.subs_segment_size() as usize,
            nonce,
        })
    }

    /// Capacity in slots.
    #[inline]
    pub fn capacity(&self) -> u64 {
        self.config.capacity
    }

    /// Offset of the slot that holds `seq`.
    #[inline]
    pub fn slot_offset(&self, seq: u64) -> usize {
        self.slots_offset + (seq & self.mask) as usize * self.stride
    }

    /// Offset of publisher entry `i` (also its lock byte).
    #[inline]
    pub fn pub_entry_offset(i: u32) -> usize {
        HEADER_SIZE + i as usize * ENTRY_SIZE
    }

    /// Offset of subscriber entry `i` in the subs segment (also its lock byte).
    #[inline]
    pub fn sub_entry_offset(i: u32) -> usize {
        HEADER_SIZE + i as usize * ENTRY_SIZE
    }
}

/// The immutable part of the data segment's header.
#[repr(C)]
pub struct DataHeader {
    /// [`DATA_MAGIC`], written last at creation.
    pub magic: AtomicU64,
    /// [`VERSION`].
    pub version: u32,
    /// 1 = data.
    pub part: u32,
    /// Total bytes of the segment.
    pub segment_size: u64,
    /// Slots.
    pub capacity: u64,
    /// Largest message.
    pub max_msg_size: u32,
    /// Bytes per slot.
    pub slot_stride: u32,
    /// 1 = block, 2 = drop-oldest.
    pub policy: u32,
    /// Publisher entries.
    pub max_publishers: u32,
    /// Subscriber entries (in the subs segment).
    pub max_subscribers: u32,
    /// Bytes of `topic` in use.
    pub topic_len: u32,
    /// Random; equal in both segments of one topic.
    pub nonce: u64,
    /// Topic name, for adoption after a restart.
    pub topic: [u8; 128],
    /// Creation time, ns since the epoch.
    pub created_ns: u64,
}

/// The mutable, publisher-written part of the data segment's header.
#[repr(C)]
pub struct DataShared {
    /// Non-zero once the topic is closed; never cleared.
    pub closed: AtomicU32,
    _pad0: [u8; LINE - 4],
    /// Next sequence number to claim; publishers CAS it forward.
    pub tail: AtomicU64,
    _pad1: [u8; LINE - 8],
    /// Publishes that found the ring full (waited or failed).
    pub blocked: AtomicU64,
    /// Slots abandoned (dead publishers, dropped loans).
    pub abandoned: AtomicU64,
    /// Publishers reclaimed after their process died.
    pub reaped_publishers: AtomicU64,
}

/// Offset of [`DataShared`] in the data segment.
pub const DATA_SHARED_OFFSET: usize = 256;

/// One publisher's entry in the data segment.
#[repr(C)]
pub struct PubEntry {
    /// [`ENTRY_FREE`], [`ENTRY_ACTIVE`] or [`ENTRY_RETIRING`]; changed only
    /// under the entry's OFD lock.
    pub state: AtomicU32,
    /// Owner's pid, for humans (liveness is the lock, not the pid).
    pub pid: AtomicU32,
    /// The sequence this publisher is claiming or writing, else [`NO_SEQ`].
    /// Stored *before* the claim (an intent), then marked [`CLAIMED`] once
    /// the claim is won, so the reaper can finish a dead claim and tell it
    /// from a stale intent.
    pub inflight: AtomicU64,
    /// Messages committed by this publisher.
    pub published: AtomicU64,
    /// Publishes that found the ring full.
    pub blocked: AtomicU64,
    /// 1 while announced as a waiter of `space_ready`.
    pub waiting: AtomicU32,
}

/// One slot's header; the payload follows at [`SLOT_HEADER_SIZE`].
#[repr(C)]
pub struct SlotHeader {
    /// `seq << 2 | state`: see [`stamp`]. Release-stored by the writer.
    pub stamp: AtomicU64,
    /// Payload length; written while the stamp says WRITING.
    pub len: AtomicU32,
    /// [`slot_flags`]; written while the stamp says WRITING.
    pub flags: AtomicU32,
    /// Publish time, ns since the epoch (CLOCK_REALTIME); in a loss
    /// marker ([`slot_flags::LOSS`]), the number of messages lost.
    pub timestamp_ns: AtomicU64,
}

/// Flags of a committed slot ([`SlotHeader::flags`]).
pub mod slot_flags {
    /// The slot is not a message but a loss marker: `len` is 0 and
    /// `timestamp_ns` counts messages lost before this point upstream of
    /// the ring (a bridge's remote gap). Subscribers consume it as
    /// `Err(Lagged(count))`.
    pub const LOSS: u32 = 1;
}

/// The immutable part of the subs segment's header.
#[repr(C)]
pub struct SubsHeader {
    /// [`SUBS_MAGIC`], written last at creation.
    pub magic: AtomicU64,
    /// [`VERSION`].
    pub version: u32,
    /// 2 = subs.
    pub part: u32,
    /// Total bytes of the segment.
    pub segment_size: u64,
    /// Subscriber entries.
    pub max_subscribers: u32,
    _pad: u32,
    /// Equal to the data segment's nonce.
    pub nonce: u64,
}

/// The wake words in the subs segment.
#[repr(C)]
pub struct SubsShared {
    /// Publishers notify it after a commit; subscribers wait on it.
    pub data_ready: EventCount,
    _pad0: [u8; LINE - 4],
    /// Subscribers notify it after consuming; blocked publishers wait on it.
    pub space_ready: EventCount,
    _pad1: [u8; LINE - 4],
    /// Subscribers reclaimed after their process died.
    pub reaped_subscribers: AtomicU64,
}

/// Offset of [`SubsShared`] in the subs segment.
pub const SUBS_SHARED_OFFSET: usize = 256;

/// One subscriber's entry in the subs segment.
#[repr(C)]
pub struct SubEntry {
    /// [`ENTRY_FREE`], [`ENTRY_ACTIVE`] or [`ENTRY_RETIRING`]; changed only
    /// under the entry's OFD lock.
    pub state: AtomicU32,
    /// Owner's pid, for humans.
    pub pid: AtomicU32,
    /// Next sequence this subscriber will read. Release-stored after a
    /// message is consumed; `block` publishers never claim `cursor + capacity`.
    pub cursor: AtomicU64,
    /// Messages delivered.
    pub delivered: AtomicU64,
    /// Messages lost (drop-oldest laps).
    pub lost: AtomicU64,
    /// 1 while announced as a waiter of `data_ready`.
    pub waiting: AtomicU32,
    _pad: u32,
    /// Abandoned slots skipped.
    pub abandoned: AtomicU64,
}

#[cfg(not(loom))]
mod checks {
    use super::*;
    use std::mem::{offset_of, size_of};
    const _: () = assert!(size_of::<DataHeader>() <= DATA_SHARED_OFFSET);
    const _: () = assert!(offset_of!(DataHeader, topic) == 64);
    const _: () = assert!(offset_of!(DataHeader, created_ns) == 192);
    const _: () = assert!(offset_of!(DataShared, tail) == LINE);
    const _: () = assert!(DATA_SHARED_OFFSET + size_of::<DataShared>() <= HEADER_SIZE);
    const _: () = assert!(size_of::<PubEntry>() <= ENTRY_SIZE);
    const _: () = assert!(size_of::<SubEntry>() <= ENTRY_SIZE);
    const _: () = assert!(size_of::<SlotHeader>() <= SLOT_HEADER_SIZE);
    const _: () = assert!(size_of::<SubsHeader>() <= SUBS_SHARED_OFFSET);
    const _: () = assert!(offset_of!(SubsShared, space_ready) == LINE);
    const _: () = assert!(SUBS_SHARED_OFFSET + size_of::<SubsShared>() <= HEADER_SIZE);
}

/// Validates a data segment's header (`header`: a private copy of its first
/// [`HEADER_SIZE`] bytes, `file_len`: the segment's size) and returns its
/// geometry. Refuses anything that does not fit exactly.
#[cfg(not(loom))]
pub fn read_data_header(
    segment: &str,
    header: &[u8],
    file_len: usize,
    expect_topic: &str,
) -> Result<Geometry> {
    let corrupt = |what: String| Error::corrupt(segment, what);
    if file_len < HEADER_SIZE {
        return Err(corrupt(format!(
            "{} bytes is smaller than a header ({HEADER_SIZE})",
            file_len
        )));
    }
    let u32_at = |o: usize| u32::from_ne_bytes(header[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_ne_bytes(header[o..o + 8].try_into().unwrap());
    let magic = u64_at(0);
    if magic != DATA_MAGIC {
        return Err(corrupt(format!(
            "wrong magic {magic:#018x} (not a shmbus data segment, or never finished initialising)"
        )));
    }
    let version = u32_at(8);
    if version != VERSION {
        return Err(corrupt(format!(
            "layout version {version}, this library reads version {VERSION}: use matching shmbus versions"
        )));
    }
    if u32_at(12) != 1 {
        return Err(corrupt("part is not `data`".into()));
    }
    let policy = Policy::from_raw(u32_at(40))
        .ok_or_else(|| corrupt(format!("unknown policy {}", u32_at(40))))?;
    let config = TopicConfig {
        capacity: u64_at(24),
        max_msg_size: u32_at(32),
        policy,
        max_publishers: u32_at(44),
        max_subscribers: u32_at(48),
    };
    config
        .validate()
        .map_err(|e| corrupt(format!("header settings out of range: {e}")))?;
    let geo = Geometry::new(&config, u64_at(56))?;
    if u64::from(u32_at(36)) != config.slot_stride() {
        return Err(corrupt(format!(
            "slot stride {} does not match max message size {}",
            u32_at(36),
            config.max_msg_size
        )));
    }
    let claimed = u64_at(16);
    if claimed != geo.data_size as u64 || file_len as u64 != claimed {
        return Err(corrupt(format!(
            "size mismatch: file {} bytes, header says {claimed}, settings need {}",
            file_len, geo.data_size
        )));
    }
    let topic_len = u32_at(52) as usize;
    if topic_len > 128 || &header[64..64 + topic_len] != expect_topic.as_bytes() {
        return Err(corrupt(format!(
            "header names another topic, not `{expect_topic}`"
        )));
    }
    Ok(geo)
}

/// Validates a subs segment's header (a private copy, as for
/// [`read_data_header`]) against the data segment's geometry.
#[cfg(not(loom))]
pub fn check_subs_header(
    segment: &str,
    header: &[u8],
    file_len: usize,
    geo: &Geometry,
) -> Result<()> {
    let corrupt = |what: String| Error::corrupt(segment, what);
    if file_len < HEADER_SIZE {
        return Err(corrupt(format!(
            "{} bytes is smaller than a header",
            file_len
        )));
    }
    let u32_at = |o: usize| u32::from_ne_bytes(header[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_ne_bytes(header[o..o + 8].try_into().unwrap());
    if u64_at(0) != SUBS_MAGIC {
        return Err(corrupt("wrong magic (not a shmbus subs segment)".into()));
    }
    if u32_at(8) != VERSION || u32_at(12) != 2 {
        return Err(corrupt(format!(
            "layout version {} part {}: not a version {VERSION} subs segment",
            u32_at(8),
            u32_at(12)
        )));
    }
    if u64_at(16) != geo.subs_size as u64 || file_len != geo.subs_size {
        return Err(corrupt(format!(
            "size mismatch: file {} bytes, header {}, settings need {}",
            file_len,
            u64_at(16),
            geo.subs_size
        )));
    }
    if u32_at(24) != geo.config.max_subscribers {
        return Err(corrupt(
            "max_subscribers differs from the data segment".into(),
        ));
    }
    if u64_at(32) != geo.nonce {
        return Err(corrupt(
            "belongs to another incarnation of the topic (nonce mismatch)".into(),
        ));
    }
    Ok(())
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// docs/design.md reproduces this module's layout diagram; keep the two
    /// equal so the design document stays true as the layout moves.
    #[test]
    fn design_doc_carries_this_diagram() {
        let design = include_str!("../../docs/design.md");
        let diagram: Vec<&str> = include_str!("layout.rs")
            .lines()
            .filter_map(|l| l.strip_prefix("//! "))
            .filter(|l| l.starts_with('|') || l.starts_with('+'))
            .collect();
        assert!(diagram.len() > 20, "the diagram is in the module doc");
        for line in diagram {
            assert!(
                design.lines().any(|d| d == line),
                "docs/design.md lacks the layout line {line:?}: copy the diagram from layout.rs"
            );
        }
    }

    #[test]
    fn config_rules_are_named() {
        let ok = TopicConfig::default();
        ok.validate().unwrap();
        let e = TopicConfig {
            capacity: 1000,
            ..ok.clone()
        }
        .validate()
        .unwrap_err();
        assert!(e.to_string().contains("power of two"), "{e}");
        let e = TopicConfig {
            max_msg_size: 0,
            ..ok.clone()
        }
        .validate()
        .unwrap_err();
        assert!(e.to_string().contains("max message size"), "{e}");
        let e = TopicConfig {
            capacity: 1 << 24,
            max_msg_size: 64 << 20,
            ..ok
        }
        .validate()
        .unwrap_err();
        assert!(e.to_string().contains("over the limit"), "{e}");
    }

    #[test]
    fn sizes_are_page_aligned() {
        let c = TopicConfig::default();
        assert_eq!(c.slots_offset() % 4096, 0);
        assert_eq!(c.slot_stride(), 64 + 4096);
        assert_eq!(c.data_segment_size(), c.slots_offset() + 1024 * (64 + 4096));
        assert_eq!(c.subs_segment_size() % 4096, 0);
    }

    #[test]
    fn policy_strings() {
        assert_eq!("block".parse::<Policy>().unwrap(), Policy::Block);
        assert_eq!("drop-oldest".parse::<Policy>().unwrap(), Policy::DropOldest);
        assert!("x".parse::<Policy>().is_err());
        assert_eq!(Policy::DropOldest.to_string(), "drop-oldest");
    }
}

macro_rules! zeroed_ctor {
    ($($t:ident { $($f:ident : $v:expr),* $(,)? })*) => {$(
        impl $t {
            /// An all-zero value (what a fresh mapping holds); for heap models.
            #[allow(dead_code)]
            pub(crate) fn zeroed() -> $t {
                $t { $($f: $v),* }
            }
        }
    )*};
}

zeroed_ctor! {
    DataShared {
        closed: AtomicU32::new(0), _pad0: [0; LINE - 4],
        tail: AtomicU64::new(0), _pad1: [0; LINE - 8],
        blocked: AtomicU64::new(0), abandoned: AtomicU64::new(0),
        reaped_publishers: AtomicU64::new(0),
    }
    SubsShared {
        data_ready: EventCount::new(), _pad0: [0; LINE - 4],
        space_ready: EventCount::new(), _pad1: [0; LINE - 4],
        reaped_subscribers: AtomicU64::new(0),
    }
    PubEntry {
        state: AtomicU32::new(0), pid: AtomicU32::new(0), inflight: AtomicU64::new(0),
        published: AtomicU64::new(0), blocked: AtomicU64::new(0), waiting: AtomicU32::new(0),
    }
    SubEntry {
        state: AtomicU32::new(0), pid: AtomicU32::new(0), cursor: AtomicU64::new(0),
        delivered: AtomicU64::new(0), lost: AtomicU64::new(0), waiting: AtomicU32::new(0),
        _pad: 0, abandoned: AtomicU64::new(0),
    }
    SlotHeader {
        stamp: AtomicU64::new(0), len: AtomicU32::new(0), flags: AtomicU32::new(0), timestamp_ns: AtomicU64::new(0),
    }
}
