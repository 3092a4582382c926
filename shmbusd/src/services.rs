//! The bus's services as the daemon sees them: it does not create or serve
//! them (their first server creates the segment, and calls never involve the
//! daemon), but it owns the bus's lifecycle, so it keeps their segments at
//! start, logs their counters on SIGUSR1 and removes them at shutdown.
//!
//! The service API has no "closed" state like a topic's: removing a
//! service's segment does not wake its waiters. Processes attached keep
//! their mapping (calls in flight complete); new ones no longer find it.
//! `shmbus serve` notices the removal within a wait slice and exits, which
//! ends its callers' calls with `ServerGone`.

use shmbus::service::{list_bus_services, remove_service, service_stats};

/// Removes the segment of every service of `bus` (graceful shutdown).
pub fn shutdown(bus: &str) {
    let names = match list_bus_services(bus) {
        Ok(names) => names,
        Err(e) => {
            tracing::warn!("cannot list the services of bus `{bus}`: {e}");
            return;
        }
    };
    for name in names {
        match remove_service(bus, &name) {
            Ok(()) => tracing::info!("removed service `{name}`"),
            Err(e) => tracing::warn!("cannot remove service `{name}`: {e}"),
        }
    }
}

/// Logs a stats snapshot of every service of `bus` (SIGUSR1).
pub fn log_stats(bus: &str) {
    let names = match list_bus_services(bus) {
        Ok(names) => names,
        Err(e) => {
            tracing::warn!("cannot list the services of bus `{bus}`: {e}");
            return;
        }
    };
    if names.is_empty() {
        tracing::info!("stats: no services");
    }
    for name in names {
        match service_stats(bus, &name) {
            Ok(s) => {
                let answered: u64 = s.server_stats.iter().map(|v| v.replied).sum();
                tracing::info!(
                    "stats service `{name}`: servers {}, clients {}, queued {}/{}, in flight {}, answered {} (by the servers attached), dropped {}, server deaths {}, reaped clients {}",
                    s.servers,
                    s.clients,
                    s.queued,
                    s.queue_capacity,
                    s.in_flight,
                    answered,
                    s.dropped,
                    s.server_deaths,
                    s.reaped_clients
                );
            }
            // Removed since it was listed.
            Err(shmbus::Error::NoServer { .. }) => {}
            Err(e) => tracing::warn!("stats service `{name}`: cannot read it: {e}"),
        }
    }
}
