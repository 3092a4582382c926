//! Looking at services from outside: which services a bus has, their
//! counters and members, and removing a service's segment. For the CLI's
//! `shmbus services` and the daemon's stats; nothing here takes an entry.

use crate::error::{Error, Result};
use crate::layout::ENTRY_ACTIVE;
use crate::names;
use crate::segment::{self, Segment};
use crate::service::mapped::{MappedService, Role};
use crate::service::queue;
use crate::service::reply;
use crate::sync::Ordering;

/// Counters of one service, read from its segment.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ServiceStats {
    /// Service name.
    pub service: String,
    /// Request queue cells.
    pub queue_capacity: u32,
    /// Largest request.
    pub max_request_size: u32,
    /// Largest reply.
    pub max_reply_size: u32,
    /// Bytes reserved in /dev/shm.
    pub memory_bytes: u64,
    /// Servers attached.
    pub servers: u32,
    /// Clients attached.
    pub clients: u32,
    /// Requests queued, not yet taken by a server.
    pub queued: u64,
    /// Calls made since the service was created (by clients gone and
    /// attached).
    pub calls: u64,
    /// Calls answered with a reply.
    pub replies: u64,
    /// Calls answered with an error reply (`Error::Remote`).
    pub errors: u64,
    /// Calls the client gave up (timeouts, cancels).
    pub timeouts: u64,
    /// Calls that ended in `ServerGone`.
    pub gone: u64,
    /// Idempotent calls sent again after their server died (each also
    /// counts in `calls`; the attempt that died counts in `gone`).
    #[serde(default)]
    pub retries: u64,
    /// Calls in flight (by the clients attached now).
    pub in_flight: u64,
    /// Round trips in the latency histogram (calls answered with a reply
    /// or an error reply).
    pub latency_samples: u64,
    /// Median round trip (send to reply received), ns; `None` before the
    /// first answer. Each percentile is its histogram bucket's highest
    /// value: at most 12.5 % over the truth.
    pub p50_ns: Option<u64>,
    /// 90th percentile round trip, ns.
    pub p90_ns: Option<u64>,
    /// 99th percentile round trip, ns.
    pub p99_ns: Option<u64>,
    /// Dead servers reclaimed.
    pub server_deaths: u64,
    /// Dead clients reclaimed.
    pub reaped_clients: u64,
    /// Requests or replies dropped because their caller had given up.
    pub dropped: u64,
    /// One row per attached server.
    pub server_stats: Vec<ServerStats>,
    /// One row per attached client.
    pub client_stats: Vec<ClientStats>,
}

/// One server's counters.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ServerStats {
    /// Entry index.
    pub index: u32,
    /// Process id (informational).
    pub pid: u32,
    /// Requests taken.
    pub taken: u64,
    /// Replies delivered.
    pub replied: u64,
    /// Requests or replies dropped.
    pub dropped: u64,
    /// Whether it sleeps waiting for requests.
    pub waiting: bool,
    /// Whether its process holds its liveness lock.
    pub alive: bool,
}

/// One client's counters.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClientStats {
    /// Entry index.
    pub index: u32,
    /// Process id (informational).
    pub pid: u32,
    /// Calls made.
    pub calls: u64,
    /// Replies received.
    pub replies: u64,
    /// Error replies received.
    pub errors: u64,
    /// Calls given up.
    pub timeouts: u64,
    /// Calls that ended in `ServerGone`.
    pub gone: u64,
    /// Idempotent calls sent again after their server died.
    #[serde(default)]
    pub retries: u64,
    /// Calls in flight.
    pub in_flight: u64,
    /// Whether its process holds its liveness lock.
    pub alive: bool,
}

/// Services of `bus` that have a segment in /dev/shm.
pub fn list_bus_services(bus: &str) -> Result<Vec<String>> {
    names::validate_bus(bus)?;
    let mut out: Vec<String> = segment::list_shm(&names::bus_segment_prefix(bus))?
        .iter()
        .filter_map(|f| names::parse_service_segment_name(bus, f))
        .collect();
    out.sort();
    Ok(out)
}

