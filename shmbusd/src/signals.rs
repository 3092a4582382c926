//! Signals as events of the poll loop (self-pipe), so no work is done in a
//! signal handler.
//!
//! For each signal, signal-hook's handler sets a flag and then writes a byte
//! to a non-blocking socket pair; the read end is registered in the poll
//! loop. The flags say which signals arrived (several may be coalesced into
//! one wake-up, and a byte may be dropped when the pipe is full, but a set
//! flag is never lost).

use std::io::Read;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};

/// What a signal asks of the daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignalEvent {
    /// SIGTERM or SIGINT: shut down gracefully.
    Shutdown(&'static str),
    /// SIGHUP: reload the config.
    Reload,
    /// SIGUSR1: log a stats snapshot.
    DumpStats,
}

/// The installed handlers and the read end of their pipe.
pub struct Signals {
    read: UnixStream,
    flags: Vec<(i32, Arc<AtomicBool>)>,
}

impl Signals {
    /// Installs the handlers for SIGTERM, SIGINT, SIGHUP and SIGUSR1.
    pub fn install() -> std::io::Result<Signals> {
        let (read, write) = UnixStream::pair()?;
        read.set_nonblocking(true)?;
        write.set_nonblocking(true)?;
        let mut flags = Vec::new();
        for sig in [SIGTERM, SIGINT, SIGHUP, SIGUSR1] {
            let flag = Arc::new(AtomicBool::new(false));
            // Registered before the pipe, so the flag is set by the time the
            // loop wakes up for the byte (actions run in registration order).
            signal_hook::flag::register(sig, Arc::clone(&flag))?;
            signal_hook::low_level::pipe::register(sig, write.try_clone()?)?;
            flags.push((sig, flag));
        }
        Ok(Signals { read, flags })
    }

    /// The fd to register (readable) in the poll loop.
    pub fn fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }

    /// Empties the pipe and returns the signals that arrived since the last
    /// call, shutdown first.
    pub fn drain(&mut self) -> Vec<SignalEvent> {
        let mut buf = [0u8; 64];
        loop {
            match self.read.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break, // WouldBlock: empty.
            }
        }
        let mut events = Vec::new();
        for (sig, flag) in &self.flags {
            if flag.swap(false, Ordering::AcqRel) {
                events.push(match *sig {
                    SIGTERM => SignalEvent::Shutdown("SIGTERM"),
                    SIGINT => SignalEvent::Shutdown("SIGINT"),
                    SIGHUP => SignalEvent::Reload,
                    _ => SignalEvent::DumpStats,
                });
            }
        }
        events
    }
}
