//! The adversary: a process-mate that maps a topic's two segment files
//! read-write straight from `/dev/shm` and writes whatever it likes, at
//! offsets it takes from `shmbus::layout` (the one module that owns the
//! layout), plus the fixture that creates a throw-away topic on its own bus
//! and removes it however the test ends.
//!
//! Every write goes through an atomic of the field's width, so the adversary
//! may run on its own thread while clients use the same memory without a
//! data race in this process (the library reads those fields atomically too).

use std::fs::{File, OpenOptions};
use std::mem::offset_of;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};

use memmap2::{MmapOptions, MmapRaw};
use shmbus::daemon::{SegmentPerms, TopicOwner};
use shmbus::layout::{
    stamp, DataHeader, DataShared, Geometry, PubEntry, SlotHeader, SubEntry, SubsHeader,
    SubsShared, DATA_SHARED_OFFSET, MAX_SEQ, SLOT_HEADER_SIZE, SUBS_SHARED_OFFSET,
};
use shmbus::names::{segment_name, Part};
use shmbus::TopicConfig;

/// Name of every fixture topic (each lives on its own bus).
pub const TOPIC: &str = "hostile/topic";

/// A bus name no other test (in this process or another) uses.
pub fn unique_bus() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "hs{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Removes every segment of its bus when dropped, also when the test fails.
pub struct Cleanup {
    bus: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = shmbus::daemon::remove_bus_segments(&self.bus);
    }
}

/// A fresh topic: its owner (the daemon's handle), the adversary's mappings,
/// and the clean-up guard (declared last, so it runs after the rest dropped).
pub struct Fixture {
    /// Bus of the topic.
    pub bus: String,
    /// Settings it was created with.
    pub cfg: TopicConfig,
    /// What `shmbusd` would hold.
    pub owner: TopicOwner,
    /// The hostile mappings.
    pub adv: Adversary,
    _cleanup: Cleanup,
}

impl Fixture {
    /// Creates the topic on a new bus.
    pub fn new(cfg: &TopicConfig) -> Fixture {
        let bus = unique_bus();
        let cleanup = Cleanup { bus: bus.clone() };
        let owner = TopicOwner::create(&bus, TOPIC, cfg, &SegmentPerms::default())
            .unwrap_or_else(|e| panic!("create {TOPIC} on bus {bus} with {cfg:?}: {e}"));
        let adv = Adversary::open(&bus, cfg);
        Fixture {
            bus,
            cfg: cfg.clone(),
            owner,
            adv,
            _cleanup: cleanup,
        }
    }
}

/// Which of a topic's two segment files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seg {
    /// Header, publisher table, slots.
    Data,
    /// Wake words, subscriber table.
    Subs,
}

/// Read-write mappings of both segment files, made behind the library's back.
pub struct Adversary {
    cfg: TopicConfig,
    data_file: File,
    subs_file: File,
    // MmapRaw rather than MmapMut: this memory is written by other threads,
    // so no `&mut [u8]` to it may ever exist.
    data: MmapRaw,
    subs: MmapRaw,
}

fn open_rw(path: &str) -> (File, MmapRaw) {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("adversary cannot open {path}: {e}"));
    let map = MmapOptions::new()
        .map_raw(&file)
        .unwrap_or_else(|e| panic!("adversary cannot map {path}: {e}"));
    (file, map)
}

impl Adversary {
    /// Maps both segment files of [`TOPIC`] on `bus`.
    pub fn open(bus: &str, cfg: &TopicConfig) -> Adversary {
        let (data_file, data) = open_rw(&format!(
            "/dev/shm/{}",
            segment_name(bus, TOPIC, Part::Data)
        ));
        let (subs_file, subs) = open_rw(&format!(
            "/dev/shm/{}",
            segment_name(bus, TOPIC, Part::Subs)
        ));
        Adversary {
            cfg: cfg.clone(),
            data_file,
            subs_file,
            data,
            subs,
        }
    }

    fn map(&self, seg: Seg) -> &MmapRaw {
        match seg {
            Seg::Data => &self.data,
            Seg::Subs => &self.subs,
        }
    }

    /// The adversary's own open file of a segment (its own open file
    /// description, so its liveness probes see every client's locks).
    pub fn file(&self, seg: Seg) -> &File {
        match seg {
            Seg::Data => &self.data_file,
            Seg::Subs => &self.subs_file,
        }
    }

