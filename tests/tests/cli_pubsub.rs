//! End-to-end tests of `shmbus pub` and `shmbus sub` against a real daemon:
//! what goes in comes out, byte for byte, in every output format, from
//! arguments, stdin and files, across several topics, with the counts,
//! timeouts, history and loss reports of SPEC §7.

use std::io::Read;
use std::process::{Child, Output, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;
use shmbus_tests::{run_with_input, signal, stderr, stdout, wait_exit, TestBus};

/// Bound for one CLI command that should finish quickly.
const LIMIT: Duration = Duration::from_secs(60);

/// A running `shmbus sub` whose stdout and stderr are collected on threads.
struct Sub {
    child: Child,
    stdout: std::thread::JoinHandle<Vec<u8>>,
    stderr: std::thread::JoinHandle<Vec<u8>>,
}

impl Sub {
    /// Starts `shmbus sub ARGS` and waits until it is attached to `topics`.
    fn start(bus: &TestBus, args: &[&str], topics: &[&str]) -> Sub {
        let mut child = bus
            .cli()
            .arg("sub")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn shmbus sub");
        let mut out = child.stdout.take().unwrap();
        let mut err = child.stderr.take().unwrap();
        let sub = Sub {
            child,
            stdout: std::thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = out.read_to_end(&mut buf);
                buf
            }),
            stderr: std::thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = err.read_to_end(&mut buf);
                buf
            }),
        };
        for topic in topics {
            bus.wait_subscribers(topic, 1);
        }
        sub
    }

    /// Waits for it to exit by itself and returns what it printed.
    fn finish(mut self) -> Output {
        let status = wait_exit(&mut self.child, LIMIT);
        Output {
            status,
            stdout: self.stdout.join().unwrap(),
            stderr: self.stderr.join().unwrap(),
        }
    }
}

/// Messages published on `topic` so far, as the daemon counts them.
fn published(bus: &TestBus, topic: &str) -> u64 {
    let stats = bus.client().stats(Some(topic)).expect("stats");
    stats
        .iter()
        .find(|t| t.topic == topic)
        .expect("topic")
        .published
}

#[test]
fn text_round_trip_of_arguments() {
    let mut bus = TestBus::new("text");
    bus.start_daemon();
    let plain = Sub::start(&bus, &["greet", "-c", "4"], &["greet"]);
    let verbose = Sub::start(&bus, &["-v", "greet", "-c", "4"], &[]);
    bus.wait_subscribers("greet", 2);
    let out = bus.ok(&["pub", "-v", "greet", "hello", "grüße ☃", "", "a\tb"]);
    assert_eq!(
        stdout(&out),
        "published 4 messages to `greet` (2 subscribers attached)\n"
    );

    let got = plain.finish();
    assert!(got.status.success(), "{got:?}");
    assert_eq!(stdout(&got), "hello\ngrüße ☃\n\na\tb\n");
    assert!(got.stderr.is_empty(), "{}", stderr(&got));
    let got = verbose.finish();
    assert!(got.status.success(), "{got:?}");
    assert_eq!(
        stdout(&got),
        "greet hello\ngreet grüße ☃\ngreet \ngreet a\tb\n"
    );
}

#[test]
fn stdin_lines_stream_complete_and_in_order() {
    const N: usize = 100_000;
    let mut bus = TestBus::new("stream");
    bus.start_daemon();
    // A small `block` ring: the publisher has to wait for the subscriber
    // again and again, and still nothing may be lost.
    bus.ok(&["create", "stream", "--capacity", "64"]);
    let sub = Sub::start(&bus, &["stream", "-c", &N.to_string()], &["stream"]);
    let input: String = (0..N).map(|i| format!("line {i}\n")).collect();
    let out = run_with_input(bus.cli().args(["pub", "stream"]), input.as_bytes(), LIMIT);
    assert!(out.status.success(), "{out:?}");

    let got = sub.finish();
    assert!(got.status.success(), "{}", stderr(&got));
    assert!(
        got.stdout == input.as_bytes(),
        "sub printed {} bytes, {} lines; first difference at line {:?}",
        got.stdout.len(),
        got.stdout.split(|&b| b == b'\n').count() - 1,
        String::from_utf8_lossy(&got.stdout)
            .lines()
            .zip(input.lines())
            .position(|(a, b)| a != b)
    );
    assert_eq!(published(&bus, "stream"), N as u64);
}

