//! `shmbus services`: the bus's services with their members and counters,
//! as an aligned table or, with `--json`, as a JSON array for scripts.
//!
//! Services live in shared memory without the daemon, so this reads their
//! segments directly (`list_bus_services`, `service_stats`) and needs no
//! `shmbusd`. A segment is created mode 0600 by its first server: another
//! user's service is reported on stderr as unreadable and left out.
//!
//! The call counters are the service's since its segment was created:
//! clients come and go with each call, and a client's counts join the
//! service's totals when it leaves. P50/P99 are round trips (send to reply
//! received) from the service's latency histogram, each at most 12.5 % over
//! the truth; `-` before the first answer. Per-server and per-client rows
//! are in the JSON. `shmbus stats` shows the same table after the topics'.

use shmbus::service::{list_bus_services, service_stats, ServiceStats};

use std::time::Duration;

use crate::duration::format_duration;
use crate::error::CliError;
use crate::global::Global;
use crate::output::Output;
use crate::table::{Align, Table};
use crate::units;

const EXAMPLES: &str = "\
Examples:
  shmbus services
  shmbus services --bus robot
  shmbus services --json | jq '.[] | {service, servers, queued}'
  shmbus services --json | jq '.[] | {service, calls, errors, p50_ns, p99_ns}'";

/// Options of `shmbus services`.
#[derive(clap::Args, Debug)]
#[command(after_help = EXAMPLES)]
pub struct ServicesArgs {
    /// Print a JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Runs `shmbus services`.
pub fn run(global: &Global, args: ServicesArgs) -> Result<(), CliError> {
    shmbus::names::validate_bus(&global.bus)?;
    let services = read_all(&global.bus)?;
    let mut out = Output::new();
    if args.json {
        let text = serde_json::to_string_pretty(&services)
            .map_err(|e| CliError::runtime(format!("cannot encode JSON: {e}")))?;
        out.write(text.as_bytes())?;
        out.write(b"\n")?;
    } else if services.is_empty() {
        out.write(format!("no services on bus `{}`\n", global.bus).as_bytes())?;
    } else {
        out.write(table(&services).render().as_bytes())?;
    }
    out.flush()
}

/// Stats of every service of `bus` that this user can read, by name; an
/// unreadable one is reported on stderr and left out.
pub fn read_all(bus: &str) -> Result<Vec<ServiceStats>, CliError> {
    let names =
        list_bus_services(bus).map_err(|e| CliError::from(e).context("cannot list services"))?;
    let mut services = Vec::with_capacity(names.len());
    for name in names {
        match service_stats(bus, &name) {
            Ok(s) => services.push(s),
            // Removed since it was listed.
            Err(shmbus::Error::NoServer { .. }) => {}
            Err(e) => crate::error::warn(&format!("cannot read service `{name}`: {e}")),
        }
    }
    Ok(services)
}

/// The table for people (also shown by `shmbus stats`).
pub fn table(services: &[ServiceStats]) -> Table {
    let mut t = Table::new(&[
        ("SERVICE", Align::Left),
        ("SERVERS", Align::Right),
        ("CLIENTS", Align::Right),
        ("QUEUED", Align::Right),
        ("IN FLIGHT", Align::Right),
        ("CALLS", Align::Right),
        ("ERRORS", Align::Right),
        ("TIMEOUTS", Align::Right),
        ("P50", Align::Right),
        ("P99", Align::Right),
        ("DROPPED", Align::Right),
        ("DEATHS", Align::Right),
        ("MAX REQ", Align::Right),
        ("MAX REPLY", Align::Right),
        ("MEMORY", Align::Right),
    ]);
    let latency =
        |ns: Option<u64>| ns.map_or("-".into(), |n| format_duration(Duration::from_nanos(n)));
    for s in services {
        t.row(vec![
            s.service.clone(),
            s.servers.to_string(),
            s.clients.to_string(),
            format!("{}/{}", s.queued, s.queue_capacity),
            s.in_flight.to_string(),
            s.calls.to_string(),
            s.errors.to_string(),
            s.timeouts.to_string(),
            latency(s.p50_ns),
            latency(s.p99_ns),
            s.dropped.to_string(),
            s.server_deaths.to_string(),
            units::bytes(u64::from(s.max_request_size)),
            units::bytes(u64::from(s.max_reply_size)),
            units::bytes(s.memory_bytes),
        ]);
    }
    t
}
