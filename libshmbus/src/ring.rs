//! The broadcast ring protocol: many publishers, many subscribers, each
//! subscriber with its own cursor, policies `block` and `drop-oldest`.
//!
//! The protocol is written once, against [`RingMemory`], and runs on the
//! mapped segments in production and on plain heap memory under `loom`
//! (`loom_model.rs`). Its shared state is laid out in [`crate::layout`].
//!
//! # Shared state
//!
//! * `tail` — the next sequence number to claim. Publishers move it forward
//!   with a CAS; a claimed sequence `s` belongs to exactly one publisher.
//! * `slot[s % capacity].stamp` — `s << 2 | state`. The slot's writer stores
//!   `WRITING(s)`, writes length, timestamp and payload, then Release-stores
//!   `COMMITTED(s)` (or `ABANDONED(s)`). A stamp only ever moves forward:
//!   from the previous lap's final state (`COMMITTED`/`ABANDONED` of
//!   `s - capacity`, or `EMPTY` on the first lap) to `WRITING(s)` to final.
//! * `sub[i].cursor` — the next sequence subscriber `i` will read; it only
//!   grows while the entry is active.
//! * `pub[i].inflight` — the sequence publisher `i` is claiming or writing,
//!   stored *before* the claiming CAS (an intent), then marked `CLAIMED` once
//!   the CAS is won, so that the reaper can finish the claim of a publisher
//!   that died anywhere between claim and commit and tell it from a rival's
//!   stale intent (`reclaim_publisher`, *Dying at any step*).
//!
//! # Publishing
//!
//! 1. Claim. `block`: a publisher may claim `s` only if `s < gate + capacity`
//!    where `gate` is a lower bound of every active subscriber's cursor, so
//!    no live subscriber's unread slot is overwritten. The bound is cached
//!    per publisher and recomputed by a scan of the subscriber table only
//!    when the cache says "full" — once per `capacity` messages at most — so
//!    the cost of a publish does not grow with subscribers that keep up.
//!    `drop-oldest`: no gate.
//! 2. Begin. Wait until the slot holds the previous lap's final stamp (only
//!    a still-writing publisher of the previous lap can delay this; with no
//!    subscriber to gate, or in `drop-oldest`), then store `WRITING(s)`
//!    (a Release store: `begin_write` says why no CAS is needed).
//! 3. Write length, timestamp, payload; Release-store `COMMITTED(s)`.
//! 4. Notify `data_ready` (a fence and a load: no system call unless a
//!    subscriber sleeps).
//!
//! # Receiving
//!
//! A subscriber at cursor `c` Acquire-loads the stamp of slot `c`:
//! * `COMMITTED(c)` — copy length, timestamp and payload, then an Acquire
//!   fence and a re-load of the stamp: unchanged means nobody started to
//!   overwrite the slot during the copy (the seqlock check, which only
//!   `drop-oldest` can fail), so the copy is whole. Advance the cursor
//!   (Release: the slot may be reused only after the copy is done).
//! * `ABANDONED(c)` — skip it, count it.
//! * a sequence below `c`, or `WRITING(c)` — not yet written: wait.
//! * a sequence above `c` — lapped (`drop-oldest`): the subscriber resumes at
//!   the oldest message still in the ring and reports exactly how many it
//!   skipped with `Lagged(n)`.
//!
//! # Why a `block` subscriber never loses a message
//!
//! A publisher claims `s` only after observing every active cursor `> s -
//! capacity` (Acquire loads pairing with the subscribers' Release stores), so
//! the slot of `s - capacity` was fully read before anyone overwrites it. A
//! joining subscriber is the delicate case: a publisher may have scanned the
//! table just before the newcomer appeared. The join therefore stores the
//! entry, issues a SeqCst fence, and only then reads `tail` for its start;
//! the scan reads `tail`, issues a SeqCst fence, then reads the table. If the
//! scan missed the entry, the fences' order puts the scan's read of `tail`
//! before the newcomer's, so the gate the stale scan computed is at most the
//! newcomer's start, and its claims cannot reach the newcomer's first slot.
//! (`--from-start` history, below the start, carries no such promise: slots
//! of history overwritten during the join are skipped silently.)
//!
//! # Hostile memory
//!
//! Every value read from shared memory is checked before use: lengths against
//! the private `max_msg_size`, stamps against the cursor's residue class and
//! `tail`; loops are bounded or deadline-checked. A corrupted segment yields
//! `Error::Corrupt`, `Timeout` or `Lagged`, never a panic, an out-of-bounds
//! access or a wait past the caller's deadline.

use crate::crash::point;
use crate::error::{Error, Result};
use crate::eventcount::EventCount;
use crate::futex::WaitOutcome;
use crate::layout::{
    slot_flags, stamp, DataShared, Geometry, Policy, PubEntry, SlotHeader, SubEntry, SubsShared,
    CLAIMED, ENTRY_ACTIVE, ENTRY_FREE, ENTRY_RETIRING, MAX_SEQ, NO_SEQ,
};
use crate::sync::{fence, spin_hint, yield_now, Ordering};
use crate::wait::{self, spin_round, spins_now, Deadline, Parked, WaitStrategy};

