//! `shmbus_subscriber_t`: receiving every message of one topic, copied
//! into the subscriber's own buffer (`recv`, `try_recv`, `recv_timeout`) or
//! held until released (`recv_ref` and its variants, with a validity
//! check): read in place in shared memory on `block` topics, and on
//! `drop-oldest` topics copied into the subscriber's own buffer and checked
//! whole (the Rust [`MessageGuard`] does that), so that C is never handed
//! bytes a publisher may be overwriting.
//!
//! Either way the message handed to C stays readable until the next
//! receive on the same subscriber, `shmbus_subscriber_release` (held
//! messages only) or close. The Rust [`MessageGuard`] of a held message
//! borrows the subscriber mutably, so it lives inside the handle; the next
//! receive releases it (consumes the message) before reading on.

use std::ffi::c_char;
use std::ptr::NonNull;
use std::time::Duration;

use shmbus::{MessageGuard, Subscriber};

use crate::boundary::{self, read_optional, str_arg, FfiError, FfiResult, Out};
use crate::bus::{bus_ref, shmbus_bus_t};
use crate::handle::{self, Handle, Kind};
use crate::options::{shmbus_subscribe_options_t, shmbus_wait_t, wait_from_c};
use crate::status::shmbus_error_t;

/// A subscriber on one topic (opaque): it receives every message published
/// after it opened (or, with `from_start`, still in the ring), in order.
///
/// Thread-safety: one thread at a time. A subscriber may be handed from one
/// thread to another, but a call made while another thread is inside a
/// call on the same subscriber fails with `SHMBUS_ERR_BUSY`. Open one
/// subscriber per receiving thread (each gets every message). Do not close
/// it while another thread is using it.
pub struct shmbus_subscriber_t {
    handle: Handle<Subscribing>,
}

impl Kind for shmbus_subscriber_t {
    type Inner = Subscribing;
    const TAG: u32 = 0x5b05_5b55;
    const C_NAME: &'static str = "shmbus_subscriber_t";
    fn wrap(handle: Handle<Subscribing>) -> Self {
        shmbus_subscriber_t { handle }
    }
    fn handle(&self) -> &Handle<Subscribing> {
        &self.handle
    }
}

/// A received message.
///
/// `data` points to `len` bytes owned by the library: in the subscriber's
/// buffer (`recv`, and `recv_ref` on `drop-oldest` topics) or in shared
/// memory (`recv_ref` on `block` topics). They stay readable
/// until the next receive on the same subscriber, its
/// `shmbus_subscriber_release` or its close. On failure `data` is NULL and
/// `len` 0; on `SHMBUS_ERR_LAGGED`, `lost` tells how many messages were
/// overwritten before they could be read (the next receive returns the
/// oldest one still there).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct shmbus_message_t {
    /// Topic-wide sequence number (strictly increasing).
    pub seq: u64,
    /// Publish time, in nanoseconds since the Unix epoch (CLOCK_REALTIME to
    /// within about a microsecond; not monotonic: order is `seq`).
    pub timestamp_ns: u64,
    /// The payload (see above for how long it stays valid).
    pub data: *const u8,
    /// Payload length in bytes.
    pub len: usize,
    /// Messages lost, set with `SHMBUS_ERR_LAGGED`; 0 otherwise.
    pub lost: u64,
}

impl shmbus_message_t {
    const EMPTY: shmbus_message_t = shmbus_message_t {
        seq: 0,
        timestamp_ns: 0,
        data: std::ptr::null(),
        len: 0,
        lost: 0,
    };
}

/// What a subscriber handle holds: the subscriber and, at times, the guard
/// of the message read in place.
#[derive(Debug)]
pub struct Subscribing {
    // Declared first so that it is dropped first: it borrows `subscriber`.
    held: Option<MessageGuard<'static>>,
    /// Owned (from `Box::leak`); freed in `Drop`, after the guard.
    subscriber: NonNull<Subscriber>,
    max_msg_size: usize,
}

// SAFETY: `Subscribing` owns its `Subscriber` (a `Box` in all but type) and
// the guard borrows only that subscriber; both are `Send` (checked below).
unsafe impl Send for Subscribing {}

