//! Multi-process stress and crash tests of the ring, on topics created by
//! the library directly (no daemon): real publisher and subscriber processes
//! (`shmbus-test-client`), payloads verified byte for byte, SIGKILL at the
//! two places that can wedge a ring (a slowest cursor, a claimed slot).

use std::time::Duration;

use nix::sys::signal::Signal;
use shmbus::daemon::{SegmentPerms, TopicOwner};
use shmbus::{Policy, Publisher, SubscribeOptions, Subscriber, TopicConfig};
use shmbus_tests::{mix, signal, unique_bus, wait_exit, wait_until, RemoveSegments, TestClient};

fn topic(bus: &str, name: &str, capacity: u64, policy: Policy, subs: u32) -> TopicOwner {
    let cfg = TopicConfig {
        capacity,
        max_msg_size: 512,
        policy,
        max_publishers: 8,
        max_subscribers: subs,
    };
    TopicOwner::create(bus, name, &cfg, &SegmentPerms::default()).expect("create topic")
}

/// Runs `pubs` publishers of `per_pub` messages each against `subs`
/// subscribers; returns the subscribers' JSON summaries.
fn run_stress(bus: &str, name: &str, pubs: u32, subs: u32, per_pub: u64) -> Vec<serde_json::Value> {
    let total = u64::from(pubs) * per_pub;
    let total_s = total.to_string();
    let started = std::time::Instant::now();
    let subscribers: Vec<TestClient> = (0..subs)
        .map(|_| TestClient::spawn(&["sub", bus, name, &total_s]))
        .collect();
    for s in &subscribers {
        assert_eq!(s.line(), "ready");
    }
    let per_pub_s = per_pub.to_string();
    let publishers: Vec<TestClient> = (0..pubs)
        .map(|id| TestClient::spawn(&["pub", bus, name, &id.to_string(), &per_pub_s]))
        .collect();
    for p in publishers {
        assert_eq!(p.line(), "ready");
        assert_eq!(p.finish(), format!("published {per_pub}"));
    }
    let summaries: Vec<serde_json::Value> = subscribers
        .into_iter()
        .map(|s| serde_json::from_str(&s.finish()).expect("summary is JSON"))
        .collect();
    // Shown with --nocapture: what the run measured.
    eprintln!(
        "{name}: {pubs} publishers x {subs} subscribers, {total} messages in {:?}: {summaries:?}",
        started.elapsed()
    );
    summaries
}

#[test]
fn block_every_subscriber_gets_every_message_in_order() {
    let bus = unique_bus("stressblock");
    let _cleanup = RemoveSegments(bus.clone());
    let owner = topic(&bus, "load", 256, Policy::Block, 8);
    let (pubs, subs, per_pub) = (2u32, 3u32, 100_000u64);
    let summaries = run_stress(&bus, "load", pubs, subs, per_pub);
    let want_sum = (0..pubs)
        .flat_map(|id| (0..per_pub).map(move |k| mix(u64::from(id) << 48 ^ k)))
        .fold(0u64, u64::wrapping_add);
    for s in &summaries {
        assert_eq!(s["errors"], serde_json::json!([]), "{s}");
        assert_eq!(s["delivered"], u64::from(pubs) * per_pub, "{s}");
        assert_eq!(s["lost"], 0, "{s}");
        assert_eq!(s["first_seq"], 0, "{s}");
        assert_eq!(s["checksum"], want_sum, "{s}");
        for id in 0..pubs {
            assert_eq!(
                s["per_pub"][id.to_string()],
                serde_json::json!([per_pub, per_pub - 1]),
                "{s}"
            );
        }
    }
    let stats = owner.stats();
    assert_eq!(stats.published, u64::from(pubs) * per_pub);
    assert_eq!(stats.abandoned, 0);
    owner.unlink().expect("unlink");
}

#[test]
fn drop_oldest_delivered_plus_lost_is_published() {
    let bus = unique_bus("stressdrop");
    let _cleanup = RemoveSegments(bus.clone());
    // A small ring so that subscribers on a 2-core machine really are lapped.
    let owner = topic(&bus, "load", 64, Policy::DropOldest, 8);
    let (pubs, subs, per_pub) = (2u32, 2u32, 100_000u64);
    let summaries = run_stress(&bus, "load", pubs, subs, per_pub);
    for s in &summaries {
        assert_eq!(s["errors"], serde_json::json!([]), "{s}");
        let delivered = s["delivered"].as_u64().unwrap();
        let lost = s["lost"].as_u64().unwrap();
        assert_eq!(delivered + lost, u64::from(pubs) * per_pub, "{s}");
        assert_eq!(s["next_seq"], u64::from(pubs) * per_pub, "{s}");
    }
    assert_eq!(owner.stats().published, u64::from(pubs) * per_pub);
    owner.unlink().expect("unlink");
}