/// Access to a topic's shared state, wherever it lives.
pub(crate) trait RingMemory {
    /// The validated, private shape of the topic.
    fn geometry(&self) -> &Geometry;
    /// Publisher-written header fields.
    fn data(&self) -> &DataShared;
    /// Wake words in the subs segment.
    fn subs(&self) -> &SubsShared;
    /// Header of the slot that holds `seq`.
    fn slot(&self, seq: u64) -> &SlotHeader;
    /// Publisher entry `i` (`i < max_publishers`).
    fn pub_entry(&self, i: u32) -> &PubEntry;
    /// Subscriber entry `i` (`i < max_subscribers`).
    fn sub_entry(&self, i: u32) -> &SubEntry;
    /// Copies `src` (at most `max_msg_size` bytes) into the payload of the
    /// slot of `seq`. Called only by the holder of `WRITING(seq)`.
    fn write_payload(&self, seq: u64, src: &[u8]);
    /// Copies the first `dst.len()` (≤ `max_msg_size`) payload bytes of the
    /// slot of `seq`. May race a later lap's writer; callers re-check the stamp.
    fn read_payload(&self, seq: u64, dst: &mut [u8]);
    /// Name of the data segment, for error messages.
    fn segment_name(&self) -> &str;
    /// Whether a segment was truncated under its mapping by another process
    /// (pages past the new end now read as zeros).
    fn damaged(&self) -> bool {
        false
    }
}

/// The error for a topic whose segment another process truncated.
fn truncated<M: RingMemory>(m: &M) -> Error {
    Error::corrupt(
        m.segment_name(),
        "the segment was truncated by another process; its contents are gone (the daemon recreates the topic; reattach)",
    )
}

/// Drives one wait loop of the ring: spins per the strategy, then parks on
/// an event count ([`crate::wait::park`]), honouring the deadline, the
/// interrupt generation and the tick.
struct Waiter {
    strategy: WaitStrategy,
    deadline: Deadline,
    spins: u32,
}

impl Waiter {
    fn new(strategy: WaitStrategy, deadline: Deadline) -> Waiter {
        Waiter {
            strategy,
            deadline,
            spins: 0,
        }
    }

    /// Waits for `ready` to produce a value. `ready` is called once per
    /// round, and once more after announcing ourselves on `ec` (so a notify
    /// between the check and the sleep is never missed); `flag` is the
    /// caller's own "I am announced" word, which stats show. `seen` is the
    /// interrupt generation the caller's handle last reported: a newer one
    /// ends the wait with `Interrupted` (and becomes the reported one).
    fn wait_for<T>(
        &mut self,
        ec: &EventCount,
        flag: &crate::sync::AtomicU32,
        seen: &mut u32,
        mut ready: impl FnMut() -> Result<Option<T>>,
    ) -> Result<T> {
        loop {
            if let Some(v) = ready()? {
                return Ok(v);
            }
            interrupted(seen)?;
            let left = self.deadline.remaining()?;
            if spins_now(self.strategy, self.spins) {
                spin_round(self.strategy, self.spins);
                self.spins = self.spins.saturating_add(1);
                continue;
            }
            match wait::park(ec, flag, *seen, left, &mut ready) {
                Parked::Ready(result) => return result,
                Parked::Slept(WaitOutcome::Interrupted) => {
                    *seen = crate::interrupt::generation();
                    return Err(Error::Interrupted);
                }
                Parked::Slept(_) => {}
            }
        }
    }
}

/// `Err(Interrupted)` if [`crate::interrupt`] was called since the handle
/// last reported it (then it counts as reported).
#[inline]
fn interrupted(seen: &mut u32) -> Result<()> {
    let now = crate::interrupt::generation();
    if now != *seen {
        *seen = now;
        return Err(Error::Interrupted);
    }
    Ok(())
}

// ---------------------------------------------------------------- publisher

/// A publisher's private state.
#[derive(Debug)]
pub(crate) struct PubLocal {
    /// Index of its entry.
    pub index: u32,
    /// Cached lower bound of every active cursor (`block` only).
    pub gate: u64,
    /// A claimed sequence whose slot we could not take in time (a stalled
    /// writer of the previous lap held it). It stays in `inflight` and is
    /// abandoned before this publisher claims anything else.
    pub pending: Option<u64>,
    /// The interrupt generation this handle last reported.
    pub interrupts: u32,
}

/// Takes publisher entry `index` (the caller holds its liveness lock and has
/// reclaimed a dead predecessor).
pub(crate) fn attach_publisher<M: RingMemory>(m: &M, index: u32, pid: u32) -> PubLocal {
    let e = m.pub_entry(index);
    e.inflight.store(NO_SEQ, Ordering::Relaxed);
    e.published.store(0, Ordering::Relaxed);
    e.blocked.store(0, Ordering::Relaxed);
    e.waiting.store(0, Ordering::Relaxed);
    e.pid.store(pid, Ordering::Relaxed);
    e.state.store(ENTRY_ACTIVE, Ordering::Release);
    point("attach.pub");
    PubLocal {
        index,
        gate: 0,
        pending: None,
        interrupts: crate::interrupt::generation(),
    }
}

/// Gives publisher entry `index` back (its owner is done with it).
pub(crate) fn detach_publisher<M: RingMemory>(m: &M, p: &PubLocal) {
    let e = m.pub_entry(p.index);
    e.inflight.store(NO_SEQ, Ordering::Relaxed);
    e.pid.store(0, Ordering::Relaxed);
    point("detach.pub");
    e.state.store(ENTRY_FREE, Ordering::Release);
}

