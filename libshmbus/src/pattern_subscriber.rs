//! Receiving from every topic that matches a set of patterns: the ones that
//! exist now and the ones created later, each from its first message on.
//!
//! ```no_run
//! # fn main() -> shmbus::Result<()> {
//! let bus = shmbus::Bus::connect("default")?;
//! let mut sub = bus.subscribe_pattern("sensors/**", Default::default())?;
//! loop {
//!     match sub.recv() {
//!         Ok(msg) => println!("{} #{}: {} bytes", msg.topic, msg.seq, msg.data.len()),
//!         Err(shmbus::Error::Lagged(n)) => {
//!             eprintln!("lost {n} messages of {}", sub.last_topic().unwrap_or("?"))
//!         }
//!         Err(shmbus::Error::Closed) => break,
//!         Err(e) => return Err(e),
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! What it guarantees, per matching topic:
//! * **Order.** Each topic's messages arrive in sequence order, as from a
//!   plain [`Subscriber`]; topics are interleaved round-robin, so a busy
//!   topic does not starve a quiet one.
//! * **Loss is counted, per topic.** A `drop-oldest` topic that laps this
//!   subscriber gives `Err(Lagged(n))`; [`PatternSubscriber::last_topic`]
//!   names the topic. On `block` topics nothing is lost.
//! * **No loss at a topic's birth.** A topic created while the subscription
//!   is registered is joined at sequence 0 by the daemon itself, before the
//!   topic's creator hears back (the argument is in `watch.rs`). A topic
//!   that existed when the subscription started is joined at its tail, or
//!   at its oldest retained message with [`SubscribeOptions::from_start`].
//! * **A removed topic ends alone.** Its remaining messages are delivered,
//!   then it leaves the set; the others go on. A topic created again under
//!   the same name is a new topic, joined at its birth.
//! * **A daemon restart loses nothing silently.** The subscription
//!   reconnects (at most every [`TICK`](crate::wait::TICK)); topics born
//!   while it was away are joined at their oldest retained message, and
//!   any message older than that is reported as `Lagged(n)`.
//!
//! `Err(Closed)` comes when the daemon has gone away and every topic the
//! subscription followed is closed (a daemon shutdown); a later receive tries
//! to reconnect.
//!
//! Waiting costs no thread: a parked receive sleeps on the `data_ready`
//! words of up to [`PARKED_TOPICS`] topics and on the subscription's wake
//! word at once (`futex_waitv(2)`). Beyond that many topics, the others are
//! polled every [`POLL_BEYOND`] while parked.

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use crate::bus::Bus;
use crate::control::{
    decode_reply, encode_frame, FrameReader, Op, Outcome, ReplyBody, Request, WatchedTopic,
    MAX_REPLY_LEN, MAX_REQUEST_LEN, MAX_WATCH_PATTERNS, PROTOCOL_VERSION,
};
use crate::error::{Error, Result};
use crate::futex::WaitOutcome;
use crate::pattern::Pattern;
use crate::ring::Start;
use crate::subscriber::{Message, SubscribeOptions, Subscriber};
use crate::sync::{AtomicU32, Ordering};
use crate::topic::TopicTrust;
use crate::wait::{spin_round, spins_now, Deadline, WaitStrategy, TICK};
use crate::watch::{FdReader, WakePage};

/// Most topics a parked receive sleeps on at once (`futex_waitv` takes 128
/// words; two are the interrupt word and the wake word).
pub const PARKED_TOPICS: usize = 126;

/// How often topics beyond [`PARKED_TOPICS`] are polled while parked.
pub const POLL_BEYOND: Duration = Duration::from_millis(10);

/// The subscription's own control connection.
#[derive(Debug)]
struct Watch {
    stream: UnixStream,
    reader: FrameReader,
    fds: VecDeque<OwnedFd>,
    wake: WakePage,
    /// The wake word as read before the last drain.
    seen: u32,
}