const _: () = {
    const fn is_send<T: Send>() {}
    is_send::<Subscriber>();
    is_send::<MessageGuard<'static>>();
};

/// How long a receive may wait.
#[derive(Clone, Copy)]
enum Wait {
    Forever,
    Not,
    For(Duration),
}

impl Subscribing {
    fn new(s: Subscriber) -> Subscribing {
        let max_msg_size = s.config().max_msg_size as usize;
        Subscribing {
            held: None,
            subscriber: NonNull::from(Box::leak(Box::new(s))),
            max_msg_size,
        }
    }

    /// The subscriber, after releasing (consuming) a message held in
    /// place: the start of every receive.
    fn release_and_borrow(&mut self) -> &'static mut Subscriber {
        self.held = None;
        // SAFETY: the guard that borrowed the subscriber is gone, and
        // `&mut self` is exclusive, so this is the only reference. The
        // 'static lifetime is confined to this struct: a guard made from it
        // is stored in `self.held`, dropped before the subscriber (field
        // order and `Drop`), and every use of the subscriber starts here,
        // which drops that guard first.
        unsafe { &mut *self.subscriber.as_ptr() }
    }

    fn recv(&mut self, wait: Wait) -> shmbus::Result<shmbus_message_t> {
        let s = self.release_and_borrow();
        let m = match wait {
            Wait::Forever => s.recv()?,
            Wait::Not => s.try_recv()?.ok_or(shmbus::Error::Timeout)?,
            Wait::For(t) => s.recv_timeout(t)?,
        };
        Ok(shmbus_message_t {
            seq: m.seq,
            timestamp_ns: m.timestamp_ns,
            data: m.data.as_ptr(),
            len: m.data.len(),
            lost: 0,
        })
    }

    fn recv_ref(&mut self, wait: Wait) -> shmbus::Result<shmbus_message_t> {
        let s = self.release_and_borrow();
        let g = match wait {
            Wait::Forever => s.recv_ref()?,
            Wait::Not => s.try_recv_ref()?.ok_or(shmbus::Error::Timeout)?,
            Wait::For(t) => s.recv_ref_timeout(t)?,
        };
        let m = shmbus_message_t {
            seq: g.seq(),
            timestamp_ns: g.timestamp_ns(),
            data: g.data().as_ptr(),
            len: g.data().len(),
            lost: 0,
        };
        self.held = Some(g);
        Ok(m)
    }
}

impl Drop for Subscribing {
    fn drop(&mut self) {
        self.held = None;
        // SAFETY: `subscriber` came from `Box::leak` in `new` and is freed
        // only here, after the guard that borrowed it is gone.
        drop(unsafe { Box::from_raw(self.subscriber.as_ptr()) });
    }
}

/// # Safety
/// `s` must be NULL or a live subscriber handle, not closed meanwhile.
unsafe fn lock<'a>(s: *mut shmbus_subscriber_t) -> FfiResult<handle::Guard<'a, Subscribing>> {
    // SAFETY: forwarded contract.
    unsafe { handle::lock(s, "subscriber") }
}

/// Opens `topic` for subscribing, like `shmbus_publisher_open`. `options`
/// may be NULL for the defaults (see `shmbus_subscribe_options_init`). On
/// success `*subscriber` is a new handle, to be closed with
/// `shmbus_subscriber_close`; on failure it is set to NULL.
///
/// Errors: `SHMBUS_ERR_INVALID_ARGUMENT` (NULL, `wait` out of range),
/// `SHMBUS_ERR_INVALID_NAME`, `SHMBUS_ERR_NO_SUCH_TOPIC`,
/// `SHMBUS_ERR_DENIED`, `SHMBUS_ERR_TOO_MANY_CLIENTS`,
/// `SHMBUS_ERR_NO_DAEMON`, `SHMBUS_ERR_CORRUPT`, `SHMBUS_ERR_IO`.
/// Thread-safe (with respect to the bus handle).
///
/// # Safety
/// `bus` must be NULL or a live bus handle; `topic` NULL or a
/// NUL-terminated string; `options` NULL or a readable
/// `shmbus_subscribe_options_t`; `subscriber` NULL or writable memory for a
/// pointer.
#[no_mangle]
pub unsafe extern "C" fn shmbus_subscriber_open(
    bus: *const shmbus_bus_t,
    topic: *const c_char,
    options: *const shmbus_subscribe_options_t,
    subscriber: *mut *mut shmbus_subscriber_t,
) -> shmbus_error_t {
    boundary::call("shmbus_subscriber_open", || {
        let out = Out::new(subscriber, "subscriber")?;
        // SAFETY: writable per the contract; NULL until success.
        unsafe { out.write(std::ptr::null_mut()) };
        // SAFETY: per the contract.
        let (b, topic, opts) = unsafe {
            (
                bus_ref(bus)?,
                str_arg(topic, "topic")?,
                read_optional(options, "options")?,
            )
        };
        let opts = match opts {
            Some(o) => o.to_rust()?,
            None => Default::default(),
        };
        let s = b.subscriber(topic, opts)?;
        // SAFETY: as above.
        unsafe { out.write(handle::into_raw::<shmbus_subscriber_t>(Subscribing::new(s))) };
        Ok(())
    })
}

