//! Opaque handles: what a `shmbus_*_t *` points to, how it is checked, and
//! how a handle meant for one thread at a time refuses a second thread.
//!
//! A handle is a heap block holding a kind tag, a use state and the Rust
//! object. Every call checks the pointer before touching the object: NULL
//! and misaligned pointers are `SHMBUS_ERR_INVALID_ARGUMENT`. So is, as a
//! best-effort net for caller bugs, a handle that was already closed (while
//! its memory is not reused) or a pointer to some other object whose first
//! bytes do not hold the tag. Those last two are outside the contract —
//! closing a handle ends its life, as `free` does — and no check can make
//! them safe in general.
//!
//! Publishers and subscribers are used by one thread at a time ([`lock`]):
//! a second thread calling meanwhile gets `SHMBUS_ERR_BUSY` instead of a
//! data race. The check is one uncontended atomic exchange. A handle whose
//! call panicked is poisoned: later calls get `SHMBUS_ERR_PANIC`, and only
//! closing it is allowed.
//!
//! [`lock`]: lock()

use std::cell::UnsafeCell;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};

use crate::boundary::{FfiError, FfiResult};
use crate::status::shmbus_error_t;

/// A C handle type: an opaque struct wrapping one [`Handle`].
pub trait Kind: Sized + 'static {
    /// What the handle holds.
    type Inner;
    /// Tag stored in live handles of this kind.
    const TAG: u32;
    /// The handle's C type, for error messages.
    const C_NAME: &'static str;
    /// Wraps a new handle.
    fn wrap(h: Handle<Self::Inner>) -> Self;
    /// The handle inside.
    fn handle(&self) -> &Handle<Self::Inner>;
}

/// The tag a closed handle is left with (readable only until the memory
/// is reused, which is why closing twice is still a caller's bug).
const DEAD: u32 = 0xdead_0000;

const IDLE: u8 = 0;
const IN_USE: u8 = 1;
const POISONED: u8 = 2;

/// The checked part of every handle, holding a `T`.
///
/// `repr(C)` puts the tag first in every kind of handle, so checking a
/// pointer to the wrong kind reads only its first four bytes.
#[derive(Debug)]
#[repr(C)]
pub struct Handle<T> {
    tag: AtomicU32,
    state: AtomicU8,
    inner: UnsafeCell<T>,
}

// SAFETY: the `T` inside is reached either through `lock` (one thread at a
// time, enforced by `state`), which needs `T: Send`, or through `shared`,
// which exists only for `T: Sync`. The other fields are atomics.
unsafe impl<T: Send> Sync for Handle<T> {}

/// Moves `inner` into a new handle of kind `K` and returns the pointer
/// given to C.
pub fn into_raw<K: Kind>(inner: K::Inner) -> *mut K {
    Box::into_raw(Box::new(K::wrap(Handle {
        tag: AtomicU32::new(K::TAG),
        state: AtomicU8::new(IDLE),
        inner: UnsafeCell::new(inner),
    })))
}

/// Checks that `p` names a live handle of kind `K`.
///
/// # Safety
/// `p` must be NULL or point to a handle of kind `K` that this library
/// returned and that was not closed. (The tag check catches many
/// violations of this in practice, but cannot make them sound.)
pub unsafe fn check<'a, K: Kind>(p: *const K, name: &str) -> FfiResult<&'a Handle<K::Inner>> {
    if p.is_null() {
        return Err(FfiError::invalid(format!("{name} is NULL")));
    }
    if !p.is_aligned() {
        return Err(FfiError::invalid(format!(
            "{name} is not a {} (misaligned pointer)",
            K::C_NAME
        )));
    }
    // SAFETY: non-NULL, aligned and a live handle per the contract. The
    // handle is only ever accessed through shared references (its mutable
    // part is behind `UnsafeCell` and `state`).
    let h = unsafe { &*p }.handle();
    if h.tag.load(Ordering::Relaxed) != K::TAG {
        return Err(FfiError::invalid(format!(
            "{name} is not a live {} (closed, or another kind of handle)",
            K::C_NAME
        )));
    }
    Ok(h)
}

/// Takes the handle `p` for exclusive use by this thread until the guard
/// drops: `SHMBUS_ERR_BUSY` if another thread holds it.
///
/// # Safety
/// As [`check`]; and the handle must not be closed while the guard lives.
pub unsafe fn lock<'a, K: Kind>(p: *const K, name: &str) -> FfiResult<Guard<'a, K::Inner>> {
    // SAFETY: forwarded contract.
    let h = unsafe { check(p, name) }?;
    // SYNC POINT (acquire): pairs with the release in `Guard::drop`, so
    // this thread sees everything the previous user wrote.
    match h
        .state
        .compare_exchange(IDLE, IN_USE, Ordering::Acquire, Ordering::Relaxed)
    {
        Ok(_) => Ok(Guard { h }),
        Err(POISONED) => Err(FfiError::new(
            shmbus_error_t::SHMBUS_ERR_PANIC,
            format!(
                "{name}: an earlier call failed inside libshmbus; only closing this {} is allowed",
                K::C_NAME
            ),
        )),
        Err(_) => Err(FfiError::new(
            shmbus_error_t::SHMBUS_ERR_BUSY,
            format!(
                "{name} is in use by another thread: a {} is for one thread at a time",
                K::C_NAME
            ),
        )),
    }
}

