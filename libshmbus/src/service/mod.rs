//! Services: request/response over shared memory. A client calls, exactly
//! one server answers, through a queue and reply slots in one segment per
//! service — no socket, no daemon and no thread on the data path.
//!
//! * [`Client`] — `call`, `try_call`, `call_timeout` (the same triple as a
//!   subscriber's receives), pipelined `send_request` +
//!   `recv_reply` with [`Ticket`]s; replies are matched by correlation id.
//! * [`Server`] — `recv_request`, `try_recv_request`, `recv_request_timeout`
//!   (the same triple; each gives a [`Request`]: the server's private copy
//!   of the request), `reply`, `loan_reply` (write the reply into a lent
//!   buffer, copied into the caller's slot on commit), `serve(|req| reply)`.
//!
//! Request and reply bytes are copied between the segment and private
//! buffers (reads with atomic loads, `crate::racy`); they are never lent
//! out as slices of the segment, which every party maps read-write, so that
//! a process breaking the protocol cannot change bytes the application
//! holds.
//! * [`TypedClient`] / [`TypedServer`] — any serde types, in postcard.
//!
//! Failure semantics: no server → `Error::NoServer` at once; the server
//! holding a call dies → `Error::ServerGone` about 100 ms later (the waiting
//! client checks the server's liveness lock); a client dies → its entry and
//! reply slots are reclaimed by the next client that takes the entry, and
//! its half-written request by whoever finds it in the way.
//!
//! The design, with the layout and why it is correct: `docs/rpc.md`;
//! the parts: `layout.rs` (the segment), `queue.rs` (the MPMC
//! request queue whose cells name their holder), `reply.rs` (the reply slot
//! protocol), `mapped.rs` (creation, entries, reclaiming the dead),
//! `wait.rs` (waiting with liveness ticks), `histogram.rs` (round-trip
//! latency), `stats.rs` (counters for `shmbus services`).
//!
//! ```no_run
//! # fn main() -> shmbus::Result<()> {
//! use std::time::Duration;
//! use shmbus::service::{Client, Server};
//! let server = Server::attach("default", "echo")?;
//! # std::thread::spawn(move || {
//! server.serve(|req| req.to_vec())
//! # });
//! let mut client = Client::attach("default", "echo")?;
//! assert_eq!(client.call_timeout(b"hi", Duration::from_secs(1))?, b"hi");
//! # Ok(()) }
//! ```

pub(crate) mod layout;
pub(crate) mod queue;
pub(crate) mod reply;

#[cfg(not(loom))]
mod client;
#[cfg(not(loom))]
pub(crate) mod histogram;
#[cfg(not(loom))]
mod mapped;
#[cfg(not(loom))]
mod server;
#[cfg(not(loom))]
mod stats;
#[cfg(not(loom))]
mod typed;
#[cfg(not(loom))]
pub(crate) mod wait;

#[cfg(all(test, loom))]
mod loom_model;
#[cfg(all(test, not(loom)))]
mod tests;

pub use layout::ServiceConfig;

#[cfg(not(loom))]
pub use client::{Client, Ticket};
#[cfg(not(loom))]
pub use server::{ReplyLoan, Request, RequestTicket, Server};
#[cfg(not(loom))]
pub use stats::{
    list_bus_services, remove_service, service_stats, ClientStats, ServerStats, ServiceStats,
};
#[cfg(not(loom))]
pub use typed::{TypedClient, TypedServer};
