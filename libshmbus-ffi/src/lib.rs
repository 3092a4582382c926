//! # shmbus-ffi — the C API of shmbus
//!
//! This crate wraps the Rust client library (`shmbus`) in `extern "C"`
//! functions and builds them as `libshmbus.so` and `libshmbus.a` (built as
//! `libshmbus_ffi.*`, installed under the public name by
//! `scripts/install-c.sh`). The header `include/shmbus.h` is generated from
//! this source by cbindgen and checked in; `tests/header.rs` fails when it is
//! stale. `docs/c-api.md` is the user's guide.
//!
//! Where to start reading:
//! * the rules every function follows: [`boundary`] (no panic crosses into
//!   C, arguments are checked, errors become a code plus a thread-local
//!   message), [`status`] (the codes) and [`last_error`];
//! * the handles: [`handle`] (how an opaque pointer is checked and how
//!   exclusive use is enforced), then [`bus`], [`publisher`] and
//!   [`subscriber`];
//! * the plain structs C fills or reads: [`options`] and [`stats`].
//!
//! The modules are layered: each uses only modules of the layers below it,
//! so there is no import cycle (check: `python3 scripts/module_cycles.py
//! libshmbus-ffi/src`). From the bottom: [`unwind`] (no panic reaches C);
//! [`status`] and [`last_error`]; [`boundary`]; [`handle`], [`options`];
//! [`stats`]; [`bus`]; [`publisher`] and [`subscriber`].
//!
//! Every exported function is `unsafe extern "C"`: its `# Safety` section is
//! the C caller's contract (pointers it passes point to what they claim).
//! Within that contract nothing the caller passes — a NULL, a bad name, a
//! length over the limit, a call in the wrong state, two threads on one
//! publisher — makes the library crash: each is an error code.

#![warn(missing_docs)]
// The exported items carry their C names (`shmbus_bus_t`, `SHMBUS_OK`), so
// that the generated header reads like a C header.
#![allow(non_camel_case_types)]

pub mod boundary;
pub mod bus;
pub mod handle;
pub mod last_error;
pub mod options;
pub mod publisher;
pub mod stats;
pub mod status;
pub mod subscriber;
pub mod unwind;

pub use bus::shmbus_bus_t;
pub use options::{shmbus_subscribe_options_t, shmbus_topic_config_t};
pub use publisher::shmbus_publisher_t;
pub use stats::shmbus_topic_stats_t;
pub use status::shmbus_error_t;
pub use subscriber::{shmbus_message_t, shmbus_subscriber_t};
