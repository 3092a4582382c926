//! Runs the planned cases: pins this process to the parent core, runs every
//! case `repeats` times with a progress bar on stderr, and leaves no kernel
//! object and no process behind, whatever happens.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::affinity::{self, SavedAffinity};
use crate::baselines::{futex, memcpy, mqueue, ring, spin, stream, unix_rpc};
use crate::cleanup::{self, Resource, BUS_PREFIX};
use crate::options::BenchOptions;
use crate::plan::{self, CaseDef, CaseKind};
use crate::report::Report;
use crate::shmbus_cases::fanout::{self, FanOutPlan};
use crate::shmbus_cases::service::{self, RpcPlan};
use crate::shmbus_cases::{latency, throughput};
use crate::stats::Sample;
use crate::supervisor::Ctx;
use crate::units::size_label;

/// Longest one repetition may take before the run is declared stuck.
const CASE_DEADLINE: Duration = Duration::from_secs(120);
/// Fan-out phase-2 messages per timed burst of phase 1.
const FANOUT_STREAM_PER_BURST: u64 = 500;

/// Runs the benchmark and returns the report (print it with
/// [`Report::print_table`] or [`Report::to_json`]).
///
/// Child processes are started by re-executing the current executable, which
/// must therefore call [`crate::run_child_if_requested`] first thing in
/// `main`. If a child dies or a case hangs for two minutes while the parent
/// is blocked waiting on it, the process prints why, removes what it created
/// and exits with status 1: there is no peer left to return an error to.
pub fn run(opts: &BenchOptions) -> Result<Report, String> {
    let cases = plan::cases(opts);
    if cases.is_empty() {
        return Err("no benchmark case selected; check --only".into());
    }
    cleanup::sweep_stale();
    let cores = affinity::pick_cores();
    let _restore = SavedAffinity::save();
    if let Some(c) = cores {
        affinity::pin_current(c.parent)?;
    }
    let ctx = Ctx {
        cores,
        deadline: CASE_DEADLINE,
    };
    let bus = BusGuard::new(format!("{BUS_PREFIX}{}", std::process::id()));
    let repeats = opts.repeats();
    let bar = progress_bar(opts.progress, cases.len() as u64 * u64::from(repeats));
    let outcome = run_all(&ctx, &bus.0, &cases, repeats, &bar);
    bar.finish_and_clear();
    drop(bus);
    let results = outcome?;
    Ok(Report::build(opts, cores, results))
}

/// The run's private bus: every segment on it is removed when the guard
/// drops, on success, on error and on a panic unwinding through the run.
struct BusGuard(String);

impl BusGuard {
    fn new(bus: String) -> BusGuard {
        cleanup::register(Resource::Bus(bus.clone()));
        BusGuard(bus)
    }
}

impl Drop for BusGuard {
    fn drop(&mut self) {
        let _ = shmbus::daemon::remove_bus_segments(&self.0);
        cleanup::unregister(&Resource::Bus(self.0.clone()));
    }
}

/// Runs every case `repeats` times, a whole sweep of the cases per repeat
/// (case 1, case 2, …, then again), not each case's repeats back to back:
/// on a shared VM the host moves the two vCPUs between cores that share a
/// cache and cores that do not, which moves the spin floor by up to 6× for
/// minutes at a time; sweeping spreads every case over the same stretch of
/// the run, so a floor and the shmbus case it is compared with see the same
/// mix of placements.
fn run_all(
    ctx: &Ctx,
    bus: &str,
    cases: &[CaseDef],
    repeats: u32,
    bar: &ProgressBar,
) -> Result<Vec<(CaseDef, Vec<Sample>)>, String> {
    let mut results: Vec<(CaseDef, Vec<Sample>)> = cases
        .iter()
        .map(|c| (c.clone(), Vec::with_capacity(repeats as usize)))
        .collect();
    for _ in 0..repeats {
        for (case, samples) in results.iter_mut() {
            bar.set_message(format!("{} {}", case.label, size_label(case.size)));
            let sample = run_case(ctx, bus, case).map_err(|e| format!("case {}: {e}", case.id))?;
            samples.push(sample);
            bar.inc(1);
        }
    }
    Ok(results)
}

/// Runs one repetition of one case.
fn run_case(ctx: &Ctx, bus: &str, c: &CaseDef) -> Result<Sample, String> {
    match c.kind {
        CaseKind::SpinFloor => spin::run(ctx, c.warmup, c.iters),
        CaseKind::SpinFloor64 => spin::run_64(ctx, c.warmup, c.iters),
        CaseKind::FutexFloor => futex::run(ctx, c.warmup, c.iters),
        CaseKind::Memcpy => memcpy::run(c.size, c.warmup, c.iters),
        CaseKind::RingFloor => ring::run(ctx, c.size, c.warmup, c.iters),
        CaseKind::StreamLatency(k) => stream::run_pingpong(ctx, k, c.size, c.warmup, c.iters),
        CaseKind::StreamThroughput(k) => stream::run_throughput(ctx, k, c.size, c.warmup, c.iters),
        CaseKind::MqLatency => mqueue::run_pingpong(ctx, c.size, c.warmup, c.iters),
        CaseKind::MqThroughput => mqueue::run_throughput(ctx, c.size, c.warmup, c.iters),
        CaseKind::ShmbusLatency(wait) => latency::run(ctx, bus, wait, c.size, c.warmup, c.iters),
        CaseKind::ShmbusThroughput { zero_copy } => {
            throughput::run(ctx, bus, c.size, zero_copy, c.warmup, c.iters)
        }
        CaseKind::ServiceRpc { wait, pipelined } => {
            service::run(ctx, bus, wait, rpc_plan(c, pipelined))
        }
        CaseKind::UnixRpc { pipelined } => unix_rpc::run(ctx, rpc_plan(c, pipelined)),
        CaseKind::ShmbusFanOut { subscribers, mode } => {
            let stream = c.iters * FANOUT_STREAM_PER_BURST;
            fanout::run(
                ctx,
                bus,
                &FanOutPlan {
                    subscribers,
                    mode,
                    bursts: c.iters,
                    stream_warmup: stream / 10,
                    stream_measured: stream,
                },
            )
        }
    }
}

/// Sequential counts from the case, pipelined ones with a tenth as warm-up.
fn rpc_plan(c: &CaseDef, pipelined: u64) -> RpcPlan {
    RpcPlan {
        warmup: c.warmup,
        iters: c.iters,
        pipe_warmup: (pipelined / 10).max(service::DEPTH as u64),
        pipelined: pipelined.max(10),
    }
}

fn progress_bar(enabled: bool, total: u64) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    // Drawn to stderr only when it is a terminal; redrawn only between
    // repetitions (no steady tick), so it never runs during a measurement.
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{bar:30} {pos}/{len} {elapsed} {msg}") {
        bar.set_style(style);
    }
    bar
}
