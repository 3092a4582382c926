//! Hostile segments: property tests in which an adversary with write access
//! to a topic's shared memory scribbles on it (SPEC §6 and §8; issue 3,
//! "Corrupted segments"; issue 7, "Hostile input → Segments").
//!
//! The promise under test: whatever bytes another process writes into a
//! topic's segments, every call of a publisher, a subscriber or the daemon's
//! `TopicOwner` returns a valid result or an error — it never panics, never
//! reads or writes outside the mapping, and never waits past its timeout.
//!
//! * **Headers** — random bytes over the immutable headers, and truncated or
//!   grown files: every attach either refuses, or accepts a geometry that
//!   fits the file and then works end to end.
//! * **Live state** — with a publisher and a subscriber attached, the
//!   adversary interleaves writes to stamps, lengths, timestamps, payloads,
//!   `tail`, cursors, entry states, counters and futex words with a bounded
//!   program of sends, loans, receives, in-place reads, re-attaches, reaps
//!   and stats. Every message returned is at most `max_msg_size` bytes and in
//!   sequence order; errors are of the kinds a caller is told to expect. A
//!   variant limits the adversary to the subs segment (what any subscriber
//!   may write) and then also demands that every message delivered is
//!   byte-for-byte the one published under its sequence number (SPEC §8:
//!   a subscriber cannot forge or corrupt messages for others). Another runs
//!   the adversary on its own thread, racing the clients.
//! * **Reaper** — ghost entries (marked active, with claims and wait
//!   announcements, but no live owner) and scribbled slots: `reap` frees
//!   exactly the dead subscriber entries, never a live client's, and
//!   `stats` never panics.
//!
//! Every call runs under a hang detector (`common::watchdog`) that aborts the
//! process if a call outlives its own timeout by 10 s. Each case creates its
//! topic on its own bus and removes it when done, even on failure.
//!
//! `PROPTEST_CASES=N` overrides every property's number of cases: a handful
//! under valgrind (`valgrind --error-exitcode=1
//! target/debug/deps/hostile_segments-*`), thousands for a long hunt.
//!
//! Bugs this suite found are pinned by focused tests at the end: regression
//! tests once fixed, `bug_*` tests ignored until then. Should a new bug need
//! time to fix, steer the generators around it (with the bug test's name in
//! a comment) rather than let the properties fail, and remove the detour
//! with the fix.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::adversary::{
    header_fields, must_match_ranges, nonces, Adversary, Field, Fixture, Seg, Value, TOPIC,
};
use common::watchdog;
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use shmbus::daemon::TopicOwner;
use shmbus::layout::{
    DataShared, Geometry, SubsShared, DATA_SHARED_OFFSET, ENTRY_ACTIVE, ENTRY_FREE, HEADER_SIZE,
    MAX_SEQ, SUBS_SHARED_OFFSET,
};
use shmbus::{Error, Policy, Publisher, SubscribeOptions, Subscriber, TopicConfig};

/// How long the `*_timeout` calls wait. Short: most of them are expected to
/// time out (the adversary stalls the ring).
const T: Duration = Duration::from_millis(2);

/// `cases` per property, unless `PROPTEST_CASES` says otherwise (a few for
/// a run under valgrind, many for a long local hunt).
fn proptest_config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        // A failure is turned into a focused `bug_*` test by hand; no
        // regression files in the source tree.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ------------------------------------------------------------- strategies

/// Small topics, so that laps, full rings and every table entry are reached
/// within a short program.
fn topic_config() -> impl Strategy<Value = TopicConfig> {
    (
        prop::sample::select(vec![2u64, 4, 8, 16]),
        prop::sample::select(vec![1u32, 8, 63, 64, 100, 256]),
        prop_oneof![Just(Policy::Block), Just(Policy::DropOldest)],
        1u32..=3,
        1u32..=3,
    )
        .prop_map(|(capacity, max_msg_size, policy, pubs, subs)| TopicConfig {
            capacity,
            max_msg_size,
            policy,
            max_publishers: pubs,
            max_subscribers: subs,
        })
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => prop::sample::select(vec![
            0u64,
            1,
            2,
            3,
            4,
            u64::from(u32::MAX),
            1 << 32,
            1 << 62,
            MAX_SEQ,
            MAX_SEQ + 1,
            1 << 63,
            u64::MAX - 1,
            u64::MAX,
        ])
        .prop_map(Value::Raw),
        2 => any::<u64>().prop_map(Value::Raw),
        3 => (-40i64..40).prop_map(Value::TailPlus),
        5 => ((-40i64..40), 0u64..4).prop_map(|(d, s)| Value::Stamp(d, s)),
        2 => (-2i64..1000).prop_map(Value::MaxMsgPlus),
    ]
}

fn data_field() -> impl Strategy<Value = Field> {
    prop_oneof![
        1 => Just(Field::Closed),
        4 => Just(Field::Tail),
        1 => Just(Field::TopicBlocked),
        1 => Just(Field::TopicAbandoned),
        1 => Just(Field::ReapedPublishers),
        1 => any::<u32>().prop_map(Field::PubState),
        1 => any::<u32>().prop_map(Field::PubPid),
        2 => any::<u32>().prop_map(Field::PubInflight),
        1 => any::<u32>().prop_map(Field::PubPublished),
        1 => any::<u32>().prop_map(Field::PubBlocked),
        1 => any::<u32>().prop_map(Field::PubWaiting),
        8 => any::<u64>().prop_map(Field::SlotStamp),
        5 => any::<u64>().prop_map(Field::SlotLen),
        1 => any::<u64>().prop_map(Field::SlotTimestamp),
        2 => (any::<u64>(), any::<u32>()).prop_map(|(k, b)| Field::Payload(k, b)),
        1 => any::<u32>().prop_map(Field::DataHeaderWord),
    ]
}

fn subs_field() -> impl Strategy<Value = Field> {
    prop_oneof![
        1 => Just(Field::DataReadySeq),
        1 => Just(Field::DataReadyWaiters),
        1 => Just(Field::SpaceReadySeq),
        1 => Just(Field::SpaceReadyWaiters),
        1 => Just(Field::ReapedSubscribers),
        2 => any::<u32>().prop_map(Field::SubState),
        1 => any::<u32>().prop_map(Field::SubPid),
        5 => any::<u32>().prop_map(Field::SubCursor),
        1 => any::<u32>().prop_map(Field::SubDelivered),
        1 => any::<u32>().prop_map(Field::SubLost),
        1 => any::<u32>().prop_map(Field::SubWaiting),
        1 => any::<u32>().prop_map(Field::SubAbandoned),
        1 => any::<u32>().prop_map(Field::SubsHeaderWord),
    ]
}

