//! Receiving from a topic: every subscriber sees every message (broadcast),
//! in sequence order, never torn, never twice.
//!
//! What a slow subscriber sees depends on the topic's policy:
//! * `block` — nothing is ever lost while it is attached: publishers wait
//!   for it. (If it stops for good — SIGSTOP, a deadlock — publishers time
//!   out; if it dies, the daemon's reaper releases them within about a
//!   second.)
//! * `drop-oldest` — once it falls a whole ring behind, the next receive
//!   returns `Err(Error::Lagged(n))` with the exact number `n` of sequence
//!   numbers it skipped: messages overwritten before it could read them
//!   (plus, rarely, sequences whose publisher abandoned them inside the
//!   skipped span, which never held a message). The receive after that
//!   returns the oldest message still in the ring. Loss is never silent.
//!
//! A subscriber starts at the next message published after it attached, or,
//! with [`SubscribeOptions::from_start`], at the oldest message still in the
//! ring (history for late joiners). Slots abandoned by a publisher that died
//! mid-write, or dropped a loan, are skipped: they were never messages.
//!
//! ```no_run
//! # fn main() -> shmbus::Result<()> {
//! let bus = shmbus::Bus::connect("default")?;
//! let mut sub = bus.subscriber("sensors/imu/0", Default::default())?;
//! loop {
//!     match sub.recv() {
//!         Ok(msg) => println!("#{} {} bytes", msg.seq, msg.data.len()),
//!         Err(shmbus::Error::Lagged(n)) => eprintln!("lost {n} messages"),
//!         Err(shmbus::Error::Closed) => break,
//!         Err(e) => return Err(e),
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! The receive path allocates nothing and makes no system call unless it
//! has to sleep. `recv` copies each message into a private buffer made at
//! attach time. `recv_ref` gives a [`MessageGuard`]: on `block` topics it
//! reads the message in place in shared memory (publishers wait for this
//! subscriber before reusing the slot); on `drop-oldest` topics, where a
//! publisher may overwrite the slot at any time, the guard holds a copy in
//! that same private buffer, checked whole before the guard is handed out.
//! Bytes that another process may be writing are only ever read with atomic
//! loads, never through a `&[u8]`.

use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::futex::WaitOutcome;
use crate::layout::{Geometry, Policy, TopicConfig};
use crate::liveness;
use crate::ring::{self, Found, RingMemory, SubLocal};
use crate::sync::Ordering;
use crate::topic::{MappedTopic, TopicTrust};
use crate::wait::{Deadline, WaitStrategy};

/// How a subscriber starts and waits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SubscribeOptions {
    /// Start at the oldest message still in the ring instead of the next one.
    pub from_start: bool,
    /// How blocking receives wait.
    pub wait: WaitStrategy,
}

/// A message, borrowed from the subscriber's buffer until the next receive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    /// The topic it was published on (for a
    /// [`PatternSubscriber`](crate::PatternSubscriber), the matching topic).
    pub topic: &'a str,
    /// Topic-wide sequence number (strictly increasing).
    pub seq: u64,
    /// Publish time, ns since the Unix epoch (`CLOCK_REALTIME` to within
    /// about a microsecond; not monotonic: order is `seq`).
    pub timestamp_ns: u64,
    /// The payload.
    pub data: &'a [u8],
}

/// A message owned by the caller (from [`Subscriber::messages`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedMessage {
    /// Topic-wide sequence number.
    pub seq: u64,
    /// Publish time, ns since the Unix epoch (as [`Message::timestamp_ns`]).
    pub timestamp_ns: u64,
    /// The payload.
    pub data: Vec<u8>,
}

/// A handle that receives every message of one topic.
#[derive(Debug)]
pub struct Subscriber {
    t: MappedTopic,
    local: SubLocal,
    strategy: WaitStrategy,
    buf: Box<[u8]>,
    /// The interrupt generation [`wait_any`] last reported for this handle
    /// (blocking receives keep their own, in `local`).
    wait_any_seen: std::sync::atomic::AtomicU32,
}

