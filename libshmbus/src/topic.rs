//! A topic's two mapped segments, and the daemon's handle on them.
//!
//! [`MappedTopic`] is the production [`RingMemory`]: the ring protocol's
//! shared structs overlaid on the mappings at the offsets [`crate::layout`]
//! defines, after the headers were validated. [`TopicOwner`] is what
//! `shmbusd` holds per topic: create or adopt, reap, close, unlink, stats.

use std::fs::File;

use crate::error::{Error, Result};
use crate::layout::{
    self, DataShared, Geometry, PubEntry, SlotHeader, SubEntry, SubsShared, TopicConfig,
    DATA_SHARED_OFFSET, ENTRY_ACTIVE, ENTRY_FREE, SLOT_HEADER_SIZE, SUBS_SHARED_OFFSET,
};
use crate::liveness;
use crate::names::{self, Part};
use crate::ring::{self, PubReclaim, RingMemory};
use crate::segment::{self, Segment, Trust, DATA_MODES, SUBS_MODES};
use crate::sync::Ordering;

/// Both segments of a topic, mapped and validated.
#[derive(Debug)]
pub(crate) struct MappedTopic {
    topic: String,
    geo: Geometry,
    data: Segment,
    subs: Segment,
}

/// File modes and group of a topic's segments (SPEC §8). Publishers need
/// read-write on both; subscribers need read on `data`, read-write on `subs`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentPerms {
    /// Mode of the data segment (default 0600).
    pub data_mode: u32,
    /// Mode of the subs segment (default 0600).
    pub subs_mode: u32,
    /// Owner group of both, if not the creator's.
    pub gid: Option<u32>,
}

impl Default for SegmentPerms {
    fn default() -> Self {
        SegmentPerms {
            data_mode: 0o600,
            subs_mode: 0o600,
            gid: None,
        }
    }
}

/// What the daemon tells a client about a topic's segments in its reply to
/// `open`, so that the client maps exactly the files the daemon made: their
/// nonce (in both headers) and the modes it set on them. The owner is not
/// in it: the client takes the daemon's uid from the kernel (`SO_PEERCRED`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SegmentIdentity {
    /// The topic's nonce, drawn at creation and written in both headers.
    pub nonce: u64,
    /// Permission bits of the data segment.
    pub data_mode: u32,
    /// Permission bits of the subs segment.
    pub subs_mode: u32,
}

/// What an open of a topic's segments must find (see `segment`'s
/// *Identity*): the owner, the modes, and, when the daemon announced it, the
/// nonce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TopicTrust {
    uid: u32,
    announced: Option<SegmentIdentity>,
}

impl TopicTrust {
    /// Segments of the daemon running as `uid`, as it announced them.
    pub(crate) fn announced(uid: u32, id: SegmentIdentity) -> TopicTrust {
        TopicTrust {
            uid,
            announced: Some(id),
        }
    }

    /// Segments made by this process's own uid, in any mode shmbusd sets:
    /// what a daemon adopting its own topics, or a client attaching without
    /// asking the daemon, can check.
    pub(crate) fn own() -> TopicTrust {
        TopicTrust {
            uid: segment::euid(),
            announced: None,
        }
    }
}