/// Recomputes the gate: the least active cursor, and never above `tail`.
fn scan_gate<M: RingMemory>(m: &M) -> u64 {
    // SYNC POINT (join): read tail, SeqCst fence, then the table; pairs with
    // the fence in `attach_subscriber` (entry, fence, then tail).
    let mut gate = m.data().tail.load(Ordering::Acquire);
    fence(Ordering::SeqCst);
    for i in 0..m.geometry().config.max_subscribers {
        let e = m.sub_entry(i);
        if e.state.load(Ordering::Acquire) == ENTRY_ACTIVE {
            // SYNC POINT (consume): Acquire pairs with the subscriber's
            // Release store of its cursor, which it makes after its copy.
            gate = gate.min(e.cursor.load(Ordering::Acquire));
        }
    }
    gate
}

/// Number of active subscribers (a snapshot).
pub(crate) fn subscriber_count<M: RingMemory>(m: &M) -> u32 {
    (0..m.geometry().config.max_subscribers)
        .filter(|&i| m.sub_entry(i).state.load(Ordering::Relaxed) == ENTRY_ACTIVE)
        .count() as u32
}

/// Claims the next sequence without waiting: `Err(Full)` in `block` when the
/// slowest active subscriber is a whole ring behind, `Err(Closed)` once the
/// topic is closed.
pub(crate) fn try_claim<M: RingMemory>(m: &M, p: &mut PubLocal) -> Result<u64> {
    let geo = m.geometry();
    let cap = geo.capacity();
    let data = m.data();
    let entry = m.pub_entry(p.index);
    let mut t = data.tail.load(Ordering::Relaxed);
    // After a failed CAS `inflight` names a sequence another publisher won;
    // never leave it there when we give up (a death inside that window is
    // the reaper's business: see `reclaim_publisher`).
    let give_up = |err: Error| {
        entry.inflight.store(NO_SEQ, Ordering::Relaxed);
        Err(err)
    };
    // A hostile process rewriting `tail` could fail our CAS forever; honest
    // contention (at most `max_publishers` rivals) never comes near this.
    for _ in 0..1u32 << 20 {
        if data.closed.load(Ordering::Acquire) != 0 {
            return give_up(Error::Closed);
        }
        if m.damaged() {
            return give_up(truncated(m));
        }
        if t >= MAX_SEQ {
            return give_up(Error::corrupt(
                m.segment_name(),
                "sequence space exhausted or tail corrupted",
            ));
        }
        if geo.config.policy == Policy::Block && t >= p.gate.saturating_add(cap) {
            p.gate = scan_gate(m);
            if t >= p.gate.saturating_add(cap) {
                return give_up(Error::Full);
            }
        }
        // Record the intent before the claim: if we die after the CAS
        // succeeds, the reaper finds `t` here and abandons the slot.
        // SYNC POINT (intent): Release (a plain store on x86), pairing with
        // the reaper's Acquire load of our record in `live_rival_naming`:
        // a reaper that reads this or any later value also sees what we
        // did before it, our commits included. The AcqRel CAS below orders
        // the intent before the claim.
        entry.inflight.store(t, Ordering::Release);
        point("claim.intent");
        match data
            .tail
            .compare_exchange_weak(t, t + 1, Ordering::AcqRel, Ordering::Relaxed)
        {
            Ok(_) => {
                point("claim.cas");
                // The claim is won: mark the record so that a reaper can
                // tell it from a rival's stale intent for the same `t`.
                // Relaxed: a reaper that still reads the bare intent `t`
                // treats it as a possible owner (it waits), never as free.
                entry.inflight.store(t | CLAIMED, Ordering::Relaxed);
                point("claim.won");
                return Ok(t);
            }
            Err(now) => t = now,
        }
    }
    give_up(Error::corrupt(
        m.segment_name(),
        "the tail changes under every claim (another process is rewriting it)",
    ))
}

/// Claims the next sequence, waiting per `strategy` until `deadline` while
/// the ring is full.
pub(crate) fn claim<M: RingMemory>(
    m: &M,
    p: &mut PubLocal,
    strategy: WaitStrategy,
    deadline: Deadline,
) -> Result<u64> {
    finish_pending(m, p, deadline)?;
    match try_claim(m, p) {
        Err(Error::Full) => {}
        other => return other,
    }
    m.data().blocked.fetch_add(1, Ordering::Relaxed);
    let e = m.pub_entry(p.index);
    e.blocked.store(
        e.blocked.load(Ordering::Relaxed).wrapping_add(1),
        Ordering::Relaxed,
    );
    let space = &m.subs().space_ready;
    let mut waiter = Waiter::new(strategy, deadline);
    let mut seen = p.interrupts;
    let r = waiter.wait_for(space, &e.waiting, &mut seen, || match try_claim(m, p) {
        Ok(s) => Ok(Some(s)),
        Err(Error::Full) => Ok(None),
        Err(err) => Err(err),
    });
    p.interrupts = seen;
    r
}

