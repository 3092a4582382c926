//! Pattern subscriptions against a real daemon and real publishing
//! processes: topics born after the subscription lose no message whatever
//! the timing, patterns match only what they say, a removed topic ends
//! alone, and a killed pattern subscriber holds no publisher back.

use std::collections::BTreeMap;
use std::process::{Child, Stdio};
use std::time::Duration;

use shmbus::{Error, SubscribeOptions};
use shmbus_tests::{run_with_input, wait_until, TestBus};

const LIMIT: Duration = Duration::from_secs(60);

/// `shmbus pub TOPIC m0 m1 ...` as a separate process (not waited for).
fn spawn_pub(bus: &TestBus, topic: &str, n: usize) -> Child {
    let msgs: Vec<String> = (0..n).map(|i| format!("{topic}#{i}")).collect();
    bus.cli()
        .arg("pub")
        .arg(topic)
        .args(&msgs)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn shmbus pub")
}

/// Receives until `want` messages arrived in total; returns them per topic.
fn collect(sub: &mut shmbus::PatternSubscriber, want: usize) -> BTreeMap<String, Vec<String>> {
    let mut got: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut total = 0;
    while total < want {
        match sub.recv_timeout(LIMIT) {
            Ok(m) => {
                got.entry(m.topic.to_string())
                    .or_default()
                    .push(String::from_utf8_lossy(m.data).into_owned());
                total += 1;
            }
            Err(e) => panic!(
                "after {total} of {want} messages: {e} (topic {:?})",
                sub.last_topic()
            ),
        }
    }
    got
}

/// The case: a pattern subscriber first, then 50 topics each created
/// and at once published 100 messages by a separate process. Every message
/// arrives, in order per topic, whatever the creation timing. (Before
/// pattern subscriptions joined topics at their birth, a subscriber that
/// found a topic by listing it joined at its tail and lost what came
/// first.)
#[test]
fn topics_born_after_the_subscription_lose_nothing() {
    let mut bus = TestBus::new("pat-born");
    bus.start_daemon();
    let client = bus.client();
    let mut sub = client
        .subscribe_pattern("burst/*", SubscribeOptions::default())
        .unwrap();
    let mut pubs = Vec::new();
    for t in 0..50 {
        pubs.push(spawn_pub(&bus, &format!("burst/t{t}"), 100));
        if pubs.len() == 10 {
            for mut p in pubs.drain(..) {
                assert!(p.wait().unwrap().success());
            }
        }
    }
    for mut p in pubs {
        assert!(p.wait().unwrap().success());
    }
    let got = collect(&mut sub, 5000);
    assert_eq!(got.len(), 50);
    for (topic, msgs) in got {
        let want: Vec<String> = (0..100).map(|i| format!("{topic}#{i}")).collect();
        assert_eq!(msgs, want, "{topic}");
    }
    assert!(sub.try_recv().unwrap().is_none());
}

