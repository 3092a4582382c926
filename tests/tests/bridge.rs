//! End-to-end tests of the Zenoh bridge (SPEC §11, docs/bridge.md): two
//! buses on this host, each with its own real `shmbusd`, joined by two real
//! `shmbus-bridge` processes over Zenoh on loopback TCP (one listens on a
//! free port, the other connects; multicast scouting stays off). Traffic
//! goes only to 127.0.0.1.
//!
//! Readiness is never a sleep: a test publishes probe messages until one has
//! crossed (the Zenoh route is then up), bounded by generous limits. No test
//! asserts a duration.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use shmbus::{Publisher, SubscribeOptions, Subscriber};
use shmbus_tests::{bin, run_with_input, wait_exit, wait_until, TestBus};

/// Generous bound on every readiness wait (2 busy cores, debug builds).
const READY: Duration = Duration::from_secs(60);

/// A running `shmbus-bridge`, killed when dropped. Its log goes to the
/// test's stderr (for failures) and to `lines`.
struct Bridge {
    child: Child,
    _lines: Receiver<String>,
}

impl Bridge {
    fn start(bus: &TestBus, args: &[&str]) -> Bridge {
        let mut child = Command::new(bin("shmbus-bridge"))
            .arg("--bus")
            .arg(&bus.name)
            .arg("--runtime-dir")
            .arg(&bus.runtime_dir)
            .args(args)
            .env("RUST_LOG", "info,zenoh=warn")
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn shmbus-bridge");
        let stderr = child.stderr.take().expect("stderr");
        let tag = bus.name.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(l) = line else { break };
                eprintln!("bridge[{tag}]: {l}");
                let _ = tx.send(l);
            }
        });
        Bridge { child, _lines: rx }
    }

    /// SIGKILLs the bridge (no cleanup of any kind) and reaps it.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .expect("local_addr")
        .port()
}

fn started(tag: &str) -> TestBus {
    let mut bus = TestBus::new(tag);
    bus.start_daemon();
    bus
}

/// Messages published so far on `topic` of `bus` (0 if it does not exist).
fn published(bus: &TestBus, topic: &str) -> u64 {
    bus.client()
        .topics()
        .expect("list topics")
        .into_iter()
        .find(|t| t.topic == topic)
        .map_or(0, |t| t.published)
}

fn has_topic(bus: &TestBus, topic: &str) -> bool {
    bus.client()
        .topics()
        .expect("list topics")
        .iter()
        .any(|t| t.topic == topic)
}

/// Publishes on `topic` of `from` until something arrives on `topic` of
/// `to`: the exporting bridge is subscribed and the Zenoh route between the
/// two bridges is up.
fn wait_route(from: &TestBus, to: &TestBus, topic: &str) {
    let mut publisher: Publisher = from.client().publisher(topic).expect("probe publisher");
    let crossed = wait_until(READY, || {
        publisher
            .send_timeout(b"probe", Duration::from_secs(5))
            .expect("publish a probe");
        std::thread::sleep(Duration::from_millis(50));
        published(to, topic) > 0
    });
    assert!(
        crossed,
        "no probe on `{topic}` crossed from bus {} to bus {} within {READY:?}",
        from.name, to.name
    );
}

/// Reads `sub` until `done` holds over what was read, bounded by `READY`.
fn collect_until(sub: &mut Subscriber, mut done: impl FnMut(&[String]) -> bool) -> Vec<String> {
    let deadline = Instant::now() + READY;
    let mut got = Vec::new();
    while !done(&got) {
        assert!(
            Instant::now() < deadline,
            "`{}` got only {} messages within {READY:?}: {got:?}",
            sub.topic(),
            got.len()
        );
        match sub.recv_timeout(Duration::from_millis(200)) {
            Ok(m) => got.push(String::from_utf8_lossy(m.data).into_owned()),
            Err(shmbus::Error::Timeout) => {}
            Err(e) => panic!("receive on `{}`: {e}", sub.topic()),
        }
    }
    got
}