/// Takes the slot of claimed sequence `seq` for writing: waits (bounded by
/// `deadline`) until the previous lap's writer has finished with it, then
/// marks it `WRITING(seq)`.
pub(crate) fn begin_write<M: RingMemory>(m: &M, seq: u64, mut deadline: Deadline) -> Result<()> {
    let cap = m.geometry().capacity();
    let slot = m.slot(seq);
    let mut rounds: u32 = 0;
    loop {
        let st = slot.stamp.load(Ordering::Acquire);
        let free = if seq < cap {
            st == stamp::pack(0, stamp::EMPTY)
        } else {
            stamp::seq(st) == seq - cap
                && matches!(stamp::state(st), stamp::COMMITTED | stamp::ABANDONED)
        };
        if free {
            // A plain store, not a CAS: no honest process writes this stamp
            // while the previous lap is final and `seq` is ours. Other
            // publishers write other sequences; the slot's next writer
            // (`seq + cap`) waits for our final stamp; and the reaper only
            // abandons a dead publisher's claim when no live entry names
            // `seq` in `inflight` (`reclaim_publisher`), while we name it
            // there from before our claim until our commit. (A CAS here was a full
            // barrier on every publish, the largest single cost the fast-path
            // ablation in docs/performance.md found.)
            //
            // SYNC POINT (claim visibility): Release pairs with the Acquire
            // stamp load in `lapped`: whoever sees WRITING(seq) then sees our
            // claim, tail > seq.
            slot.stamp
                .store(stamp::pack(seq, stamp::WRITING), Ordering::Release);
            // SYNC POINT (seqlock): the WRITING stamp must be visible before
            // any byte of the new payload; pairs with the reader's Acquire
            // fence before its re-check of the stamp.
            fence(Ordering::Release);
            point("write.begin");
            return Ok(());
        } else if stamp::seq(st) >= seq && st != 0 {
            // Only we may write `seq`, and nothing later can precede us.
            return Err(Error::corrupt(
                m.segment_name(),
                format!("slot of sequence {seq} already carries stamp {st:#x}"),
            ));
        }
        // The previous lap's writer is still at work (or dead, until the
        // reaper abandons its slot). This is rare: a whole ring in flight.
        if m.data().closed.load(Ordering::Acquire) != 0 {
            return Err(Error::Closed);
        }
        if m.damaged() {
            return Err(truncated(m));
        }
        rounds = rounds.saturating_add(1);
        match deadline {
            Deadline::Now if rounds > 1024 => return Err(Error::Timeout),
            Deadline::At(_) | Deadline::After(_) => {
                deadline.remaining()?;
            }
            _ => {}
        }
        if rounds < 64 {
            spin_hint();
        } else if rounds < 1024 || cfg!(loom) {
            yield_now();
        } else {
            #[cfg(not(loom))]
            std::thread::sleep(std::time::Duration::from_micros(50));
        }
    }
}

/// Abandons a claimed sequence left over by a timed-out `begin_write`.
pub(crate) fn finish_pending<M: RingMemory>(
    m: &M,
    p: &mut PubLocal,
    deadline: Deadline,
) -> Result<()> {
    if let Some(seq) = p.pending {
        begin_write(m, seq, deadline)?;
        p.pending = None;
        abandon(m, p, seq);
    }
    Ok(())
}

/// Publishes `seq` (whose slot is ours in `WRITING` state) with `len` bytes
/// already written.
pub(crate) fn commit<M: RingMemory>(m: &M, p: &PubLocal, seq: u64, len: u32, timestamp_ns: u64) {
    commit_slot(m, p, seq, len, 0, timestamp_ns);
}

/// `commit` with the slot's flags: 0 for a message, `slot_flags::LOSS` for
/// a loss marker (then `word` is the count lost, and the publisher's
/// `published` count does not move: a marker is not a message).
fn commit_slot<M: RingMemory>(m: &M, p: &PubLocal, seq: u64, len: u32, flags: u32, word: u64) {
    let slot = m.slot(seq);
    slot.len.store(len, Ordering::Relaxed);
    slot.flags.store(flags, Ordering::Relaxed);
    slot.timestamp_ns.store(word, Ordering::Relaxed);
    // SYNC POINT (commit): Release pairs with the subscriber's Acquire load
    // of the stamp: payload, length, flags and timestamp happen-before the
    // read.
    slot.stamp
        .store(stamp::pack(seq, stamp::COMMITTED), Ordering::Release);
    point("commit.stamp");
    let e = m.pub_entry(p.index);
    // SYNC POINT (intent): Release, pairing with the reaper's Acquire load
    // in `live_rival_naming`: a reaper that reads this (or any later) value
    // of our record sees the commit above.
    e.inflight.store(NO_SEQ, Ordering::Release);
    point("commit.clear");
    if flags == 0 {
        e.published.store(
            e.published.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Relaxed,
        );
    }
    m.subs().data_ready.notify_all();
    point("commit.notify");
}

/// Publishes a loss marker for `lost` messages lost upstream of this ring
/// (a bridge's remote gap): a slot claimed and committed like a message,
/// with `slot_flags::LOSS`, which every subscriber consumes as
/// `Err(Lagged(lost))` in its place in the sequence. Waits for room as a
/// publish does.
pub(crate) fn publish_loss<M: RingMemory>(
    m: &M,
    p: &mut PubLocal,
    lost: u64,
    strategy: WaitStrategy,
    deadline: Deadline,
) -> Result<u64> {
    let seq = claim(m, p, strategy, deadline)?;
    if let Err(e) = begin_write(m, seq, deadline) {
        p.pending = Some(seq);
        return Err(e);
    }
    commit_slot(m, p, seq, 0, slot_flags::LOSS, lost);
    Ok(seq)
}

/// Gives up claimed sequence `seq` (a dropped loan): subscribers skip it.
pub(crate) fn abandon<M: RingMemory>(m: &M, p: &PubLocal, seq: u64) {
    m.slot(seq)
        .stamp
        .store(stamp::pack(seq, stamp::ABANDONED), Ordering::Release);
    point("abandon.stamp");
    m.pub_entry(p.index)
        .inflight
        .store(NO_SEQ, Ordering::Release);
    m.data().abandoned.fetch_add(1, Ordering::Relaxed);
    m.subs().data_ready.notify_all();
}

