//! Model checks of the concurrent core with `loom`: the ring protocol of
//! `ring.rs` and the semaphore and event count, exactly as the segments run
//! them, on heap memory.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p shmbus --release --lib loom`.
//! The models are kept small (capacity 2, a few messages) and preemptions
//! bounded (`LOOM_MAX_PREEMPTIONS`, default 2 here) so the exhaustive search
//! finishes in CI; every interleaving up to that bound is explored.
//!
//! Payloads in the model are two 64-bit words written with separate relaxed
//! stores, so a broken seqlock would let a reader accept a torn pair; every
//! model checks it never does.

use loom::sync::Arc;
use loom::thread;

use crate::error::Error;
use crate::layout::{
    DataShared, Geometry, Policy, PubEntry, SlotHeader, SubEntry, SubsShared, TopicConfig,
};
use crate::ring::{self, PubReclaim, RingMemory};
use crate::semaphore::Semaphore;
use crate::sync::{AtomicU64, Ordering};
use crate::wait::{Deadline, WaitStrategy};

/// A topic on plain memory.
struct HeapRing {
    geo: Geometry,
    data: DataShared,
    subs: SubsShared,
    slots: Vec<SlotHeader>,
    payload: Vec<[AtomicU64; 2]>,
    pubs: Vec<PubEntry>,
    subscribers: Vec<SubEntry>,
}

impl HeapRing {
    fn new(capacity: u64, policy: Policy, pubs: u32, subs: u32) -> HeapRing {
        let cfg = TopicConfig {
            capacity,
            max_msg_size: 16,
            policy,
            max_publishers: pubs,
            max_subscribers: subs,
        };
        let geo = Geometry::new(&cfg, 1).unwrap();
        let pubs: Vec<PubEntry> = (0..pubs).map(|_| PubEntry::zeroed()).collect();
        for e in &pubs {
            e.inflight.store(crate::layout::NO_SEQ, Ordering::Relaxed);
        }
        HeapRing {
            geo,
            data: DataShared::zeroed(),
            subs: SubsShared::zeroed(),
            slots: (0..capacity).map(|_| SlotHeader::zeroed()).collect(),
            payload: (0..capacity)
                .map(|_| [AtomicU64::new(0), AtomicU64::new(0)])
                .collect(),
            pubs,
            subscribers: (0..subs).map(|_| SubEntry::zeroed()).collect(),
        }
    }
}

impl RingMemory for HeapRing {
    fn geometry(&self) -> &Geometry {
        &self.geo
    }
    fn data(&self) -> &DataShared {
        &self.data
    }
    fn subs(&self) -> &SubsShared {
        &self.subs
    }
    fn slot(&self, seq: u64) -> &SlotHeader {
        &self.slots[(seq & self.geo.mask) as usize]
    }
    fn pub_entry(&self, i: u32) -> &PubEntry {
        &self.pubs[i as usize]
    }
    fn sub_entry(&self, i: u32) -> &SubEntry {
        &self.subscribers[i as usize]
    }
    fn write_payload(&self, seq: u64, src: &[u8]) {
        let w = &self.payload[(seq & self.geo.mask) as usize];
        let a = u64::from_le_bytes(src[0..8].try_into().unwrap());
        let b = u64::from_le_bytes(src[8..16].try_into().unwrap());
        w[0].store(a, Ordering::Relaxed);
        w[1].store(b, Ordering::Relaxed);
    }
    fn read_payload(&self, seq: u64, dst: &mut [u8]) {
        let w = &self.payload[(seq & self.geo.mask) as usize];
        dst[0..8].copy_from_slice(&w[0].load(Ordering::Relaxed).to_le_bytes());
        dst[8..16].copy_from_slice(&w[1].load(Ordering::Relaxed).to_le_bytes());
    }
    fn segment_name(&self) -> &str {
        "loom-ring"
    }
}

/// The model's message for `seq` from publisher `p`: both words carry it.
fn msg(p: u64, seq_hint: u64) -> [u8; 16] {
    let v = (p << 32) | seq_hint;
    let mut m = [0u8; 16];
    m[0..8].copy_from_slice(&v.to_le_bytes());
    m[8..16].copy_from_slice(&v.to_le_bytes());
    m
}

fn check_whole(buf: &[u8]) -> u64 {
    let a = u64::from_le_bytes(buf[0..8].try_into().unwrap());
    let b = u64::from_le_bytes(buf[8..16].try_into().unwrap());
    assert_eq!(a, b, "torn message");
    a
}

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(2);
    }
    b.check(f);
}