    /// Length of a segment's mapping (its size at creation).
    pub fn len(&self, seg: Seg) -> usize {
        self.map(seg).len()
    }

    fn ptr(&self, seg: Seg, offset: usize, width: usize) -> *mut u8 {
        let map = self.map(seg);
        assert!(
            offset + width <= map.len(),
            "adversary write at {offset}+{width} outside the {} bytes of {seg:?}",
            map.len()
        );
        assert_eq!(
            offset % width,
            0,
            "unaligned {width}-byte field at {offset}"
        );
        // SAFETY: in bounds of the live mapping, checked above.
        unsafe { map.as_mut_ptr().add(offset) }
    }

    /// Stores `value` (truncated to `width` = 1, 4 or 8 bytes) at `offset`.
    pub fn store(&self, seg: Seg, offset: usize, width: usize, value: u64) {
        let p = self.ptr(seg, offset, width);
        // SAFETY: `p` is in bounds and aligned to `width` (checked by `ptr`);
        // the mapping is MAP_SHARED read-write and outlives the call; every
        // access to these bytes in this process is atomic.
        unsafe {
            match width {
                1 => AtomicU8::from_ptr(p).store(value as u8, Ordering::SeqCst),
                4 => AtomicU32::from_ptr(p.cast()).store(value as u32, Ordering::SeqCst),
                8 => AtomicU64::from_ptr(p.cast()).store(value, Ordering::SeqCst),
                _ => unreachable!("field width {width}"),
            }
        }
    }

    /// Loads the `width`-byte field at `offset`.
    pub fn load(&self, seg: Seg, offset: usize, width: usize) -> u64 {
        let p = self.ptr(seg, offset, width);
        // SAFETY: as in `store`.
        unsafe {
            match width {
                1 => u64::from(AtomicU8::from_ptr(p).load(Ordering::SeqCst)),
                4 => u64::from(AtomicU32::from_ptr(p.cast()).load(Ordering::SeqCst)),
                8 => AtomicU64::from_ptr(p.cast()).load(Ordering::SeqCst),
                _ => unreachable!("field width {width}"),
            }
        }
    }

    /// Writes `bytes` one byte at a time from `offset` (clipped to the segment).
    pub fn write_bytes(&self, seg: Seg, offset: usize, bytes: &[u8]) {
        for (i, b) in bytes.iter().enumerate() {
            if offset + i < self.len(seg) {
                self.store(seg, offset + i, 1, u64::from(*b));
            }
        }
    }

    /// Copies bytes `range` of a segment out.
    pub fn read_bytes(&self, seg: Seg, range: std::ops::Range<usize>) -> Vec<u8> {
        range.map(|o| self.load(seg, o, 1) as u8).collect()
    }

    /// `ftruncate`s a segment file to `len` bytes (the adversary's mapping is
    /// not touched again past the new end: only `set_len` and `len` follow).
    pub fn truncate(&self, seg: Seg, len: u64) {
        self.file(seg)
            .set_len(len)
            .unwrap_or_else(|e| panic!("ftruncate {seg:?} to {len}: {e}"));
    }

    /// The topic's current `tail`, as the adversary reads it.
    pub fn tail(&self) -> u64 {
        let (seg, off, w) = Field::Tail.place(&self.cfg);
        self.load(seg, off, w)
    }

    /// Writes `value`, resolved against the current state, into `field`.
    pub fn scribble(&self, field: Field, value: Value) {
        let (seg, off, w) = field.place(&self.cfg);
        let v = value.resolve(self.tail(), &self.cfg);
        self.store(seg, off, w, v);
    }
}

/// A field of the shared state an adversary can write. Entry and slot
/// indices are reduced modulo the topic's table sizes, so any index names a
/// real field (and proptest shrinks them towards entry 0 / slot 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Field {
    // data segment, publisher-written header
    Closed,
    Tail,
    TopicBlocked,
    TopicAbandoned,
    ReapedPublishers,
    // data segment, publisher entries
    PubState(u32),
    PubPid(u32),
    PubInflight(u32),
    PubPublished(u32),
    PubBlocked(u32),
    PubWaiting(u32),
    // data segment, slots
    SlotStamp(u64),
    SlotLen(u64),
    SlotTimestamp(u64),
    /// One payload byte (slot, byte offset reduced modulo the payload area).
    Payload(u64, u32),
    /// Any 8 aligned bytes of the immutable data header.
    DataHeaderWord(u32),
    // subs segment
    DataReadySeq,
    DataReadyWaiters,
    SpaceReadySeq,
    SpaceReadyWaiters,
    ReapedSubscribers,
    SubState(u32),
    SubPid(u32),
    SubCursor(u32),
    SubDelivered(u32),
    SubLost(u32),
    SubWaiting(u32),
    SubAbandoned(u32),
    /// Any 8 aligned bytes of the immutable subs header.
    SubsHeaderWord(u32),
}

