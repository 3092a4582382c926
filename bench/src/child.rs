//! The child side of a case: the process at the other end of the ping-pong
//! or stream, started by re-executing the current executable with the case in
//! an environment variable.
//!
//! Re-executing (rather than forking a multi-threaded parent) gives the child
//! a clean process with its own address space, exactly like a real separate
//! client, and lets any binary embed the benchmark: it only has to call
//! [`run_child_if_requested`] first thing in `main`.
//!
//! This module is the top of the child side: it reads the [`ChildSpec`]
//! (defined below it, in [`crate::role`]) and calls the case module that
//! plays the role. The case modules never call back into it.

use crate::affinity;
use crate::baselines::{futex, mqueue, ring, spin, stream};
use crate::control::Control;
use crate::region::SharedRegion;
use crate::role::{ChildSpec, Role, CHILD_ENV};
use crate::shmbus_cases;

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