/// A exports `sensors/*`, B imports everything: `shmbus pub` on A arrives
/// in order at `shmbus sub` on B, and a topic outside the pattern is not
/// carried.
#[test]
fn exported_topic_arrives_in_order_and_others_stay_home() {
    let a = started("brA");
    let b = started("brB");
    let port = free_port();
    let listen = format!("tcp/127.0.0.1:{port}");
    let _ba = Bridge::start(&a, &["--export", "sensors/*", "--listen", &listen]);
    let _bb = Bridge::start(&b, &["--import", "*", "--connect", &listen]);

    // A topic that is not exported exists before the exported one, so the
    // exporter's discovery has seen it by the time it sees `sensors/t`.
    let out = a
        .cli()
        .args(["create", "other/x"])
        .output()
        .expect("create");
    assert!(out.status.success(), "{out:?}");
    wait_route(&a, &b, "sensors/probe");

    let mut sub = b
        .cli()
        .args(["sub", "sensors/t", "-c", "100"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn sub");
    b.wait_subscribers("sensors/t", 1);
    let out = a
        .cli()
        .args(["create", "sensors/t"])
        .output()
        .expect("create");
    assert!(out.status.success(), "{out:?}");
    // The exporting bridge attaches (it polls the topic list).
    a.wait_subscribers("sensors/t", 1);

    let msgs: Vec<String> = (1..=100).map(|i| format!("m{i}")).collect();
    let out = run_with_input(a.cli().args(["pub", "other/x", "not-for-b"]), b"", READY);
    assert!(out.status.success(), "{out:?}");
    let out = run_with_input(a.cli().arg("pub").arg("sensors/t").args(&msgs), b"", READY);
    assert!(out.status.success(), "{out:?}");

    let status = wait_exit(&mut sub, READY);
    assert!(status.success(), "sub on B: {status}");
    let mut text = String::new();
    std::io::Read::read_to_string(&mut sub.stdout.take().unwrap(), &mut text).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines, msgs, "B must get m1..m100 in order");

    // Not exported: the bridge never subscribed to it and B never had it.
    let info = a.client().topics().unwrap();
    let other = info.iter().find(|t| t.topic == "other/x").unwrap();
    assert_eq!(
        other.subscribers, 0,
        "the bridge attached to a topic it must not export"
    );
    assert_eq!(other.published, 1);
    assert!(!has_topic(&b, "other/x"), "`other/x` crossed to B");
}

/// Both bridges export and import everything: each side gets the other's
/// messages exactly once, in order, and nothing comes back (no loop).
#[test]
fn bidirectional_bridges_do_not_loop() {
    let a = started("biA");
    let b = started("biB");
    let port = free_port();
    let listen = format!("tcp/127.0.0.1:{port}");
    let all = ["--export", "*", "--import", "*"];
    let _ba = Bridge::start(&a, &[&all[..], &["--listen", &listen]].concat());
    let _bb = Bridge::start(&b, &[&all[..], &["--connect", &listen]].concat());
    wait_route(&a, &b, "ready/a");
    wait_route(&b, &a, "ready/b");

    // Both sides' `chat` exist and are exported (bridge + the test's own
    // subscriber) before anything is published.
    let mut sub_a = a
        .client()
        .subscriber("chat", SubscribeOptions::default())
        .unwrap();
    let mut sub_b = b
        .client()
        .subscriber("chat", SubscribeOptions::default())
        .unwrap();
    a.wait_subscribers("chat", 2);
    b.wait_subscribers("chat", 2);

    let from_a: Vec<String> = (1..=50).map(|i| format!("a{i}")).collect();
    let from_b: Vec<String> = (1..=50).map(|i| format!("b{i}")).collect();
    for (bus, msgs) in [(&a, &from_a), (&b, &from_b)] {
        let out = run_with_input(bus.cli().arg("pub").arg("chat").args(msgs), b"", READY);
        assert!(out.status.success(), "{out:?}");
    }
    let mut got_a = collect_until(&mut sub_a, |g| g.len() >= 100);
    let mut got_b = collect_until(&mut sub_b, |g| g.len() >= 100);

    // Fences, published once each side holds every message of the other:
    // an echo of an imported message would be exported before the fence of
    // the side that echoed it (a bridge exports a topic in sequence order),
    // so it would arrive before that fence.
    for (bus, fence) in [(&a, "fence-a"), (&b, "fence-b")] {
        let out = run_with_input(bus.cli().args(["pub", "chat", fence]), b"", READY);
        assert!(out.status.success(), "{out:?}");
    }
    let fenced =
        |g: &[String]| g.iter().any(|m| m == "fence-a") && g.iter().any(|m| m == "fence-b");
    got_a.extend(collect_until(&mut sub_a, fenced));
    got_b.extend(collect_until(&mut sub_b, fenced));

    for (side, got) in [("A", &got_a), ("B", &got_b)] {
        assert_eq!(got.len(), 102, "side {side} got {got:?}");
        let only =
            |p: &str| -> Vec<String> { got.iter().filter(|m| m.starts_with(p)).cloned().collect() };
        assert_eq!(
            only("a"),
            from_a,
            "side {side}: a-messages once each, in order"
        );
        assert_eq!(
            only("b"),
            from_b,
            "side {side}: b-messages once each, in order"
        );
    }
    // The topic counters agree: 50 local + 50 imported + 2 fences each.
    assert_eq!(published(&a, "chat"), 102);
    assert_eq!(published(&b, "chat"), 102);
}

/// SIGKILLing an exporting bridge harms no local client: a local publisher
/// on a small `block` topic the bridge was reading still gets every message
/// through to a local subscriber.
#[test]
fn killing_a_bridge_harms_no_local_client() {
    let a = started("kill");
    let port = free_port();
    let listen = format!("tcp/127.0.0.1:{port}");
    let out = a
        .cli()
        .args(["create", "local/k", "--capacity", "16"])
        .output()
        .expect("create");
    assert!(out.status.success(), "{out:?}");
    let mut bridge = Bridge::start(&a, &["--export", "*", "--listen", &listen]);
    a.wait_subscribers("local/k", 1);

    let mut sub = a
        .cli()
        .args(["sub", "local/k", "-c", "200"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn sub");
    a.wait_subscribers("local/k", 2);
    let first: Vec<String> = (1..=100).map(|i| format!("k{i}")).collect();
    let out = run_with_input(a.cli().arg("pub").arg("local/k").args(&first), b"", READY);
    assert!(out.status.success(), "{out:?}");

    bridge.kill();
    // More than the ring holds: with the dead bridge's entry still counted,
    // a `block` publisher would wait until the daemon reaps it.
    let second: Vec<String> = (101..=200).map(|i| format!("k{i}")).collect();
    let out = run_with_input(a.cli().arg("pub").arg("local/k").args(&second), b"", READY);
    assert!(out.status.success(), "{out:?}");

    let status = wait_exit(&mut sub, READY);
    assert!(status.success(), "local sub: {status}");
    let mut text = String::new();
    std::io::Read::read_to_string(&mut sub.stdout.take().unwrap(), &mut text).unwrap();
    let want: Vec<String> = first.into_iter().chain(second).collect();
    assert_eq!(text.lines().collect::<Vec<_>>(), want);
}