impl MappedTopic {
    /// Creates both segments of a new topic and initialises their headers.
    pub(crate) fn create(
        bus: &str,
        topic: &str,
        cfg: &TopicConfig,
        perms: &SegmentPerms,
    ) -> Result<MappedTopic> {
        names::validate_bus(bus)?;
        names::validate_topic(topic)?;
        let geo = Geometry::new(cfg, segment::random_nonce())?;
        let subs_name = names::segment_name(bus, topic, Part::Subs);
        let data_name = names::segment_name(bus, topic, Part::Data);
        let subs = Segment::create(&subs_name, geo.subs_size, perms.subs_mode, perms.gid)?;
        let data = match Segment::create(&data_name, geo.data_size, perms.data_mode, perms.gid) {
            Ok(d) => d,
            Err(e) => {
                let _ = Segment::unlink(&subs_name);
                return Err(e);
            }
        };
        // SAFETY: both mappings are fresh, zero-filled, at least HEADER_SIZE
        // long and not yet visible to anyone as valid (magic is written last).
        unsafe {
            let h = &mut *(subs.as_ptr() as *mut layout::SubsHeader);
            h.version = layout::VERSION;
            h.part = 2;
            h.segment_size = geo.subs_size as u64;
            h.max_subscribers = cfg.max_subscribers;
            h.nonce = geo.nonce;
            h.magic.store(layout::SUBS_MAGIC, Ordering::Release);

            let h = &mut *(data.as_ptr() as *mut layout::DataHeader);
            h.version = layout::VERSION;
            h.part = 1;
            h.segment_size = geo.data_size as u64;
            h.capacity = cfg.capacity;
            h.max_msg_size = cfg.max_msg_size;
            h.slot_stride = geo.stride as u32;
            h.policy = cfg.policy.to_raw();
            h.max_publishers = cfg.max_publishers;
            h.max_subscribers = cfg.max_subscribers;
            h.topic_len = topic.len() as u32;
            h.nonce = geo.nonce;
            h.topic[..topic.len()].copy_from_slice(topic.as_bytes());
            h.created_ns = crate::clock::realtime_ns();
            for i in 0..cfg.max_publishers {
                let e = &*(data.as_ptr().add(Geometry::pub_entry_offset(i)) as *const PubEntry);
                e.inflight.store(layout::NO_SEQ, Ordering::Relaxed);
            }
            h.magic.store(layout::DATA_MAGIC, Ordering::Release);
        }
        Ok(MappedTopic {
            topic: topic.to_string(),
            geo,
            data,
            subs,
        })
    }

    /// Opens an existing topic whose segments `trust` accepts (owner and
    /// modes checked on the descriptors, then the nonce in the headers).
    /// `data_writable`: publishers and the daemon map the data segment
    /// read-write, subscribers read-only.
    pub(crate) fn open(
        bus: &str,
        topic: &str,
        data_writable: bool,
        trust: &TopicTrust,
    ) -> Result<MappedTopic> {
        MappedTopic::open_with(bus, topic, data_writable, trust, None)
    }

    /// [`MappedTopic::open`], taking the subs segment from `subs_file` (a
    /// descriptor the daemon passed) instead of opening it by name. It gets
    /// the same checks: owner and mode, then the nonce in its header.
    pub(crate) fn open_with(
        bus: &str,
        topic: &str,
        data_writable: bool,
        trust: &TopicTrust,
        subs_file: Option<File>,
    ) -> Result<MappedTopic> {
        names::validate_bus(bus)?;
        names::validate_topic(topic)?;
        let data_name = names::segment_name(bus, topic, Part::Data);
        let subs_name = names::segment_name(bus, topic, Part::Subs);
        let id = trust.announced;
        let (data_mode, subs_mode) = (id.map(|i| [i.data_mode]), id.map(|i| [i.subs_mode]));
        let data_trust = Trust {
            uid: trust.uid,
            modes: data_mode.as_ref().map_or(DATA_MODES, |m| m),
        };
        let subs_trust = Trust {
            uid: trust.uid,
            modes: subs_mode.as_ref().map_or(SUBS_MODES, |m| m),
        };
        let data = Segment::open(&data_name, data_writable, &data_trust)?;
        // The headers are validated from private copies (`Segment::header`)
        // and never trusted again.
        let geo = layout::read_data_header(
            &data_name,
            &data.header(layout::HEADER_SIZE),
            data.len(),
            topic,
        )?;
        if let Some(id) = id {
            if geo.nonce != id.nonce {
                return Err(Error::Untrusted {
                    what: "segment",
                    path: segment::shm_file(&data_name).display().to_string(),
                    why: format!(
                        "nonce mismatch: its header says {:#x}, shmbusd announced {:#x}, so it is not the segment shmbusd made (replaced since?); retry, and if it persists remove it",
                        geo.nonce, id.nonce
                    ),
                });
            }
        }
        let subs = match subs_file {
            Some(file) => Segment::from_file(&subs_name, file, true, &subs_trust)?,
            None => Segment::open(&subs_name, true, &subs_trust)?,
        };
        // The subs header must carry the data header's nonce, which was
        // just compared with the announced one.
        layout::check_subs_header(
            &subs_name,
            &subs.header(layout::HEADER_SIZE),
            subs.len(),
            &geo,
        )?;
        Ok(MappedTopic {
            topic: topic.to_string(),
            geo,
            data,
            subs,
        })
    }