/// Receives one message or a loss report, parking when empty.
fn recv_one(
    r: &HeapRing,
    s: &mut ring::SubLocal,
    strategy: WaitStrategy,
) -> Result<(u64, u64), Error> {
    let mut buf = [0u8; 16];
    loop {
        let f = ring::wait_readable(r, s, strategy, Deadline::Never)?;
        if ring::copy_out(r, &f, &mut buf) {
            ring::consume(r, s, &f);
            return Ok((f.seq, check_whole(&buf)));
        }
    }
}

/// Publishes `m` with publisher `l`, parking while the ring is full.
fn send(r: &HeapRing, l: &mut ring::PubLocal, m: &[u8; 16]) -> u64 {
    ring::publish(r, l, m, 0, WaitStrategy::Park, Deadline::Never).unwrap()
}

#[test]
fn loom_block_two_publishers_two_subscribers() {
    // Capacity 2, three messages: publisher 0 sends one before the threads
    // start, then publishers 0 and 1 race one message each, so the last
    // one wraps onto slot 0 and must wait for both parking subscribers to
    // consume it. Each subscriber sees all 3, in order, whole, and each
    // publisher's messages in its own order. (Four messages racing took
    // over ten minutes to explore at preemption bound 2; this keeps every
    // race of the protocol — claim vs claim, wrap vs consume, park vs
    // notify — at a size CI can afford.)
    model(|| {
        let r = Arc::new(HeapRing::new(2, Policy::Block, 2, 2));
        let mut subs_local: Vec<_> = (0..2)
            .map(|i| ring::attach_subscriber(&*r, i, 1, ring::Start::Tail))
            .collect();
        let mut first = ring::attach_publisher(&*r, 0, 1);
        send(&r, &mut first, &msg(0, 0));
        let mut first = Some(first);
        let pubs: Vec<_> = (0..2u32)
            .map(|p| {
                let r = Arc::clone(&r);
                let mine = first.take();
                thread::spawn(move || {
                    let (mut local, k) = match mine {
                        Some(local) => (local, 1),
                        None => (ring::attach_publisher(&*r, p, 1), 0),
                    };
                    ring::publish(
                        &*r,
                        &mut local,
                        &msg(u64::from(p), k),
                        0,
                        WaitStrategy::Park,
                        Deadline::Never,
                    )
                    .unwrap();
                })
            })
            .collect();
        let mut s1 = subs_local.pop().unwrap();
        let r1 = Arc::clone(&r);
        let sub1 = thread::spawn(move || {
            (0..3)
                .map(|_| recv_one(&r1, &mut s1, WaitStrategy::Park).unwrap())
                .collect::<Vec<_>>()
        });
        let mut s0 = subs_local.pop().unwrap();
        let got0: Vec<_> = (0..3)
            .map(|_| recv_one(&r, &mut s0, WaitStrategy::Park).unwrap())
            .collect();
        let got1 = sub1.join().unwrap();
        for p in pubs {
            p.join().unwrap();
        }
        for got in [got0, got1] {
            let seqs: Vec<u64> = got.iter().map(|g| g.0).collect();
            assert_eq!(seqs, vec![0, 1, 2]);
            for (p, want) in [(0u64, vec![0, 1]), (1, vec![0])] {
                let mine: Vec<u64> = got
                    .iter()
                    .filter(|g| g.1 >> 32 == p)
                    .map(|g| g.1 & 0xffff_ffff)
                    .collect();
                assert_eq!(mine, want, "publisher {p}'s messages in order");
            }
        }
    });
}

