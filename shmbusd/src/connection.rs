//! One control connection: its peer, its bounded buffers, and the state
//! machine that reads requests and writes replies without ever blocking.
//!
//! Memory per connection is bounded: the input holds at most one request
//! frame (64 KiB + prefix), and a new request is not even decoded while the
//! previous reply is still unsent, so a client that does not read its
//! replies stops being read (back-pressure) instead of growing the daemon.

use std::io::{self, Write};
use std::time::{Duration, Instant};

use mio::net::UnixStream;
use shmbus::control::{ErrorReply, FrameError, FrameReader, Outcome, MAX_REQUEST_LEN};

use crate::access::Peer;
use crate::requests::encode_reply;

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
    output: Vec<u8>,
    written: usize,
    close_after_flush: bool,
    last_progress: Instant,
}

impl Connection {
    /// A connection from `peer` on `stream`.
    pub fn new(stream: UnixStream, peer: Peer) -> Connection {
        Connection {
            stream,
            peer,
            input: FrameReader::new(MAX_REQUEST_LEN),
            output: Vec::new(),
            written: 0,
            close_after_flush: false,
            last_progress: Instant::now(),
        }
    }

    /// Reads, answers and writes until the socket would block, the budget
    /// is spent, or the connection must close. `answer` turns one request
    /// body into one reply frame.
    pub fn drive(&mut self, mut answer: impl FnMut(&Peer, &[u8]) -> Vec<u8>) -> Next {
        let mut budget = BUDGET;
        loop {
            // 1. Send what is pending; nothing else until it is gone.
            while self.written < self.output.len() {
                match self.stream.write(&self.output[self.written..]) {
                    Ok(0) => return Next::Close("peer stopped reading"),
                    Ok(n) => {
                        self.written += n;
                        self.last_progress = Instant::now();
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Next::Wait,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return Next::Close("write failed"),
                }
            }
            self.output = Vec::new();
            self.written = 0;
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
                    self.output = answer(&self.peer, &body);
                    continue;
                }
                Ok(None) => {}
                Err(e @ FrameError::TooLarge { .. }) => {
                    // The stream cannot be resynchronised: say why, then close.
                    self.output =
                        encode_reply(0, Outcome::Error(ErrorReply::bad_request(e.to_string())));
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
        } else if self.written < self.output.len() && quiet > request_timeout {
            Some("does not read its reply")
        } else if quiet > idle_timeout {
            Some("idle")
        } else {
            None
        }
    }
}
