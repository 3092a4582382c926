//! `loom` models of the request queue (`queue.rs`): the take/put race
//! between competing producers and consumers, and a consumer dying while it
//! holds a cell; and of the reply slot protocol (`reply.rs`): a client and
//! two servers, one dying at each point where it can hold a call, the other
//! holding a stale ticket of the same slot. Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p shmbus --release --lib loom`.
//!
//! Each request's payload is two words (`corr` and `len`) written with
//! separate relaxed stores, so a consumer that could read a cell before its
//! producer published it, or after the next producer reused it, would see
//! a torn pair; the models check it never does, and that every request is
//! taken exactly once.

use loom::sync::Arc;
use loom::thread;

use crate::service::layout::CellHeader;
use crate::service::queue::{self, state, Claim, QueueMemory};
use crate::sync::{AtomicU32, AtomicU64, Ordering};

struct HeapQueue {
    enq: AtomicU64,
    deq: AtomicU64,
    cells: Vec<CellHeader>,
}

impl HeapQueue {
    fn new(cap: u64) -> HeapQueue {
        let q = HeapQueue {
            enq: AtomicU64::new(0),
            deq: AtomicU64::new(0),
            cells: (0..cap).map(|_| CellHeader::zeroed()).collect(),
        };
        queue::init(&q);
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

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(2);
    }
    // Spinning producers and consumers (with yields) make long paths.
    b.max_branches = 100_000;
    b.check(f);
}

/// Puts `v` (both payload words), spinning while full.
fn put(q: &HeapQueue, client: u32, v: u32) -> u64 {
    loop {
        if let Claim::Got(pos) = queue::try_claim(q, client) {
            let c = q.cell(pos);
            c.corr.store(u64::from(v), Ordering::Relaxed);
            c.len.store(v, Ordering::Relaxed);
            assert!(queue::publish(q, pos, client));
            return pos;
        }
        thread::yield_now();
    }
}

/// Takes one request if there is one; returns its value (checked whole).
fn take(q: &HeapQueue, server: u32) -> Option<(u64, u32)> {
    match queue::try_take(q, server) {
        Claim::Got(pos) => {
            let c = q.cell(pos);
            let a = c.corr.load(Ordering::Relaxed);
            let b = c.len.load(Ordering::Relaxed);
            assert_eq!(a, u64::from(b), "torn request");
            Some((pos, b))
        }
        Claim::Blocked { .. } => None,
    }
}

/// Records that request `v` was taken, asserting it was not before.
fn once(seen: &AtomicU32, v: u32) {
    let before = seen.fetch_or(v, Ordering::Relaxed);
    assert_eq!(before & v, 0, "request {v} taken twice");
}

#[test]
fn loom_service_queue_two_producers_race_a_consumer() {
    // Capacity 2 holding one request: two producers race for the last cell
    // and for the one a consumer frees meanwhile.
    model(|| {
        let q = Arc::new(HeapQueue::new(2));
        put(&q, 0, 4);
        let seen = Arc::new(AtomicU32::new(0));
        let producers: Vec<_> = (0..2u32)
            .map(|c| {
                let q = Arc::clone(&q);
                thread::spawn(move || {
                    put(&q, c, 1 << c);
                })
            })
            .collect();
        let consumer = {
            let q = Arc::clone(&q);
            let seen = Arc::clone(&seen);
            thread::spawn(move || {
                let (pos, v) = take(&q, 0).expect("a request was queued first");
                once(&seen, v);
                assert!(queue::free(&*q, pos, 0, state::TAKEN));
            })
        };
        for t in producers.into_iter().chain([consumer]) {
            t.join().unwrap();
        }
        while let Some((pos, v)) = take(&q, 1) {
            once(&seen, v);
            assert!(queue::free(&*q, pos, 1, state::TAKEN));
        }
        assert_eq!(seen.load(Ordering::Relaxed), 4 | 1 | 2);
    });
}

#[test]
fn loom_service_queue_two_consumers_race_a_producer() {
    // A full queue of two: two consumers race for the requests while a
    // producer waits for a cell to come free and reuses it.
    model(|| {
        let q = Arc::new(HeapQueue::new(2));
        put(&q, 0, 1);
        put(&q, 0, 2);
        let seen = Arc::new(AtomicU32::new(0));
        let consumers: Vec<_> = (0..2u32)
            .map(|s| {
                let q = Arc::clone(&q);
                let seen = Arc::clone(&seen);
                thread::spawn(move || {
                    let (pos, v) = take(&q, s).expect("two requests for two consumers");
                    once(&seen, v);
                    assert!(queue::free(&*q, pos, s, state::TAKEN));
                })
            })
            .collect();
        let producer = {
            let q = Arc::clone(&q);
            thread::spawn(move || {
                put(&q, 1, 4);
            })
        };
        for t in consumers.into_iter().chain([producer]) {
            t.join().unwrap();
        }
        let (_, v) = take(&q, 0).expect("the third request is queued");
        once(&seen, v);
        assert_eq!(take(&q, 0), None);
        assert_eq!(seen.load(Ordering::Relaxed), 1 | 2 | 4);
    });
}