impl Subscriber {
    /// Attaches to an existing topic of `bus` directly through its segments,
    /// mapping the message data read-only. Without the daemon to vouch for
    /// them, only segments owned by this process's own uid are trusted.
    pub fn attach(bus: &str, topic: &str, opts: SubscribeOptions) -> Result<Subscriber> {
        Subscriber::attach_trusted(bus, topic, opts, &TopicTrust::own())
    }

    /// Attaches to segments that `trust` accepts.
    pub(crate) fn attach_trusted(
        bus: &str,
        topic: &str,
        opts: SubscribeOptions,
        trust: &TopicTrust,
    ) -> Result<Subscriber> {
        let from = if opts.from_start {
            ring::Start::Retained
        } else {
            ring::Start::Tail
        };
        Subscriber::attach_at(bus, topic, from, opts.wait, trust)
    }

    /// Attaches at `from` to segments that `trust` accepts.
    pub(crate) fn attach_at(
        bus: &str,
        topic: &str,
        from: ring::Start,
        strategy: WaitStrategy,
        trust: &TopicTrust,
    ) -> Result<Subscriber> {
        let t = MappedTopic::open(bus, topic, false, trust)?;
        let index = t
            .acquire_entry(false)?
            .ok_or_else(|| Error::TooManyClients {
                role: "subscriber",
                topic: topic.to_string(),
                max: t.geometry().config.max_subscribers,
            })?;
        let local = ring::attach_subscriber(&t, index, std::process::id(), from);
        Ok(Subscriber::assemble(t, local, strategy))
    }

    /// The handle on mapped topic `t` whose entry `local` describes: its
    /// private receive buffer made once, here.
    fn assemble(t: MappedTopic, local: SubLocal, strategy: WaitStrategy) -> Subscriber {
        let buf = vec![0u8; t.geometry().config.max_msg_size as usize].into_boxed_slice();
        Subscriber {
            wait_any_seen: std::sync::atomic::AtomicU32::new(local.interrupts),
            t,
            local,
            strategy,
            buf,
        }
    }

    /// Takes over subscriber entry `index` of `topic`, which the daemon
    /// attached at the topic's birth on this process's behalf and whose
    /// liveness lock `subs_file` (the descriptor it passed) holds. The subs
    /// segment is mapped from that descriptor, after the same identity
    /// checks as a named open.
    pub(crate) fn adopt(
        bus: &str,
        topic: &str,
        trust: &TopicTrust,
        subs_file: std::fs::File,
        index: u32,
        strategy: WaitStrategy,
    ) -> Result<Subscriber> {
        let t = MappedTopic::open_with(bus, topic, false, trust, Some(subs_file))?;
        let bad = || {
            Error::Protocol(format!(
                "shmbusd announced subscriber entry {index} of `{topic}`, which is not one held for this process"
            ))
        };
        if index >= t.geometry().config.max_subscribers {
            return Err(bad());
        }
        crate::crash::point("birth.adopt");
        let local = ring::adopt_subscriber(&t, index).ok_or_else(bad)?;
        Ok(Subscriber::assemble(t, local, strategy))
    }

    /// One receive that never waits, copying the message into the private
    /// buffer and consuming it: `Ok(Some(found))`, read it with
    /// [`Subscriber::copied`]. The result borrows nothing, so a caller
    /// choosing among many subscribers can loop over them.
    pub(crate) fn poll_copy(&mut self) -> Result<Option<Found>> {
        loop {
            let Some(f) = ring::peek(&self.t, &mut self.local)? else {
                return Ok(None);
            };
            if ring::copy_out(&self.t, &f, &mut self.buf) {
                ring::consume(&self.t, &mut self.local, &f);
                return Ok(Some(f));
            }
            // Overwritten while we copied: the next peek reports the lap.
        }
    }

