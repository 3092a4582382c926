//! `shmbus sub TOPIC...`: print messages of one or more topics as they come.
//!
//! One process subscribes to every topic given and interleaves them in
//! arrival order: each subscriber's next message is taken with `try_recv`
//! into a small per-topic slot, the slot with the earliest publish timestamp
//! is printed first, and when every topic is empty the process sleeps in
//! `shmbus::wait_any` until any of them may have something.
//!
//! Patterns (`sensors/*`, `logs/**`) follow every matching topic, the ones
//! there now and the ones created later, from a new topic's first message
//! (a [`shmbus::PatternSubscriber`]); exact names may be mixed in. With a
//! pattern, topics interleave round-robin as their messages come rather
//! than by timestamp.
//!
//! Endings: `-c N` messages printed (0); `-W` ran out (3, after printing what
//! came); Ctrl-C or SIGTERM (0, output flushed); every topic closed because
//! the daemon shut down or removed them (0); stdout closed by its reader (0),
//! noticed at the next write, or within a wait slice when no message comes.
//! Messages lost on a `drop-oldest` topic are reported on stderr as they
//! happen and the subscription goes on.

use std::io;
use std::time::{Duration, Instant};

use shmbus::{SubscribeOptions, Subscriber};

use crate::duration::{format_duration, parse_duration};
use crate::error::CliError;
use crate::format::{write_record, Format, Record};
use crate::global::{validate_topics, Global};
use crate::output::Output;
use crate::signals;

const EXAMPLES: &str = "\
Examples:
  shmbus sub sensors/temp                        # print messages as they come
  shmbus sub -v sensors/temp sensors/humidity    # two topics, each line prefixed by its topic
  shmbus sub jobs -c 10 -W 5s                    # ten messages, or exit 3 after 5 s
  shmbus sub logs --from-start                   # begin with what is still in the ring
  shmbus sub -v 'sensors/**'                     # every topic under sensors/, now and later
  shmbus sub -v 'cams/*/frames' alerts           # patterns and exact names mixed
  shmbus sub events --format json | jq .payload
  shmbus sub frames -c 1 --format raw > frame.bin";

/// Longest single sleep: Ctrl-C normally wakes the wait at once, but a signal
/// that lands between our check of the stop flag and the futex wait itself
/// cannot wake it, so we look at the flag again at least this often.
const WAIT_SLICE: Duration = Duration::from_millis(250);

/// Options of `shmbus sub`.
#[derive(clap::Args, Debug)]
#[command(after_help = EXAMPLES)]
pub struct SubArgs {
    /// Topics to subscribe to, e.g. `sensors/imu/0`, or patterns: `*` is one
    /// segment (`sensors/*`), `**` any depth (`sensors/**`).
    #[arg(value_name = "TOPIC|PATTERN", required = true)]
    pub topics: Vec<String>,
    /// Exit after N messages (counted over all topics).
    #[arg(short = 'c', long, value_name = "N", value_parser = crate::global::parse_positive)]
    pub count: Option<u64>,
    /// Give up after DUR in all (exit 3), e.g. `500ms`, `5s`, `1m`.
    #[arg(short = 'W', long, value_name = "DUR", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Start with the oldest message still in the ring instead of the next one.
    #[arg(long)]
    pub from_start: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Print the topic before each message (text and hex formats).
    #[arg(short, long)]
    pub verbose: bool,
}

/// The next message of one topic, copied out of the ring so that the topics
/// can be merged by timestamp. The buffer is reused: no allocation per message
/// once it has grown to the topic's largest message.
struct Slot {
    full: bool,
    seq: u64,
    timestamp_ns: u64,
    data: Vec<u8>,
    closed: bool,
}