/// Offset of the futex word (`seq`) inside an `EventCount`; `waiters`
/// follows it. Drawn in `shmbus::eventcount`'s module doc; its fields are
/// private, so their offsets are taken from that drawing.
const EC_SEQ: usize = 0;
const EC_WAITERS: usize = 4;

impl Field {
    /// Whether the field lives in the subs segment (which every subscriber
    /// may write, SPEC §8).
    pub fn in_subs(self) -> bool {
        self.place(&TopicConfig::default()).0 == Seg::Subs
    }

    /// Segment, offset and width of the field in a topic with `cfg`.
    pub fn place(self, cfg: &TopicConfig) -> (Seg, usize, usize) {
        use Field::*;
        let pubs = cfg.max_publishers;
        let subs = cfg.max_subscribers;
        let pe = |i: u32, f: usize| Geometry::pub_entry_offset(i % pubs) + f;
        let se = |i: u32, f: usize| Geometry::sub_entry_offset(i % subs) + f;
        let slot = |k: u64| {
            cfg.slots_offset() as usize + (k % cfg.capacity) as usize * cfg.slot_stride() as usize
        };
        let ds = |f: usize| DATA_SHARED_OFFSET + f;
        let ss = |f: usize| SUBS_SHARED_OFFSET + f;
        let d = Seg::Data;
        let s = Seg::Subs;
        match self {
            Closed => (d, ds(offset_of!(DataShared, closed)), 4),
            Tail => (d, ds(offset_of!(DataShared, tail)), 8),
            TopicBlocked => (d, ds(offset_of!(DataShared, blocked)), 8),
            TopicAbandoned => (d, ds(offset_of!(DataShared, abandoned)), 8),
            ReapedPublishers => (d, ds(offset_of!(DataShared, reaped_publishers)), 8),
            PubState(i) => (d, pe(i, offset_of!(PubEntry, state)), 4),
            PubPid(i) => (d, pe(i, offset_of!(PubEntry, pid)), 4),
            PubInflight(i) => (d, pe(i, offset_of!(PubEntry, inflight)), 8),
            PubPublished(i) => (d, pe(i, offset_of!(PubEntry, published)), 8),
            PubBlocked(i) => (d, pe(i, offset_of!(PubEntry, blocked)), 8),
            PubWaiting(i) => (d, pe(i, offset_of!(PubEntry, waiting)), 4),
            SlotStamp(k) => (d, slot(k) + offset_of!(SlotHeader, stamp), 8),
            SlotLen(k) => (d, slot(k) + offset_of!(SlotHeader, len), 4),
            SlotTimestamp(k) => (d, slot(k) + offset_of!(SlotHeader, timestamp_ns), 8),
            Payload(k, b) => {
                let area = cfg.slot_stride() as usize - SLOT_HEADER_SIZE;
                (d, slot(k) + SLOT_HEADER_SIZE + b as usize % area, 1)
            }
            DataHeaderWord(w) => (d, (w as usize % (DATA_SHARED_OFFSET / 8)) * 8, 8),
            DataReadySeq => (s, ss(offset_of!(SubsShared, data_ready) + EC_SEQ), 4),
            DataReadyWaiters => (s, ss(offset_of!(SubsShared, data_ready) + EC_WAITERS), 4),
            SpaceReadySeq => (s, ss(offset_of!(SubsShared, space_ready) + EC_SEQ), 4),
            SpaceReadyWaiters => (s, ss(offset_of!(SubsShared, space_ready) + EC_WAITERS), 4),
            ReapedSubscribers => (s, ss(offset_of!(SubsShared, reaped_subscribers)), 8),
            SubState(i) => (s, se(i, offset_of!(SubEntry, state)), 4),
            SubPid(i) => (s, se(i, offset_of!(SubEntry, pid)), 4),
            SubCursor(i) => (s, se(i, offset_of!(SubEntry, cursor)), 8),
            SubDelivered(i) => (s, se(i, offset_of!(SubEntry, delivered)), 8),
            SubLost(i) => (s, se(i, offset_of!(SubEntry, lost)), 8),
            SubWaiting(i) => (s, se(i, offset_of!(SubEntry, waiting)), 4),
            SubAbandoned(i) => (s, se(i, offset_of!(SubEntry, abandoned)), 8),
            SubsHeaderWord(w) => (s, (w as usize % (SUBS_SHARED_OFFSET / 8)) * 8, 8),
        }
    }
}

