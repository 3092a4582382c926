//! The calling side of a service: [`Client`] sends requests and receives
//! their replies, one at a time (`call`) or pipelined (`send_request`
//! returns a [`Ticket`], `recv_reply` redeems it).
//!
//! Each client owns `max_in_flight` reply slots in the segment. A call
//! takes one, marks it pending under a fresh correlation id, queues the
//! request (client index, slot, correlation id, bytes), and waits on its
//! own event count until a server has written the reply into the slot.
//! Replies are matched by slot *and* correlation id, so a reply can never
//! reach another client or another call, even one made later in the same
//! slot.
//!
//! Failure semantics (see `docs/rpc.md`):
//! * no server attached: `NoServer` at once;
//! * the server holding the call dies: `ServerGone`, about 100 ms after the
//!   death (checked while waiting), never a wait past the timeout;
//! * all servers leave while the call is still queued: `NoServer`;
//! * timeout: `Timeout`; `call` then gives the call up (a late reply is
//!   dropped by the server), `recv_reply` leaves it in flight.
//!
//! A call that is safe to repeat can say so: `call_idempotent` sends the
//! request again, to whichever server takes it, when the server holding it
//! dies, as long as servers remain (else `NoServer`) and its one budget
//! lasts (else `Timeout`). That makes it at-least-once: the dead server may
//! have carried the request out before dying. Pipelined callers repeat a
//! call themselves with `send_retry`. Retries are counted in the client's
//! entry (`retries` in the service's stats).
//!
//! The call path allocates nothing but what it returns (`call` returns a
//! `Vec`; `call_with` and `recv_reply_with` lend the reply from the
//! client's own reply buffer) and makes no system call unless it sleeps or
//! a server must be woken.
//!
//! A reply is never lent in place in the segment: every client and server
//! maps it read-write, so a process breaking the protocol could rewrite the
//! reply slot while the application reads it. The reply is first copied,
//! with atomic loads (`crate::racy`), into a private buffer made at attach
//! time, and that copy is what the caller sees.

use std::time::{Duration, Instant};

use crate::crash::point;
use crate::error::{Error, Result};
use crate::racy::atomic_read_bytes;
use crate::service::layout::{count_own, ServiceConfig, STATUS_OK};
use crate::service::mapped::{MappedService, Role};
use crate::service::queue::{self, Claim, QueueMemory};
use crate::service::reply::{self, Seen};
use crate::service::wait::wait_for;
use crate::sync::Ordering;
use crate::wait::Deadline;
use crate::wait::WaitStrategy;

/// Redeems one call made with [`Client::send_request`]. Valid only on the
/// client that made it, until the reply is received or the call cancelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ticket {
    slot: u32,
    corr: u64,
    client: u64,
}

impl Ticket {
    /// The call's correlation id (unique per client entry).
    pub fn correlation_id(&self) -> u64 {
        self.corr
    }
}

/// A handle that calls one service. Not shareable between threads: use one
/// per thread (each holds its own entry and reply slots).
#[derive(Debug)]
pub struct Client {
    m: MappedService,
    index: u32,
    strategy: WaitStrategy,
    /// Free reply slots (a stack; capacity reserved at attach).
    free: Vec<u32>,
    /// Per slot, the correlation id of the call in flight there.
    pending: Box<[Option<u64>]>,
    /// Per slot, when its call was sent (for the latency histogram).
    sent_at: Box<[Instant]>,
    /// Slots given up while a server was writing into them; reusable once
    /// that write settles.
    orphans: Vec<u32>,
    next_corr: u64,
    /// Tells this client's tickets from other clients'.
    token: u64,
    /// The private copy of the reply being received (`max_reply_size`
    /// bytes), made at attach and reused.
    reply_buf: Box<[u8]>,
}

