//! `shmbusd`, the daemon of one shmbus bus: policy and lifecycle around the
//! `shmbus` library's mechanism.
//!
//! It takes the bus lock (one daemon per bus), adopts the segments a killed
//! predecessor left, creates the config's topics, then serves the control
//! socket in a single-threaded event loop that also reaps dead clients. On
//! SIGTERM/SIGINT it closes every topic (waking all waiters with `Closed`),
//! unlinks the segments (the services' too), and removes its socket and
//! lock.
//!
//! Start reading at [`run`], then `server.rs` (the loop), `connection.rs`
//! (one client), `requests.rs` (what each request does), `topics.rs` (the
//! segments), `services.rs` (services' segments and stats), `access.rs` (who may do what) and `config.rs` (the file).

mod access;
mod cli;
mod config;
mod connection;
mod lock;
mod outgoing;
mod requests;
mod rundir;
mod server;
mod services;
mod signals;
mod topics;
mod watchers;

use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use shmbus::names::{default_runtime_dir, lock_path, socket_path, validate_bus};

use crate::cli::Args;
use crate::config::Config;
use crate::lock::{BusLock, LockError};
use crate::requests::Daemon;
use crate::server::{Exit, Server};
use crate::signals::Signals;
use crate::topics::Topics;

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = init_logging(&args.log_level) {
        eprintln!("shmbusd: {e}");
        return ExitCode::from(2);
    }
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::from(1)
        }
    }
}

/// Logs go to stderr; under systemd (which timestamps every line itself)
/// without our own timestamp. Colours only when stderr is a terminal: in a
/// file, a pipe or the journal, escape codes would be noise in every line.
fn init_logging(filter: &str) -> Result<(), String> {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .map_err(|e| format!("bad --log-level `{filter}`: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(filter)
        .with_target(false);
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder.without_time().init();
    } else {
        builder.init();
    }
    Ok(())
}

/// The daemon's whole life. Errors are one line for the user.
fn run(args: &Args) -> Result<(), String> {
    validate_bus(&args.bus).map_err(|e| e.to_string())?;
    let config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::builtin(),
    };
    if args.check_config {
        tracing::info!("config is valid");
        return Ok(());
    }
    let bus = args.bus.clone();
    let runtime_dir = args.runtime_dir.clone().unwrap_or_else(default_runtime_dir);
    rundir::prepare(&runtime_dir, config.socket_group.as_ref())?;
    let socket = socket_path(&runtime_dir, &bus);
    let lock_file = lock_path(&runtime_dir, &bus);

    let lock = match BusLock::acquire(&lock_file) {
        Ok(lock) => lock,
        Err(LockError::Held(pid)) => {
            let who = pid.map_or_else(
                || format!("another shmbusd (lock {})", lock_file.display()),
                |p| format!("pid {p}"),
            );
            return Err(if args.clean {
                format!("cannot clean bus `{bus}`: it is served by {who}; stop that shmbusd first")
            } else {
                format!("bus `{bus}` is already served by {who}")
            });
        }
        Err(LockError::Io(e)) => return Err(e),
    };
    if args.clean {
        return clean(&bus, &socket, lock);
    }

    raise_fd_limit(config.max_connections);
    let signals = Signals::install().map_err(|e| format!("cannot install signal handlers: {e}"))?;

    let mut topics = Topics::new(&bus);
    topics.adopt_existing(|t| config.access.segment_perms(t));
    let mut daemon = Daemon {
        bus: bus.clone(),
        config,
        topics,
        watchers: Default::default(),
    };
    daemon.create_config_topics();

    let listener = rundir::bind_socket(&socket, daemon.config.socket_group.as_ref())?;
    tracing::info!(
        "serving bus `{bus}` on {} (pid {}, {} topic(s), config: {})",
        socket.display(),
        std::process::id(),
        daemon.topics.len(),
        daemon
            .config
            .source
            .as_ref()
            .map_or("built-in defaults".to_string(), |p| p.display().to_string())
    );
    let mut server = Server::new(daemon, listener, socket.clone(), signals)
        .map_err(|e| format!("cannot start the event loop: {e}"))?;
    match server.run() {
        Ok(Exit::Signal(name)) => {
            tracing::info!("{name}: shutting down");
            // Socket first: from now on clients get "no shmbusd" instead of
            // opening a topic that is about to go.
            rundir::remove_socket(&socket);
            let mut daemon = server.into_daemon();
            daemon.topics.shutdown();
            services::shutdown(&bus);
            lock.remove();
            tracing::info!("bus `{bus}` shut down");
            Ok(())
        }
        // Leave the segments for the next daemon to adopt, as after a crash.
        Err(e) => Err(format!("event loop failed: {e}")),
    }
}

/// `--clean`: with the lock held (so no daemon lives), remove every segment
/// of the bus that shmbusd's uid owns, the socket and the lock file, and say
/// which files of other owners it did not touch.
fn clean(bus: &str, socket: &Path, lock: BusLock) -> Result<(), String> {
    let cleaned = shmbus::daemon::remove_bus_segments(bus)
        .map_err(|e| format!("cannot remove the segments of bus `{bus}`: {e}"))?;
    rundir::remove_socket(socket);
    lock.remove();
    tracing::info!(
        "bus `{bus}`: removed {} segment file(s), the socket and the lock file",
        cleaned.removed
    );
    for (file, owner) in &cleaned.foreign {
        let path = shmbus::daemon::shm_file(file);
        tracing::warn!(
            "did not touch {}: it is owned by uid {owner}, not by shmbusd's uid {}; {}",
            path.display(),
            shmbus::daemon::euid(),
            shmbus::daemon::removal_hint(&path, *owner)
        );
    }
    Ok(())
}

/// Every connection is a file descriptor: lift the soft limit toward the
/// hard one so `max_connections` can be reached.
fn raise_fd_limit(max_connections: usize) {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    let want = (max_connections as u64 + 64).min(hard);
    if soft < want {
        if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, want, hard) {
            tracing::warn!("cannot raise the open-file limit to {want}: {e}");
        }
    }
}