/// Closes a subscriber and frees it (a message held in place is consumed).
///
/// Errors: `SHMBUS_ERR_INVALID_ARGUMENT` (NULL or not a live subscriber),
/// `SHMBUS_ERR_BUSY` (another thread is inside a call on it).
///
/// # Safety
/// `subscriber` must be NULL or a live subscriber handle; it must not be
/// used after this call.
#[no_mangle]
pub unsafe extern "C" fn shmbus_subscriber_close(
    subscriber: *mut shmbus_subscriber_t,
) -> shmbus_error_t {
    boundary::call("shmbus_subscriber_close", || {
        // SAFETY: forwarded contract.
        unsafe { handle::close(subscriber, "subscriber") }
    })
}

/// Sets how blocking receives wait.
///
/// Errors: `SHMBUS_ERR_INVALID_ARGUMENT` (NULL, `wait` out of range),
/// `SHMBUS_ERR_BAD_STATE` (a message is held in place: release it first),
/// `SHMBUS_ERR_BUSY`.
///
/// # Safety
/// `subscriber` must be NULL or a live subscriber handle.
#[no_mangle]
pub unsafe extern "C" fn shmbus_subscriber_set_wait(
    subscriber: *mut shmbus_subscriber_t,
    wait: shmbus_wait_t,
) -> shmbus_error_t {
    boundary::call("shmbus_subscriber_set_wait", || {
        // SAFETY: forwarded contract.
        let mut s = unsafe { lock(subscriber) }?;
        let strategy = wait_from_c(wait)?;
        if s.held.is_some() {
            return Err(FfiError::bad_state(
                "a message is held in place: release it first (shmbus_subscriber_release)",
            ));
        }
        s.release_and_borrow().set_wait_strategy(strategy);
        Ok(())
    })
}

/// Stores the topic's maximum message size, in bytes, in `*size` (the
/// largest `len` a message can have).
///
/// Errors: `SHMBUS_ERR_INVALID_ARGUMENT`, `SHMBUS_ERR_BUSY`.
///
/// # Safety
/// `subscriber` must be NULL or a live subscriber handle; `size` NULL or
/// writable memory for a `size_t`.
#[no_mangle]
pub unsafe extern "C" fn shmbus_subscriber_max_msg_size(
    subscriber: *mut shmbus_subscriber_t,
    size: *mut usize,
) -> shmbus_error_t {
    boundary::call("shmbus_subscriber_max_msg_size", || {
        let out = Out::new(size, "size")?;
        // SAFETY: forwarded contract.
        let s = unsafe { lock(subscriber) }?;
        // SAFETY: writable per the contract.
        unsafe { out.write(s.max_msg_size) };
        Ok(())
    })
}