    /// The message [`Subscriber::poll_copy`] just copied.
    pub(crate) fn copied(&self, f: &Found) -> Message<'_> {
        Message {
            topic: self.t.topic(),
            seq: f.seq,
            timestamp_ns: f.timestamp_ns,
            data: &self.buf[..f.len],
        }
    }

    /// The event count publishers notify, and this subscriber's "asleep"
    /// flag, for a caller that parks on many topics at once.
    pub(crate) fn wake_words(&self) -> (&crate::eventcount::EventCount, &crate::sync::AtomicU32) {
        (
            &self.t.subs().data_ready,
            &self.t.sub_entry(self.local.index).waiting,
        )
    }

    /// The topic's nonce (tells apart two topics of one name, the one
    /// removed and the one made since).
    pub(crate) fn nonce(&self) -> u64 {
        self.t.geometry().nonce
    }

    /// Topic name.
    pub fn topic(&self) -> &str {
        self.t.topic()
    }

    /// The topic's settings.
    pub fn config(&self) -> &TopicConfig {
        &self.t.geometry().config
    }

    /// How blocking receives wait.
    pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
        self.strategy = strategy;
    }

    /// Messages published that this subscriber has not read yet.
    pub fn lag(&self) -> u64 {
        self.t
            .data()
            .tail
            .load(Ordering::Acquire)
            .saturating_sub(self.local.cursor)
    }

    /// Sequence number of the next message this subscriber will read.
    pub fn next_seq(&self) -> u64 {
        self.local.cursor
    }

    /// Slots this subscriber skipped because their publisher gave them up
    /// (a dropped loan, or a publisher killed mid-write and reaped). These
    /// sequence numbers never carried a message, so they are not losses.
    pub fn skipped(&self) -> u64 {
        self.t
            .sub_entry(self.local.index)
            .abandoned
            .load(Ordering::Relaxed)
    }

    /// Receives the next message, waiting for it. `Err(Lagged(n))` once after
    /// `n` messages were lost (drop-oldest), `Err(Closed)` when the topic is
    /// closed, `Err(Interrupted)` if a signal arrives while waiting.
    pub fn recv(&mut self) -> Result<Message<'_>> {
        self.recv_with(Deadline::Never)
    }

    /// Receives the next message if one is there.
    pub fn try_recv(&mut self) -> Result<Option<Message<'_>>> {
        match self.recv_with(Deadline::Now) {
            Ok(m) => Ok(Some(m)),
            Err(Error::Timeout) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Receives the next message, waiting at most `timeout`.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Message<'_>> {
        self.recv_with(Deadline::after(timeout))
    }

    fn recv_with(&mut self, deadline: Deadline) -> Result<Message<'_>> {
        loop {
            let f = self.wait_found(deadline)?;
            if ring::copy_out(&self.t, &f, &mut self.buf) {
                ring::consume(&self.t, &mut self.local, &f);
                return Ok(Message {
                    topic: self.t.topic(),
                    seq: f.seq,
                    timestamp_ns: f.timestamp_ns,
                    data: &self.buf[..f.len],
                });
            }
            // Overwritten while we copied: the next look reports the lap.
        }
    }

    fn wait_found(&mut self, deadline: Deadline) -> Result<Found> {
        if deadline == Deadline::Now {
            return ring::peek(&self.t, &mut self.local)?.ok_or(Error::Timeout);
        }
        ring::wait_readable(&self.t, &mut self.local, self.strategy, deadline)
    }

    /// Receives the next message through a [`MessageGuard`], waiting for
    /// it. On `block` topics the guard reads the message in place in shared
    /// memory (zero copy). On `drop-oldest` topics it holds a private copy
    /// (the copy `recv` makes, into the same buffer), checked whole against
    /// the slot's stamp before it is returned: a message overwritten while
    /// copied is not returned, and the receive reports the loss as
    /// `Err(Lagged(n))` instead, as `recv` does.
    pub fn recv_ref(&mut self) -> Result<MessageGuard<'_>> {
        self.recv_ref_with(Deadline::Never)
    }

    /// `recv_ref` without waiting.
    pub fn try_recv_ref(&mut self) -> Result<Option<MessageGuard<'_>>> {
        match self.recv_ref_with(Deadline::Now) {
            Ok(g) => Ok(Some(g)),
            Err(Error::Timeout) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `recv_ref`, waiting at most `timeout`.
    pub fn recv_ref_timeout(&mut self, timeout: Duration) -> Result<MessageGuard<'_>> {
        self.recv_ref_with(Deadline::after(timeout))
    }

    fn recv_ref_with(&mut self, deadline: Deadline) -> Result<MessageGuard<'_>> {
        if self.t.geometry().config.policy == Policy::Block {
            // In place: publishers wait for this subscriber before they
            // reuse the slot (see `MessageGuard::data`).
            let found = self.wait_found(deadline)?;
            return Ok(MessageGuard {
                sub: self,
                found,
                copied: false,
                confirmed: std::cell::Cell::new(false),
            });
        }
        // drop-oldest: a publisher may overwrite the slot at any time, so
        // the bytes are never exposed in place. Copy them (atomically) into
        // the private buffer and check the copy whole, as `recv_with` does.
        loop {
            let found = self.wait_found(deadline)?;
            if ring::copy_out(&self.t, &found, &mut self.buf) {
                return Ok(MessageGuard {
                    sub: self,
                    found,
                    copied: true,
                    // Whole: delivered, whatever happens to the slot now.
                    confirmed: std::cell::Cell::new(true),
                });
            }
            // Overwritten while we copied: the next look reports the lap
            // (`Err(Lagged(n))`, counting this message among the lost).
        }
    }

    /// An iterator of owned messages (allocates one `Vec` per message; use
    /// `recv` for the allocation-free path). Ends when the topic closes;
    /// yields `Err(Lagged(n))` items for losses.
    pub fn messages(&mut self) -> Messages<'_> {
        Messages { sub: self }
    }

    /// Whether `try_recv` would find something (message, loss or close)
    /// right now, without consuming it.
    pub(crate) fn readable(&self) -> bool {
        self.has_news() || self.closed()
    }

    /// Whether the slot under the cursor holds something to act on (a
    /// message, an abandoned slot to skip, or a lap to report).
    fn has_news(&self) -> bool {
        let c = self.local.cursor;
        let st = self.t.slot(c).stamp.load(Ordering::Acquire);
        let s = crate::layout::stamp::seq(st);
        let state = crate::layout::stamp::state(st);
        let waiting = st == 0 || s < c || (s == c && state == crate::layout::stamp::WRITING);
        !waiting
    }

    fn closed(&self) -> bool {
        self.t.data().closed.load(Ordering::Acquire) != 0
    }

    /// Whether the topic is closed and everything in it was read.
    pub(crate) fn finished(&self) -> bool {
        self.closed() && !self.has_news()
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        ring::detach_subscriber(&self.t, &self.local);
        liveness::release(
            self.t.subs_file(),
            Geometry::sub_entry_offset(self.local.index),
        );
    }
}

