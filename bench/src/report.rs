//! The report of a run: one row per case (medians over repeats, the range of
//! the headline figure, and ratios to the relevant floor or baseline), the
//! verdict on each SPEC §9 target, printed as a table shaped like
//! `nats bench` output or as JSON.

use std::fmt::Write as _;

use serde::Serialize;

use crate::affinity::CorePair;
use crate::options::{BenchOptions, Group};
use crate::plan::{ids, CaseDef, CaseKind, MIB};
use crate::stats::{median, min_max, LatencySummary, Sample};
use crate::targets::{self, Verdict};

/// Where the numbers were taken.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    /// CPU model (`/proc/cpuinfo`).
    pub cpu: String,
    /// Logical CPUs online.
    pub cpus: usize,
    /// Kernel release.
    pub kernel: String,
    /// 1-minute load average when the report was built (`/proc/loadavg`):
    /// other work on a shared machine competes with the pinned processes,
    /// and a load above zero means the figures include that noise.
    pub load_avg_1m: Option<f64>,
    /// Core of the measuring (parent) process, if pinned.
    pub parent_core: Option<usize>,
    /// Core of the child processes, if pinned.
    pub child_core: Option<usize>,
}

/// Min–max of a row's headline figure over the repeats.
#[derive(Clone, Debug, Serialize)]
pub struct Spread {
    /// Which figure (`p50_ns`, `msgs_per_sec`, `mib_per_sec`, `publish_ns`).
    pub of: &'static str,
    /// Smallest over repeats.
    pub min: f64,
    /// Largest over repeats.
    pub max: f64,
}

/// A ratio of this row's headline figure to another row's.
#[derive(Clone, Debug, Serialize)]
pub struct Versus {
    /// Id of the reference row.
    pub reference: String,
    /// Short name of the reference.
    pub name: String,
    /// This row's figure divided by the reference's (latency: lower is
    /// better; rates: higher is better).
    pub ratio: f64,
}

/// One case, summarised over its repeats (medians).
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// Stable id, e.g. `shmbus/latency/spin/64`.
    pub id: String,
    /// Group.
    pub group: Group,
    /// Name in the table.
    pub label: String,
    /// Message size in bytes.
    pub size: usize,
    /// Repeats summarised.
    pub repeats: usize,
    /// One-way latency percentiles (ping-pong cases).
    pub latency: Option<LatencySummary>,
    /// Messages per second (streams: at the receiver; fan-out: median
    /// subscriber).
    pub msgs_per_sec: Option<f64>,
    /// MiB per second (streams, memcpy).
    pub mib_per_sec: Option<f64>,
    /// Mean cost of one `send` with every subscriber keeping up (fan-out).
    pub publish_ns: Option<f64>,
    /// Delivered rate of the slowest subscriber (fan-out).
    pub slowest_msgs_per_sec: Option<f64>,
    /// Range of the headline figure over repeats.
    pub range: Option<Spread>,
    /// Ratios to floors and baselines.
    pub versus: Vec<Versus>,
}

/// Everything a run measured.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The machine.
    pub machine: Machine,
    /// `--quick` run (figures indicative only).
    pub quick: bool,
    /// Repeats per case.
    pub repeats: u32,
    /// One row per case, in run order.
    pub rows: Vec<Row>,
    /// SPEC §9 targets.
    pub targets: Vec<Verdict>,
}

impl Report {
    /// Summarises raw samples into rows, ratios and verdicts.
    pub fn build(
        opts: &BenchOptions,
        cores: Option<CorePair>,
        results: Vec<(CaseDef, Vec<Sample>)>,
    ) -> Report {
        let mut rows: Vec<Row> = results.iter().map(|(c, s)| summarise(c, s)).collect();
        let snapshot = rows.clone();
        for row in &mut rows {
            row.versus = comparisons(row, &snapshot);
        }
        let targets = targets::evaluate(&rows);
        Report {
            machine: Machine::probe(cores),
            quick: opts.quick,
            repeats: opts.repeats(),
            rows,
            targets,
        }
    }

