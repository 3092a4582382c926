//! `shmbus_publisher_t`: publishing on one topic, by copy (`send`,
//! `try_send`, `send_timeout`) or zero copy (`loan` a slot, write into it,
//! `commit` or `abandon`).
//!
//! The Rust [`Loan`] borrows its publisher mutably, which C cannot express,
//! so the loan lives inside the publisher handle: at most one at a time,
//! and while it is outstanding every other call on the publisher but
//! commit, abandon and close is `SHMBUS_ERR_BAD_STATE` (closing abandons
//! it).

use std::ffi::{c_char, c_void};
use std::ptr::NonNull;
use std::time::Duration;

use shmbus::{Loan, Publisher};

use crate::boundary::{self, bytes_arg, str_arg, FfiError, FfiResult, Out};
use crate::bus::{bus_ref, shmbus_bus_t};
use crate::handle::{self, Handle, Kind};
use crate::options::{shmbus_wait_t, wait_from_c};
use crate::status::shmbus_error_t;

/// A publisher on one topic (opaque).
///
/// Thread-safety: one thread at a time. A publisher may be handed from one
/// thread to another, but a call made while another thread is inside a
/// call on the same publisher fails with `SHMBUS_ERR_BUSY`. Open one
/// publisher per publishing thread (they share the topic lock-free). Do not
/// close it while another thread is using it.
pub struct shmbus_publisher_t {
    handle: Handle<Publishing>,
}

impl Kind for shmbus_publisher_t {
    type Inner = Publishing;
    const TAG: u32 = 0x5b05_9b11;
    const C_NAME: &'static str = "shmbus_publisher_t";
    fn wrap(handle: Handle<Publishing>) -> Self {
        shmbus_publisher_t { handle }
    }
    fn handle(&self) -> &Handle<Publishing> {
        &self.handle
    }
}

/// What a publisher handle holds: the publisher and, at times, its loan.
#[derive(Debug)]
pub struct Publishing {
    // Declared first so that it is dropped first: it borrows `publisher`.
    loan: Option<Loan<'static>>,
    /// Length the outstanding loan was taken for.
    loan_len: usize,
    /// Owned (from `Box::into_raw`); freed in `Drop`, after the loan.
    publisher: NonNull<Publisher>,
    max_msg_size: usize,
}

// SAFETY: `Publishing` owns its `Publisher` (a `Box` in all but type) and
// the loan borrows only that publisher; both are `Send` (checked below), so
// moving the whole to another thread is sound.
unsafe impl Send for Publishing {}

const _: () = {
    const fn is_send<T: Send>() {}
    is_send::<Publisher>();
    is_send::<Loan<'static>>();
};

/// How long a loan or send may wait.
#[derive(Clone, Copy)]
enum Wait {
    Forever,
    Not,
    For(Duration),
}

impl Publishing {
    fn new(p: Publisher) -> Publishing {
        let max_msg_size = p.max_msg_size();
        Publishing {
            loan: None,
            loan_len: 0,
            publisher: NonNull::from(Box::leak(Box::new(p))),
            max_msg_size,
        }
    }

    /// The publisher, when no loan borrows it.
    fn publisher(&mut self) -> FfiResult<&mut Publisher> {
        if self.loan.is_some() {
            return Err(FfiError::bad_state(
                "a loan is outstanding: commit or abandon it first",
            ));
        }
        // SAFETY: `publisher` is owned by `self` and valid until `Drop`; no
        // loan borrows it (checked above) and `&mut self` is exclusive, so
        // this is the only reference.
        Ok(unsafe { &mut *self.publisher.as_ptr() })
    }

    fn send(&mut self, msg: &[u8], wait: Wait) -> FfiResult<u64> {
        let p = self.publisher()?;
        Ok(match wait {
            Wait::Forever => p.send(msg),
            Wait::Not => p.try_send(msg),
            Wait::For(t) => p.send_timeout(msg, t),
        }?)
    }

