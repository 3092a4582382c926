//! The request queue: a bounded multi-producer multi-consumer queue in
//! shared memory whose cells say *who* holds them, so that a process that
//! dies holding one can never wedge the queue.
//!
//! It is Vyukov's bounded MPMC queue with one change. In Vyukov's queue a
//! producer (consumer) claims position `pos` by a CAS on the shared
//! `enqueue_pos` (`dequeue_pos`) and only then writes (reads) the cell; a
//! process killed between the two leaves a cell that nobody can tell is
//! dead, and the queue stops there for good. Here the claim is a CAS on the
//! **cell's stamp**, which records the position, the state and the claimant:
//!
//! ```text
//!   stamp = pos << 12 | owner << 2 | state      (owner: a 10-bit entry index)
//!
//!   FREE(pos)                 the cell is free for position pos
//!     │ client c: CAS  ──────────────────────────────┐
//!   WRITING(pos, c)           c copies its request in │ c dead: CAS by the
//!     │ client c: CAS                                 │ reclaimer ────────┐
//!   FULL(pos, c)              queued                  │                   │
//!     │ server s: CAS  (the take: one CAS moves the   │                   │
//!     │                 request out of the queue)     │                   │
//!   TAKEN(pos, s)             s reads it in place     │                   │
//!     │ s: CAS when done, or the reclaimer of dead s  │                   │
//!   FREE(pos + capacity)  ◄───────────────────────────┴───────────────────┘
//! ```
//!
//! `enqueue_pos` and `dequeue_pos` are only hints of where to look: a
//! producer at `pos` claims the cell if it is `FREE(pos)`; if the cell shows
//! `pos` already claimed (any state of `pos`, or a later position) it helps
//! the hint forward by a CAS and retries; if it still holds an older
//! position the queue is full. A consumer at `pos` takes the cell if it is
//! `FULL(pos)`; `FREE(pos)`/`WRITING(pos)` means nothing is ready yet (a
//! FIFO queue: later requests wait behind a request being written); a taken
//! or later position means it helps the hint forward; an older position
//! means the queue wrapped and nothing is ready.
//!
//! # Why it is correct
//!
//! * **Exactly once.** A position moves `FREE → WRITING → FULL → TAKEN →
//!   FREE(+cap)` only by CASes that expect the exact previous stamp, so one
//!   producer writes it and one consumer takes it. A hint only moves past
//!   `pos` after someone saw `pos` claimed, so no position is skipped while
//!   free, and no full one is skipped (consumers pass `pos` only once it is
//!   taken or freed).
//! * **Publication.** The producer's `FULL` CAS is Release and the
//!   consumer's load of it Acquire: the request bytes written before are
//!   seen. The consumer's `FREE(+cap)` CAS is Release and the next
//!   producer's Acquire load of it orders the consumer's reads of the old
//!   request before the new writes.
//! * **No wedge.** Every claimed cell names its claimant. When an entry's
//!   owner is dead (its liveness lock is free), the reclaimer that holds
//!   that lock turns the owner's `WRITING(pos, c)` and `TAKEN(pos, s)`
//!   cells into `FREE(pos + cap)` with a CAS on the exact stamp: consumers
//!   then pass the position, producers reuse the cell. A *live* owner can
//!   never lose its cell this way, because its lock is held.
//! * **Hostile memory.** Stamps are validated (position in range, residue
//!   class of the cell); loops are bounded; a garbage stamp reads as "not
//!   ready" or "full", so at worst callers time out.
//!
//! Positions are 52 bits: 4.5·10^15 requests per service segment before it
//! must be recreated (seven years at 20 million calls a second).

use crate::service::layout::CellHeader;
use crate::sync::{AtomicU64, Ordering};

/// Cell states, the low two bits of a stamp.
pub(crate) mod state {
    /// Free for the stamp's position.
    pub const FREE: u64 = 0;
    /// A client is writing its request for the stamp's position.
    pub const WRITING: u64 = 1;
    /// A request is queued.
    pub const FULL: u64 = 2;
    /// A server took the request.
    pub const TAKEN: u64 = 3;
}