    /// The row with `id`, if that case ran.
    pub fn row(&self, id: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.id == id)
    }

    /// The report as pretty-printed JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the report is plain data")
    }

    /// Prints [`Report::table`] on stdout.
    pub fn print_table(&self) {
        print!("{}", self.table());
    }

    /// The human-readable report: latency, throughput and fan-out sections,
    /// then one verdict line per target.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let m = &self.machine;
        let pin = match (m.parent_core, m.child_core) {
            (Some(p), Some(c)) => format!("parent on core {p}, children on core {c}"),
            _ => "NOT pinned (one core available): spinning cases time-slice".into(),
        };
        let load = m
            .load_avg_1m
            .map_or("unknown".into(), |l| format!("{l:.2}"));
        let _ = writeln!(
            s,
            "shmbus-bench: {} ({} CPUs, Linux {}, load average {load} at the end), {pin}",
            m.cpu, m.cpus, m.kernel
        );
        let _ = writeln!(
            s,
            "{} repeat(s) per case; figures are medians over repeats, range = min-max of the headline figure{}",
            self.repeats,
            if self.quick { "; QUICK run: indicative only" } else { "" }
        );
        self.latency_section(&mut s);
        self.throughput_section(&mut s);
        self.fanout_section(&mut s);
        let _ = writeln!(s, "\nTargets (SPEC §9)");
        for v in &self.targets {
            let _ = writeln!(s, "  {v}");
        }
        s
    }

    fn latency_section(&self, s: &mut String) {
        let rows: Vec<&Row> = self.rows.iter().filter(|r| r.latency.is_some()).collect();
        if rows.is_empty() {
            return;
        }
        let _ = writeln!(
            s,
            "\nLatency, one-way (round trip / 2), ping-pong between two processes"
        );
        let _ = writeln!(
            s,
            "  {:<24} {:>6} {:>9} {:>9} {:>9} {:>9} {:>9}  {:<19} vs",
            "case", "size", "p50", "p90", "p99", "p99.9", "max", "p50 range"
        );
        for r in rows {
            let l = r.latency.expect("filtered");
            let _ = writeln!(
                s,
                "  {:<24} {:>6} {:>9} {:>9} {:>9} {:>9} {:>9}  {:<19} {}",
                r.label,
                size_label(r.size),
                fmt_ns(l.p50_ns),
                fmt_ns(l.p90_ns),
                fmt_ns(l.p99_ns),
                fmt_ns(l.p999_ns),
                fmt_ns(l.max_ns),
                range_text(r, fmt_ns),
                versus_text(r)
            );
        }
    }

    fn throughput_section(&self, s: &mut String) {
        let rows: Vec<&Row> = self
            .rows
            .iter()
            .filter(|r| r.latency.is_none() && r.publish_ns.is_none())
            .collect();
        if rows.is_empty() {
            return;
        }
        let _ = writeln!(
            s,
            "\nThroughput, 1 publisher -> 1 subscriber (measured at the receiver)"
        );
        let _ = writeln!(
            s,
            "  {:<24} {:>6} {:>11} {:>11}  {:<23} vs",
            "case", "size", "msgs/s", "MiB/s", "range"
        );
        for r in rows {
            let range = match &r.range {
                Some(sp) if sp.of == "mib_per_sec" => range_text(r, fmt_mib),
                _ => range_text(r, fmt_rate),
            };
            let _ = writeln!(
                s,
                "  {:<24} {:>6} {:>11} {:>11}  {:<23} {}",
                r.label,
                size_label(r.size),
                r.msgs_per_sec.map_or("-".into(), fmt_rate),
                r.mib_per_sec.map_or("-".into(), fmt_mib),
                range,
                versus_text(r)
            );
        }
    }

    fn fanout_section(&self, s: &mut String) {
        let rows: Vec<&Row> = self
            .rows
            .iter()
            .filter(|r| r.publish_ns.is_some())
            .collect();
        if rows.is_empty() {
            return;
        }
        let _ = writeln!(
            s,
            "\nFan-out, 1 publisher -> N subscribers, {} B, all subscribers on one shared core\n  \
             (poll: try_recv + sched_yield when empty, never asleep; park: blocking recv, Park strategy)",
            crate::shmbus_cases::fanout::SIZE,
        );
        let _ = writeln!(
            s,
            "  {:<24} {:>11} {:<19} {:>14} {:>14}  vs",
            "case", "publish/msg", " range", "msgs/s per sub", "slowest sub"
        );
        for r in rows {
            let _ = writeln!(
                s,
                "  {:<24} {:>11} {:<19} {:>14} {:>14}  {}",
                r.label,
                r.publish_ns.map_or("-".into(), fmt_ns),
                format!(" {}", range_text(r, fmt_ns)),
                r.msgs_per_sec.map_or("-".into(), fmt_rate),
                r.slowest_msgs_per_sec.map_or("-".into(), fmt_rate),
                versus_text(r)
            );
        }
    }
}

