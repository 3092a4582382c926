//! What to run: the options a caller (the `shmbus-bench` binary, the
//! `shmbus bench` subcommand) passes to [`crate::run`], and the clap
//! arguments both binaries share so that a user sees the same flags.

use serde::Serialize;

/// A group of cases, selectable with `--only`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Group {
    /// The floors: raw spin ping-pong, raw futex ping-pong, memcpy, bare
    /// shared-memory ring.
    Floors,
    /// The kernel's message passing: pipe, Unix socket, POSIX mqueue.
    Kernel,
    /// shmbus ping-pong latency (spin, spin-then-park, park; 64 B, 4 KiB).
    Latency,
    /// shmbus 1 → 1 throughput (64 B, 4 KiB, 1 MiB; copy and zero-copy).
    Throughput,
    /// shmbus 1 → N fan-out (N = 1, 2, 4, 8, 16).
    Fanout,
    /// Request/reply, 64 B: shmbus services (call/serve; spin,
    /// spin-then-park, park) and a Unix-socket request/reply; round trips of
    /// sequential calls and calls/s of pipelined ones.
    Services,
}

impl Group {
    /// Every group, in report order.
    pub const ALL: [Group; 6] = [
        Group::Floors,
        Group::Kernel,
        Group::Latency,
        Group::Throughput,
        Group::Fanout,
        Group::Services,
    ];
}

/// Options of one benchmark run.
#[derive(Clone, Debug, Default)]
pub struct BenchOptions {
    /// A few seconds in all: far fewer iterations and one repeat, for CI
    /// smoke runs. The figures are then indicative only.
    pub quick: bool,
    /// Groups to run; empty means all. A target whose two sides were not
    /// both run is reported as not measured.
    pub groups: Vec<Group>,
    /// Repeats per case (default 3, or 1 with `quick`).
    pub repeats: Option<u32>,
    /// Draw a progress bar on stderr (only when stderr is a terminal).
    pub progress: bool,
}

impl BenchOptions {
    /// Whether `g` is selected.
    pub fn wants(&self, g: Group) -> bool {
        self.groups.is_empty() || self.groups.contains(&g)
    }

    /// Repeats per case after defaults.
    pub fn repeats(&self) -> u32 {
        self.repeats
            .unwrap_or(if self.quick { 1 } else { 3 })
            .max(1)
    }
}

/// Command-line arguments of the benchmark, shared by `shmbus-bench` and
/// `shmbus bench` (`#[command(flatten)]` them).
#[derive(Clone, Debug, Default, clap::Args)]
pub struct BenchArgs {
    /// Smoke run: a few seconds in all, one repeat; figures are indicative only.
    #[arg(long)]
    pub quick: bool,
    /// Print the report as JSON on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Run only these groups (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub only: Vec<Group>,
    /// Repeats per case [default: 3, or 1 with --quick].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub repeats: Option<u32>,
    /// No progress bar on stderr.
    #[arg(long)]
    pub no_progress: bool,
}

impl BenchArgs {
    /// The run options these arguments ask for.
    pub fn options(&self) -> BenchOptions {
        BenchOptions {
            quick: self.quick,
            groups: self.only.clone(),
            repeats: self.repeats,
            progress: !self.no_progress,
        }
    }
}
