//! Import: Zenoh samples under the `--import` key expressions, published
//! into local topics in arrival order, in Zenoh's subscriber callback.
//!
//! Zenoh calls [`Importer::on_sample`] on its own reception thread; it
//! publishes the sample into its local topic (opened through the daemon, so
//! created on first use with its defaults, or with `--capacity`/`--policy`/
//! `--max-msg-size` when given, see [`Importer::create`]) through a loan, copying the
//! payload from Zenoh's buffer straight into the ring slot, and recording
//! the loan's sequence number first so the exporter does not send it back
//! (see [`crate::own`]). There is no queue and no import thread: a sample is
//! in the local topic before the callback returns, with no wake-up of
//! another thread in between. The importer's state (the local publishers,
//! the gap tracker, the log limits) sits under one mutex, taken once per
//! sample; Zenoh calls the callback of one link from one task at a time, so
//! the mutex is contended only when samples arrive from several links at
//! once.
//!
//! Back-pressure, what `block` means across the network: when a local
//! `block` topic is full, the callback waits for room up to
//! `--publish-timeout-ms`, then drops the sample and counts it
//! (`dropped_full`). While it waits, Zenoh's reception of that link stalls
//! (the callback runs on it), its buffers fill, and the remote exporter's
//! `Block` puts wait in turn: a slow local subscriber slows the remote
//! publisher, up to the bound. Beyond it, messages are dropped (and counted
//! here) rather than stalling every topic of the link forever. (A bounded
//! queue to an import thread used to sit between the callback and the
//! loan; the callback then blocked on the full queue instead — the same
//! back-pressure, for one more thread wake-up per sample.)
//!
//! Loss: each sample's tag carries the exporter's running count; a jump of
//! `n` is logged, added to `import_lost`, and written into the local topic
//! as a loss marker (`Publisher::report_lost`) before the sample that came
//! after the gap, so every local subscriber receives `Lagged(n)` at that
//! place in the stream, as if its own ring had lapped.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shmbus::{Bus, Error, Publisher, TopicConfig};
use tracing::{debug, info, warn};
use zenoh::bytes::ZBytes;
use zenoh::sample::Sample;

use crate::gaps::{GapTracker, Observed};
use crate::own::OwnPublished;
use crate::pattern::topic_of_key;
use crate::stats::Stats;
use crate::tag::{records, Attachment};
use shmbus::pattern::any_matches;
use shmbus::Pattern;

/// Least time between two log lines of one kind of drop on one topic.
const LOG_EVERY: Duration = Duration::from_secs(1);

/// What the import callback needs.
pub struct Importer {
    /// The local bus.
    pub bus: Bus,
    /// `--import` patterns (the key expressions already filter; this also
    /// rejects keys a wildcard would let through that are no pattern's).
    pub patterns: Vec<Pattern>,
    /// `--export` patterns: imported topics matching them are recorded in
    /// `own`.
    pub exports: Vec<Pattern>,
    /// `--key-prefix`.
    pub key_prefix: String,
    /// This bridge's origin id (its bus's, stable): samples carrying it are
    /// this bus's own messages coming back, never imported.
    pub origin: u64,
    /// Where imported sequence numbers are recorded.
    pub own: Arc<OwnPublished>,
    /// Counters.
    pub stats: Arc<Stats>,
    /// Set when the bridge shuts down: samples still arriving are ignored.
    pub stop: Arc<AtomicBool>,
    /// The bound on a wait for room.
    pub publish_timeout: Duration,
    /// Settings of topics the importer creates (`--capacity`, `--policy`,
    /// `--max-msg-size`); `None`: the daemon creates them with its defaults.
    /// A topic that exists already is used as it is (a difference in the
    /// settings given is logged once per topic, at info level).
    pub create: Option<TopicConfig>,
    /// What the callbacks share (one at a time).
    pub state: Mutex<ImportState>,
}

/// The importer's mutable state, owned by the Zenoh callbacks.
#[derive(Default)]
pub struct ImportState {
    publishers: HashMap<String, Publisher>,
    gaps: GapTracker,
    logs: LogLimit,
}

