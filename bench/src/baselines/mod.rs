//! The references shmbus is measured against, each run in the same two-
//! process harness as shmbus itself: the hardware floor (spin), the wake-up
//! floor (futex), the kernel's message passing (pipe, Unix socket, POSIX
//! message queue), single-thread `memcpy`, a bare shared-memory ring
//! (the floor of a copying stream), and request/reply over a Unix socket
//! (what a service call replaces).

pub mod futex;
pub mod memcpy;
pub mod mqueue;
pub mod ring;
pub mod spin;
pub mod stream;
pub mod unix_rpc;
