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

/// CPU seconds (user + system) process `pid` has used, from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read stat");
    // Fields after the command, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// Many patterns and many topics: 100 pattern subscriptions, then 1 000
/// topics born under them (10 per subscription). Each subscription follows
/// exactly its 10 topics and gets their first messages; the idle daemon
/// then uses almost no CPU (it is woken by its reap tick only). The time
/// the creations took is printed, not asserted.
#[test]
fn a_thousand_topics_under_a_hundred_patterns() {
    let mut bus = TestBus::new("pat-many");
    let config = bus.dir().join("small.toml");
    std::fs::write(
        &config,
        "[defaults]\ncapacity = 8\nmax_msg_size = 64\npolicy = \"block\"\n",
    )
    .unwrap();
    bus.start_daemon_with(&["--config", config.to_str().unwrap()]);
    let daemon_pid = bus.daemon().unwrap().id();
    let client = bus.client();
    let mut subs: Vec<_> = (0..100)
        .map(|g| {
            client
                .subscribe_pattern(&format!("load/g{g}/*"), SubscribeOptions::default())
                .unwrap()
        })
        .collect();
    let started = std::time::Instant::now();
    let mut pubs = Vec::new();
    for g in 0..100 {
        for k in 0..10 {
            let topic = format!("load/g{g}/t{k}");
            let mut p = client.publisher(&topic).unwrap();
            p.send(topic.as_bytes()).unwrap();
            pubs.push(p);
        }
    }
    println!(
        "1 000 topics created (and published once) under 100 pattern subscriptions in {:?}",
        started.elapsed()
    );
    for (g, sub) in subs.iter_mut().enumerate() {
        let mut got: Vec<String> = (0..10)
            .map(|_| {
                let m = sub.recv_timeout(LIMIT).unwrap();
                assert_eq!(m.topic.as_bytes(), m.data);
                m.topic.to_string()
            })
            .collect();
        got.sort();
        let mut want: Vec<String> = (0..10).map(|k| format!("load/g{g}/t{k}")).collect();
        want.sort();
        assert_eq!(got, want);
        assert!(sub.try_recv().unwrap().is_none());
        assert_eq!(sub.topics().count(), 10);
    }
    let before = cpu_seconds(daemon_pid);
    std::thread::sleep(Duration::from_secs(2));
    let idle = cpu_seconds(daemon_pid) - before;
    println!("idle daemon with 1 000 topics and 100 pattern subscriptions: {idle:.3} CPU-s in 2 s");
    // Near zero: a busy loop would use about 2 CPU-s here.
    assert!(idle < 0.5, "the idle daemon used {idle:.3} CPU-s in 2 s");
}

/// The CLI: `shmbus sub -v 'x/**' exact` prints every message of topics born
/// after it started, with their topic, and `shmbus stats` lists it with its
/// patterns and the topics it covers.
#[test]
fn the_cli_follows_patterns_and_stats_shows_them() {
    let mut bus = TestBus::new("pat-cli");
    bus.start_daemon();
    let sub = bus
        .cli()
        .args(["sub", "-v", "x/**", "solo", "-c", "6"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let client = bus.client();
    assert!(wait_until(LIMIT, || client
        .pattern_subscribers()
        .is_ok_and(|w| w.len() == 1)));
    for args in [
        &["pub", "x/1", "a", "b", "c"][..],
        &["pub", "x/2/deep", "d"],
        &["pub", "solo", "s"],
    ] {
        let out = run_with_input(bus.cli().args(args), b"", LIMIT);
        assert!(out.status.success(), "{out:?}");
    }
    let out = run_with_input(bus.cli().args(["stats", "--interval", "10ms"]), b"", LIMIT);
    let stats = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(stats.contains("PATTERN SUBSCRIBERS"), "{stats}");
    assert!(stats.contains("x/** solo"), "{stats}");
    assert!(stats.contains("solo x/1 x/2/deep"), "{stats}");
    let out = run_with_input(bus.cli().args(["pub", "solo", "s2"]), b"", LIMIT);
    assert!(out.status.success(), "{out:?}");
    let out = sub.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let mut lines: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    assert_eq!(
        lines,
        ["solo s", "solo s2", "x/1 a", "x/1 b", "x/1 c", "x/2/deep d"]
    );
}
