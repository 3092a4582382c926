//! The boundary between C and Rust: every exported function runs its body
//! through [`call`], which catches panics (none may unwind into C), turns
//! errors into a code plus the thread-local message, and checks arguments
//! with the helpers here before anything is dereferenced.
//!
//! Its place in the crate's layers (each module uses only modules below
//! it): [`unwind`](crate::unwind) at the bottom, then [`status`](crate::status)
//! (the codes) and [`last_error`](crate::last_error) (the message), then this
//! module, then [`handle`](crate::handle) and the plain structs
//! ([`options`](crate::options), [`stats`](crate::stats)), then `bus`, and
//! `publisher` and `subscriber` on top.

use std::ffi::{c_char, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::NonNull;

use crate::last_error::{self, Message};
use crate::status::{code_of, shmbus_error_t};

/// A failure on its way to C: the code and what the message will say.
#[derive(Debug)]
pub struct FfiError {
    /// The code returned.
    pub code: shmbus_error_t,
    /// The message `shmbus_last_error` will show.
    pub message: Message,
}

/// What an exported function's body returns.
pub type FfiResult<T = ()> = Result<T, FfiError>;

impl FfiError {
    /// An error with a message made for it.
    pub fn new(code: shmbus_error_t, message: impl Into<String>) -> FfiError {
        FfiError {
            code,
            message: Message::Owned(message.into()),
        }
    }

    /// An error whose message is the code's fixed description (no
    /// allocation: for outcomes that polling loops meet all the time).
    pub fn plain(code: shmbus_error_t) -> FfiError {
        FfiError {
            code,
            message: Message::Static(code.description()),
        }
    }

    /// `SHMBUS_ERR_INVALID_ARGUMENT` with `message`.
    pub fn invalid(message: impl Into<String>) -> FfiError {
        FfiError::new(shmbus_error_t::SHMBUS_ERR_INVALID_ARGUMENT, message)
    }

    /// `SHMBUS_ERR_BAD_STATE` with `message`.
    pub fn bad_state(message: impl Into<String>) -> FfiError {
        FfiError::new(shmbus_error_t::SHMBUS_ERR_BAD_STATE, message)
    }
}

impl From<shmbus::Error> for FfiError {
    fn from(e: shmbus::Error) -> FfiError {
        let code = code_of(&e);
        match e {
            // Their text is fixed: skip formatting it.
            shmbus::Error::Full
            | shmbus::Error::Timeout
            | shmbus::Error::Closed
            | shmbus::Error::Interrupted => FfiError::plain(code),
            e => FfiError::new(code, e.to_string()),
        }
    }
}

/// Runs the body of the exported function `func`: `SHMBUS_OK` when it
/// succeeds; otherwise its error's code, with the message stored for
/// `shmbus_last_error` (made messages start with `func`). A panic is caught
/// and becomes `SHMBUS_ERR_PANIC`.
pub fn call(func: &'static str, body: impl FnOnce() -> FfiResult) -> shmbus_error_t {
    // AssertUnwindSafe: a handle whose body panicked is poisoned by its
    // guard (see `handle`), so no broken state is observed afterwards.
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => shmbus_error_t::SHMBUS_OK,
        Ok(Err(FfiError { code, message })) => {
            last_error::set(match message {
                Message::Owned(m) => Message::Owned(format!("{func}: {m}")),
                m => m,
            });
            code
        }
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            last_error::set(Message::Owned(format!(
                "{func}: internal error in libshmbus ({what}); this is a bug, please report it"
            )));
            shmbus_error_t::SHMBUS_ERR_PANIC
        }
    }
}

/// An output parameter: checked non-NULL and aligned, written with
/// [`Out::write`] (the memory behind it may be uninitialized, so no
/// reference to it is ever made).
#[derive(Debug)]
pub struct Out<T>(NonNull<T>);

impl<T> Out<T> {
    /// Checks the output pointer `p`, named `name` in the error.
    pub fn new(p: *mut T, name: &str) -> FfiResult<Out<T>> {
        let p = NonNull::new(p).ok_or_else(|| FfiError::invalid(format!("{name} is NULL")))?;
        if !p.as_ptr().is_aligned() {
            return Err(FfiError::invalid(format!("{name} is not aligned")));
        }
        Ok(Out(p))
    }

    /// Like [`Out::new`], but NULL means "the caller does not want it".
    pub fn optional(p: *mut T, name: &str) -> FfiResult<Option<Out<T>>> {
        if p.is_null() {
            Ok(None)
        } else {
            Out::new(p, name).map(Some)
        }
    }

    /// Stores `value`.
    ///
    /// # Safety
    /// The pointer given to [`Out::new`] must point to memory valid for
    /// writing a `T`.
    pub unsafe fn write(&self, value: T) {
        // SAFETY: non-NULL and aligned (checked in `new`), writable per this
        // function's contract; `write` does not read or drop the old value,
        // which may be uninitialized.
        unsafe { self.0.as_ptr().write(value) }
    }
}