/// Largest queue position.
pub(crate) const MAX_POS: u64 = (1 << 52) - 1;
const OWNER_MASK: u64 = 0x3ff;

/// Packs a stamp.
#[inline]
pub(crate) const fn pack(pos: u64, owner: u32, st: u64) -> u64 {
    (pos << 12) | ((owner as u64 & OWNER_MASK) << 2) | st
}

/// Position of a stamp.
#[inline]
pub(crate) const fn pos_of(stamp: u64) -> u64 {
    stamp >> 12
}

/// Owner (entry index) of a stamp.
#[inline]
pub(crate) const fn owner_of(stamp: u64) -> u32 {
    ((stamp >> 2) & OWNER_MASK) as u32
}

/// State of a stamp.
#[inline]
pub(crate) const fn state_of(stamp: u64) -> u64 {
    stamp & 3
}

/// Access to the queue's shared words, wherever they live.
pub(crate) trait QueueMemory {
    /// Cells; a power of two.
    fn capacity(&self) -> u64;
    /// The producers' hint.
    fn enqueue_pos(&self) -> &AtomicU64;
    /// The consumers' hint.
    fn dequeue_pos(&self) -> &AtomicU64;
    /// The cell of position `pos` (`pos % capacity`).
    fn cell(&self, pos: u64) -> &CellHeader;
}

/// Writes the initial stamps: cell `i` is `FREE(i)`. Only on memory nobody
/// else sees yet.
pub(crate) fn init<M: QueueMemory>(m: &M) {
    for i in 0..m.capacity() {
        m.cell(i)
            .stamp
            .store(pack(i, 0, state::FREE), Ordering::Relaxed);
    }
}

/// What a claim or a take found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Claim {
    /// The position is ours.
    Got(u64),
    /// Full (for producers) or nothing ready (for consumers). `blocker` is
    /// the stamp of the cell in the way, so a waiter can check whether its
    /// holder is alive.
    Blocked { blocker: u64 },
}

/// Bound on the retries of one claim or take: each retry follows another
/// party's progress, so a live queue never needs many; a hostile segment
/// cannot keep us here.
fn retries<M: QueueMemory>(m: &M) -> u64 {
    m.capacity().saturating_mul(2).saturating_add(64)
}

