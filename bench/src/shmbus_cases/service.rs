//! shmbus services: request/reply between two processes. The parent is the
//! client, the child the server (it creates the service and answers every
//! request with the request itself, the steps of `Server::serve`). Both wait
//! in the same strategy.
//!
//! One repetition has two phases on the same service: sequential
//! `call_with`s, each timed (round trip, not halved: the server's turn-around
//! is part of a call's cost), then pipelined calls (`send_request` with
//! [`DEPTH`] in flight, `recv_reply_with` the oldest), timed as a whole for
//! calls per second. Every reply is checked against its request's stamp.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use shmbus::service::{remove_service, Client, Server, ServiceConfig, Ticket};

use crate::cleanup::{self, Resource};
use crate::clock::now_ns;
use crate::control::Control;
use crate::role::{Role, ShmbusRole, Wait};
use crate::stamp::{read_stamp, stamp};
use crate::stats::{RttRecorder, Sample};
use crate::supervisor::{Ctx, Session};

/// Request and reply size, bytes.
pub const SIZE: usize = 64;
/// Calls in flight in the pipelined phase (the Unix-socket baseline keeps
/// as many requests in flight).
pub const DEPTH: usize = 16;
/// Longest wait for one reply or one queue cell; far above any healthy
/// round trip, it only turns a stuck server into an error.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Counts of one repetition.
#[derive(Clone, Copy, Debug)]
pub struct RpcPlan {
    /// Unmeasured sequential calls.
    pub warmup: u64,
    /// Timed sequential calls.
    pub iters: u64,
    /// Unmeasured pipelined calls.
    pub pipe_warmup: u64,
    /// Pipelined calls in the timed phase.
    pub pipelined: u64,
}

impl RpcPlan {
    /// Every request the server answers.
    pub fn total(&self) -> u64 {
        self.warmup + self.iters + self.pipe_warmup + self.pipelined
    }
}

/// A service name private to the run and the repetition, whose segment is
/// removed when the guard drops (and by [`cleanup::release_all`] if the run
/// has to give up first).
struct ServiceGuard {
    resource: Resource,
    bus: String,
    name: String,
}

impl ServiceGuard {
    fn new(bus: &str, wait: Wait) -> ServiceGuard {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "rpc-{}-{}",
            wait.name(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let resource = Resource::Service {
            bus: bus.to_string(),
            name: name.clone(),
        };
        cleanup::register(resource.clone());
        ServiceGuard {
            resource,
            bus: bus.to_string(),
            name,
        }
    }
}

impl Drop for ServiceGuard {
    fn drop(&mut self) {
        let _ = remove_service(&self.bus, &self.name);
        cleanup::unregister(&self.resource);
    }
}

/// The service's settings: one client, one server, room for the pipeline.
fn config() -> ServiceConfig {
    ServiceConfig {
        queue_capacity: (2 * DEPTH) as u32,
        max_request_size: SIZE as u32,
        max_reply_size: SIZE as u32,
        max_servers: 1,
        max_clients: 1,
        max_in_flight: DEPTH as u32,
    }
}

/// Runs one repetition: the child serves, this process calls.
pub fn run(ctx: &Ctx, bus: &str, wait: Wait, plan: RpcPlan) -> Result<Sample, String> {
    let service = ServiceGuard::new(bus, wait);
    let role = Role::Shmbus(ShmbusRole::Serve {
        bus: bus.to_string(),
        service: service.name.clone(),
        wait,
        total: plan.total(),
    });
    // The child creates the service and attaches as its server before it
    // reports ready, so the client below never sees `NoServer`.
    let session = Session::start(ctx, &format!("shmbus call {}", wait.name()), vec![role])?;
    let mut client = Client::attach(bus, &service.name)
        .map_err(|e| format!("cannot attach a client to {}: {e}", service.name))?;
    client.set_wait_strategy(wait.strategy());

    let mut msg = [0xA5u8; SIZE];
    let mut rec = RttRecorder::new();
    let sequential = plan.warmup + plan.iters;
    for i in 0..sequential {
        stamp(&mut msg, i);
        let t0 = now_ns();
        let ok = client
            .call_timeout_with(&msg, TIMEOUT, |r| is_reply_to(r, i))
            .map_err(|e| format!("call {i} failed: {e}"))?;
        let t1 = now_ns();
        if !ok {
            return Err(format!("the reply to call {i} came back wrong"));
        }
        if i >= plan.warmup {
            rec.record(t1 - t0);
        }
    }
    pipeline(&mut client, sequential, plan.pipe_warmup)?;
    let t0 = now_ns();
    pipeline(&mut client, sequential + plan.pipe_warmup, plan.pipelined)?;
    let elapsed_ns = now_ns().saturating_sub(t0).max(1);
    drop(client);
    session.finish()?;
    Ok(Sample::Rpc {
        round_trip: rec.round_trip(),
        calls_per_sec: plan.pipelined as f64 * 1e9 / elapsed_ns as f64,
    })
}

/// Makes calls `first..first + n` with up to [`DEPTH`] in flight, and
/// returns once every reply is in.
fn pipeline(client: &mut Client, first: u64, n: u64) -> Result<(), String> {
    let mut in_flight: VecDeque<(Ticket, u64)> = VecDeque::with_capacity(DEPTH);
    let mut msg = [0x5Au8; SIZE];
    for i in first..first + n {
        if in_flight.len() == DEPTH {
            redeem(client, &mut in_flight)?;
        }
        stamp(&mut msg, i);
        let ticket = client
            .send_request_timeout(&msg, TIMEOUT)
            .map_err(|e| format!("pipelined call {i} could not be sent: {e}"))?;
        in_flight.push_back((ticket, i));
    }
    while !in_flight.is_empty() {
        redeem(client, &mut in_flight)?;
    }
    Ok(())
}

/// Receives the reply of the oldest call in flight and checks it.
fn redeem(client: &mut Client, in_flight: &mut VecDeque<(Ticket, u64)>) -> Result<(), String> {
    let Some((ticket, i)) = in_flight.pop_front() else {
        return Ok(());
    };
    let ok = client
        .recv_reply_timeout_with(ticket, TIMEOUT, |r| is_reply_to(r, i))
        .map_err(|e| format!("pipelined call {i} failed: {e}"))?;
    if ok {
        Ok(())
    } else {
        Err(format!("the reply to pipelined call {i} came back wrong"))
    }
}

fn is_reply_to(reply: &[u8], i: u64) -> bool {
    reply.len() == SIZE && read_stamp(reply) == Some(i)
}

/// Child side: create the service, then answer `total` requests with the
/// request itself, as `Server::serve` does (read in place, release the
/// queue cell, write the reply into the caller's slot).
pub fn serve_child(
    control: &Control,
    bus: &str,
    service: &str,
    wait: Wait,
    total: u64,
) -> Result<(), String> {
    let mut server = Server::attach_with(bus, service, &config())
        .map_err(|e| format!("cannot serve {service}: {e}"))?;
    server.set_wait_strategy(wait.strategy());
    control.mark_ready();
    let mut buf = [0u8; SIZE];
    for i in 0..total {
        let req = server
            .recv_request()
            .map_err(|e| format!("receiving request {i} failed: {e}"))?;
        let len = req.len().min(SIZE);
        buf[..len].copy_from_slice(&req[..len]);
        let ticket = req.ticket();
        drop(req);
        let delivered = server
            .reply(ticket, &buf[..len])
            .map_err(|e| format!("replying to request {i} failed: {e}"))?;
        if !delivered {
            return Err(format!("the client gave up request {i}"));
        }
    }
    Ok(())
}