#[test]
fn loom_service_queue_dead_consumer_is_reclaimed_without_wedging() {
    // A full queue of two; consumer 0 takes one and dies holding it;
    // consumer 1 serves the other. Once the death is known (joined), a
    // reclaimer frees the dead consumer's cell while a producer races to
    // queue two more requests, which must both get through, in order.
    model(|| {
        let q = Arc::new(HeapQueue::new(2));
        put(&q, 0, 1);
        put(&q, 0, 2);
        let dead = {
            let q = Arc::clone(&q);
            thread::spawn(move || take(&q, 0).map(|(_, v)| v))
        };
        let live = {
            let q = Arc::clone(&q);
            thread::spawn(move || loop {
                if let Some((pos, v)) = take(&q, 1) {
                    assert!(queue::free(&*q, pos, 1, state::TAKEN));
                    return v;
                }
                thread::yield_now();
            })
        };
        let a = dead.join().unwrap().expect("a request was queued");
        let b = live.join().unwrap();
        assert_eq!(a + b, 3);
        let reclaimer = {
            let q = Arc::clone(&q);
            thread::spawn(move || {
                let held: Vec<u64> = queue::owned_cells(&*q, 0, state::TAKEN)
                    .map(|(p, _)| p)
                    .collect();
                assert_eq!(held.len(), 1);
                assert!(queue::free(&*q, held[0], 0, state::TAKEN));
            })
        };
        let producer = {
            let q = Arc::clone(&q);
            thread::spawn(move || {
                put(&q, 1, 3);
                put(&q, 1, 4);
            })
        };
        reclaimer.join().unwrap();
        producer.join().unwrap();
        assert_eq!(take(&q, 1).map(|(_, v)| v), Some(3));
        assert_eq!(take(&q, 1).map(|(_, v)| v), Some(4));
        assert_eq!(take(&q, 1), None);
    });
}

/// Where the dying server of [`reply_model`] stops for good.
#[derive(Clone, Copy, Debug)]
enum DiesAt {
    /// It took the request out of the queue, not yet the call's reply slot.
    TookRequest,
    /// It claimed the reply slot (`TAKEN`).
    TookCall,
    /// It was writing the reply (`WRITING`, half the payload written).
    MidReply,
}

/// Who took the one queued request: 0 nobody yet, `s + 1` server `s`. A
/// stand-in for the queue's exactly-once take (modelled above), so that
/// the reclaimer, like the real one, knows which requests a dead server
/// held out of the queue.
struct Handoff(AtomicU32);

