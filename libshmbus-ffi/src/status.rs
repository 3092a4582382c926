//! The error codes every C function returns, their fixed descriptions
//! (`shmbus_strerror`), and how the Rust library's errors map onto them.
//!
//! The numeric values are part of the ABI: new codes are added at the end,
//! existing ones never change.

use std::ffi::{c_char, c_int, CStr};

use crate::unwind;

/// What a call did: `SHMBUS_OK` (0) or why it failed. Every function of the
/// API returns one; `shmbus_last_error()` then tells the details.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum shmbus_error_t {
    /// Success.
    SHMBUS_OK = 0,
    /// A required pointer was NULL, a string was not UTF-8, a length or
    /// enum value was out of range, or a handle was not a live handle of
    /// the expected kind.
    SHMBUS_ERR_INVALID_ARGUMENT = 1,
    /// The call is not allowed in the handle's current state (a loan is
    /// outstanding, no loan or in-place message is held).
    SHMBUS_ERR_BAD_STATE = 2,
    /// Another thread is using this publisher or subscriber right now.
    SHMBUS_ERR_BUSY = 3,
    /// A non-blocking receive found no message.
    SHMBUS_ERR_EMPTY = 4,
    /// A non-blocking send or loan found the ring full (`block` topic whose
    /// slowest subscriber is a whole ring behind).
    SHMBUS_ERR_FULL = 5,
    /// A timed call ran out of time.
    SHMBUS_ERR_TIMEOUT = 6,
    /// The topic (or the whole bus) was shut down.
    SHMBUS_ERR_CLOSED = 7,
    /// A signal arrived while the call waited; nothing was consumed or sent.
    SHMBUS_ERR_INTERRUPTED = 8,
    /// The subscriber fell a ring behind on a `drop-oldest` topic; the
    /// message's `lost` field tells how many messages it lost.
    SHMBUS_ERR_LAGGED = 9,
    /// The message is larger than the topic's maximum message size.
    SHMBUS_ERR_TOO_LARGE = 10,
    /// A bus or topic name broke a naming rule.
    SHMBUS_ERR_INVALID_NAME = 11,
    /// A topic setting is out of range.
    SHMBUS_ERR_INVALID_CONFIG = 12,
    /// No `shmbusd` serves the bus.
    SHMBUS_ERR_NO_DAEMON = 13,
    /// The topic does not exist (and the daemon does not create it).
    SHMBUS_ERR_NO_SUCH_TOPIC = 14,
    /// The caller is not allowed to do this.
    SHMBUS_ERR_DENIED = 15,
    /// A shared-memory segment is not a valid shmbus segment.
    SHMBUS_ERR_CORRUPT = 16,
    /// `/dev/shm` has no room for the topic.
    SHMBUS_ERR_NO_SPACE = 17,
    /// Every publisher or subscriber entry of the topic is taken.
    SHMBUS_ERR_TOO_MANY_CLIENTS = 18,
    /// The daemon answered with an error.
    SHMBUS_ERR_DAEMON = 19,
    /// The control protocol was violated.
    SHMBUS_ERR_PROTOCOL = 20,
    /// An operating-system call failed.
    SHMBUS_ERR_IO = 21,
    /// An internal error (a bug in shmbus) was caught at the API boundary;
    /// the handle involved should be closed.
    SHMBUS_ERR_PANIC = 22,
    /// An error of the library this version of the C API has no code for.
    SHMBUS_ERR_OTHER = 23,
}

use shmbus_error_t::*;

/// Every code, in numeric order (`ALL[i] as i32 == i`).
pub(crate) const ALL: [shmbus_error_t; 24] = [
    SHMBUS_OK,
    SHMBUS_ERR_INVALID_ARGUMENT,
    SHMBUS_ERR_BAD_STATE,
    SHMBUS_ERR_BUSY,
    SHMBUS_ERR_EMPTY,
    SHMBUS_ERR_FULL,
    SHMBUS_ERR_TIMEOUT,
    SHMBUS_ERR_CLOSED,
    SHMBUS_ERR_INTERRUPTED,
    SHMBUS_ERR_LAGGED,
    SHMBUS_ERR_TOO_LARGE,
    SHMBUS_ERR_INVALID_NAME,
    SHMBUS_ERR_INVALID_CONFIG,
    SHMBUS_ERR_NO_DAEMON,
    SHMBUS_ERR_NO_SUCH_TOPIC,
    SHMBUS_ERR_DENIED,
    SHMBUS_ERR_CORRUPT,
    SHMBUS_ERR_NO_SPACE,
    SHMBUS_ERR_TOO_MANY_CLIENTS,
    SHMBUS_ERR_DAEMON,
    SHMBUS_ERR_PROTOCOL,
    SHMBUS_ERR_IO,
    SHMBUS_ERR_PANIC,
    SHMBUS_ERR_OTHER,
];

impl shmbus_error_t {
    /// The code whose value is `code`, if any.
    pub fn from_raw(code: c_int) -> Option<shmbus_error_t> {
        usize::try_from(code).ok().and_then(|i| ALL.get(i).copied())
    }