/// The whole copy path: claim, begin, copy, commit.
pub(crate) fn publish<M: RingMemory>(
    m: &M,
    p: &mut PubLocal,
    msg: &[u8],
    timestamp_ns: u64,
    strategy: WaitStrategy,
    deadline: Deadline,
) -> Result<u64> {
    let max = m.geometry().config.max_msg_size as usize;
    if msg.len() > max {
        return Err(Error::TooLarge {
            len: msg.len(),
            max,
        });
    }
    let seq = claim(m, p, strategy, deadline)?;
    if let Err(e) = begin_write(m, seq, deadline) {
        // The slot is not ours yet; keep the claim in `inflight` and abandon
        // it before the next claim (or the reaper does, if we die).
        p.pending = Some(seq);
        return Err(e);
    }
    m.write_payload(seq, msg);
    point("write.payload");
    commit(m, p, seq, msg.len() as u32, timestamp_ns);
    Ok(seq)
}

// --------------------------------------------------------------- subscriber

/// A subscriber's private state: the authoritative copy of its cursor.
#[derive(Debug)]
pub(crate) struct SubLocal {
    /// Index of its entry.
    pub index: u32,
    /// Next sequence to read.
    pub cursor: u64,
    /// Sequences below this are history from before the join: losing them
    /// to a lap is not reported.
    pub join_tail: u64,
    /// The interrupt generation this handle last reported.
    pub interrupts: u32,
}

/// Where a new subscriber starts reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Start {
    /// At the next message published.
    Tail,
    /// At the oldest message still in the ring; older ones are history,
    /// not losses.
    Retained,
    /// At sequence 0, with every message it can no longer read reported
    /// as lost (`Lagged(n)` at the first receive, from the lap logic): a
    /// topic that should have been followed since its birth.
    Zero,
}

/// Takes subscriber entry `index` (the caller holds its liveness lock and
/// has reclaimed a dead predecessor) and picks the start per the join
/// protocol in the module doc.
pub(crate) fn attach_subscriber<M: RingMemory>(
    m: &M,
    index: u32,
    pid: u32,
    from: Start,
) -> SubLocal {
    let cap = m.geometry().capacity();
    let e = m.sub_entry(index);
    // Clamped: a forged tail beyond the sequence space must not put the
    // cursor where `+ 1` overflows; `peek` then reports the tail as corrupt.
    let guess = m.data().tail.load(Ordering::Acquire).min(MAX_SEQ);
    let first = match from {
        Start::Tail => guess,
        Start::Retained => guess.saturating_sub(cap),
        // Behind the oldest slot, a `block` topic's publishers wait for
        // this cursor until the first receive moves it past the lap.
        Start::Zero => 0,
    };
    e.cursor.store(first, Ordering::Relaxed);
    e.delivered.store(0, Ordering::Relaxed);
    e.lost.store(0, Ordering::Relaxed);
    e.abandoned.store(0, Ordering::Relaxed);
    e.waiting.store(0, Ordering::Relaxed);
    e.pid.store(pid, Ordering::Relaxed);
    e.state.store(ENTRY_ACTIVE, Ordering::Release);
    point("attach.sub.entry");
    // SYNC POINT (join): entry, SeqCst fence, then tail; pairs with
    // `scan_gate` (tail, fence, then entries).
    fence(Ordering::SeqCst);
    let t = m.data().tail.load(Ordering::Acquire).min(MAX_SEQ);
    let start = match from {
        Start::Tail => t,
        Start::Retained => first.max(t.saturating_sub(cap)),
        Start::Zero => 0,
    };
    e.cursor.store(start, Ordering::Release);
    point("attach.sub.start");
    if start > first && m.geometry().config.policy == Policy::Block {
        // A publisher may have seen our provisional cursor, found the ring
        // full and parked: moving the cursor forward frees space, so wake it
        // as any consume would (found by the loom join model).
        m.subs().space_ready.force_notify_all();
    }
    SubLocal {
        index,
        cursor: start,
        join_tail: if from == Start::Zero { 0 } else { t },
        interrupts: crate::interrupt::generation(),
    }
}

/// Takes over subscriber entry `index`, which the daemon attached on this
/// process's behalf (`TopicOwner::reserve_subscriber`) and whose liveness
/// lock the caller now holds: reads the cursor the entry was given. Every
/// loss after it is reported (the join is at the topic's birth, so there is
/// no pre-join history). `None` if the entry is not an active one, or its
/// cursor is past the tail (a forged or foreign entry).
pub(crate) fn adopt_subscriber<M: RingMemory>(m: &M, index: u32) -> Option<SubLocal> {
    let e = m.sub_entry(index);
    // Acquire: pairs with the Release store of ENTRY_ACTIVE in
    // `attach_subscriber` (the daemon's, on this process's behalf).
    if e.state.load(Ordering::Acquire) != ENTRY_ACTIVE {
        return None;
    }
    // Acquire: pairs with the Release store of the start in
    // `attach_subscriber`.
    let cursor = e.cursor.load(Ordering::Acquire);
    if cursor > m.data().tail.load(Ordering::Acquire).min(MAX_SEQ) {
        return None;
    }
    Some(SubLocal {
        index,
        cursor,
        join_tail: 0,
        interrupts: crate::interrupt::generation(),
    })
}

/// Gives subscriber entry `index` back.
///
/// Three steps, so that a death between any two is repaired: the entry
/// first *retires* (it stops gating publishers, but a reaper still looks
/// at it), then the publishers that may be blocked on our cursor are woken,
/// and only then is the entry free. Dying before the wake leaves a retiring
/// entry whose lock is free: the next reap reclaims it and wakes them.
pub(crate) fn detach_subscriber<M: RingMemory>(m: &M, s: &SubLocal) {
    let e = m.sub_entry(s.index);
    e.pid.store(0, Ordering::Relaxed);
    e.state.store(ENTRY_RETIRING, Ordering::Release);
    point("detach.sub.retiring");
    // A publisher may be blocked on us.
    m.subs().space_ready.force_notify_all();
    point("detach.sub.notify");
    e.state.store(ENTRY_FREE, Ordering::Release);
}