impl Handoff {
    fn take(&self, server: u32) -> bool {
        self.0
            .compare_exchange(0, server + 1, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
    fn holder(&self) -> Option<u32> {
        self.0.load(Ordering::Acquire).checked_sub(1)
    }
}

/// The reply slot protocol (`reply.rs`) with one client and two servers,
/// one of which dies at `dies_at` (its liveness lock frees: `alive` turns
/// false as its last act, as the kernel drops the lock at exit). The live
/// server first tries to answer an earlier call of the same slot, which the
/// client gave up (a stale ticket), then competes for the current call.
/// The client waits, and on seeing the dying server dead reclaims it as
/// `mapped.rs` does. It must end with the live server's reply for *this*
/// call (payload whole) or with `ServerGone` when the dead server held it:
/// never a stale or torn reply, never stuck.
fn reply_model(dies_at: DiesAt) {
    use crate::service::layout::ReplyHeader;
    use crate::service::reply::{self, st, Seen};
    use loom::sync::atomic::AtomicBool;

    const DEAD: u32 = 0;
    const LIVE: u32 = 1;
    const STALE: u64 = 1;
    const CORR: u64 = 2;
    // What server `s` answers call `corr` with, split into two words.
    let answer = |corr: u64, s: u32| (corr * 100 + u64::from(s), corr as u32 * 100 + s);

    model(move || {
        let slot = Arc::new(ReplyHeader::zeroed());
        // The payload: two words written with separate relaxed stores.
        let payload = Arc::new((AtomicU64::new(0), AtomicU32::new(0)));
        // The earlier call: taken by the live server, then given up.
        reply::begin_call(&slot, STALE);
        assert!(reply::take(&slot, STALE, LIVE));
        assert_eq!(reply::cancel(&slot, STALE), reply::Cancel::Freed);
        // This call, queued.
        reply::begin_call(&slot, CORR);
        let handoff = Arc::new(Handoff(AtomicU32::new(0)));
        let alive = Arc::new(AtomicBool::new(true));

        let dying = {
            let (slot, payload, handoff, alive) = (
                Arc::clone(&slot),
                Arc::clone(&payload),
                Arc::clone(&handoff),
                Arc::clone(&alive),
            );
            thread::spawn(move || {
                if handoff.take(DEAD) {
                    let step = match dies_at {
                        DiesAt::TookRequest => false,
                        DiesAt::TookCall => {
                            assert!(reply::take(&slot, CORR, DEAD), "the call is ours");
                            false
                        }
                        DiesAt::MidReply => {
                            reply::take(&slot, CORR, DEAD) && reply::begin_reply(&slot, CORR, DEAD)
                        }
                    };
                    if step {
                        // Half a reply, then death.
                        payload.0.store(answer(CORR, DEAD).0, Ordering::Relaxed);
                    }
                }
                alive.store(false, Ordering::Release);
            })
        };
        let live = {
            let (slot, payload, handoff) = (
                Arc::clone(&slot),
                Arc::clone(&payload),
                Arc::clone(&handoff),
            );
            thread::spawn(move || {
                // The stale ticket: its reply must go nowhere.
                if reply::begin_reply(&slot, STALE, LIVE) {
                    let (a, b) = answer(STALE, LIVE);
                    payload.0.store(a, Ordering::Relaxed);
                    payload.1.store(b, Ordering::Relaxed);
                    let _ = reply::finish_reply(&slot, STALE, LIVE);
                }
                if handoff.take(LIVE) {
                    assert!(reply::take(&slot, CORR, LIVE), "the call is ours");
                    assert!(reply::begin_reply(&slot, CORR, LIVE));
                    let (a, b) = answer(CORR, LIVE);
                    payload.0.store(a, Ordering::Relaxed);
                    payload.1.store(b, Ordering::Relaxed);
                    assert!(reply::finish_reply(&slot, CORR, LIVE));
                }
            })
        };

        // The client: poll; on a dead server, reclaim it (mapped.rs's
        // `reclaim_server`, reply-slot part) and poll again.
        let mut reclaimed = false;
        let outcome = loop {
            match reply::poll(&slot, CORR) {
                Seen::Replied => {
                    let who = reply::unpack(slot.state.load(Ordering::Relaxed)).taker;
                    let got = (
                        payload.0.load(Ordering::Relaxed),
                        payload.1.load(Ordering::Relaxed),
                    );
                    assert_eq!(who, Some(LIVE), "only the live server replies");
                    assert_eq!(got, answer(CORR, LIVE), "a stale or torn reply");
                    break Seen::Replied;
                }
                Seen::Gone => break Seen::Gone,
                Seen::Lost => panic!("the call's slot was lost"),
                Seen::Waiting { .. } => {}
            }
            if !reclaimed && !alive.load(Ordering::Acquire) {
                reclaimed = true;
                // Requests it held out of the queue, slot not yet claimed.
                if handoff.holder() == Some(DEAD) {
                    reply::mark_gone(&slot, CORR, None);
                }
                // Calls whose reply slot it had claimed.
                let w = reply::unpack(slot.state.load(Ordering::Acquire));
                if w.taker == Some(DEAD) && matches!(w.state, st::TAKEN | st::WRITING) {
                    reply::mark_gone(&slot, w.corr, Some(DEAD));
                }
                continue;
            }
            thread::yield_now();
        };
        dying.join().unwrap();
        live.join().unwrap();
        match handoff.holder() {
            Some(LIVE) => assert_eq!(outcome, Seen::Replied),
            Some(DEAD) => assert_eq!(outcome, Seen::Gone),
            other => panic!("the request was never taken: {other:?}"),
        }
    });
}

#[test]
fn loom_service_reply_server_dies_holding_the_request() {
    reply_model(DiesAt::TookRequest);
}

#[test]
fn loom_service_reply_server_dies_after_taking_the_call() {
    reply_model(DiesAt::TookCall);
}

#[test]
fn loom_service_reply_server_dies_mid_reply() {
    reply_model(DiesAt::MidReply);
}
