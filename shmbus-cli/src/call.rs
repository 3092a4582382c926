//! `shmbus call SERVICE [MSG]`: send one request to a service and print its
//! reply (SPEC §10).
//!
//! The request is MSG, or all of stdin when there is no MSG (or it is `-`),
//! byte for byte: stdin is read up to the service's max request size, so a
//! request that is too large fails with both sizes and is never sent.
//! Services live in shared memory without the daemon, so `call` needs no
//! `shmbusd`.
//!
//! The call is made as a pipelined request whose reply is awaited in slices,
//! so that Ctrl-C is noticed even if it lands just before a futex wait, and
//! `-W/--timeout` bounds the whole call (room in the queue and the reply).
//! Endings: the reply printed (0); no server, the server died, the server
//! answered with an error, or Ctrl-C (1, one line on stderr); `-W` ran out
//! (3; the call is given up, a late reply is dropped).
//!
//! `--idempotent` says the request is safe to repeat: when the server
//! holding it dies, the same request is sent again (`Client::send_retry`,
//! counted in the service's `retries`) to whichever server takes it, within
//! the same `-W`, until a server answers, none is left (`no server`), or
//! `-W` runs out. At least once: the dead server may have carried it out.

use std::borrow::Cow;
use std::ffi::OsString;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant};

use shmbus::service::{Client, Ticket};

use crate::duration::{format_duration, parse_duration};
use crate::error::CliError;
use crate::format::{json_payload, write_escaped, write_hex, Format};
use crate::global::Global;
use crate::lines::read_message;
use crate::output::Output;
use crate::signals;

const EXAMPLES: &str = "\
Examples:
  shmbus serve upper -- tr a-z A-Z &             # a service: each request through `tr`
  shmbus call upper hello                        # prints HELLO
  echo hello | shmbus call upper                 # the request is all of stdin
  shmbus call upper hello -W 500ms               # give up (exit 3) after 500 ms
  shmbus call lookup key --idempotent -W 5s      # safe to repeat: retried if its server dies
  shmbus call blobs -f -W 5s < req.bin --format raw > reply.bin
  shmbus call echo hi --format json | jq -r .payload";

/// Longest single wait, so that a Ctrl-C that lands between our look at the
/// stop flag and the futex wait is still noticed soon (as in `sub`).
const WAIT_SLICE: Duration = Duration::from_millis(250);

/// Options of `shmbus call`.
#[derive(clap::Args, Debug)]
#[command(after_help = EXAMPLES)]
pub struct CallArgs {
    /// Service to call, e.g. `math/add`.
    pub service: String,
    /// The request; none (or `-`) sends all of stdin as one request.
    #[arg(value_name = "MSG", conflicts_with = "file")]
    pub message: Option<OsString>,
    /// Send the whole content of FILE as the request (`-` for stdin).
    #[arg(short = 'f', long, value_name = "FILE")]
    pub file: Option<std::path::PathBuf>,
    /// Give up after DUR in all (exit 3), e.g. `500ms`, `5s`; default: wait
    /// until the reply comes, the server dies, or Ctrl-C.
    #[arg(short = 'W', long, value_name = "DUR", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Output format of the reply: `text` drops one trailing newline and
    /// escapes control characters; `raw` is the exact bytes.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// The request is safe to repeat: if the server holding it dies, send
    /// it again to another server (within `-W`) instead of failing. At
    /// least once: the dead server may have carried it out.
    #[arg(long)]
    pub idempotent: bool,
}

/// Runs `shmbus call`.
pub fn run(global: &Global, args: CallArgs) -> Result<(), CliError> {
    shmbus::names::validate_bus(&global.bus)?;
    shmbus::names::validate_service(&args.service)?;
    let mut call = Call {
        service: &args.service,
        timeout: args.timeout,
        deadline: None,
        idempotent: args.idempotent,
    };
    let mut client = Client::attach(&global.bus, &args.service).map_err(|e| call.failed(e))?;
    signals::install()?;
    let max = client.config().max_request_size as usize;
    let (request, len) = read_request(&args, max)?;
    if len > max {
        return Err(CliError::runtime(format!(
            "request of {len} bytes is over the max request size of service `{}` ({max} bytes)",
            args.service
        ))
        .with_hint("send less, or restart the service with a larger `--max-request-size`"));
    }
    // `-W` counts from here: reading stdin is the user's time, not the call's.
    call.deadline = args.timeout.map(|t| Instant::now() + t);
    let ticket = call.send(&mut client, &request, false)?;
    let mut out = Output::new();
    call.receive(&mut client, ticket, &request, |reply| {
        write_reply(out.writer(), args.format, &args.service, reply)
    })?
    .map_err(CliError::stdout)?;
    out.flush()
}

