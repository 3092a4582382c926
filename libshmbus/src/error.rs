//! The one error type of the crate.
//!
//! Every variant says what failed in words a user can act on; the numbers a
//! caller needs (sizes, counts, limits) are fields, not only text.

use std::io;
use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong on the bus.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `try_send`/`try_loan` on a `block` topic whose slowest live subscriber
    /// is a whole ring behind. Retry later, or use `send_timeout`.
    #[error("topic is full: the slowest subscriber is a whole ring behind")]
    Full,
    /// A timed call ran out of time before it could complete.
    #[error("timed out")]
    Timeout,
    /// The topic (or the whole bus) was shut down; no more messages will come.
    #[error("the topic was closed (shmbusd removed it or shut down)")]
    Closed,
    /// A signal arrived while the call was waiting. Nothing was consumed or
    /// published; the caller decides whether to retry.
    #[error("interrupted by a signal")]
    Interrupted,
    /// The subscriber fell a whole ring behind on a `drop-oldest` topic and
    /// `n` messages were overwritten before it could read them. The next
    /// receive returns the oldest message still available.
    #[error("lagged: {0} messages were overwritten before they could be read")]
    Lagged(u64),
    /// A message is larger than the topic's `max_msg_size`; nothing was sent.
    #[error("message of {len} bytes is larger than the topic's max message size of {max} bytes")]
    TooLarge {
        /// Length of the rejected message.
        len: usize,
        /// The topic's `max_msg_size`.
        max: usize,
    },
    /// A bus, topic or service name broke a naming rule.
    #[error("invalid {kind} name `{name}`: {rule}")]
    InvalidName {
        /// "bus", "topic" or "service".
        kind: &'static str,
        /// The offending name (escaped for display).
        name: String,
        /// The rule it broke.
        rule: &'static str,
    },
    /// A topic setting or configuration value is out of range.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// No daemon answers on the bus's control socket.
    #[error("no shmbusd for bus `{bus}` (socket {}): start it with `shmbusd --bus {bus}`", socket.display())]
    NoDaemon {
        /// The bus name.
        bus: String,
        /// Where the socket was expected.
        socket: PathBuf,
    },
    /// The topic does not exist (and the daemon does not create it on demand).
    #[error("no topic `{0}` on this bus: create it with `shmbus create {0}`")]
    NoSuchTopic(String),
    /// The caller is not allowed to do this.
    #[error("permission denied: {0}")]
    Denied(String),
    /// Shared memory holds something that is not a valid shmbus segment, or a
    /// field was corrupted while in use. The segment is not trusted.
    #[error("corrupt segment {segment}: {what}")]
    Corrupt {
        /// Segment name (as in /dev/shm).
        segment: String,
        /// What check failed.
        what: String,
    },
    /// A segment file, runtime directory or control socket is not what the
    /// bus made: someone else owns it or can write to it, or it is not the
    /// one the daemon announced. It is never used; `why` names the owner and
    /// the fix.
    #[error("untrusted {what} {path}: {why}")]
    Untrusted {
        /// What it is: "segment", "runtime directory", "control socket".
        what: &'static str,
        /// The file.
        path: String,
        /// What is wrong, and how to fix it.
        why: String,
    },
    /// `/dev/shm` cannot hold the segment. Nothing was left behind.
    #[error("no space in /dev/shm for segment {segment} ({bytes} bytes): free space or enlarge /dev/shm (docker: --shm-size)")]
    NoSpace {
        /// Segment name.
        segment: String,
        /// Bytes that were requested.
        bytes: u64,
    },
    /// Every publisher or subscriber entry of the topic is taken.
    #[error("too many {role}s on topic `{topic}` (limit {max}): raise max_{role}s in the topic's settings")]
    TooManyClients {
        /// "publisher" or "subscriber".
        role: &'static str,
        /// Topic name.
        topic: String,
        /// The topic's limit.
        max: u32,
    },
    /// The daemon answered with an error.
    #[error("{0}")]
    Daemon(String),
    /// The control protocol was violated (by the daemon or by a client).
    #[error("control protocol error: {0}")]
    Protocol(String),
    /// An operating-system call failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The server that took a call died (or detached) before replying. The
    /// request may or may not have been acted on.
    #[error("the server of service `{service}` died before replying: retry the call if it is safe to repeat")]
    ServerGone {
        /// Service name.
        service: String,
    },
    /// No server is attached to the service, so the call cannot be answered.
    #[error("no server for service `{service}`: start one (for example `shmbus serve {service} --echo`)")]
    NoServer {
        /// Service name.
        service: String,
    },
    /// `try_call`/`try_send_request` found the service's request queue full.
    #[error("service `{service}` is busy (its request queue is full): retry later or call with a timeout")]
    ServiceBusy {
        /// Service name.
        service: String,
    },
    /// A service limit was hit: request or reply size, calls in flight,
    /// number of servers or clients. `what` gives the numbers and the remedy.
    #[error("service `{service}`: {what}")]
    ServiceLimit {
        /// Service name.
        service: String,
        /// What limit, with numbers.
        what: String,
    },
    /// The server answered the call with an error (for example it could not
    /// decode the request).
    #[error("service `{service}` answered with an error: {message}")]
    Remote {
        /// Service name.
        service: String,
        /// The server's message.
        message: String,
    },
    /// A typed request could not be encoded, or a reply could not be decoded.
    #[error("service `{service}`: {what}")]
    BadMessage {
        /// Service name.
        service: String,
        /// What failed.
        what: String,
    },
}

impl Error {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// Wraps an errno from `nix` with what was being done.
    pub fn errno(context: impl Into<String>, errno: nix::errno::Errno) -> Self {
        Error::io(context, io::Error::from_raw_os_error(errno as i32))
    }

    pub(crate) fn corrupt(segment: &str, what: impl Into<String>) -> Self {
        Error::Corrupt {
            segment: segment.to_string(),
            what: what.into(),
        }
    }
}
