//! Command-line options of `shmbusd`.

use std::path::PathBuf;

use clap::Parser;

/// shmbusd: the daemon of one shmbus bus.
///
/// It creates the bus's topics (shared-memory rings in /dev/shm), answers the
/// control socket that clients use to open, create, list and measure topics,
/// and reclaims what dead clients held. Messages never pass through it.
/// Runs in the foreground and logs to stderr.
///
/// Signals: SIGTERM/SIGINT shut down (topics are closed and removed, and
/// the bus's services removed),
/// SIGHUP reloads the config file, SIGUSR1 logs a stats snapshot.
#[derive(Debug, Parser)]
#[command(
    name = "shmbusd",
    version,
    about,
    long_about,
    after_help = "Examples:\n  shmbusd\n  shmbusd --bus robot --config /etc/shmbus/robot.toml\n  shmbusd --bus robot --clean\n\nExit status: 0 after SIGTERM/SIGINT (or a successful --clean/--check-config), 1 when it cannot start or run, 2 for a bad command line.\nOperations guide: docs/operations.md."
)]
pub struct Args {
    /// Bus to serve ([A-Za-z0-9_-]{1,32}).
    #[arg(
        long,
        env = "SHMBUS_BUS",
        default_value = shmbus::names::DEFAULT_BUS,
        value_name = "NAME"
    )]
    pub bus: String,

    /// TOML config file (every key optional; see docs/operations.md). Without
    /// one, built-in defaults apply.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Directory for the control socket and the lock file [default:
    /// $XDG_RUNTIME_DIR/shmbus, else /tmp/shmbus-<uid>].
    #[arg(long, env = "SHMBUS_RUNTIME_DIR", value_name = "DIR")]
    pub runtime_dir: Option<PathBuf>,

    /// Log filter: error, warn, info, debug, trace, or tracing directives
    /// such as `shmbusd=debug`.
    #[arg(long, env = "SHMBUS_LOG", default_value = "info", value_name = "LEVEL")]
    pub log_level: String,

    /// Remove the bus's segments (topics and services), socket and lock file, then exit. Refused
    /// while a daemon serves the bus.
    #[arg(long)]
    pub clean: bool,

    /// Check the config file and exit (0 if it is valid).
    #[arg(long, requires = "config")]
    pub check_config: bool,
}