#[test]
fn loom_drop_oldest_lapping_reports_exact_loss() {
    // One publisher sends 4 into capacity 2 while a subscriber reads
    // concurrently: whatever the interleaving, delivered + lost == 4,
    // sequences strictly increase, and nothing is torn.
    model(|| {
        let r = Arc::new(HeapRing::new(2, Policy::DropOldest, 1, 1));
        let mut s = ring::attach_subscriber(&*r, 0, 1, ring::Start::Tail);
        let r2 = Arc::clone(&r);
        let publisher = thread::spawn(move || {
            let mut local = ring::attach_publisher(&*r2, 0, 1);
            for k in 0..4 {
                ring::publish(
                    &*r2,
                    &mut local,
                    &msg(0, k),
                    0,
                    WaitStrategy::Spin,
                    Deadline::Never,
                )
                .unwrap();
            }
        });
        let mut delivered = 0u64;
        let mut lost = 0u64;
        let mut last: Option<u64> = None;
        let mut buf = [0u8; 16];
        while delivered + lost < 4 {
            match ring::peek(&*r, &mut s) {
                Ok(Some(f)) => {
                    if ring::copy_out(&*r, &f, &mut buf) {
                        let v = check_whole(&buf);
                        assert_eq!(v, f.seq, "payload belongs to its sequence");
                        assert!(last.map_or(true, |l| f.seq > l));
                        last = Some(f.seq);
                        ring::consume(&*r, &mut s, &f);
                        delivered += 1;
                    }
                }
                Ok(None) => thread::yield_now(),
                Err(Error::Lagged(n)) => lost += n,
                Err(e) => panic!("{e}"),
            }
        }
        publisher.join().unwrap();
        assert_eq!(delivered + lost, 4);
        assert_eq!(s.cursor, 4);
    });
}

#[test]
fn loom_abandoned_claim_is_reaped_and_skipped() {
    // A publisher claims sequence 0 and "dies" before writing; another
    // publishes sequence 1. The reaper abandons 0; the subscriber skips it
    // and receives 1. Modelled concurrently with the subscriber's waits.
    model(|| {
        let r = Arc::new(HeapRing::new(2, Policy::Block, 2, 1));
        let mut s = ring::attach_subscriber(&*r, 0, 1, ring::Start::Tail);
        let mut dead = ring::attach_publisher(&*r, 0, 1);
        let seq = ring::try_claim(&*r, &mut dead).unwrap();
        assert_eq!(seq, 0);
        let r2 = Arc::clone(&r);
        let live = thread::spawn(move || {
            let mut local = ring::attach_publisher(&*r2, 1, 1);
            send(&r2, &mut local, &msg(1, 1))
        });
        let r3 = Arc::clone(&r);
        let reaper = thread::spawn(move || {
            assert_eq!(
                ring::reclaim_publisher(&*r3, 0),
                PubReclaim::Reclaimed { abandoned: true }
            );
        });
        let (got_seq, v) = recv_one(&r, &mut s, WaitStrategy::Park).unwrap();
        assert_eq!(got_seq, 1);
        assert_eq!(v, (1 << 32) | 1);
        assert_eq!(live.join().unwrap(), 1);
        reaper.join().unwrap();
        assert_eq!(r.sub_entry(0).abandoned.load(Ordering::Relaxed), 1);
    });
}

#[test]
fn loom_join_never_misses_a_message_published_after_it() {
    // A subscriber joins while a publisher streams into a full-ish block
    // ring; every message with sequence ≥ its start is delivered.
    model(|| {
        let r = Arc::new(HeapRing::new(2, Policy::Block, 1, 2));
        // An existing slow subscriber keeps the gate low.
        let mut old = ring::attach_subscriber(&*r, 0, 1, ring::Start::Tail);
        let r2 = Arc::clone(&r);
        let publisher = thread::spawn(move || {
            let mut local = ring::attach_publisher(&*r2, 0, 1);
            for k in 0..3 {
                send(&r2, &mut local, &msg(0, k));
            }
        });
        let r3 = Arc::clone(&r);
        let joiner = thread::spawn(move || {
            let mut s = ring::attach_subscriber(&*r3, 1, 1, ring::Start::Tail);
            let start = s.cursor;
            let mut got = vec![];
            for _ in start..3 {
                got.push(recv_one(&r3, &mut s, WaitStrategy::Park).unwrap().0);
            }
            assert_eq!(got, (start..3).collect::<Vec<_>>());
        });
        for k in 0..3 {
            assert_eq!(recv_one(&r, &mut old, WaitStrategy::Park).unwrap().0, k);
        }
        publisher.join().unwrap();
        joiner.join().unwrap();
    });
}