/// A value to write, possibly relative to the topic's live state so that it
/// lands on the protocol's edges (a stamp one lap ahead, a tail just behind).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Value {
    /// Exactly these bits.
    Raw(u64),
    /// `tail + delta` (wrapping).
    TailPlus(i64),
    /// The stamp of sequence `tail + delta` in `state` (0..=3).
    Stamp(i64, u64),
    /// `max_msg_size + delta` (for lengths).
    MaxMsgPlus(i64),
}

impl Value {
    /// The bits to write, given the current `tail`.
    pub fn resolve(self, tail: u64, cfg: &TopicConfig) -> u64 {
        match self {
            Value::Raw(v) => v,
            Value::TailPlus(d) => tail.wrapping_add_signed(d),
            Value::Stamp(d, state) => stamp::pack(tail.wrapping_add_signed(d) & MAX_SEQ, state & 3),
            Value::MaxMsgPlus(d) => u64::from(cfg.max_msg_size).wrapping_add_signed(d),
        }
    }
}

/// Byte ranges of the header fields that say what the segment is and how
/// big: changing any byte in them must make every attach refuse. (The two
/// nonces are not here: rewritten alike, they still tie the pair together.)
pub fn must_match_ranges(topic: &str) -> Vec<(Seg, std::ops::Range<usize>)> {
    let field = |seg, off: usize, w: usize| (seg, off..off + w);
    vec![
        field(Seg::Data, offset_of!(DataHeader, magic), 8),
        field(Seg::Data, offset_of!(DataHeader, version), 4),
        field(Seg::Data, offset_of!(DataHeader, part), 4),
        field(Seg::Data, offset_of!(DataHeader, segment_size), 8),
        field(Seg::Data, offset_of!(DataHeader, capacity), 8),
        field(Seg::Data, offset_of!(DataHeader, topic_len), 4),
        field(Seg::Data, offset_of!(DataHeader, topic), topic.len()),
        field(Seg::Subs, offset_of!(SubsHeader, magic), 8),
        field(Seg::Subs, offset_of!(SubsHeader, version), 4),
        field(Seg::Subs, offset_of!(SubsHeader, part), 4),
        field(Seg::Subs, offset_of!(SubsHeader, segment_size), 8),
    ]
}

/// The nonces of the data and the subs header, which must be equal.
pub fn nonces(adv: &Adversary) -> (u64, u64) {
    (
        adv.load(Seg::Data, offset_of!(DataHeader, nonce), 8),
        adv.load(Seg::Subs, offset_of!(SubsHeader, nonce), 8),
    )
}

/// Offsets and widths of every field of the immutable headers, for aimed
/// header scribbles.
pub fn header_fields() -> Vec<(Seg, usize, usize)> {
    let d = Seg::Data;
    let s = Seg::Subs;
    vec![
        (d, offset_of!(DataHeader, magic), 8),
        (d, offset_of!(DataHeader, version), 4),
        (d, offset_of!(DataHeader, part), 4),
        (d, offset_of!(DataHeader, segment_size), 8),
        (d, offset_of!(DataHeader, capacity), 8),
        (d, offset_of!(DataHeader, max_msg_size), 4),
        (d, offset_of!(DataHeader, slot_stride), 4),
        (d, offset_of!(DataHeader, policy), 4),
        (d, offset_of!(DataHeader, max_publishers), 4),
        (d, offset_of!(DataHeader, max_subscribers), 4),
        (d, offset_of!(DataHeader, topic_len), 4),
        (d, offset_of!(DataHeader, nonce), 8),
        (d, offset_of!(DataHeader, topic), 8),
        (d, offset_of!(DataHeader, created_ns), 8),
        (s, offset_of!(SubsHeader, magic), 8),
        (s, offset_of!(SubsHeader, version), 4),
        (s, offset_of!(SubsHeader, part), 4),
        (s, offset_of!(SubsHeader, segment_size), 8),
        (s, offset_of!(SubsHeader, max_subscribers), 4),
        (s, offset_of!(SubsHeader, nonce), 8),
    ]
}
