//! Export: local topics matching `--export` patterns, read by one thread
//! and put to Zenoh in sequence order, each sample tagged with this
//! bridge's origin (see [`crate::tag`]).
//!
//! One thread drains what is ready on every exported topic, and when
//! nothing is, sleeps on all of them at once (`shmbus::wait_any`). It does
//! not spin first: spinning was measured on the 2-core development host
//! and did not pay (2 000 rounds, the library's `SpinThenPark` budget, made
//! the round trip slower — the spinning exporter takes the core that the
//! publisher or Zenoh's threads need; 100 rounds made no measurable
//! difference; see `docs/bridge.md`, *Benchmark*). It polls the daemon's
//! topic list every `--poll-ms` for topics that appear later (or come back
//! after removal).
//! Puts use Zenoh's `Block` congestion control: when the network or the
//! remote side is slow, the put waits, this thread stops reading, and the
//! local topic's own policy decides — `block` topics hold their publishers
//! back, `drop-oldest` topics overwrite, and the exporter's `Lagged(n)` is
//! sent on as a jump of `n` in the tag's count so the importer reports the
//! loss.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shmbus::{Bus, Error, SubscribeOptions, Subscriber};
use tracing::{debug, info, warn};
use zenoh::qos::CongestionControl;
use zenoh::Wait;

use crate::own::OwnPublished;
use crate::pattern::{any_matches, TopicPattern};
use crate::stats::Stats;
use crate::tag::Tag;

/// Longest one wait for local messages lasts, so the thread notices the
/// stop flag and its discovery deadline.
const WAIT_SLICE: Duration = Duration::from_millis(100);

/// Most messages taken from one topic before the others get a turn.
const BURST: usize = 256;

/// What the export thread needs.
pub struct Exporter {
    /// The local bus.
    pub bus: Bus,
    /// The Zenoh session.
    pub session: zenoh::Session,
    /// `--export` patterns.
    pub patterns: Vec<TopicPattern>,
    /// `--key-prefix`.
    pub key_prefix: String,
    /// This bridge's origin id (stable per host and bus).
    pub origin: u64,
    /// This bridge process's random instance id.
    pub instance: u64,
    /// Sequence numbers the importer published (not to be sent back).
    pub own: Arc<OwnPublished>,
    /// Counters.
    pub stats: Arc<Stats>,
    /// Set when the bridge shuts down.
    pub stop: Arc<AtomicBool>,
    /// Topic discovery period.
    pub poll_interval: Duration,
}

/// One exported topic. Survives the topic's removal (the subscriber goes,
/// the count stays), so a re-created topic continues the same count.
struct Exported {
    sub: Option<Subscriber>,
    publisher: zenoh::pubsub::Publisher<'static>,
    /// The count the next message gets.
    next_count: u64,
    /// Whether a failure to subscribe was already logged (no log spam).
    attach_warned: bool,
}

impl Exporter {
    /// Runs until the stop flag is set.
    pub fn run(self) {
        let mut topics: HashMap<String, Exported> = HashMap::new();
        let mut next_poll = Instant::now();
        let mut list_warned = false;
        while !self.stop.load(Ordering::Relaxed) {
            if Instant::now() >= next_poll {
                self.discover(&mut topics, &mut list_warned);
                next_poll = Instant::now() + self.poll_interval;
            }
            let mut sent = 0;
            for (topic, t) in topics.iter_mut() {
                sent += self.drain(topic, t);
            }
            // Only an idle round sleeps: a burst cut short by `BURST`
            // comes straight back.
            if sent > 0 {
                continue;
            }
            let subs: Vec<&Subscriber> = topics.values().filter_map(|t| t.sub.as_ref()).collect();
            if subs.is_empty() {
                std::thread::sleep(WAIT_SLICE.min(self.poll_interval));
                continue;
            }
            let slice = WAIT_SLICE.min(next_poll.saturating_duration_since(Instant::now()));
            match shmbus::wait_any(&subs, Some(slice)) {
                Ok(()) | Err(Error::Timeout) | Err(Error::Interrupted) => {}
                Err(e) => {
                    warn!("waiting on exported topics failed: {e}");
                    std::thread::sleep(WAIT_SLICE);
                }
            }
        }
    }

