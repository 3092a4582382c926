//! Publishing to a topic: copy (`send`, `try_send`, `send_timeout`) or zero
//! copy (`loan` a slot, fill it, `commit`).
//!
//! What a publisher sees depends on the topic's policy:
//! * `block` — when the slowest live subscriber is a whole ring behind,
//!   `send` waits (per the [`WaitStrategy`]), `send_timeout` gives up with
//!   `Error::Timeout`, and `try_send` returns `Error::Full`. No message a live
//!   subscriber has not read is ever overwritten.
//! * `drop-oldest` — publishing never waits for subscribers; the oldest
//!   messages are overwritten and lagging subscribers are told how many they
//!   lost.
//!
//! The fast path — claim, copy, commit, and a check for sleeping subscribers
//! — is plain memory operations: no system call unless a subscriber sleeps,
//! no allocation, no lock.

use std::ops::{Deref, DerefMut};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::layout::TopicConfig;
use crate::liveness;
use crate::ring::{self, PubLocal, RingMemory};
use crate::topic::{MappedTopic, TopicTrust};
use crate::wait::{Deadline, WaitStrategy};

/// A handle that publishes messages on one topic. Not `Sync`: use one per
/// thread (each holds its own entry in the topic).
#[derive(Debug)]
pub struct Publisher {
    t: MappedTopic,
    local: PubLocal,
    strategy: WaitStrategy,
}

impl Publisher {
    /// Attaches to an existing topic of `bus` directly through its segments
    /// (the daemon is not involved; [`crate::Bus::publisher`] asks it to
    /// create the topic first). Without the daemon to vouch for them, only
    /// segments owned by this process's own uid are trusted.
    pub fn attach(bus: &str, topic: &str) -> Result<Publisher> {
        Publisher::attach_trusted(bus, topic, &TopicTrust::own())
    }

    /// Attaches to segments that `trust` accepts.
    pub(crate) fn attach_trusted(bus: &str, topic: &str, trust: &TopicTrust) -> Result<Publisher> {
        let t = MappedTopic::open(bus, topic, true, trust)?;
        let index = t
            .acquire_entry(true)?
            .ok_or_else(|| Error::TooManyClients {
                role: "publisher",
                topic: topic.to_string(),
                max: t.geometry().config.max_publishers,
            })?;
        let local = ring::attach_publisher(&t, index, std::process::id());
        Ok(Publisher {
            t,
            local,
            strategy: WaitStrategy::default(),
        })
    }