impl Client {
    /// Attaches to service `name` of `bus`. `NoServer` if no server ever
    /// created it.
    pub fn attach(bus: &str, name: &str) -> Result<Client> {
        let mut m = MappedService::open(bus, name)?.ok_or_else(|| Error::NoServer {
            service: name.to_string(),
        })?;
        // Servers that died unreaped would make the first call wait a tick
        // before `NoServer`; one liveness probe per server here instead.
        m.reap_dead_servers();
        let index = m.acquire_entry(Role::Client)?;
        let cfg = m.config().clone();
        let n = cfg.max_in_flight;
        let mut free = Vec::with_capacity(n as usize);
        let mut orphans = Vec::with_capacity(n as usize);
        // Slots a dead predecessor left with a server still writing wait.
        for r in (0..n).rev() {
            if reply::is_settled(m.reply_slot(index, r)) {
                reply::release(m.reply_slot(index, r));
                free.push(r);
            } else {
                orphans.push(r);
            }
        }
        let e = m.client(index);
        let next_corr = e.next_corr.load(Ordering::Acquire).wrapping_add(1);
        e.next_corr.store(next_corr, Ordering::Release);
        static NEXT_TOKEN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let token = NEXT_TOKEN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(Client {
            m,
            index,
            strategy: WaitStrategy::default(),
            free,
            pending: vec![None; n as usize].into_boxed_slice(),
            sent_at: vec![Instant::now(); n as usize].into_boxed_slice(),
            orphans,
            next_corr,
            token,
            reply_buf: vec![0u8; cfg.max_reply_size as usize].into_boxed_slice(),
        })
    }