/// The request: MSG, or stdin (or a file) read whole, with its full length.
/// At most `max` bytes are kept: past that only the length is counted, for
/// the error.
fn read_request(args: &CallArgs, max: usize) -> Result<(Cow<'_, [u8]>, usize), CliError> {
    let read_all = |mut input: &mut dyn io::BufRead, what: &str| {
        let mut buf = Vec::new();
        let len = read_message(&mut input, &mut buf, max, None, signals::stop_requested)
            .map_err(|e| match e.kind() {
                io::ErrorKind::Interrupted => {
                    CliError::runtime("interrupted while reading the request: no call was made")
                }
                _ => CliError::runtime(format!("cannot read {what}: {e}")),
            })?
            .map_or(0, |r| r.len);
        Ok((Cow::Owned(buf), len))
    };
    match (&args.file, &args.message) {
        (Some(path), _) if path.as_os_str() != "-" => {
            let file = std::fs::File::open(path)
                .map_err(|e| CliError::runtime(format!("cannot read {}: {e}", path.display())))?;
            read_all(&mut io::BufReader::new(file), &path.display().to_string())
        }
        (None, Some(m)) if m != "-" => Ok((Cow::Borrowed(m.as_bytes()), m.len())),
        _ => read_all(&mut io::stdin().lock(), "stdin"),
    }
}

/// One call's bounds, for its two waits.
struct Call<'a> {
    service: &'a str,
    timeout: Option<Duration>,
    deadline: Option<Instant>,
    /// `--idempotent`: send the request again when its server dies.
    idempotent: bool,
}

impl Call<'_> {
    /// How long the next wait may last; `None` once `-W` has run out.
    fn slice(&self) -> Option<Duration> {
        match self.deadline {
            None => Some(WAIT_SLICE),
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                (!left.is_zero()).then(|| left.min(WAIT_SLICE))
            }
        }
    }

    fn timed_out(&self, waiting_for: &str) -> CliError {
        let waited = self.timeout.map(format_duration).unwrap_or_default();
        CliError::timeout(format!(
            "timed out after {waited} waiting for {waiting_for} of service `{}`: the call was given up; see `shmbus services`",
            self.service
        ))
    }

    fn interrupted(&self) -> CliError {
        CliError::runtime(format!(
            "interrupted while waiting for the reply of service `{}`: the call was given up",
            self.service
        ))
    }

    fn failed(&self, e: shmbus::Error) -> CliError {
        match e {
            // The library's messages name the service and say what to do.
            e @ (shmbus::Error::NoServer { .. }
            | shmbus::Error::ServerGone { .. }
            | shmbus::Error::Remote { .. }
            | shmbus::Error::ServiceBusy { .. }) => CliError::from(e),
            e => CliError::from(e).context(format_args!("cannot call `{}`", self.service)),
        }
    }

    /// Queues the request, waiting (within `-W`) for room in the queue;
    /// `retry`: again, after its server died.
    fn send(&self, client: &mut Client, request: &[u8], retry: bool) -> Result<Ticket, CliError> {
        loop {
            // A retry happens while the user waits for the reply: the
            // endings say so.
            if signals::stop_requested() {
                return Err(if retry {
                    self.interrupted()
                } else {
                    CliError::runtime(
                        "interrupted while waiting for room in the queue: no call was made",
                    )
                });
            }
            let Some(slice) = self.slice() else {
                return Err(self.timed_out(if retry {
                    "the reply"
                } else {
                    "room in the request queue"
                }));
            };
            let sent = if retry {
                client.send_retry(request, slice)
            } else {
                client.send_request_timeout(request, slice)
            };
            match sent {
                Ok(ticket) => return Ok(ticket),
                Err(shmbus::Error::Timeout | shmbus::Error::Interrupted) => {}
                Err(e) => return Err(self.failed(e)),
            }
        }
    }

    /// Waits (within `-W`) for the reply of `ticket`, a call of `request`,
    /// and lends it to `f`. Gives the call up when it ends without a reply;
    /// with `--idempotent`, sends it again when its server died.
    fn receive<R>(
        &self,
        client: &mut Client,
        mut ticket: Ticket,
        request: &[u8],
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, CliError> {
        let mut f = Some(f);
        loop {
            let ended = if signals::stop_requested() {
                Some(self.interrupted())
            } else {
                self.slice().is_none().then(|| self.timed_out("the reply"))
            };
            if let Some(e) = ended {
                // The call is dropped either way; a failed cancel changes nothing for the user.
                let _ = client.cancel(ticket);
                return Err(e);
            }
            let slice = self.slice().unwrap_or(Duration::ZERO);
            match client.recv_reply_timeout_with(ticket, slice, |reply| f.take().map(|f| f(reply)))
            {
                Ok(Some(r)) => return Ok(r),
                // The lender runs once, when the reply is there.
                Ok(None) => unreachable!("a reply is lent once"),
                Err(shmbus::Error::Timeout | shmbus::Error::Interrupted) => {}
                // The call is over (nothing in flight); `send` checks `-W`
                // and Ctrl-C before it queues the request again.
                Err(shmbus::Error::ServerGone { .. }) if self.idempotent => {
                    ticket = self.send(client, request, true)?;
                }
                Err(e) => return Err(self.failed(e)),
            }
        }
    }
}