/// Runs `shmbus sub`.
pub fn run(global: &Global, mut args: SubArgs) -> Result<(), CliError> {
    let mut topics: Vec<String> = Vec::with_capacity(args.topics.len());
    for topic in std::mem::take(&mut args.topics) {
        if !topics.contains(&topic) {
            topics.push(topic);
        }
    }
    if topics.iter().any(|t| t.contains('*')) {
        for t in &topics {
            shmbus::Pattern::parse(t)?;
        }
        return run_patterns(global, &args, &topics);
    }
    validate_topics(&topics)?;
    let bus = global.connect()?;
    let mut subs: Vec<Subscriber> = Vec::with_capacity(topics.len());
    for topic in &topics {
        let opts = SubscribeOptions {
            from_start: args.from_start,
            ..SubscribeOptions::default()
        };
        let sub = bus.subscriber(topic, opts).map_err(|e| {
            CliError::from(e).context(format_args!("cannot subscribe to `{topic}`"))
        })?;
        subs.push(sub);
    }
    signals::install()?;
    let deadline = args.timeout.map(|t| Instant::now() + t);
    let mut out = Output::new();
    let mut printed = 0u64;
    let result = receive(&mut subs, &args, deadline, &mut out, &mut printed);
    finish(result, &args, out, printed)
}

/// `shmbus sub` with patterns: one pattern subscription for every argument.
fn run_patterns(global: &Global, args: &SubArgs, topics: &[String]) -> Result<(), CliError> {
    let bus = global.connect()?;
    // Exact names are created, as a plain `shmbus sub` would.
    for topic in topics.iter().filter(|t| !t.contains('*')) {
        bus.open(topic, shmbus::control::Role::Subscribe)
            .map_err(|e| {
                CliError::from(e).context(format_args!("cannot subscribe to `{topic}`"))
            })?;
    }
    let opts = SubscribeOptions {
        from_start: args.from_start,
        ..SubscribeOptions::default()
    };
    let mut sub = bus
        .subscribe_patterns(topics.iter().map(String::as_str), opts)
        .map_err(|e| CliError::from(e).context("cannot subscribe"))?;
    signals::install()?;
    let deadline = args.timeout.map(|t| Instant::now() + t);
    let mut out = Output::new();
    let mut printed = 0u64;
    let result = receive_patterns(&mut sub, args, deadline, &mut out, &mut printed);
    finish(result, args, out, printed)
}

/// Flushes what was printed, whatever ended the loop, and turns the ending
/// into the exit status.
fn finish(
    result: Result<End, CliError>,
    args: &SubArgs,
    mut out: Output,
    printed: u64,
) -> Result<(), CliError> {
    // Whatever ended the loop, what was printed reaches the reader.
    let flushed = out.flush();
    match result? {
        End::Done => flushed,
        End::TimedOut => {
            flushed?;
            let wanted = args.count.map(|n| format!(" of {n}")).unwrap_or_default();
            let waited = args.timeout.map(format_duration).unwrap_or_default();
            Err(CliError::timeout(format!(
                "timed out after {waited}: received {printed}{wanted} messages"
            )))
        }
    }
}

/// How the receive loop ended, when it did not fail.
enum End {
    /// Count reached, Ctrl-C, or every topic closed.
    Done,
    /// `-W` ran out first.
    TimedOut,
}

/// The receive loop.
fn receive(
    subs: &mut [Subscriber],
    args: &SubArgs,
    deadline: Option<Instant>,
    out: &mut Output,
    printed: &mut u64,
) -> Result<End, CliError> {
    let mut slots: Vec<Slot> = subs
        .iter()
        .map(|_| Slot {
            full: false,
            seq: 0,
            timestamp_ns: 0,
            data: Vec::new(),
            closed: false,
        })
        .collect();
    loop {
        if signals::stop_requested() {
            return Ok(End::Done);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(End::TimedOut);
        }
        for (sub, slot) in subs.iter_mut().zip(&mut slots) {
            if !slot.full && !slot.closed {
                fill(sub, slot)?;
            }
        }
        let earliest = slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.full)
            .min_by_key(|(i, s)| (s.timestamp_ns, *i))
            .map(|(i, _)| i);
        if let Some(i) = earliest {
            let slot = &mut slots[i];
            let rec = Record {
                topic: subs[i].topic(),
                seq: slot.seq,
                timestamp_ns: slot.timestamp_ns,
                data: &slot.data,
            };
            write_record(out.writer(), args.format, args.verbose, &rec)
                .map_err(CliError::stdout)?;
            out.end_message()?;
            slot.full = false;
            *printed += 1;
            if args.count.is_some_and(|n| *printed >= n) {
                return Ok(End::Done);
            }
            continue;
        }
        if slots.iter().all(|s| s.closed) {
            return Ok(End::Done);
        }
        out.flush()?;
        let mut wait = WAIT_SLICE;
        if let Some(d) = deadline {
            wait = wait.min(d.saturating_duration_since(Instant::now()));
        }
        let open: Vec<&Subscriber> = subs
            .iter()
            .zip(&slots)
            .filter(|(_, s)| !s.closed)
            .map(|(sub, _)| sub)
            .collect();
        match shmbus::wait_any(&open, Some(wait)) {
            // Woken or interrupted: the top of the loop decides.
            Ok(()) | Err(shmbus::Error::Interrupted) => {}
            // A quiet slice: nothing to write, so look whether anyone still reads.
            Err(shmbus::Error::Timeout) if out.reader_gone() => {
                return Err(CliError::stdout(io::ErrorKind::BrokenPipe.into()));
            }
            Err(shmbus::Error::Timeout) => {}
            Err(shmbus::Error::Closed) => {
                // Every open topic is closed; `fill` confirms it per topic
                // (and drains what is left) on the next round.
            }
            Err(e) => return Err(CliError::from(e).context("waiting for messages")),
        }
    }
}