/// A subscriber joining at sequence 0 (`Start::Zero`: a pattern
/// subscription taking in a topic it should have followed since its birth)
/// while a publisher streams: every sequence is accounted for, delivered
/// in order or reported lost, on both policies, and nobody hangs (on
/// `block`, the publisher that the joiner's cursor at 0 holds back is
/// released once the joiner's first receive reports the lap).
#[test]
fn loom_join_at_zero_accounts_for_every_sequence() {
    for policy in [Policy::Block, Policy::DropOldest] {
        model(move || {
            let r = Arc::new(HeapRing::new(2, policy, 1, 1));
            let r2 = Arc::clone(&r);
            let publisher = thread::spawn(move || {
                let mut local = ring::attach_publisher(&*r2, 0, 1);
                for k in 0..3 {
                    send(&r2, &mut local, &msg(0, k));
                }
            });
            let mut s = ring::attach_subscriber(&*r, 0, 1, ring::Start::Zero);
            assert_eq!(s.cursor, 0);
            let (mut got, mut lost) = (Vec::new(), 0);
            while got.len() as u64 + lost < 3 {
                match recv_one(&r, &mut s, WaitStrategy::Park) {
                    Ok((seq, _)) => got.push(seq),
                    Err(Error::Lagged(n)) => lost += n,
                    Err(e) => panic!("{e}"),
                }
            }
            // In order, and the delivered ones are the last ones.
            assert_eq!(got, (lost..3).collect::<Vec<_>>());
            publisher.join().unwrap();
        });
    }
}

#[test]
fn loom_loss_marker_is_reported_in_its_place() {
    // A publisher sends a message, a loss marker for 5, and a message that
    // wraps onto the first one's slot (capacity 2, block) while a parking
    // subscriber reads: it sees the first message, Lagged(5), then the
    // second, whole — never the marker as a message, never a count read
    // from a slot being rewritten — and counts 5 lost.
    model(|| {
        let r = Arc::new(HeapRing::new(2, Policy::Block, 1, 1));
        let mut s = ring::attach_subscriber(&*r, 0, 1, ring::Start::Tail);
        let r2 = Arc::clone(&r);
        let publisher = thread::spawn(move || {
            let mut local = ring::attach_publisher(&*r2, 0, 1);
            let p = WaitStrategy::Park;
            ring::publish(&*r2, &mut local, &msg(0, 0), 0, p, Deadline::Never).unwrap();
            ring::publish_loss(&*r2, &mut local, 5, p, Deadline::Never).unwrap();
            ring::publish(&*r2, &mut local, &msg(0, 2), 0, p, Deadline::Never).unwrap();
        });
        let got: Vec<_> = (0..3)
            .map(|_| recv_one(&r, &mut s, WaitStrategy::Park))
            .collect();
        publisher.join().unwrap();
        assert_eq!(got[0].as_ref().unwrap(), &(0, 0));
        assert!(matches!(got[1], Err(Error::Lagged(5))), "{:?}", got[1]);
        assert_eq!(got[2].as_ref().unwrap(), &(2, 2));
        assert_eq!(r.sub_entry(0).lost.load(Ordering::Relaxed), 5);
        assert_eq!(r.pub_entry(0).published.load(Ordering::Relaxed), 2);
    });
}

#[test]
fn loom_close_wakes_parked_subscriber_and_publisher() {
    model(|| {
        let r = Arc::new(HeapRing::new(2, Policy::Block, 1, 1));
        let mut s = ring::attach_subscriber(&*r, 0, 1, ring::Start::Tail);
        let mut p = ring::attach_publisher(&*r, 0, 1);
        for k in 0..2 {
            send(&r, &mut p, &msg(0, k));
        }
        let r2 = Arc::clone(&r);
        let blocked = thread::spawn(move || {
            // The ring is full: this parks until close.
            ring::publish(
                &*r2,
                &mut p,
                &msg(0, 9),
                0,
                WaitStrategy::Park,
                Deadline::Never,
            )
        });
        let r3 = Arc::clone(&r);
        let closer = thread::spawn(move || ring::close(&*r3));
        // Drain and then park: must end with Closed.
        let mut n = 0;
        let end = loop {
            match recv_one(&r, &mut s, WaitStrategy::Park) {
                Ok(_) => n += 1,
                Err(e) => break e,
            }
        };
        assert!(matches!(end, Error::Closed), "{end}");
        assert!(n <= 3);
        closer.join().unwrap();
        let res = blocked.join().unwrap();
        assert!(matches!(res, Err(Error::Closed)) || res.is_ok());
    });
}

#[test]
fn loom_semaphore_post_wait_race() {
    // Two waiters, two posts from two threads: both waiters get a token and
    // nobody sleeps forever (a lost wake-up is a deadlock loom reports).
    model(|| {
        let s = Arc::new(Semaphore::new(0));
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let s = Arc::clone(&s);
                thread::spawn(move || s.wait().unwrap())
            })
            .collect();
        let s2 = Arc::clone(&s);
        let poster = thread::spawn(move || s2.post());
        s.post();
        poster.join().unwrap();
        for w in waiters {
            w.join().unwrap();
        }
        assert_eq!(s.value(), 0);
    });
}