    /// How `send` and `send_timeout` wait when the ring is full.
    pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
        self.strategy = strategy;
    }

    /// Topic name.
    pub fn topic(&self) -> &str {
        self.t.topic()
    }

    /// The topic's settings.
    pub fn config(&self) -> &TopicConfig {
        &self.t.geometry().config
    }

    /// Largest message this topic takes.
    pub fn max_msg_size(&self) -> usize {
        self.config().max_msg_size as usize
    }

    /// Subscribers attached right now.
    pub fn subscriber_count(&self) -> u32 {
        ring::subscriber_count(&self.t)
    }

    /// Publishes `msg`, waiting while a `block` ring is full. Returns the
    /// message's sequence number. `Err(Closed)` when the topic is closed,
    /// `Err(Interrupted)` if a signal arrives while waiting.
    pub fn send(&mut self, msg: &[u8]) -> Result<u64> {
        self.send_with(msg, Deadline::Never)
    }

    /// Publishes `msg` if there is room now; `Err(Full)` otherwise.
    pub fn try_send(&mut self, msg: &[u8]) -> Result<u64> {
        self.send_with(msg, Deadline::Now).map_err(|e| match e {
            Error::Timeout => Error::Full,
            e => e,
        })
    }

    /// Publishes `msg`, waiting at most `timeout` for room.
    pub fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<u64> {
        self.send_with(msg, Deadline::after(timeout))
    }

    /// Tells every subscriber that `lost` messages were lost before this
    /// point, upstream of the topic (a bridge that saw a gap in a remote
    /// sequence, a relay that dropped input): a loss marker takes the next
    /// sequence number and each subscriber receives it, in order, as
    /// `Err(Lagged(lost))` — the report a lapped subscriber gets — and
    /// counts it in its `lost` stat. The marker is not a message (the
    /// publisher's `published` count does not move). Waits for room like
    /// `send`, at most `timeout`. `lost == 0` publishes nothing.
    pub fn report_lost(&mut self, lost: u64, timeout: Duration) -> Result<()> {
        if lost == 0 {
            return Ok(());
        }
        ring::publish_loss(
            &self.t,
            &mut self.local,
            lost,
            self.strategy,
            Deadline::after(timeout),
        )
        .map(|_| ())
    }

    fn send_with(&mut self, msg: &[u8], deadline: Deadline) -> Result<u64> {
        ring::publish(
            &self.t,
            &mut self.local,
            msg,
            crate::clock::stamp_ns(),
            self.strategy,
            deadline,
        )
    }

    /// Borrows the next slot for a message of exactly `len` bytes, waiting
    /// while a `block` ring is full. Fill it and `commit`; dropping the loan
    /// abandons the sequence (subscribers skip it).
    pub fn loan(&mut self, len: usize) -> Result<Loan<'_>> {
        self.loan_with(len, Deadline::Never)
    }

    /// `loan` without waiting: `Err(Full)` if the ring is full.
    pub fn try_loan(&mut self, len: usize) -> Result<Loan<'_>> {
        self.loan_with(len, Deadline::Now).map_err(|e| match e {
            Error::Timeout => Error::Full,
            e => e,
        })
    }

    /// `loan`, waiting at most `timeout`.
    pub fn loan_timeout(&mut self, len: usize, timeout: Duration) -> Result<Loan<'_>> {
        self.loan_with(len, Deadline::after(timeout))
    }

    fn loan_with(&mut self, len: usize, deadline: Deadline) -> Result<Loan<'_>> {
        let max = self.max_msg_size();
        if len > max {
            return Err(Error::TooLarge { len, max });
        }
        let seq = ring::claim(&self.t, &mut self.local, self.strategy, deadline)?;
        if let Err(e) = ring::begin_write(&self.t, seq, deadline) {
            self.local.pending = Some(seq);
            return Err(e);
        }
        Ok(Loan {
            p: self,
            seq,
            len,
            done: false,
        })
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        // A claim we could not finish is abandoned now (waiting a little for
        // a stalled previous-lap writer); if even that fails, the reaper
        // finishes it from `inflight`, which we then must not clear.
        let pending_left = ring::finish_pending(
            &self.t,
            &mut self.local,
            Deadline::after(Duration::from_millis(100)),
        )
        .is_err();
        if !pending_left {
            ring::detach_publisher(&self.t, &self.local);
            liveness::release(
                self.t.data_file(),
                crate::layout::Geometry::pub_entry_offset(self.local.index),
            );
        }
    }
}

/// A slot borrowed for writing a message in place. Derefs to the message's
/// `len` bytes (initially holding old data: overwrite all of them).
#[derive(Debug)]
pub struct Loan<'a> {
    p: &'a mut Publisher,
    seq: u64,
    len: usize,
    done: bool,
}

impl Loan<'_> {
    /// The sequence number the message will have.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Shortens the message to `len` bytes (no-op if not shorter).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Publishes the message; returns its sequence number.
    pub fn commit(mut self) -> u64 {
        self.done = true;
        ring::commit(
            &self.p.t,
            &self.p.local,
            self.seq,
            self.len as u32,
            crate::clock::stamp_ns(),
        );
        self.seq
    }
}

impl Deref for Loan<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: we hold WRITING(seq) on this slot, so no other writer uses
        // it; `len ≤ max_msg_size` bytes of payload lie inside the mapping.
        unsafe { std::slice::from_raw_parts(self.p.t.payload_ptr(self.seq), self.len) }
    }
}