impl Machine {
    fn probe(cores: Option<CorePair>) -> Machine {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split(':').nth(1))
                    .map(|v| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown CPU".into());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into());
        Machine {
            cpu,
            cpus: online_cpus(),
            load_avg_1m: std::fs::read_to_string("/proc/loadavg")
                .ok()
                .and_then(|t| t.split_whitespace().next().and_then(|v| v.parse().ok())),
            kernel,
            parent_core: cores.map(|c| c.parent),
            child_core: cores.map(|c| c.child),
        }
    }
}

/// CPUs online on the machine (`nproc --all`-like). Not
/// `available_parallelism`: the run has pinned this process to one core by
/// the time the report is built.
fn online_cpus() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(n).unwrap_or(1).max(1)
}

/// Medians over repeats and the range of the headline figure.
fn summarise(case: &CaseDef, samples: &[Sample]) -> Row {
    let mut row = Row {
        id: case.id.clone(),
        group: case.group,
        label: case.label.clone(),
        size: case.size,
        repeats: samples.len(),
        latency: None,
        msgs_per_sec: None,
        mib_per_sec: None,
        publish_ns: None,
        slowest_msgs_per_sec: None,
        range: None,
        versus: Vec::new(),
    };
    let pick =
        |f: &dyn Fn(&Sample) -> Option<f64>| -> Vec<f64> { samples.iter().filter_map(f).collect() };
    let spread = |of: &'static str, v: &[f64]| {
        (v.len() > 1).then(|| {
            let (min, max) = min_max(v);
            Spread { of, min, max }
        })
    };
    match case.kind {
        CaseKind::Memcpy => {
            let bw = pick(&|s| match s {
                Sample::Bandwidth { bytes_per_sec } => Some(bytes_per_sec / MIB as f64),
                _ => None,
            });
            row.mib_per_sec = Some(median(&bw));
            row.range = spread("mib_per_sec", &bw);
        }
        CaseKind::ShmbusFanOut { .. } => {
            let cost = pick(&|s| match s {
                Sample::FanOut { publish_ns, .. } => Some(*publish_ns),
                _ => None,
            });
            row.publish_ns = Some(median(&cost));
            row.range = spread("publish_ns", &cost);
            row.msgs_per_sec = Some(median(&pick(&|s| match s {
                Sample::FanOut { rate_median, .. } => Some(*rate_median),
                _ => None,
            })));
            row.slowest_msgs_per_sec = Some(median(&pick(&|s| match s {
                Sample::FanOut { rate_min, .. } => Some(*rate_min),
                _ => None,
            })));
        }
        _ => {
            let lat: Vec<LatencySummary> = samples
                .iter()
                .filter_map(|s| match s {
                    Sample::Latency(l) => Some(*l),
                    _ => None,
                })
                .collect();
            if !lat.is_empty() {
                let m =
                    |f: fn(&LatencySummary) -> f64| median(&lat.iter().map(f).collect::<Vec<_>>());
                row.latency = Some(LatencySummary {
                    p50_ns: m(|l| l.p50_ns),
                    p90_ns: m(|l| l.p90_ns),
                    p99_ns: m(|l| l.p99_ns),
                    p999_ns: m(|l| l.p999_ns),
                    max_ns: m(|l| l.max_ns),
                    samples: lat.iter().map(|l| l.samples).sum(),
                });
                row.range = spread("p50_ns", &lat.iter().map(|l| l.p50_ns).collect::<Vec<_>>());
            }
            let rates = pick(&|s| match s {
                Sample::Throughput { msgs_per_sec } => Some(*msgs_per_sec),
                _ => None,
            });
            if !rates.is_empty() {
                let r = median(&rates);
                row.msgs_per_sec = Some(r);
                row.mib_per_sec = Some(r * case.size as f64 / MIB as f64);
                row.range = spread("msgs_per_sec", &rates);
            }
        }
    }
    row
}

