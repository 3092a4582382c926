//! `shmbus pub TOPIC [MSG]...`: publish each MSG as one message, or each line
//! of stdin, or one whole file.
//!
//! Every message is checked against the topic's max size before it is sent,
//! so a message that is too large fails with both sizes and nothing of it is
//! published. MSG arguments are all checked before the first is sent; lines
//! of stdin are streamed, so the lines before a too-large one were published.
//! With `--repeat N` each message is published N times in a row;
//! `--interval` waits between publishes; `-W/--timeout` bounds how long one
//! publish may wait for room in a full `block` ring (exit 3 when it runs
//! out).
//!
//! Ctrl-C while waiting for input or sleeping between publishes ends the
//! command normally (status 0: everything read was published); Ctrl-C while a
//! message is still waiting for room is a failure (status 1), since that
//! message was not published.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::Duration;

use shmbus::Publisher;

use crate::duration::{format_duration, parse_duration};
use crate::error::CliError;
use crate::global::Global;
use crate::lines::read_message;
use crate::signals;

const EXAMPLES: &str = "\
Examples:
  shmbus pub sensors/temp 21.5                  # one message
  shmbus pub chat hello world                   # two messages: `hello`, `world`
  seq 100000 | shmbus pub counter               # one message per line of stdin
  shmbus pub frames/raw -f frame.bin            # the whole file as one message
  shmbus pub heartbeat alive --repeat 10 --interval 1s
  shmbus pub jobs task -W 500ms                 # give up (exit 3) if the ring stays full";

/// Options of `shmbus pub`.
#[derive(clap::Args, Debug)]
#[command(after_help = EXAMPLES)]
pub struct PubArgs {
    /// Topic to publish to, e.g. `sensors/imu/0`.
    pub topic: String,
    /// Messages, one message each; none (or `-`) reads stdin, one message per line.
    #[arg(value_name = "MSG", conflicts_with = "file")]
    pub messages: Vec<OsString>,
    /// Publish the whole content of FILE as one message (`-` for all of stdin).
    #[arg(short = 'f', long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Publish each message N times in a row.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = crate::global::parse_positive)]
    pub repeat: u64,
    /// Wait this long between publishes, e.g. `100ms`, `1s`.
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub interval: Option<Duration>,
    /// How long one publish may wait while a `block` ring is full (exit 3 after).
    #[arg(short = 'W', long, value_name = "DUR", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Print how many messages were published and how many subscribers were attached at the start.
    #[arg(short, long)]
    pub verbose: bool,
}

/// Where the messages come from.
enum Source {
    /// Command-line arguments, one message each.
    Args(Vec<OsString>),
    /// Lines of stdin.
    StdinLines,
    /// One whole file (`-` = stdin).
    File(PathBuf),
}

/// Runs `shmbus pub`.
pub fn run(global: &Global, args: PubArgs) -> Result<(), CliError> {
    shmbus::names::validate_topic(&args.topic)?;
    let source =
        match (&args.file, args.messages.as_slice()) {
            (Some(path), _) => Source::File(path.clone()),
            (None, []) => Source::StdinLines,
            (None, [one]) if one == "-" => Source::StdinLines,
            (None, many) if many.iter().any(|m| m == "-") => return Err(CliError::usage(
                "`-` (read stdin) cannot be mixed with MSG arguments: give either messages or `-`",
            )),
            (None, many) => Source::Args(many.to_vec()),
        };
    let bus = global.connect()?;
    let publisher = bus.publisher(&args.topic).map_err(|e| {
        CliError::from(e).context(format_args!("cannot publish to `{}`", args.topic))
    })?;
    // Counted before the first publish: those attached now receive every
    // message sent; read at the end it would miss a `sub -c N` that already
    // had its N messages and left.
    let subscribers = publisher.subscriber_count();
    signals::install()?;
    let mut sender = Sender {
        max: publisher.config().max_msg_size as usize,
        publisher,
        repeat: args.repeat,
        interval: args.interval,
        timeout: args.timeout,
        published: 0,
    };
    let outcome = match source {
        Source::Args(messages) => {
            // All arguments are at hand, so check them all before the first
            // publish: a command line with one message too large publishes
            // none, rather than half of what was asked.
            let arg = |i: usize| format!("argument {}", i + 1);
            if let Some((i, m)) = messages
                .iter()
                .enumerate()
                .find(|(_, m)| m.len() > sender.max)
            {
                return Err(sender.too_large(m.len(), arg(i)));
            }
            messages
                .iter()
                .enumerate()
                .try_for_each(|(i, m)| sender.send(m.as_bytes(), m.len(), || arg(i)))
        }
        Source::StdinLines => {
            let stdin = io::stdin().lock();
            sender.send_each(
                BufReader::with_capacity(256 * 1024, stdin),
                Some(b'\n'),
                "stdin",
            )
        }
        Source::File(path) if path.as_os_str() == "-" => {
            sender.send_each(io::stdin().lock(), None, "stdin")
        }
        Source::File(path) => {
            let file = File::open(&path)
                .map_err(|e| CliError::runtime(format!("cannot read {}: {e}", path.display())))?;
            sender.send_each(BufReader::new(file), None, &path.display().to_string())
        }
    };
    match outcome {
        Ok(()) | Err(Stop::UserStop) => {
            if args.verbose {
                println_verbose(sender.published, &args.topic, subscribers);
            }
            Ok(())
        }
        Err(Stop::Failed(e)) => Err(e),
    }
}