    fn loan(&mut self, len: usize, wait: Wait) -> FfiResult<*mut u8> {
        if self.loan.is_some() {
            return Err(FfiError::bad_state(
                "a loan is outstanding already: commit or abandon it first",
            ));
        }
        // SAFETY: the 'static lifetime is confined to this struct: the loan
        // is stored in `self.loan`, which is dropped before the publisher
        // (field order and `Drop`), and no other reference to the publisher
        // is made while it is `Some` (see `publisher`).
        let p: &'static mut Publisher = unsafe { &mut *self.publisher.as_ptr() };
        let mut loan = match wait {
            Wait::Forever => p.loan(len),
            Wait::Not => p.try_loan(len),
            Wait::For(t) => p.loan_timeout(len, t),
        }?;
        let buf = loan.as_mut_ptr();
        self.loan = Some(loan);
        self.loan_len = len;
        Ok(buf)
    }

    fn commit(&mut self, len: usize) -> FfiResult<u64> {
        let loaned = self.loan_len;
        let Some(loan) = self.loan.as_mut() else {
            return Err(FfiError::bad_state("no loan is outstanding"));
        };
        if len > loaned {
            return Err(FfiError::invalid(format!(
                "len {len} is longer than the {loaned} bytes loaned"
            )));
        }
        loan.truncate(len);
        let loan = self.loan.take().expect("checked above");
        Ok(loan.commit())
    }

    fn abandon(&mut self) -> FfiResult {
        match self.loan.take() {
            // Dropping a loan abandons its sequence: subscribers skip it.
            Some(loan) => {
                drop(loan);
                Ok(())
            }
            None => Err(FfiError::bad_state("no loan is outstanding")),
        }
    }
}

impl Drop for Publishing {
    fn drop(&mut self) {
        self.loan = None;
        // SAFETY: `publisher` came from `Box::leak` in `new` and is freed
        // only here, after the loan that borrowed it is gone.
        drop(unsafe { Box::from_raw(self.publisher.as_ptr()) });
    }
}

fn timeout(ns: u64) -> Wait {
    Wait::For(Duration::from_nanos(ns))
}

/// # Safety
/// `p` must be NULL or a live publisher handle, not closed meanwhile.
unsafe fn lock<'a>(p: *mut shmbus_publisher_t) -> FfiResult<handle::Guard<'a, Publishing>> {
    // SAFETY: forwarded contract.
    unsafe { handle::lock(p, "publisher") }
}

/// Opens `topic` for publishing: the daemon checks the caller's right and
/// creates the topic with its defaults if it does not exist (unless its
/// config turns that off). On success `*publisher` is a new handle, to be
/// closed with `shmbus_publisher_close`; on failure it is set to NULL.
///
/// Errors: `SHMBUS_ERR_INVALID_ARGUMENT`, `SHMBUS_ERR_INVALID_NAME`,
/// `SHMBUS_ERR_NO_SUCH_TOPIC`, `SHMBUS_ERR_DENIED`,
/// `SHMBUS_ERR_TOO_MANY_CLIENTS`, `SHMBUS_ERR_NO_DAEMON`,
/// `SHMBUS_ERR_CORRUPT`, `SHMBUS_ERR_IO`. Thread-safe (with respect to the
/// bus handle).
///
/// # Safety
/// `bus` must be NULL or a live bus handle; `topic` NULL or a
/// NUL-terminated string; `publisher` NULL or writable memory for a
/// pointer.
#[no_mangle]
pub unsafe extern "C" fn shmbus_publisher_open(
    bus: *const shmbus_bus_t,
    topic: *const c_char,
    publisher: *mut *mut shmbus_publisher_t,
) -> shmbus_error_t {
    boundary::call("shmbus_publisher_open", || {
        let out = Out::new(publisher, "publisher")?;
        // SAFETY: writable per the contract; NULL until success.
        unsafe { out.write(std::ptr::null_mut()) };
        // SAFETY: per the contract.
        let (b, topic) = unsafe { (bus_ref(bus)?, str_arg(topic, "topic")?) };
        let p = b.publisher(topic)?;
        // SAFETY: as above.
        unsafe { out.write(handle::into_raw::<shmbus_publisher_t>(Publishing::new(p))) };
        Ok(())
    })
}