    pub(crate) fn topic(&self) -> &str {
        &self.topic
    }

    pub(crate) fn data_file(&self) -> &File {
        self.data.file()
    }

    pub(crate) fn subs_file(&self) -> &File {
        self.subs.file()
    }

    /// Start of the payload of the slot holding `seq` (`max_msg_size` bytes).
    pub(crate) fn payload_ptr(&self, seq: u64) -> *mut u8 {
        // SAFETY: slot_offset(seq) + SLOT_HEADER_SIZE + max_msg_size ≤
        // data_size = mapping length, checked when the header was validated.
        unsafe {
            self.data
                .as_ptr()
                .add(self.geo.slot_offset(seq) + SLOT_HEADER_SIZE)
        }
    }

    /// Takes a free publisher (`pubs`) or subscriber entry: holds its
    /// liveness lock and has reclaimed a dead predecessor. Prefers free
    /// entries; then takes over entries whose owner died unreaped.
    pub(crate) fn acquire_entry(&self, publisher: bool) -> Result<Option<u32>> {
        let (file, max) = if publisher {
            (self.data.file(), self.geo.config.max_publishers)
        } else {
            (self.subs.file(), self.geo.config.max_subscribers)
        };
        let state = |i: u32| {
            if publisher {
                self.pub_entry(i).state.load(Ordering::Acquire)
            } else {
                self.sub_entry(i).state.load(Ordering::Acquire)
            }
        };
        for want_free in [true, false] {
            for i in 0..max {
                if (state(i) == ENTRY_FREE) != want_free {
                    continue;
                }
                let off = entry_lock_offset(i);
                if !liveness::try_acquire(file, off)? {
                    continue;
                }
                // The lock was free, so any owner recorded here is dead.
                let usable = if publisher {
                    ring::reclaim_publisher(self, i) != PubReclaim::Retry
                } else {
                    ring::reclaim_subscriber(self, i);
                    true
                };
                if usable {
                    return Ok(Some(i));
                }
                liveness::release(file, off);
            }
        }
        Ok(None)
    }
}

/// Entries of both tables are at the same offsets in their files; the first
/// byte of an entry is its lock byte.
fn entry_lock_offset(i: u32) -> usize {
    Geometry::pub_entry_offset(i)
}

impl RingMemory for MappedTopic {
    #[inline]
    fn geometry(&self) -> &Geometry {
        &self.geo
    }

    #[inline]
    fn data(&self) -> &DataShared {
        // SAFETY: DATA_SHARED_OFFSET + size_of::<DataShared>() ≤ HEADER_SIZE ≤
        // mapping length (layout checks); the struct is atomics and padding,
        // valid for any bytes; alignment: the mapping is page-aligned.
        unsafe { &*(self.data.as_ptr().add(DATA_SHARED_OFFSET) as *const DataShared) }
    }

    #[inline]
    fn subs(&self) -> &SubsShared {
        // SAFETY: as for `data`, in the subs mapping (always read-write).
        unsafe { &*(self.subs.as_ptr().add(SUBS_SHARED_OFFSET) as *const SubsShared) }
    }

    #[inline]
    fn slot(&self, seq: u64) -> &SlotHeader {
        // SAFETY: slot_offset(seq) < slots_offset + capacity * stride ≤ the
        // validated mapping length; offsets are multiples of 64.
        unsafe { &*(self.data.as_ptr().add(self.geo.slot_offset(seq)) as *const SlotHeader) }
    }

