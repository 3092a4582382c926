//! `shmbus-bridge` (also `shmbus bridge`): parses the command line, sets up
//! logging (`RUST_LOG`, default `info` for the bridge and `warn` for Zenoh),
//! and runs the bridge; exit 0 on SIGINT/SIGTERM, 1 with a one-line error
//! otherwise.

use std::io::IsTerminal;

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() {
    let args = shmbus_bridge::BridgeArgs::parse();
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,zenoh=warn,zenoh_transport=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    if let Err(e) = shmbus_bridge::run(args) {
        eprintln!("shmbus-bridge: {e}");
        std::process::exit(1);
    }
}