/// Closes the handle `p`: checks it, refuses if another thread is using
/// it, marks it dead and drops what it holds.
///
/// # Safety
/// As [`check`]; `p` must have come from [`into_raw`], and no other thread
/// may use it from now on.
pub unsafe fn close<K: Kind>(p: *mut K, name: &str) -> FfiResult {
    // SAFETY: forwarded contract.
    let h = unsafe { check(p, name) }?;
    match h
        .state
        .compare_exchange(IDLE, IN_USE, Ordering::Acquire, Ordering::Relaxed)
    {
        // A poisoned handle may (and should) be closed.
        Ok(_) | Err(POISONED) => {}
        Err(_) => {
            return Err(FfiError::new(
                shmbus_error_t::SHMBUS_ERR_BUSY,
                format!(
                    "{name} is in use by another thread: close the {} after that call returns",
                    K::C_NAME
                ),
            ))
        }
    }
    h.tag.store(DEAD, Ordering::Relaxed);
    // SAFETY: `p` came from `Box::into_raw` (contract), and this thread
    // holds the only use of it (state taken above, no later use by
    // contract), so the box can be rebuilt and dropped.
    drop(unsafe { Box::from_raw(p) });
    Ok(())
}

/// Shared access to a handle that any number of threads may use at once.
///
/// # Safety
/// As [`check`]; and the handle must not be closed while the reference
/// lives.
pub unsafe fn shared<'a, K: Kind>(p: *const K, name: &str) -> FfiResult<&'a K::Inner>
where
    K::Inner: Sync,
{
    // SAFETY: forwarded contract.
    let h = unsafe { check(p, name) }?;
    // SAFETY: `K::Inner: Sync`, and this crate never uses `lock` on kinds
    // it reaches through `shared` (the bus): only shared references to the
    // value are made while the handle lives.
    Ok(unsafe { &*h.inner.get() })
}

/// Exclusive use of a handle's `T` (see [`lock()`]).
pub struct Guard<'a, T> {
    h: &'a Handle<T>,
}

impl<T> Deref for Guard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: this guard holds the handle's state IN_USE, so no other
        // reference to the `T` exists.
        unsafe { &*self.h.inner.get() }
    }
}

impl<T> DerefMut for Guard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes this the only view.
        unsafe { &mut *self.h.inner.get() }
    }
}

impl<T> Drop for Guard<'_, T> {
    fn drop(&mut self) {
        // A panic in the middle of a call may have left the `T` half
        // updated: never hand it out again.
        let next = if std::thread::panicking() {
            POISONED
        } else {
            IDLE
        };
        // SYNC POINT (release): pairs with the acquire in `lock`.
        self.h.state.store(next, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Thing(Handle<u32>);
    impl Kind for Thing {
        type Inner = u32;
        const TAG: u32 = 0x7e57_0001;
        const C_NAME: &'static str = "thing_t";
        fn wrap(h: Handle<u32>) -> Self {
            Thing(h)
        }
        fn handle(&self) -> &Handle<u32> {
            &self.0
        }
    }

    #[test]
    fn second_user_is_refused_and_panics_poison() {
        let p = into_raw::<Thing>(1);
        // SAFETY: `p` is live until the close at the end.
        unsafe {
            let mut g = lock(p, "t").unwrap();
            *g += 1;
            let busy = lock(p, "t").err().unwrap();
            assert_eq!(busy.code, shmbus_error_t::SHMBUS_ERR_BUSY);
            let busy = close(p, "t").err().unwrap();
            assert_eq!(busy.code, shmbus_error_t::SHMBUS_ERR_BUSY);
            drop(g);
            assert_eq!(*lock(p, "t").unwrap(), 2);
            let pp = p as usize;
            let r = std::panic::catch_unwind(move || {
                let _g = lock(pp as *const Thing, "t").unwrap();
                panic!("inside");
            });
            assert!(r.is_err());
            let poisoned = lock(p, "t").err().unwrap();
            assert_eq!(poisoned.code, shmbus_error_t::SHMBUS_ERR_PANIC);
            close(p, "t").unwrap();
        }
    }

    #[test]
    fn null_and_closed_are_invalid() {
        // SAFETY: NULL is within the contract.
        let null = unsafe { lock::<Thing>(std::ptr::null(), "t") }
            .err()
            .unwrap();
        assert_eq!(null.code, shmbus_error_t::SHMBUS_ERR_INVALID_ARGUMENT);
        let p = into_raw::<Thing>(1);
        // SAFETY: `p` is live; the tag is rewritten by hand to what `close`
        // leaves, then restored before the real close.
        unsafe {
            (*p).0.tag.store(DEAD, Ordering::Relaxed);
            let dead = lock(p, "t").err().unwrap();
            assert_eq!(dead.code, shmbus_error_t::SHMBUS_ERR_INVALID_ARGUMENT);
            (*p).0.tag.store(Thing::TAG, Ordering::Relaxed);
            close(p, "t").unwrap();
        }
    }
}