/// A subscriber to every topic matching a set of patterns (see the module
/// docs). Made by [`Bus::subscribe_pattern`] or [`Bus::subscribe_patterns`].
#[derive(Debug)]
pub struct PatternSubscriber {
    bus: Bus,
    patterns: Vec<Pattern>,
    opts: SubscribeOptions,
    watch: Option<Watch>,
    /// One subscriber per followed topic.
    members: Vec<Subscriber>,
    /// Where the next round-robin look starts.
    next: usize,
    /// The topic of the last message, loss or error returned.
    last_topic: Option<String>,
    /// Errors to report before anything else (a topic that could not be
    /// joined).
    pending: VecDeque<(String, Error)>,
    /// When to try to reconnect, while the daemon is away.
    reconnect_at: Option<Instant>,
    /// The interrupt generation last reported.
    interrupts: u32,
    /// Topics pruned since the last [`PatternSubscriber::take_ended`]
    /// (kept only for callers of `subscribers_mut`; bounded by it).
    ended: Vec<String>,
    /// Receives since the connection was last read whatever the wake word
    /// said (a daemon that died never bumps it: see [`CHECK_EVERY`]).
    unchecked: u32,
}

/// A daemon killed outright closes the connection without bumping the wake
/// word, so the connection is also read, to notice its end, every this many
/// receives and before every park.
const CHECK_EVERY: u32 = 4096;

/// Most ended topics kept for [`PatternSubscriber::take_ended`] between two
/// calls (a caller that never asks does not grow without bound).
const MAX_ENDED: usize = 1024;

impl Bus {
    /// Subscribes to every topic matching `pattern` (`*` one segment, `**`
    /// any depth: see [`Pattern`]), now and created later. See
    /// [`PatternSubscriber`].
    pub fn subscribe_pattern(
        &self,
        pattern: &str,
        opts: SubscribeOptions,
    ) -> Result<PatternSubscriber> {
        self.subscribe_patterns([pattern], opts)
    }

    /// Subscribes to every topic matching any of `patterns`. Exact topic
    /// names may be mixed in; like the wildcard patterns, they are followed
    /// once they exist (from their birth when that comes later), not
    /// created: call [`Bus::open`] first to create one.
    pub fn subscribe_patterns<'p>(
        &self,
        patterns: impl IntoIterator<Item = &'p str>,
        opts: SubscribeOptions,
    ) -> Result<PatternSubscriber> {
        let patterns = patterns
            .into_iter()
            .map(Pattern::parse)
            .collect::<Result<Vec<_>>>()?;
        if patterns.is_empty() || patterns.len() > MAX_WATCH_PATTERNS {
            return Err(Error::InvalidConfig(format!(
                "a pattern subscription takes 1 to {MAX_WATCH_PATTERNS} patterns, not {}",
                patterns.len()
            )));
        }
        let mut sub = PatternSubscriber {
            bus: self.clone(),
            patterns,
            opts,
            watch: None,
            members: Vec::new(),
            next: 0,
            last_topic: None,
            pending: VecDeque::new(),
            reconnect_at: None,
            interrupts: crate::interrupt::generation(),
            unchecked: 0,
            ended: Vec::new(),
        };
        sub.register(false)?;
        Ok(sub)
    }
}

impl PatternSubscriber {
    /// The patterns, as given.
    pub fn patterns(&self) -> impl Iterator<Item = &str> {
        self.patterns.iter().map(Pattern::as_str)
    }

    /// The topics followed now, in the order they were joined.
    pub fn topics(&self) -> impl Iterator<Item = &str> {
        self.members.iter().map(|m| m.topic())
    }

    /// The topic of the last message, `Lagged` or per-topic error returned.
    pub fn last_topic(&self) -> Option<&str> {
        self.last_topic.as_deref()
    }

    /// Whether the subscription is registered with a daemon now (it
    /// reconnects by itself after a daemon restart).
    pub fn is_connected(&self) -> bool {
        self.watch.is_some()
    }

    /// Messages published on the followed topics that this subscriber has
    /// not read yet.
    pub fn lag(&self) -> u64 {
        self.members.iter().map(|m| m.lag()).sum()
    }