    #[inline]
    fn pub_entry(&self, i: u32) -> &PubEntry {
        debug_assert!(i < self.geo.config.max_publishers);
        let i = i.min(self.geo.config.max_publishers - 1);
        // SAFETY: entry i < max_publishers lies before slots_offset.
        unsafe { &*(self.data.as_ptr().add(Geometry::pub_entry_offset(i)) as *const PubEntry) }
    }

    #[inline]
    fn sub_entry(&self, i: u32) -> &SubEntry {
        debug_assert!(i < self.geo.config.max_subscribers);
        let i = i.min(self.geo.config.max_subscribers - 1);
        // SAFETY: entry i < max_subscribers lies within subs_size.
        unsafe { &*(self.subs.as_ptr().add(Geometry::sub_entry_offset(i)) as *const SubEntry) }
    }

    #[inline]
    fn write_payload(&self, seq: u64, src: &[u8]) {
        let len = src.len().min(self.geo.config.max_msg_size as usize);
        // SAFETY: the destination is the slot's payload area, `max_msg_size`
        // bytes inside the mapping (see `payload_ptr`), and `len` is clamped
        // to it; `src` is private memory, so the two do not overlap. A plain
        // copy is acceptable although readers may read concurrently: we hold
        // WRITING(seq), so no other writer touches these bytes; `block`
        // readers never look at a slot being written, and `drop-oldest`
        // readers read it only with atomic loads (`read_payload`) and
        // discard what they read when the stamp changed (seqlock). Nothing
        // here reads the payload back, and a write through a raw pointer,
        // unlike a held `&[u8]`/`&mut [u8]`, gives the compiler no licence
        // to assume the bytes keep their values afterwards and re-read them.
        // (Strictly, the abstract machine still calls a plain store racing
        // an atomic load a data race: the known seqlock caveat, harmless
        // here because the reader discards those bytes, until a byte-wise
        // atomic memcpy exists in the language.)
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.payload_ptr(seq), len) }
    }

    #[inline]
    fn read_payload(&self, seq: u64, dst: &mut [u8]) {
        let len = dst.len().min(self.geo.config.max_msg_size as usize);
        // SAFETY: the `len ≤ max_msg_size` bytes read lie inside the slot's
        // payload area in the mapping, which lives as long as `self` (see
        // `payload_ptr`); `dst` is private memory. In `drop-oldest` a writer
        // of a later lap, in another process, may be writing them as we
        // copy: `atomic_read_bytes` reads each byte once with Relaxed atomic
        // loads (allowed on the read-only mapping a subscriber has), so the
        // race is defined behaviour; the bytes are plain bytes, valid for
        // any value, and the caller re-checks the stamp (`still_valid`)
        // before trusting them. (A publisher of the same topic in this
        // process writes through its own, separate mapping, with the plain
        // copy of `write_payload`: see the comment there.)
        unsafe { crate::racy::atomic_read_bytes(self.payload_ptr(seq), &mut dst[..len]) }
    }

    fn segment_name(&self) -> &str {
        self.data.name()
    }

    fn damaged(&self) -> bool {
        self.data.is_damaged() || self.subs.is_damaged()
    }
}

/// What one reap pass reclaimed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReapReport {
    /// Dead publishers whose entries were freed.
    pub publishers: u32,
    /// Dead subscribers whose cursors no longer hold publishers back.
    pub subscribers: u32,
    /// Half-written slots of dead publishers marked abandoned.
    pub abandoned_slots: u32,
}

impl ReapReport {
    /// Whether anything was reclaimed.
    pub fn is_empty(&self) -> bool {
        *self == ReapReport::default()
    }
}