#[test]
fn loom_semaphore_timeout_racing_post_loses_no_token() {
    // A timed waiter races a post: either it takes the token, or the token
    // is still there afterwards. Never both lost.
    model(|| {
        let s = Arc::new(Semaphore::new(0));
        let s2 = Arc::clone(&s);
        let poster = thread::spawn(move || s2.post());
        // Long enough that the real clock never expires it mid-model (that
        // made the model nondeterministic on a loaded machine); the loom
        // futex fires the timeout at the earliest moment anyway.
        let got = s.wait_timeout(std::time::Duration::from_secs(3600)).is_ok();
        poster.join().unwrap();
        assert_eq!(u32::from(!got), s.value());
    });
}

// ------------------------------------------------------------ death models
//
// A thread may stop for ever at any named step of the protocol
// (`crate::crash::POINTS`): `crash::die_at(point, n)` plans its death at the
// n-th hit, and `crash::run_until_death` runs it until then, as a SIGKILL
// would. The reaper runs once the dying thread is gone (the kernel frees a
// liveness lock only at death). Each model enumerates the points of its
// role and checks that nobody is left parked for ever — loom reports a
// waiter nobody will wake as a deadlock — and that nothing is torn, lost
// or delivered twice.

use crate::crash::{self, Role};

/// Reaps publisher entry `i` until it is done, as the daemon's reap passes do.
fn reap_publisher(r: &HeapRing, i: u32) -> PubReclaim {
    loop {
        match ring::reclaim_publisher(r, i) {
            PubReclaim::Retry => thread::yield_now(),
            done => return done,
        }
    }
}

/// Finding 1 of the crash-safety review, from `shared/repro`: a publisher
/// that dies right after claiming races a live publisher for the same
/// sequence. Whatever it claimed must be abandoned and skipped, the live
/// message delivered. Before the fix: deadlock (the live rival's stale
/// intent `inflight == 0` made the reaper skip the abandon).
#[test]
fn loom_reaper_vs_a_live_rivals_stale_intent() {
    model(|| {
        let r = Arc::new(HeapRing::new(2, Policy::Block, 2, 1));
        let mut s = ring::attach_subscriber(&*r, 0, 1, ring::Start::Tail);
        let mut dead_l = ring::attach_publisher(&*r, 0, 1);
        let mut live_l = ring::attach_publisher(&*r, 1, 1);
        let r0 = Arc::clone(&r);
        let dying = thread::spawn(move || {
            let _ = ring::try_claim(&*r0, &mut dead_l); // then SIGKILL
        });
        let r1 = Arc::clone(&r);
        let live = thread::spawn(move || send(&r1, &mut live_l, &msg(1, 1)));
        let r2 = Arc::clone(&r);
        let reaper = thread::spawn(move || {
            dying.join().unwrap();
            reap_publisher(&r2, 0);
        });
        let (_, v) = recv_one(&r, &mut s, WaitStrategy::Park).unwrap();
        assert_eq!(v, (1 << 32) | 1, "only the live publisher's message exists");
        live.join().unwrap();
        reaper.join().unwrap();
    });
}

/// Finding 2(a), from `shared/repro`: a publisher dies between its
/// COMMITTED store and its notify; the reaper must wake the parked
/// subscriber. Before the fix: deadlock (no wake when nothing was
/// abandoned).
#[test]
fn loom_reaper_wakes_after_a_publisher_died_before_its_notify() {
    for point in ["commit.stamp", "commit.clear"] {
        reaper_wakes_after_a_publisher_died_at(point);
    }
}

fn reaper_wakes_after_a_publisher_died_at(point: &'static str) {
    model(move || {
        let r = Arc::new(HeapRing::new(2, Policy::Block, 1, 1));
        let mut s = ring::attach_subscriber(&*r, 0, 1, ring::Start::Tail);
        let mut p = ring::attach_publisher(&*r, 0, 1);
        let r1 = Arc::clone(&r);
        let dying = thread::spawn(move || {
            crash::die_at(point, 1);
            crash::run_until_death(|| {
                ring::publish(
                    &*r1,
                    &mut p,
                    &msg(0, 0),
                    0,
                    WaitStrategy::Park,
                    Deadline::Never,
                )
            })
        });
        let r2 = Arc::clone(&r);
        let reaper = thread::spawn(move || {
            assert!(dying.join().unwrap().is_none(), "it died");
            reap_publisher(&r2, 0)
        });
        let (seq, _) = recv_one(&r, &mut s, WaitStrategy::Park).unwrap();
        assert_eq!(seq, 0);
        reaper.join().unwrap();
    });
}