/// One step of a hostile program.
#[derive(Clone, Debug)]
enum Op {
    /// The adversary writes a field.
    Scribble(Field, Value),
    /// The adversary makes entry `index` look like a dead client's: active,
    /// announced as waiting, and (a publisher) holding a claim.
    Ghost {
        publisher: bool,
        index: u32,
        inflight: Value,
    },
    /// Lengths are reduced modulo `max_msg_size + 2`: one past the limit is
    /// reached too.
    TrySend(usize),
    SendTimeout(usize),
    TryLoan(usize, bool),
    LoanTimeout(usize, bool),
    TryRecv,
    RecvTimeout,
    TryRecvRef,
    RecvRefTimeout,
    /// `shmbus::wait_any` on the subscriber.
    WaitAny,
    /// Drop a client and attach a new one.
    Reattach {
        publisher: bool,
        from_start: bool,
    },
    Reap,
    Stats,
}

fn client_op() -> impl Strategy<Value = Op> {
    let len = 0usize..1024;
    prop_oneof![
        3 => len.clone().prop_map(Op::TrySend),
        2 => len.clone().prop_map(Op::SendTimeout),
        1 => (len.clone(), any::<bool>()).prop_map(|(l, c)| Op::TryLoan(l, c)),
        1 => (len, any::<bool>()).prop_map(|(l, c)| Op::LoanTimeout(l, c)),
        3 => Just(Op::TryRecv),
        2 => Just(Op::RecvTimeout),
        1 => Just(Op::TryRecvRef),
        1 => Just(Op::RecvRefTimeout),
        1 => Just(Op::WaitAny),
        1 => (any::<bool>(), any::<bool>())
            .prop_map(|(publisher, from_start)| Op::Reattach { publisher, from_start }),
        1 => Just(Op::Reap),
        1 => Just(Op::Stats),
    ]
}

fn ghost() -> impl Strategy<Value = Op> {
    (any::<bool>(), any::<u32>(), value()).prop_map(|(publisher, index, inflight)| Op::Ghost {
        publisher,
        index,
        inflight,
    })
}

/// A program for an adversary who may write both segments.
fn full_program() -> impl Strategy<Value = Vec<Op>> {
    let scribble = prop_oneof![
        3 => (data_field(), value()).prop_map(|(f, v)| Op::Scribble(f, v)),
        1 => (subs_field(), value()).prop_map(|(f, v)| Op::Scribble(f, v)),
    ];
    prop::collection::vec(
        prop_oneof![2 => scribble, 3 => client_op(), 1 => ghost()],
        1..60,
    )
}

/// A program for an adversary who may write only the subs segment.
fn subs_only_program() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(
        prop_oneof![
            2 => (subs_field(), value()).prop_map(|(f, v)| Op::Scribble(f, v)),
            3 => client_op(),
        ],
        1..60,
    )
}

/// A program aimed at the reaper: ghosts, claims, stamps, tail, and reaps.
fn reaper_program() -> impl Strategy<Value = Vec<Op>> {
    let aimed = prop_oneof![
        Just(Field::Tail),
        any::<u32>().prop_map(Field::PubState),
        any::<u32>().prop_map(Field::PubInflight),
        any::<u32>().prop_map(Field::PubWaiting),
        any::<u32>().prop_map(Field::SubState),
        any::<u32>().prop_map(Field::SubWaiting),
        any::<u32>().prop_map(Field::SubCursor),
        any::<u64>().prop_map(Field::SlotStamp),
        Just(Field::SpaceReadyWaiters),
        Just(Field::DataReadyWaiters),
    ];
    prop::collection::vec(
        prop_oneof![
            3 => (aimed, value()).prop_map(|(f, v)| Op::Scribble(f, v)),
            3 => ghost(),
            3 => Just(Op::Reap),
            1 => Just(Op::Stats),
            2 => client_op(),
        ],
        1..40,
    )
}

// ---------------------------------------------------------------- clients

/// The clients of one topic under attack, and what they published.
struct Clients<'f> {
    fx: &'f Fixture,
    publisher: Option<Publisher>,
    subscriber: Option<Subscriber>,
    /// Payload committed under each sequence number by our publishers.
    sent: HashMap<u64, Vec<u8>>,
    /// Only the subs segment is hostile: delivered bytes must be exact, and
    /// no call may report corruption.
    subs_only: bool,
    /// Messages made so far (seeds their bytes).
    made: u64,
    buf: Vec<u8>,
}

fn is_expected_send_error(e: &Error, subs_only: bool) -> bool {
    match e {
        Error::Full | Error::Timeout => true,
        Error::Closed | Error::Corrupt { .. } => !subs_only,
        _ => false,
    }
}

fn is_expected_recv_error(e: &Error, subs_only: bool) -> bool {
    match e {
        Error::Timeout => true,
        Error::Lagged(n) => *n > 0,
        Error::Closed | Error::Corrupt { .. } => !subs_only,
        _ => false,
    }
}

