//! `shmbus::interrupt` against a parked subscriber, in a process of its
//! own: an interrupt is process-wide, so it would disturb the blocking
//! waits of unrelated tests sharing a test binary.

use std::time::Duration;

use shmbus::daemon::{SegmentPerms, TopicOwner};
use shmbus::{Error, SubscribeOptions, Subscriber, TopicConfig, WaitStrategy};

/// A topic on a bus of its own, whose segments are removed from /dev/shm
/// when the test ends, however it ends.
struct TestTopic {
    bus: String,
    _owner: TopicOwner,
}

impl TestTopic {
    fn new(tag: &str) -> TestTopic {
        let bus = format!("unit-{}-{tag}", std::process::id());
        let owner =
            TopicOwner::create(&bus, "t", &TopicConfig::default(), &SegmentPerms::default())
                .unwrap();
        TestTopic { bus, _owner: owner }
    }
}

impl Drop for TestTopic {
    fn drop(&mut self) {
        let _ = shmbus::daemon::remove_bus_segments(&self.bus);
    }
}

/// Finding 5 of the crash-safety review: an interrupt that lands just
/// before a park (where EINTR alone is lost) still ends the wait. A
/// storm of interrupts from another thread at random moments against a
/// subscriber that parks again after each one; the last one, sent after
/// the stop flag, must end its loop whatever moment it lands at. Before
/// `shmbus::interrupt` there was no way to do this without a lost wake.
#[test]
fn an_interrupt_storm_never_leaves_a_parked_subscriber_asleep() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    let topic = TestTopic::new("storm");
    let bus = topic.bus.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(AtomicU64::new(0));
    let (stop2, seen2, bus2) = (Arc::clone(&stop), Arc::clone(&seen), bus.clone());
    let (attached_tx, attached_rx) = std::sync::mpsc::channel();
    let parked = std::thread::spawn(move || {
        let mut sub = Subscriber::attach(
            &bus2,
            "t",
            SubscribeOptions {
                wait: WaitStrategy::Park,
                ..Default::default()
            },
        )
        .unwrap();
        attached_tx.send(()).unwrap();
        loop {
            match sub.recv() {
                Err(Error::Interrupted) if stop2.load(Ordering::SeqCst) => return,
                Err(Error::Interrupted) => {
                    seen2.fetch_add(1, Ordering::Relaxed);
                }
                other => panic!("unexpected {:?}", other.map(|m| m.seq)),
            }
        }
    });
    attached_rx.recv().unwrap();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..300 {
        shmbus::interrupt();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // 0-63 µs apart: some land mid-sleep, some between the
        // waiter's check and its sleep.
        std::thread::sleep(Duration::from_micros(x % 64));
    }
    stop.store(true, Ordering::SeqCst);
    shmbus::interrupt();
    parked.join().unwrap();
    assert!(seen.load(Ordering::Relaxed) > 0);
}

/// An interrupt that lands before the call, after the program's own check
/// of its stop flag (the window EINTR cannot close), is reported by the
/// next blocking receive, once.
#[test]
fn an_interrupt_just_before_recv_is_reported_by_it() {
    let topic = TestTopic::new("before");
    let mut sub = Subscriber::attach(&topic.bus, "t", SubscribeOptions::default()).unwrap();
    shmbus::interrupt(); // before the call: reported by it, not lost
    assert!(matches!(sub.recv(), Err(Error::Interrupted)));
    assert!(matches!(sub.try_recv(), Ok(None)));
}
