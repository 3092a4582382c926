//! Standard output for messages and tables: one buffer, flushed after every
//! message when a person or another program is reading as it comes (a
//! terminal, a pipe, a socket), and only before waiting when it is a file.
//!
//! Errors are mapped through [`CliError::stdout`], so a closed pipe ends the
//! command quietly with status 0.

use std::io::{self, BufWriter, IsTerminal, StdoutLock, Write};
use std::os::fd::AsFd;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::error::CliError;

/// Buffered standard output.
pub struct Output {
    out: BufWriter<StdoutLock<'static>>,
    flush_each: bool,
    terminal: bool,
}

impl Output {
    /// Locks standard output for the rest of the command.
    pub fn new() -> Output {
        let terminal = io::stdout().is_terminal();
        Output {
            out: BufWriter::with_capacity(64 * 1024, io::stdout().lock()),
            flush_each: !stdout_is_regular_file(),
            terminal,
        }
    }

    /// Whether standard output is a terminal (for ANSI redraws).
    pub fn is_terminal(&self) -> bool {
        self.terminal
    }

    /// The buffer to write into.
    pub fn writer(&mut self) -> &mut impl Write {
        &mut self.out
    }

    /// Writes `bytes`.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), CliError> {
        self.out.write_all(bytes).map_err(CliError::stdout)
    }

    /// Marks the end of one message: flushed now unless output is a file.
    pub fn end_message(&mut self) -> Result<(), CliError> {
        if self.flush_each {
            self.flush()?;
        }
        Ok(())
    }

    /// Sends everything buffered.
    pub fn flush(&mut self) -> Result<(), CliError> {
        self.out.flush().map_err(CliError::stdout)
    }

    /// Whether the reader of standard output is gone: the reading end of the
    /// pipe was closed (`POLLERR`), or the terminal or socket hung up
    /// (`POLLHUP`). A write would then fail with `EPIPE`, but a subscriber
    /// that has nothing to write would never find out; `shmbus sub t | head
    /// -1` asks this while idle so that it ends once `head` has its line,
    /// like `tail -f` does. One `poll` with a zero timeout.
    pub fn reader_gone(&self) -> bool {
        let mut fds = [PollFd::new(self.out.get_ref().as_fd(), PollFlags::empty())];
        match poll(&mut fds, PollTimeout::ZERO) {
            Ok(n) if n > 0 => fds[0]
                .revents()
                .is_some_and(|r| r.intersects(PollFlags::POLLERR | PollFlags::POLLHUP)),
            _ => false,
        }
    }
}

/// Whether fd 1 is a regular file (then batching writes loses nothing a
/// reader could see as it happens).
fn stdout_is_regular_file() -> bool {
    nix::sys::stat::fstat(libc::STDOUT_FILENO)
        .map(|st| st.st_mode & libc::S_IFMT == libc::S_IFREG)
        .unwrap_or(false)
}