impl<'f> Clients<'f> {
    fn new(fx: &'f Fixture, subs_only: bool) -> Clients<'f> {
        let _w = watchdog::arm("attach the first publisher and subscriber", Duration::ZERO);
        let publisher = Publisher::attach(&fx.bus, TOPIC).expect("attach publisher");
        let subscriber = Subscriber::attach(&fx.bus, TOPIC, SubscribeOptions::default())
            .expect("attach subscriber");
        Clients {
            fx,
            publisher: Some(publisher),
            subscriber: Some(subscriber),
            sent: HashMap::new(),
            subs_only,
            made: 0,
            buf: vec![0; fx.cfg.max_msg_size as usize],
        }
    }

    fn max(&self) -> usize {
        self.fx.cfg.max_msg_size as usize
    }

    /// The bytes of the next message, `len` long.
    fn payload(&mut self, len: usize) -> Vec<u8> {
        self.made += 1;
        let n = self.made;
        (0..len)
            .map(|i| (n.wrapping_mul(31).wrapping_add(i as u64 * 7)) as u8)
            .collect()
    }

    fn check_send(&mut self, what: &str, len: usize, r: Result<u64, Error>, bytes: Vec<u8>) {
        let max = self.max();
        match r {
            Ok(seq) => {
                assert!(len <= max, "{what}: accepted {len} bytes, max is {max}");
                self.sent.insert(seq, bytes);
            }
            Err(Error::TooLarge { len: l, max: m }) => {
                assert!(len > max, "{what}: TooLarge for {len} bytes, max is {max}");
                assert_eq!((l, m), (len, max), "{what}: TooLarge fields");
            }
            Err(e) => {
                assert!(len <= max, "{what}: {len} bytes over max {max} gave {e:?}");
                assert!(
                    is_expected_send_error(&e, self.subs_only),
                    "{what}: unexpected error {e:?}"
                );
            }
        }
    }

    /// Checks a delivered message; `before` is `next_seq()` before the call.
    fn check_message(&self, what: &str, before: u64, seq: u64, data: &[u8]) {
        assert!(
            data.len() <= self.max(),
            "{what}: message of {} bytes, max is {}",
            data.len(),
            self.max()
        );
        assert!(
            seq >= before,
            "{what}: message {seq} delivered after the cursor reached {before}"
        );
        if self.subs_only {
            match self.sent.get(&seq) {
                Some(sent) => assert!(
                    sent.as_slice() == data,
                    "{what}: message {seq} delivered as {data:?}, published as {sent:?}"
                ),
                None => panic!("{what}: message {seq} ({data:?}) was never committed"),
            }
        }
    }

    fn send(&mut self, op: &Op) {
        let (len, timeout) = match *op {
            Op::TrySend(l) => (l, Duration::ZERO),
            Op::SendTimeout(l) => (l, T),
            _ => unreachable!(),
        };
        let len = len % (self.max() + 2);
        let bytes = self.payload(len);
        let Some(p) = self.publisher.as_mut() else {
            return;
        };
        let what = format!("{op:?}");
        let r = {
            let _w = watchdog::arm(what.clone(), timeout);
            if timeout.is_zero() {
                p.try_send(&bytes)
            } else {
                p.send_timeout(&bytes, timeout)
            }
        };
        self.check_send(&what, len, r, bytes);
    }

    fn loan(&mut self, op: &Op) {
        let (len, commit, timeout) = match *op {
            Op::TryLoan(l, c) => (l, c, Duration::ZERO),
            Op::LoanTimeout(l, c) => (l, c, T),
            _ => unreachable!(),
        };
        let len = len % (self.max() + 2);
        let bytes = self.payload(len);
        let Some(p) = self.publisher.as_mut() else {
            return;
        };
        let what = format!("{op:?}");
        // In its own block: the loan borrows the publisher until dropped.
        let r = {
            let _w = watchdog::arm(what.clone(), timeout);
            let loan = if timeout.is_zero() {
                p.try_loan(len)
            } else {
                p.loan_timeout(len, timeout)
            };
            match loan {
                Ok(mut loan) => {
                    assert_eq!(loan.len(), len, "{what}: loan length");
                    loan.copy_from_slice(&bytes);
                    let seq = loan.seq();
                    if !commit {
                        drop(loan); // abandoned: never delivered
                        return;
                    }
                    assert_eq!(loan.commit(), seq, "{what}: commit returns the loan's seq");
                    Ok(seq)
                }
                Err(e) => Err(e),
            }
        };
        self.check_send(&what, len, r, bytes);
    }

    fn recv(&mut self, op: &Op) {
        let subs_only = self.subs_only;
        let Some(s) = self.subscriber.as_mut() else {
            return;
        };
        let what = format!("{op:?}");
        let before = s.next_seq();
        let r = match op {
            Op::TryRecv => {
                let _w = watchdog::arm(what.clone(), Duration::ZERO);
                s.try_recv().map(|m| m.map(|m| (m.seq, m.data.to_vec())))
            }
            Op::RecvTimeout => {
                let _w = watchdog::arm(what.clone(), T);
                s.recv_timeout(T).map(|m| Some((m.seq, m.data.to_vec())))
            }
            _ => unreachable!(),
        };
        match r {
            Ok(Some((seq, data))) => {
                self.check_message(&what, before, seq, &data);
                let s = self.subscriber.as_ref().expect("subscriber");
                assert_eq!(s.next_seq(), seq + 1, "{what}: cursor after message {seq}");
            }
            Ok(None) => {}
            Err(e) => assert!(
                is_expected_recv_error(&e, subs_only),
                "{what}: unexpected error {e:?}"
            ),
        }
    }

    fn recv_ref(&mut self, op: &Op) {
        let subs_only = self.subs_only;
        let max = self.max();
        let Some(s) = self.subscriber.as_mut() else {
            return;
        };
        let what = format!("{op:?}");
        let before = s.next_seq();
        let timeout = if matches!(op, Op::TryRecvRef) {
            Duration::ZERO
        } else {
            T
        };
        // What the guard showed, if it stayed valid: checked once the
        // subscriber is no longer borrowed (the block ends the borrow).
        let seen = {
            let _w = watchdog::arm(what.clone(), timeout);
            let guard = if timeout.is_zero() {
                s.try_recv_ref()
            } else {
                s.recv_ref_timeout(timeout).map(Some)
            };
            match guard {
                Ok(Some(g)) => {
                    let seq = g.seq();
                    let data = g.data().to_vec();
                    assert!(data.len() <= max, "{what}: guard of {} bytes", data.len());
                    let valid = g.is_valid();
                    let copied = g
                        .copy_to(&mut self.buf)
                        .unwrap_or_else(|e| panic!("{what}: copy_to a max-size buffer: {e}"));
                    let copy = copied.then(|| self.buf[..data.len()].to_vec());
                    drop(g); // consumes the message
                    Some((seq, valid || copied, valid.then_some(data), copy))
                }
                Ok(None) => None,
                Err(e) => {
                    assert!(
                        is_expected_recv_error(&e, subs_only),
                        "{what}: unexpected error {e:?}"
                    );
                    None
                }
            }
        };
        if let Some((seq, confirmed, data, copy)) = seen {
            for bytes in [data, copy].into_iter().flatten() {
                self.check_message(&what, before, seq, &bytes);
            }
            // Dropping the guard consumes a message the caller saw confirmed
            // whole (`is_valid`, `copy_to`), or one still whole; one
            // overwritten and never confirmed is reported lost next time.
            let next = self.subscriber.as_ref().expect("subscriber").next_seq();
            if confirmed {
                assert_eq!(
                    next,
                    seq + 1,
                    "{what}: confirmed message {seq} not consumed"
                );
            } else if self.subs_only {
                // An honest data segment's stamps only move forward: still
                // overwritten at the drop.
                assert_eq!(next, seq, "{what}: overwritten message {seq} consumed");
            } else {
                assert!(
                    next == seq + 1 || next == seq,
                    "{what}: cursor {next} after message {seq}"
                );
            }
        }
    }

    fn wait_any(&self) {
        let Some(s) = &self.subscriber else {
            return;
        };
        let _w = watchdog::arm("wait_any", T);
        match shmbus::wait_any(&[s], Some(T)) {
            Ok(()) | Err(Error::Timeout) => {}
            Err(e) => panic!("wait_any: unexpected error {e:?}"),
        }
    }

    fn reattach(&mut self, publisher: bool, from_start: bool) {
        let fx = self.fx;
        // Dropping a publisher may wait 100 ms to abandon a stalled claim.
        let _w = watchdog::arm(
            format!("re-attach (publisher: {publisher})"),
            Duration::from_millis(100),
        );
        if publisher {
            self.publisher = None;
            // A scribbled subs header refuses every attach (a subscriber
            // can deny new clients: an error, which SPEC §8 allows).
            self.publisher = Publisher::attach(&fx.bus, TOPIC).ok();
        } else {
            self.subscriber = None;
            let opts = SubscribeOptions {
                from_start,
                ..SubscribeOptions::default()
            };
            // The subs header may have been scribbled: refusing is fine.
            self.subscriber = Subscriber::attach(&fx.bus, TOPIC, opts).ok();
        }
    }

    fn run(&mut self, op: Op) {
        match op {
            Op::Scribble(field, value) => {
                assert!(
                    !self.subs_only || field.in_subs(),
                    "{field:?} is not in subs"
                );
                self.fx.adv.scribble(field, value)
            }
            Op::Ghost {
                publisher,
                index,
                inflight,
            } => ghost_entry(&self.fx.adv, publisher, index, inflight),
            Op::TrySend(_) | Op::SendTimeout(_) => self.send(&op),
            Op::TryLoan(..) | Op::LoanTimeout(..) => self.loan(&op),
            Op::TryRecv | Op::RecvTimeout => self.recv(&op),
            Op::TryRecvRef | Op::RecvRefTimeout => self.recv_ref(&op),
            Op::WaitAny => self.wait_any(),
            Op::Reattach {
                publisher,
                from_start,
            } => self.reattach(publisher, from_start),
            Op::Reap => reap_and_check(self.fx),
            Op::Stats => stats_and_check(self.fx),
        }
        let _w = watchdog::arm("lag, next_seq, skipped, subscriber_count", Duration::ZERO);
        if let Some(s) = &self.subscriber {
            let _ = (s.lag(), s.next_seq(), s.skipped());
        }
        if let Some(p) = &self.publisher {
            let n = p.subscriber_count();
            assert!(n <= self.fx.cfg.max_subscribers, "subscriber_count {n}");
        }
    }

    /// Runs `program`, then drops the clients under the hang detector.
    fn run_all(mut self, program: Vec<Op>) {
        for op in program {
            self.run(op);
        }
        let _w = watchdog::arm("drop the clients", Duration::from_millis(100));
        self.publisher = None;
        self.subscriber = None;
    }
}

/// Writes entry `index` as a dead client would have left it.
fn ghost_entry(adv: &Adversary, publisher: bool, index: u32, inflight: Value) {
    let pid = u64::from(u32::MAX - 7); // no such process; informational only
    if publisher {
        adv.scribble(Field::PubInflight(index), inflight);
        adv.scribble(Field::PubWaiting(index), Value::Raw(1));
        adv.scribble(Field::PubPid(index), Value::Raw(pid));
        adv.scribble(Field::PubState(index), Value::Raw(ENTRY_ACTIVE.into()));
    } else {
        adv.scribble(Field::SubCursor(index), inflight);
        adv.scribble(Field::SubWaiting(index), Value::Raw(1));
        adv.scribble(Field::SubPid(index), Value::Raw(pid));
        adv.scribble(Field::SubState(index), Value::Raw(ENTRY_ACTIVE.into()));
    }
}

/// Entry states before a reap, and whether a live client holds each entry's
/// liveness lock (seen from the adversary's own open file description).
fn entry_census(fx: &Fixture, publishers: bool) -> Vec<(u64, bool)> {
    type Table = (u32, Seg, fn(u32) -> Field, fn(u32) -> usize);
    let (n, seg, state_field, lock_offset): Table = if publishers {
        (
            fx.cfg.max_publishers,
            Seg::Data,
            Field::PubState,
            Geometry::pub_entry_offset,
        )
    } else {
        (
            fx.cfg.max_subscribers,
            Seg::Subs,
            Field::SubState,
            Geometry::sub_entry_offset,
        )
    };
    (0..n)
        .map(|i| {
            let (_, off, w) = state_field(i).place(&fx.cfg);
            let file = fx.adv.file(seg);
            let held =
                shmbus::liveness::is_held(file, lock_offset(i)).expect("probe a liveness lock");
            (fx.adv.load(seg, off, w), held)
        })
        .collect()
}

/// `reap` on a scribbled topic: never panics, never reclaims a live client,
/// frees every dead subscriber entry and counts exactly those.
fn reap_and_check(fx: &Fixture) {
    let subs_before = entry_census(fx, false);
    let pubs_before = entry_census(fx, true);
    let report = {
        let _w = watchdog::arm("TopicOwner::reap", Duration::ZERO);
        fx.owner.reap()
    };
    let subs_after = entry_census(fx, false);
    let pubs_after = entry_census(fx, true);
    for (i, ((b, held), (a, _))) in subs_before.iter().zip(&subs_after).enumerate() {
        if *held {
            assert_eq!(a, b, "reap changed live subscriber entry {i}'s state");
        } else {
            assert_eq!(
                *a,
                u64::from(ENTRY_FREE),
                "reap left dead subscriber entry {i}"
            );
        }
    }
    let dead_subs = subs_before
        .iter()
        .filter(|(s, held)| !held && *s != u64::from(ENTRY_FREE))
        .count();
    assert_eq!(report.subscribers as usize, dead_subs, "{report:?}");
    for (i, ((b, held), (a, _))) in pubs_before.iter().zip(&pubs_after).enumerate() {
        if *held {
            assert_eq!(a, b, "reap changed live publisher entry {i}'s state");
        }
    }
    let dead_pubs = pubs_before
        .iter()
        .filter(|(s, held)| !held && *s != u64::from(ENTRY_FREE))
        .count();
    assert!(report.publishers as usize <= dead_pubs, "{report:?}");
    assert!(report.abandoned_slots <= report.publishers, "{report:?}");
}

/// `stats` on a scribbled topic: never panics, and its rows agree with its
/// totals.
fn stats_and_check(fx: &Fixture) {
    let st = {
        let _w = watchdog::arm("TopicOwner::stats", Duration::ZERO);
        fx.owner.stats()
    };
    assert_eq!(st.subscribers as usize, st.subscriber_stats.len());
    assert_eq!(st.publishers as usize, st.publisher_stats.len());
    assert!(st.subscribers <= fx.cfg.max_subscribers);
    assert!(st.publishers <= fx.cfg.max_publishers);
    assert_eq!(st.capacity, fx.cfg.capacity);
    assert_eq!(st.max_msg_size, fx.cfg.max_msg_size);
    let _ = serde_json::to_string(&st).expect("stats serialise");
}

/// Sends a few messages so the ring holds history before the attack.
fn prime(c: &mut Clients<'_>, n: usize) {
    for i in 0..n {
        c.run(Op::TrySend(i * 13));
    }
}

// ----------------------------------------------------------------- headers

/// A write into one of the immutable headers.
#[derive(Clone, Debug)]
enum HeaderScribble {
    /// Field `index` of [`header_fields`], changed in a meaningful way.
    Field { index: usize, change: Change },
    /// Raw bytes in the immutable header (`padding`: in the unused end of
    /// the header page instead), at `offset` reduced into that range. The
    /// live fields between the two are the live tests' business.
    Bytes {
        data: bool,
        padding: bool,
        offset: usize,
        bytes: Vec<u8>,
    },
}

/// The bytes of a header page that `HeaderScribble::Bytes` may write.
fn scribble_range(seg: Seg, padding: bool) -> std::ops::Range<usize> {
    let (shared_at, shared_len) = match seg {
        Seg::Data => (DATA_SHARED_OFFSET, std::mem::size_of::<DataShared>()),
        Seg::Subs => (SUBS_SHARED_OFFSET, std::mem::size_of::<SubsShared>()),
    };
    if padding {
        shared_at + shared_len..HEADER_SIZE
    } else {
        0..shared_at
    }
}

#[derive(Clone, Debug)]
enum Change {
    Set(u64),
    Add(i64),
    Double,
    Half,
}

fn header_scribble() -> impl Strategy<Value = HeaderScribble> {
    let change = prop_oneof![
        2 => prop::sample::select(vec![
            0u64,
            1,
            2,
            3,
            4096,
            u64::from(u32::MAX),
            1 << 32,
            1 << 63,
            u64::MAX
        ])
        .prop_map(Change::Set),
        1 => any::<u64>().prop_map(Change::Set),
        2 => (-70i64..70).prop_map(Change::Add),
        1 => Just(Change::Double),
        1 => Just(Change::Half),
    ];
    prop_oneof![
        3 => (0..header_fields().len(), change)
            .prop_map(|(index, change)| HeaderScribble::Field { index, change }),
        2 => (any::<bool>(), prop::bool::weighted(0.2), any::<usize>(),
              prop::collection::vec(any::<u8>(), 1..9))
            .prop_map(|(data, padding, offset, bytes)| HeaderScribble::Bytes {
                data,
                padding,
                offset,
                bytes,
            }),
    ]
}

fn apply_header_scribble(adv: &Adversary, s: &HeaderScribble) {
    match s {
        HeaderScribble::Field { index, change } => {
            let (seg, off, w) = header_fields()[*index];
            let old = adv.load(seg, off, w);
            let new = match change {
                Change::Set(v) => *v,
                Change::Add(d) => old.wrapping_add_signed(*d),
                Change::Double => old.wrapping_mul(2),
                Change::Half => old / 2,
            };
            adv.store(seg, off, w, new);
        }
        HeaderScribble::Bytes {
            data,
            padding,
            offset,
            bytes,
        } => {
            let seg = if *data { Seg::Data } else { Seg::Subs };
            let range = scribble_range(seg, *padding);
            let at = range.start + offset % range.len();
            let n = bytes.len().min(range.end - at);
            adv.write_bytes(seg, at, &bytes[..n]);
        }
    }
}

/// What the three ways of opening a topic make of its segments now.
struct Opened {
    owner: Result<TopicOwner, Error>,
    publisher: Result<Publisher, Error>,
    subscriber: Result<Subscriber, Error>,
}

fn open_all(fx: &Fixture) -> Opened {
    let _w = watchdog::arm("adopt and attach", Duration::ZERO);
    Opened {
        owner: TopicOwner::adopt(&fx.bus, TOPIC),
        publisher: Publisher::attach(&fx.bus, TOPIC),
        subscriber: Subscriber::attach(&fx.bus, TOPIC, SubscribeOptions::default()),
    }
}

fn assert_all_refused(o: &Opened, why: &str) {
    for (who, r) in [
        ("TopicOwner::adopt", o.owner.as_ref().err()),
        ("Publisher::attach", o.publisher.as_ref().err()),
        ("Subscriber::attach", o.subscriber.as_ref().err()),
    ] {
        match r {
            Some(Error::Corrupt { .. }) => {}
            Some(e) => panic!("{who} after {why}: refused with {e:?}, expected Corrupt"),
            None => panic!("{who} accepted the topic after {why}"),
        }
    }
}

/// An accepted geometry must describe the files exactly (else slots could
/// lie outside the mapping), and the topic must then work end to end.
fn check_accepted(fx: &Fixture, o: Opened) {
    let data_len = fx.adv.len(Seg::Data) as u64;
    let subs_len = fx.adv.len(Seg::Subs) as u64;
    let fits = |cfg: &TopicConfig, who: &str| {
        assert_eq!(cfg.data_segment_size(), data_len, "{who} accepted {cfg:?}");
        assert_eq!(cfg.subs_segment_size(), subs_len, "{who} accepted {cfg:?}");
        cfg.validate()
            .unwrap_or_else(|e| panic!("{who} accepted {cfg:?}: {e}"));
    };
    if let Ok(owner) = &o.owner {
        fits(&owner.config(), "TopicOwner::adopt");
        let _w = watchdog::arm("adopted owner: reap, stats", Duration::ZERO);
        let _ = owner.reap();
        let _ = owner.stats();
    }
    if let Ok(p) = &o.publisher {
        fits(p.config(), "Publisher::attach");
    }
    if let Ok(s) = &o.subscriber {
        fits(s.config(), "Subscriber::attach");
    }
    let (Ok(mut p), Ok(mut s)) = (o.publisher, o.subscriber) else {
        return;
    };
    assert_eq!(p.config(), s.config(), "publisher and subscriber disagree");
    let max = p.max_msg_size();
    // More messages than slots: every slot is written and read at least once.
    for i in 0..(p.config().capacity * 2 + 1) {
        let msg: Vec<u8> = (0..max.min(1 + i as usize * 5))
            .map(|b| (i as u8) ^ (b as u8))
            .collect();
        let _w = watchdog::arm(format!("round trip {i}"), Duration::from_secs(1) * 2);
        let seq = p
            .send_timeout(&msg, Duration::from_secs(1))
            .unwrap_or_else(|e| panic!("send {i} on an accepted topic: {e}"));
        let m = s
            .recv_timeout(Duration::from_secs(1))
            .unwrap_or_else(|e| panic!("receive {i} on an accepted topic: {e}"));
        assert_eq!((m.seq, m.data), (seq, msg.as_slice()), "round trip {i}");
    }
}

proptest! {
    #![proptest_config(proptest_config(256))]

    /// Random writes over both immutable headers, then adopt and attach:
    /// each refuses with `Corrupt` or accepts a geometry that fits the files
    /// and works; a changed identity field (magic, version, part, sizes,
    /// capacity, topic name) or nonces that differ are always refused.
    #[test]
    fn header_scribbles_are_refused_or_harmless(
        cfg in topic_config(),
        scribbles in prop::collection::vec(header_scribble(), 1..5),
    ) {
        let fx = Fixture::new(&cfg);
        let before = |seg| fx.adv.read_bytes(seg, 0..HEADER_SIZE);
        let (data0, subs0) = (before(Seg::Data), before(Seg::Subs));
        for s in &scribbles {
            apply_header_scribble(&fx.adv, s);
        }
        let (data1, subs1) = (before(Seg::Data), before(Seg::Subs));
        let identity_changed = must_match_ranges(TOPIC).into_iter().find(|(seg, r)| {
            let (a, b) = match seg {
                Seg::Data => (&data0, &data1),
                Seg::Subs => (&subs0, &subs1),
            };
            a[r.clone()] != b[r.clone()]
        });
        let (data_nonce, subs_nonce) = nonces(&fx.adv);
        let opened = open_all(&fx);
        if let Some((seg, r)) = identity_changed {
            assert_all_refused(&opened, &format!("changing {seg:?} header bytes {r:?}"));
        } else if data_nonce != subs_nonce {
            assert_all_refused(
                &opened,
                &format!("making the nonces differ ({data_nonce:#x}, {subs_nonce:#x})"),
            );
        } else {
            check_accepted(&fx, opened);
        }
        // The daemon's own mapping kept its private geometry: still usable.
        stats_and_check(&fx);
        let _w = watchdog::arm("original owner reap", Duration::ZERO);
        let _ = fx.owner.reap();
    }
}

/// A new length for a segment file.
#[derive(Clone, Copy, Debug)]
enum NewLen {
    Zero,
    Below(u64),
    HeaderOnly,
    OneShort,
    SlotShort,
    Half,
    OneOver,
    PageOver,
}

proptest! {
    #![proptest_config(proptest_config(64))]

    /// `ftruncate` a segment file smaller or larger than its header says:
    /// every open refuses with `Corrupt`.
    #[test]
    fn resized_segment_files_are_refused(
        cfg in topic_config(),
        data in any::<bool>(),
        how in prop_oneof![
            Just(NewLen::Zero),
            (1u64..HEADER_SIZE as u64).prop_map(NewLen::Below),
            Just(NewLen::HeaderOnly),
            Just(NewLen::OneShort),
            Just(NewLen::SlotShort),
            Just(NewLen::Half),
            Just(NewLen::OneOver),
            Just(NewLen::PageOver),
        ],
    ) {
        let fx = Fixture::new(&cfg);
        let seg = if data { Seg::Data } else { Seg::Subs };
        let size = fx.adv.len(seg) as u64;
        let new = match how {
            NewLen::Zero => 0,
            NewLen::Below(n) => n,
            NewLen::HeaderOnly => HEADER_SIZE as u64,
            NewLen::OneShort => size - 1,
            NewLen::SlotShort => size - cfg.slot_stride().min(size - 1),
            NewLen::Half => size / 2,
            NewLen::OneOver => size + 1,
            NewLen::PageOver => size + 4096,
        };
        // Nothing below touches the mappings past the new end: the owner's
        // and the adversary's are only unmapped.
        fx.adv.truncate(seg, new);
        let opened = open_all(&fx);
        assert_all_refused(&opened, &format!("resizing {seg:?} from {size} to {new} bytes"));
    }
}

// -------------------------------------------------------------- live state

proptest! {
    #![proptest_config(proptest_config(192))]

    /// An adversary writing both segments, interleaved with every kind of
    /// client call: valid messages or expected errors, in time, no panic.
    #[test]
    fn live_scribbles_yield_valid_messages_or_errors(
        cfg in topic_config(),
        history in 0usize..20,
        program in full_program(),
    ) {
        let fx = Fixture::new(&cfg);
        let mut c = Clients::new(&fx, false);
        prime(&mut c, history);
        c.run_all(program);
        reap_and_check(&fx);
        stats_and_check(&fx);
    }

    /// An adversary writing only the subs segment — what any subscriber can
    /// do: cursors, entries, wake words. Every message delivered is exactly
    /// the one published under its sequence number, and nobody sees
    /// `Corrupt` or `Closed`.
    #[test]
    fn subs_scribbles_never_corrupt_delivered_messages(
        cfg in topic_config(),
        history in 0usize..20,
        program in subs_only_program(),
    ) {
        let fx = Fixture::new(&cfg);
        let mut c = Clients::new(&fx, true);
        prime(&mut c, history);
        c.run_all(program);
        reap_and_check(&fx);
        stats_and_check(&fx);
    }

    /// Dead-looking entries and scribbled claims, slots and tail under the
    /// reaper, with live clients in between: `reap` never touches a live
    /// entry, frees every dead subscriber, and nothing panics or hangs.
    #[test]
    fn reaper_survives_scribbles_and_spares_the_living(
        cfg in topic_config(),
        history in 0usize..20,
        program in reaper_program(),
    ) {
        let fx = Fixture::new(&cfg);
        let mut c = Clients::new(&fx, false);
        prime(&mut c, history);
        c.run_all(program);
        reap_and_check(&fx);
        stats_and_check(&fx);
    }
}

// --------------------------------------------------- concurrent adversary

proptest! {
    // Shrinking a race replays it with other timings: a few rounds only.
    #![proptest_config(ProptestConfig {
        max_shrink_iters: 16,
        ..proptest_config(64)
    })]

    /// The adversary on its own thread, cycling through its writes (and
    /// reaping, as the daemon does) while the clients publish and receive:
    /// it lands between a stamp check and a copy, inside a wait, between a
    /// claim and a commit. Same promises as the interleaved tests.
    #[test]
    fn racing_adversary_yields_valid_messages_or_errors(
        cfg in topic_config(),
        subs_only in any::<bool>(),
        scribbles in prop::collection::vec(
            prop_oneof![
                3 => (data_field(), value()),
                2 => (subs_field(), value()),
            ],
            1..40,
        ),
    ) {
        let fx = Fixture::new(&cfg);
        let scribbles: Vec<Op> = scribbles
            .into_iter()
            .filter(|(f, _)| !subs_only || f.in_subs())
            // A closed topic ends every call at once: leave it open here.
            .filter(|(f, _)| *f != Field::Closed)
            .map(|(f, v)| Op::Scribble(f, v))
            .collect();
        let mut c = Clients::new(&fx, subs_only);
        prime(&mut c, 3);
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            let adversary = scope.spawn(|| {
                let mut writes = 0u32;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    for op in &scribbles {
                        if let Op::Scribble(f, v) = op {
                            fx.adv.scribble(*f, *v);
                        }
                        writes += 1;
                        if writes.is_multiple_of(64) {
                            let _w = watchdog::arm("racing reap", Duration::ZERO);
                            let _ = fx.owner.reap();
                            let _ = fx.owner.stats();
                        }
                        std::thread::yield_now();
                    }
                    if scribbles.is_empty() {
                        break;
                    }
                }
            });
            let program = (0..120usize).map(|i| match i % 9 {
                0 => Op::TrySend(i),
                1 => Op::TryRecv,
                2 => Op::SendTimeout(i * 3),
                3 => Op::RecvTimeout,
                4 => Op::TryLoan(i, i % 16 != 4),
                5 => Op::TryRecvRef,
                6 => Op::LoanTimeout(i * 5, true),
                7 => Op::WaitAny,
                _ => Op::RecvRefTimeout,
            });
            for op in program {
                c.run(op);
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            adversary.join().expect("adversary thread");
        });
        c.run_all(Vec::new());
    }
}