/// The references each shmbus row is compared with.
fn comparisons(row: &Row, all: &[Row]) -> Vec<Versus> {
    let find = |id: &str| all.iter().find(|r| r.id == id);
    let mut out = Vec::new();
    let mut push = |reference: &str, name: &str, ratio: Option<f64>| {
        if let Some(ratio) = ratio.filter(|r| r.is_finite()) {
            out.push(Versus {
                reference: reference.to_string(),
                name: name.to_string(),
                ratio,
            });
        }
    };
    let p50 = |r: &Row| r.latency.map(|l| l.p50_ns);
    if row.id.starts_with("shmbus/latency/") {
        let floor = if row.id.contains("/park/") {
            (ids::FUTEX_FLOOR, "futex floor")
        } else {
            (ids::SPIN_FLOOR, "spin floor")
        };
        let mine = p50(row);
        for (id, name) in [floor, (ids::UNIX_LAT_64, "unix socket")] {
            push(
                id,
                name,
                find(id).and_then(p50).and_then(|b| mine.map(|m| m / b)),
            );
        }
    } else if row.id.starts_with("shmbus/throughput/") {
        let mine = row.msgs_per_sec;
        for (key, name) in [
            ("unix", "unix socket"),
            ("pipe", "pipe"),
            ("mq", "posix mq"),
        ] {
            let id = format!("{key}/throughput/{}", row.size);
            push(
                &id,
                name,
                find(&id)
                    .and_then(|b| b.msgs_per_sec)
                    .and_then(|b| mine.map(|m| m / b)),
            );
        }
        let ring = ids::ring(row.size);
        push(
            &ring,
            "shm ring",
            find(&ring)
                .and_then(|b| b.msgs_per_sec)
                .and_then(|b| mine.map(|m| m / b)),
        );
        if row.size == MIB {
            let bw = find(ids::MEMCPY).and_then(|b| b.mib_per_sec);
            push(
                ids::MEMCPY,
                "memcpy",
                bw.and_then(|b| row.mib_per_sec.map(|m| m / b)),
            );
        }
        if row.id.contains("/zero-copy/") {
            let id = row.id.replace("/zero-copy/", "/copy/");
            push(
                &id,
                "copy path",
                find(&id)
                    .and_then(|b| b.msgs_per_sec)
                    .and_then(|b| mine.map(|m| m / b)),
            );
        }
    } else if let Some(one) = fanout_base(&row.id).filter(|one| *one != row.id) {
        let base = find(&one).and_then(|b| b.publish_ns);
        push(
            &one,
            "1 sub",
            base.and_then(|b| row.publish_ns.map(|m| m / b)),
        );
    }
    out
}

/// The 1-subscriber row of the fan-out series `id` belongs to.
fn fanout_base(id: &str) -> Option<String> {
    let (series, _n) = id.rsplit_once('/')?;
    series
        .starts_with("shmbus/fanout")
        .then(|| format!("{series}/1"))
}

fn versus_text(r: &Row) -> String {
    r.versus
        .iter()
        .map(|v| format!("{}x {}", fmt_ratio(v.ratio), v.name))
        .collect::<Vec<_>>()
        .join(", ")
}

fn range_text(r: &Row, f: fn(f64) -> String) -> String {
    match &r.range {
        Some(sp) => format!("{}-{}", f(sp.min), f(sp.max)),
        None => "-".into(),
    }
}

/// `64 B`, `4 KiB`, `1 MiB`.
pub fn size_label(size: usize) -> String {
    if size >= MIB && size % MIB == 0 {
        format!("{} MiB", size / MIB)
    } else if size >= 1024 && size % 1024 == 0 {
        format!("{} KiB", size / 1024)
    } else {
        format!("{size} B")
    }
}

/// Nanoseconds with a unit that keeps 3 significant digits.
pub fn fmt_ns(ns: f64) -> String {
    if !ns.is_finite() {
        "-".into()
    } else if ns < 1_000.0 {
        format!("{ns:.0} ns")
    } else if ns < 1_000_000.0 {
        format!("{:.2} us", ns / 1e3)
    } else {
        format!("{:.2} ms", ns / 1e6)
    }
}

/// Messages per second as `12.3M`, `456k`.
pub fn fmt_rate(r: f64) -> String {
    if !r.is_finite() {
        "-".into()
    } else if r >= 1e6 {
        format!("{:.2}M", r / 1e6)
    } else if r >= 1e3 {
        format!("{:.1}k", r / 1e3)
    } else {
        format!("{r:.0}")
    }
}

/// MiB per second.
pub fn fmt_mib(m: f64) -> String {
    if !m.is_finite() {
        "-".into()
    } else if m >= 100.0 {
        format!("{m:.0}")
    } else {
        format!("{m:.1}")
    }
}

/// A ratio with 2-3 significant digits.
pub fn fmt_ratio(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_are_readable() {
        assert_eq!(size_label(64), "64 B");
        assert_eq!(size_label(4096), "4 KiB");
        assert_eq!(size_label(MIB), "1 MiB");
        assert_eq!(fmt_ns(85.4), "85 ns");
        assert_eq!(fmt_ns(1234.0), "1.23 us");
        assert_eq!(fmt_rate(12_345_678.0), "12.35M");
        assert_eq!(fmt_rate(4_560.0), "4.6k");
    }
}