/// A message received with [`Subscriber::recv_ref`], held until the guard
/// is dropped.
///
/// * On `block` topics the guard reads the message **in place** in shared
///   memory: the bytes do not change while the guard lives, because
///   publishers wait for this subscriber's cursor to pass the slot, and it
///   passes only when the guard is dropped. Only a process that breaks the
///   protocol could change them meanwhile (one with write access to the data
///   segment, or one with write access to the subs segment that moves this
///   subscriber's cursor); [`MessageGuard::is_valid`] then reports the
///   overwrite.
/// * On `drop-oldest` topics, where a publisher may overwrite the slot at
///   any time, the guard holds a **private copy** (in the subscriber's
///   buffer), which was checked whole against the slot's stamp before the
///   guard was handed out; [`MessageGuard::data`] returns that copy and
///   [`MessageGuard::is_valid`] is always true.
///
/// Dropping the guard consumes the message. It counts as delivered if it was
/// confirmed whole (always, on `drop-oldest`; on `block`, by `is_valid` or
/// `copy_to`), or if it is still whole when dropped; otherwise (it was
/// overwritten while held and never confirmed) it counts as lost and is
/// reported by the next receive's `Lagged(n)`.
#[derive(Debug)]
pub struct MessageGuard<'a> {
    sub: &'a mut Subscriber,
    found: Found,
    /// Whether the message was copied into `sub.buf` and checked whole
    /// (`drop-oldest` topics): then `data` is that copy, never the slot.
    copied: bool,
    /// Whether the message was confirmed whole (the copy of a `drop-oldest`
    /// guard, or `is_valid` or `copy_to`): then it was delivered, even if
    /// overwritten before the guard is dropped.
    confirmed: std::cell::Cell<bool>,
}

