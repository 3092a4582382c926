//! `shmbus serve SERVICE --echo` and `shmbus serve SERVICE -- CMD...`: answer
//! a service's calls from the shell (SPEC §10).
//!
//! `--echo` answers each request with itself; with a command, each request
//! runs it inetd style (`inetd.rs`): the request on its stdin, its stdout is
//! the reply, a failure (non-zero exit, a reply over the service's max reply
//! size, a command that cannot run) is answered with an error the caller
//! sees. `--workers N` attaches N servers (one thread each), so N requests
//! are answered at once; the request queue balances them with the service's
//! other servers, in this process or others. The first server to attach
//! creates the service, with the size options given here.
//!
//! Endings: Ctrl-C or SIGTERM (0: calls being answered get an error reply,
//! then every server detaches); the service's segment removed from
//! /dev/shm (0: shmbusd shut down or `shmbusd --clean`, or someone removed
//! it; new callers could no longer reach us); an error (1).

use std::ffi::OsString;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use shmbus::service::{Request, Server, ServiceConfig};

use crate::error::CliError;
use crate::global::Global;
use crate::inetd::{self, Outcome};
use crate::signals;

const EXAMPLES: &str = "\
Examples:
  shmbus serve echo --echo                       # answer each request with itself
  shmbus serve upper -- tr a-z A-Z               # each request through `tr`; its output is the reply
  shmbus serve date -- date -u                   # ignores the request
  shmbus serve resize --workers 4 -- convert - -resize 50% -
  shmbus serve blobs --max-request-size 1M --max-reply-size 1M -- gzip -c

The service is created by its first server; size options apply only then.";

/// Longest wait for a request, so that a stop or a removed segment is
/// noticed soon by every worker (a signal interrupts only one thread).
const WAIT_SLICE: Duration = Duration::from_millis(250);

/// Options of `shmbus serve`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = EXAMPLES,
    override_usage = "shmbus serve [OPTIONS] SERVICE (--echo | -- CMD [ARGS]...)"
)]
#[command(group = clap::ArgGroup::new("answer").required(true).args(["echo", "command"]))]
pub struct ServeArgs {
    /// Service to serve, e.g. `math/add`.
    pub service: String,
    /// Answer each request with the request itself.
    #[arg(long)]
    pub echo: bool,
    /// Command to run for each request (after `--`): request on stdin, reply from stdout.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<OsString>,
    /// Answer N requests at once (N servers, one thread each).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = crate::global::parse_positive)]
    pub workers: u64,
    /// Request queue cells, a power of two, if this creates the service [default: 256].
    #[arg(long, value_name = "N")]
    pub queue_capacity: Option<u32>,
    /// Largest request, if this creates the service [default: 4K].
    #[arg(long, value_name = "BYTES", value_parser = shmbus::parse_size::<u32>)]
    pub max_request_size: Option<u32>,
    /// Largest reply, if this creates the service [default: 4K].
    #[arg(long, value_name = "BYTES", value_parser = shmbus::parse_size::<u32>)]
    pub max_reply_size: Option<u32>,
}

impl ServeArgs {
    /// The settings asked for, over the library's defaults.
    fn config(&self) -> ServiceConfig {
        let mut cfg = ServiceConfig::default();
        if let Some(n) = self.queue_capacity {
            cfg.queue_capacity = n;
        }
        if let Some(n) = self.max_request_size {
            cfg.max_request_size = n;
        }
        if let Some(n) = self.max_reply_size {
            cfg.max_reply_size = n;
        }
        // Room for the workers asked for, if this creates the service.
        cfg.max_servers = cfg
            .max_servers
            .max(self.workers.min(u64::from(u32::MAX)) as u32);
        cfg
    }
}

