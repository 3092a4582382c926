//! End-to-end tests of how `shmbus` ends: Ctrl-C (SIGINT) on a waiting
//! `sub` or `pub`, a reader that closes the pipe (`sub | head -1`), a stopped
//! (SIGSTOP) subscriber that fills a `block` ring (`pub -W` exits 3, `stats`
//! shows its lag growing), and the daemon shutting the bus down.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;
use shmbus_tests::{run_with_input, signal, wait_exit, wait_until, TestBus};

/// Bound for anything that should happen quickly (never asserted as a time).
const LIMIT: Duration = Duration::from_secs(60);

/// Kills a child left running by a failed assertion.
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The daemon's view of the only subscriber of `topic`.
fn subscriber(bus: &TestBus, topic: &str) -> shmbus::SubscriberStats {
    let stats = bus.client().stats(Some(topic)).expect("stats");
    let t = stats.into_iter().find(|t| t.topic == topic).expect("topic");
    assert_eq!(t.subscriber_stats.len(), 1, "{t:?}");
    t.subscriber_stats.into_iter().next().unwrap()
}

#[test]
fn sigint_ends_a_waiting_sub_with_its_output_flushed() {
    let mut bus = TestBus::new("sigint");
    bus.start_daemon();
    // A regular file is written in large blocks, not per message: only a
    // flush at Ctrl-C gets the lines into it.
    let path = bus.dir().join("out.txt");
    let file = std::fs::File::create(&path).unwrap();
    let mut sub = Reaper(
        bus.cli()
            .args(["sub", "calm"])
            .stdout(file)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    bus.wait_subscribers("calm", 1);
    bus.ok(&["pub", "calm", "one", "two", "three"]);
    assert!(
        wait_until(LIMIT, || subscriber(&bus, "calm").delivered == 3),
        "the subscriber did not take the 3 messages"
    );

    signal(&sub.0, Signal::SIGINT);
    let status = wait_exit(&mut sub.0, LIMIT);
    assert_eq!(status.code(), Some(0), "Ctrl-C is a normal end");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "one\ntwo\nthree\n");
    let mut err = String::new();
    std::io::Read::read_to_string(&mut sub.0.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(err, "", "nothing to say on Ctrl-C");
}

#[test]
fn sigint_ends_a_pub_waiting_for_stdin() {
    let mut bus = TestBus::new("pubint");
    bus.start_daemon();
    let mut publisher = Reaper(
        bus.cli()
            .args(["pub", "-v", "input"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut stdin = publisher.0.stdin.take().unwrap();
    std::io::Write::write_all(&mut stdin, b"first\n").unwrap();
    assert!(
        wait_until(LIMIT, || {
            let stats = bus.client().stats(Some("input")).unwrap_or_default();
            stats.iter().any(|t| t.published == 1)
        }),
        "the first line was not published"
    );
    // stdin stays open: the publisher is blocked reading it.
    signal(&publisher.0, Signal::SIGINT);
    let status = wait_exit(&mut publisher.0, LIMIT);
    drop(stdin);
    assert_eq!(status.code(), Some(0), "everything read was published");
    let mut out = String::new();
    std::io::Read::read_to_string(&mut publisher.0.stdout.take().unwrap(), &mut out).unwrap();
    assert_eq!(
        out,
        "published 1 message to `input` (0 subscribers attached)\n"
    );
}

/// `shmbus sub t | head -1`: the reader takes one line and closes the pipe.
/// Returns the sub's exit status and stderr.
fn sub_into_closed_pipe(bus: &TestBus, topic: &str, publish_more: bool) -> (Option<i32>, String) {
    let mut sub = Reaper(
        bus.cli()
            .args(["sub", topic])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    bus.wait_subscribers(topic, 1);
    bus.ok(&["pub", topic, "first"]);
    let mut reader = BufReader::new(sub.0.stdout.take().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert_eq!(line, "first\n");
    drop(reader);
    if publish_more {
        // The next write finds the pipe closed.
        bus.ok(&["pub", topic, "second", "third"]);
    }
    let status = wait_exit(&mut sub.0, LIMIT);
    let mut err = String::new();
    std::io::Read::read_to_string(&mut sub.0.stderr.take().unwrap(), &mut err).unwrap();
    (status.code(), err)
}

#[test]
fn closed_pipe_ends_sub_quietly_when_it_writes() {
    let mut bus = TestBus::new("pipew");
    bus.start_daemon();
    assert_eq!(
        sub_into_closed_pipe(&bus, "p", true),
        (Some(0), String::new())
    );
}

#[test]
fn closed_pipe_ends_an_idle_sub_quietly() {
    let mut bus = TestBus::new("pipei");
    bus.start_daemon();
    // No further message comes to fail a write: the sub notices the reader
    // is gone while it waits.
    assert_eq!(
        sub_into_closed_pipe(&bus, "p", false),
        (Some(0), String::new())
    );
}

#[test]
fn stopped_subscriber_fills_a_block_ring_pub_times_out_and_stats_show_lag() {
    let mut bus = TestBus::new("stopped");
    bus.start_daemon();
    bus.ok(&["create", "held", "--capacity", "8"]);
    let mut sub = Reaper(
        bus.cli()
            .args(["sub", "held"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    bus.wait_subscribers("held", 1);
    signal(&sub.0, Signal::SIGSTOP);
    let pid = sub.0.id() as u64;

    bus.ok(&["pub", "held", "1", "2", "3"]);
    let lag_of = |bus: &TestBus| -> u64 {
        let out = bus.ok(&["stats", "held", "--json", "--interval", "10ms"]);
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stats JSON");
        let s = &doc["topics"][0]["subscriber_stats"][0];
        assert_eq!(s["pid"].as_u64(), Some(pid), "{doc}");
        assert_eq!(s["delivered"], 0, "{doc}");
        s["lag"].as_u64().expect("lag")
    };
    assert_eq!(lag_of(&bus), 3);
    bus.ok(&["pub", "held", "4", "5", "6"]);
    assert_eq!(
        lag_of(&bus),
        6,
        "the lag grows while the subscriber is stopped"
    );

    // Lines 7 and 8 fill the ring; line 9 finds no room and times out.
    let input = b"7\n8\n9\n10\n";
    let out = run_with_input(bus.cli().args(["pub", "held", "-W", "200ms"]), input, LIMIT);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("shmbus: timed out after 200ms waiting for room on `held`: line 3 of stdin not published (2 messages were)"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    let t = &bus.client().stats(Some("held")).unwrap()[0];
    assert_eq!(t.published, 8);
    assert!(t.blocked_publishes >= 1, "{t:?}");

    // Resumed, the subscriber gets all 8, in order.
    signal(&sub.0, Signal::SIGCONT);
    let mut reader = BufReader::new(sub.0.stdout.take().unwrap());
    for want in 1..=8 {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert_eq!(line, format!("{want}\n"));
    }
}

#[test]
fn sub_ends_with_0_when_the_daemon_shuts_the_bus_down() {
    let mut bus = TestBus::new("shutdown");
    bus.start_daemon();
    let mut sub = Reaper(
        bus.cli()
            .args(["sub", "going"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    bus.wait_subscribers("going", 1);
    bus.ok(&["pub", "going", "last words"]);
    let mut daemon = bus.take_daemon().expect("daemon");
    signal(&daemon, Signal::SIGTERM);
    assert_eq!(wait_exit(&mut daemon, LIMIT).code(), Some(0));

    let status = wait_exit(&mut sub.0, LIMIT);
    assert_eq!(status.code(), Some(0), "a closed bus is a normal end");
    let mut out = String::new();
    std::io::Read::read_to_string(&mut sub.0.stdout.take().unwrap(), &mut out).unwrap();
    assert_eq!(out, "last words\n");
    let mut err = String::new();
    std::io::Read::read_to_string(&mut sub.0.stderr.take().unwrap(), &mut err).unwrap();
    assert!(err.contains("`going` was closed"), "{err}");
}