impl MessageGuard<'_> {
    /// Sequence number.
    pub fn seq(&self) -> u64 {
        self.found.seq
    }

    /// Publish time, ns since the Unix epoch.
    pub fn timestamp_ns(&self) -> u64 {
        self.found.timestamp_ns
    }

    /// The payload: in shared memory on `block` topics, the guard's private
    /// copy (checked whole) on `drop-oldest` topics.
    pub fn data(&self) -> &[u8] {
        if self.copied {
            // `len ≤ max_msg_size` (checked by `peek`) = the buffer's length.
            return &self.sub.buf[..self.found.len];
        }
        debug_assert_eq!(self.sub.t.geometry().config.policy, Policy::Block);
        // SAFETY: `len ≤ max_msg_size` was checked by `peek`, so the bytes
        // lie inside the slot's payload area in the (read-only) mapping,
        // which lives as long as the subscriber we borrow, and the slice
        // borrows `self`. The bytes do not change while the slice lives:
        // this is a `block` topic (guards of `drop-oldest` topics hold a
        // copy, above); the message's writer finished before its Release
        // store of COMMITTED, which `peek` Acquire-loaded; and a publisher
        // claims the slot again only once every active subscriber's cursor
        // is past it (the gate of `try_claim`, whose Acquire loads of the
        // cursors pair with the Release store of `advance`), while this
        // subscriber's cursor stays on the message until the guard is
        // dropped, after the borrow ends. Only a process breaking the
        // protocol could change the bytes meanwhile: one with write access
        // to the data segment writing the slot (a hostile publisher, which
        // can forge messages anyway), or one with write access to the subs
        // segment moving this subscriber's shared cursor forward or freeing
        // its entry, so that honest publishers reuse the slot early. The
        // trust model accepts that for in-place `block` guards (those
        // segments are writable only by the topic's own clients: design.md
        // §6); `is_valid` then reports the overwrite.
        unsafe {
            std::slice::from_raw_parts(self.sub.t.payload_ptr(self.found.seq), self.found.len)
        }
    }

    /// Whether the message is whole: on `block` topics, whether the slot
    /// still holds it (call after reading `data`; true unless a process
    /// broke the protocol); on `drop-oldest` topics always true (the guard
    /// holds a copy that was checked whole).
    pub fn is_valid(&self) -> bool {
        if self.copied {
            return true;
        }
        let valid = ring::still_valid(&self.sub.t, &self.found);
        if valid {
            self.confirmed.set(true);
        }
        valid
    }

    /// Copies the payload into `dst` (which must be at least `len` bytes)
    /// and returns whether the copy is whole (the slot was not overwritten;
    /// always true on `drop-oldest` topics, whose guard holds a whole copy).
    pub fn copy_to(&self, dst: &mut [u8]) -> Result<bool> {
        if dst.len() < self.found.len {
            return Err(Error::TooLarge {
                len: self.found.len,
                max: dst.len(),
            });
        }
        if self.copied {
            dst[..self.found.len].copy_from_slice(self.data());
            return Ok(true);
        }
        let whole = ring::copy_out(&self.sub.t, &self.found, dst);
        if whole {
            self.confirmed.set(true);
        }
        Ok(whole)
    }
}

impl Drop for MessageGuard<'_> {
    fn drop(&mut self) {
        // Delivered if it was confirmed whole (always, for the private copy
        // of a drop-oldest guard), or if it is still whole now. Otherwise
        // (a block slot overwritten while held by a process breaking the
        // protocol, never confirmed) it was not delivered: leave the cursor
        // on it, and the next receive reports it in `Lagged(n)`.
        if self.confirmed.get() || ring::still_valid(&self.sub.t, &self.found) {
            ring::consume(&self.sub.t, &mut self.sub.local, &self.found);
        }
    }
}

/// Iterator returned by [`Subscriber::messages`].
#[derive(Debug)]
pub struct Messages<'a> {
    sub: &'a mut Subscriber,
}