/// Why publishing ended early.
enum Stop {
    /// Ctrl-C while nothing was pending: a normal end.
    UserStop,
    /// Anything else.
    Failed(CliError),
}

impl From<CliError> for Stop {
    fn from(e: CliError) -> Stop {
        Stop::Failed(e)
    }
}

/// Publishes messages one by one, with the command's repeat, interval and
/// timeout, counting what went out.
struct Sender {
    publisher: Publisher,
    max: usize,
    repeat: u64,
    interval: Option<Duration>,
    timeout: Option<Duration>,
    published: u64,
}

impl Sender {
    /// Reads messages from `input` (lines when `delim` is a newline, the whole
    /// input when `None`) and publishes each.
    fn send_each(
        &mut self,
        mut input: impl BufRead,
        delim: Option<u8>,
        what: &str,
    ) -> Result<(), Stop> {
        let mut buf = Vec::with_capacity(self.max.min(1 << 20));
        let mut line = 0u64;
        loop {
            let read = match read_message(
                &mut input,
                &mut buf,
                self.max,
                delim,
                signals::stop_requested,
            ) {
                Ok(Some(read)) => read,
                Ok(None) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => return Err(Stop::UserStop),
                Err(e) => return Err(CliError::runtime(format!("cannot read {what}: {e}")).into()),
            };
            line += 1;
            let at = || {
                let name = match delim {
                    Some(_) => format!("line {line} of {what}"),
                    None => what.to_string(),
                };
                if read.capped {
                    format!(
                        "{name} (endless: counted to {} bytes, then stopped)",
                        read.len
                    )
                } else {
                    name
                }
            };
            self.send(&buf, read.len, at)?;
            if delim.is_none() {
                // The whole input was the one message; at its end
                // `read_message` would return an empty one again and again.
                return Ok(());
            }
        }
    }

    /// Publishes `msg` (whose real length is `len`; it was cut if over the
    /// limit) `repeat` times. `at` names the message for errors.
    fn send(&mut self, msg: &[u8], len: usize, at: impl Fn() -> String) -> Result<(), Stop> {
        if len > self.max {
            return Err(self.too_large(len, at()).into());
        }
        for _ in 0..self.repeat {
            if self.published > 0 {
                if let Some(pause) = self.interval {
                    if !signals::sleep(pause) {
                        return Err(Stop::UserStop);
                    }
                }
            }
            self.send_once(msg, &at)?;
        }
        Ok(())
    }

    /// The error for a message of `len` bytes, named `at`, over the limit.
    fn too_large(&self, len: usize, at: String) -> CliError {
        CliError::from(shmbus::Error::TooLarge { len, max: self.max })
            .context(at)
            .with_hint("split it, or recreate the topic with a larger `--max-msg-size`")
    }

    /// One publish, waiting for room as the options say.
    fn send_once(&mut self, msg: &[u8], at: &impl Fn() -> String) -> Result<(), Stop> {
        loop {
            let sent = match self.timeout {
                Some(t) => self.publisher.send_timeout(msg, t),
                None => self.publisher.send(msg),
            };
            match sent {
                Ok(_seq) => {
                    self.published += 1;
                    return Ok(());
                }
                // Another signal (not ours) woke the wait: the message is still pending.
                Err(shmbus::Error::Interrupted) if !signals::stop_requested() => continue,
                Err(shmbus::Error::Interrupted) => {
                    return Err(CliError::runtime(format!(
                        "interrupted while waiting for room on `{}`: {} not published ({} messages were)",
                        self.publisher.topic(),
                        at(),
                        self.published
                    ))
                    .into())
                }
                Err(shmbus::Error::Timeout) => {
                    let waited = self.timeout.map(format_duration).unwrap_or_default();
                    return Err(CliError::timeout(format!(
                        "timed out after {waited} waiting for room on `{}`: {} not published ({} messages were); a subscriber is a whole ring behind, see `shmbus stats {}`",
                        self.publisher.topic(),
                        at(),
                        self.published,
                        self.publisher.topic()
                    ))
                    .into());
                }
                Err(e) => {
                    return Err(CliError::from(e)
                        .context(format_args!("cannot publish {} to `{}`", at(), self.publisher.topic()))
                        .into())
                }
            }
        }
    }
}

/// The `-v` report (on stdout; a closed stdout is not worth an error here).
fn println_verbose(published: u64, topic: &str, subscribers: u32) {
    let plural = |n: u64, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    let _ = writeln!(
        io::stdout(),
        "published {} to `{topic}` ({} attached)",
        plural(published, "message"),
        plural(u64::from(subscribers), "subscriber")
    );
}