/// Closes a publisher and frees it; an outstanding loan is abandoned.
///
/// Errors: `SHMBUS_ERR_INVALID_ARGUMENT` (NULL or not a live publisher),
/// `SHMBUS_ERR_BUSY` (another thread is inside a call on it).
///
/// # Safety
/// `publisher` must be NULL or a live publisher handle; it must not be
/// used after this call.
#[no_mangle]
pub unsafe extern "C" fn shmbus_publisher_close(
    publisher: *mut shmbus_publisher_t,
) -> shmbus_error_t {
    boundary::call("shmbus_publisher_close", || {
        // SAFETY: forwarded contract.
        unsafe { handle::close(publisher, "publisher") }
    })
}

/// Sets how `send`, `send_timeout`, `loan` and `loan_timeout` wait when a
/// `block` ring is full.
///
/// Errors: `SHMBUS_ERR_INVALID_ARGUMENT` (NULL, `wait` out of range),
/// `SHMBUS_ERR_BAD_STATE` (a loan is outstanding), `SHMBUS_ERR_BUSY`.
///
/// # Safety
/// `publisher` must be NULL or a live publisher handle.
#[no_mangle]
pub unsafe extern "C" fn shmbus_publisher_set_wait(
    publisher: *mut shmbus_publisher_t,
    wait: shmbus_wait_t,
) -> shmbus_error_t {
    boundary::call("shmbus_publisher_set_wait", || {
        // SAFETY: forwarded contract.
        let mut p = unsafe { lock(publisher) }?;
        let strategy = wait_from_c(wait)?;
        p.publisher()?.set_wait_strategy(strategy);
        Ok(())
    })
}

/// Stores the topic's maximum message size, in bytes, in `*size`.
///
/// Errors: `SHMBUS_ERR_INVALID_ARGUMENT`, `SHMBUS_ERR_BUSY`.
///
/// # Safety
/// `publisher` must be NULL or a live publisher handle; `size` NULL or
/// writable memory for a `size_t`.
#[no_mangle]
pub unsafe extern "C" fn shmbus_publisher_max_msg_size(
    publisher: *mut shmbus_publisher_t,
    size: *mut usize,
) -> shmbus_error_t {
    boundary::call("shmbus_publisher_max_msg_size", || {
        let out = Out::new(size, "size")?;
        // SAFETY: forwarded contract.
        let p = unsafe { lock(publisher) }?;
        // SAFETY: writable per the contract.
        unsafe { out.write(p.max_msg_size) };
        Ok(())
    })
}

/// Stores the number of subscribers attached to the topic right now in
/// `*count`.
///
/// Errors: `SHMBUS_ERR_INVALID_ARGUMENT`, `SHMBUS_ERR_BAD_STATE` (a loan
/// is outstanding), `SHMBUS_ERR_BUSY`.
///
/// # Safety
/// `publisher` must be NULL or a live publisher handle; `count` NULL or
/// writable memory for a `uint32_t`.
#[no_mangle]
pub unsafe extern "C" fn shmbus_publisher_subscriber_count(
    publisher: *mut shmbus_publisher_t,
    count: *mut u32,
) -> shmbus_error_t {
    boundary::call("shmbus_publisher_subscriber_count", || {
        let out = Out::new(count, "count")?;
        // SAFETY: forwarded contract.
        let mut p = unsafe { lock(publisher) }?;
        let n = p.publisher()?.subscriber_count();
        // SAFETY: writable per the contract.
        unsafe { out.write(n) };
        Ok(())
    })
}

/// Body of the three sends.
///
/// # Safety
/// As the sends' contracts.
unsafe fn send(
    func: &'static str,
    publisher: *mut shmbus_publisher_t,
    data: *const c_void,
    len: usize,
    seq: *mut u64,
    wait: Wait,
) -> shmbus_error_t {
    boundary::call(func, || {
        let seq = Out::optional(seq, "seq")?;
        // SAFETY: per the contract.
        let (mut p, msg) = unsafe { (lock(publisher)?, bytes_arg(data, len, "data")?) };
        let s = p.send(msg, wait)?;
        if let Some(out) = seq {
            // SAFETY: writable per the contract.
            unsafe { out.write(s) };
        }
        Ok(())
    })
}