/// Runs `shmbus serve`.
pub fn run(global: &Global, args: ServeArgs) -> Result<(), CliError> {
    shmbus::names::validate_bus(&global.bus)?;
    shmbus::names::validate_service(&args.service)?;
    let cfg = args.config();
    cfg.validate()?;
    let mut servers = Vec::with_capacity(args.workers.min(1024) as usize);
    for _ in 0..args.workers {
        let server = Server::attach_with(&global.bus, &args.service, &cfg).map_err(|e| {
            CliError::from(e).context(format_args!("cannot serve `{}`", args.service))
        })?;
        servers.push(server);
    }
    signals::install()?;
    let done = AtomicBool::new(false);
    let handler = if args.echo {
        Handler::Echo
    } else {
        Handler::Command(&args.command)
    };
    let ended: Vec<Result<End, CliError>> = std::thread::scope(|s| {
        let workers: Vec<_> = servers
            .into_iter()
            .map(|server| {
                let (done, handler) = (&done, &handler);
                s.spawn(move || {
                    let ended = work(&server, handler, done);
                    // One worker's end is everyone's.
                    done.store(true, Ordering::SeqCst);
                    ended
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(CliError::runtime("a worker thread panicked")))
            })
            .collect()
    });
    let mut removed = false;
    for end in ended {
        match end? {
            End::Stopped => {}
            End::Removed => removed = true,
        }
    }
    if removed {
        crate::error::warn(&format!(
            "service `{}` was removed from /dev/shm (shmbusd shut down or cleaned the bus, or it was deleted): stopping",
            args.service
        ));
    }
    Ok(())
}

/// How a request is answered.
enum Handler<'a> {
    Echo,
    Command(&'a [OsString]),
}

/// Why a worker stopped, when it did not fail.
enum End {
    /// Ctrl-C, SIGTERM, or another worker ended.
    Stopped,
    /// The service's segment left /dev/shm.
    Removed,
}

/// One worker: takes requests and answers them until told to stop.
fn work(server: &Server, handler: &Handler<'_>, done: &AtomicBool) -> Result<End, CliError> {
    let stop = || signals::stop_requested() || done.load(Ordering::SeqCst);
    loop {
        if stop() {
            return Ok(End::Stopped);
        }
        let req = match server.recv_request_timeout(WAIT_SLICE) {
            Ok(req) => req,
            // The segment is gone from /dev/shm: callers cannot find us.
            Err(shmbus::Error::Closed) => return Ok(End::Removed),
            Err(shmbus::Error::Timeout | shmbus::Error::Interrupted) => continue,
            Err(e) => {
                return Err(CliError::from(e).context(format_args!(
                    "cannot receive a request of `{}`",
                    server.service()
                )))
            }
        };
        answer(server, req, handler, &stop)?;
    }
}

/// Answers one request.
fn answer(
    server: &Server,
    req: Request<'_>,
    handler: &Handler<'_>,
    stop: &dyn Fn() -> bool,
) -> Result<(), CliError> {
    let ticket = req.ticket();
    let sent = match handler {
        // Straight from the request's queue cell into the caller's reply slot.
        Handler::Echo => match server.reply(ticket, &req) {
            Err(shmbus::Error::ServiceLimit { what, .. }) => server.reply_error(ticket, &what),
            other => other,
        },
        Handler::Command(cmd) => {
            // The command may take long: free the queue cell first.
            let input = req.to_vec();
            drop(req);
            let max = server.config().max_reply_size as usize;
            match inetd::answer(cmd, &input, max, stop) {
                Outcome::Reply(bytes) => server.reply(ticket, &bytes),
                Outcome::Failed(message) => {
                    crate::error::warn(&format!(
                        "call {} of client {} on `{}`: {message}",
                        ticket.correlation_id(),
                        ticket.client(),
                        server.service()
                    ));
                    server.reply_error(ticket, &message)
                }
                Outcome::Stopped => server.reply_error(
                    ticket,
                    "shmbus serve was stopped while running the command: retry the call if it is safe to repeat",
                ),
            }
        }
    };
    // `Ok(false)`: the caller gave up or died; its reply is dropped.
    sent.map(|_| ()).map_err(|e| {
        CliError::from(e).context(format_args!("cannot reply on `{}`", server.service()))
    })
}