/// A client claims the next position for writing its request: on success
/// the cell is `WRITING(pos, client)` and belongs to the caller.
pub(crate) fn try_claim<M: QueueMemory>(m: &M, client: u32) -> Claim {
    let cap = m.capacity();
    let hint = m.enqueue_pos();
    let mut last = 0;
    for _ in 0..retries(m) {
        let pos = hint.load(Ordering::Acquire);
        if pos >= MAX_POS {
            return Claim::Blocked { blocker: last };
        }
        let cell = m.cell(pos);
        // SYNC POINT (reuse): Acquire pairs with the consumer's Release CAS
        // to FREE(pos): its reads of the old request happen-before ours.
        let st = cell.stamp.load(Ordering::Acquire);
        last = st;
        let sp = pos_of(st);
        if st == pack(pos, 0, state::FREE) {
            if cell
                .stamp
                .compare_exchange(
                    st,
                    pack(pos, client, state::WRITING),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok()
            {
                let _ = hint.compare_exchange(pos, pos + 1, Ordering::AcqRel, Ordering::Relaxed);
                return Claim::Got(pos);
            }
            continue;
        }
        if sp % cap != pos % cap {
            // A stamp of another residue class: corrupt. Report "full".
            return Claim::Blocked { blocker: st };
        }
        if sp > pos || (sp == pos && state_of(st) != state::FREE) {
            // `pos` is claimed already: move the hint past it.
            let _ = hint.compare_exchange(pos, pos + 1, Ordering::AcqRel, Ordering::Relaxed);
            continue;
        }
        // The cell still holds an older position: the queue is full.
        return Claim::Blocked { blocker: st };
    }
    Claim::Blocked { blocker: last }
}

/// The client that claimed `pos` queues its request (written in the cell
/// meanwhile). `false` if the cell was taken from it (only a reclaimer that
/// wrongly believed it dead, i.e. a hostile process, can do that).
pub(crate) fn publish<M: QueueMemory>(m: &M, pos: u64, client: u32) -> bool {
    // SYNC POINT (publish): Release pairs with the server's Acquire load of
    // the stamp in `try_take`: the request bytes happen-before its read.
    // SeqCst (the same locked CAS on x86): the caller then wakes servers
    // with `notify_all_after_seqcst_rmw`, whose argument needs this CAS in
    // the SeqCst total order (see there).
    m.cell(pos)
        .stamp
        .compare_exchange(
            pack(pos, client, state::WRITING),
            pack(pos, client, state::FULL),
            Ordering::SeqCst,
            Ordering::Relaxed,
        )
        .is_ok()
}

/// A server takes the next queued request: on success the cell is
/// `TAKEN(pos, server)`, out of the queue and the caller's until `release`.
pub(crate) fn try_take<M: QueueMemory>(m: &M, server: u32) -> Claim {
    let cap = m.capacity();
    let hint = m.dequeue_pos();
    let mut last = 0;
    for _ in 0..retries(m) {
        let pos = hint.load(Ordering::Acquire);
        let cell = m.cell(pos);
        // SYNC POINT (publish): pairs with the Release in `publish`.
        let st = cell.stamp.load(Ordering::Acquire);
        last = st;
        let sp = pos_of(st);
        let s = state_of(st);
        if sp == pos && s == state::FULL {
            if cell
                .stamp
                .compare_exchange(
                    st,
                    pack(pos, server, state::TAKEN),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok()
            {
                let _ = hint.compare_exchange(pos, pos + 1, Ordering::AcqRel, Ordering::Relaxed);
                return Claim::Got(pos);
            }
            continue;
        }
        if sp == pos && (s == state::FREE || s == state::WRITING) {
            return Claim::Blocked { blocker: st };
        }
        if (sp == pos && s == state::TAKEN) || (sp > pos && sp % cap == pos % cap) {
            let _ = hint.compare_exchange(pos, pos + 1, Ordering::AcqRel, Ordering::Relaxed);
            continue;
        }
        // An older position (the queue wrapped: nothing new here) or a
        // corrupt stamp: nothing to take.
        return Claim::Blocked { blocker: st };
    }
    Claim::Blocked { blocker: last }
}

/// Frees a cell its holder is done with: `expect_state` is `TAKEN` (a
/// server releasing after reading, or the reclaimer of a dead server) or
/// `WRITING` (the reclaimer of a dead client, or a client giving up a claim
/// it cannot fill). `true` if this call freed it.
pub(crate) fn free<M: QueueMemory>(m: &M, pos: u64, owner: u32, expect_state: u64) -> bool {
    // SYNC POINT (reuse): Release pairs with the Acquire load in `try_claim`.
    // SeqCst (the same locked CAS on x86): callers then wake clients with
    // `notify_all_after_seqcst_rmw`, whose argument needs this CAS in the
    // SeqCst total order (see there).
    m.cell(pos)
        .stamp
        .compare_exchange(
            pack(pos, owner, expect_state),
            pack(pos + m.capacity(), 0, state::FREE),
            Ordering::SeqCst,
            Ordering::Relaxed,
        )
        .is_ok()
}

/// Positions of the cells currently in state `st` owned by `owner` (a scan
/// of the whole queue, for reclaiming a dead owner).
pub(crate) fn owned_cells<M: QueueMemory>(
    m: &M,
    owner: u32,
    st: u64,
) -> impl Iterator<Item = (u64, u64)> + '_ {
    let cap = m.capacity();
    (0..cap).filter_map(move |i| {
        let stamp = m.cell(i).stamp.load(Ordering::Acquire);
        (state_of(stamp) == st
            && owner_of(stamp) == owner
            && pos_of(stamp) % cap == i
            && pos_of(stamp) <= MAX_POS)
            .then_some((pos_of(stamp), stamp))
    })
}

/// Requests queued and not yet taken (a snapshot, for stats).
pub(crate) fn depth<M: QueueMemory>(m: &M) -> u64 {
    (0..m.capacity())
        .filter(|&i| state_of(m.cell(i).stamp.load(Ordering::Relaxed)) == state::FULL)
        .count() as u64
}

#[cfg(all(test, not(loom)))]
pub(crate) mod tests {
    use super::*;
    use crate::service::layout::CellHeader;

    /// A queue on the heap.
    pub(crate) struct HeapQueue {
        pub enq: AtomicU64,
        pub deq: AtomicU64,
        pub cells: Vec<CellHeader>,
    }

    impl HeapQueue {
        pub(crate) fn new(cap: u64) -> HeapQueue {
            let q = HeapQueue {
                enq: AtomicU64::new(0),
                deq: AtomicU64::new(0),
                cells: (0..cap).map(|_| CellHeader::zeroed()).collect(),
            };
            init(&q);
            q
        }
    }

    impl QueueMemory for HeapQueue {
        fn capacity(&self) -> u64 {
            self.cells.len() as u64
        }
        fn enqueue_pos(&self) -> &AtomicU64 {
            &self.enq
        }
        fn dequeue_pos(&self) -> &AtomicU64 {
            &self.deq
        }
        fn cell(&self, pos: u64) -> &CellHeader {
            &self.cells[(pos % self.capacity()) as usize]
        }
    }

    fn put(q: &HeapQueue, client: u32, v: u64) -> Option<u64> {
        match try_claim(q, client) {
            Claim::Got(pos) => {
                q.cell(pos).corr.store(v, Ordering::Relaxed);
                assert!(publish(q, pos, client));
                Some(pos)
            }
            Claim::Blocked { .. } => None,
        }
    }

    fn take(q: &HeapQueue, server: u32) -> Option<(u64, u64)> {
        match try_take(q, server) {
            Claim::Got(pos) => Some((pos, q.cell(pos).corr.load(Ordering::Relaxed))),
            Claim::Blocked { .. } => None,
        }
    }

    #[test]
    fn fifo_full_and_empty() {
        let q = HeapQueue::new(4);
        assert_eq!(take(&q, 0), None);
        for v in 0..4 {
            assert_eq!(put(&q, 1, 100 + v), Some(v));
        }
        assert_eq!(put(&q, 1, 999), None, "full");
        for v in 0..4 {
            let (pos, got) = take(&q, 2).unwrap();
            assert_eq!((pos, got), (v, 100 + v));
        }
        assert_eq!(take(&q, 2), None, "empty");
        // Taken but not freed: still full for producers.
        assert_eq!(put(&q, 1, 5), None);
        for pos in 0..4 {
            assert!(free(&q, pos, 2, state::TAKEN));
            assert!(!free(&q, pos, 2, state::TAKEN), "freed twice");
        }
        for lap in 1..5u64 {
            for v in 0..4 {
                assert_eq!(put(&q, 3, v), Some(lap * 4 + v));
                let (pos, got) = take(&q, 0).unwrap();
                assert_eq!((pos, got), (lap * 4 + v, v));
                assert!(free(&q, pos, 0, state::TAKEN));
            }
        }
    }

    #[test]
    fn a_dead_writer_at_the_head_is_skipped_once_reclaimed() {
        let q = HeapQueue::new(4);
        let Claim::Got(dead) = try_claim(&q, 7) else {
            panic!()
        };
        assert_eq!(put(&q, 1, 11), Some(1));
        // The head is being written: FIFO, nothing ready.
        assert_eq!(take(&q, 0), None);
        let dead_cells: Vec<u64> = owned_cells(&q, 7, state::WRITING).map(|(p, _)| p).collect();
        assert_eq!(dead_cells, vec![dead]);
        assert!(free(&q, dead, 7, state::WRITING));
        assert_eq!(take(&q, 0), Some((1, 11)));
        // The dead writer can no longer publish what it claimed.
        assert!(!publish(&q, dead, 7));
    }

    #[test]
    fn a_dead_taker_cannot_wedge_the_queue() {
        let q = HeapQueue::new(2);
        put(&q, 1, 1).unwrap();
        put(&q, 1, 2).unwrap();
        let (p0, _) = take(&q, 5).unwrap(); // server 5 dies holding it
        let (p1, _) = take(&q, 6).unwrap();
        assert!(free(&q, p1, 6, state::TAKEN));
        // Position 2 needs the dead taker's cell: the queue is full for now.
        assert_eq!(put(&q, 1, 3), None, "cell of the dead taker still held");
        let held: Vec<u64> = owned_cells(&q, 5, state::TAKEN).map(|(p, _)| p).collect();
        assert_eq!(held, vec![p0]);
        assert!(free(&q, p0, 5, state::TAKEN));
        assert_eq!(put(&q, 1, 3), Some(2));
        assert_eq!(put(&q, 1, 4), Some(3));
        assert_eq!(take(&q, 6), Some((2, 3)));
        assert_eq!(take(&q, 6), Some((3, 4)));
    }

    #[test]
    fn garbage_stamps_block_but_never_panic() {
        let q = HeapQueue::new(4);
        for (i, c) in q.cells.iter().enumerate() {
            c.stamp
                .store(0xdead_beef_0000_0000 ^ (i as u64 * 77), Ordering::Relaxed);
        }
        q.enq.store(u64::MAX - 3, Ordering::Relaxed);
        q.deq.store(u64::MAX - 1, Ordering::Relaxed);
        assert!(matches!(try_claim(&q, 1), Claim::Blocked { .. }));
        assert!(matches!(try_take(&q, 1), Claim::Blocked { .. }));
        q.enq.store(3, Ordering::Relaxed);
        q.deq.store(1, Ordering::Relaxed);
        let _ = try_claim(&q, 1);
        let _ = try_take(&q, 1);
        let _ = owned_cells(&q, 1, state::TAKEN).count();
    }

    #[test]
    fn threads_take_every_request_exactly_once() {
        use std::sync::Arc;
        let q = Arc::new(HeapQueue::new(8));
        let per = 20_000u64;
        let producers: Vec<_> = (0..2u32)
            .map(|c| {
                let q = Arc::clone(&q);
                std::thread::spawn(move || {
                    for k in 0..per {
                        while put(&q, c, u64::from(c) << 32 | k).is_none() {
                            std::hint::spin_loop();
                        }
                    }
                })
            })
            .collect();
        let taken = Arc::new(AtomicU64::new(0));
        let consumers: Vec<_> = (0..2u32)
            .map(|s| {
                let q = Arc::clone(&q);
                let taken = Arc::clone(&taken);
                std::thread::spawn(move || {
                    let mut got = Vec::new();
                    while taken.load(Ordering::Relaxed) < 2 * per {
                        if let Some((pos, v)) = take(&q, s) {
                            assert!(free(&*q, pos, s, state::TAKEN));
                            taken.fetch_add(1, Ordering::Relaxed);
                            got.push(v);
                        } else {
                            std::thread::yield_now();
                        }
                    }
                    got
                })
            })
            .collect();
        for p in producers {
            p.join().unwrap();
        }
        let mut all: Vec<u64> = consumers
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .collect();
        all.sort_unstable();
        let mut want: Vec<u64> = (0..2u64)
            .flat_map(|c| (0..per).map(move |k| c << 32 | k))
            .collect();
        want.sort_unstable();
        assert_eq!(all, want);
    }
}