/// Rate limit of the drop logs, per (kind, topic).
#[derive(Default)]
struct LogLimit {
    last: HashMap<(&'static str, String), Instant>,
    /// Topics whose settings differ from `--capacity`/`--policy`/
    /// `--max-msg-size`, already logged (once per topic).
    mismatch_logged: HashSet<String>,
}

impl LogLimit {
    fn allow(&mut self, kind: &'static str, topic: &str) -> bool {
        let now = Instant::now();
        match self.last.get_mut(&(kind, topic.to_string())) {
            Some(at) if now.duration_since(*at) < LOG_EVERY => false,
            Some(at) => {
                *at = now;
                true
            }
            None => {
                self.last.insert((kind, topic.to_string()), now);
                true
            }
        }
    }
}

impl Importer {
    /// Imports one sample: Zenoh's subscriber callback. Blocks while the
    /// local topic is full, up to `publish_timeout` (see the module docs).
    pub fn on_sample(&self, sample: &Sample) {
        if self.stop.load(Ordering::Relaxed) {
            return;
        }
        // A panic while holding the lock (a bug) leaves the state usable:
        // each field is consistent between two samples.
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let st = &mut *guard;
        self.handle(sample, &mut st.publishers, &mut st.gaps, &mut st.logs);
    }

    fn handle(
        &self,
        sample: &Sample,
        publishers: &mut HashMap<String, Publisher>,
        gaps: &mut GapTracker,
        logs: &mut LogLimit,
    ) {
        let key = sample.key_expr().as_str();
        let Some(topic) = topic_of_key(key, &self.key_prefix) else {
            Stats::add(&self.stats.bad_samples, 1);
            if logs.allow("key", key) {
                warn!("ignoring a sample on key `{key}`: it is not `{}/TOPIC` with a valid topic name", self.key_prefix);
            }
            return;
        };
        if !any_matches(&self.patterns, topic) {
            return;
        }
        let attachment = sample.attachment().map(|a| a.to_bytes());
        match Attachment::classify(attachment.as_deref()) {
            Attachment::Single(tag) => {
                if tag.origin == self.origin {
                    Stats::add(&self.stats.own_skipped, 1);
                    return;
                }
                let seen = gaps.observe(tag.origin, tag.instance, topic, tag.count, tag.seq);
                if !self.account(
                    topic,
                    seen,
                    tag.origin,
                    tag.instance,
                    tag.seq,
                    1,
                    publishers,
                    logs,
                ) {
                    return;
                }
                self.publish_zbytes(topic, sample.payload(), publishers, logs);
            }
            Attachment::Frame(tag) => {
                let n = u64::from(tag.n);
                if tag.origin == self.origin {
                    Stats::add(&self.stats.own_skipped, n);
                    return;
                }
                // Contiguous as received unless Zenoh fragmented the sample
                // (frames are sized to fit its batches): then one copy.
                let payload = sample.payload().to_bytes();
                // Checked whole before any of it is published: a damaged
                // frame is dropped, and its messages count as lost when the
                // next frame's count jumps over them.
                let Some(records) = records(&payload, tag.n) else {
                    Stats::add(&self.stats.bad_samples, 1);
                    if logs.allow("frame", topic) {
                        warn!(
                            "ignoring a damaged frame of `{topic}` from origin {:016x} ({} bytes said to hold {} messages)",
                            tag.origin,
                            payload.len(),
                            tag.n
                        );
                    }
                    return;
                };
                let seen = gaps.observe_frame(
                    tag.origin,
                    tag.instance,
                    topic,
                    (tag.count, tag.first_seq),
                    (tag.last_count(), tag.last_seq),
                );
                if !self.account(
                    topic,
                    seen,
                    tag.origin,
                    tag.instance,
                    tag.first_seq,
                    n,
                    publishers,
                    logs,
                ) {
                    return;
                }
                Stats::add(&self.stats.import_frames, 1);
                let mut rest = records;
                while let Some(msg) = rest.next() {
                    let stayed_full = self.publish(
                        topic,
                        msg.len(),
                        |dst| dst.copy_from_slice(msg),
                        publishers,
                        logs,
                    );
                    // The bound is on the wait, not per message: the rest
                    // of the frame is dropped at once rather than waiting
                    // the bound again for each (a frame of 200 would
                    // otherwise stall the link 200 times as long).
                    if stayed_full {
                        let left = rest.len();
                        if left > 0 {
                            Stats::add(&self.stats.dropped_full, left as u64);
                            if logs.allow("full-frame", topic) {
                                warn!("dropping the {left} more messages of the frame too: `{topic}` is full");
                            }
                        }
                        break;
                    }
                }
            }
            Attachment::BadFrame => {
                Stats::add(&self.stats.bad_samples, 1);
                if logs.allow("frame", topic) {
                    warn!("ignoring a damaged frame of `{topic}`: its tag is impossible");
                }
            }
            // A sample without a tag comes from a plain Zenoh publisher, not
            // a bridge (or carries another program's attachment): it is
            // imported, with no loss tracking.
            Attachment::None | Attachment::Unknown => {
                self.publish_zbytes(topic, sample.payload(), publishers, logs);
            }
        }
    }

