//! Crash-loop soak: publishers and subscribers on a `block` and a
//! `drop-oldest` topic of a real daemon, one of them SIGKILLed at a random
//! moment every round (mid-write, mid-loan, mid-wait) and replaced, the
//! daemon reaping behind them. At the end the daemon shuts down and every
//! surviving subscriber's account must balance exactly.
//!
//! Rounds: `SHMBUS_SOAK_ROUNDS` (default 200, about ten seconds); the seed
//! of a run is printed and can be replayed with `SHMBUS_SOAK_SEED`.

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
    for _ in 0..rounds {
        std::thread::sleep(Duration::from_millis(rng.below(20)));
        let victim = rng.below(clients.len() as u64) as usize;
        let mut dead = clients.swap_remove(victim);
        signal(&dead.process.child, Signal::SIGKILL);
        wait_exit(&mut dead.process.child, Duration::from_secs(30));
        kills[usize::from(dead.role == Role::Sub)] += 1;
        clients.push(spawn(&bus, dead.role, dead.topic, next_id));
        next_id += 1;
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
        "crash loop: killed {} publishers and {} subscribers",
        kills[0], kills[1]
    );
    assert!(
        wait_until(Duration::from_secs(10), || bus.shm_files().is_empty()),
        "left in /dev/shm: {:?}",
        bus.shm_files()
    );
}