    /// Receives the next message of any matching topic, waiting for one.
    /// `Err(Lagged(n))` once after `n` messages of one topic were lost
    /// (named by [`last_topic`](Self::last_topic)); `Err(Closed)` when the
    /// daemon is gone and every followed topic closed; `Err(Interrupted)`
    /// if a signal arrives while waiting. A topic that could not be joined
    /// is reported once, as its error, with its name in `last_topic`.
    pub fn recv(&mut self) -> Result<Message<'_>> {
        self.recv_with(Deadline::Never)
    }

    /// Receives the next message if one is there.
    pub fn try_recv(&mut self) -> Result<Option<Message<'_>>> {
        match self.recv_with(Deadline::Now) {
            Ok(m) => Ok(Some(m)),
            Err(Error::Timeout) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Receives the next message, waiting at most `timeout`.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Message<'_>> {
        self.recv_with(Deadline::after(timeout))
    }

    fn recv_with(&mut self, mut deadline: Deadline) -> Result<Message<'_>> {
        let mut round = 0u32;
        let (i, found) = loop {
            // Before a park, also notice a daemon that died.
            self.service(round > 0 && !spins_now(self.opts.wait, round))?;
            if let Some((topic, e)) = self.pending.pop_front() {
                self.last_topic = Some(topic);
                return Err(e);
            }
            if let Some(hit) = self.poll_members()? {
                break hit;
            }
            if self.watch.is_none() && self.members.is_empty() && round == 0 {
                // Gone daemon, nothing left to read: the bus shut down.
                self.last_topic = None;
                return Err(Error::Closed);
            }
            if deadline == Deadline::Now {
                return Err(Error::Timeout);
            }
            if spins_now(self.opts.wait, round) {
                spin_round(self.opts.wait, round);
                round += 1;
                continue;
            }
            round += 1;
            self.park(&mut deadline)?;
        };
        let m = &self.members[i];
        self.last_topic = Some(m.topic().to_string());
        Ok(m.copied(&found))
    }

    /// One round-robin pass over the members: the first message found
    /// (copied and consumed), or the first loss or error. A closed topic
    /// with nothing left leaves the set.
    fn poll_members(&mut self) -> Result<Option<(usize, crate::ring::Found)>> {
        let mut k = 0;
        while k < self.members.len() {
            let i = (self.next + k) % self.members.len();
            let m = &mut self.members[i];
            match m.poll_copy() {
                Ok(Some(found)) => {
                    self.next = (i + 1) % self.members.len();
                    return Ok(Some((i, found)));
                }
                Ok(None) => k += 1,
                Err(Error::Closed) => {
                    tracing::debug!("pattern subscription: topic `{}` closed", m.topic());
                    self.members.remove(i);
                    self.next = 0;
                    k = 0;
                }
                Err(e) => {
                    self.last_topic = Some(m.topic().to_string());
                    self.next = (i + 1) % self.members.len();
                    return Err(e);
                }
            }
        }
        Ok(None)
    }

    /// Reads the daemon's announcements if the wake word moved, and
    /// reconnects when it is time.
    fn service(&mut self, force: bool) -> Result<()> {
        if let Some(w) = &mut self.watch {
            // Acquire: pairs with the daemon's Release bump, which follows
            // its write of the announcement.
            let now = w.wake.word().load(Ordering::Acquire);
            self.unchecked += 1;
            if now != w.seen || force || self.unchecked >= CHECK_EVERY {
                w.seen = now;
                self.unchecked = 0;
                self.drain();
            }
        } else if self.reconnect_at.is_none_or(|t| Instant::now() >= t) {
            if let Err(e) = self.register(true) {
                tracing::debug!("pattern subscription: cannot reconnect yet: {e}");
                self.reconnect_at = Some(Instant::now() + TICK);
            }
        }
        Ok(())
    }

    /// Drains the connection; on its end, forgets it (reconnecting later).
    fn drain(&mut self) {
        let Some(w) = &mut self.watch else { return };
        let mut frames = Vec::new();
        let ended = loop {
            match w.reader.next_frame() {
                Ok(Some(body)) => {
                    frames.push(body);
                    continue;
                }
                Ok(None) => {}
                Err(e) => break Some(format!("bad frame from shmbusd: {e}")),
            }
            let mut r = FdReader {
                sock: w.stream.as_raw_fd(),
                fds: &mut w.fds,
                wait: false,
            };
            match w.reader.read_from(&mut r) {
                Ok(0) => break Some("shmbusd closed the connection".to_string()),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break None,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => break Some(format!("cannot read from shmbusd: {e}")),
            }
        };
        for body in frames {
            self.announcement(&body);
        }
        if let Some(why) = ended {
            tracing::debug!("pattern subscription: {why}; reconnecting");
            self.watch = None;
            self.reconnect_at = Some(Instant::now());
        }
    }

    /// Acts on one announcement frame.
    fn announcement(&mut self, body: &[u8]) {
        let reply = match decode_reply(body) {
            Ok(r) => r,
            Err(e) => {
                self.pending.push_back((String::new(), e));
                return;
            }
        };
        match reply.outcome {
            Outcome::Ok(ReplyBody::Born {
                topic,
                entry,
                segments,
            }) => {
                let fd = self.watch.as_mut().and_then(|w| w.fds.pop_front());
                let joined = match fd {
                    None => Err(Error::Protocol(format!(
                        "shmbusd announced `{topic}` without its descriptor"
                    ))),
                    Some(fd) => Subscriber::adopt(
                        self.bus.name(),
                        &topic,
                        &TopicTrust::announced(self.bus.daemon_uid(), segments),
                        std::fs::File::from(fd),
                        entry,
                        self.opts.wait,
                    ),
                };
                match joined {
                    Ok(sub) => self.members.push(sub),
                    Err(e) => self.pending.push_back((topic, e)),
                }
            }
            Outcome::Ok(ReplyBody::Missed { topic, message }) => {
                self.pending.push_back((topic, Error::Daemon(message)));
            }
            Outcome::Ok(other) => self.pending.push_back((
                String::new(),
                Error::Protocol(format!(
                    "shmbusd sent an unexpected announcement: {other:?}"
                )),
            )),
            Outcome::Error(e) => self.pending.push_back((String::new(), e.into_error())),
        }
    }

    /// Opens the subscription's connection and joins the topics the daemon
    /// lists. `again`: after a lost connection, topics not followed yet are
    /// joined at their oldest retained message, with the older ones
    /// reported as lost.
    fn register(&mut self, again: bool) -> Result<()> {
        let stream = self.bus.dial()?;
        let op = Op::Watch {
            patterns: self.patterns.iter().map(|p| p.to_string()).collect(),
        };
        let frame = encode_frame(
            &Request {
                v: PROTOCOL_VERSION,
                id: 1,
                op,
            },
            MAX_REQUEST_LEN,
        )?;
        crate::bus::send_all(&stream, &frame)
            .map_err(|e| Error::io("cannot send a request to shmbusd", e))?;
        let mut reader = FrameReader::new(MAX_REPLY_LEN);
        let mut fds = VecDeque::new();
        let body = loop {
            match reader.next_frame() {
                Ok(Some(body)) => break body,
                Ok(None) => {}
                Err(e) => return Err(Error::Protocol(format!("bad reply from shmbusd: {e}"))),
            }
            let mut r = FdReader {
                sock: stream.as_raw_fd(),
                fds: &mut fds,
                wait: true,
            };
            match reader.read_from(&mut r) {
                Ok(0) => {
                    return Err(Error::Daemon(
                        "shmbusd closed the connection without answering `watch`".into(),
                    ))
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io("cannot read shmbusd's reply", e)),
            }
        };
        let topics = match decode_reply(&body)?.outcome {
            Outcome::Ok(ReplyBody::Watching { topics }) => topics,
            Outcome::Ok(other) => {
                return Err(Error::Protocol(format!(
                    "shmbusd answered `watch` with {other:?}"
                )))
            }
            Outcome::Error(e) => return Err(e.into_error()),
        };
        let page = fds.pop_front().ok_or_else(|| {
            Error::Protocol("shmbusd answered `watch` without a wake page".into())
        })?;
        let wake = WakePage::from_file(std::fs::File::from(page))?;
        stream
            .set_nonblocking(true)
            .map_err(|e| Error::io("cannot make the control socket non-blocking", e))?;
        // Acquire: pairs with the daemon's Release bump (as in `service`);
        // read before the first drain below.
        let seen = wake.word().load(Ordering::Acquire);
        self.watch = Some(Watch {
            stream,
            reader,
            fds,
            wake,
            seen,
        });
        self.reconnect_at = None;
        for t in topics {
            self.join_listed(t, again);
        }
        // Announcements may have come with the reply.
        self.drain();
        Ok(())
    }

    /// Joins a topic the daemon listed, unless it is followed already.
    fn join_listed(&mut self, t: WatchedTopic, again: bool) {
        if self
            .members
            .iter()
            .any(|m| m.topic() == t.topic && m.nonce() == t.segments.nonce)
        {
            return;
        }
        let trust = TopicTrust::announced(self.bus.daemon_uid(), t.segments);
        let from = if again {
            Start::Zero
        } else if self.opts.from_start {
            Start::Retained
        } else {
            Start::Tail
        };
        match Subscriber::attach_at(self.bus.name(), &t.topic, from, self.opts.wait, &trust) {
            Ok(sub) => self.members.push(sub),
            Err(e) => self.pending.push_back((t.topic, e)),
        }
    }

    /// Sleeps until a followed topic may have a message, the daemon
    /// announced something, the deadline, or a signal.
    fn park(&mut self, deadline: &mut Deadline) -> Result<()> {
        let left = deadline.remaining()?;
        let generation = crate::interrupt::generation();
        if generation != self.interrupts {
            self.interrupts = generation;
            return Err(Error::Interrupted);
        }
        let mut words: Vec<(&AtomicU32, u32)> = Vec::with_capacity(PARKED_TOPICS + 2);
        words.push((crate::interrupt::word(), generation));
        let mut cap = TICK;
        match &self.watch {
            Some(w) => words.push((w.wake.word(), w.seen)),
            // Reconnect attempts are due at their time.
            None => {
                cap = cap.min(
                    self.reconnect_at
                        .map_or(TICK, |t| t.saturating_duration_since(Instant::now())),
                )
            }
        }
        if self.members.len() > PARKED_TOPICS {
            cap = cap.min(POLL_BEYOND);
        }
        let n = self.members.len().min(PARKED_TOPICS);
        for k in 0..n {
            let m = &self.members[(self.next + k) % self.members.len()];
            let (ec, flag) = m.wake_words();
            words.push((ec.futex_word(), ec.prepare()));
            flag.store(1, Ordering::Relaxed);
        }
        // Re-check after announcing (the event counts' protocol): a message
        // committed before a `prepare` is seen here.
        // Acquire: pairs with the daemon's Release bump; a bump since the
        // last drain means announcements wait in the connection.
        let moved = self
            .watch
            .as_ref()
            .is_some_and(|w| w.wake.word().load(Ordering::Acquire) != w.seen);
        let ready = moved || self.members.iter().any(|m| m.readable());
        let outcome = if ready {
            WaitOutcome::Woken
        } else {
            let timeout = left.map_or(cap, |l| l.min(cap));
            crate::futex::wait_any(&words, Some(timeout))
        };
        for k in 0..n {
            let m = &self.members[(self.next + k) % self.members.len()];
            m.wake_words().1.store(0, Ordering::Relaxed);
        }
        match outcome {
            WaitOutcome::Interrupted if crate::interrupt::generation() != self.interrupts => {
                self.interrupts = crate::interrupt::generation();
                Err(Error::Interrupted)
            }
            _ => Ok(()),
        }
    }

    /// The followed topics' subscribers, for a caller that drains topic by
    /// topic (the bridge sends each topic's ready messages as one frame)
    /// instead of calling [`recv`](Self::recv). Pair it with
    /// [`wait`](Self::wait), which also takes in new topics.
    pub fn subscribers_mut(&mut self) -> impl Iterator<Item = &mut Subscriber> {
        self.prune();
        self.members.iter_mut()
    }

    /// The topics that ended (closed, and read to the end) since the last
    /// call, in the order they ended: for a caller of
    /// [`subscribers_mut`](Self::subscribers_mut) that keeps state per topic.
    pub fn take_ended(&mut self) -> Vec<String> {
        std::mem::take(&mut self.ended)
    }

    /// Drops the members that are closed and read to the end.
    fn prune(&mut self) {
        let before = self.members.len();
        let ended = &mut self.ended;
        self.members.retain(|m| {
            let done = m.finished();
            if done && ended.len() < MAX_ENDED {
                ended.push(m.topic().to_string());
            }
            !done
        });
        if self.members.len() != before {
            self.next = 0;
        }
    }

    /// Waits, without receiving, until a followed topic may have something
    /// to read, at most `timeout` (`None`: no limit). Takes in the topics
    /// born meanwhile and drops those closed and read to the end. Errors
    /// as [`recv`](Self::recv): `Timeout`, `Interrupted`, `Closed`, or a
    /// topic that could not be joined (named by
    /// [`last_topic`](Self::last_topic)).
    pub fn wait(&mut self, timeout: Option<Duration>) -> Result<()> {
        let mut deadline = timeout.map_or(Deadline::Never, Deadline::after);
        loop {
            self.service(true)?;
            if let Some((topic, e)) = self.pending.pop_front() {
                self.last_topic = Some(topic);
                return Err(e);
            }
            self.prune();
            if self.members.iter().any(|m| m.readable()) {
                return Ok(());
            }
            if self.watch.is_none() && self.members.is_empty() {
                return Err(Error::Closed);
            }
            self.park(&mut deadline)?;
        }
    }

    /// Sets how blocking receives wait.
    pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
        self.opts.wait = strategy;
        for m in &mut self.members {
            m.set_wait_strategy(strategy);
        }
    }
}
