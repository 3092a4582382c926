//! Ablation of shmbus's per-message fast path, for docs/performance.md: a
//! bare single-producer single-consumer ring of 128-byte slots (64-byte
//! header with the stamp, 64-byte payload, as the library lays a 64 B topic
//! out), with the library's per-message steps added one at a time:
//!
//! * `tail CAS` — the locked `compare_exchange` on `tail` of `try_claim`;
//! * `stamp CAS` — the locked `compare_exchange` to WRITING in `begin_write`;
//! * `pub fence` — the SeqCst fence of `data_ready.notify_all` in `commit`;
//! * `sub fence` — the SeqCst fence of `space_ready.notify_all` in `advance`;
//! * `clock` — the `clock_gettime(CLOCK_REALTIME)` per publish.
//!
//! Two threads pinned to cores 0 and 1 (a cache line moves between cores the
//! same way between threads as between processes). For each variant it
//! prints the median one-way ping-pong latency and the 64 B stream rate over
//! `REPEATS` runs (first argument, default 5), with min and max.
//!
//! `cargo run --release -p shmbus-bench --example fastpath_ablation [REPEATS]`

use std::hint::spin_loop;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

/// Slots of the stream ring (as the bench's 64 B throughput topic).
const CAP: u64 = 1024;
/// Slots of each ping-pong ring (as the bench's latency topics).
const PING_CAP: u64 = 64;
/// Bytes per slot: 64-byte header, 64-byte payload.
const STRIDE: usize = 128;
/// Stamp state of a committed slot (low two bits).
const COMMITTED: u64 = 2;
/// Stamp state of a slot being written.
const WRITING: u64 = 1;

/// A value alone on a 128-byte block.
#[repr(C, align(128))]
struct Pad<T>(T);

/// Which library steps a variant adds to the bare ring.
#[derive(Clone, Copy, Default)]
struct Steps {
    tail_cas: bool,
    stamp_cas: bool,
    pub_fence: bool,
    sub_fence: bool,
    clock: bool,
}

/// One ring: slots, the consumer's cursor, the publisher's tail and a
/// (never non-zero) sleeper count for the notify checks.
struct Ring {
    slots: Box<[AtomicU64]>,
    cap: u64,
    cursor: Pad<AtomicU64>,
    tail: Pad<AtomicU64>,
    waiters: Pad<AtomicU32>,
}

impl Ring {
    fn new(cap: u64) -> &'static Ring {
        let words = cap as usize * STRIDE / 8;
        Box::leak(Box::new(Ring {
            slots: (0..words).map(|_| AtomicU64::new(0)).collect(),
            cap,
            cursor: Pad(AtomicU64::new(0)),
            tail: Pad(AtomicU64::new(0)),
            waiters: Pad(AtomicU32::new(0)),
        }))
    }

    /// Word `w` of the slot of `seq` (0 = stamp, 2 = timestamp, 8.. = payload).
    fn word(&self, seq: u64, w: usize) -> &AtomicU64 {
        &self.slots[(seq % self.cap) as usize * STRIDE / 8 + w]
    }

    fn publish(&self, s: Steps, seq: u64, msg: &[u64; 8]) {
        if s.tail_cas {
            let t = self.tail.0.load(Ordering::Relaxed);
            let _ =
                self.tail
                    .0
                    .compare_exchange_weak(t, t + 1, Ordering::AcqRel, Ordering::Relaxed);
        }
        let stamp = self.word(seq, 0);
        if s.stamp_cas {
            let old = stamp.load(Ordering::Acquire);
            let _ = stamp.compare_exchange(
                old,
                seq << 2 | WRITING,
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
            fence(Ordering::Release);
        }
        for (i, v) in msg.iter().enumerate() {
            self.word(seq, 8 + i).store(*v, Ordering::Relaxed);
        }
        if s.clock {
            self.word(seq, 2).store(now_ns(), Ordering::Relaxed);
        }
        stamp.store(seq << 2 | COMMITTED, Ordering::Release);
        if s.pub_fence {
            fence(Ordering::SeqCst);
            assert_eq!(self.waiters.0.load(Ordering::Relaxed), 0);
        }
    }

    fn consume(&self, s: Steps, seq: u64, out: &mut [u64; 8]) {
        let stamp = self.word(seq, 0);
        while stamp.load(Ordering::Acquire) != seq << 2 | COMMITTED {
            spin_loop();
        }
        for (i, v) in out.iter_mut().enumerate() {
            *v = self.word(seq, 8 + i).load(Ordering::Relaxed);
        }
        fence(Ordering::Acquire);
        assert_eq!(
            stamp.load(Ordering::Relaxed),
            seq << 2 | COMMITTED,
            "slot overwritten"
        );
        self.cursor.0.store(seq + 1, Ordering::Release);
        if s.sub_fence {
            fence(Ordering::SeqCst);
            assert_eq!(self.waiters.0.load(Ordering::Relaxed), 0);
        }
    }
}

fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn pin(cpu: usize) {
    let mut set = nix::sched::CpuSet::new();
    if set.set(cpu).is_ok() {
        // Best effort: unpinned, the figures are only noisier.
        let _ = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set);
    }
}

/// Messages per second of a 64 B stream, measured at the consumer.
fn stream(s: Steps, n: u64) -> f64 {
    let ring = Ring::new(CAP);
    let consumer = std::thread::spawn(move || {
        pin(1);
        let mut out = [0u64; 8];
        let t0 = Instant::now();
        for i in 0..n {
            ring.consume(s, i, &mut out);
        }
        t0.elapsed()
    });
    pin(0);
    let msg = [0x5A5A_5A5A_5A5A_5A5Au64; 8];
    let mut gate = 0;
    for i in 0..n {
        while i >= gate + CAP {
            gate = ring.cursor.0.load(Ordering::Acquire);
        }
        ring.publish(s, i, &msg);
    }
    let elapsed = consumer.join().expect("consumer thread");
    n as f64 / elapsed.as_secs_f64()
}

/// Median one-way latency (half the round trip) of a 64 B ping-pong, ns.
fn ping_pong(s: Steps, n: u64) -> f64 {
    let (ping, pong) = (Ring::new(PING_CAP), Ring::new(PING_CAP));
    let echo = std::thread::spawn(move || {
        pin(1);
        let mut out = [0u64; 8];
        for i in 0..n {
            ping.consume(s, i, &mut out);
            pong.publish(s, i, &out);
        }
    });
    pin(0);
    let msg = [0x5A5A_5A5A_5A5A_5A5Au64; 8];
    let mut out = [0u64; 8];
    let mut rtt = Vec::with_capacity(n as usize);
    for i in 0..n {
        let t0 = now_ns();
        ping.publish(s, i, &msg);
        pong.consume(s, i, &mut out);
        rtt.push(now_ns() - t0);
    }
    echo.join().expect("echo thread");
    let mut measured = rtt[n as usize / 10..].to_vec();
    measured.sort_unstable();
    measured[measured.len() / 2] as f64 / 2.0
}

fn summary(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn main() {
    let repeats: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5)
        .max(1);
    let all = Steps {
        tail_cas: true,
        stamp_cas: true,
        pub_fence: true,
        sub_fence: true,
        clock: true,
    };
    let bare = Steps::default();
    let variants = [
        ("bare ring", bare),
        (
            "+ tail CAS",
            Steps {
                tail_cas: true,
                ..bare
            },
        ),
        (
            "+ stamp CAS",
            Steps {
                stamp_cas: true,
                ..bare
            },
        ),
        (
            "+ pub fence",
            Steps {
                pub_fence: true,
                ..bare
            },
        ),
        (
            "+ sub fence",
            Steps {
                sub_fence: true,
                ..bare
            },
        ),
        (
            "+ clock",
            Steps {
                clock: true,
                ..bare
            },
        ),
        ("all five (library path)", all),
        (
            "all but stamp CAS",
            Steps {
                stamp_cas: false,
                ..all
            },
        ),
        (
            "all but clock",
            Steps {
                clock: false,
                ..all
            },
        ),
        (
            "all but the two fences",
            Steps {
                pub_fence: false,
                sub_fence: false,
                ..all
            },
        ),
        (
            "all but the 3 barriers",
            Steps {
                pub_fence: false,
                sub_fence: false,
                stamp_cas: false,
                ..all
            },
        ),
    ];
    println!(
        "{:<26} {:>22}   {:>26}",
        "variant", "one-way p50 (min-max)", "64 B stream M msg/s (min-max)"
    );
    for (name, s) in variants {
        let (lat, lat_lo, lat_hi) = summary((0..repeats).map(|_| ping_pong(s, 200_000)).collect());
        let (rate, rate_lo, rate_hi) =
            summary((0..repeats).map(|_| stream(s, 2_000_000) / 1e6).collect());
        println!(
            "{name:<26} {lat:>6.0} ns ({lat_lo:.0}-{lat_hi:.0})   {rate:>11.2} ({rate_lo:.2}-{rate_hi:.2})"
        );
    }
}
