//! # shmbus — a shared-memory message bus for one Linux host
//!
//! A daemon (`shmbusd`) creates named POSIX shared-memory segments holding
//! ring buffers; this crate maps them so that processes publish and
//! subscribe with no system call on the fast path, waiting on process-shared
//! futexes when there is nothing to do.
//!
//! Where to start reading:
//! * users: [`Bus`] (connect to a bus's daemon), [`Publisher`],
//!   [`Subscriber`] and the policies on [`TopicConfig`];
//! * the concurrent core: [`ring`](crate::ring) (the protocol and why it is
//!   correct), [`layout`] (the memory layout, drawn), [`semaphore`] and
//!   [`eventcount`] on [`futex`];
//! * process-level building blocks: [`segment`] (shm_open, reservation,
//!   mapping) and [`liveness`] (OFD-lock tokens the kernel releases when a
//!   process dies);
//! * the daemon's side: [`TopicOwner`] (create, adopt, reap, close) and
//!   [`control`] (the control-socket protocol).
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

#![warn(missing_docs)]
// Under loom only the concurrent core is built; the parts of it that only
// the mapped (non-loom) topic uses are dead there.
#![cfg_attr(loom, allow(dead_code))]

pub(crate) mod clock;
pub(crate) mod crash;
pub mod error;
pub mod eventcount;
pub mod futex;
mod interrupt;
pub mod layout;
pub mod names;
pub mod pattern;
pub(crate) mod racy;
pub(crate) mod ring;
pub mod semaphore;
pub mod service;
pub(crate) mod sync;
pub(crate) mod wait;

#[cfg(not(loom))]
pub mod bus;
#[cfg(not(loom))]
pub mod control;
#[cfg(not(loom))]
pub mod liveness;
#[cfg(not(loom))]
pub mod pattern_subscriber;
#[cfg(not(loom))]
pub mod publisher;
#[cfg(not(loom))]
pub mod segment;
#[cfg(not(loom))]
mod sigbus;
#[cfg(not(loom))]
pub mod subscriber;
#[cfg(not(loom))]
pub mod topic;
#[cfg(not(loom))]
pub mod watch;

#[cfg(all(test, loom))]
mod loom_model;

/// Named crash points, for the project's own tests (builds with the
/// `crash-points` feature only): the list, and which process passes each.
#[cfg(feature = "crash-points")]
pub use crash::{points_of as crash_points_of, Role as CrashRole, POINTS as CRASH_POINTS};
pub use error::{Error, Result};
pub use eventcount::EventCount;
pub use interrupt::interrupt;
pub use layout::{Policy, TopicConfig};
pub use pattern::Pattern;
pub use semaphore::Semaphore;
#[cfg(not(loom))]
pub use service::{Client, Server, ServiceConfig, TypedClient, TypedServer};
pub use wait::WaitStrategy;

#[cfg(not(loom))]
pub use bus::{Bus, BusOptions, TopicInfo};
#[cfg(not(loom))]
pub use pattern_subscriber::PatternSubscriber;
#[cfg(not(loom))]
pub use publisher::{Loan, Publisher};
#[cfg(not(loom))]
pub use subscriber::{
    wait_any, Message, MessageGuard, Messages, OwnedMessage, SubscribeOptions, Subscriber,
};
#[cfg(not(loom))]
pub use topic::{
    list_bus_topics, remove_bus_segments, remove_segment_files, Cleaned, PublisherStats,
    ReapReport, SegmentIdentity, SegmentPerms, SubscriberStats, TopicOwner, TopicStats,
};
