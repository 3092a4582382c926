//! Crash-loop soak: publishers and subscribers on a `block` and a
//! `drop-oldest` topic of a real daemon. Every round one of them is
//! SIGKILLed at a random moment (mid-write, mid-loan, mid-wait) and
//! replaced, the daemon reaping behind them; and one is SIGSTOPped, or a
//! stopped one SIGCONTinued (a stopped process is alive: it may hold a
//! `block` topic back, never wedge it for good). At the end every stopped
//! client is continued, the daemon shuts down, and every surviving
//! subscriber's account must balance exactly.
//!
//! Bounds: `SHMBUS_SOAK_ROUNDS` rounds (default 200, about ten seconds) or
//! `SHMBUS_SOAK_SECS` seconds, whichever ends first (the closing note's
//! ten-minute run: `SHMBUS_SOAK_ROUNDS=1000000 SHMBUS_SOAK_SECS=600`). The
//! seed of a run is printed and can be replayed with `SHMBUS_SOAK_SEED`.

use std::time::Duration;

use nix::sys::signal::Signal;
use shmbus_tests::{signal, wait_exit, wait_until, TestBus, TestClient};

/// A tiny deterministic generator (xorshift64*), so a failing run can be
/// replayed from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Role {
    Pub,
    Sub,
}

struct Client {
    role: Role,
    topic: &'static str,
    process: TestClient,
}

fn spawn(bus: &TestBus, role: Role, topic: &'static str, id: u32) -> Client {
    let strict = if topic == "blk" { "1" } else { "0" };
    let id = id.to_string();
    let args: Vec<&str> = match role {
        Role::Pub => vec!["pub-until-closed", &bus.name, topic, &id],
        Role::Sub => vec!["sub-until-closed", &bus.name, topic, strict],
    };
    Client {
        role,
        topic,
        process: TestClient::ready(&args),
    }
}

#[test]
fn crash_loop_keeps_every_account_exact() {
    let rounds: u64 = std::env::var("SHMBUS_SOAK_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let secs: u64 = std::env::var("SHMBUS_SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(365 * 86_400);
    let until = std::time::Instant::now() + Duration::from_secs(secs);
    let seed: u64 = std::env::var("SHMBUS_SOAK_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        });
    eprintln!("crash loop: {rounds} rounds, SHMBUS_SOAK_SEED={seed}");
    let mut rng = Rng(seed);

    let mut bus = TestBus::new("soak");
    bus.start_daemon();
    for args in [
        &["create", "blk", "--capacity", "64"][..],
        &[
            "create",
            "drop",
            "--capacity",
            "64",
            "--policy",
            "drop-oldest",
        ][..],
    ] {
        let out = bus.cli().args(args).output().expect("run shmbus create");
        assert!(out.status.success(), "{args:?}: {out:?}");
    }

    let mut next_id = 0u32;
    let mut clients = Vec::new();
    for topic in ["blk", "drop"] {
        for role in [Role::Sub, Role::Sub, Role::Pub, Role::Pub] {
            clients.push(spawn(&bus, role, topic, next_id));
            next_id += 1;
        }
    }
    let mut kills = [0u32; 2];
    let (mut stops, mut done_rounds) = (0u32, 0u64);
    // Indices into `clients` of the processes stopped now.
    let mut stopped: Vec<u32> = Vec::new();
    while done_rounds < rounds && std::time::Instant::now() < until {
        done_rounds += 1;
        std::thread::sleep(Duration::from_millis(rng.below(20)));
        // Stop one client, or continue one that is stopped (at most two
        // stopped at once, so the topics keep moving).
        if let Some(pos) = (stopped.len() >= 2 || (!stopped.is_empty() && rng.below(2) == 0))
            .then(|| rng.below(stopped.len() as u64) as usize)
        {
            let pid = stopped.swap_remove(pos);
            if let Some(c) = clients.iter().find(|c| c.process.child.id() == pid) {
                signal(&c.process.child, Signal::SIGCONT);
            }
        } else {
            let c = &clients[rng.below(clients.len() as u64) as usize];
            if !stopped.contains(&c.process.child.id()) {
                signal(&c.process.child, Signal::SIGSTOP);
                stopped.push(c.process.child.id());
                stops += 1;
            }
        }
        let victim = rng.below(clients.len() as u64) as usize;
        let mut dead = clients.swap_remove(victim);
        stopped.retain(|&pid| pid != dead.process.child.id());
        signal(&dead.process.child, Signal::SIGKILL);
        wait_exit(&mut dead.process.child, Duration::from_secs(30));
        kills[usize::from(dead.role == Role::Sub)] += 1;
        clients.push(spawn(&bus, dead.role, dead.topic, next_id));
        next_id += 1;
    }

    for c in &clients {
        signal(&c.process.child, Signal::SIGCONT);
    }
    // Let the replacements run a moment, then shut the bus down: every
    // client must see `Closed` and end.
    std::thread::sleep(Duration::from_millis(200));
    let stats = bus.cli().args(["stats", "--json"]).output().expect("stats");
    assert!(stats.status.success(), "{stats:?}");
    let daemon = bus.daemon().expect("daemon running");
    signal(daemon, Signal::SIGTERM);
    let status = wait_exit(daemon, Duration::from_secs(30));
    assert!(status.success(), "shmbusd exited with {status}");

    let mut checked = 0;
    for mut c in clients {
        let status = wait_exit(&mut c.process.child, Duration::from_secs(60));
        assert!(
            status.success(),
            "{:?} on {} exited with {status}",
            c.role,
            c.topic
        );
        if c.role == Role::Pub {
            continue;
        }
        let line = c
            .process
            .lines
            .recv_timeout(Duration::from_secs(10))
            .expect("subscriber printed its summary");
        let s: serde_json::Value = serde_json::from_str(&line).expect("summary is JSON");
        assert_eq!(s["errors"], serde_json::json!([]), "{}: {s}", c.topic);
        let n = |k: &str| s[k].as_u64().unwrap_or_else(|| panic!("{k} in {s}"));
        assert_eq!(
            n("delivered") + n("lost") + n("skipped"),
            n("next_seq") - n("start"),
            "{}: every sequence since the join is delivered, lost or skipped: {s}",
            c.topic
        );
        if c.topic == "blk" {
            assert_eq!(n("lost"), 0, "block never loses: {s}");
        }
        checked += 1;
    }
    assert_eq!(checked, 4);
    let stats: serde_json::Value = serde_json::from_slice(&stats.stdout).expect("stats JSON");
    for t in stats["topics"].as_array().expect("topics") {
        eprintln!(
            "crash loop: `{}` published {}, abandoned slots {}, reaped {} publishers and {} subscribers",
            t["topic"], t["published"], t["abandoned"], t["reaped_publishers"], t["reaped_subscribers"]
        );
    }
    eprintln!(
        "crash loop: {done_rounds} rounds, killed {} publishers and {} subscribers, stopped {stops} times",
        kills[0], kills[1]
    );
    assert!(
        wait_until(Duration::from_secs(10), || bus.shm_files().is_empty()),
        "left in /dev/shm: {:?}",
        bus.shm_files()
    );
}
