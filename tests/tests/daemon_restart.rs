//! End-to-end tests of a daemon restart: a SIGKILLed `shmbusd` leaves its
//! segments; attached clients keep exchanging messages without it; the next
//! daemon validates and adopts them (nothing lost) and removes what fails
//! validation or belongs to no topic.

use std::process::Stdio;
use std::time::Duration;

use shmbus::names::{segment_name, Part};
use shmbus::{SubscribeOptions, TopicConfig};
use shmbus_tests::{line_channel, wait_exit, wait_for_line, TestBus};

const WAIT: Duration = Duration::from_secs(30);

fn recv_text(s: &mut shmbus::Subscriber) -> (u64, String) {
    let m = s.recv_timeout(WAIT).expect("receive");
    (m.seq, String::from_utf8(m.data.to_vec()).unwrap())
}

#[test]
fn killed_daemon_is_not_needed_by_attached_clients_and_its_successor_adopts_everything() {
    let mut bus = TestBus::new("adopt");
    bus.start_daemon();
    let api = bus.client();
    let cfg = TopicConfig {
        capacity: 64,
        max_msg_size: 128,
        ..TopicConfig::default()
    };
    api.create_topic("keep", &cfg).expect("create");
    let mut publisher = api.publisher("keep").expect("publisher");
    let mut subscriber = api
        .subscriber("keep", SubscribeOptions::default())
        .expect("subscriber");
    // A CLI subscriber in its own process, attached across the restart.
    let mut cli_sub = bus
        .cli()
        .args(["sub", "keep", "-c", "30"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn shmbus sub");
    let cli_lines = line_channel(cli_sub.stdout.take().unwrap());
    bus.wait_subscribers("keep", 2);

    for i in 0..10 {
        publisher.send(format!("before {i}").as_bytes()).unwrap();
    }
    bus.kill_daemon();
    // No daemon: the data path does not need one.
    for i in 0..10 {
        publisher.send(format!("during {i}").as_bytes()).unwrap();
    }
    for i in 0..10 {
        assert_eq!(recv_text(&mut subscriber), (i, format!("before {i}")));
    }
    assert!(!bus.shm_files().is_empty());

    let log = bus.start_daemon_logged(&[]);
    let line = wait_for_line(&log, "adopted topic `keep`", WAIT).expect("not adopted");
    assert!(line.contains("20 messages published"), "{line}");
    for i in 0..10 {
        publisher.send(format!("after {i}").as_bytes()).unwrap();
    }
    // The messages published while no daemon ran, and after, all arrive in
    // order with consecutive sequence numbers.
    for i in 0..10 {
        assert_eq!(recv_text(&mut subscriber), (10 + i, format!("during {i}")));
    }
    for i in 0..10 {
        assert_eq!(recv_text(&mut subscriber), (20 + i, format!("after {i}")));
    }
    let status = wait_exit(&mut cli_sub, WAIT);
    assert!(status.success(), "shmbus sub: {status}");
    // Its output may still be in the reader thread: read to end of stream.
    let got: Vec<String> = std::iter::from_fn(|| cli_lines.recv_timeout(WAIT).ok()).collect();
    let want: Vec<String> = ["before", "during", "after"]
        .iter()
        .flat_map(|w| (0..10).map(move |i| format!("{w} {i}")))
        .collect();
    assert_eq!(got, want);

    // The adopted topic kept its settings and its history, and new clients
    // open it through the new daemon.
    let api = bus.client();
    let info = &api.topics().unwrap()[0];
    assert_eq!((info.topic.as_str(), &info.config), ("keep", &cfg));
    assert_eq!(info.published, 30);
    let out = bus
        .cli()
        .args(["sub", "keep", "--from-start", "-c", "30"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 30);
    let out = bus
        .cli()
        .args(["pub", "keep", "from a new publisher"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        recv_text(&mut subscriber),
        (30, "from a new publisher".to_string())
    );
}

#[test]
fn restart_removes_segments_that_fail_validation_or_belong_to_no_topic() {
    let mut bus = TestBus::new("corrupt");
    bus.start_daemon();
    let out = bus
        .cli()
        .args(["create", "good", "--capacity", "8"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let out = bus
        .cli()
        .args(["pub", "good", "a", "b", "c"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    bus.kill_daemon();

    let shm = |topic: &str, part: Part| {
        std::path::Path::new("/dev/shm").join(segment_name(&bus.name, topic, part))
    };
    // Garbage with a valid name.
    std::fs::write(shm("bad", Part::Data), vec![0x5a; 8192]).unwrap();
    std::fs::write(shm("bad", Part::Subs), vec![0x5a; 4096]).unwrap();
    // A real header cut short.
    let good = std::fs::read(shm("good", Part::Data)).unwrap();
    std::fs::write(shm("cut", Part::Data), &good[..good.len() / 2]).unwrap();
    std::fs::copy(shm("good", Part::Subs), shm("cut", Part::Subs)).unwrap();
    // A subs segment whose data segment is gone.
    std::fs::write(shm("lonely", Part::Subs), vec![0; 4096]).unwrap();
    assert_eq!(bus.shm_files().len(), 7, "{:?}", bus.shm_files());

    let log = bus.start_daemon_logged(&[]);
    assert!(wait_for_line(&log, "adopted topic `good`", WAIT).is_some());
    let mut files = bus.shm_files();
    files.sort();
    let mut want = vec![
        segment_name(&bus.name, "good", Part::Data),
        segment_name(&bus.name, "good", Part::Subs),
    ];
    want.sort();
    assert_eq!(files, want);
    let topics: Vec<String> = bus
        .client()
        .topics()
        .unwrap()
        .into_iter()
        .map(|t| t.topic)
        .collect();
    assert_eq!(topics, ["good"]);
    let out = bus
        .cli()
        .args(["sub", "good", "--from-start", "-c", "3"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "a\nb\nc\n");
    // The removed names are free again: a client can have them created.
    let out = bus.cli().args(["pub", "bad", "fresh"]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn segments_removed_behind_the_daemons_back_close_the_topic_and_it_comes_back() {
    let mut bus = TestBus::new("vanish");
    let config = bus.dir().join("shmbusd.toml");
    std::fs::write(&config, "[[topic]]\nname = \"listed\"\ncapacity = 8\n").unwrap();
    let log = bus.start_daemon_logged(&["--config", config.to_str().unwrap()]);
    let out = bus.cli().args(["pub", "adhoc", "old"]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let mut sub = bus
        .cli()
        .args(["sub", "adhoc"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn shmbus sub");
    bus.wait_subscribers("adhoc", 1);

    // What systemd-logind's RemoveIPC does at logout.
    for f in bus.shm_files() {
        std::fs::remove_file(std::path::Path::new("/dev/shm").join(f)).unwrap();
    }
    let line = wait_for_line(&log, "removed from /dev/shm by someone else", WAIT)
        .expect("vanished segments not noticed");
    assert!(line.contains("topic `"), "{line}");
    // The stranded subscriber is told the topic is closed.
    let status = wait_exit(&mut sub, WAIT);
    assert!(status.success(), "shmbus sub: {status}");
    // The config's topic is back at once; the other on its next open.
    let listed = segment_name(&bus.name, "listed", Part::Data);
    assert!(shmbus_tests::wait_until(WAIT, || bus
        .shm_files()
        .contains(&listed)));
    let out = bus.cli().args(["pub", "adhoc", "new"]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let info = bus.client().topics().unwrap();
    let adhoc = info.iter().find(|t| t.topic == "adhoc").expect("adhoc");
    assert_eq!(adhoc.published, 1, "not a fresh topic: {adhoc:?}");
}