/// A message found at the cursor, not yet consumed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Found {
    pub seq: u64,
    pub len: usize,
    pub timestamp_ns: u64,
    stamp: u64,
}

/// Looks at the slot under the cursor. `Ok(Some)` is a committed message of
/// valid length (not yet copied, cursor not moved); `Ok(None)` means nothing
/// to read yet. Abandoned slots are skipped; a lap moves the cursor and
/// returns `Err(Lagged(n))` (unless only pre-join history was lost).
pub(crate) fn peek<M: RingMemory>(m: &M, s: &mut SubLocal) -> Result<Option<Found>> {
    let geo = m.geometry();
    let cap = geo.capacity();
    let max = geo.config.max_msg_size as usize;
    if m.damaged() {
        return Err(truncated(m));
    }
    // Bounded: each round either returns or moves the cursor forward past an
    // abandoned slot; a hostile segment cannot keep us here.
    for _ in 0..cap.saturating_mul(2).max(64) {
        let c = s.cursor;
        let slot = m.slot(c);
        // SYNC POINT (commit): Acquire pairs with the writer's Release store.
        let st = slot.stamp.load(Ordering::Acquire);
        if st == stamp::pack(c, stamp::COMMITTED) {
            let len = slot.len.load(Ordering::Relaxed) as usize;
            let timestamp_ns = slot.timestamp_ns.load(Ordering::Relaxed);
            if len > max {
                // Either a writer of a later lap is mid-way (re-check), or the
                // segment is corrupt.
                fence(Ordering::Acquire);
                if slot.stamp.load(Ordering::Relaxed) != st {
                    lapped(m, s)?;
                    continue;
                }
                return Err(Error::corrupt(
                    m.segment_name(),
                    format!("message {c} claims {len} bytes, over the topic's max of {max}"),
                ));
            }
            let f = Found {
                seq: c,
                len,
                timestamp_ns,
                stamp: st,
            };
            if slot.flags.load(Ordering::Relaxed) & slot_flags::LOSS != 0 {
                // A loss marker: its count is trusted only once the
                // seqlock re-check shows the slot was not rewritten while
                // we read it (flags and count load before the fence).
                if !still_valid(m, &f) {
                    continue;
                }
                advance(m, s, c + 1);
                let lost = timestamp_ns;
                if lost == 0 {
                    continue;
                }
                let e = m.sub_entry(s.index);
                e.lost.store(
                    e.lost.load(Ordering::Relaxed).wrapping_add(lost),
                    Ordering::Relaxed,
                );
                return Err(Error::Lagged(lost));
            }
            point("recv.peek");
            return Ok(Some(f));
        }
        if st == stamp::pack(c, stamp::ABANDONED) {
            let e = m.sub_entry(s.index);
            e.abandoned.store(
                e.abandoned.load(Ordering::Relaxed).wrapping_add(1),
                Ordering::Relaxed,
            );
            advance(m, s, c + 1);
            continue;
        }
        let sseq = stamp::seq(st);
        if st == 0 || sseq < c || (sseq == c && stamp::state(st) == stamp::WRITING) {
            if m.data().closed.load(Ordering::Acquire) != 0 {
                return Err(Error::Closed);
            }
            if m.damaged() {
                // The stamp we read may be a zero page put over a truncated one.
                return Err(truncated(m));
            }
            return Ok(None);
        }
        if sseq % cap != c % cap {
            return Err(Error::corrupt(
                m.segment_name(),
                format!("slot of sequence {c} carries stamp of sequence {sseq}"),
            ));
        }
        lapped(m, s)?;
    }
    Ok(None)
}

/// The slot under the cursor was overwritten: move to the oldest message
/// still in the ring and report what was skipped.
fn lapped<M: RingMemory>(m: &M, s: &mut SubLocal) -> Result<()> {
    let cap = m.geometry().capacity();
    let c = s.cursor;
    // SYNC POINT (claim visibility): pairs with the Release store of WRITING
    // in `begin_write` and of the commit/abandon stores.
    // Stamp first, then tail: every stamp store (WRITING, the reaper's ABANDONED by CAS,
    // COMMITTED and ABANDONED by Release) follows its sequence's claim, so
    // the Acquire here makes the tail load below see that claim. In the
    // other order a claim + stamp landing between the two loads would look
    // like a stamp from the future.
    let st = m.slot(c).stamp.load(Ordering::Acquire);
    let t = m.data().tail.load(Ordering::Acquire);
    let sseq = stamp::seq(st);
    if sseq >= t || t > MAX_SEQ {
        return Err(Error::corrupt(
            m.segment_name(),
            format!("slot stamp names sequence {sseq}, at or beyond tail {t}"),
        ));
    }
    let new = (c + 1)
        .max(t.saturating_sub(cap))
        .max((sseq + 1).saturating_sub(cap));
    advance(m, s, new);
    // Pre-join history is not promised; report only what came after the join.
    let lost = new.saturating_sub(c.max(s.join_tail));
    if lost > 0 {
        let e = m.sub_entry(s.index);
        e.lost.store(
            e.lost.load(Ordering::Relaxed).wrapping_add(lost),
            Ordering::Relaxed,
        );
        return Err(Error::Lagged(lost));
    }
    Ok(())
}