/// Every publisher death point, with a live rival publishing beside it and
/// a subscriber parked: the subscriber receives the rival's message (no
/// wedge), and the dying one's only if it committed, whole, once.
#[test]
fn loom_death_of_a_publisher_at_every_point_beside_a_live_rival() {
    for point in crash::points_of(Role::Publisher) {
        model(move || {
            let r = Arc::new(HeapRing::new(2, Policy::Block, 2, 1));
            let mut s = ring::attach_subscriber(&*r, 0, 1, ring::Start::Tail);
            let r0 = Arc::clone(&r);
            let dying = thread::spawn(move || {
                crash::die_at(point, 1);
                crash::run_until_death(|| {
                    let mut l = ring::attach_publisher(&*r0, 0, 1);
                    send(&r0, &mut l, &msg(0, 0))
                })
            });
            let r1 = Arc::clone(&r);
            let live = thread::spawn(move || {
                let mut l = ring::attach_publisher(&*r1, 1, 1);
                send(&r1, &mut l, &msg(1, 1))
            });
            let r2 = Arc::clone(&r);
            let reaper = thread::spawn(move || {
                let lived = dying.join().unwrap();
                reap_publisher(&r2, 0);
                lived
            });
            let mut got = Vec::new();
            while !got.contains(&((1 << 32) | 1)) {
                got.push(recv_one(&r, &mut s, WaitStrategy::Park).unwrap().1);
            }
            live.join().unwrap();
            let lived = reaper.join().unwrap();
            if lived.is_some() {
                // It lived (the point is not on its path): its message is
                // delivered, before or after the rival's.
                if got.len() == 1 {
                    got.push(recv_one(&r, &mut s, WaitStrategy::Park).unwrap().1);
                }
                assert!(got.contains(&0), "{point}: {got:?}");
            }
            assert!(got.len() <= 2, "{point}: {got:?}");
            assert!(got.iter().all(|&v| v == 0 || v == (1 << 32) | 1));
        });
    }
}

/// Every publisher death point with no rival: once the reaper has run, the
/// topic works (a later publisher's message reaches the parked subscriber,
/// so nothing wedged it), and the dying message was delivered exactly if it
/// was committed.
#[test]
fn loom_death_of_a_lone_publisher_at_every_point() {
    for point in crash::points_of(Role::Publisher) {
        model(move || {
            let r = Arc::new(HeapRing::new(2, Policy::Block, 2, 1));
            let mut s = ring::attach_subscriber(&*r, 0, 1, ring::Start::Tail);
            let r0 = Arc::clone(&r);
            let dying = thread::spawn(move || {
                crash::die_at(point, 1);
                crash::run_until_death(|| {
                    let mut l = ring::attach_publisher(&*r0, 0, 1);
                    send(&r0, &mut l, &msg(0, 0))
                })
            });
            let r1 = Arc::clone(&r);
            let subscriber = thread::spawn(move || {
                let mut got = Vec::new();
                loop {
                    let (seq, v) = recv_one(&r1, &mut s, WaitStrategy::Park).unwrap();
                    got.push((seq, v));
                    if v == (1 << 32) | 7 {
                        return got;
                    }
                }
            });
            dying.join().unwrap();
            reap_publisher(&r, 0);
            let committed = r.slot(0).stamp.load(Ordering::Acquire)
                == crate::layout::stamp::pack(0, crate::layout::stamp::COMMITTED);
            let mut l = ring::attach_publisher(&*r, 1, 1);
            send(&r, &mut l, &msg(1, 7));
            let got = subscriber.join().unwrap();
            let want_dying = usize::from(committed);
            assert_eq!(got.len(), want_dying + 1, "{point}: {got:?}");
            if committed {
                assert_eq!(got[0], (0, 0), "{point}");
            }
        });
    }
}