/// Statistics of one topic, read from its segments.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TopicStats {
    /// Topic name.
    pub topic: String,
    /// Slots.
    pub capacity: u64,
    /// Largest message.
    pub max_msg_size: u32,
    /// Overflow policy.
    pub policy: layout::Policy,
    /// Bytes reserved in /dev/shm.
    pub memory_bytes: u64,
    /// Attached publishers.
    pub publishers: u32,
    /// Attached subscribers.
    pub subscribers: u32,
    /// Sequence numbers claimed so far (the next message's sequence).
    pub published: u64,
    /// Publishes that found the ring full.
    pub blocked_publishes: u64,
    /// Slots abandoned (dead publishers, dropped loans).
    pub abandoned: u64,
    /// Dead publishers reclaimed.
    pub reaped_publishers: u64,
    /// Dead subscribers reclaimed.
    pub reaped_subscribers: u64,
    /// Whether the topic was closed.
    pub closed: bool,
    /// One row per attached subscriber.
    pub subscriber_stats: Vec<SubscriberStats>,
    /// One row per attached publisher.
    pub publisher_stats: Vec<PublisherStats>,
}

/// One subscriber's counters.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SubscriberStats {
    /// Entry index.
    pub index: u32,
    /// Process id (informational).
    pub pid: u32,
    /// Next sequence it will read.
    pub cursor: u64,
    /// Messages delivered.
    pub delivered: u64,
    /// Messages lost to laps (drop-oldest).
    pub lost: u64,
    /// Messages published but not yet read.
    pub lag: u64,
    /// Whether it sleeps on the futex.
    pub waiting: bool,
}

/// One publisher's counters.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PublisherStats {
    /// Entry index.
    pub index: u32,
    /// Process id (informational).
    pub pid: u32,
    /// Messages committed.
    pub published: u64,
    /// Publishes that found the ring full.
    pub blocked: u64,
    /// Whether it sleeps waiting for space.
    pub waiting: bool,
}

pub(crate) fn read_stats(t: &MappedTopic) -> TopicStats {
    let cfg = &t.geo.config;
    let d = t.data();
    let tail = d.tail.load(Ordering::Acquire);
    let subscriber_stats: Vec<SubscriberStats> = (0..cfg.max_subscribers)
        .filter_map(|i| {
            let e = t.sub_entry(i);
            (e.state.load(Ordering::Acquire) == ENTRY_ACTIVE).then(|| {
                let cursor = e.cursor.load(Ordering::Acquire);
                SubscriberStats {
                    index: i,
                    pid: e.pid.load(Ordering::Relaxed),
                    cursor,
                    delivered: e.delivered.load(Ordering::Relaxed),
                    lost: e.lost.load(Ordering::Relaxed),
                    lag: tail.saturating_sub(cursor),
                    waiting: e.waiting.load(Ordering::Relaxed) != 0,
                }
            })
        })
        .collect();
    let publisher_stats: Vec<PublisherStats> = (0..cfg.max_publishers)
        .filter_map(|i| {
            let e = t.pub_entry(i);
            (e.state.load(Ordering::Acquire) == ENTRY_ACTIVE).then(|| PublisherStats {
                index: i,
                pid: e.pid.load(Ordering::Relaxed),
                published: e.published.load(Ordering::Relaxed),
                blocked: e.blocked.load(Ordering::Relaxed),
                waiting: e.waiting.load(Ordering::Relaxed) != 0,
            })
        })
        .collect();
    TopicStats {
        topic: t.topic.clone(),
        capacity: cfg.capacity,
        max_msg_size: cfg.max_msg_size,
        policy: cfg.policy,
        memory_bytes: cfg.memory_bytes(),
        publishers: publisher_stats.len() as u32,
        subscribers: subscriber_stats.len() as u32,
        published: tail,
        blocked_publishes: d.blocked.load(Ordering::Relaxed),
        abandoned: d.abandoned.load(Ordering::Relaxed),
        reaped_publishers: d.reaped_publishers.load(Ordering::Relaxed),
        reaped_subscribers: t.subs().reaped_subscribers.load(Ordering::Relaxed),
        closed: d.closed.load(Ordering::Acquire) != 0,
        subscriber_stats,
        publisher_stats,
    }
}

/// The daemon's handle on a topic: it created or adopted the segments and
/// is responsible for reaping, closing and unlinking them.
#[derive(Debug)]
pub struct TopicOwner {
    bus: String,
    t: MappedTopic,
}