/// Prints one reply in `format` (see `format.rs`; `text` drops one trailing
/// newline first, since a reply made by a command usually ends in one, and
/// `json` names the service instead of a topic).
fn write_reply(
    out: &mut impl Write,
    format: Format,
    service: &str,
    reply: &[u8],
) -> io::Result<()> {
    match format {
        Format::Text => {
            write_escaped(out, reply.strip_suffix(b"\n").unwrap_or(reply))?;
            out.write_all(b"\n")
        }
        Format::Hex => {
            write_hex(out, reply)?;
            out.write_all(b"\n")
        }
        Format::Raw => out.write_all(reply),
        Format::Json => {
            let (payload, base64) = json_payload(reply);
            let doc = JsonReply {
                service,
                length: reply.len(),
                payload,
                base64,
            };
            serde_json::to_writer(&mut *out, &doc).map_err(io::Error::from)?;
            out.write_all(b"\n")
        }
    }
}

/// The reply as one JSON object, keys in reading order.
#[derive(serde::Serialize)]
struct JsonReply<'a> {
    service: &'a str,
    length: usize,
    payload: Cow<'a, str>,
    base64: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(format: Format, reply: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        write_reply(&mut out, format, "svc", reply).unwrap();
        out
    }

    #[test]
    fn text_drops_one_trailing_newline() {
        assert_eq!(render(Format::Text, b"HELLO\n"), b"HELLO\n");
        assert_eq!(render(Format::Text, b"HELLO"), b"HELLO\n");
        assert_eq!(render(Format::Text, b"a\n\n"), b"a\\n\n");
        assert_eq!(render(Format::Text, b"\x1b[2J"), b"\\x1b[2J\n");
        assert_eq!(render(Format::Text, b""), b"\n");
    }

    #[test]
    fn raw_hex_and_json() {
        let all: Vec<u8> = (0..=255u8).collect();
        assert_eq!(render(Format::Raw, &all), all);
        assert_eq!(render(Format::Hex, b"\x00\xab\n"), b"00ab0a\n");
        let v: serde_json::Value = serde_json::from_slice(&render(Format::Json, b"hi\n")).unwrap();
        assert_eq!(v["service"], "svc");
        assert_eq!(v["length"], 3);
        assert_eq!(v["payload"], "hi\n");
        assert_eq!(v["base64"], false);
        let v: serde_json::Value = serde_json::from_slice(&render(Format::Json, &all)).unwrap();
        assert_eq!(v["base64"], true);
        assert_eq!(v["length"], 256);
    }
}
