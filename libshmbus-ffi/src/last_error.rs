//! The thread-local message of the last failed call (`shmbus_last_error`).
//!
//! A failing call stores a one-line message saying what failed and what to
//! do; it stays readable until the next failing call on the same thread.
//! Successful calls leave it alone (as `errno` does), so a caller reads it
//! right after seeing a code other than `SHMBUS_OK`.
//!
//! The flow-control outcomes that busy loops meet all the time (`EMPTY`,
//! `FULL`, `TIMEOUT`, ...) store a static string: failing there costs no
//! allocation.

use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};

use crate::unwind;

/// What [`shmbus_last_error`] shows before any call failed on the thread.
const NONE: &CStr = c"no shmbus call has failed on this thread";

/// A message to store: fixed text, or text made for this failure.
#[derive(Debug)]
pub enum Message {
    /// A static description (no allocation).
    Static(&'static CStr),
    /// A message built for this failure.
    Owned(String),
}

enum Stored {
    Static(&'static CStr),
    Owned(CString),
}

thread_local! {
    static LAST: RefCell<Stored> = const { RefCell::new(Stored::Static(NONE)) };
}

/// Stores `msg` as this thread's last error.
pub fn set(msg: Message) {
    let stored = match msg {
        Message::Static(s) => Stored::Static(s),
        Message::Owned(s) => {
            // A NUL inside would cut the C string short; none is expected
            // (names come from C strings), but never fail over it.
            let bytes: Vec<u8> = s
                .into_bytes()
                .into_iter()
                .map(|b| if b == 0 { b'?' } else { b })
                .collect();
            Stored::Owned(CString::new(bytes).unwrap_or_default())
        }
    };
    // During thread teardown the slot may be gone: then nobody can read
    // the message anyway.
    let _ = LAST.try_with(|cell| {
        if let Ok(mut slot) = cell.try_borrow_mut() {
            *slot = stored;
        }
    });
}

/// The message of the last failed call on the calling thread: a
/// NUL-terminated string, never NULL, owned by the library. It stays valid
/// until the next failing shmbus call on the same thread (copy it to keep
/// it). Before any failure it says that none happened.
#[no_mangle]
pub extern "C" fn shmbus_last_error() -> *const c_char {
    unwind::infallible(NONE.as_ptr(), || {
        LAST.try_with(|cell| match cell.try_borrow() {
            Ok(slot) => match &*slot {
                Stored::Static(s) => s.as_ptr(),
                // The CString's heap buffer does not move until the slot is
                // overwritten by the next failure, which the docs allow for.
                Stored::Owned(s) => s.as_ptr(),
            },
            Err(_) => NONE.as_ptr(),
        })
        .unwrap_or(NONE.as_ptr())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read() -> String {
        // SAFETY: shmbus_last_error returns a valid NUL-terminated string
        // that lives until the next failure on this thread.
        unsafe { CStr::from_ptr(shmbus_last_error()) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn messages_are_per_thread_and_replaced() {
        std::thread::spawn(|| {
            assert_eq!(read(), NONE.to_str().unwrap());
            set(Message::Owned("first".into()));
            assert_eq!(read(), "first");
            set(Message::Static(c"second"));
            assert_eq!(read(), "second");
            set(Message::Owned("with\0nul".into()));
            assert_eq!(read(), "with?nul");
        })
        .join()
        .unwrap();
    }
}