/// Copies the message `f` into `buf` (at least `f.len` bytes) and verifies it
/// was not overwritten meanwhile. `Ok(true)`: the copy is whole; `Ok(false)`:
/// the slot was lapped during the copy (the caller calls `peek` again, which
/// reports the loss).
pub(crate) fn copy_out<M: RingMemory>(m: &M, f: &Found, buf: &mut [u8]) -> bool {
    m.read_payload(f.seq, &mut buf[..f.len]);
    point("recv.copy");
    still_valid(m, f)
}

/// Whether the slot of `f` still holds it (seqlock re-check).
pub(crate) fn still_valid<M: RingMemory>(m: &M, f: &Found) -> bool {
    // SYNC POINT (seqlock): pairs with the writer's Release fence after it
    // marks the slot WRITING: if any byte we read came from a new writer,
    // this load sees its stamp.
    fence(Ordering::Acquire);
    // A truncation caught during the copy leaves zeros where the payload was.
    m.slot(f.seq).stamp.load(Ordering::Relaxed) == f.stamp && !m.damaged()
}

/// Consumes `f`: moves the cursor past it.
pub(crate) fn consume<M: RingMemory>(m: &M, s: &mut SubLocal, f: &Found) {
    let e = m.sub_entry(s.index);
    e.delivered.store(
        e.delivered.load(Ordering::Relaxed).wrapping_add(1),
        Ordering::Relaxed,
    );
    advance(m, s, f.seq + 1);
}

fn advance<M: RingMemory>(m: &M, s: &mut SubLocal, to: u64) {
    s.cursor = to;
    // SYNC POINT (consume): Release pairs with the Acquire load in
    // `scan_gate`: our reads of the slot happen-before its reuse.
    m.sub_entry(s.index).cursor.store(to, Ordering::Release);
    point("recv.consume");
    if m.geometry().config.policy == Policy::Block {
        m.subs().space_ready.notify_all();
    }
    point("recv.notify");
}

/// Waits until the cursor's slot has something (message, lap or close),
/// per `strategy` and `deadline`.
pub(crate) fn wait_readable<M: RingMemory>(
    m: &M,
    s: &mut SubLocal,
    strategy: WaitStrategy,
    deadline: Deadline,
) -> Result<Found> {
    let index = s.index;
    let data_ready = &m.subs().data_ready;
    let flag = &m.sub_entry(index).waiting;
    let mut waiter = Waiter::new(strategy, deadline);
    let mut seen = s.interrupts;
    let r = waiter.wait_for(data_ready, flag, &mut seen, || peek(m, s));
    s.interrupts = seen;
    r
}

// ------------------------------------------------------------------ reaping

/// What reclaiming a dead publisher's entry did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PubReclaim {
    /// The entry was free.
    Free,
    /// Reclaimed; `abandoned` says whether a half-written slot was abandoned.
    Reclaimed { abandoned: bool },
    /// Not finished; the entry stays retiring and a later reap tries
    /// again: the dead claim's slot is still held by a writer of the
    /// previous lap, a live rival names the sequence as a bare intent (it
    /// may own it), or the stamp kept changing under the bounded abandon
    /// CAS (a hostile writer).
    Retry,
}

/// How many times the reaper retries the CAS that abandons a dead claim
/// before it returns [`PubReclaim::Retry`]: honest contention (one
/// previous-lap writer committing) fails it at most once; a hostile process
/// rewriting the stamp must not hold a single-threaded daemon in the loop.
const ABANDON_ATTEMPTS: u32 = 64;

/// Reclaims publisher entry `i`, whose owner is dead (the caller holds the
/// entry's liveness lock, which proves it): finishes its claim, if any, by
/// abandoning the slot, wakes both sides, frees the entry.
///
/// # Dying at any step
///
/// A dead publisher's `inflight` is in one of three shapes:
/// * `NO_SEQ`: no claim; nothing to finish.
/// * `t | CLAIMED`: it won `t` (its CAS succeeded) and had not committed it.
///   Nobody else can own `t`, so the slot is abandoned unless it is final.
/// * `t` alone, an *intent*: it died between storing the intent and marking
///   the claim won, and either won `t` or lost it to a rival. If no live
///   (`ACTIVE`) entry names `t`, the owner is dead or done, so `t` is
///   abandoned unless final. If a live entry names `t | CLAIMED`, that entry
///   owns it and this record is stale: leave the slot. If a live entry names
///   `t` alone, it is either the owner between its CAS and its mark or a
///   loser about to move on; which is unknowable now, so return `Retry` and
///   look again at the next reap (the entry stays retiring, its record
///   intact). Only a rival stopped (SIGSTOP) inside those few instructions
///   holds the reap back, and only for as long as it stays stopped.
///
/// Why the reaper sees the owner's record: it loads `tail > t` with
/// Acquire, and `tail` moves only by RMW, so that load synchronizes with the
/// owner's claiming CAS, before which the owner stored its intent `t`. Every
/// later value of the owner's record (`t | CLAIMED`, then `NO_SEQ` after the
/// commit, then later intents) is either `t` still or a Release store made
/// after the commit, which then makes the committed stamp visible to the
/// stamp load below, so a finished claim is never abandoned.
///
/// The entry first *retires* so that two dead publishers whose records name
/// the same `t` do not hold each other back: a retiring entry is nobody's
/// rival. Whatever the reaper did, it then wakes both sides: a publisher
/// killed after its commit but before its notify, or a reaper killed before
/// its own, would otherwise leave a waiter asleep beside a readable slot.
/// The wakes are unconditional (a reap is rare: two system calls).
pub(crate) fn reclaim_publisher<M: RingMemory>(m: &M, i: u32) -> PubReclaim {
    let e = m.pub_entry(i);
    if e.state.load(Ordering::Acquire) == ENTRY_FREE {
        return PubReclaim::Free;
    }
    e.state.store(ENTRY_RETIRING, Ordering::Release);
    point("reap.retiring");
    let mut abandoned = false;
    let record = e.inflight.load(Ordering::Acquire);
    if record != NO_SEQ {
        let won = record & CLAIMED != 0;
        let seq = record & !CLAIMED;
        if seq < m.data().tail.load(Ordering::Acquire) {
            let ours = won
                || match live_rival_naming(m, i, seq) {
                    None => true,
                    Some(true) => false, // the rival won it; our intent is stale
                    Some(false) => return PubReclaim::Retry,
                };
            if ours {
                match abandon_dead_claim(m, seq) {
                    Some(a) => abandoned = a,
                    None => return PubReclaim::Retry,
                }
            }
        }
    }
    point("reap.abandon");
    e.waiting.store(0, Ordering::Relaxed);
    m.data().reaped_publishers.fetch_add(1, Ordering::Relaxed);
    if abandoned {
        m.data().abandoned.fetch_add(1, Ordering::Relaxed);
    }
    wake_both_sides(m);
    point("reap.wake");
    e.inflight.store(NO_SEQ, Ordering::Relaxed);
    e.pid.store(0, Ordering::Relaxed);
    e.state.store(ENTRY_FREE, Ordering::Release);
    point("reap.free");
    PubReclaim::Reclaimed { abandoned }
}