/// Body of the six receives.
///
/// # Safety
/// As the receives' contracts.
unsafe fn receive(
    func: &'static str,
    subscriber: *mut shmbus_subscriber_t,
    message: *mut shmbus_message_t,
    wait: Wait,
    in_place: bool,
) -> shmbus_error_t {
    boundary::call(func, || {
        let out = Out::new(message, "message")?;
        // SAFETY: writable per the contract; empty unless a message comes.
        unsafe { out.write(shmbus_message_t::EMPTY) };
        // SAFETY: forwarded contract.
        let mut s = unsafe { lock(subscriber) }?;
        let got = if in_place {
            s.recv_ref(wait)
        } else {
            s.recv(wait)
        };
        match got {
            Ok(m) => {
                // SAFETY: as above.
                unsafe { out.write(m) };
                Ok(())
            }
            Err(shmbus::Error::Lagged(n)) => {
                // SAFETY: as above.
                unsafe {
                    out.write(shmbus_message_t {
                        lost: n,
                        ..shmbus_message_t::EMPTY
                    })
                };
                Err(shmbus::Error::Lagged(n).into())
            }
            // A non-blocking receive that found nothing.
            Err(shmbus::Error::Timeout) if matches!(wait, Wait::Not) => {
                Err(FfiError::plain(shmbus_error_t::SHMBUS_ERR_EMPTY))
            }
            Err(e) => Err(e.into()),
        }
    })
}

/// Receives the next message, copied into the subscriber's buffer, waiting
/// for it. A message held in place is released first.
///
/// Errors: `SHMBUS_ERR_INVALID_ARGUMENT`, `SHMBUS_ERR_LAGGED` (`lost` set;
/// drop-oldest topics only), `SHMBUS_ERR_CLOSED`, `SHMBUS_ERR_INTERRUPTED`
/// (a signal arrived while waiting; nothing was consumed),
/// `SHMBUS_ERR_BUSY`, `SHMBUS_ERR_CORRUPT`.
///
/// # Safety
/// `subscriber` must be NULL or a live subscriber handle; `message` NULL or
/// writable memory for a `shmbus_message_t`.
#[no_mangle]
pub unsafe extern "C" fn shmbus_subscriber_recv(
    subscriber: *mut shmbus_subscriber_t,
    message: *mut shmbus_message_t,
) -> shmbus_error_t {
    // SAFETY: forwarded contract.
    unsafe {
        receive(
            "shmbus_subscriber_recv",
            subscriber,
            message,
            Wait::Forever,
            false,
        )
    }
}

/// Like `shmbus_subscriber_recv`, but never waits: `SHMBUS_ERR_EMPTY` when
/// no message is there.
///
/// # Safety
/// As `shmbus_subscriber_recv`.
#[no_mangle]
pub unsafe extern "C" fn shmbus_subscriber_try_recv(
    subscriber: *mut shmbus_subscriber_t,
    message: *mut shmbus_message_t,
) -> shmbus_error_t {
    // SAFETY: forwarded contract.
    unsafe {
        receive(
            "shmbus_subscriber_try_recv",
            subscriber,
            message,
            Wait::Not,
            false,
        )
    }
}

/// Like `shmbus_subscriber_recv`, but waits at most `timeout_ns`
/// nanoseconds: `SHMBUS_ERR_TIMEOUT` then.
///
/// # Safety
/// As `shmbus_subscriber_recv`.
#[no_mangle]
pub unsafe extern "C" fn shmbus_subscriber_recv_timeout(
    subscriber: *mut shmbus_subscriber_t,
    timeout_ns: u64,
    message: *mut shmbus_message_t,
) -> shmbus_error_t {
    // SAFETY: forwarded contract.
    unsafe {
        receive(
            "shmbus_subscriber_recv_timeout",
            subscriber,
            message,
            Wait::For(Duration::from_nanos(timeout_ns)),
            false,
        )
    }
}

/// Receives the next message and holds it until it is consumed by the next
/// receive, `shmbus_subscriber_release` or close.
///
/// On a `block` topic `message->data` points into shared memory (zero
/// copy), and the bytes cannot change while held (publishers wait for this
/// subscriber); `shmbus_subscriber_is_valid` is true unless a process broke
/// the protocol. On a `drop-oldest` topic, where a publisher may overwrite
/// the slot at any time, `message->data` points to a copy in the
/// subscriber's own buffer, checked whole before it is returned (a message
/// overwritten while copied is reported as `SHMBUS_ERR_LAGGED` instead);
/// `shmbus_subscriber_is_valid` is then always true.
///
/// Errors: as `shmbus_subscriber_recv`.
///
/// # Safety
/// As `shmbus_subscriber_recv`; and the bytes at `message->data` must only
/// be read, never written (they are mapped read-only).
#[no_mangle]
pub unsafe extern "C" fn shmbus_subscriber_recv_ref(
    subscriber: *mut shmbus_subscriber_t,
    message: *mut shmbus_message_t,
) -> shmbus_error_t {
    // SAFETY: forwarded contract.
    unsafe {
        receive(
            "shmbus_subscriber_recv_ref",
            subscriber,
            message,
            Wait::Forever,
            true,
        )
    }
}

