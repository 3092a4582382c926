//! Export: local topics matching `--export` patterns, read by one thread
//! and put to Zenoh in sequence order, each sample tagged with this
//! bridge's origin (see [`crate::tag`]).
//!
//! One thread drains what is ready on every exported topic, and when
//! nothing is, sleeps on all of them at once. The topics come from one
//! pattern subscription ([`shmbus::PatternSubscriber`]) on the `--export`
//! patterns: a topic created after the bridge started is joined at its
//! birth, by the daemon, so its first messages cross too (or, if the
//! daemon restarted meanwhile, their loss is counted). The thread does not
//! spin before it sleeps: spinning was measured on the 2-core development
//! host and did not pay (2 000 rounds, the library's `SpinThenPark`
//! budget, made the round trip slower — the spinning exporter takes the
//! core that the publisher or Zenoh's threads need; 100 rounds made no
//! measurable difference; see `docs/bridge.md`, *Benchmark*).
//! With `--batch` a topic's ready messages go as frames, several messages
//! in one sample (see [`crate::tag::FrameTag`]): only what is ready when the
//! thread looks, so a lone message still leaves at once.
//! Puts use Zenoh's `Block` congestion control: when the network or the
//! remote side is slow, the put waits, this thread stops reading, and the
//! local topic's own policy decides — `block` topics hold their publishers
//! back, `drop-oldest` topics overwrite, and the exporter's `Lagged(n)` is
//! sent on as a jump of `n` in the tag's count so the importer reports the
//! loss.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use shmbus::{Bus, Error, Pattern, PatternSubscriber, SubscribeOptions, Subscriber, WaitStrategy};
use tracing::{debug, info, warn};
use zenoh::bytes::ZBytes;
use zenoh::qos::CongestionControl;
use zenoh::Wait;

use crate::own::OwnPublished;
use crate::stats::Stats;
use crate::tag::{push_record, FrameTag, Tag, RECORD_HEADER};

/// Longest one wait for local messages lasts, so the thread notices the
/// stop flag.
const WAIT_SLICE: Duration = Duration::from_millis(100);

/// Most messages taken from one topic before the others get a turn.
const BURST: usize = 256;

/// Payload bytes (records included) beyond which a frame is sent and a new
/// one started. Well under Zenoh's 64 KiB transport batch, so a frame is
/// not fragmented; a single larger message goes as a frame of its own.
const FRAME_BYTES: usize = 16 * 1024;

/// The frame being filled by [`Exporter::drain`] with `--batch`: the
/// records so far, and what its tag will say of them.
#[derive(Default)]
struct Frame {
    buf: Vec<u8>,
    count: u64,
    first_seq: u64,
    last_seq: u64,
    n: u32,
}

impl Frame {
    /// Counts the record just pushed: the message numbered `count`, local
    /// sequence number `seq`.
    fn add(&mut self, count: u64, seq: u64) {
        if self.n == 0 {
            self.count = count;
            self.first_seq = seq;
        }
        self.n += 1;
        self.last_seq = seq;
    }
}

/// What the export thread needs.
pub struct Exporter {
    /// The local bus.
    pub bus: Bus,
    /// The Zenoh session.
    pub session: zenoh::Session,
    /// `--export` patterns.
    pub patterns: Vec<Pattern>,
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
    /// `--batch`: send what is ready of a topic as frames.
    pub batch: bool,
}

/// One exported topic. Survives the topic's removal, so a re-created topic
/// continues the same count.
struct Exported {
    publisher: zenoh::pubsub::Publisher<'static>,
    /// The count the next message gets.
    next_count: u64,
}

impl Exporter {
    /// Runs until the stop flag is set.
    pub fn run(self) {
        let Some(mut subs) = self.subscribe() else {
            return;
        };
        let mut topics: HashMap<String, Exported> = HashMap::new();
        while !self.stop.load(Ordering::Relaxed) {
            for topic in subs.take_ended() {
                info!("`{topic}` was closed; exporting it again if it comes back");
                self.own.forget(&topic);
            }
            let mut sent = 0;
            for sub in subs.subscribers_mut() {
                let topic = sub.topic().to_string();
                let Some(t) = self.exported(&mut topics, &topic) else {
                    continue;
                };
                sent += self.drain(&topic, t, sub);
            }
            // Only an idle round sleeps: a burst cut short by `BURST`
            // comes straight back.
            if sent > 0 {
                continue;
            }
            match subs.wait(Some(WAIT_SLICE)) {
                Ok(()) | Err(Error::Timeout) | Err(Error::Interrupted) => {}
                Err(Error::Closed) => std::thread::sleep(WAIT_SLICE),
                Err(e) => warn!("cannot export `{}`: {e}", subs.last_topic().unwrap_or("?")),
            }
        }
    }

    /// The pattern subscription of the export, retried until it is made or
    /// the bridge stops.
    fn subscribe(&self) -> Option<PatternSubscriber> {
        let opts = SubscribeOptions {
            wait: WaitStrategy::Park,
            ..SubscribeOptions::default()
        };
        let mut warned = false;
        while !self.stop.load(Ordering::Relaxed) {
            match self
                .bus
                .subscribe_patterns(self.patterns.iter().map(Pattern::as_str), opts)
            {
                Ok(sub) => return Some(sub),
                Err(e) => {
                    if !warned {
                        warn!(
                            "cannot subscribe to the export patterns on bus `{}`: {e}; retrying",
                            self.bus.name()
                        );
                        warned = true;
                    }
                    std::thread::sleep(WAIT_SLICE);
                }
            }
        }
        None
    }