// ------------------------------------------------- bugs found, pinned down

/// A topic with one publisher and one subscriber (entries 0 and 0).
fn one_of_each(policy: Policy) -> (Fixture, Publisher, Subscriber) {
    let fx = Fixture::new(&TopicConfig {
        capacity: 2,
        max_msg_size: 8,
        policy,
        max_publishers: 1,
        max_subscribers: 1,
    });
    let p = Publisher::attach(&fx.bus, TOPIC).expect("attach publisher");
    let s =
        Subscriber::attach(&fx.bus, TOPIC, SubscribeOptions::default()).expect("attach subscriber");
    (fx, p, s)
}

/// Regression (found by this suite, fixed in a000b9b): SubEntry.delivered = u64::MAX in shared memory made recv panic (overflow in ring::consume).
#[test]
fn delivered_counter_at_u64_max_does_not_break_recv() {
    let (fx, mut p, mut s) = one_of_each(Policy::Block);
    // The subs segment is writable by every subscriber.
    fx.adv
        .scribble(Field::SubDelivered(0), Value::Raw(u64::MAX));
    let seq = p.try_send(b"x").expect("send");
    let _w = watchdog::arm("try_recv", Duration::ZERO);
    let m = s.try_recv().expect("receive").expect("a message");
    assert_eq!((m.seq, m.data), (seq, &b"x"[..]));
}