/// Like `shmbus_subscriber_recv_ref`, but never waits: `SHMBUS_ERR_EMPTY`
/// when no message is there.
///
/// # Safety
/// As `shmbus_subscriber_recv_ref`.
#[no_mangle]
pub unsafe extern "C" fn shmbus_subscriber_try_recv_ref(
    subscriber: *mut shmbus_subscriber_t,
    message: *mut shmbus_message_t,
) -> shmbus_error_t {
    // SAFETY: forwarded contract.
    unsafe {
        receive(
            "shmbus_subscriber_try_recv_ref",
            subscriber,
            message,
            Wait::Not,
            true,
        )
    }
}

/// Like `shmbus_subscriber_recv_ref`, but waits at most `timeout_ns`
/// nanoseconds: `SHMBUS_ERR_TIMEOUT` then.
///
/// # Safety
/// As `shmbus_subscriber_recv_ref`.
#[no_mangle]
pub unsafe extern "C" fn shmbus_subscriber_recv_ref_timeout(
    subscriber: *mut shmbus_subscriber_t,
    timeout_ns: u64,
    message: *mut shmbus_message_t,
) -> shmbus_error_t {
    // SAFETY: forwarded contract.
    unsafe {
        receive(
            "shmbus_subscriber_recv_ref_timeout",
            subscriber,
            message,
            Wait::For(Duration::from_nanos(timeout_ns)),
            true,
        )
    }
}

/// Stores in `*valid` whether the message held (`recv_ref`) is whole: on a
/// `block` topic, whether its slot still holds what was received (true
/// unless a process broke the protocol; call it after reading the bytes);
/// on a `drop-oldest` topic always true (the held bytes are a copy that was
/// checked whole).
///
/// Errors: `SHMBUS_ERR_INVALID_ARGUMENT`, `SHMBUS_ERR_BAD_STATE` (no
/// message is held in place), `SHMBUS_ERR_BUSY`.
///
/// # Safety
/// `subscriber` must be NULL or a live subscriber handle; `valid` NULL or
/// writable memory for a `bool`.
#[no_mangle]
pub unsafe extern "C" fn shmbus_subscriber_is_valid(
    subscriber: *mut shmbus_subscriber_t,
    valid: *mut bool,
) -> shmbus_error_t {
    boundary::call("shmbus_subscriber_is_valid", || {
        let out = Out::new(valid, "valid")?;
        // SAFETY: forwarded contract.
        let s = unsafe { lock(subscriber) }?;
        let g = s.held.as_ref().ok_or_else(|| {
            FfiError::bad_state("no message is held in place (see shmbus_subscriber_recv_ref)")
        })?;
        let v = g.is_valid();
        // SAFETY: writable per the contract.
        unsafe { out.write(v) };
        Ok(())
    })
}

/// Consumes the message held in place now, rather than at the next
/// receive (so that publishers of a `block` topic need not wait for it).
///
/// Errors: `SHMBUS_ERR_INVALID_ARGUMENT`, `SHMBUS_ERR_BAD_STATE` (no
/// message is held in place), `SHMBUS_ERR_BUSY`.
///
/// # Safety
/// `subscriber` must be NULL or a live subscriber handle.
#[no_mangle]
pub unsafe extern "C" fn shmbus_subscriber_release(
    subscriber: *mut shmbus_subscriber_t,
) -> shmbus_error_t {
    boundary::call("shmbus_subscriber_release", || {
        // SAFETY: forwarded contract.
        let mut s = unsafe { lock(subscriber) }?;
        match s.held.take() {
            Some(_guard) => Ok(()),
            None => Err(FfiError::bad_state(
                "no message is held in place (see shmbus_subscriber_recv_ref)",
            )),
        }
    })
}
