//! `shmbus-bench`: the benchmark binary. All the work is in the library
//! (`shmbus_bench::run`); this only parses arguments.

use clap::Parser;

/// Measure shmbus against the hardware floor (spin, futex, memcpy) and the
/// kernel's message passing (pipe, Unix socket, POSIX mqueue), between two
/// processes pinned to different cores, and judge the SPEC §9 targets.
#[derive(Parser, Debug)]
#[command(name = "shmbus-bench", version)]
struct Cli {
    #[command(flatten)]
    args: shmbus_bench::BenchArgs,
}

fn main() {
    // Children of a case are this executable re-executed: they must take
    // their role before anything else happens.
    shmbus_bench::run_child_if_requested();
    let cli = Cli::parse();
    if let Err(e) = shmbus_bench::run_cli(&cli.args) {
        eprintln!("shmbus-bench: {e}");
        std::process::exit(1);
    }
}