impl DerefMut for Loan<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`; `&mut self` makes this the only view.
        unsafe { std::slice::from_raw_parts_mut(self.p.t.payload_ptr(self.seq), self.len) }
    }
}

impl Drop for Loan<'_> {
    fn drop(&mut self) {
        if !self.done {
            ring::abandon(&self.p.t, &self.p.local, self.seq);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::Policy;
    use crate::ring::PubReclaim;
    use crate::subscriber::{SubscribeOptions, Subscriber};
    use crate::sync::Ordering;
    use crate::topic::{SegmentPerms, TopicOwner};

    /// A publisher that lost the CAS for sequence `t` to a rival and died
    /// before clearing its `inflight = t` must not get the rival's live slot
    /// abandoned by the reaper.
    #[test]
    fn reaper_leaves_a_rivals_slot_named_by_a_stale_inflight() {
        let bus = format!("unit-{}-stale", std::process::id());
        let cfg = TopicConfig {
            capacity: 16,
            policy: Policy::Block,
            ..TopicConfig::default()
        };
        let owner = TopicOwner::create(&bus, "t", &cfg, &SegmentPerms::default()).unwrap();
        let mut sub = Subscriber::attach(&bus, "t", SubscribeOptions::default()).unwrap();
        let dead = Publisher::attach(&bus, "t").unwrap();
        let mut rival = Publisher::attach(&bus, "t").unwrap();
        let mut loan = rival.loan(5).unwrap();
        assert_eq!(loan.seq(), 0);
        // The dead publisher's record names the rival's sequence, as after
        // a failed CAS.
        let dead_index = dead.local.index;
        dead.t
            .pub_entry(dead_index)
            .inflight
            .store(0, Ordering::Relaxed);
        assert_eq!(
            ring::reclaim_publisher(&dead.t, dead_index),
            PubReclaim::Reclaimed { abandoned: false }
        );
        std::mem::forget(dead); // it "died": no detach
        loan.copy_from_slice(b"alive");
        loan.commit();
        let m = sub.try_recv().unwrap().expect("the rival's message");
        assert_eq!((m.seq, m.data), (0, &b"alive"[..]));
        assert_eq!(owner.stats().abandoned, 0);
        owner.unlink().unwrap();
    }

    /// Every message's time stamp lies between real-clock reads taken just
    /// before and just after its `send`, over enough messages (a few ms of
    /// sending) that the stamps come from the counter-scaled fast path
    /// (`clock::stamp_ns`), not only from the real clock.
    #[test]
    fn message_stamps_lie_within_their_send_window() {
        let bus = format!("unit-{}-stamps", std::process::id());
        let cfg = TopicConfig {
            capacity: 64,
            policy: Policy::DropOldest,
            ..TopicConfig::default()
        };
        let owner = TopicOwner::create(&bus, "t", &cfg, &SegmentPerms::default()).unwrap();
        let mut sub = Subscriber::attach(&bus, "t", SubscribeOptions::default()).unwrap();
        let mut publisher = Publisher::attach(&bus, "t").unwrap();
        let start = crate::clock::realtime_ns();
        let mut checked = 0u64;
        while crate::clock::realtime_ns() - start < 50_000_000 {
            let before = crate::clock::realtime_ns();
            publisher.send(b"x").unwrap();
            let after = crate::clock::realtime_ns();
            let m = sub.try_recv().unwrap().expect("the message just sent");
            // 20 µs of slack: the stamp's error is about a microsecond, and
            // a preempted thread must not fail the test.
            assert!(
                m.timestamp_ns + 20_000 >= before && m.timestamp_ns <= after + 20_000,
                "stamp {} outside [{before}, {after}]",
                m.timestamp_ns
            );
            checked += 1;
        }
        assert!(checked > 1000, "only {checked} messages in 50 ms");
        owner.unlink().unwrap();
    }
}
