//! `shmbus-bench`: measures shmbus against the hardware floor and the
//! kernel's message passing, in one run on one machine, as SPEC §9 requires.
//!
//! Every case runs between two processes pinned to different cores: the
//! parent (this process) measures, the child is this same executable
//! re-executed with [`child::CHILD_ENV`] set. That is why any binary that
//! runs the benchmark must call [`run_child_if_requested`] first thing in
//! `main`.
//!
//! Where to start reading: [`run`] (the runner), [`plan`] (which cases, how
//! many iterations), [`baselines`] and [`shmbus_cases`] (what each case
//! does), [`report`] and [`targets`] (what is printed and judged).
//!
//! The modules are layered: each uses only modules below it, so there is no
//! import cycle (check: `python3 scripts/module_cycles.py bench/src`). From
//! the bottom: plain data and helpers that use no other module ([`clock`],
//! [`stats`], [`affinity`], [`options`], [`cleanup`], [`stamp`], [`role`]
//! — what a child is told to do); the shared memory ([`region`], then
//! [`control`]); the parent side of a case ([`supervisor`]); the cases
//! ([`shmbus_cases`], then [`baselines`], whose copy floor and request/reply
//! baseline take their sizes from the shmbus cases); the child side
//! ([`child`], which dispatches a role to its case); what runs and what is
//! printed ([`plan`], [`units`], [`row`], [`targets`], [`report`], then
//! [`runner`]).
//!
//! Use from another binary (the `shmbus bench` subcommand):
//!
//! ```no_run
//! shmbus_bench::run_child_if_requested();
//! // ... parse arguments, with `shmbus_bench::BenchArgs` flattened in ...
//! let args = shmbus_bench::BenchArgs::default();
//! if let Err(e) = shmbus_bench::run_cli(&args) {
//!     eprintln!("shmbus bench: {e}");
//!     std::process::exit(1);
//! }
//! ```

pub mod affinity;
pub mod baselines;
pub mod child;
pub mod cleanup;
pub mod clock;
pub mod control;
pub mod options;
pub mod plan;
pub mod region;
pub mod report;
pub mod role;
pub mod row;
pub mod runner;
pub mod shmbus_cases;
pub mod stamp;
pub mod stats;
pub mod supervisor;
pub mod targets;
pub mod units;

pub use child::run_child_if_requested;
pub use options::{BenchArgs, BenchOptions, Group};
pub use report::Report;
pub use runner::run;

/// Runs the benchmark as `args` ask and prints the table (or the JSON with
/// `--json`) on stdout. The whole behaviour of `shmbus-bench` and of
/// `shmbus bench`.
pub fn run_cli(args: &BenchArgs) -> Result<(), String> {
    let report = run(&args.options())?;
    if args.json {
        println!("{}", report.to_json());
    } else {
        report.print_table();
    }
    Ok(())
}