/// Publishes the `len` bytes at `data` as one message, waiting while a
/// `block` ring is full. `data` may be NULL when `len` is 0. The message's
/// sequence number goes to `*seq` unless `seq` is NULL.
///
/// Errors: `SHMBUS_ERR_INVALID_ARGUMENT`, `SHMBUS_ERR_TOO_LARGE`,
/// `SHMBUS_ERR_CLOSED`, `SHMBUS_ERR_INTERRUPTED` (a signal arrived while
/// waiting; nothing was sent), `SHMBUS_ERR_BAD_STATE` (a loan is
/// outstanding), `SHMBUS_ERR_BUSY`, `SHMBUS_ERR_CORRUPT`.
///
/// # Safety
/// `publisher` must be NULL or a live publisher handle; `data` NULL or
/// `len` readable bytes; `seq` NULL or writable memory for a `uint64_t`.
#[no_mangle]
pub unsafe extern "C" fn shmbus_publisher_send(
    publisher: *mut shmbus_publisher_t,
    data: *const c_void,
    len: usize,
    seq: *mut u64,
) -> shmbus_error_t {
    // SAFETY: forwarded contract.
    unsafe {
        send(
            "shmbus_publisher_send",
            publisher,
            data,
            len,
            seq,
            Wait::Forever,
        )
    }
}

/// Like `shmbus_publisher_send`, but never waits: `SHMBUS_ERR_FULL` when a
/// `block` ring is full.
///
/// # Safety
/// As `shmbus_publisher_send`.
#[no_mangle]
pub unsafe extern "C" fn shmbus_publisher_try_send(
    publisher: *mut shmbus_publisher_t,
    data: *const c_void,
    len: usize,
    seq: *mut u64,
) -> shmbus_error_t {
    // SAFETY: forwarded contract.
    unsafe {
        send(
            "shmbus_publisher_try_send",
            publisher,
            data,
            len,
            seq,
            Wait::Not,
        )
    }
}

/// Like `shmbus_publisher_send`, but waits at most `timeout_ns`
/// nanoseconds for room: `SHMBUS_ERR_TIMEOUT` then.
///
/// # Safety
/// As `shmbus_publisher_send`.
#[no_mangle]
pub unsafe extern "C" fn shmbus_publisher_send_timeout(
    publisher: *mut shmbus_publisher_t,
    data: *const c_void,
    len: usize,
    timeout_ns: u64,
    seq: *mut u64,
) -> shmbus_error_t {
    // SAFETY: forwarded contract.
    unsafe {
        send(
            "shmbus_publisher_send_timeout",
            publisher,
            data,
            len,
            seq,
            timeout(timeout_ns),
        )
    }
}

/// Body of the three loans.
///
/// # Safety
/// As the loans' contracts.
unsafe fn loan(
    func: &'static str,
    publisher: *mut shmbus_publisher_t,
    len: usize,
    buf: *mut *mut c_void,
    wait: Wait,
) -> shmbus_error_t {
    boundary::call(func, || {
        let out = Out::new(buf, "buf")?;
        // SAFETY: writable per the contract; NULL until success.
        unsafe { out.write(std::ptr::null_mut()) };
        // SAFETY: forwarded contract.
        let mut p = unsafe { lock(publisher) }?;
        let b = p.loan(len, wait)?;
        // SAFETY: as above.
        unsafe { out.write(b.cast()) };
        Ok(())
    })
}

