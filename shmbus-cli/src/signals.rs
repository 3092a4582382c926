//! Ctrl-C and SIGTERM for the commands that wait (`sub`, `pub`, `stats
//! --watch`, `call`, `serve`): the handler only records that the user asked
//! to stop.
//!
//! The handler is installed without `SA_RESTART` and calls
//! `shmbus::interrupt`, so a futex wait in progress or about to start, or a
//! read in progress, returns (the library's `Error::Interrupted`) and the
//! command can print what it has, flush and exit 0 instead of dying with the
//! buffer unwritten. Commands that do not wait keep the default action, so
//! Ctrl-C always works on them even if a socket call retries `EINTR`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

use crate::error::CliError;

/// Set by the handler; read by the command loops.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_signal: libc::c_int) {
    // An atomic store, then `shmbus::interrupt` (an atomic add and a futex
    // wake): async-signal-safe. The interrupt ends a futex wait even when
    // the signal lands just before it (where EINTR alone would be lost).
    STOP.store(true, Ordering::SeqCst);
    shmbus::interrupt();
}

/// Installs the handler for SIGINT and SIGTERM (no `SA_RESTART`).
pub fn install() -> Result<(), CliError> {
    let action = SigAction::new(
        SigHandler::Handler(on_stop_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for signal in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic and calls
        // `shmbus::interrupt`, both async-signal-safe, and no other code in this process installs a
        // handler for these signals.
        unsafe { sigaction(signal, &action) }
            .map_err(|e| CliError::runtime(format!("cannot install the {signal} handler: {e}")))?;
    }
    Ok(())
}

/// Whether Ctrl-C (or SIGTERM) has arrived.
pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// Sleeps for `d` unless a stop is requested first; returns `false` if it
/// was. (`std::thread::sleep` resumes after a signal, which would make
/// Ctrl-C wait out the whole interval.)
pub fn sleep(d: Duration) -> bool {
    let deadline = Instant::now() + d;
    loop {
        if stop_requested() {
            return false;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        let ts = libc::timespec {
            tv_sec: left.as_secs().min(libc::time_t::MAX as u64) as libc::time_t,
            tv_nsec: left.subsec_nanos() as libc::c_long,
        };
        // SAFETY: `ts` is a valid timespec; a null `rem` is allowed. An EINTR
        // return is handled by the loop (we recompute what is left).
        unsafe { libc::nanosleep(&ts, std::ptr::null_mut()) };
    }
}
