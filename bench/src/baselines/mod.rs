//! The references shmbus is measured against, each run in the same two-
//! process harness as shmbus itself: the hardware floor (spin), the wake-up
//! floor (futex), the kernel's message passing (pipe, Unix socket, POSIX
//! message queue), single-thread `memcpy`, and a bare shared-memory ring
//! (the floor of a copying stream).

pub mod futex;
pub mod memcpy;
pub mod mqueue;
pub mod ring;
pub mod spin;
pub mod stream;