/// Regression (found by this suite, fixed in a000b9b): SubEntry.lost = u64::MAX in shared memory made a lapped recv panic (overflow in ring::lapped).
#[test]
fn lost_counter_at_u64_max_does_not_break_a_lapped_recv() {
    let (fx, mut p, mut s) = one_of_each(Policy::DropOldest);
    fx.adv.scribble(Field::SubLost(0), Value::Raw(u64::MAX));
    for _ in 0..5 {
        p.try_send(b"x").expect("send");
    }
    let _w = watchdog::arm("try_recv", Duration::ZERO);
    match s.try_recv() {
        Err(Error::Lagged(n)) => assert_eq!(n, 3),
        other => panic!("expected Lagged(3), got {other:?}"),
    }
}

/// Regression (found by this suite, fixed in a000b9b): SubEntry.abandoned = u64::MAX in shared memory made recv panic on an abandoned slot (overflow in ring::peek).
#[test]
fn abandoned_counter_at_u64_max_does_not_break_recv() {
    let (fx, mut p, mut s) = one_of_each(Policy::Block);
    fx.adv
        .scribble(Field::SubAbandoned(0), Value::Raw(u64::MAX));
    drop(p.try_loan(1).expect("loan")); // abandons sequence 0
    let _w = watchdog::arm("try_recv", Duration::ZERO);
    assert!(s.try_recv().expect("receive").is_none());
    assert_eq!(s.next_seq(), 1, "the abandoned slot is skipped");
}