impl Iterator for Messages<'_> {
    type Item = Result<OwnedMessage>;
    fn next(&mut self) -> Option<Self::Item> {
        match self.sub.recv() {
            Ok(m) => Some(Ok(OwnedMessage {
                seq: m.seq,
                timestamp_ns: m.timestamp_ns,
                data: m.data.to_vec(),
            })),
            Err(Error::Closed) => None,
            Err(e) => Some(Err(e)),
        }
    }
}

/// Waits until any of `subs` may have something to receive (a message, a
/// loss or a close), the timeout passes (`Err(Timeout)`) or a signal arrives
/// (`Err(Interrupted)`: a signal during the wait, or [`crate::interrupt`]
/// called since `wait_any` last reported one for any of these handles, even
/// just before this call). `Ok(())` may be spurious: follow with `try_recv`
/// on each. Sleeps on all the topics' futexes, and the interrupt word, at
/// once (`futex_waitv`).
pub fn wait_any(subs: &[&Subscriber], timeout: Option<Duration>) -> Result<()> {
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    let generation = crate::interrupt::generation();
    let mut interrupted = false;
    for s in subs {
        interrupted |= s
            .wait_any_seen
            .swap(generation, std::sync::atomic::Ordering::Relaxed)
            != generation;
    }
    if interrupted {
        return Err(Error::Interrupted);
    }
    let mut keys: Vec<(&crate::sync::AtomicU32, u32)> = Vec::with_capacity(subs.len() + 1);
    keys.push((crate::interrupt::word(), generation));
    for s in subs {
        let ec = &s.t.subs().data_ready;
        let key = ec.prepare();
        s.t.sub_entry(s.local.index)
            .waiting
            .store(1, Ordering::Relaxed);
        keys.push((ec_word(ec), key));
    }
    let ready = subs.iter().any(|s| s.readable());
    let outcome = if ready {
        WaitOutcome::Woken
    } else {
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if left.is_some_and(|l| l.is_zero()) {
            WaitOutcome::TimedOut
        } else {
            crate::futex::wait_any(&keys, left)
        }
    };
    for s in subs {
        s.t.sub_entry(s.local.index)
            .waiting
            .store(0, Ordering::Relaxed);
    }
    match outcome {
        WaitOutcome::Woken => Ok(()),
        WaitOutcome::TimedOut => Err(Error::Timeout),
        WaitOutcome::Interrupted => Err(Error::Interrupted),
    }
}

