//! # shmbus — a shared-memory message bus for one Linux host
//!
//! A daemon (`shmbusd`) creates named POSIX shared-memory segments holding
//! ring buffers; this crate maps them so that processes publish and
//! subscribe with no system call on the fast path, waiting on process-shared
//! futexes when there is nothing to do.
//!
//! What applications use is at the crate root: [`Bus`] (connect to a bus's
//! daemon), [`Publisher`], [`Subscriber`], [`PatternSubscriber`], the
//! policies on [`TopicConfig`], the services' [`Client`] and [`Server`],
//! and [`Error`]. Two public modules serve other programs: [`control`], the
//! wire protocol to `shmbusd` (for clients in other languages), and
//! [`daemon`], the daemon's own machinery (not for applications). The
//! listing of the whole public API is checked in at `docs/public-api.txt`.
//!
//! Where to start reading the source:
//! * the concurrent core: `ring.rs` (the protocol and why it is correct),
//!   `layout.rs` (the memory layout, drawn), `semaphore.rs` and
//!   `eventcount.rs` on `futex.rs`;
//! * process-level building blocks: `segment.rs` (shm_open, reservation,
//!   mapping, identity) and `liveness.rs` (OFD-lock tokens the kernel
//!   releases when a process dies);
//! * pattern subscriptions: `watch.rs` (the protocol and its argument).
//!
//! ```no_run
//! # fn main() -> shmbus::Result<()> {
//! let bus = shmbus::Bus::connect("default")?;
//! let mut publisher = bus.publisher("greetings")?;
//! let mut subscriber = bus.subscriber("greetings", Default::default())?;
//! publisher.send(b"hello")?;
//! assert_eq!(subscriber.recv()?.data, b"hello");
//! # Ok(()) }
//! ```
//!
//! The concurrent core is model-checked with `loom`:
//! `RUSTFLAGS="--cfg loom" cargo test -p shmbus --release --lib loom`.

#![deny(missing_docs)]
// Under loom only the concurrent core is built; the parts of it that only
// the mapped (non-loom) topic uses are dead there.
#![cfg_attr(loom, allow(dead_code))]

pub(crate) mod clock;
pub(crate) mod crash;
mod error;
pub(crate) mod eventcount;
pub(crate) mod futex;
mod interrupt;
#[cfg(feature = "internals")]
pub mod layout;
#[cfg(not(feature = "internals"))]
pub(crate) mod layout;
pub mod names;
pub mod pattern;
pub(crate) mod racy;
pub(crate) mod ring;
pub mod semaphore;
pub mod service;
mod size;
pub(crate) mod sync;
pub(crate) mod wait;

#[cfg(not(loom))]
mod bus;
#[cfg(not(loom))]
pub mod control;
#[cfg(not(loom))]
pub mod daemon;
#[cfg(all(not(loom), feature = "internals"))]
pub mod liveness;
#[cfg(all(not(loom), not(feature = "internals")))]
pub(crate) mod liveness;
#[cfg(not(loom))]
mod pattern_subscriber;
#[cfg(not(loom))]
mod publisher;
#[cfg(not(loom))]
pub(crate) mod segment;
#[cfg(not(loom))]
mod sigbus;
#[cfg(not(loom))]
mod subscriber;
#[cfg(not(loom))]
pub(crate) mod topic;
#[cfg(not(loom))]
pub(crate) mod watch;

#[cfg(all(test, loom))]
mod loom_model;

/// Named crash points, for the project's own tests (builds with the
/// `crash-points` feature only): the list, and which process passes each.
#[cfg(feature = "crash-points")]
pub use crash::{points_of as crash_points_of, Role as CrashRole, POINTS as CRASH_POINTS};
pub use error::{Error, Result};
pub use interrupt::interrupt;
pub use layout::{Policy, TopicConfig};
pub use pattern::Pattern;
pub use semaphore::Semaphore;
#[cfg(not(loom))]
pub use service::{Client, Server, ServiceConfig, TypedClient, TypedServer};
pub use size::parse_size;
pub use wait::WaitStrategy;

#[cfg(not(loom))]
pub use bus::{Bus, BusOptions};
#[cfg(not(loom))]
pub use control::{Role, TopicInfo, WatcherInfo};
#[cfg(not(loom))]
pub use pattern_subscriber::PatternSubscriber;
#[cfg(not(loom))]
pub use publisher::{Loan, Publisher};
#[cfg(not(loom))]
pub use subscriber::{
    wait_any, Message, MessageGuard, Messages, OwnedMessage, SubscribeOptions, Subscriber,
};
#[cfg(not(loom))]
pub use topic::{PublisherStats, SubscriberStats, TopicStats};
