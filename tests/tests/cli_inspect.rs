//! End-to-end tests of the inspecting and managing commands against a real
//! daemon: `topics`/`ls` and `stats` (tables for people, `--json` parsed back
//! with the right counters, `--watch` frames with rates), `create` and `rm`.

use std::process::{Child, Output, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;
use shmbus_tests::{line_channel, signal, stdout, wait_exit, wait_until, TestBus};

/// Bound for anything that should happen quickly (never asserted as a time).
const LIMIT: Duration = Duration::from_secs(60);

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).expect("valid JSON on stdout")
}

/// Kills a child left running by a failed assertion.
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn topics_lists_settings_and_usage_as_table_and_json() {
    let mut bus = TestBus::new("topics");
    bus.start_daemon();
    let out = bus.ok(&["topics"]);
    assert_eq!(stdout(&out), format!("no topics on bus `{}`\n", bus.name));
    assert_eq!(json(&bus.ok(&["topics", "--json"])), serde_json::json!([]));

    let out = bus.ok(&[
        "create",
        "sensors/imu",
        "--capacity",
        "64",
        "--max-msg-size",
        "1K",
        "--policy",
        "drop-oldest",
    ]);
    assert!(
        stdout(&out).starts_with(
            "created topic `sensors/imu`: 64 slots of up to 1.0 KiB, policy drop-oldest"
        ),
        "{}",
        stdout(&out)
    );
    bus.ok(&["pub", "sensors/imu", "a", "b", "c"]);
    bus.ok(&["pub", "auto", "x"]);

    let doc = json(&bus.ok(&["topics", "--json"]));
    let list = doc.as_array().expect("array");
    assert_eq!(list.len(), 2, "{doc}");
    let imu = list
        .iter()
        .find(|t| t["topic"] == "sensors/imu")
        .expect("imu");
    assert_eq!(imu["capacity"], 64);
    assert_eq!(imu["max_msg_size"], 1024);
    assert_eq!(imu["policy"], "drop-oldest");
    assert_eq!(imu["published"], 3);
    assert_eq!(imu["publishers"], 0);
    assert_eq!(imu["subscribers"], 0);
    assert!(imu["memory_bytes"].as_u64().unwrap() >= 64 * 1024, "{imu}");
    let auto = list.iter().find(|t| t["topic"] == "auto").expect("auto");
    assert_eq!(auto["policy"], "block");
    assert_eq!(auto["published"], 1);

    // The table: a header, one aligned row per topic, sizes with units.
    let table = stdout(&bus.ok(&["ls"]));
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    for col in [
        "TOPIC", "POLICY", "CAPACITY", "MAX SIZE", "PUBS", "SUBS", "MESSAGES", "MEMORY",
    ] {
        assert!(lines[0].contains(col), "{table}");
    }
    assert!(
        lines.iter().all(|l| l.len() == lines[0].len()),
        "aligned:\n{table}"
    );
    let row = lines
        .iter()
        .find(|l| l.starts_with("sensors/imu"))
        .expect(&table);
    assert!(
        row.contains("drop-oldest") && row.contains("1.0 KiB"),
        "{row}"
    );
    assert!(
        row.contains(" KiB") || row.contains(" MiB"),
        "memory with a unit: {row}"
    );
}