impl TopicOwner {
    /// Creates a new topic with all of its memory reserved. A full /dev/shm
    /// gives `Error::NoSpace` and leaves nothing behind.
    pub fn create(
        bus: &str,
        topic: &str,
        cfg: &TopicConfig,
        perms: &SegmentPerms,
    ) -> Result<TopicOwner> {
        Ok(TopicOwner {
            bus: bus.to_string(),
            t: MappedTopic::create(bus, topic, cfg, perms)?,
        })
    }

    /// Adopts a topic whose segments exist (a daemon restart), after
    /// validating them; `Error::Corrupt` if they do not check out.
    /// Every waiter is woken once (they re-check): a daemon killed
    /// between a reap and its wake-up (finding 2(c) of the crash-safety
    /// review) owed them that.
    ///
    /// Only files owned by the daemon's own uid, in a mode it sets, are
    /// adopted; anything else is [`Error::Untrusted`] and is left alone.
    pub fn adopt(bus: &str, topic: &str) -> Result<TopicOwner> {
        let t = MappedTopic::open(bus, topic, true, &TopicTrust::own())?;
        ring::wake_both_sides(&t);
        Ok(TopicOwner {
            bus: bus.to_string(),
            t,
        })
    }

    /// Topic name.
    pub fn name(&self) -> &str {
        self.t.topic()
    }

    /// Settings.
    pub fn config(&self) -> TopicConfig {
        self.t.geo.config.clone()
    }

    /// Reclaims what dead clients held: a dead subscriber's cursor stops
    /// gating publishers; a dead publisher's half-written slot is abandoned
    /// (subscribers skip and count it). Call periodically (≈250 ms).
    pub fn reap(&self) -> ReapReport {
        let mut report = ReapReport::default();
        let cfg = &self.t.geo.config;
        for i in 0..cfg.max_publishers {
            if self.t.pub_entry(i).state.load(Ordering::Acquire) == ENTRY_FREE {
                continue;
            }
            let off = entry_lock_offset(i);
            if !matches!(liveness::try_acquire(self.t.data_file(), off), Ok(true)) {
                continue; // alive (or the probe failed: try next time)
            }
            if let PubReclaim::Reclaimed { abandoned } = ring::reclaim_publisher(&self.t, i) {
                report.publishers += 1;
                report.abandoned_slots += u32::from(abandoned);
            }
            liveness::release(self.t.data_file(), off);
        }
        for i in 0..cfg.max_subscribers {
            if self.t.sub_entry(i).state.load(Ordering::Acquire) == ENTRY_FREE {
                continue;
            }
            let off = entry_lock_offset(i);
            if !matches!(liveness::try_acquire(self.t.subs_file(), off), Ok(true)) {
                continue;
            }
            if ring::reclaim_subscriber(&self.t, i) {
                report.subscribers += 1;
            }
            liveness::release(self.t.subs_file(), off);
        }
        report
    }

    /// Attaches a subscriber at the start of the ring on behalf of process
    /// `pid` (a pattern subscription, at the topic's birth) and returns its
    /// entry and a new open file description of the subs segment that holds
    /// the entry's liveness lock. The entry is an ordinary live subscriber
    /// for as long as some process keeps that descriptor open: passed to
    /// the subscriber, it becomes the subscriber's own token; closed
    /// unclaimed (the daemon, or the subscriber, died first, or the
    /// connection dropped it), the lock goes and the next reap frees the
    /// entry. `Ok(None)`: every entry is taken.
    pub fn reserve_subscriber(&self, pid: u32) -> Result<Option<(u32, File)>> {
        let file = self.t.subs.reopen()?;
        for i in 0..self.t.geo.config.max_subscribers {
            if self.t.sub_entry(i).state.load(Ordering::Acquire) != ENTRY_FREE {
                continue;
            }
            if !liveness::try_acquire(&file, entry_lock_offset(i))? {
                continue;
            }
            // The lock was free: a recorded owner would be dead; reclaim
            // whatever it left, as `acquire_entry` does.
            ring::reclaim_subscriber(&self.t, i);
            ring::attach_subscriber(&self.t, i, pid, ring::Start::Zero);
            crate::crash::point("birth.reserved");
            return Ok(Some((i, file)));
        }
        Ok(None)
    }

