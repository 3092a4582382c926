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
use shmbus_tests::{
    all_threads_stopped, bin, run_with_input, signal, wait_exit, wait_for_line, wait_until, TestBus,
};

/// Generous bound on every readiness wait (2 busy cores, debug builds).
const READY: Duration = Duration::from_secs(60);

/// A running `shmbus-bridge`, killed when dropped. Its log goes to the
/// test's stderr (for failures) and to `lines`.
struct Bridge {
    child: Child,
    lines: Receiver<String>,
}

impl Bridge {
    fn start(bus: &TestBus, args: &[&str]) -> Bridge {
        Bridge::start_with(Command::new(bin("shmbus-bridge")), bus, args)
    }

    /// Starts `cmd` (the bridge, or a wrapper that runs it) with the bus's
    /// options and `args`.
    fn start_with(mut cmd: Command, bus: &TestBus, args: &[&str]) -> Bridge {
        let mut child = cmd
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
        Bridge { child, lines: rx }
    }

    /// Waits (bounded) for a log line containing `needle` and returns it.
    fn wait_log(&self, needle: &str) -> String {
        wait_for_line(&self.lines, needle, READY)
            .unwrap_or_else(|| panic!("the bridge did not log `{needle}` within {READY:?}"))
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

/// Buses `{tag}A` and `{tag}B`, each with its daemon, and a loopback
/// endpoint for A's bridge to listen on.
fn two_buses(tag: &str) -> (TestBus, TestBus, String) {
    let a = started(&format!("{tag}A"));
    let b = started(&format!("{tag}B"));
    let listen = format!("tcp/127.0.0.1:{}", free_port());
    (a, b, listen)
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
            // A loss report (a lap, or a bridge's loss marker) in its place.
            Err(shmbus::Error::Lagged(n)) => got.push(format!("<lost {n}>")),
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
    let _ba = Bridge::start(&a, &["--export", "sensors/**", "--listen", &listen]);
    let _bb = Bridge::start(&b, &["--import", "**", "--connect", &listen]);

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

/// The case that a topic's birth used to lose: with A exporting `x/*` and B
/// importing it, `shmbus pub x/1 a b c` creates the topic and publishes at
/// once, and all three messages reach a pattern subscriber on B. (Before
/// the exporter used a pattern subscription it found new topics by polling
/// the daemon's list and joined them at their tail: none of the three
/// crossed, and nothing counted the loss.)
#[test]
fn a_topic_created_by_its_first_publish_crosses_whole() {
    let a = started("brBirthA");
    let b = started("brBirthB");
    let port = free_port();
    let listen = format!("tcp/127.0.0.1:{port}");
    let _ba = Bridge::start(&a, &["--export", "x/*", "--listen", &listen]);
    let _bb = Bridge::start(&b, &["--import", "x/*", "--connect", &listen]);
    wait_route(&a, &b, "x/probe");
    let mut sub = b
        .client()
        .subscribe_pattern("x/*", shmbus::SubscribeOptions::default())
        .expect("pattern subscription on B");
    for round in 0..3 {
        let topic = format!("x/{round}");
        let out = run_with_input(a.cli().args(["pub", &topic, "a", "b", "c"]), b"", READY);
        assert!(out.status.success(), "{out:?}");
        let mut got = Vec::new();
        let deadline = Instant::now() + READY;
        while got.len() < 3 {
            assert!(Instant::now() < deadline, "`{topic}` on B: only {got:?}");
            match sub.recv_timeout(Duration::from_millis(200)) {
                Ok(m) if m.topic == topic => got.push(String::from_utf8_lossy(m.data).into_owned()),
                Ok(_) | Err(shmbus::Error::Timeout) => {}
                Err(e) => panic!("`{:?}` on B: {e}", sub.last_topic()),
            }
        }
        assert_eq!(got, ["a", "b", "c"], "`{topic}` on B");
    }
}

/// Both bridges export and import everything: each side gets the other's
/// messages exactly once, in order, and nothing comes back (no loop).
#[test]
fn bidirectional_bridges_do_not_loop() {
    bidirectional_without_loops("bi", &[]);
}

/// The same with both bridges exporting in frames (`--batch`).
#[test]
fn bidirectional_batching_bridges_do_not_loop() {
    bidirectional_without_loops("biF", &["--batch"]);
}

fn bidirectional_without_loops(tag: &str, extra: &[&str]) {
    let (a, b, listen) = two_buses(tag);
    let all = [&["--export", "**", "--import", "**"][..], extra].concat();
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
    let mut bridge = Bridge::start(&a, &["--export", "**", "--listen", &listen]);
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

/// A `drop-oldest` topic whose exporting bridge is stopped (SIGSTOP) while
/// its ring is overwritten: the exporter's `Lagged(n)` crosses as a gap, the
/// importing bridge logs and counts exactly `n` lost and tells B's
/// subscriber `Lagged(n)` in its place, and what was still in the ring
/// arrives in order.
#[test]
fn local_loss_at_the_exporter_is_reported_by_the_importer() {
    local_loss_reported("loss", &[]);
}

/// The same with `--batch`: the exporter ends its frame at the lap, and the
/// next frame's count jumps by the loss.
#[test]
fn local_loss_at_a_batching_exporter_is_reported_by_the_importer() {
    local_loss_reported("lossF", &["--batch"]);
}

fn local_loss_reported(tag: &str, extra: &[&str]) {
    let (a, b, listen) = two_buses(tag);
    let out = a
        .cli()
        .args([
            "create",
            "lossy/t",
            "--policy",
            "drop-oldest",
            "--capacity",
            "16",
        ])
        .output()
        .expect("create");
    assert!(out.status.success(), "{out:?}");
    let ba = Bridge::start(
        &a,
        &[&["--export", "lossy/**", "--listen", &listen][..], extra].concat(),
    );
    let bb = Bridge::start(&b, &["--import", "lossy/**", "--connect", &listen]);
    wait_route(&a, &b, "lossy/probe");
    let mut sub = b
        .client()
        .subscriber("lossy/t", SubscribeOptions::default())
        .unwrap();
    a.wait_subscribers("lossy/t", 1);

    // A first message sets the importer's baseline for this origin.
    let mut publisher = a.client().publisher("lossy/t").unwrap();
    publisher.send(b"first").unwrap();
    let got = collect_until(&mut sub, |g| !g.is_empty());
    assert_eq!(got, ["first"]);

    signal(&ba.child, nix::sys::signal::Signal::SIGSTOP);
    let sent: Vec<String> = (1..=100).map(|i| format!("m{i}")).collect();
    for m in &sent {
        publisher.send(m.as_bytes()).unwrap();
    }
    signal(&ba.child, nix::sys::signal::Signal::SIGCONT);

    let line = bb.wait_log("messages lost before remote");
    let lost: u64 = line
        .split(": ")
        .last()
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in `{line}`"));
    assert!(lost > 0 && lost < 100, "{line}");
    let kept = 100 - lost as usize;
    // What reached B accounts for all 100: the first few may have crossed
    // before SIGSTOP took hold of every thread of the exporter, then the
    // loss report in its place, then what was still in the ring.
    let accounted = |g: &[String]| -> usize {
        g.iter()
            .map(|e| match e.strip_prefix("<lost ") {
                Some(n) => n.trim_end_matches('>').parse().unwrap_or(0),
                None => 1,
            })
            .sum()
    };
    let got = collect_until(&mut sub, |g| accounted(g) >= 100);
    let early = got
        .iter()
        .position(|e| e.starts_with("<lost "))
        .unwrap_or_else(|| panic!("no loss report in {got:?}"));
    let mut want: Vec<String> = sent[..early].to_vec();
    want.push(format!("<lost {lost}>"));
    want.extend_from_slice(&sent[early + lost as usize..]);
    assert_eq!(
        got, want,
        "B's subscriber is told of the loss in its place, then gets the messages still in the ring, in order"
    );

    signal(&bb.child, nix::sys::signal::Signal::SIGUSR1);
    let counters = bb.wait_log("counters:");
    assert!(
        counters.contains(&format!("import_lost={lost} ")),
        "{counters}"
    );
    // Every import: the probes that crossed, `first`, and the kept ones.
    let imported = published(&b, "lossy/probe") + 1 + kept as u64;
    assert!(
        counters.contains(&format!("imported={imported} ")),
        "{counters}"
    );
}

/// A remote message larger than the local topic takes is counted and
/// logged, never a crash; the next one that fits still arrives.
#[test]
fn oversize_remote_messages_are_counted_not_fatal() {
    let a = started("bigA");
    let b = started("bigB");
    let port = free_port();
    let listen = format!("tcp/127.0.0.1:{port}");
    let _ba = Bridge::start(&a, &["--export", "big/**", "--listen", &listen]);
    let bb = Bridge::start(&b, &["--import", "big/**", "--connect", &listen]);
    let out = b
        .cli()
        .args(["create", "big/t", "--max-msg-size", "64"])
        .output()
        .expect("create");
    assert!(out.status.success(), "{out:?}");
    wait_route(&a, &b, "big/probe");
    let mut sub = b
        .client()
        .subscriber("big/t", SubscribeOptions::default())
        .unwrap();
    let mut publisher = a.client().publisher("big/t").unwrap();
    a.wait_subscribers("big/t", 1);

    publisher.send(&[b'x'; 1000]).unwrap();
    publisher.send(b"small").unwrap();
    let got = collect_until(&mut sub, |g| !g.is_empty());
    assert_eq!(got, ["small"]);
    let line = bb.wait_log("dropping an imported message of 1000 bytes");
    assert!(line.contains("at most 64 bytes"), "{line}");
    signal(&bb.child, nix::sys::signal::Signal::SIGUSR1);
    let counters = bb.wait_log("counters:");
    assert!(counters.contains("oversize=1 "), "{counters}");
}

/// Frames (`--batch`) written by another Zenoh program, two of them
/// damaged (records that do not add up to the count claimed; a tag of no
/// message): each is dropped whole and counted, nothing of it is
/// published, and the
/// next frame's count reports its messages to B's subscriber as lost, in
/// their place.
#[test]
fn a_damaged_frame_is_dropped_whole_and_counted() {
    use shmbus_bridge::tag::{push_record, FrameTag};
    use zenoh::Wait;

    let b = started("frmB");
    let port = free_port();
    let listen = format!("tcp/127.0.0.1:{port}");
    let bb = Bridge::start(&b, &["--import", "f/**", "--listen", &listen]);
    let args = <shmbus_bridge::BridgeArgs as clap::Parser>::parse_from([
        "raw-zenoh-peer",
        "--connect",
        &listen,
    ]);
    let session = zenoh::open(shmbus_bridge::zconfig::zenoh_config(&args).expect("config"))
        .wait()
        .expect("a Zenoh session");
    let frame = |count: u64, claimed: u32, msgs: &[&[u8]]| {
        let mut payload = Vec::new();
        for m in msgs {
            push_record(&mut payload, m);
        }
        let tag = FrameTag {
            origin: 0x5eed,
            instance: 1,
            count,
            first_seq: 1000 + count,
            last_seq: 1000 + count + u64::from(claimed) - 1,
            n: claimed,
        };
        (payload, tag.encode())
    };
    let put = |key: &str, (payload, tag): (Vec<u8>, [u8; 48])| {
        session
            .put(key, payload)
            .attachment(tag.to_vec())
            .wait()
            .expect("put");
    };
    // The route is up once a probe frame has been imported.
    let mut probes = 0;
    let crossed = wait_until(READY, || {
        put("shmbus/f/probe", frame(probes, 1, &[b"probe"]));
        probes += 1;
        std::thread::sleep(Duration::from_millis(50));
        published(&b, "f/probe") > 0
    });
    assert!(crossed, "no probe frame was imported within {READY:?}");
    let mut sub = b
        .client()
        .subscriber("f/t", SubscribeOptions::default())
        .unwrap();

    put("shmbus/f/t", frame(0, 2, &[b"a", b"b"]));
    // Claims 2 messages, holds 3.
    put("shmbus/f/t", frame(2, 2, &[b"c", b"d", b"x"]));
    // An impossible tag: a frame of no message.
    put("shmbus/f/t", frame(4, 0, &[b"y"]));
    put("shmbus/f/t", frame(4, 1, &[b"e"]));
    let got = collect_until(&mut sub, |g| g.len() >= 4);
    assert_eq!(got, ["a", "b", "<lost 2>", "e"]);

    bb.wait_log("ignoring a damaged frame of `f/t`");
    signal(&bb.child, nix::sys::signal::Signal::SIGUSR1);
    let counters = bb.wait_log("counters:");
    assert!(counters.contains("bad_samples=2 "), "{counters}");
    assert!(counters.contains("import_lost=2 "), "{counters}");
    // The probe frames (each of one message) and the two good frames of
    // `f/t`; the damaged ones are not counted. Every probe was sent before
    // the frames of `f/t` on the same link, so all have arrived by now.
    let frames = published(&b, "f/probe") + 2;
    assert!(
        counters.contains(&format!("import_frames={frames} ")),
        "{counters}"
    );
}

/// The listening (exporting) bridge is SIGKILLed, 5 messages are published
/// while it is down, and it is started again on the same endpoint: the
/// connecting bridge reconnects by itself, messages published after the
/// restart flow again in order, and the importing bridge recognises the
/// restarted exporter (same origin, new instance) and reports exactly the
/// 5 messages it never got as lost — in its log and counters, and to B's
/// subscriber as `Lagged(5)` before the messages that came after.
#[test]
fn a_restarted_bridge_carries_messages_again_and_reports_the_gap() {
    restarted_bridge_reports_the_gap("rs", &[]);
}

/// The same with a batching exporter (`--batch`) on both sides of the
/// restart.
#[test]
fn a_restarted_batching_bridge_carries_messages_again_and_reports_the_gap() {
    restarted_bridge_reports_the_gap("rsF", &["--batch"]);
}

fn restarted_bridge_reports_the_gap(tag: &str, extra: &[&str]) {
    let (a, b, listen) = two_buses(tag);
    let export = [&["--export", "r/**", "--listen", &listen][..], extra].concat();
    let mut ba = Bridge::start(&a, &export);
    let bb = Bridge::start(&b, &["--import", "r/**", "--connect", &listen]);
    wait_route(&a, &b, "r/probe1");
    let mut sub = b
        .client()
        .subscriber("r/t", SubscribeOptions::default())
        .unwrap();
    let mut publisher = a.client().publisher("r/t").unwrap();
    a.wait_subscribers("r/t", 1);
    publisher.send(b"before").unwrap();
    assert_eq!(collect_until(&mut sub, |g| !g.is_empty()), ["before"]);

    ba.kill();
    // The dead bridge's subscriber entry is reaped by the daemon.
    assert!(
        wait_until(READY, || a
            .client()
            .topics()
            .unwrap()
            .iter()
            .any(|t| t.topic == "r/t" && t.subscribers == 0)),
        "the killed bridge was not reaped"
    );
    for i in 1..=5 {
        publisher.send(format!("down{i}").as_bytes()).unwrap();
    }
    let _ba = Bridge::start(&a, &export);
    wait_route(&a, &b, "r/probe2");
    a.wait_subscribers("r/t", 1);
    let after: Vec<String> = (1..=20).map(|i| format!("after{i}")).collect();
    for m in &after {
        publisher.send(m.as_bytes()).unwrap();
    }
    // B's subscriber is told of the 5 in their place, before the rest.
    let mut want = vec!["<lost 5>".to_string()];
    want.extend(after.iter().cloned());
    assert_eq!(collect_until(&mut sub, |g| g.len() > 20), want);

    let line = bb.wait_log("messages lost before remote");
    assert!(
        line.contains("`r/t`") && line.contains(": 5 messages lost before remote #6 "),
        "{line}"
    );
    signal(&bb.child, nix::sys::signal::Signal::SIGUSR1);
    let counters = bb.wait_log("counters:");
    assert!(counters.contains("import_lost=5 "), "{counters}");
    assert!(counters.contains("stale=0"), "{counters}");
}

/// 10 000 messages on a `block` topic cross in order with none lost:
/// Zenoh's `Block` puts hold the exporter back, and the importer waits (a
/// generous `--publish-timeout-ms`) for the local subscriber, so back-
/// pressure reaches from B's subscriber to A's publisher.
#[test]
fn ten_thousand_messages_cross_in_order_without_loss() {
    ten_thousand_in_order("tenk", &[]);
}

/// The same in frames (`--batch`): with the rings this small, frames of
/// every size from 1 to 16 messages cross.
#[test]
fn ten_thousand_messages_cross_in_frames_in_order_without_loss() {
    ten_thousand_in_order("tenkF", &["--batch"]);
}

fn ten_thousand_in_order(tag: &str, extra: &[&str]) {
    const N: u32 = 10_000;
    let (a, b, listen) = two_buses(tag);
    let _ba = Bridge::start(
        &a,
        &[&["--export", "bulk/**", "--listen", &listen][..], extra].concat(),
    );
    let _bb = Bridge::start(
        &b,
        &[
            "--import",
            "bulk/**",
            "--connect",
            &listen,
            "--publish-timeout-ms",
            "60000",
        ],
    );
    // Small rings on both sides, so that both waits really happen.
    for bus in [&a, &b] {
        let out = bus
            .cli()
            .args(["create", "bulk/t", "--capacity", "16"])
            .output()
            .expect("create");
        assert!(out.status.success(), "{out:?}");
    }
    wait_route(&a, &b, "bulk/probe");
    let mut sub = b
        .client()
        .subscriber("bulk/t", SubscribeOptions::default())
        .unwrap();
    let mut publisher = a.client().publisher("bulk/t").unwrap();
    a.wait_subscribers("bulk/t", 1);

    let sender = std::thread::spawn(move || {
        for i in 0..N {
            publisher
                .send_timeout(&i.to_le_bytes(), READY)
                .expect("publish on A");
        }
    });
    let deadline = Instant::now() + READY;
    for want in 0..N {
        let got = loop {
            assert!(Instant::now() < deadline, "only {want} of {N} arrived");
            match sub.recv_timeout(Duration::from_millis(200)) {
                Ok(m) => break u32::from_le_bytes(m.data.try_into().expect("4 bytes")),
                Err(shmbus::Error::Timeout) => {}
                Err(e) => panic!("receive on B: {e}"),
            }
        };
        assert_eq!(got, want, "out of order or lost");
    }
    sender.join().expect("sender");
}

/// What `block` means across the network: a local subscriber on B that
/// does not read fills B's ring; the importer waits `--publish-timeout-ms`
/// for room, then drops each further sample with a count. The messages
/// that fit are delivered in order; the bridge keeps running.
#[test]
fn a_full_local_topic_drops_imports_after_the_bound_with_a_count() {
    full_local_topic_drops("bp", &[]);
}

/// The same with frames (`--batch`): the 40 messages cross in one or a few
/// frames; once one message of a frame waits out the bound, the rest of the
/// frame is dropped at once (counted the same), not after a bound each.
#[test]
fn a_full_local_topic_drops_the_rest_of_a_frame_with_a_count() {
    full_local_topic_drops("bpF", &["--batch"]);
}

fn full_local_topic_drops(tag: &str, extra: &[&str]) {
    let (a, b, listen) = two_buses(tag);
    let ba = Bridge::start(
        &a,
        &[&["--export", "bp/**", "--listen", &listen][..], extra].concat(),
    );
    let bb = Bridge::start(
        &b,
        &[
            "--import",
            "bp/**",
            "--connect",
            &listen,
            "--publish-timeout-ms",
            "20",
        ],
    );
    let out = b
        .cli()
        .args(["create", "bp/t", "--capacity", "16"])
        .output()
        .expect("create");
    assert!(out.status.success(), "{out:?}");
    wait_route(&a, &b, "bp/probe");
    let mut sub = b
        .client()
        .subscriber("bp/t", SubscribeOptions::default())
        .unwrap();
    let mut publisher = a.client().publisher("bp/t").unwrap();
    a.wait_subscribers("bp/t", 1);

    let sent: Vec<String> = (1..=40).map(|i| format!("m{i}")).collect();
    // With frames, all 40 wait in A's ring while its bridge is stopped, so
    // they cross as one frame.
    let framed = extra.contains(&"--batch");
    if framed {
        signal(&ba.child, nix::sys::signal::Signal::SIGSTOP);
        assert!(
            wait_until(READY, || all_threads_stopped(ba.child.id())),
            "bridge A did not stop"
        );
    }
    for m in &sent {
        publisher.send(m.as_bytes()).unwrap();
    }
    if framed {
        signal(&ba.child, nix::sys::signal::Signal::SIGCONT);
    }
    bb.wait_log("stayed full");
    if framed {
        // 16 fit, the 17th waited out the bound, the other 23 went at once.
        bb.wait_log("dropping the 23 more messages of the frame too");
    }
    // All 40 handled: 16 fit in the ring, 24 waited out the bound.
    let deadline = Instant::now() + READY;
    loop {
        signal(&bb.child, nix::sys::signal::Signal::SIGUSR1);
        let counters = bb.wait_log("counters:");
        if counters.contains("dropped_full=24 ") {
            break;
        }
        assert!(Instant::now() < deadline, "last: {counters}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let got = collect_until(&mut sub, |g| g.len() >= 16);
    assert_eq!(got, sent[..16]);
    assert!(
        matches!(sub.try_recv(), Ok(None)),
        "more than the ring held"
    );
}

/// SIGTERM stops a bridge cleanly: exit 0, counters logged, and its
/// subscriber entry is released at once (no reap needed).
/// The settings of `topic` on `bus` as `shmbus topics --json` shows them:
/// (capacity, policy).
fn topic_settings(bus: &TestBus, topic: &str) -> (u64, String) {
    let out = bus
        .cli()
        .args(["topics", "--json"])
        .output()
        .expect("shmbus topics --json");
    assert!(out.status.success(), "{out:?}");
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let t = list
        .as_array()
        .expect("an array")
        .iter()
        .find(|t| t["topic"] == topic)
        .unwrap_or_else(|| panic!("no `{topic}` in {list}"));
    (
        t["capacity"].as_u64().expect("capacity"),
        t["policy"].as_str().expect("policy").to_string(),
    )
}

/// `--capacity 32 --policy drop-oldest` on the importing bridge: a topic it
/// creates gets those settings; one that existed is used as it is (logged).
/// Settings that break the library's rules are refused with the rule named.
#[test]
fn imported_topics_are_created_with_the_given_capacity_and_policy() {
    let out = Command::new(bin("shmbus-bridge"))
        .args(["--bus", "brNoSuchBus", "--import", "**", "--capacity", "33"])
        .stdin(Stdio::null())
        .output()
        .expect("run shmbus-bridge");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{out:?}");
    assert!(err.contains("power of two"), "{err}");

    let a = started("brCfgA");
    let b = started("brCfgB");
    let out = b
        .cli()
        .args(["create", "cfg/existing", "--capacity", "64"])
        .output()
        .expect("create");
    assert!(out.status.success(), "{out:?}");
    let port = free_port();
    let listen = format!("tcp/127.0.0.1:{port}");
    let _ba = Bridge::start(&a, &["--export", "cfg/**", "--listen", &listen]);
    let bb = Bridge::start(
        &b,
        &[
            "--import",
            "cfg/**",
            "--connect",
            &listen,
            "--capacity",
            "32",
            "--policy",
            "drop-oldest",
        ],
    );
    wait_route(&a, &b, "cfg/new");
    assert_eq!(topic_settings(&b, "cfg/new"), (32, "drop-oldest".into()));

    wait_route(&a, &b, "cfg/existing");
    bb.wait_log("`cfg/existing` exists with capacity 64, policy block");
    assert_eq!(topic_settings(&b, "cfg/existing"), (64, "block".into()));
}

/// Runs `shmbus --bus B call NAME MSG -W 60s` (bounded) and returns its
/// exit code, stdout and stderr.
fn call(bus: &TestBus, name: &str, msg: &str) -> (Option<i32>, String, String) {
    let out = run_with_input(bus.cli().args(["call", name, msg, "-W", "60s"]), b"", READY);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Services as Zenoh queryables: `shmbus serve svc/echo --echo` on A, A's
/// bridge exports `svc/*`, B's imports `svc/echo`: `shmbus call` on B gets
/// A's reply. With A's server killed, the call on B ends at once with the
/// remote error (exit 1), not a hang or a timeout.
#[test]
fn a_service_is_called_across_the_bridge_and_its_loss_is_an_error() {
    let a = started("brSvcA");
    let b = started("brSvcB");
    let mut server = a
        .cli()
        .args(["serve", "svc/echo", "--echo"])
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn shmbus serve");
    let ready = wait_until(READY, || {
        shmbus::service::service_stats(&a.name, "svc/echo").is_ok_and(|s| s.servers == 1)
    });
    assert!(
        ready,
        "`shmbus serve svc/echo` did not attach within {READY:?}"
    );

    let port = free_port();
    let listen = format!("tcp/127.0.0.1:{port}");
    let ba = Bridge::start(&a, &["--export-service", "svc/**", "--listen", &listen]);
    let bb = Bridge::start(
        &b,
        &[
            "--import-service",
            "svc/echo",
            "--import-service",
            "svc/none",
            "--connect",
            &listen,
        ],
    );
    ba.wait_log("exporting service `svc/echo` as `shmbus/@service/svc/echo`");
    bb.wait_log("importing service `svc/echo`");

    // Until B's bridge has learnt of A's queryable, its calls end with "no
    // remote server".
    let mut last = (None, String::new(), String::new());
    let crossed = wait_until(READY, || {
        last = call(&b, "svc/echo", "probe");
        last.0 == Some(0)
    });
    assert!(crossed, "no call crossed within {READY:?}: {last:?}");
    let (code, out, err) = call(&b, "svc/echo", "hello");
    assert_eq!((code, out.as_str()), (Some(0), "hello\n"), "{err}");

    // A name no bridge exports: an error at once, naming the cause.
    let (code, out, err) = call(&b, "svc/none", "hello");
    assert_eq!(code, Some(1), "stdout {out:?}, stderr {err:?}");
    assert!(
        err.contains("no remote server for service `svc/none`"),
        "stderr: {err}"
    );

    let _ = server.kill();
    let _ = server.wait();
    let (code, out, err) = call(&b, "svc/echo", "hello");
    assert_eq!(code, Some(1), "stdout {out:?}, stderr {err:?}");
    eprintln!("the call on B after the server's death: {err}");
    assert!(
        err.contains("no server for service `svc/echo`"),
        "stderr: {err}"
    );
}

#[test]
fn sigterm_stops_a_bridge_cleanly() {
    let a = started("term");
    let mut publisher = a.client().publisher("t/x").unwrap();
    let mut bridge = Bridge::start(&a, &["--export", "t/**"]);
    a.wait_subscribers("t/x", 1);
    publisher.send(b"one").unwrap();
    signal(&bridge.child, nix::sys::signal::Signal::SIGTERM);
    let status = wait_exit(&mut bridge.child, READY);
    assert!(status.success(), "{status}");
    let counters = bridge.wait_log("counters:");
    assert!(counters.contains("export_errors=0 "), "{counters}");
    assert!(wait_until(READY, || a
        .client()
        .topics()
        .unwrap()
        .iter()
        .any(|t| t.topic == "t/x" && t.subscribers == 0)));
}

/// `shmbus bridge` runs `shmbus-bridge` with the CLI's `--bus` and
/// `--runtime-dir`: a route made of one bridge started each way carries a
/// message.
#[test]
fn shmbus_bridge_subcommand_runs_the_bridge() {
    let a = started("brcliA");
    let b = started("brcliB");
    let port = free_port();
    let listen = format!("tcp/127.0.0.1:{port}");
    let mut via_cli = a
        .cli()
        .args(["bridge", "--export", "sensors/**", "--listen", &listen])
        .env("RUST_LOG", "info,zenoh=warn")
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn shmbus bridge");
    let _bb = Bridge::start(&b, &["--import", "**", "--connect", &listen]);
    wait_route(&a, &b, "sensors/cli");
    let _ = via_cli.kill();
    let _ = via_cli.wait();
}

/// Two network namespaces joined by a veth pair (10.231.0.1/30 and
/// 10.231.0.2/30, visible only inside them), deleted when dropped (which
/// deletes the veth pair too).
struct NetnsPair {
    names: [String; 2],
}

impl NetnsPair {
    /// Creates the pair; the error says which `ip` command failed.
    fn setup() -> Result<NetnsPair, String> {
        if !nix::unistd::Uid::effective().is_root() {
            return Err("not running as root".into());
        }
        let id = std::process::id();
        let pair = NetnsPair {
            names: [format!("shmbus-t{id}-a"), format!("shmbus-t{id}-b")],
        };
        let [na, nb] = &pair.names;
        // Interface names have at most 15 bytes.
        let (va, vb) = (format!("shbv{id}a"), format!("shbv{id}b"));
        let ip = |args: &[&str]| -> Result<(), String> {
            let out = Command::new("ip")
                .args(args)
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("cannot run `ip`: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "`ip {}` failed: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        };
        // Dropping `pair` on an error below deletes what was made.
        ip(&["netns", "add", na])?;
        ip(&["netns", "add", nb])?;
        ip(&["link", "add", &va, "type", "veth", "peer", "name", &vb])?;
        ip(&["link", "set", &va, "netns", na])?;
        ip(&["link", "set", &vb, "netns", nb])?;
        for (ns, dev, addr) in [(na, &va, "10.231.0.1/30"), (nb, &vb, "10.231.0.2/30")] {
            ip(&["-n", ns, "addr", "add", addr, "dev", dev])?;
            ip(&["-n", ns, "link", "set", dev, "up"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        Ok(pair)
    }

    /// A command that runs `program` inside namespace `i`.
    fn exec(&self, i: usize, program: &std::path::Path) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.names[i]]).arg(program);
        cmd
    }
}

impl Drop for NetnsPair {
    fn drop(&mut self) {
        for ns in &self.names {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Kills and reaps a child when dropped.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Two "hosts": each side (its daemon and its bridge) runs in its own
/// network namespace, and the bridges reach each other only over the veth
/// pair between them (10.231.0.1 ↔ 10.231.0.2). 100 messages cross in
/// order. Ignored, saying why, where the tests were not built by root with
/// `ip netns` working (tests/build.rs; CI installs iproute2).
#[test]
#[cfg_attr(not(has_netns), ignore = "needs root and iproute2's `ip netns`")]
fn two_network_namespaces_as_two_hosts() {
    let netns = NetnsPair::setup().expect("make two network namespaces with `ip netns`");
    let mut a = TestBus::new("nsA");
    let mut b = TestBus::new("nsB");
    let mut daemons = Vec::new();
    for (i, bus) in [&mut a, &mut b].into_iter().enumerate() {
        let child = netns
            .exec(i, &bin("shmbusd"))
            .arg("--bus")
            .arg(&bus.name)
            .arg("--runtime-dir")
            .arg(&bus.runtime_dir)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn shmbusd in a namespace");
        daemons.push(KillOnDrop(child));
        bus.wait_ready();
    }
    let listen = "tcp/10.231.0.1:7447";
    let ba = Bridge::start_with(
        netns.exec(0, &bin("shmbus-bridge")),
        &a,
        &["--export", "ns/**", "--listen", listen],
    );
    let bb = Bridge::start_with(
        netns.exec(1, &bin("shmbus-bridge")),
        &b,
        &["--import", "ns/**", "--connect", listen],
    );
    wait_route(&a, &b, "ns/probe");
    bb.wait_log("Zenoh connected to");

    let mut sub = b
        .client()
        .subscriber("ns/t", SubscribeOptions::default())
        .unwrap();
    let mut publisher = a.client().publisher("ns/t").unwrap();
    a.wait_subscribers("ns/t", 1);
    let sent: Vec<String> = (1..=100).map(|i| format!("n{i}")).collect();
    for m in &sent {
        publisher.send(m.as_bytes()).unwrap();
    }
    assert_eq!(collect_until(&mut sub, |g| g.len() >= 100), sent);
    // Bridges first, then daemons, then the namespaces (field order of the
    // guards would drop `netns` last anyway; explicit for the reader).
    drop(ba);
    drop(bb);
    drop(daemons);
    drop(netns);
}