    /// The export state of `topic`, made (its Zenoh publisher declared) on
    /// first sight.
    fn exported<'t>(
        &self,
        topics: &'t mut HashMap<String, Exported>,
        topic: &str,
    ) -> Option<&'t mut Exported> {
        if !topics.contains_key(topic) {
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
                    return None;
                }
            };
            info!("exporting `{topic}` as `{key}`");
            topics.insert(
                topic.to_string(),
                Exported {
                    publisher,
                    next_count: 0,
                },
            );
        }
        topics.get_mut(topic)
    }

    /// Sends what `t`'s subscriber has ready, up to a burst; returns how
    /// many messages it read (sent, or skipped as this bridge's own). Each
    /// message is copied into Zenoh's buffer: one sample per message, or
    /// with `--batch` the frame being filled (sent when full, at a local
    /// loss, so that the counts within a frame stay consecutive, and at the
    /// end). On `block` topics it is copied from its ring slot; on
    /// `drop-oldest` topics from the guard's private copy, which the
    /// library made (and checked whole) first.
    fn drain(&self, topic: &str, t: &mut Exported, s: &mut Subscriber) -> usize {
        let Exported {
            publisher,
            next_count,
        } = t;
        let mut frame = Frame::default();
        let mut read = 0;
        while read < BURST {
            match s.try_recv_ref() {
                Ok(Some(msg)) => {
                    read += 1;
                    let seq = msg.seq();
                    if self.own.take_if_own(topic, seq) {
                        Stats::add(&self.stats.echo_skipped, 1);
                        continue;
                    }
                    if self.batch {
                        let len = msg.data().len();
                        if frame.n > 0 && frame.buf.len() + RECORD_HEADER + len > FRAME_BYTES {
                            self.send_frame(topic, publisher, &mut frame);
                        }
                        let mark = frame.buf.len();
                        if mark == 0 {
                            frame.buf.reserve(FRAME_BYTES.max(RECORD_HEADER + len));
                        }
                        push_record(&mut frame.buf, msg.data());
                        // A message overwritten while copied is not sent.
                        // (On `drop-oldest` topics the guard holds a copy
                        // checked whole, so this holds; on `block` topics
                        // only a process breaking the protocol can overwrite
                        // the slot, and the next read reports it.)
                        if !msg.is_valid() {
                            frame.buf.truncate(mark);
                            continue;
                        }
                        frame.add(*next_count, seq);
                    } else {
                        // Zenoh's public API takes owned buffers: a `Vec`
                        // in an `Arc`.
                        let payload = ZBytes::from(msg.data());
                        if !msg.is_valid() {
                            continue;
                        }
                        drop(msg);
                        self.send_one(topic, publisher, payload, *next_count, seq);
                    }
                    *next_count += 1;
                }
                Ok(None) => break,
                Err(Error::Lagged(n)) => {
                    self.send_frame(topic, publisher, &mut frame);
                    // The importer learns of it as a jump in the count.
                    *next_count += n;
                    Stats::add(&self.stats.export_lagged, n);
                    warn!("export of `{topic}` lagged: {n} local messages were overwritten before the bridge read them");
                }
                // Ends once read to the end: `take_ended` reports it.
                Err(Error::Closed) => break,
                Err(e) => {
                    warn!("reading `{topic}` for export failed: {e}");
                    break;
                }
            }
        }
        self.send_frame(topic, publisher, &mut frame);
        read
    }

    /// Puts one message as its own sample, tagged.
    fn send_one(
        &self,
        topic: &str,
        publisher: &zenoh::pubsub::Publisher<'static>,
        payload: ZBytes,
        count: u64,
        seq: u64,
    ) {
        let tag = Tag {
            origin: self.origin,
            instance: self.instance,
            count,
            seq,
        };
        // The tag goes in by value (a fixed-size array: one `Arc`, no
        // `Vec`). Zenoh then serializes both into its transport batch.
        match publisher.put(payload).attachment(tag.encode()).wait() {
            Ok(()) => Stats::add(&self.stats.exported, 1),
            Err(e) => {
                Stats::add(&self.stats.export_errors, 1);
                debug!("put of `{topic}` #{seq} failed: {e}");
            }
        }
    }

    /// Puts the frame (if it holds anything) and empties it.
    fn send_frame(
        &self,
        topic: &str,
        publisher: &zenoh::pubsub::Publisher<'static>,
        frame: &mut Frame,
    ) {
        if frame.n == 0 {
            return;
        }
        let tag = FrameTag {
            origin: self.origin,
            instance: self.instance,
            count: frame.count,
            first_seq: frame.first_seq,
            last_seq: frame.last_seq,
            n: frame.n,
        };
        let n = u64::from(frame.n);
        // The buffer moves into the `ZBytes`: no copy.
        let payload = std::mem::take(&mut frame.buf);
        frame.n = 0;
        match publisher.put(payload).attachment(tag.encode()).wait() {
            Ok(()) => {
                Stats::add(&self.stats.exported, n);
                Stats::add(&self.stats.export_frames, 1);
            }
            Err(e) => {
                Stats::add(&self.stats.export_errors, n);
                debug!(
                    "put of a frame of `{topic}` (#{}..=#{}) failed: {e}",
                    tag.first_seq, tag.last_seq
                );
            }
        }
    }
}
