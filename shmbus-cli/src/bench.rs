//! `shmbus bench`: the built-in benchmark (SPEC §7, §9).
//!
//! The measuring lives in the `shmbus-bench` crate, shared with the
//! `shmbus-bench` binary so that both take the same flags and print the same
//! table; this file only gives it a place in the `shmbus` grammar. The cases
//! run on a private bus of their own (no daemon needed, nothing of the
//! user's bus touched), between this executable and copies of it re-executed
//! as children, which is why `main` calls
//! [`shmbus_bench::run_child_if_requested`] before anything else.

use crate::error::CliError;

const EXAMPLES: &str = "\
Examples:
  shmbus bench                          # everything: floors, kernel IPC, shmbus latency, throughput, fan-out
  shmbus bench --quick                  # a smoke run of a few seconds; figures are indicative only
  shmbus bench --only latency,throughput
  shmbus bench --json > bench.json      # the report for scripts";

/// Options of `shmbus bench`: the benchmark's own, unchanged.
#[derive(clap::Args, Debug)]
#[command(after_help = EXAMPLES)]
pub struct BenchCmd {
    /// The benchmark's options.
    #[command(flatten)]
    pub args: shmbus_bench::BenchArgs,
}

/// Runs `shmbus bench`.
pub fn run(cmd: BenchCmd) -> Result<(), CliError> {
    shmbus_bench::run_cli(&cmd.args).map_err(|e| CliError::runtime(format!("bench failed: {e}")))
}