#[test]
fn binary_file_is_exact_in_raw_and_hex_and_max_size_is_the_limit() {
    let mut bus = TestBus::new("binary");
    bus.start_daemon();
    bus.ok(&["create", "bin", "--max-msg-size", "256"]);
    let all: Vec<u8> = (0..=255u8).collect();
    let file = bus.dir().join("all.bin");
    std::fs::write(&file, &all).unwrap();
    let file = file.to_str().unwrap();

    let raw = Sub::start(&bus, &["bin", "-c", "2", "--format", "raw"], &[]);
    let hex = Sub::start(&bus, &["bin", "-c", "2", "--format", "hex"], &[]);
    bus.wait_subscribers("bin", 2);
    // Exactly the topic's max size passes; one byte more is refused.
    bus.ok(&["pub", "bin", "-f", file]);
    bus.ok(&["pub", "bin", "-f", "/dev/null"]);

    let got = raw.finish();
    assert!(got.status.success(), "{got:?}");
    assert_eq!(got.stdout, all, "raw output is the bytes, nothing added");
    let got = hex.finish();
    assert!(got.status.success(), "{got:?}");
    let want: String = all.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(stdout(&got), format!("{want}\n\n"));

    let over = bus.dir().join("over.bin");
    std::fs::write(&over, vec![7u8; 257]).unwrap();
    let out = bus.run(&["pub", "bin", "-f", over.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = stderr(&out);
    assert!(
        err.contains("257 bytes") && err.contains("256 bytes"),
        "{err}"
    );
    assert_eq!(
        published(&bus, "bin"),
        2,
        "nothing of the large file was published"
    );
}

#[test]
fn text_escapes_bytes_that_would_harm_a_terminal() {
    let mut bus = TestBus::new("escape");
    bus.start_daemon();
    let sub = Sub::start(&bus, &["esc", "-c", "1"], &["esc"]);
    let out = run_with_input(
        bus.cli().args(["pub", "esc"]),
        b"ok\x1b[2J\xff\r\x00end\n",
        LIMIT,
    );
    assert!(out.status.success(), "{out:?}");
    let got = sub.finish();
    assert!(got.status.success(), "{got:?}");
    assert_eq!(stdout(&got), "ok\\x1b[2J\\xff\\r\\x00end\n");
}

#[test]
fn json_carries_every_field_and_base64_for_binary() {
    let mut bus = TestBus::new("json");
    bus.start_daemon();
    let sub = Sub::start(&bus, &["j/t", "-c", "3", "--format", "json"], &["j/t"]);
    let epoch_ns = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_nanos() as u64
    };
    let before = epoch_ns();
    bus.ok(&["pub", "j/t", "héllo"]);
    let file = bus.dir().join("bin");
    std::fs::write(&file, [0xff, 0xfe, 0x00, 0x41]).unwrap();
    bus.ok(&["pub", "j/t", "-f", file.to_str().unwrap()]);
    bus.ok(&["pub", "j/t", ""]);
    let after = epoch_ns();

    let got = sub.finish();
    assert!(got.status.success(), "{got:?}");
    let text = stdout(&got);
    let objs: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(objs.len(), 3, "{text}");
    let first_seq = objs[0]["seq"].as_u64().expect("seq");
    for (i, o) in objs.iter().enumerate() {
        assert_eq!(o["topic"], "j/t");
        assert_eq!(o["seq"].as_u64(), Some(first_seq + i as u64));
        // The publish time: between our clock reads around the three `pub`
        // runs (a millisecond of slack for the stamp's documented error).
        let t = o["timestamp_ns"].as_u64().expect("timestamp_ns");
        assert!(
            t + 1_000_000 >= before && t <= after + 1_000_000,
            "timestamp {t} outside [{before}, {after}]"
        );
        let ts = o["timestamp"].as_str().expect("timestamp");
        assert!(ts.ends_with('Z') && ts.contains('T'), "{ts}");
    }
    assert_eq!(objs[0]["payload"], "héllo");
    assert_eq!(objs[0]["length"], 6);
    assert_eq!(objs[0]["base64"], false);
    assert_eq!(objs[1]["payload"], "//4AQQ==");
    assert_eq!(objs[1]["length"], 4);
    assert_eq!(objs[1]["base64"], true);
    assert_eq!(objs[2]["payload"], "");
    assert_eq!(objs[2]["length"], 0);
}

#[test]
fn one_sub_interleaves_several_topics_in_arrival_order() {
    let mut bus = TestBus::new("multi");
    bus.start_daemon();
    let sub = Sub::start(&bus, &["-v", "a/x", "b", "-c", "4"], &["a/x", "b"]);
    // Each publish is a process that ends before the next starts, so the
    // arrival order is known.
    for (topic, msg) in [("a/x", "1"), ("b", "2"), ("a/x", "3"), ("b", "4")] {
        bus.ok(&["pub", topic, msg]);
    }
    let got = sub.finish();
    assert!(got.status.success(), "{got:?}");
    assert_eq!(stdout(&got), "a/x 1\nb 2\na/x 3\nb 4\n");
}

#[test]
fn count_ends_the_subscription() {
    let mut bus = TestBus::new("count");
    bus.start_daemon();
    let sub = Sub::start(&bus, &["c", "-c", "3"], &["c"]);
    bus.ok(&["pub", "c", "1", "2", "3", "4", "5"]);
    let got = sub.finish();
    assert_eq!(got.status.code(), Some(0), "{got:?}");
    assert_eq!(stdout(&got), "1\n2\n3\n");
}

#[test]
fn from_start_gives_history_and_timeout_exits_3_with_what_came() {
    let mut bus = TestBus::new("history");
    bus.start_daemon();
    bus.ok(&["pub", "h", "old1", "old2"]);

    // A new subscriber starts at the next message: nothing comes.
    let out = bus.run(&["sub", "h", "-W", "300ms"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(out.stdout.is_empty());
    assert!(
        stderr(&out).contains("timed out after 300ms"),
        "{}",
        stderr(&out)
    );

    // With --from-start it gets the history, then times out waiting for more.
    let out = bus.run(&["sub", "h", "--from-start", "-c", "5", "-W", "2s"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(stdout(&out), "old1\nold2\n");
    assert!(
        stderr(&out).contains("received 2 of 5 messages"),
        "{}",
        stderr(&out)
    );

    let out = bus.ok(&["sub", "h", "--from-start", "-c", "2", "-W", "30s"]);
    assert_eq!(stdout(&out), "old1\nold2\n");
}

#[test]
fn too_large_message_fails_with_both_sizes_and_publishes_nothing_of_it() {
    let mut bus = TestBus::new("large");
    bus.start_daemon();
    bus.ok(&["create", "small", "--max-msg-size", "16"]);
    let big = "x".repeat(17);

    // Arguments are checked before any is published.
    let out = bus.run(&["pub", "small", "fits", &big]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = stderr(&out);
    assert!(
        err.contains("argument 2")
            && err.contains("17 bytes")
            && err.contains("16 bytes")
            && err.ends_with('\n')
            && err.lines().count() == 1,
        "{err}"
    );
    assert_eq!(published(&bus, "small"), 0);

    // Stdin is streamed: the line before is published, the large one and
    // what follows are not.
    let input = format!("fits\n{big}\nafter\n");
    let out = run_with_input(bus.cli().args(["pub", "small"]), input.as_bytes(), LIMIT);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = stderr(&out);
    assert!(
        err.contains("line 2 of stdin") && err.contains("17 bytes"),
        "{err}"
    );
    assert_eq!(published(&bus, "small"), 1);

    // Exactly the limit is fine.
    bus.ok(&["pub", "small", &"y".repeat(16)]);
    assert_eq!(published(&bus, "small"), 2);
}

#[test]
fn drop_oldest_losses_are_reported_on_stderr() {
    let mut bus = TestBus::new("lost");
    bus.start_daemon();
    bus.ok(&[
        "create",
        "lossy",
        "--capacity",
        "4",
        "--policy",
        "drop-oldest",
    ]);
    let sub = Sub::start(&bus, &["lossy", "-c", "4"], &["lossy"]);
    // Stopped, it cannot keep up: 20 messages into a ring of 4 overwrite 16.
    signal(&sub.child, Signal::SIGSTOP);
    let input: String = (1..=20).map(|i| format!("{i}\n")).collect();
    let out = run_with_input(bus.cli().args(["pub", "lossy"]), input.as_bytes(), LIMIT);
    assert!(out.status.success(), "drop-oldest never blocks: {out:?}");
    signal(&sub.child, Signal::SIGCONT);

    let got = sub.finish();
    assert!(got.status.success(), "{got:?}");
    assert_eq!(stdout(&got), "17\n18\n19\n20\n");
    assert_eq!(stderr(&got), "shmbus: lost 16 messages on `lossy`\n");
}

#[test]
fn repeat_publishes_each_message_n_times() {
    let mut bus = TestBus::new("repeat");
    bus.start_daemon();
    let sub = Sub::start(&bus, &["r", "-c", "6"], &["r"]);
    bus.ok(&["pub", "r", "a", "b", "--repeat", "3", "--interval", "1ms"]);
    let got = sub.finish();
    assert!(got.status.success(), "{got:?}");
    assert_eq!(stdout(&got), "a\na\na\nb\nb\nb\n");
}

/// A loss upstream of the topic (what a bridge writes when the remote
/// sequence has a gap) reaches a real `shmbus sub` in its place between
/// the messages, as the same "lost" line a lap gives; the marker is not a
/// message (not printed), though it takes a sequence number (the topic's
/// `published` is the sequence numbers handed out).
#[test]
fn an_upstream_loss_marker_is_reported_by_sub_in_its_place() {
    let mut bus = TestBus::new("upstream");
    bus.start_daemon();
    let sub = Sub::start(&bus, &["up", "-c", "2"], &["up"]);
    let mut publisher = bus.client().publisher("up").unwrap();
    publisher.send(b"before").unwrap();
    publisher.report_lost(7, LIMIT).unwrap();
    publisher.report_lost(0, LIMIT).unwrap();
    publisher.send(b"after").unwrap();
    let got = sub.finish();
    assert!(got.status.success(), "{got:?}");
    assert_eq!(stdout(&got), "before\nafter\n");
    assert_eq!(stderr(&got), "shmbus: lost 7 messages on `up`\n");
    assert_eq!(published(&bus, "up"), 3);
}
