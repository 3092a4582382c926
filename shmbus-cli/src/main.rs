//! `shmbus`, the command line tool of the shmbus message bus: publish,
//! subscribe, inspect, manage and benchmark from the shell (SPEC §7).
//!
//! It is a thin user of the `shmbus` library: `cli.rs` holds the grammar,
//! each subcommand has its own file (`publish.rs`, `subscribe.rs`,
//! `topics.rs`, `stats.rs`, `manage.rs`, `call.rs`, `serve.rs`,
//! `services.rs`, `bench.rs`, `completions.rs`), and the helpers they share
//! are one concept each (`format.rs` for message output, `inetd.rs` for
//! answering a call with a command, `duration.rs`, `size.rs`, `units.rs`,
//! `table.rs`, `lines.rs`, `output.rs`, `signals.rs`). `main` only parses (`usage.rs`), dispatches
//! and turns the outcome into an exit status, in one place (`error.rs`).

mod bench;
mod bridge;
mod call;
mod cli;
mod completions;
mod duration;
mod error;
mod format;
mod global;
mod inetd;
mod lines;
mod manage;
mod output;
mod publish;
mod serve;
mod services;
mod signals;
mod stats;
mod subscribe;
mod table;
mod timestamp;
mod topics;
mod units;
mod usage;

use std::process::ExitCode;

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    // A benchmark child is this executable re-executed: it must take its
    // role before any parsing (its arguments are not ours).
    shmbus_bench::run_child_if_requested();
    quiet_panics();
    // Usage errors exit 2 (one line) and `--help` exits 0, both in there.
    let Cli { global, command } = usage::parse();
    let outcome = match command {
        Command::Pub(args) => publish::run(&global, args),
        Command::Sub(args) => subscribe::run(&global, args),
        Command::Topics(args) => topics::run(&global, args),
        Command::Stats(args) => stats::run(&global, args),
        Command::Create(args) => manage::create(&global, args),
        Command::Rm(args) => manage::rm(&global, args),
        Command::Call(args) => call::run(&global, args),
        Command::Serve(args) => serve::run(&global, args),
        Command::Services(args) => services::run(&global, args),
        Command::Bench(cmd) => bench::run(cmd),
        Command::Bridge(args) => bridge::run(&global, args),
        Command::Completions(args) => {
            completions::run(args, <Cli as clap::CommandFactory>::command())
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => e.report(),
    }
}

/// A bug must still not greet the user with a backtrace: report it as one
/// line that says what to do, and exit 1 (the default panic exit is 101).
fn quiet_panics() {
    std::panic::set_hook(Box::new(|info| {
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".into());
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        error::warn(&format!(
            "internal error ({what}{place}): this is a bug, please report it with the command you ran"
        ));
        std::process::exit(1);
    }));
}
