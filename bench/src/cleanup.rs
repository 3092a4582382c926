//! What a run must leave behind: nothing. Every named kernel object the
//! benchmark creates (shared-memory regions, message queues, shmbus topic
//! and service segments) is registered here while it exists, so that a run that has to
//! stop half-way (a child died, a case hung) can still remove them, and so
//! that leftovers of a run that was killed outright are swept by the next one.
//!
//! It is at the bottom of the crate (it uses no other module of it): the
//! modules that create objects register them here, and the name prefixes
//! the sweep looks for ([`REGION_PREFIX`], [`BUS_PREFIX`]) are defined here.

use std::sync::Mutex;

/// A named object in a kernel namespace that outlives the process unless
/// removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resource {
    /// A `shm_open` region (name with the leading `/`).
    ShmRegion(String),
    /// A POSIX message queue (name with the leading `/`).
    Mqueue(String),
    /// Every segment of a shmbus bus.
    Bus(String),
    /// One shmbus service's segment.
    Service {
        /// Bus name.
        bus: String,
        /// Service name.
        name: String,
    },
}

static LIVE: Mutex<Vec<Resource>> = Mutex::new(Vec::new());

/// Records that `r` exists and must be removed.
pub fn register(r: Resource) {
    LIVE.lock().unwrap_or_else(|e| e.into_inner()).push(r);
}

/// Records that `r` was removed by its owner.
pub fn unregister(r: &Resource) {
    let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(i) = live.iter().position(|x| x == r) {
        live.swap_remove(i);
    }
}

/// Removes everything still registered; used when a run has to give up.
pub fn release_all() {
    let live = std::mem::take(&mut *LIVE.lock().unwrap_or_else(|e| e.into_inner()));
    for r in live {
        remove(&r);
    }
}

fn remove(r: &Resource) {
    match r {
        Resource::ShmRegion(name) => {
            let _ = nix::sys::mman::shm_unlink(name.as_str());
        }
        Resource::Mqueue(name) => {
            if let Ok(c) = std::ffi::CString::new(name.as_str()) {
                // SAFETY: `c` is a valid NUL-terminated string.
                unsafe { libc::mq_unlink(c.as_ptr()) };
            }
        }
        Resource::Bus(bus) => {
            let _ = shmbus::daemon::remove_bus_segments(bus);
        }
        Resource::Service { bus, name } => {
            let _ = shmbus::service::remove_service(bus, name);
        }
    }
}

/// Prefix of every region name; stale ones of dead runs are swept by it.
pub const REGION_PREFIX: &str = "shmbus-bench-";

/// Prefix of the bus names the benchmark uses (`bench-<pid>`).
pub const BUS_PREFIX: &str = "bench-";

/// Removes regions and buses left in `/dev/shm` by benchmark runs whose
/// process no longer exists (killed with SIGKILL, machine went down...).
/// Message queues cannot be listed without mounting mqueue, so they are only
/// removed by [`release_all`].
pub fn sweep_stale() {
    let Ok(names) = shmbus::daemon::list_shm("") else {
        return;
    };
    for name in &names {
        let name = name.as_str();
        if let Some(rest) = name.strip_prefix(REGION_PREFIX) {
            if pid_is_dead(rest) {
                let _ = nix::sys::mman::shm_unlink(format!("/{name}").as_str());
            }
        } else if let Some(rest) = name
            .strip_prefix(shmbus::names::SEGMENT_PREFIX)
            .and_then(|s| s.strip_prefix(BUS_PREFIX))
        {
            if pid_is_dead(rest) {
                let bus_len = BUS_PREFIX.len() + rest.find('.').unwrap_or(rest.len());
                let bus = &name[shmbus::names::SEGMENT_PREFIX.len()..][..bus_len];
                let _ = shmbus::daemon::remove_bus_segments(bus);
            }
        }
    }
}

/// `rest` starts with `<pid>` followed by `-` or `.`; true when that process
/// is gone (so its objects are orphans). Anything unparsable is left alone.
fn pid_is_dead(rest: &str) -> bool {
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let Ok(pid) = digits.parse::<i32>() else {
        return false;
    };
    if pid <= 0 || pid as u32 == std::process::id() {
        return false;
    }
    matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
        Err(nix::errno::Errno::ESRCH)
    )
}
