//! One control connection: its peer, its bounded buffers, and the state
//! machine that reads requests and writes replies without ever blocking.
//!
//! Memory per connection is bounded: the input holds at most one request
//! frame (64 KiB + prefix), and a new request is not even decoded while the
//! previous reply is still unsent, so a client that does not read its
//! replies stops being read (back-pressure) instead of growing the daemon.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

use mio::net::UnixStream;
use shmbus::control::{ErrorReply, FrameError, FrameReader, Outcome, MAX_REQUEST_LEN};

use crate::access::Peer;
use crate::outgoing::{encode_reply, Outgoing};

/// Requests or reads handled per wake-up before other connections get a
/// turn; a chatty client cannot starve the others.
const BUDGET: usize = 32;

/// What the server should do with a connection after driving it.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Wait for the next readiness event.
    Wait,
    /// It still has work (budget ran out): drive it again soon.
    Again,
    /// Close it; the reason is for the debug log.
    Close(&'static str),
}

/// One accepted control connection.
pub struct Connection {
    /// The socket.
    pub stream: UnixStream,
    /// Who is at the other end.
    pub peer: Peer,
    input: FrameReader,
    /// Frames to write, oldest first; `written` bytes of the first are gone.
    output: VecDeque<Outgoing>,
    written: usize,
    close_after_flush: bool,
    last_progress: Instant,
    /// Whether bytes were written since [`Connection::take_wrote`].
    wrote: bool,
    /// A pattern subscription's connection: it is quiet by nature, and its
    /// output is announcements, bounded by count, not by time.
    pub watching: bool,
}

impl Connection {
    /// A connection from `peer` on `stream`.
    pub fn new(stream: UnixStream, peer: Peer) -> Connection {
        Connection {
            stream,
            peer,
            input: FrameReader::new(MAX_REQUEST_LEN),
            output: VecDeque::new(),
            written: 0,
            close_after_flush: false,
            last_progress: Instant::now(),
            wrote: false,
            watching: false,
        }
    }

    /// Queues a frame after those already queued.
    pub fn push(&mut self, frame: Outgoing) {
        self.output.push_back(frame);
    }

    /// Frames queued and not completely written.
    pub fn queued(&self) -> usize {
        self.output.len()
    }

    /// Whether bytes were written since the last call.
    pub fn take_wrote(&mut self) -> bool {
        std::mem::take(&mut self.wrote)
    }

    /// Writes what is queued until done or the socket would block. The
    /// descriptor of a frame goes with its first byte.
    fn flush(&mut self) -> Result<(), Next> {
        while let Some(front) = self.output.front() {
            let sent = shmbus::daemon::send_with_fd(
                self.stream.as_raw_fd(),
                &front.bytes[self.written..],
                if self.written == 0 {
                    front.fd.as_ref().map(|f| f.as_fd())
                } else {
                    None
                },
            );
            match sent {
                Ok(0) => return Err(Next::Close("peer stopped reading")),
                Ok(n) => {
                    self.written += n;
                    self.wrote = true;
                    self.last_progress = Instant::now();
                    if self.written == front.bytes.len() {
                        self.output.pop_front();
                        self.written = 0;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Err(Next::Wait),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Err(Next::Close("write failed")),
            }
        }
        Ok(())
    }

    /// Reads, answers and writes until the socket would block, the budget
    /// is spent, or the connection must close. `answer` turns one request
    /// body into one reply frame.
    pub fn drive(&mut self, mut answer: impl FnMut(&Peer, &[u8]) -> Outgoing) -> Next {
        let mut budget = BUDGET;
        loop {
            // 1. Send what is pending; nothing else until it is gone.
            if let Err(next) = self.flush() {
                return next;
            }
            if self.close_after_flush {
                return Next::Close("protocol violation");
            }
            if budget == 0 {
                return Next::Again;
            }
            budget -= 1;

            // 2. Answer a buffered request, if a whole one is there.
            match self.input.next_frame() {
                Ok(Some(body)) => {
                    self.output.push_back(answer(&self.peer, &body));
                    continue;
                }
                Ok(None) => {}
                Err(e @ FrameError::TooLarge { .. }) => {
                    // The stream cannot be resynchronised: say why, then close.
                    self.output.push_back(Outgoing::plain(encode_reply(
                        0,
                        Outcome::Error(ErrorReply::bad_request(e.to_string())),
                    )));
                    self.close_after_flush = true;
                    continue;
                }
                Err(FrameError::Truncated { .. }) => return Next::Close("truncated frame"),
            }

            // 3. Read more.
            match self.input.read_from(&mut self.stream) {
                Ok(0) => {
                    return Next::Close(if self.input.finish().is_err() {
                        "closed in the middle of a request"
                    } else {
                        "closed by peer"
                    })
                }
                Ok(_) => self.last_progress = Instant::now(),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Next::Wait,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Next::Close("read failed"),
            }
        }
    }

    /// Why the connection should be closed for inactivity at `now`, if it
    /// should: a partial request or an unread reply older than
    /// `request_timeout`, or silence longer than `idle_timeout`.
    pub fn expired(
        &self,
        now: Instant,
        request_timeout: Duration,
        idle_timeout: Duration,
    ) -> Option<&'static str> {
        let quiet = now.saturating_duration_since(self.last_progress);
        if self.input.buffered() > 0 && quiet > request_timeout {
            Some("sent part of a request and went silent")
        } else if self.watching {
            None
        } else if !self.output.is_empty() && quiet > request_timeout {
            Some("does not read its reply")
        } else if quiet > idle_timeout {
            Some("idle")
        } else {
            None
        }
    }
}