/// Reads a C input struct `p` (named `name`), or `None` when `p` is NULL.
///
/// # Safety
/// A non-NULL `p` must point to a readable, initialized `T`.
pub unsafe fn read_optional<T: Copy>(p: *const T, name: &str) -> FfiResult<Option<T>> {
    if p.is_null() {
        return Ok(None);
    }
    if !p.is_aligned() {
        return Err(FfiError::invalid(format!("{name} is not aligned")));
    }
    // SAFETY: non-NULL, aligned, and readable per this function's contract.
    Ok(Some(unsafe { p.read() }))
}

/// Reads a required C input struct `p` (named `name`).
///
/// # Safety
/// As [`read_optional`].
pub unsafe fn read_required<T: Copy>(p: *const T, name: &str) -> FfiResult<T> {
    // SAFETY: forwarded contract.
    unsafe { read_optional(p, name) }?.ok_or_else(|| FfiError::invalid(format!("{name} is NULL")))
}

/// The UTF-8 text of the C string `p` (named `name` in errors).
///
/// # Safety
/// A non-NULL `p` must point to a NUL-terminated string that stays valid
/// and unchanged for `'a`.
pub unsafe fn str_arg<'a>(p: *const c_char, name: &str) -> FfiResult<&'a str> {
    if p.is_null() {
        return Err(FfiError::invalid(format!("{name} is NULL")));
    }
    // SAFETY: non-NULL and NUL-terminated per this function's contract.
    let s = unsafe { CStr::from_ptr(p) };
    s.to_str().map_err(|_| {
        FfiError::invalid(format!(
            "{name} is not valid UTF-8: {}",
            s.to_string_lossy()
        ))
    })
}

/// The file-system path in the C string `p` (any bytes but NUL: Linux
/// paths need not be UTF-8), or `None` when `p` is NULL.
///
/// # Safety
/// As [`str_arg`].
pub unsafe fn optional_path_arg<'a>(p: *const c_char) -> Option<&'a std::path::Path> {
    use std::os::unix::ffi::OsStrExt;
    if p.is_null() {
        return None;
    }
    // SAFETY: non-NULL and NUL-terminated per this function's contract.
    let bytes = unsafe { CStr::from_ptr(p) }.to_bytes();
    Some(std::path::Path::new(std::ffi::OsStr::from_bytes(bytes)))
}

/// The bytes `data[..len]`; `data` may be NULL only when `len` is 0.
///
/// # Safety
/// A non-NULL `data` must point to `len` readable bytes that stay valid
/// and unchanged for `'a`.
pub unsafe fn bytes_arg<'a>(data: *const c_void, len: usize, name: &str) -> FfiResult<&'a [u8]> {
    if data.is_null() {
        if len == 0 {
            return Ok(&[]);
        }
        return Err(FfiError::invalid(format!(
            "{name} is NULL but len is {len}"
        )));
    }
    if len > isize::MAX as usize {
        return Err(FfiError::invalid(format!(
            "len {len} is not a valid length"
        )));
    }
    // SAFETY: non-NULL, `len` readable bytes per this function's contract,
    // and `len ≤ isize::MAX` as `from_raw_parts` requires; u8 needs no
    // alignment.
    Ok(unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panics_become_a_code_and_a_message() {
        let code = call("shmbus_test", || panic!("boom"));
        assert_eq!(code, shmbus_error_t::SHMBUS_ERR_PANIC);
        // SAFETY: a valid NUL-terminated string until the next failure.
        let msg = unsafe { CStr::from_ptr(crate::last_error::shmbus_last_error()) };
        let msg = msg.to_str().unwrap();
        assert!(msg.starts_with("shmbus_test: internal error"), "{msg}");
        assert!(msg.contains("boom"), "{msg}");
    }

    #[test]
    fn made_messages_name_the_function() {
        let code = call("shmbus_f", || Err(FfiError::invalid("topic is NULL")));
        assert_eq!(code, shmbus_error_t::SHMBUS_ERR_INVALID_ARGUMENT);
        // SAFETY: as above.
        let msg = unsafe { CStr::from_ptr(crate::last_error::shmbus_last_error()) };
        assert_eq!(msg.to_str().unwrap(), "shmbus_f: topic is NULL");
    }

    #[test]
    fn arguments_are_checked() {
        // SAFETY: NULL pointers and a valid string are within the contract.
        unsafe {
            assert!(str_arg(std::ptr::null(), "topic").is_err());
            assert!(str_arg(c"\xff".as_ptr(), "topic").is_err());
            assert_eq!(str_arg(c"ok".as_ptr(), "topic").unwrap(), "ok");
            assert!(bytes_arg(std::ptr::null(), 1, "data").is_err());
            assert_eq!(bytes_arg(std::ptr::null(), 0, "data").unwrap(), b"");
        }
        assert!(Out::<u64>::new(std::ptr::null_mut(), "seq").is_err());
        assert!(Out::<u64>::optional(std::ptr::null_mut(), "seq")
            .unwrap()
            .is_none());
        let misaligned = (std::ptr::dangling_mut::<u64>() as usize + 1) as *mut u64;
        assert!(Out::new(misaligned, "seq").is_err());
    }
}