/// Topics that existed before the subscription are joined at their tail,
/// or at their oldest retained message with `from_start`.
#[test]
fn existing_topics_are_joined_at_the_tail_or_from_start() {
    let mut bus = TestBus::new("pat-old");
    bus.start_daemon();
    let out = run_with_input(bus.cli().args(["pub", "old/a", "early"]), b"", LIMIT);
    assert!(out.status.success(), "{out:?}");
    let client = bus.client();
    let mut tail = client
        .subscribe_pattern("old/*", SubscribeOptions::default())
        .unwrap();
    let mut history = client
        .subscribe_pattern(
            "old/**",
            SubscribeOptions {
                from_start: true,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(tail.topics().collect::<Vec<_>>(), ["old/a"]);
    let out = run_with_input(bus.cli().args(["pub", "old/a", "late"]), b"", LIMIT);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(tail.recv_timeout(LIMIT).unwrap().data, b"late");
    assert_eq!(history.recv_timeout(LIMIT).unwrap().data, b"early");
    assert_eq!(history.recv_timeout(LIMIT).unwrap().data, b"late");
}

/// `*` is one segment and `**` any depth, on whole segments only; exact
/// names and patterns mix; invalid patterns are refused with the rule.
#[test]
fn patterns_match_only_what_they_say() {
    let mut bus = TestBus::new("pat-match");
    bus.start_daemon();
    let client = bus.client();
    let mut one = client
        .subscribe_pattern("a/*", SubscribeOptions::default())
        .unwrap();
    let mut deep = client
        .subscribe_patterns(["a/**", "exact/name"], SubscribeOptions::default())
        .unwrap();
    for topic in ["a/b/c", "ab/c", "a/b", "exact/name", "exact/name/x", "a"] {
        let out = run_with_input(bus.cli().args(["pub", topic, topic]), b"", LIMIT);
        assert!(out.status.success(), "{out:?}");
    }
    let mut seen_one = Vec::new();
    while let Ok(m) = one.recv_timeout(Duration::from_millis(500)) {
        seen_one.push(m.topic.to_string());
    }
    assert_eq!(seen_one, ["a/b"]);
    let mut seen_deep = Vec::new();
    while let Ok(m) = deep.recv_timeout(Duration::from_millis(500)) {
        seen_deep.push(m.topic.to_string());
    }
    seen_deep.sort();
    assert_eq!(seen_deep, ["a", "a/b", "a/b/c", "exact/name"]);

    for (bad, rule) in [("a*", "whole segments"), ("a//*", "empty segment")] {
        let e = client
            .subscribe_pattern(bad, SubscribeOptions::default())
            .unwrap_err();
        assert!(matches!(e, Error::InvalidName { .. }), "{e}");
        assert!(e.to_string().contains(rule), "{e}");
    }
}

/// A removed topic ends for itself alone: its messages are delivered, the
/// other topics go on, and a topic created again under its name is joined
/// at its birth.
#[test]
fn a_removed_topic_ends_alone() {
    let mut bus = TestBus::new("pat-rm");
    bus.start_daemon();
    let client = bus.client();
    let mut sub = client
        .subscribe_pattern("rm/*", SubscribeOptions::default())
        .unwrap();
    for (topic, msg) in [("rm/x", "x1"), ("rm/y", "y1")] {
        let out = run_with_input(bus.cli().args(["pub", topic, msg]), b"", LIMIT);
        assert!(out.status.success(), "{out:?}");
    }
    let got = collect(&mut sub, 2);
    assert_eq!(got.len(), 2);
    client.remove_topic("rm/x").unwrap();
    let out = run_with_input(bus.cli().args(["pub", "rm/y", "y2"]), b"", LIMIT);
    assert!(out.status.success(), "{out:?}");
    let m = sub.recv_timeout(LIMIT).unwrap();
    assert_eq!((m.topic, m.data), ("rm/y", &b"y2"[..]));
    assert!(wait_until(LIMIT, || {
        let _ = sub.try_recv();
        sub.topics().collect::<Vec<_>>() == ["rm/y"]
    }));
    let out = run_with_input(bus.cli().args(["pub", "rm/x", "x-again"]), b"", LIMIT);
    assert!(out.status.success(), "{out:?}");
    let m = sub.recv_timeout(LIMIT).unwrap();
    assert_eq!((m.topic, m.data), ("rm/x", &b"x-again"[..]));
}

/// A pattern subscriber SIGKILLed while it follows topics it joined both
/// ways (listed at the start, and held for it at their birth) is reaped from
/// every one of them: publishers on their 8-slot `block` rings go on.
#[test]
fn a_killed_pattern_subscriber_holds_no_publisher_back() {
    let mut bus = TestBus::new("pat-kill");
    bus.start_daemon();
    let create = |topic: &str| {
        let out = run_with_input(
            bus.cli()
                .args(["create", topic, "--capacity", "8", "--policy", "block"]),
            b"",
            LIMIT,
        );
        assert!(out.status.success(), "{out:?}");
    };
    create("k/listed");
    let rundir = bus.runtime_dir.display().to_string();
    let victim =
        shmbus_tests::TestClient::ready(&["pattern-sub", &rundir, &bus.name, "k/*", "1000000"]);
    create("k/born");
    // Both topics count the victim among their subscribers.
    bus.wait_subscribers("k/listed", 1);
    bus.wait_subscribers("k/born", 1);
    drop(victim); // SIGKILL
    for topic in ["k/listed", "k/born"] {
        let out = shmbus_tests::TestClient::ready(&["pub", &bus.name, topic, "1", "200"]).finish();
        assert_eq!(out, "published 200", "{topic}");
    }
}