/// The receive loop of a pattern subscription.
fn receive_patterns(
    sub: &mut shmbus::PatternSubscriber,
    args: &SubArgs,
    deadline: Option<Instant>,
    out: &mut Output,
    printed: &mut u64,
) -> Result<End, CliError> {
    loop {
        if signals::stop_requested() {
            return Ok(End::Done);
        }
        let mut wait = WAIT_SLICE;
        if let Some(d) = deadline {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(End::TimedOut);
            }
            wait = wait.min(left);
        }
        // Print what is there without waiting; flush before a wait.
        let got = match sub.try_recv() {
            Ok(None) => {
                out.flush()?;
                sub.recv_timeout(wait).map(Some)
            }
            other => other,
        };
        match got {
            Ok(Some(msg)) => {
                let rec = Record {
                    topic: msg.topic,
                    seq: msg.seq,
                    timestamp_ns: msg.timestamp_ns,
                    data: msg.data,
                };
                write_record(out.writer(), args.format, args.verbose, &rec)
                    .map_err(CliError::stdout)?;
                out.end_message()?;
                *printed += 1;
                if args.count.is_some_and(|n| *printed >= n) {
                    return Ok(End::Done);
                }
            }
            Ok(None) => {}
            Err(shmbus::Error::Lagged(n)) => crate::error::warn(&format!(
                "lost {n} messages on `{}`",
                sub.last_topic().unwrap_or("?")
            )),
            Err(shmbus::Error::Closed) => {
                crate::error::warn("shmbusd shut down and every followed topic is closed");
                return Ok(End::Done);
            }
            Err(shmbus::Error::Interrupted) => {}
            Err(shmbus::Error::Timeout) if out.reader_gone() => {
                return Err(CliError::stdout(io::ErrorKind::BrokenPipe.into()));
            }
            Err(shmbus::Error::Timeout) => {}
            // A topic that could not be joined: say so, follow the others.
            Err(e) => match sub.last_topic().filter(|t| !t.is_empty()) {
                Some(topic) => crate::error::warn(&format!("cannot follow `{topic}`: {e}")),
                None => crate::error::warn(&e.to_string()),
            },
        }
    }
}

/// Takes the next message of `sub` into `slot`, if there is one; reports lost
/// messages; marks the slot closed when the topic was closed.
fn fill(sub: &mut Subscriber, slot: &mut Slot) -> Result<(), CliError> {
    loop {
        match sub.try_recv() {
            Ok(Some(msg)) => {
                slot.seq = msg.seq;
                slot.timestamp_ns = msg.timestamp_ns;
                slot.data.clear();
                slot.data.extend_from_slice(msg.data);
                slot.full = true;
                return Ok(());
            }
            Ok(None) => return Ok(()),
            Err(shmbus::Error::Lagged(n)) => {
                crate::error::warn(&format!("lost {n} messages on `{}`", sub.topic()));
            }
            Err(shmbus::Error::Closed) => {
                crate::error::warn(&format!(
                    "topic `{}` was closed (shmbusd removed it or shut down)",
                    sub.topic()
                ));
                slot.closed = true;
                return Ok(());
            }
            Err(shmbus::Error::Interrupted) => return Ok(()),
            Err(e) => {
                return Err(CliError::from(e)
                    .context(format_args!("cannot receive from `{}`", sub.topic())))
            }
        }
    }
}