    /// The fixed, one-line description of the code.
    pub fn description(self) -> &'static CStr {
        match self {
            SHMBUS_OK => c"success",
            SHMBUS_ERR_INVALID_ARGUMENT => c"invalid argument (NULL pointer, bad string, value out of range or not a live handle)",
            SHMBUS_ERR_BAD_STATE => c"not allowed in this state (commit or abandon the outstanding loan first, or nothing is held)",
            SHMBUS_ERR_BUSY => c"the handle is in use by another thread: give each thread its own publisher or subscriber",
            SHMBUS_ERR_EMPTY => c"no message is waiting",
            SHMBUS_ERR_FULL => c"topic is full: the slowest subscriber is a whole ring behind",
            SHMBUS_ERR_TIMEOUT => c"timed out",
            SHMBUS_ERR_CLOSED => c"the topic was closed (shmbusd removed it or shut down)",
            SHMBUS_ERR_INTERRUPTED => c"interrupted by a signal",
            SHMBUS_ERR_LAGGED => c"lagged: messages were overwritten before they could be read",
            SHMBUS_ERR_TOO_LARGE => c"message is larger than the topic's max message size",
            SHMBUS_ERR_INVALID_NAME => c"invalid bus or topic name",
            SHMBUS_ERR_INVALID_CONFIG => c"invalid topic configuration",
            SHMBUS_ERR_NO_DAEMON => c"no shmbusd serves this bus: start it with `shmbusd --bus NAME`",
            SHMBUS_ERR_NO_SUCH_TOPIC => c"no such topic: create it with `shmbus create TOPIC`",
            SHMBUS_ERR_DENIED => c"permission denied",
            SHMBUS_ERR_CORRUPT => c"corrupt shared-memory segment",
            SHMBUS_ERR_NO_SPACE => c"no space left in /dev/shm",
            SHMBUS_ERR_TOO_MANY_CLIENTS => c"too many publishers or subscribers on the topic",
            SHMBUS_ERR_DAEMON => c"shmbusd answered with an error",
            SHMBUS_ERR_PROTOCOL => c"control protocol error",
            SHMBUS_ERR_IO => c"an operating-system call failed",
            SHMBUS_ERR_PANIC => c"internal error in libshmbus (a bug: please report it); close the handle",
            SHMBUS_ERR_OTHER => c"error",
        }
    }
}

/// The code for an error of the Rust library.
pub fn code_of(e: &shmbus::Error) -> shmbus_error_t {
    use shmbus::Error as E;
    match e {
        E::Full => SHMBUS_ERR_FULL,
        E::Timeout => SHMBUS_ERR_TIMEOUT,
        E::Closed => SHMBUS_ERR_CLOSED,
        E::Interrupted => SHMBUS_ERR_INTERRUPTED,
        E::Lagged(_) => SHMBUS_ERR_LAGGED,
        E::TooLarge { .. } => SHMBUS_ERR_TOO_LARGE,
        E::InvalidName { .. } => SHMBUS_ERR_INVALID_NAME,
        E::InvalidConfig(_) => SHMBUS_ERR_INVALID_CONFIG,
        E::NoDaemon { .. } => SHMBUS_ERR_NO_DAEMON,
        E::NoSuchTopic(_) => SHMBUS_ERR_NO_SUCH_TOPIC,
        // A file the bus did not make is refused like a denied right;
        // `shmbus_last_error()` names the file, its owner and the fix.
        E::Denied(_) | E::Untrusted { .. } => SHMBUS_ERR_DENIED,
        E::Corrupt { .. } => SHMBUS_ERR_CORRUPT,
        E::NoSpace { .. } => SHMBUS_ERR_NO_SPACE,
        E::TooManyClients { .. } => SHMBUS_ERR_TOO_MANY_CLIENTS,
        E::Daemon(_) => SHMBUS_ERR_DAEMON,
        E::Protocol(_) => SHMBUS_ERR_PROTOCOL,
        E::Io { .. } => SHMBUS_ERR_IO,
        // Service errors (and any the library adds later) have no call in
        // this API that could return them today.
        _ => SHMBUS_ERR_OTHER,
    }
}

/// The fixed description of an error code, as a static NUL-terminated
/// string (never NULL, never to be freed). An unknown `code` gives
/// "unknown shmbus error code". For the details of the last failure, use
/// `shmbus_last_error()`.
///
/// `code` is an `int` rather than a `shmbus_error_t` so that any value can
/// be passed safely. Thread-safe.
#[no_mangle]
pub extern "C" fn shmbus_strerror(code: c_int) -> *const c_char {
    unwind::infallible(c"unknown shmbus error code", || {
        shmbus_error_t::from_raw(code)
            .map_or(c"unknown shmbus error code", shmbus_error_t::description)
    })
    .as_ptr()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_in_numeric_order() {
        for (i, code) in ALL.iter().enumerate() {
            assert_eq!(*code as usize, i);
            assert_eq!(shmbus_error_t::from_raw(i as c_int), Some(*code));
        }
        assert_eq!(shmbus_error_t::from_raw(-1), None);
        assert_eq!(shmbus_error_t::from_raw(ALL.len() as c_int), None);
    }

    #[test]
    fn library_errors_keep_their_meaning() {
        assert_eq!(code_of(&shmbus::Error::Full), SHMBUS_ERR_FULL);
        assert_eq!(code_of(&shmbus::Error::Lagged(3)), SHMBUS_ERR_LAGGED);
        assert_eq!(
            code_of(&shmbus::Error::NoSuchTopic("t".into())),
            SHMBUS_ERR_NO_SUCH_TOPIC
        );
    }
}
