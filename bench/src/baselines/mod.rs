//! The references shmbus is measured against, each run in the same two-
//! process harness as shmbus itself: the hardware floor (spin), the wake-up
//! floor (futex), the kernel's message passing (pipe, Unix socket, POSIX
//! message queue) and single-thread `memcpy`.

pub mod futex;
pub mod memcpy;
pub mod mqueue;
pub mod spin;
pub mod stream;