#[test]
fn killed_slowest_subscriber_is_reaped_and_publishers_go_on() {
    let bus = unique_bus("killsub");
    let _cleanup = RemoveSegments(bus.clone());
    let owner = topic(&bus, "t", 16, Policy::Block, 4);
    let mut idle = TestClient::spawn(&["idle-sub", &bus, "t"]);
    assert_eq!(idle.line(), "ready");
    let mut live = Subscriber::attach(&bus, "t", SubscribeOptions::default()).unwrap();
    let mut p = Publisher::attach(&bus, "t").unwrap();
    // Fill the ring: the idle subscriber holds the slowest cursor.
    for k in 0..16u64 {
        p.try_send(&k.to_le_bytes()).unwrap();
        assert_eq!(live.try_recv().unwrap().unwrap().data, k.to_le_bytes());
    }
    assert!(matches!(p.try_send(b"x"), Err(shmbus::Error::Full)));
    let before = owner.stats();
    assert_eq!(before.subscribers, 2);
    let laggard = before
        .subscriber_stats
        .iter()
        .find(|s| s.pid == idle.child.id());
    assert_eq!(laggard.map(|s| s.lag), Some(16), "{before:?}");

    signal(&idle.child, Signal::SIGKILL);
    wait_exit(&mut idle.child, Duration::from_secs(10));
    let mut reaped = shmbus::daemon::ReapReport::default();
    assert!(wait_until(Duration::from_secs(10), || {
        let r = owner.reap();
        reaped.subscribers += r.subscribers;
        reaped.subscribers > 0
    }));
    assert_eq!(reaped.subscribers, 1);
    // The ring has room again and the live subscriber gets what follows.
    for k in 16..48u64 {
        p.send_timeout(&k.to_le_bytes(), Duration::from_secs(30))
            .unwrap();
        assert_eq!(live.try_recv().unwrap().unwrap().data, k.to_le_bytes());
    }
    let after = owner.stats();
    assert_eq!(after.subscribers, 1);
    assert_eq!(after.reaped_subscribers, 1);
}

#[test]
fn killed_publisher_mid_write_is_reaped_and_subscribers_skip_its_slot() {
    let bus = unique_bus("killpub");
    let _cleanup = RemoveSegments(bus.clone());
    let owner = topic(&bus, "t", 16, Policy::Block, 4);
    let mut s = Subscriber::attach(&bus, "t", SubscribeOptions::default()).unwrap();
    // A process claims sequence 0, starts writing, and is parked there (a
    // loan is exactly claim + begin-write without the commit).
    let mut holder = TestClient::spawn(&["hold-loan", &bus, "t"]);
    assert_eq!(holder.line(), "loaned 0");
    let mut p = Publisher::attach(&bus, "t").unwrap();
    for k in 1..=3u64 {
        assert_eq!(p.try_send(&k.to_le_bytes()).unwrap(), k);
    }
    // Sequence 0 is being written: nothing is readable past it yet.
    assert!(s.try_recv().unwrap().is_none());
    assert!(matches!(
        s.recv_timeout(Duration::from_millis(50)),
        Err(shmbus::Error::Timeout)
    ));

    signal(&holder.child, Signal::SIGKILL);
    wait_exit(&mut holder.child, Duration::from_secs(10));
    let mut report = shmbus::daemon::ReapReport::default();
    assert!(wait_until(Duration::from_secs(10), || {
        let r = owner.reap();
        report.publishers += r.publishers;
        report.abandoned_slots += r.abandoned_slots;
        report.publishers > 0
    }));
    assert_eq!(report.abandoned_slots, 1);
    // The subscriber skips the abandoned slot and reads 1, 2, 3 in order.
    for k in 1..=3u64 {
        let m = s.recv_timeout(Duration::from_secs(30)).unwrap();
        assert_eq!((m.seq, m.data), (k, &k.to_le_bytes()[..]));
    }
    assert_eq!(s.skipped(), 1);
    let stats = owner.stats();
    assert_eq!(stats.abandoned, 1);
    assert_eq!(stats.reaped_publishers, 1);
    assert_eq!(stats.publishers, 1);
}