    /// Counters of the topic and of every attached client.
    pub fn stats(&self) -> TopicStats {
        read_stats(&self.t)
    }

    /// Whether another process truncated one of the topic's segment files
    /// under the mapping (the parts touched since read as zeros). A damaged
    /// topic should be closed, unlinked and recreated.
    pub fn is_damaged(&self) -> bool {
        crate::ring::RingMemory::damaged(&self.t)
    }

    /// Whether either of the topic's names no longer leads to the file the
    /// daemon holds (removed, or replaced by another file).
    pub fn is_unlinked(&self) -> bool {
        !self.t.data.is_linked() || !self.t.subs.is_linked()
    }

    /// Marks the topic closed and wakes every waiter (they get `Closed`).
    pub fn close(&self) {
        ring::close(&self.t);
    }

    /// What clients must find when they open the topic: its nonce and the
    /// modes its files have now (read from the daemon's own descriptors).
    pub fn identity(&self) -> Result<SegmentIdentity> {
        Ok(SegmentIdentity {
            nonce: self.t.geo.nonce,
            data_mode: self.t.data.owner_and_mode()?.1,
            subs_mode: self.t.subs.owner_and_mode()?.1,
        })
    }

    /// Gives both files the group and modes of `perms` (no group: the
    /// daemon's own), through the descriptors the daemon holds.
    pub fn set_perms(&self, perms: &SegmentPerms) -> Result<()> {
        let gid = perms.gid.unwrap_or_else(|| nix::unistd::getegid().as_raw());
        self.t.data.set_perms(perms.data_mode, Some(gid))?;
        self.t.subs.set_perms(perms.subs_mode, Some(gid))
    }

    /// Removes both segments from /dev/shm (existing mappings stay valid).
    pub fn unlink(&self) -> Result<()> {
        remove_segment_files(&self.bus, self.name())
    }
}

/// Topics of `bus` that have a data segment in /dev/shm.
pub fn list_bus_topics(bus: &str) -> Result<Vec<String>> {
    names::validate_bus(bus)?;
    let mut topics: Vec<String> = segment::list_shm(&names::bus_segment_prefix(bus))?
        .iter()
        .filter_map(|f| names::parse_segment_name(bus, f))
        .filter(|(_, part)| *part == Part::Data)
        .map(|(t, _)| t)
        .collect();
    topics.sort();
    Ok(topics)
}

/// What [`remove_bus_segments`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cleaned {
    /// Files removed.
    pub removed: usize,
    /// Files under the bus's prefix that belong to another uid, left alone:
    /// (file name in /dev/shm, owner uid).
    pub foreign: Vec<(String, u32)>,
}

/// Removes every segment of `bus` from /dev/shm that this process's uid
/// owns. Files of other owners are left alone and listed: they are not this
/// bus's, and a daemon running as root must not delete another user's
/// files because of their names.
pub fn remove_bus_segments(bus: &str) -> Result<Cleaned> {
    names::validate_bus(bus)?;
    let mut out = Cleaned::default();
    for f in segment::list_shm(&names::bus_segment_prefix(bus))? {
        match segment::owner_of(&f) {
            Some((owner, _)) if owner != segment::euid() => out.foreign.push((f, owner)),
            _ => {
                if Segment::unlink(&f).is_ok() {
                    out.removed += 1;
                }
            }
        }
    }
    Ok(out)
}

/// Removes both segments of one topic, ignoring parts already gone and
/// leaving alone parts another uid owns (see [`remove_bus_segments`]).
pub fn remove_segment_files(bus: &str, topic: &str) -> Result<()> {
    names::validate_bus(bus)?;
    names::validate_topic(topic)?;
    for part in [Part::Data, Part::Subs] {
        let name = names::segment_name(bus, topic, part);
        if segment::owner_of(&name).is_some_and(|(owner, _)| owner != segment::euid()) {
            continue;
        }
        match Segment::unlink(&name) {
            Ok(()) => {}
            Err(Error::Io { source, .. }) if source.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
