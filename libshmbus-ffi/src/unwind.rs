//! The bottom layer of the crate: no panic unwinds into C.
//!
//! [`infallible`] is the guard of the exported functions that have no error
//! code to return (they return a value: `shmbus_strerror`,
//! `shmbus_last_error`). It sits below every other module so that
//! [`status`](crate::status) and [`last_error`](crate::last_error), which
//! export such functions, need nothing above them; [`boundary`](crate::boundary)
//! builds the guard of the other functions (`boundary::call`) on top of both.

use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs `body` of a function that has no error code to return (it returns
/// a value): a panic gives `fallback`.
pub fn infallible<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_gives_the_fallback() {
        assert_eq!(infallible(7, || 1), 1);
        assert_eq!(infallible(7, || panic!("boom")), 7);
    }
}