/// Every subscriber death point (receiving, consuming, parking, detaching)
/// on a full `block` ring: a publisher blocked on the dying subscriber's
/// cursor goes on once the reaper has run (finding 2(b): a subscriber killed
/// inside its detach, between leaving the gate and waking the publishers).
#[test]
fn loom_death_of_a_subscriber_at_every_point_releases_a_blocked_publisher() {
    for point in crash::points_of(Role::Subscriber) {
        model(move || {
            let r = Arc::new(HeapRing::new(2, Policy::Block, 1, 1));
            let mut p = ring::attach_publisher(&*r, 0, 1);
            let r0 = Arc::clone(&r);
            let dying = thread::spawn(move || {
                crash::die_at(point, 1);
                crash::run_until_death(|| {
                    let mut s = ring::attach_subscriber(&*r0, 0, 1, ring::Start::Retained);
                    let got = recv_one(&r0, &mut s, WaitStrategy::Park).unwrap();
                    ring::detach_subscriber(&*r0, &s);
                    got
                })
            });
            let r2 = Arc::clone(&r);
            let reaper = thread::spawn(move || {
                if dying.join().unwrap().is_none() {
                    ring::reclaim_subscriber(&*r2, 0);
                }
            });
            // Four messages into two slots: once the subscriber has read
            // one, the fourth waits for it to leave or be reaped (and the
            // third for its first read).
            for k in 0..4 {
                send(&r, &mut p, &msg(0, k));
            }
            reaper.join().unwrap();
        });
    }
}

/// The reaper itself dies at every one of its points (the daemon SIGKILLed
/// mid-reap, finding 2(c)) while reclaiming a publisher that died holding a
/// claim; a second reaper (the restarted daemon) finishes the job, and the
/// parked subscriber receives the live publisher's message.
#[test]
fn loom_death_of_the_reaper_at_every_point() {
    for point in crash::points_of(Role::Reaper) {
        model(move || {
            let r = Arc::new(HeapRing::new(2, Policy::Block, 2, 1));
            let mut s = ring::attach_subscriber(&*r, 0, 1, ring::Start::Tail);
            let mut dead = ring::attach_publisher(&*r, 0, 1);
            assert_eq!(ring::try_claim(&*r, &mut dead).unwrap(), 0); // then dies
            let r1 = Arc::clone(&r);
            let live = thread::spawn(move || {
                let mut l = ring::attach_publisher(&*r1, 1, 1);
                send(&r1, &mut l, &msg(1, 1))
            });
            let r2 = Arc::clone(&r);
            let reapers = thread::spawn(move || {
                crash::die_at(point, 1);
                let first = crash::run_until_death(|| reap_publisher(&r2, 0));
                assert!(first.is_none(), "{point} is on the reaper's path");
                reap_publisher(&r2, 0) // the next daemon
            });
            let (seq, v) = recv_one(&r, &mut s, WaitStrategy::Park).unwrap();
            assert_eq!((seq, v), (1, (1 << 32) | 1), "{point}");
            live.join().unwrap();
            reapers.join().unwrap();
        });
    }
}

/// The pattern subscription's wake word (`watch.rs`, *Why a parked pattern
/// subscriber never misses an announcement*): the daemon writes each
/// announcement to the connection (modelled by a locked queue: a socket
/// orders a write before the read that sees it), then bumps the word and
/// wakes it; the subscriber reads the word, drains the connection, and
/// sleeps only while the word still holds what it read. It never sleeps
/// past an announcement. (With the bump before the write, the subscriber
/// can drain an empty queue after reading the bumped word and sleep for
/// ever: the model then deadlocks.)
#[test]
fn loom_wake_word_never_sleeps_past_an_announcement() {
    model(|| {
        let word = Arc::new(crate::sync::AtomicU32::new(0));
        let queue = Arc::new(loom::sync::Mutex::new(Vec::<u32>::new()));
        let (w2, q2) = (Arc::clone(&word), Arc::clone(&queue));
        let daemon = thread::spawn(move || {
            for k in 0..2 {
                q2.lock().unwrap().push(k);
                w2.fetch_add(1, Ordering::Release);
                crate::futex::wake_all(&w2);
            }
        });
        let mut got = Vec::new();
        while got.len() < 2 {
            let seen = word.load(Ordering::Acquire);
            got.extend(queue.lock().unwrap().drain(..));
            if got.len() < 2 {
                crate::futex::wait(&word, seen, None);
            }
        }
        assert_eq!(got, [0, 1]);
        daemon.join().unwrap();
    });
}