#[test]
fn stats_json_has_the_counters_of_topics_and_subscribers() {
    let mut bus = TestBus::new("stats");
    bus.start_daemon();
    bus.ok(&["create", "s", "--capacity", "16"]);
    let mut sub = Reaper(
        bus.cli()
            .args(["sub", "s"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    bus.wait_subscribers("s", 1);
    bus.ok(&["pub", "s", "1", "2", "3", "4", "5"]);
    let delivered_all = || {
        let doc = json(&bus.ok(&["stats", "s", "--json", "--interval", "10ms"]));
        doc["topics"][0]["subscriber_stats"][0]["delivered"] == 5
    };
    assert!(
        wait_until(LIMIT, delivered_all),
        "subscriber did not get 5 messages"
    );

    let doc = json(&bus.ok(&["stats", "--json", "--interval", "50ms"]));
    assert_eq!(doc["bus"], bus.name.as_str());
    assert_eq!(doc["interval_ms"], 50);
    let t = &doc["topics"][0];
    assert_eq!(t["topic"], "s");
    assert_eq!(t["capacity"], 16);
    assert_eq!(t["policy"], "block");
    assert_eq!(t["published"], 5);
    assert_eq!(t["blocked_publishes"], 0);
    assert_eq!(t["subscribers"], 1);
    assert_eq!(
        t["rate"], 0.0,
        "nothing was published between the two samples"
    );
    let s = &t["subscriber_stats"][0];
    assert_eq!(s["pid"].as_u64(), Some(u64::from(sub.0.id())));
    assert_eq!(s["delivered"], 5);
    assert_eq!(s["lag"], 0);
    assert_eq!(s["lost"], 0);
    assert!(s["waiting"].is_boolean(), "{s}");

    // The table names the subscriber with its pid.
    let table = stdout(&bus.ok(&["stats", "--interval", "10ms"]));
    assert!(table.contains("SUBSCRIBERS"), "{table}");
    let row = table
        .lines()
        .find(|l| l.contains(&sub.0.id().to_string()))
        .unwrap_or_else(|| panic!("no row with the subscriber's pid:\n{table}"));
    assert!(row.contains(" 5 "), "delivered 5: {row}");
    assert!(table.contains("msg/s"), "rates with units:\n{table}");
    signal(&sub.0, Signal::SIGINT);
    assert_eq!(wait_exit(&mut sub.0, LIMIT).code(), Some(0));
}

#[test]
fn stats_watch_prints_a_frame_per_interval_with_rates_until_ctrl_c() {
    let mut bus = TestBus::new("watch");
    bus.start_daemon();
    bus.ok(&["pub", "w", "x"]);
    let mut watch = Reaper(
        bus.cli()
            .args(["stats", "--watch", "--json", "--interval", "100ms"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let lines = line_channel(watch.0.stdout.take().unwrap());
    let frame = |lines: &std::sync::mpsc::Receiver<String>| -> serde_json::Value {
        let line = lines.recv_timeout(LIMIT).expect("a frame");
        serde_json::from_str(&line).expect("one JSON object per frame")
    };
    let first = frame(&lines);
    assert!(
        first["topics"][0]["rate"].is_null(),
        "no rate before two samples: {first}"
    );
    assert_eq!(first["topics"][0]["published"], 1);
    let second = frame(&lines);
    assert!(second["topics"][0]["rate"].is_number(), "{second}");
    signal(&watch.0, Signal::SIGINT);
    assert_eq!(wait_exit(&mut watch.0, LIMIT).code(), Some(0));

    // The table form on a pipe: frames one after another, each with its header.
    let mut watch = Reaper(
        bus.cli()
            .args(["stats", "--watch", "--interval", "100ms"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let lines = line_channel(watch.0.stdout.take().unwrap());
    let mut headers = 0;
    while headers < 2 {
        let line = lines.recv_timeout(LIMIT).expect("a line of a frame");
        if line.starts_with("shmbus stats: bus") {
            headers += 1;
        }
    }
    signal(&watch.0, Signal::SIGINT);
    assert_eq!(wait_exit(&mut watch.0, LIMIT).code(), Some(0));
}

#[test]
fn create_validates_settings_naming_the_rule_and_rm_removes() {
    let mut bus = TestBus::new("manage");
    bus.start_daemon();
    let refused = |args: &[&str], rule: &str| {
        let out = bus.run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.starts_with("shmbus: ") && err.contains(rule),
            "{args:?}: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
    };
    refused(&["create", "t", "--capacity", "1000"], "power of two");
    refused(&["create", "t", "--capacity", "0"], "power of two");
    refused(
        &["create", "t", "--max-msg-size", "0"],
        "max message size 0 must be between 1 and",
    );
    refused(
        &["create", "t", "--max-msg-size", "1G"],
        "must be between 1 and",
    );
    refused(
        &["create", "t", "--max-msg-size", "12Q"],
        "unknown size suffix",
    );
    refused(
        &["create", "t", "--policy", "newest"],
        "possible values: block, drop-oldest",
    );
    refused(&["create", "a//b"], "must not contain an empty segment");
    refused(&["create", "/a"], "must not start or end with `/`");
    refused(&["create", "a/../b"], "must not contain `..`");
    refused(&["create", "a b"], "may only contain");
    refused(&["create", &"x".repeat(129)], "at most 128 bytes");
    refused(&["pub", "bad topic", "x"], "may only contain");
    refused(&["sub", "ok", "bad*"], "whole segments");
    refused(&["sub", "ok", "bad name"], "may only contain");
    refused(&["rm", "a/"], "must not start or end with `/`");
    assert_eq!(json(&bus.ok(&["topics", "--json"])), serde_json::json!([]));

    bus.ok(&["create", "keep"]);
    let out = bus.ok(&["create", "gone", "--capacity", "2"]);
    assert!(stdout(&out).contains("2 slots"), "{}", stdout(&out));
    let out = bus.ok(&["rm", "gone"]);
    assert_eq!(stdout(&out), "removed topic `gone`\n");
    let doc = json(&bus.ok(&["topics", "--json"]));
    let names: Vec<&str> = doc
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["topic"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["keep"]);

    let out = bus.run(&["rm", "never-was"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("never-was") && err.lines().count() == 1,
        "{err}"
    );
}