fn ec_word(ec: &crate::eventcount::EventCount) -> &crate::sync::AtomicU32 {
    ec.futex_word()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topic::{SegmentPerms, TopicOwner};

    /// SPEC §8: a subscriber maps the message data read-only, so a buggy or
    /// hostile subscriber cannot forge or corrupt messages for others: a
    /// write faults, and the mapping cannot be upgraded to writable.
    #[test]
    fn subscriber_cannot_write_message_data() {
        let bus = format!("unit-{}-ro", std::process::id());
        let owner =
            TopicOwner::create(&bus, "t", &TopicConfig::default(), &SegmentPerms::default())
                .unwrap();
        let s = Subscriber::attach(&bus, "t", SubscribeOptions::default()).unwrap();
        let page = s.t.payload_ptr(0) as usize & !4095;
        // SAFETY: mprotect on a page of our own live mapping; it only
        // changes protection (and must fail here).
        let rc = unsafe {
            libc::mprotect(
                page as *mut libc::c_void,
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
            )
        };
        let errno = std::io::Error::last_os_error().raw_os_error();
        assert_eq!((rc, errno), (-1, Some(libc::EACCES)));

        // SAFETY: fork in a test; the child only performs one store and
        // `_exit`s, touching no lock another thread could hold.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            // SAFETY: deliberately writes through a read-only mapping: the
            // expected outcome is SIGSEGV in this child.
            unsafe {
                std::ptr::write_volatile(s.t.payload_ptr(0), 0xAB);
                libc::_exit(0);
            }
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(
            libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGSEGV,
            "a write through the subscriber's mapping must fault, status {status:#x}"
        );
        drop(s);
        owner.unlink().unwrap();
    }

    fn topic(policy: Policy, name: &str) -> (String, TopicOwner) {
        let bus = format!("unit-{}-{name}", std::process::id());
        let cfg = TopicConfig {
            capacity: 2,
            max_msg_size: 64,
            policy,
            ..TopicConfig::default()
        };
        let owner = TopicOwner::create(&bus, "t", &cfg, &SegmentPerms::default()).unwrap();
        (bus, owner)
    }

    /// A drop-oldest guard holds a private copy, checked whole: the bytes
    /// it shows do not live in the mapping, survive the slot being
    /// overwritten while it is held, and the message counts as delivered.
    #[test]
    fn drop_oldest_guard_holds_a_whole_private_copy() {
        let (bus, owner) = topic(Policy::DropOldest, "guard-copy");
        let mut p = crate::publisher::Publisher::attach(&bus, "t").unwrap();
        let mut s = Subscriber::attach(&bus, "t", SubscribeOptions::default()).unwrap();
        p.try_send(b"m0").unwrap();
        let slot0 = s.t.payload_ptr(0) as usize;
        {
            let g = s.try_recv_ref().unwrap().expect("message 0");
            assert_eq!((g.seq(), g.data()), (0, &b"m0"[..]));
            let at = g.data().as_ptr() as usize;
            assert_ne!(
                at, slot0,
                "a drop-oldest guard must not point into the slot"
            );
            // The publisher laps the ring (capacity 2) while the guard is held.
            for m in [&b"m1"[..], b"m2", b"m3"] {
                p.try_send(m).unwrap();
            }
            assert_eq!(g.data(), b"m0", "the private copy does not change");
            assert!(g.is_valid());
            let mut out = [0u8; 64];
            assert!(g.copy_to(&mut out).unwrap());
            assert_eq!(&out[..2], b"m0");
        }
        // Delivered (the guard was whole), not reported lost.
        assert_eq!(s.next_seq(), 1);
        assert_eq!(
            s.t.sub_entry(s.local.index)
                .delivered
                .load(Ordering::Relaxed),
            1
        );
        assert!(matches!(s.try_recv(), Err(Error::Lagged(1))));
        assert_eq!(
            s.try_recv().unwrap().map(|m| m.data.to_vec()),
            Some(b"m2".to_vec())
        );
        let g = s.try_recv_ref().unwrap().expect("message 3");
        assert_eq!((g.seq(), g.data()), (3, &b"m3"[..]));
        drop(g);
        assert!(s.try_recv_ref().unwrap().is_none());
        drop((p, s));
        owner.unlink().unwrap();
    }

    /// A drop-oldest guard is made only of a whole copy: a lap found at the
    /// receive is reported as `Lagged`, then the oldest message still there.
    #[test]
    fn drop_oldest_recv_ref_reports_a_lap() {
        let (bus, owner) = topic(Policy::DropOldest, "guard-lap");
        let mut p = crate::publisher::Publisher::attach(&bus, "t").unwrap();
        let mut s = Subscriber::attach(&bus, "t", SubscribeOptions::default()).unwrap();
        for m in [&b"a"[..], b"b", b"c", b"d", b"e"] {
            p.try_send(m).unwrap();
        }
        assert!(matches!(s.try_recv_ref(), Err(Error::Lagged(3))));
        let g = s.try_recv_ref().unwrap().expect("message 3");
        assert_eq!((g.seq(), g.data(), g.is_valid()), (3, &b"d"[..], true));
        drop(g);
        drop((p, s));
        owner.unlink().unwrap();
    }

    /// On a `block` topic the guard still reads in place (zero copy).
    #[test]
    fn block_guard_reads_in_place() {
        let (bus, owner) = topic(Policy::Block, "guard-in-place");
        let mut p = crate::publisher::Publisher::attach(&bus, "t").unwrap();
        let mut s = Subscriber::attach(&bus, "t", SubscribeOptions::default()).unwrap();
        p.try_send(b"hello").unwrap();
        let slot0 = s.t.payload_ptr(0) as usize;
        let g = s.try_recv_ref().unwrap().expect("message 0");
        assert_eq!(g.data(), b"hello");
        assert_eq!(g.data().as_ptr() as usize, slot0);
        assert!(g.is_valid());
        drop(g);
        assert_eq!(s.next_seq(), 1);
        drop((p, s));
        owner.unlink().unwrap();
    }
}