/// Regression (found by this suite, fixed in a000b9b): PubEntry.published = u64::MAX in shared memory made send panic (overflow in ring::commit).
#[test]
fn published_counter_at_u64_max_does_not_break_send() {
    let (fx, mut p, _s) = one_of_each(Policy::Block);
    fx.adv
        .scribble(Field::PubPublished(0), Value::Raw(u64::MAX));
    let _w = watchdog::arm("try_send", Duration::ZERO);
    assert_eq!(p.try_send(b"x").expect("send"), 0);
}

/// Regression (found by this suite, fixed in a000b9b): PubEntry.blocked = u64::MAX in shared memory made a full send panic (overflow in ring::claim).
#[test]
fn blocked_counter_at_u64_max_does_not_break_a_full_send() {
    let (fx, mut p, _s) = one_of_each(Policy::Block);
    p.try_send(b"a").expect("send");
    p.try_send(b"b").expect("send");
    fx.adv.scribble(Field::PubBlocked(0), Value::Raw(u64::MAX));
    let _w = watchdog::arm("send_timeout", T);
    match p.send_timeout(b"c", T) {
        Err(Error::Timeout) => {}
        other => panic!("expected Timeout on a full ring, got {other:?}"),
    }
}

/// Regression (found by this suite, fixed in a000b9b): tail = u64::MAX at attach started the cursor at u64::MAX, and the next skip or delivery overflowed it (ring::attach_subscriber, peek, consume).
#[test]
fn forged_tail_at_attach_does_not_overflow_the_cursor() {
    let (fx, _p, first) = one_of_each(Policy::DropOldest);
    drop(first); // frees the one subscriber entry
    fx.adv.scribble(Field::Tail, Value::Raw(u64::MAX));
    let mut s = match Subscriber::attach(&fx.bus, TOPIC, SubscribeOptions::default()) {
        // Refusing a tail beyond the sequence space is a fine fix.
        Err(Error::Corrupt { .. }) => return,
        Err(e) => panic!("attach: {e}"),
        Ok(s) => s,
    };
    let before = s.next_seq();
    // The slot of sequence u64::MAX, stamped ABANDONED(u64::MAX): all ones.
    fx.adv
        .scribble(Field::SlotStamp(u64::MAX), Value::Raw(u64::MAX));
    let _w = watchdog::arm("try_recv", Duration::ZERO);
    let r = s.try_recv().map(|m| m.map(|m| m.seq));
    assert!(
        s.next_seq() >= before,
        "cursor went from {before} back to {} ({r:?})",
        s.next_seq()
    );
}