/// Abandons the slot of `seq`, claimed by a dead publisher, unless it is
/// final already. `Some(true)`: abandoned now; `Some(false)`: it was final
/// (committed or abandoned before the death, or by another reaper); `None`:
/// a live writer of the previous lap still holds the slot, or the stamp kept
/// changing under the CAS (retry later).
fn abandon_dead_claim<M: RingMemory>(m: &M, seq: u64) -> Option<bool> {
    let cap = m.geometry().capacity();
    let slot = m.slot(seq);
    for _ in 0..ABANDON_ATTEMPTS {
        let st = slot.stamp.load(Ordering::Acquire);
        let prev_final = if seq < cap {
            st == 0
        } else {
            stamp::seq(st) == seq - cap
                && matches!(stamp::state(st), stamp::COMMITTED | stamp::ABANDONED)
        };
        if st == stamp::pack(seq, stamp::WRITING) || prev_final {
            // The claim is ours to finish. CAS so that a concurrent change
            // (a previous-lap writer committing) is not clobbered.
            if slot
                .stamp
                .compare_exchange(
                    st,
                    stamp::pack(seq, stamp::ABANDONED),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
            {
                return Some(true);
            }
            continue;
        }
        if stamp::seq(st) >= seq {
            return Some(false); // committed before death, or already moved on
        }
        return None;
    }
    None
}

/// Whether an *active* publisher other than `i` names `seq` in `inflight`:
/// `Some(true)` as a won claim, `Some(false)` as an intent only, `None` if
/// none does. Retiring entries (dead, being reaped) do not count.
fn live_rival_naming<M: RingMemory>(m: &M, i: u32, seq: u64) -> Option<bool> {
    let mut found = None;
    for j in 0..m.geometry().config.max_publishers {
        let e = m.pub_entry(j);
        if j == i || e.state.load(Ordering::Acquire) != ENTRY_ACTIVE {
            continue;
        }
        // SYNC POINT (intent): Acquire pairs with the Release stores of the
        // record in `try_claim` and `commit_slot`.
        let r = e.inflight.load(Ordering::Acquire);
        if r != NO_SEQ && r & !CLAIMED == seq {
            if r & CLAIMED != 0 {
                return Some(true);
            }
            found = Some(false);
        }
    }
    found
}

/// Wakes every waiter on both event counts (after a reap, and when a
/// restarted daemon adopts the topic: a wake its predecessor owed when it
/// died is sent again).
pub(crate) fn wake_both_sides<M: RingMemory>(m: &M) {
    m.subs().data_ready.force_notify_all();
    m.subs().space_ready.force_notify_all();
}

/// Reclaims subscriber entry `i`, whose owner is dead (the caller holds its
/// liveness lock): its cursor stops gating publishers. Returns whether the
/// entry was in use (active, or retiring: its owner died mid-detach).
/// Wakes both sides whatever it found, for the reasons given at
/// [`reclaim_publisher`].
pub(crate) fn reclaim_subscriber<M: RingMemory>(m: &M, i: u32) -> bool {
    let e = m.sub_entry(i);
    if e.state.load(Ordering::Acquire) == ENTRY_FREE {
        return false;
    }
    e.state.store(ENTRY_RETIRING, Ordering::Release);
    point("reap.retiring");
    e.waiting.store(0, Ordering::Relaxed);
    m.subs().reaped_subscribers.fetch_add(1, Ordering::Relaxed);
    // Publishers blocked on the dead cursor may go on.
    wake_both_sides(m);
    point("reap.wake");
    e.pid.store(0, Ordering::Relaxed);
    e.state.store(ENTRY_FREE, Ordering::Release);
    point("reap.free");
    true
}

/// Marks the topic closed and wakes every waiter; they return `Closed`.
pub(crate) fn close<M: RingMemory>(m: &M) {
    m.data().closed.store(1, Ordering::Release);
    m.subs().data_ready.force_notify_all();
    m.subs().space_ready.force_notify_all();
}