/// Borrows the next slot of the ring for a message of up to `len` bytes,
/// waiting while a `block` ring is full: `*buf` points to `len` writable
/// bytes in shared memory (holding old data: write all you publish). Then
/// call `shmbus_publisher_commit` to publish, or `shmbus_publisher_abandon`
/// (subscribers skip an abandoned slot). `*buf` stays valid until then; it
/// is set to NULL on failure. With `len` 0, `*buf` must not be
/// dereferenced.
///
/// Errors: `SHMBUS_ERR_INVALID_ARGUMENT`, `SHMBUS_ERR_TOO_LARGE`,
/// `SHMBUS_ERR_CLOSED`, `SHMBUS_ERR_INTERRUPTED`, `SHMBUS_ERR_BAD_STATE`
/// (a loan is outstanding already), `SHMBUS_ERR_BUSY`.
///
/// # Safety
/// `publisher` must be NULL or a live publisher handle; `buf` NULL or
/// writable memory for a pointer.
#[no_mangle]
pub unsafe extern "C" fn shmbus_publisher_loan(
    publisher: *mut shmbus_publisher_t,
    len: usize,
    buf: *mut *mut c_void,
) -> shmbus_error_t {
    // SAFETY: forwarded contract.
    unsafe { loan("shmbus_publisher_loan", publisher, len, buf, Wait::Forever) }
}

/// Like `shmbus_publisher_loan`, but never waits: `SHMBUS_ERR_FULL` when a
/// `block` ring is full.
///
/// # Safety
/// As `shmbus_publisher_loan`.
#[no_mangle]
pub unsafe extern "C" fn shmbus_publisher_try_loan(
    publisher: *mut shmbus_publisher_t,
    len: usize,
    buf: *mut *mut c_void,
) -> shmbus_error_t {
    // SAFETY: forwarded contract.
    unsafe { loan("shmbus_publisher_try_loan", publisher, len, buf, Wait::Not) }
}

/// Like `shmbus_publisher_loan`, but waits at most `timeout_ns`
/// nanoseconds: `SHMBUS_ERR_TIMEOUT` then.
///
/// # Safety
/// As `shmbus_publisher_loan`.
#[no_mangle]
pub unsafe extern "C" fn shmbus_publisher_loan_timeout(
    publisher: *mut shmbus_publisher_t,
    len: usize,
    timeout_ns: u64,
    buf: *mut *mut c_void,
) -> shmbus_error_t {
    // SAFETY: forwarded contract.
    unsafe {
        loan(
            "shmbus_publisher_loan_timeout",
            publisher,
            len,
            buf,
            timeout(timeout_ns),
        )
    }
}

/// Publishes the outstanding loan as a message of its first `len` bytes
/// (`len` at most the loaned length). Its sequence number goes to `*seq`
/// unless `seq` is NULL. The loaned buffer must not be touched afterwards.
///
/// Errors: `SHMBUS_ERR_INVALID_ARGUMENT` (NULL, `len` longer than the
/// loan; the loan stays outstanding), `SHMBUS_ERR_BAD_STATE` (no loan),
/// `SHMBUS_ERR_BUSY`.
///
/// # Safety
/// `publisher` must be NULL or a live publisher handle; `seq` NULL or
/// writable memory for a `uint64_t`.
#[no_mangle]
pub unsafe extern "C" fn shmbus_publisher_commit(
    publisher: *mut shmbus_publisher_t,
    len: usize,
    seq: *mut u64,
) -> shmbus_error_t {
    boundary::call("shmbus_publisher_commit", || {
        let seq = Out::optional(seq, "seq")?;
        // SAFETY: forwarded contract.
        let mut p = unsafe { lock(publisher) }?;
        let s = p.commit(len)?;
        if let Some(out) = seq {
            // SAFETY: writable per the contract.
            unsafe { out.write(s) };
        }
        Ok(())
    })
}

/// Gives the outstanding loan up: nothing is published and subscribers
/// skip its sequence number.
///
/// Errors: `SHMBUS_ERR_INVALID_ARGUMENT`, `SHMBUS_ERR_BAD_STATE` (no
/// loan), `SHMBUS_ERR_BUSY`.
///
/// # Safety
/// `publisher` must be NULL or a live publisher handle.
#[no_mangle]
pub unsafe extern "C" fn shmbus_publisher_abandon(
    publisher: *mut shmbus_publisher_t,
) -> shmbus_error_t {
    boundary::call("shmbus_publisher_abandon", || {
        // SAFETY: forwarded contract.
        let mut p = unsafe { lock(publisher) }?;
        p.abandon()
    })
}