/// Regression (found by this suite, fixed in b1b8156): a guard the caller
/// checked valid, overwritten before it was dropped, was reported lost too,
/// so received + lost exceeded published (MessageGuard::drop).
#[test]
fn guard_checked_valid_then_overwritten_is_counted_once() {
    // No adversary needed: an honest drop-oldest publisher laps the ring.
    let (_fx, mut p, mut s) = one_of_each(Policy::DropOldest);
    p.try_send(b"m0").expect("send");
    let mut received = 0u64;
    {
        let g = s.try_recv_ref().expect("receive").expect("message 0");
        assert_eq!(g.data(), b"m0");
        // The documented protocol: use the bytes, then check. Valid: the
        // caller has message 0.
        assert!(g.is_valid(), "nothing overwrote message 0 yet");
        received += 1;
        // The publisher laps the ring before the guard is dropped.
        p.try_send(b"m1").expect("send");
        p.try_send(b"m2").expect("send");
    }
    let mut lost = 0;
    let _w = watchdog::arm("drain", Duration::ZERO);
    loop {
        match s.try_recv() {
            Ok(Some(_)) => received += 1,
            Ok(None) => break,
            Err(Error::Lagged(n)) => lost += n,
            Err(e) => panic!("receive: {e}"),
        }
    }
    assert_eq!(
        received + lost,
        3,
        "received {received} (message 0 through a guard checked valid) + lost {lost}, published 3"
    );
}

