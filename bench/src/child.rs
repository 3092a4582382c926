//! The child side of a case: the process at the other end of the ping-pong
//! or stream, started by re-executing the current executable with the case in
//! an environment variable.
//!
//! Re-executing (rather than forking a multi-threaded parent) gives the child
//! a clean process with its own address space, exactly like a real separate
//! client, and lets any binary embed the benchmark: it only has to call
//! [`run_child_if_requested`] first thing in `main`.

use serde::{Deserialize, Serialize};

use crate::baselines::{futex, mqueue, ring, spin, stream};
use crate::control::Control;
use crate::region::SharedRegion;
use crate::{affinity, shmbus_cases};

/// Environment variable that turns a process into a benchmark child; its
/// value is the JSON of a [`ChildSpec`].
pub const CHILD_ENV: &str = "SHMBUS_BENCH_CHILD";

/// Everything a child needs: where the control block is, which result slot
/// is its own, which core to run on, and what to do.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChildSpec {
    /// Pid of the parent; the child gives up if it is not its parent anymore.
    pub parent_pid: u32,
    /// `shm_open` name of the case's control region.
    pub region: String,
    /// This child's result slot (0 for single-child cases).
    pub index: usize,
    /// Core to pin to, if the machine has two.
    pub cpu: Option<usize>,
    /// The role.
    pub role: Role,
}

/// What the child does. `total` counts every message including warm-up;
/// `warmup` messages are not measured.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "kebab-case")]
pub enum Role {
    /// Answer `total` spin pings (hardware floor).
    SpinPong {
        /// Round trips.
        total: u64,
    },
    /// Answer `total` spin pings carrying a 64-byte payload, echoing the
    /// payload (64 B hardware floor).
    SpinPong64 {
        /// Round trips.
        total: u64,
    },
    /// Answer `total` futex pings (wake-up floor).
    FutexPong {
        /// Round trips.
        total: u64,
    },
    /// Echo `total` messages of `size` bytes on a pipe or socket.
    FdPong {
        /// Fd to read pings from (inherited).
        read_fd: i32,
        /// Fd to write pongs to (inherited).
        write_fd: i32,
        /// Message size.
        size: usize,
        /// Round trips.
        total: u64,
    },
    /// Receive `total` messages of `size` bytes from a pipe or socket.
    FdSink {
        /// Fd to read from (inherited).
        read_fd: i32,
        /// Message size.
        size: usize,
        /// Messages.
        total: u64,
        /// Unmeasured leading messages.
        warmup: u64,
    },
    /// Echo `total` messages between two POSIX message queues.
    MqPong {
        /// Queue the pings arrive on.
        request: String,
        /// Queue the pongs go to.
        reply: String,
        /// Message size.
        size: usize,
        /// Round trips.
        total: u64,
    },
    /// Receive `total` messages from a POSIX message queue.
    MqSink {
        /// Queue name.
        queue: String,
        /// Message size.
        size: usize,
        /// Messages.
        total: u64,
        /// Unmeasured leading messages.
        warmup: u64,
    },
    /// Receive `total` messages from a bare shared-memory ring (copy floor).
    RingSink {
        /// `shm_open` name of the ring's slots.
        data: String,
        /// Message (and slot) size.
        size: usize,
        /// Slots in the ring.
        slots: u64,
        /// Messages.
        total: u64,
        /// Unmeasured leading messages.
        warmup: u64,
    },
    /// A shmbus role (see `shmbus_cases`).
    Shmbus(shmbus_cases::ShmbusRole),
}

/// If this process was started as a benchmark child, run the child role and
/// exit (status 0 on success, 1 with a message on stderr otherwise); else
/// return at once. Call it first thing in `main` of any binary that runs
/// the benchmark (`shmbus-bench`, the `shmbus` CLI).
pub fn run_child_if_requested() {
    let Some(raw) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let code = match child_main(&raw.to_string_lossy()) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("shmbus-bench child: {e}");
            1
        }
    };
    std::process::exit(code);
}

fn child_main(raw: &str) -> Result<(), String> {
    let spec: ChildSpec = serde_json::from_str(raw).map_err(|e| {
        format!("bad {CHILD_ENV} value ({e}); this variable is for the benchmark's own use")
    })?;
    // Die with the parent: a child spinning on a line nobody will ever
    // write again would otherwise burn a core forever.
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes a signal number and no pointers.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) };
    if std::os::unix::process::parent_id() != spec.parent_pid {
        return Err("the benchmark parent is gone".into());
    }
    if let Some(cpu) = spec.cpu {
        affinity::pin_current(cpu)?;
    }
    let region = SharedRegion::open(&spec.region)?;
    let control = Control::of(&region);
    match spec.role {
        Role::SpinPong { total } => spin::child(control, total),
        Role::SpinPong64 { total } => spin::child_64(control, total),
        Role::FutexPong { total } => futex::child(control, total),
        Role::FdPong {
            read_fd,
            write_fd,
            size,
            total,
        } => stream::pong_child(control, read_fd, write_fd, size, total),
        Role::FdSink {
            read_fd,
            size,
            total,
            warmup,
        } => stream::sink_child(control, spec.index, read_fd, size, total, warmup),
        Role::MqPong {
            request,
            reply,
            size,
            total,
        } => mqueue::pong_child(control, &request, &reply, size, total),
        Role::MqSink {
            queue,
            size,
            total,
            warmup,
        } => mqueue::sink_child(control, spec.index, &queue, size, total, warmup),
        Role::RingSink {
            data,
            size,
            slots,
            total,
            warmup,
        } => ring::sink_child(control, spec.index, &data, size, slots, total, warmup),
        Role::Shmbus(role) => shmbus_cases::child(control, spec.index, role),
    }
}
