//! Fault tests across real processes: a stopped subscriber, the daemon
//! killed and restarted under running clients, `/dev/shm` too small for a
//! topic, a topic's subscriber limit.

use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::Signal;
use shmbus_tests::{line_channel, signal, wait_exit, wait_until, TestBus, TestClient};

fn client(args: &[&str]) -> TestClient {
    TestClient::ready(args)
}

fn create(bus: &TestBus, args: &[&str]) {
    let out = bus
        .cli()
        .arg("create")
        .args(args)
        .output()
        .expect("run shmbus create");
    assert!(out.status.success(), "create {args:?}: {out:?}");
}

#[test]
fn stopped_subscriber_holds_publishers_back_and_shows_as_laggard() {
    let mut bus = TestBus::new("sigstop");
    bus.start_daemon();
    create(&bus, &["held", "--capacity", "16"]);
    let mut sub = bus
        .cli()
        .args(["sub", "held"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn shmbus sub");
    bus.wait_subscribers("held", 1);
    signal(&sub, Signal::SIGSTOP);

    let msgs: Vec<String> = (0..16).map(|i| format!("m{i}")).collect();
    let out = bus
        .cli()
        .args(["pub", "held"])
        .args(&msgs)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    // The ring is full and its only reader is stopped: the publisher times
    // out with an error that says so, and publishes nothing of it.
    let out = bus
        .cli()
        .args(["pub", "held", "one-too-many", "-W", "300ms"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(err.contains("full") || err.contains("timed out"), "{err}");

    let out = bus
        .cli()
        .args(["stats", "held", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stats JSON");
    let text = stats.to_string();
    assert!(text.contains(&format!("\"pid\":{}", sub.id())), "{text}");
    assert!(text.contains("\"lag\":16"), "{text}");

    // Resumed, it reads everything that was published, in order.
    signal(&sub, Signal::SIGCONT);
    let lines = line_channel(sub.stdout.take().unwrap());
    for m in &msgs {
        let got = lines.recv_timeout(Duration::from_secs(30)).expect("line");
        assert_eq!(&got, m);
    }
    signal(&sub, Signal::SIGINT);
    wait_exit(&mut sub, Duration::from_secs(30));
}

#[test]
fn daemon_killed_and_restarted_under_running_clients_loses_nothing() {
    let mut bus = TestBus::new("dcrash");
    bus.start_daemon();
    create(&bus, &["blk", "--capacity", "64"]);
    let subs: Vec<TestClient> = (0..2)
        .map(|_| client(&["sub-until-closed", &bus.name, "blk", "1"]))
        .collect();
    let pubs: Vec<TestClient> = (0..2)
        .map(|id| client(&["pub-until-closed", &bus.name, "blk", &id.to_string()]))
        .collect();
    for round in 0..8 {
        std::thread::sleep(Duration::from_millis(30));
        bus.kill_daemon();
        std::thread::sleep(Duration::from_millis(30));
        bus.start_daemon();
        // The restarted daemon adopted the topic and serves opens again.
        let out = bus
            .cli()
            .args(["pub", &format!("probe/{round}"), "hello"])
            .output()
            .unwrap();
        assert!(out.status.success(), "round {round}: {out:?}");
        let out = bus.cli().args(["topics", "--json"]).output().unwrap();
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("\"blk\""),
            "{out:?}"
        );
    }
    let daemon = bus.daemon().expect("daemon");
    signal(daemon, Signal::SIGTERM);
    assert!(wait_exit(daemon, Duration::from_secs(30)).success());
    for mut p in pubs {
        assert!(wait_exit(&mut p.child, Duration::from_secs(60)).success());
    }
    for mut s in subs {
        assert!(wait_exit(&mut s.child, Duration::from_secs(60)).success());
        let line = s
            .lines
            .recv_timeout(Duration::from_secs(10))
            .expect("summary");
        let v: serde_json::Value = serde_json::from_str(&line).expect("JSON");
        assert_eq!(v["errors"], serde_json::json!([]), "{v}");
        let n = |k: &str| v[k].as_u64().unwrap();
        assert_eq!(n("lost"), 0, "{v}");
        assert_eq!(
            n("delivered") + n("skipped"),
            n("next_seq") - n("start"),
            "{v}"
        );
        assert!(n("delivered") > 0, "{v}");
    }
    assert!(wait_until(Duration::from_secs(10), || bus
        .shm_files()
        .is_empty()));
}

#[test]
#[cfg_attr(
    not(shm_fillable),
    ignore = "/dev/shm has 32 GiB or more free: more than a topic of 1 MiB slots may take"
)]
fn topic_larger_than_dev_shm_is_refused_and_leaves_nothing() {
    let mut bus = TestBus::new("noshm");
    bus.start_daemon();
    // Slots of 1 MiB, a power of two of them that is more than /dev/shm
    // has free (but within the library's own 64 GiB bound).
    let vfs = nix::sys::statvfs::statvfs("/dev/shm").expect("statvfs /dev/shm");
    let free = vfs.blocks_available() as u64 * vfs.fragment_size() as u64;
    let capacity = (free / (1 << 20) + 1).next_power_of_two();
    assert!(
        capacity <= 1 << 15,
        "/dev/shm has {free} bytes free now, more than a topic may take (it had less when the tests were built)"
    );
    let out = bus
        .cli()
        .args(["create", "huge", "--max-msg-size", "1048576", "--capacity"])
        .arg(capacity.to_string())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/dev/shm") || err.contains("space"), "{err}");
    assert!(bus.shm_files().is_empty(), "{:?}", bus.shm_files());
    // The daemon is unharmed and serves the next request.
    let out = bus.cli().args(["pub", "small", "ok"]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn subscriber_limit_is_a_clear_error() {
    let mut bus = TestBus::new("sublimit");
    bus.start_daemon();
    let out = bus
        .cli()
        .args(["create", "few", "--capacity", "16"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let cfg = shmbus::TopicConfig {
        capacity: 16,
        max_subscribers: 1,
        ..shmbus::TopicConfig::default()
    };
    bus.client()
        .create_topic("one-reader", &cfg)
        .expect("create");
    let _first = client(&["idle-sub", &bus.name, "one-reader"]);
    let out = bus
        .cli()
        .args(["sub", "one-reader", "-W", "1s"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("subscriber") && err.contains('1'), "{err}");
}

#[test]
fn truncated_segment_harms_neither_daemon_nor_clients() {
    let mut bus = TestBus::new("truncate");
    bus.start_daemon();
    create(&bus, &["cut", "--capacity", "16"]);
    let mut sub = bus
        .cli()
        .args(["sub", "cut"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn shmbus sub");
    bus.wait_subscribers("cut", 1);
    // A client with write access to the subs segment (every subscriber
    // has) cuts it down to its header.
    let subs = bus
        .shm_files()
        .into_iter()
        .find(|f| f.ends_with(".subs"))
        .expect("subs segment");
    std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/dev/shm/{subs}"))
        .and_then(|f| f.set_len(4096))
        .expect("truncate");
    // The daemon notices, closes the topic, and the subscriber ends with an
    // error or `Closed`, never killed by a signal.
    let status = wait_exit(&mut sub, Duration::from_secs(30));
    assert!(status.code().is_some(), "shmbus sub ended with {status}");
    // The daemon is alive and the topic can be used again, afresh.
    assert!(wait_until(Duration::from_secs(20), || {
        bus.cli()
            .args(["pub", "cut", "again"])
            .output()
            .is_ok_and(|o| o.status.success())
    }));
    let daemon = bus.daemon().expect("daemon");
    assert!(daemon.try_wait().unwrap().is_none(), "shmbusd died");
}