    /// How blocking calls wait (spin, spin-then-park, park).
    pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
        self.strategy = strategy;
    }

    /// Service name.
    pub fn service(&self) -> &str {
        self.m.service()
    }

    /// The service's settings.
    pub fn config(&self) -> &ServiceConfig {
        self.m.config()
    }

    /// This client's entry index in the service (for stats and tests).
    pub fn index(&self) -> u32 {
        self.index
    }

    /// Servers attached right now (dead ones count until reaped).
    pub fn server_count(&self) -> u32 {
        self.m.servers()
    }

    /// Calls in flight (sent, reply not yet received).
    pub fn in_flight(&self) -> u32 {
        self.pending.iter().filter(|p| p.is_some()).count() as u32
    }

    /// Calls this client sent again after their server died
    /// (`call_idempotent`, `send_retry`), as counted in its entry of the
    /// segment (`retries` in `service_stats`).
    pub fn retries(&self) -> u64 {
        // Relaxed: only this client counts in its entry (`count_own`), on
        // this thread (a `Client` is not shared); nothing else to order.
        self.m.client(self.index).retries.load(Ordering::Relaxed)
    }

    /// Calls the service and returns the reply, waiting as long as it takes
    /// (for room in the queue, then for the reply). Ends early with
    /// `ServerGone` when the server holding the call dies, `NoServer` when
    /// there is none, and `Interrupted` on [`crate::interrupt`] (the call is
    /// then given up).
    pub fn call(&mut self, req: &[u8]) -> Result<Vec<u8>> {
        self.call_deadline(req, Deadline::Never, <[u8]>::to_vec)
    }

    /// `call`, waiting at most `timeout` in all (for room in the queue and
    /// for the reply). On timeout the call is given up.
    pub fn call_timeout(&mut self, req: &[u8], timeout: Duration) -> Result<Vec<u8>> {
        self.call_deadline(req, Deadline::After(timeout), <[u8]>::to_vec)
    }

    /// `call_timeout`, lending the reply to `f` (from the client's own reply
    /// buffer) instead of returning it in a new `Vec`.
    pub fn call_timeout_with<R>(
        &mut self,
        req: &[u8],
        timeout: Duration,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R> {
        self.call_deadline(req, Deadline::After(timeout), f)
    }

    fn call_deadline<R>(
        &mut self,
        req: &[u8],
        mut limit: Deadline,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R> {
        // One budget for queueing and for the reply.
        let ticket = self.send_with(req, &mut limit)?;
        self.finish_call(ticket, &mut limit, f)
    }

    /// `call` for a request that is safe to repeat: if the server holding
    /// it dies before replying, `req` is sent again to whichever server
    /// takes it, as many times as needed, all within `timeout` (one budget
    /// for every attempt's queueing and reply).
    ///
    /// Ends with the reply (or `Remote`, an error reply: not retried);
    /// `NoServer` when no server is left to send it to; `Timeout` when the
    /// budget runs out (the call is given up, as in `call`). Never
    /// `ServerGone`. The delivery is **at least once**: a server that died
    /// holding the request may have carried it out, so the service may see
    /// it more than once. Each attempt counts as a call in the stats (the
    /// dead ones also in `gone`), each repeat in `retries`.
    pub fn call_idempotent(&mut self, req: &[u8]) -> Result<Vec<u8>> {
        self.call_idempotent_deadline(req, Deadline::Never, <[u8]>::to_vec)
    }

    /// `call_idempotent`, within `timeout` for every attempt in all.
    pub fn call_idempotent_timeout(&mut self, req: &[u8], timeout: Duration) -> Result<Vec<u8>> {
        self.call_idempotent_deadline(req, Deadline::After(timeout), <[u8]>::to_vec)
    }

    /// `call_idempotent_timeout`, lending the reply to `f` (from the
    /// client's own reply buffer).
    pub fn call_idempotent_timeout_with<R>(
        &mut self,
        req: &[u8],
        timeout: Duration,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R> {
        self.call_idempotent_deadline(req, Deadline::After(timeout), f)
    }

    fn call_idempotent_deadline<R>(
        &mut self,
        req: &[u8],
        mut limit: Deadline,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R> {
        let mut ticket = self.send_with(req, &mut limit)?;
        loop {
            let seen = match self.await_reply(ticket, &mut limit) {
                Ok(seen) => seen,
                Err(e) => return Err(self.give_up(ticket, e)),
            };
            if seen != Seen::Gone {
                return self.take_reply(ticket, seen, f);
            }
            // This attempt is over (counted in `gone`, its slot freed): the
            // result is the `ServerGone` we are about to repeat past.
            let _gone = self.take_reply(ticket, seen, |_| ());
            if spent(&mut limit) {
                return Err(Error::Timeout);
            }
            ticket = self.retry_with(req, &mut limit)?;
        }
    }

    /// `call`, but `ServiceBusy` at once instead of waiting when the request
    /// queue is full; once queued, the reply is awaited as `call` does.
    pub fn try_call(&mut self, req: &[u8]) -> Result<Vec<u8>> {
        let ticket = self.try_send_request(req)?;
        self.finish_call(ticket, &mut Deadline::Never, <[u8]>::to_vec)
    }

    fn finish_call<R>(
        &mut self,
        ticket: Ticket,
        limit: &mut Deadline,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R> {
        self.recv_with(ticket, limit, f)
            .map_err(|e| self.give_up(ticket, e))
    }

    /// A call's wait ended with `e`: on a timeout or a signal the call is
    /// still in flight, and is given up (a late reply is dropped).
    fn give_up(&mut self, ticket: Ticket, e: Error) -> Error {
        if matches!(e, Error::Timeout | Error::Interrupted) && self.is_pending(&ticket) {
            let _ = self.cancel(ticket);
        }
        e
    }

    /// Sends a request without waiting for its reply (pipelining); waits
    /// for room in the queue if it is full. Redeem the ticket with
    /// `recv_reply`.
    pub fn send_request(&mut self, req: &[u8]) -> Result<Ticket> {
        self.send_with(req, &mut Deadline::Never)
    }

    /// `send_request`, waiting at most `timeout` for room in the queue.
    pub fn send_request_timeout(&mut self, req: &[u8], timeout: Duration) -> Result<Ticket> {
        self.send_with(req, &mut Deadline::After(timeout))
    }

    /// `send_request` that never waits: `ServiceBusy` if the queue is full.
    pub fn try_send_request(&mut self, req: &[u8]) -> Result<Ticket> {
        self.send_with(req, &mut Deadline::Now)
            .map_err(|e| match e {
                Error::Timeout => Error::ServiceBusy {
                    service: self.m.service().to_string(),
                },
                e => e,
            })
    }

    /// Sends `req` again after its call ended in `ServerGone`, for a
    /// caller that repeats idempotent calls itself (pipelined, or waiting
    /// in slices): `send_request_timeout` that first reaps servers found
    /// dead (so that `NoServer` comes at once when none is left), and
    /// counts the call, once sent, in the client's `retries`. Only for
    /// requests that are safe to repeat: the dead server may have carried
    /// out the first one. `call_idempotent` does all of this itself.
    pub fn send_retry(&mut self, req: &[u8], timeout: Duration) -> Result<Ticket> {
        self.retry_with(req, &mut Deadline::After(timeout))
    }

    fn retry_with(&mut self, req: &[u8], limit: &mut Deadline) -> Result<Ticket> {
        // The server that died is reaped already (that is how the call
        // learnt of it); others may have died with it.
        self.m.reap_dead_servers();
        let ticket = self.send_with(req, limit)?;
        count_own(&self.m.client(self.index).retries);
        Ok(ticket)
    }

    /// Waits for the reply of `ticket`.
    pub fn recv_reply(&mut self, ticket: Ticket) -> Result<Vec<u8>> {
        self.recv_with(ticket, &mut Deadline::Never, <[u8]>::to_vec)
    }

    /// Waits at most `timeout` for the reply of `ticket`. On timeout the
    /// call stays in flight (wait again, or `cancel` it).
    pub fn recv_reply_timeout(&mut self, ticket: Ticket, timeout: Duration) -> Result<Vec<u8>> {
        self.recv_with(ticket, &mut Deadline::After(timeout), <[u8]>::to_vec)
    }

    /// `recv_reply_timeout`, lending the reply to `f` (from the client's
    /// own reply buffer).
    pub fn recv_reply_timeout_with<R>(
        &mut self,
        ticket: Ticket,
        timeout: Duration,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R> {
        self.recv_with(ticket, &mut Deadline::After(timeout), f)
    }

    /// The reply of `ticket` if it is there (`Ok(None)`: not yet).
    pub fn try_recv_reply(&mut self, ticket: Ticket) -> Result<Option<Vec<u8>>> {
        match self.recv_with(ticket, &mut Deadline::Now, <[u8]>::to_vec) {
            Ok(v) => Ok(Some(v)),
            Err(Error::Timeout) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Gives up a call in flight: a reply that comes later is dropped.
    pub fn cancel(&mut self, ticket: Ticket) -> Result<()> {
        self.check_ticket(&ticket)?;
        let slot = ticket.slot;
        self.pending[slot as usize] = None;
        let e = self.m.client(self.index);
        count_own(&e.timeouts);
        match reply::cancel(self.m.reply_slot(self.index, slot), ticket.corr) {
            reply::Cancel::Freed => self.free.push(slot),
            reply::Cancel::Busy => self.orphans.push(slot),
        }
        Ok(())
    }

    fn is_pending(&self, t: &Ticket) -> bool {
        self.check_ticket(t).is_ok()
    }

    fn check_ticket(&self, t: &Ticket) -> Result<()> {
        let ok = t.client == self.token
            && self.pending.get(t.slot as usize).copied().flatten() == Some(t.corr);
        if ok {
            Ok(())
        } else {
            Err(Error::BadMessage {
                service: self.m.service().to_string(),
                what: format!(
                    "ticket of call {} is not in flight on this client (already answered, cancelled, or from another client)",
                    t.corr
                ),
            })
        }
    }

    /// A free reply slot: from the free stack, else an orphan that settled.
    fn alloc_slot(&mut self) -> Result<u32> {
        if let Some(s) = self.free.pop() {
            return Ok(s);
        }
        let mut i = 0;
        while i < self.orphans.len() {
            let r = self.orphans[i];
            let slot = self.m.reply_slot(self.index, r);
            let w = reply::unpack(slot.state.load(Ordering::Acquire));
            if w.state == reply::st::WRITING {
                if let Some(s) = w.taker {
                    // Its writer may have died mid-write.
                    if s < self.m.config().max_servers && !self.m.alive(Role::Server, s) {
                        self.m.try_reap(Role::Server, s);
                    }
                }
            }
            if reply::is_settled(slot) {
                reply::release(slot);
                self.orphans.swap_remove(i);
                return Ok(r);
            }
            i += 1;
        }
        let max = self.m.config().max_in_flight;
        Err(Error::ServiceLimit {
            service: self.m.service().to_string(),
            what: format!(
                "all {max} calls this client may have in flight are pending: receive replies first (the service's max_in_flight is {max})"
            ),
        })
    }

    fn no_server(&self) -> Error {
        Error::NoServer {
            service: self.m.service().to_string(),
        }
    }

    fn send_with(&mut self, req: &[u8], limit: &mut Deadline) -> Result<Ticket> {
        let max = self.m.config().max_request_size as usize;
        if req.len() > max {
            return Err(Error::ServiceLimit {
                service: self.m.service().to_string(),
                what: format!(
                    "request of {} bytes is over the service's max request size of {max} bytes",
                    req.len()
                ),
            });
        }
        if self.m.servers() == 0 {
            return Err(self.no_server());
        }
        let slot = self.alloc_slot()?;
        // The round trip counts from before the request is queued (one
        // vDSO clock read, no system call).
        self.sent_at[slot as usize] = Instant::now();
        let corr = self.next_corr;
        self.next_corr = self.next_corr.wrapping_add(1);
        let me = self.index;
        let m = &self.m;
        let e = m.client(me);
        // Before the id is used: a successor of this entry continues after it.
        e.next_corr.store(self.next_corr, Ordering::Release);
        let rs = m.reply_slot(me, slot);
        reply::begin_call(rs, corr);
        point("call.begin");
        let pos = match queue::try_claim(m, me) {
            Claim::Got(pos) => Ok(pos),
            Claim::Blocked { blocker } => {
                if *limit == Deadline::Now {
                    Err(Error::Timeout)
                } else {
                    let last = std::cell::Cell::new(blocker);
                    e.waiting_on.store(1, Ordering::Relaxed);
                    let sh = m.shared();
                    wait_for(
                        self.strategy,
                        limit,
                        &sh.space_ready,
                        &e.waiting,
                        || match queue::try_claim(m, me) {
                            Claim::Got(pos) => Ok(Some(pos)),
                            Claim::Blocked { blocker } => {
                                last.set(blocker);
                                Ok(None)
                            }
                        },
                        || {
                            m.reap_blocker(last.get());
                            m.reap_dead_servers();
                            if m.servers() == 0 {
                                return Err(Error::NoServer {
                                    service: m.service().to_string(),
                                });
                            }
                            Ok(None)
                        },
                        || true,
                    )
                }
            }
        };
        let pos = match pos {
            Ok(pos) => pos,
            Err(err) => {
                // No cell names this call: the slot is simply ours again.
                reply::release(rs);
                self.free.push(slot);
                return Err(err);
            }
        };
        point("call.claim");
        let cell = m.cell(pos);
        cell.client.store(me, Ordering::Relaxed);
        cell.slot.store(slot, Ordering::Relaxed);
        cell.corr.store(corr, Ordering::Relaxed);
        cell.len.store(req.len() as u32, Ordering::Relaxed);
        // SAFETY: `req.len() ≤ max_request_size` (checked above) bytes fit
        // in the cell's payload area inside the mapping (`cell_payload`);
        // `req` is the caller's private memory, so they do not overlap. We
        // hold WRITING(pos): under the protocol nobody else reads or writes
        // the payload until we publish it. A plain copy through a raw
        // pointer is fine even if a process breaking the protocol touches
        // the cell meanwhile: we hold no reference to it and never read it
        // back, so the compiler has nothing to assume about its contents.
        unsafe { std::ptr::copy_nonoverlapping(req.as_ptr(), m.cell_payload(pos), req.len()) };
        point("call.write");
        if !queue::publish(m, pos, me) {
            reply::release(rs);
            self.free.push(slot);
            return Err(Error::corrupt(
                m.service(),
                "a queue cell being written was taken away (another process broke the protocol)",
            ));
        }
        point("call.publish");
        // `publish` was a SeqCst CAS: no fence needed (see the method).
        m.shared().request_ready.notify_all_after_seqcst_rmw();
        point("call.notify");
        count_own(&e.calls);
        self.pending[slot as usize] = Some(corr);
        Ok(Ticket {
            slot,
            corr,
            client: self.token,
        })
    }

    fn recv_with<R>(
        &mut self,
        ticket: Ticket,
        limit: &mut Deadline,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R> {
        let seen = self.await_reply(ticket, limit)?;
        self.take_reply(ticket, seen, f)
    }

    /// Waits within `limit` until the call of `ticket` has an outcome
    /// (`Replied`, `Gone`, or `Lost`: the slot was overwritten). On a
    /// timeout or a signal the call stays in flight; `NoServer` gives it
    /// up (nobody is left to answer).
    fn await_reply(&mut self, ticket: Ticket, limit: &mut Deadline) -> Result<Seen> {
        self.check_ticket(&ticket)?;
        let me = self.index;
        let m = &self.m;
        let e = m.client(me);
        let rs = m.reply_slot(me, ticket.slot);
        let corr = ticket.corr;
        let seen = {
            let poll = || match reply::poll(rs, corr) {
                Seen::Waiting { .. } => Ok(None),
                other => Ok(Some(other)),
            };
            let tick = || {
                match reply::poll(rs, corr) {
                    Seen::Waiting { taker: Some(s), .. } => {
                        if s < m.config().max_servers && !m.alive(Role::Server, s) {
                            m.try_reap(Role::Server, s);
                        }
                    }
                    Seen::Waiting { taker: None, .. } => {
                        // Still queued (or taken by a server that died
                        // before claiming it): reap the dead; with no server
                        // left, nobody will ever answer.
                        m.reap_dead_servers();
                        if m.servers() == 0 && reply::cancel(rs, corr) == reply::Cancel::Freed {
                            return Err(Error::NoServer {
                                service: m.service().to_string(),
                            });
                        }
                    }
                    other => return Ok(Some(other)),
                }
                Ok(None)
            };
            e.waiting_on.store(0, Ordering::Relaxed);
            wait_for(
                self.strategy,
                limit,
                &e.reply_ready,
                &e.waiting,
                poll,
                tick,
                || true,
            )
        };
        match seen {
            Ok(s) => Ok(s),
            Err(err) => {
                if matches!(err, Error::NoServer { .. }) {
                    // The tick gave the call up: nobody is left to answer.
                    self.pending[ticket.slot as usize] = None;
                    self.free.push(ticket.slot);
                }
                // Timeout or signal: the call stays in flight.
                Err(err)
            }
        }
    }

    /// Ends the call of `ticket`, whose outcome `await_reply` saw: lends a
    /// reply to `f` (a private copy), or makes the error; frees the slot
    /// either way.
    fn take_reply<R>(
        &mut self,
        ticket: Ticket,
        seen: Seen,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R> {
        let me = self.index;
        let m = &self.m;
        let e = m.client(me);
        let rs = m.reply_slot(me, ticket.slot);
        let corr = ticket.corr;
        let slot = ticket.slot;
        let result = match seen {
            Seen::Replied => {
                let len = rs.len.load(Ordering::Relaxed) as usize;
                let status = rs.status.load(Ordering::Relaxed);
                let max = m.config().max_reply_size as usize;
                if len > max {
                    Err(Error::corrupt(
                        m.service(),
                        format!("reply of {len} bytes is over the max reply size of {max}"),
                    ))
                } else {
                    // SAFETY: `len ≤ max_reply_size` = `reply_buf.len()`
                    // (checked just above), and the slot's payload area
                    // holds `max_reply_size` bytes inside the mapping
                    // (`reply_payload`); `reply_buf` is private. The slot is
                    // REPLIED for our call: its writer finished before the
                    // Release that `poll` Acquire-loaded, and under the
                    // protocol nobody writes it until we free it. A process
                    // breaking the protocol (every party maps the segment
                    // read-write) could still be writing it, so it is read
                    // with atomic loads, and only the private copy is lent.
                    unsafe {
                        atomic_read_bytes(m.reply_payload(me, slot), &mut self.reply_buf[..len])
                    };
                    point("call.reply");
                    let bytes = &self.reply_buf[..len];
                    let rtt = self.sent_at[slot as usize].elapsed();
                    m.counters()
                        .latency
                        .record(u64::try_from(rtt.as_nanos()).unwrap_or(u64::MAX));
                    if status == STATUS_OK {
                        count_own(&e.replies);
                        Ok(f(bytes))
                    } else {
                        count_own(&e.errors);
                        Err(Error::Remote {
                            service: m.service().to_string(),
                            message: String::from_utf8_lossy(bytes).into_owned(),
                        })
                    }
                }
            }
            Seen::Gone => {
                count_own(&e.gone);
                Err(Error::ServerGone {
                    service: m.service().to_string(),
                })
            }
            // The word was overwritten by someone breaking the protocol.
            Seen::Lost | Seen::Waiting { .. } => Err(Error::corrupt(
                m.service(),
                format!("the reply slot of call {corr} was overwritten"),
            )),
        };
        reply::release(rs);
        point("call.release");
        self.pending[slot as usize] = None;
        self.free.push(slot);
        result
    }
}

/// Whether the budget `limit` has run out by now. A `Deadline::After` that no
/// wait has fixed yet (every attempt so far ended within its first polls)
/// is fixed here to end its duration from now, as a wait's first clock read
/// would, so that one call's repeats share one budget.
fn spent(limit: &mut Deadline) -> bool {
    let now = Instant::now();
    if let Deadline::After(timeout) = *limit {
        *limit = now
            .checked_add(timeout)
            .map_or(Deadline::Never, Deadline::At);
    }
    match *limit {
        Deadline::Now => true,
        Deadline::At(end) => now >= end,
        Deadline::After(_) | Deadline::Never => false,
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        // Give up every call in flight; replies coming later are dropped.
        for r in 0..self.pending.len() {
            if let Some(corr) = self.pending[r].take() {
                let _ = reply::cancel(self.m.reply_slot(self.index, r as u32), corr);
            }
        }
        // `MappedService::drop` reclaims and frees the entry.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_not_yet_started_starts_at_the_check() {
        let mut zero = Deadline::After(Duration::ZERO);
        assert!(spent(&mut zero));
        assert!(matches!(zero, Deadline::At(_)));
        let mut hour = Deadline::After(Duration::from_secs(3600));
        assert!(!spent(&mut hour));
        let Deadline::At(end) = hour else {
            panic!("not fixed: {hour:?}")
        };
        // Fixed once: a second check keeps the same end.
        assert!(!spent(&mut hour));
        assert_eq!(hour, Deadline::At(end));
        assert!(spent(&mut Deadline::At(Instant::now())));
        assert!(spent(&mut Deadline::Now));
        assert!(!spent(&mut Deadline::Never));
    }
}
