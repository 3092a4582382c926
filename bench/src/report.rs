//! The report of a run: one row per case (medians over repeats, the range of
//! the headline figure, and ratios to the relevant floor or baseline), the
//! verdict on each SPEC §9 target, printed as a table shaped like
//! `nats bench` output or as JSON.
//!
//! It is the top of the reporting layers: the [`Row`] it builds is defined
//! below it in [`crate::row`], and the way figures are written in
//! [`crate::units`], so that [`crate::targets`], which judges rows and
//! writes figures too, does not have to reach up into the report.

use std::fmt::Write as _;

use serde::Serialize;

use crate::affinity::CorePair;
use crate::options::BenchOptions;
use crate::plan::{ids, CaseDef, CaseKind, MIB};
use crate::row::{Row, Spread, Versus};
use crate::stats::{median, min_max, LatencySummary, Sample};
use crate::targets::{self, Verdict};
use crate::units::{fmt_mib, fmt_ns, fmt_rate, fmt_ratio, size_label};

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
        self.services_section(&mut s);
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
            .filter(|r| r.latency.is_none() && r.publish_ns.is_none() && r.round_trip.is_none())
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

impl Report {
    fn services_section(&self, s: &mut String) {
        let rows: Vec<&Row> = self
            .rows
            .iter()
            .filter(|r| r.round_trip.is_some())
            .collect();
        if rows.is_empty() {
            return;
        }
        let _ = writeln!(
            s,
            "\nServices, request/reply between two processes: ROUND TRIP of one call at a time (not halved);\n  \
             calls/s with {} calls in flight (client and server in the same wait strategy)",
            crate::shmbus_cases::service::DEPTH,
        );
        let _ = writeln!(
            s,
            "  {:<24} {:>6} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}  {:<19} vs",
            "case", "size", "p50", "p90", "p99", "p99.9", "max", "calls/s", "p50 range"
        );
        for r in rows {
            let l = r.round_trip.expect("filtered");
            let _ = writeln!(
                s,
                "  {:<24} {:>6} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}  {:<19} {}",
                r.label,
                size_label(r.size),
                fmt_ns(l.p50_ns),
                fmt_ns(l.p90_ns),
                fmt_ns(l.p99_ns),
                fmt_ns(l.p999_ns),
                fmt_ns(l.max_ns),
                r.calls_per_sec.map_or("-".into(), fmt_rate),
                range_text(r, fmt_ns),
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
        round_trip: None,
        calls_per_sec: None,
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
        CaseKind::ServiceRpc { .. } | CaseKind::UnixRpc { .. } => {
            let rtt: Vec<LatencySummary> = samples
                .iter()
                .filter_map(|s| match s {
                    Sample::Rpc { round_trip, .. } => Some(*round_trip),
                    _ => None,
                })
                .collect();
            row.round_trip = Some(median_summary(&rtt));
            row.range = spread(
                "rtt_p50_ns",
                &rtt.iter().map(|l| l.p50_ns).collect::<Vec<_>>(),
            );
            row.calls_per_sec = Some(median(&pick(&|s| match s {
                Sample::Rpc { calls_per_sec, .. } => Some(*calls_per_sec),
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
                row.latency = Some(median_summary(&lat));
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

/// Percentile by percentile medians over repeats; samples summed.
fn median_summary(lat: &[LatencySummary]) -> LatencySummary {
    let m = |f: fn(&LatencySummary) -> f64| median(&lat.iter().map(f).collect::<Vec<_>>());
    LatencySummary {
        p50_ns: m(|l| l.p50_ns),
        p90_ns: m(|l| l.p90_ns),
        p99_ns: m(|l| l.p99_ns),
        p999_ns: m(|l| l.p999_ns),
        max_ns: m(|l| l.max_ns),
        samples: lat.iter().map(|l| l.samples).sum(),
    }
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
        let mut refs = vec![floor];
        // A 64 B message cannot be one line: the 64 B spin floor (payload
        // line + counter line each way) is what a spinning 64 B hop can
        // at best reach. The SPEC target stays against the 1-line floor.
        if floor.0 == ids::SPIN_FLOOR && row.size == 64 {
            refs.push((ids::SPIN_FLOOR_64, "64 B spin floor"));
        }
        refs.push((ids::UNIX_LAT_64, "unix socket"));
        for (id, name) in refs {
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
    } else if row.id.starts_with("services/") && row.id != ids::SERVICE_UNIX_64 {
        // The floors are one-way (half a round trip): a call's reference
        // is two of them.
        let rtt = row.round_trip.map(|l| l.p50_ns);
        let floor = if row.id.contains("/park/") {
            (ids::FUTEX_FLOOR, "2x futex floor")
        } else {
            (ids::SPIN_FLOOR, "2x spin floor")
        };
        push(
            floor.0,
            floor.1,
            find(floor.0)
                .and_then(p50)
                .and_then(|b| rtt.map(|m| m / (2.0 * b))),
        );
        let unix = find(ids::SERVICE_UNIX_64);
        push(
            ids::SERVICE_UNIX_64,
            "unix round trip",
            unix.and_then(|u| u.round_trip)
                .and_then(|u| rtt.map(|m| m / u.p50_ns)),
        );
        push(
            ids::SERVICE_UNIX_64,
            "unix calls/s",
            unix.and_then(|u| u.calls_per_sec)
                .and_then(|u| row.calls_per_sec.map(|m| m / u)),
        );
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::Group;

    fn case(id: &str, kind: CaseKind, group: Group) -> CaseDef {
        CaseDef {
            id: id.into(),
            group,
            label: id.into(),
            size: 64,
            kind,
            warmup: 1,
            iters: 10,
        }
    }

    fn latency(p50_ns: f64) -> LatencySummary {
        LatencySummary {
            p50_ns,
            p90_ns: p50_ns,
            p99_ns: p50_ns,
            p999_ns: p50_ns,
            max_ns: p50_ns,
            samples: 10,
        }
    }

    #[test]
    fn spin_latency_64_is_compared_with_both_spin_floors() {
        use crate::role::Wait;
        let lat = |p50: f64| vec![Sample::Latency(latency(p50))];
        let spin = case(
            ids::SHMBUS_SPIN_64,
            CaseKind::ShmbusLatency(Wait::Spin),
            Group::Latency,
        );
        let mut spin_4k = case(
            "shmbus/latency/spin/4096",
            CaseKind::ShmbusLatency(Wait::Spin),
            Group::Latency,
        );
        spin_4k.size = 4096;
        let park = case(
            ids::SHMBUS_PARK_64,
            CaseKind::ShmbusLatency(Wait::Park),
            Group::Latency,
        );
        let report = Report::build(
            &BenchOptions::default(),
            None,
            vec![
                (
                    case(ids::SPIN_FLOOR, CaseKind::SpinFloor, Group::Floors),
                    lat(50.0),
                ),
                (
                    case(ids::SPIN_FLOOR_64, CaseKind::SpinFloor64, Group::Floors),
                    lat(100.0),
                ),
                (
                    case(ids::FUTEX_FLOOR, CaseKind::FutexFloor, Group::Floors),
                    lat(2_000.0),
                ),
                (spin, lat(150.0)),
                (spin_4k, lat(400.0)),
                (park, lat(3_000.0)),
            ],
        );
        let versus = |id: &str| -> Vec<(String, f64)> {
            report
                .row(id)
                .expect("row")
                .versus
                .iter()
                .map(|v| (v.reference.clone(), v.ratio))
                .collect()
        };
        assert_eq!(
            versus(ids::SHMBUS_SPIN_64),
            vec![
                (ids::SPIN_FLOOR.to_string(), 3.0),
                (ids::SPIN_FLOOR_64.to_string(), 1.5)
            ]
        );
        // Only the 64 B rows: a 4 KiB message is not two lines.
        assert_eq!(
            versus("shmbus/latency/spin/4096"),
            vec![(ids::SPIN_FLOOR.to_string(), 8.0)]
        );
        assert_eq!(
            versus(ids::SHMBUS_PARK_64),
            vec![(ids::FUTEX_FLOOR.to_string(), 1.5)]
        );
        assert!(report
            .table()
            .contains("3.00x spin floor, 1.50x 64 B spin floor"));
        // The SPEC target stays against the 1-line floor.
        let t = report
            .targets
            .iter()
            .find(|t| t.key == "spin-latency")
            .expect("target listed");
        assert_eq!(t.ratio, Some(3.0));
    }

    #[test]
    fn service_targets_use_two_floor_hops_and_say_when_unmeasured() {
        use crate::role::Wait;
        let rpc = |rtt: f64, calls: f64| {
            vec![Sample::Rpc {
                round_trip: latency(rtt),
                calls_per_sec: calls,
            }]
        };
        let spin = case(
            ids::SERVICE_SPIN_64,
            CaseKind::ServiceRpc {
                wait: Wait::Spin,
                pipelined: 10,
            },
            Group::Services,
        );
        let unix = case(
            ids::SERVICE_UNIX_64,
            CaseKind::UnixRpc { pipelined: 10 },
            Group::Services,
        );
        let floor = case(ids::SPIN_FLOOR, CaseKind::SpinFloor, Group::Floors);
        let verdict = |r: &Report, key: &str| {
            r.targets
                .iter()
                .find(|t| t.key == key)
                .cloned()
                .expect("target listed")
        };
        let opts = BenchOptions::default();

        let without_floor = Report::build(
            &opts,
            None,
            vec![
                (spin.clone(), rpc(400.0, 2e6)),
                (unix.clone(), rpc(20_000.0, 1e5)),
            ],
        );
        let lat = verdict(&without_floor, "service-spin-latency");
        assert_eq!((lat.ratio, lat.met), (None, None));
        assert!(lat.detail.contains("floors"), "{}", lat.detail);
        let calls = verdict(&without_floor, "service-calls");
        assert_eq!(calls.ratio, Some(20.0));
        assert_eq!(calls.met, Some(true));

        let with_floor = Report::build(
            &opts,
            None,
            vec![
                (floor, vec![Sample::Latency(latency(100.0))]),
                (spin, rpc(600.0, 2e6)),
                (unix, rpc(20_000.0, 4e5)),
            ],
        );
        // 600 ns against a 200 ns spin round trip (2 x 100 ns one-way).
        let lat = verdict(&with_floor, "service-spin-latency");
        assert_eq!(lat.ratio, Some(3.0));
        assert_eq!(lat.met, Some(false));
        assert_eq!(verdict(&with_floor, "service-calls").met, Some(false));
        let row = with_floor.row(ids::SERVICE_SPIN_64).expect("row");
        assert_eq!(row.versus.len(), 3);
        assert!(with_floor.table().contains("ROUND TRIP"));
    }
}