/// Counters of service `name` of `bus`.
pub fn service_stats(bus: &str, name: &str) -> Result<ServiceStats> {
    let m = MappedService::open(bus, name)?.ok_or_else(|| Error::NoServer {
        service: name.to_string(),
    })?;
    let cfg = m.config().clone();
    let sh = m.shared();
    let server_stats: Vec<ServerStats> = (0..cfg.max_servers)
        .filter_map(|i| {
            let e = m.server(i);
            (e.state.load(Ordering::Acquire) == ENTRY_ACTIVE).then(|| ServerStats {
                index: i,
                pid: e.pid.load(Ordering::Relaxed),
                taken: e.taken.load(Ordering::Relaxed),
                replied: e.replied.load(Ordering::Relaxed),
                dropped: e.dropped.load(Ordering::Relaxed),
                waiting: e.waiting.load(Ordering::Relaxed) != 0,
                alive: m.alive(Role::Server, i),
            })
        })
        .collect();
    let client_stats: Vec<ClientStats> = (0..cfg.max_clients)
        .filter_map(|i| {
            let e = m.client(i);
            (e.state.load(Ordering::Acquire) == ENTRY_ACTIVE).then(|| ClientStats {
                index: i,
                pid: e.pid.load(Ordering::Relaxed),
                calls: e.calls.load(Ordering::Relaxed),
                replies: e.replies.load(Ordering::Relaxed),
                errors: e.errors.load(Ordering::Relaxed),
                timeouts: e.timeouts.load(Ordering::Relaxed),
                gone: e.gone.load(Ordering::Relaxed),
                retries: e.retries.load(Ordering::Relaxed),
                in_flight: (0..cfg.max_in_flight)
                    .filter(|&r| {
                        let w = reply::unpack(m.reply_slot(i, r).state.load(Ordering::Relaxed));
                        w.state != reply::st::FREE
                    })
                    .count() as u64,
                alive: m.alive(Role::Client, i),
            })
        })
        .collect();
    // Counts in shared memory may be anything: sums wrap, never panic.
    let sum = |f: fn(&ClientStats) -> u64| {
        client_stats
            .iter()
            .map(f)
            .fold(0u64, |a, b| a.wrapping_add(b))
    };
    let sc = m.counters();
    let gone_before = |c: &crate::sync::AtomicU64| c.load(Ordering::Relaxed);
    let latency = sc.latency.snapshot();
    Ok(ServiceStats {
        service: name.to_string(),
        queue_capacity: cfg.queue_capacity,
        max_request_size: cfg.max_request_size,
        max_reply_size: cfg.max_reply_size,
        memory_bytes: m.geo().size as u64,
        servers: server_stats.len() as u32,
        clients: client_stats.len() as u32,
        queued: queue::depth(&m),
        calls: gone_before(&sc.calls).wrapping_add(sum(|c| c.calls)),
        replies: gone_before(&sc.replies).wrapping_add(sum(|c| c.replies)),
        errors: gone_before(&sc.errors).wrapping_add(sum(|c| c.errors)),
        timeouts: gone_before(&sc.timeouts).wrapping_add(sum(|c| c.timeouts)),
        gone: gone_before(&sc.gone).wrapping_add(sum(|c| c.gone)),
        retries: gone_before(&sc.retries).wrapping_add(sum(|c| c.retries)),
        in_flight: sum(|c| c.in_flight),
        latency_samples: latency.count(),
        p50_ns: latency.percentile(0.50),
        p90_ns: latency.percentile(0.90),
        p99_ns: latency.percentile(0.99),
        server_deaths: sh.server_deaths.load(Ordering::Relaxed),
        reaped_clients: sh.reaped_clients.load(Ordering::Relaxed),
        dropped: sh.dropped.load(Ordering::Relaxed),
        server_stats,
        client_stats,
    })
}

/// Removes service `name`'s segment from /dev/shm (attached processes keep
/// their mappings; the next server creates a fresh segment). Missing is ok.
pub fn remove_service(bus: &str, name: &str) -> Result<()> {
    names::validate_bus(bus)?;
    names::validate_service(name)?;
    let file = names::service_segment_name(bus, name);
    if let Some((owner, _)) = crate::segment::owner_of(&file) {
        if owner != crate::segment::euid() {
            // Not this bus's: never removed for its name (see `segment`).
            let path = crate::segment::shm_file(&file);
            return Err(Error::Untrusted {
                what: "segment",
                path: path.display().to_string(),
                why: format!(
                    "it is owned by uid {owner}, not by uid {}, so it was left alone; {}",
                    crate::segment::euid(),
                    crate::segment::removal_hint(&path, owner)
                ),
            });
        }
    }
    match Segment::unlink(&file) {
        Ok(()) => Ok(()),
        Err(Error::Io { source, .. }) if source.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        Err(e) => Err(e),
    }
}