/// Runs `child` in a forked process and returns how it ended. The child does
/// no allocation and takes no lock after the fork (the test harness has other
/// threads): it only touches shared memory, then `_exit`s.
fn in_child(child: impl FnOnce()) -> nix::sys::wait::WaitStatus {
    use nix::unistd::{fork, ForkResult};
    // SAFETY: the child runs only `child`, which touches the mappings and
    // makes system calls, then `_exit`s without unwinding or freeing.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            child();
            // SAFETY: ends the child at once, running no destructor.
            unsafe { libc::_exit(0) }
        }
        ForkResult::Parent { child } => {
            let _w = watchdog::arm("forked child", Duration::from_secs(5));
            nix::sys::wait::waitpid(child, None).expect("waitpid")
        }
    }
}

#[test]
fn truncating_a_live_segment_gives_errors_not_sigbus() {
    use nix::sys::wait::WaitStatus;
    let (fx, mut p, mut s) = one_of_each(Policy::Block);
    p.try_send(b"x").expect("send");
    let data_len = fx.adv.len(Seg::Data) as u64;
    let subs_len = fx.adv.len(Seg::Subs) as u64;
    // Whoever may write the data segment (any publisher) cuts off its slots:
    // the subscriber's next look at a slot is past the end of the file.
    fx.adv.truncate(Seg::Data, fx.cfg.slots_offset());
    let status = in_child(|| {
        let r = s.try_recv().map(|m| m.map(|m| m.seq));
        let corrupt = matches!(r, Err(Error::Corrupt { .. }));
        // Dropping an error would free memory: forget it instead.
        std::mem::forget(r);
        if !corrupt {
            // SAFETY: ends the child at once, running no destructor.
            unsafe { libc::_exit(3) }
        }
    });
    // Grown back (zero-filled) so that this process's clean-up can touch it.
    fx.adv.truncate(Seg::Data, data_len);
    assert!(
        matches!(status, WaitStatus::Exited(_, 0)),
        "a subscriber receiving after the data segment was truncated ended with {status:?}"
    );
    // Whoever may write the subs segment (any subscriber) cuts off the
    // subscriber table: the daemon's reaper reads past the end of the file.
    fx.adv.truncate(Seg::Subs, HEADER_SIZE as u64);
    let status = in_child(|| {
        let _ = fx.owner.reap();
    });
    fx.adv.truncate(Seg::Subs, subs_len);
    assert!(
        matches!(status, WaitStatus::Exited(_, 0)),
        "the daemon's reaper after the subs segment was truncated ended with {status:?}"
    );
}