    /// Acts on what the gap tracker saw of a sample or frame of `n`
    /// messages starting at remote sequence `seq`: counts and reports a
    /// loss before it. False when it must not be delivered (stale).
    #[allow(clippy::too_many_arguments)]
    fn account(
        &self,
        topic: &str,
        seen: Observed,
        origin: u64,
        instance: u64,
        seq: u64,
        n: u64,
        publishers: &mut HashMap<String, Publisher>,
        logs: &mut LogLimit,
    ) -> bool {
        match seen {
            Observed::First | Observed::InOrder => {}
            Observed::Gap(lost) => {
                Stats::add(&self.stats.import_lost, lost);
                warn!("import of `{topic}` from origin {origin:016x}: {lost} messages lost before remote #{seq}");
                self.report_lost(topic, lost, publishers, logs);
            }
            Observed::Restarted { lost } => {
                info!(
                    "the bridge of origin {origin:016x} was restarted (instance {instance:016x})"
                );
                if lost > 0 {
                    Stats::add(&self.stats.import_lost, lost);
                    warn!(
                        "import of `{topic}` from origin {origin:016x}: {lost} messages lost before remote #{seq} (across the restart of its bridge)"
                    );
                    self.report_lost(topic, lost, publishers, logs);
                }
            }
            Observed::Renumbered => {
                info!(
                    "import of `{topic}` from origin {origin:016x}: its bridge was restarted and the topic's numbering started again; loss across the restart unknown"
                );
            }
            Observed::Stale => {
                Stats::add(&self.stats.stale, n);
                debug!("dropping {n} stale message(s) of `{topic}` (remote #{seq})");
                return false;
            }
        }
        true
    }

