//! `loom` models of the request queue (`queue.rs`): the take/put race
//! between competing producers and consumers, and a consumer dying while it
//! holds a cell. Run with
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