    /// Subscribes to matching topics not yet exported (or whose subscriber
    /// ended with the topic's removal).
    fn discover(&self, topics: &mut HashMap<String, Exported>, list_warned: &mut bool) {
        let list = match self.bus.topics() {
            Ok(list) => {
                *list_warned = false;
                list
            }
            Err(e) => {
                // The daemon is needed only to find new topics: the
                // attached subscribers keep working without it.
                if !*list_warned {
                    warn!("cannot list the topics of bus `{}`: {e}; exporting the topics already attached", self.bus.name());
                    *list_warned = true;
                }
                return;
            }
        };
        for info in list {
            let topic = info.topic;
            if !any_matches(&self.patterns, &topic) {
                continue;
            }
            if !topics.contains_key(&topic) {
                let key = format!("{}/{}", self.key_prefix, topic);
                let publisher = match self
                    .session
                    .declare_publisher(key.clone())
                    .congestion_control(CongestionControl::Block)
                    .wait()
                {
                    Ok(p) => p,
                    Err(e) => {
                        warn!("cannot declare the Zenoh publisher of `{key}`: {e}");
                        continue;
                    }
                };
                topics.insert(
                    topic.clone(),
                    Exported {
                        sub: None,
                        publisher,
                        next_count: 0,
                        attach_warned: false,
                    },
                );
            }
            let t = topics.get_mut(&topic).expect("inserted above");
            if t.sub.is_some() {
                continue;
            }
            match self.bus.subscriber(&topic, SubscribeOptions::default()) {
                Ok(sub) => {
                    info!("exporting `{topic}` as `{}/{topic}`", self.key_prefix);
                    t.sub = Some(sub);
                    t.attach_warned = false;
                }
                Err(e) => {
                    if !t.attach_warned {
                        warn!("cannot subscribe to `{topic}` for export: {e}");
                        t.attach_warned = true;
                    }
                }
            }
        }
    }

    /// Sends what `t`'s subscriber has ready, up to a burst; returns how
    /// many messages it read (sent, or skipped as this bridge's own).
    fn drain(&self, topic: &str, t: &mut Exported) -> usize {
        let Some(sub) = t.sub.as_mut() else { return 0 };
        for read in 0..BURST {
            match sub.try_recv() {
                Ok(Some(msg)) => {
                    if self.own.take_if_own(topic, msg.seq) {
                        Stats::add(&self.stats.echo_skipped, 1);
                        continue;
                    }
                    let tag = Tag {
                        origin: self.origin,
                        instance: self.instance,
                        count: t.next_count,
                        seq: msg.seq,
                    };
                    t.next_count += 1;
                    // The payload is copied once, from the subscriber's
                    // buffer into the `ZBytes` (Zenoh's public API takes
                    // owned buffers: a `Vec` in an `Arc`); the tag goes in
                    // by value (a fixed-size array: one `Arc`, no `Vec`).
                    // Zenoh then serializes both into its batch.
                    let put = t.publisher.put(msg.data).attachment(tag.encode()).wait();
                    match put {
                        Ok(()) => Stats::add(&self.stats.exported, 1),
                        Err(e) => {
                            Stats::add(&self.stats.export_errors, 1);
                            debug!("put of `{topic}` #{} failed: {e}", msg.seq);
                        }
                    }
                }
                Ok(None) => return read,
                Err(Error::Lagged(n)) => {
                    // The importer learns of it as a jump in the count.
                    t.next_count += n;
                    Stats::add(&self.stats.export_lagged, n);
                    warn!("export of `{topic}` lagged: {n} local messages were overwritten before the bridge read them");
                }
                Err(Error::Closed) => {
                    info!("`{topic}` was closed; exporting it again if it comes back");
                    t.sub = None;
                    self.own.forget(topic);
                    return read;
                }
                Err(e) => {
                    warn!("reading `{topic}` for export failed: {e}");
                    return read;
                }
            }
        }
        BURST
    }
}