    /// The local publisher of `topic`, opened through the daemon (so
    /// created with its defaults, or first created with [`Importer::create`]
    /// when set) on first use; `None`, logged at most once a second, if it
    /// cannot be opened.
    fn publisher_of<'p>(
        &self,
        topic: &str,
        publishers: &'p mut HashMap<String, Publisher>,
        logs: &mut LogLimit,
    ) -> Option<&'p mut Publisher> {
        if !publishers.contains_key(topic) {
            if let Some(cfg) = &self.create {
                if !self.create_topic(topic, cfg, logs) {
                    return None;
                }
            }
            match self.bus.publisher(topic) {
                Ok(p) => {
                    info!("importing into `{topic}`");
                    publishers.insert(topic.to_string(), p);
                }
                Err(e) => {
                    if logs.allow("open", topic) {
                        warn!("cannot publish imported samples into `{topic}`: {e}");
                    }
                    return None;
                }
            }
        }
        publishers.get_mut(topic)
    }

    /// Creates `topic` with `cfg` unless it exists; an existing topic is
    /// used as it is, and a difference from the settings the user gave is
    /// logged once per topic (info). False (logged at most once a second)
    /// when the topic neither exists nor can be created.
    fn create_topic(&self, topic: &str, cfg: &TopicConfig, logs: &mut LogLimit) -> bool {
        // Creating a topic that exists with the same settings succeeds; with
        // other settings the daemon refuses, and the list tells which.
        let err = match self.bus.create_topic(topic, cfg) {
            Ok(_) => return true,
            Err(e) => e,
        };
        let existing = self
            .bus
            .topics()
            .ok()
            .and_then(|ts| ts.into_iter().find(|t| t.topic == topic));
        let Some(existing) = existing else {
            if logs.allow("create", topic) {
                warn!("cannot create `{topic}` for imported samples: {err}");
            }
            return false;
        };
        let have = &existing.config;
        let differs = have.capacity != cfg.capacity
            || have.policy != cfg.policy
            || have.max_msg_size != cfg.max_msg_size;
        if differs && logs.mismatch_logged.insert(topic.to_string()) {
            info!(
                "`{topic}` exists with capacity {}, policy {}, max message size {}: importing into it as it is (--capacity/--policy/--max-msg-size apply only to topics the bridge creates)",
                have.capacity, have.policy, have.max_msg_size
            );
        }
        true
    }

    /// Tells `topic`'s local subscribers that `n` messages were lost
    /// upstream: a loss marker in the ring, which each of them receives in
    /// its place as `Lagged(n)` (the CLI prints "lost n messages"). Waits
    /// for room like a publish, up to the same bound.
    fn report_lost(
        &self,
        topic: &str,
        n: u64,
        publishers: &mut HashMap<String, Publisher>,
        logs: &mut LogLimit,
    ) {
        let Some(publisher) = self.publisher_of(topic, publishers, logs) else {
            return;
        };
        if let Err(e) = publisher.report_lost(n, self.publish_timeout) {
            if logs.allow("report", topic) {
                warn!("cannot report {n} lost messages to the subscribers of `{topic}`: {e}");
            }
            if matches!(e, Error::Closed) {
                publishers.remove(topic);
            }
        }
    }

    /// Publishes a Zenoh payload into `topic`, copied from Zenoh's
    /// buffer(s) straight into the loaned slot, slice by slice: no
    /// allocation even when Zenoh received it in fragments.
    fn publish_zbytes(
        &self,
        topic: &str,
        payload: &ZBytes,
        publishers: &mut HashMap<String, Publisher>,
        logs: &mut LogLimit,
    ) {
        let write = |dst: &mut [u8]| {
            let mut at = 0;
            for part in payload.slices() {
                dst[at..at + part.len()].copy_from_slice(part);
                at += part.len();
            }
        };
        self.publish(topic, payload.len(), write, publishers, logs);
    }

    /// Publishes one message of `len` bytes into `topic`, written into the
    /// loaned slot by `write`; reopens the topic once if it was closed
    /// (removed and maybe re-created) under the publisher. True when the
    /// message was dropped because the topic stayed full past the bound.
    fn publish(
        &self,
        topic: &str,
        len: usize,
        write: impl Fn(&mut [u8]),
        publishers: &mut HashMap<String, Publisher>,
        logs: &mut LogLimit,
    ) -> bool {
        for attempt in 0..2 {
            let Some(publisher) = self.publisher_of(topic, publishers, logs) else {
                Stats::add(&self.stats.bad_samples, 1);
                return false;
            };
            if len > publisher.max_msg_size() {
                Stats::add(&self.stats.oversize, 1);
                if logs.allow("oversize", topic) {
                    warn!(
                        "dropping an imported message of {len} bytes: `{topic}` takes at most {} bytes",
                        publisher.max_msg_size()
                    );
                }
                return false;
            }
            let record = any_matches(&self.exports, topic);
            let failed = match publisher.loan_timeout(len, self.publish_timeout) {
                Ok(mut loan) => {
                    write(&mut loan[..len]);
                    if record {
                        // Before the commit: once committed, the exporter
                        // may read it at once.
                        self.own.record(topic, loan.seq());
                    }
                    loan.commit();
                    Stats::add(&self.stats.imported, 1);
                    return false;
                }
                Err(e) => e,
            };
            match failed {
                Error::Timeout => {
                    Stats::add(&self.stats.dropped_full, 1);
                    if logs.allow("full", topic) {
                        warn!(
                            "dropping an imported sample: `{topic}` stayed full for {:?} (a slow local subscriber)",
                            self.publish_timeout
                        );
                    }
                    return true;
                }
                // Removed under us (and maybe re-created): reopen once.
                Error::Closed if attempt == 0 => {
                    publishers.remove(topic);
                }
                e => {
                    Stats::add(&self.stats.bad_samples, 1);
                    if logs.allow("publish", topic) {
                        warn!("publishing an imported sample into `{topic}` failed: {e}");
                    }
                    if matches!(e, Error::Closed) {
                        publishers.remove(topic);
                    }
                    return false;
                }
            }
        }
        false
    }
}
