//! The answering side of a service: [`Server`] takes requests from the
//! shared queue (competing with the other servers: each request goes to
//! exactly one) and writes replies into the calling client's reply slot.
//!
//! Zero copy both ways: [`Request`] reads the request in place in its queue
//! cell (the cell stays this server's until the `Request` is dropped), and
//! [`Server::loan_reply`] lends the reply slot to write the reply in place.
//!
//! A request is handed out only after the server has claimed the call's
//! reply slot (`PENDING → TAKEN(me)`), so a call its client already gave up
//! is dropped without the application ever seeing it, and from then on the
//! client knows which server holds its call and watches its liveness.
//! Dropping a server with calls unanswered ends them with `ServerGone`.

use std::cell::Cell;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::ring::WaitStrategy;
use crate::service::layout::{count_own, ServiceConfig, STATUS_ERROR, STATUS_OK};
use crate::service::mapped::{MappedService, Role};
use crate::service::queue::{self, Claim, QueueMemory};
use crate::service::reply;
use crate::service::wait::{wait_for, Limit};
use crate::sync::Ordering;

/// Names the call a request belongs to, for [`Server::reply`]. Copyable:
/// the reply may be sent after the [`Request`] view is dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RequestTicket {
    client: u32,
    slot: u32,
    corr: u64,
}

impl RequestTicket {
    /// The caller's client entry index.
    pub fn client(&self) -> u32 {
        self.client
    }
    /// The call's correlation id (unique per client entry).
    pub fn correlation_id(&self) -> u64 {
        self.corr
    }
}

/// A handle that answers one service's calls.
#[derive(Debug)]
pub struct Server {
    m: MappedService,
    index: u32,
    strategy: WaitStrategy,
    /// Stamp of the queue cell that blocked the last take, for the
    /// liveness check of its holder.
    blocker: Cell<u64>,
}

/// Default segment mode: owner only (SPEC §8).
const DEFAULT_MODE: u32 = 0o600;

impl Server {
    /// Attaches to service `name` of `bus` as a server, creating the service
    /// with default settings if it does not exist yet.
    pub fn attach(bus: &str, name: &str) -> Result<Server> {
        Server::attach_with(bus, name, &ServiceConfig::default())
    }

    /// `attach`, creating the service with `cfg` if it does not exist yet
    /// (an existing service keeps its settings: see [`Server::config`]).
    pub fn attach_with(bus: &str, name: &str, cfg: &ServiceConfig) -> Result<Server> {
        cfg.validate()?;
        let mut m = MappedService::open_or_create(bus, name, cfg, DEFAULT_MODE)?;
        let index = m.acquire_entry(Role::Server)?;
        Ok(Server {
            m,
            index,
            strategy: WaitStrategy::default(),
            blocker: Cell::new(0),
        })
    }

    /// How blocking receives wait.
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

    /// This server's entry index.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// Waits at most `timeout` for the next request.
    pub fn recv_request(&self, timeout: Duration) -> Result<Request<'_>> {
        self.recv_with(Limit::After(timeout))
    }

    /// The next request if one is queued.
    pub fn try_recv_request(&self) -> Result<Option<Request<'_>>> {
        match self.recv_with(Limit::Now) {
            Ok(r) => Ok(Some(r)),
            Err(Error::Timeout) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Waits for the next request as long as it takes (or until a signal:
    /// `Interrupted`).
    pub fn recv_request_forever(&self) -> Result<Request<'_>> {
        self.recv_with(Limit::Never)
    }

    /// Answers requests with `handler` until an error (a signal:
    /// `Interrupted`). Each reply is written straight into the caller's slot.
    pub fn serve<R: AsRef<[u8]>>(&self, mut handler: impl FnMut(&[u8]) -> R) -> Result<()> {
        loop {
            let req = self.recv_request_forever()?;
            let out = handler(&req);
            let ticket = req.ticket();
            drop(req);
            match self.reply(ticket, out.as_ref()) {
                // Too large a reply: the caller learns why instead of waiting.
                Err(Error::ServiceLimit { what, .. }) => {
                    self.reply_error(ticket, &what)?;
                }
                other => {
                    other?;
                }
            }
        }
    }

    /// Takes one queued request if there is one: claims its call's reply
    /// slot, or drops it (and looks further) if its caller gave up.
    fn take_one(&self) -> Option<Request<'_>> {
        let m = &self.m;
        let me = self.index;
        let cfg = m.config();
        let e = m.server(me);
        // Bounded: each round consumes a dropped request.
        for _ in 0..m.capacity() + 1 {
            let pos = match queue::try_take(m, me) {
                Claim::Got(pos) => pos,
                Claim::Blocked { blocker } => {
                    self.blocker.set(blocker);
                    return None;
                }
            };
            let cell = m.cell(pos);
            let client = cell.client.load(Ordering::Relaxed);
            let slot = cell.slot.load(Ordering::Relaxed);
            let corr = cell.corr.load(Ordering::Relaxed);
            let len = cell.len.load(Ordering::Relaxed);
            let valid =
                client < cfg.max_clients && slot < cfg.max_in_flight && len <= cfg.max_request_size;
            if valid && reply::take(m.reply_slot(client, slot), corr, me) {
                count_own(&e.taken);
                return Some(Request {
                    server: self,
                    pos,
                    len: len as usize,
                    ticket: RequestTicket { client, slot, corr },
                });
            }
            // The caller gave up (or died), or the cell is garbage.
            count_own(&e.dropped);
            m.shared().dropped.fetch_add(1, Ordering::Relaxed);
            if queue::free(m, pos, me, queue::state::TAKEN) {
                // `free` was a SeqCst CAS: no fence needed.
                m.shared().space_ready.notify_all_after_seqcst_rmw();
            }
        }
        None
    }

    fn recv_with(&self, mut limit: Limit) -> Result<Request<'_>> {
        let m = &self.m;
        let e = m.server(self.index);
        wait_for(
            self.strategy,
            &mut limit,
            &m.shared().request_ready,
            &e.waiting,
            || Ok(self.take_one()),
            || {
                // A client that died while writing the request at the head
                // of the queue holds everybody up: reclaim it.
                if m.reap_blocker(self.blocker.get()) {
                    return Ok(self.take_one());
                }
                Ok(None)
            },
            // Only a request being written at the head can hold us up; an
            // empty queue needs no watching.
            || queue::state_of(self.blocker.get()) == queue::state::WRITING,
        )
    }

    /// Sends `bytes` as the reply to `ticket`. `Ok(false)`: the caller no
    /// longer waits (it timed out, cancelled or died) and the reply was
    /// dropped. A reply over `max_reply_size` is an error and the call stays
    /// unanswered (answer it with [`Server::reply_error`]).
    pub fn reply(&self, ticket: RequestTicket, bytes: &[u8]) -> Result<bool> {
        self.check_reply_len(bytes.len())?;
        self.write_reply(ticket, STATUS_OK, bytes)
    }

    /// Answers `ticket` with an error: the caller gets `Error::Remote` with
    /// `message` (cut to `max_reply_size` bytes).
    pub fn reply_error(&self, ticket: RequestTicket, message: &str) -> Result<bool> {
        let max = self.m.config().max_reply_size as usize;
        let mut cut = message.len().min(max);
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        self.write_reply(ticket, STATUS_ERROR, &message.as_bytes()[..cut])
    }

    /// Lends the caller's reply slot to write a reply of `len` bytes in
    /// place; `commit` sends it. `Ok(None)`: the caller no longer waits.
    /// Dropping the loan uncommitted answers the call with an error.
    pub fn loan_reply(&self, ticket: RequestTicket, len: usize) -> Result<Option<ReplyLoan<'_>>> {
        self.check_reply_len(len)?;
        if !self.begin(ticket) {
            return Ok(None);
        }
        Ok(Some(ReplyLoan {
            server: self,
            ticket,
            len,
            done: false,
        }))
    }

    fn check_reply_len(&self, len: usize) -> Result<()> {
        let max = self.m.config().max_reply_size as usize;
        if len > max {
            return Err(Error::ServiceLimit {
                service: self.m.service().to_string(),
                what: format!(
                    "reply of {len} bytes is over the service's max reply size of {max} bytes"
                ),
            });
        }
        Ok(())
    }

    /// Claims the reply slot for writing (`TAKEN(me) → WRITING(me)`).
    fn begin(&self, t: RequestTicket) -> bool {
        let cfg = self.m.config();
        let ok = t.client < cfg.max_clients
            && t.slot < cfg.max_in_flight
            && reply::begin_reply(self.m.reply_slot(t.client, t.slot), t.corr, self.index);
        if !ok {
            count_own(&self.m.server(self.index).dropped);
            self.m.shared().dropped.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    /// Completes a reply whose bytes are in the slot.
    fn finish(&self, t: RequestTicket, status: u32, len: usize) -> bool {
        let slot = self.m.reply_slot(t.client, t.slot);
        slot.len.store(len as u32, Ordering::Relaxed);
        slot.status.store(status, Ordering::Relaxed);
        let ok = reply::finish_reply(slot, t.corr, self.index);
        if ok {
            count_own(&self.m.server(self.index).replied);
            // `finish_reply` was a SeqCst CAS: no fence needed.
            self.m
                .client(t.client)
                .reply_ready
                .notify_all_after_seqcst_rmw();
        }
        ok
    }

    fn write_reply(&self, t: RequestTicket, status: u32, bytes: &[u8]) -> Result<bool> {
        if !self.begin(t) {
            return Ok(false);
        }
        // SAFETY: we hold WRITING on the slot, so nobody else writes it and
        // its client does not read it; `bytes.len() ≤ max_reply_size` (the
        // callers check) fits in the payload area.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                self.m.reply_payload(t.client, t.slot),
                bytes.len(),
            )
        };
        Ok(self.finish(t, status, bytes.len()))
    }
}

/// A request read in place in its queue cell. The cell is this server's
/// until the view is dropped (keep it short: a held cell is a queue slot
/// other clients cannot use).
#[derive(Debug)]
pub struct Request<'a> {
    server: &'a Server,
    pos: u64,
    len: usize,
    ticket: RequestTicket,
}

impl Request<'_> {
    /// What to pass to [`Server::reply`].
    pub fn ticket(&self) -> RequestTicket {
        self.ticket
    }
}

impl Deref for Request<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: the cell is TAKEN by us: its writer published it before
        // our Acquire take and nobody writes it until we free it; `len` was
        // checked against max_request_size.
        unsafe { std::slice::from_raw_parts(self.server.m.cell_payload(self.pos), self.len) }
    }
}

impl Drop for Request<'_> {
    fn drop(&mut self) {
        let m = &self.server.m;
        if queue::free(m, self.pos, self.server.index, queue::state::TAKEN) {
            // `free` was a SeqCst CAS: no fence needed (see the method).
            m.shared().space_ready.notify_all_after_seqcst_rmw();
        }
    }
}

/// A reply slot lent for writing a reply in place. Derefs to `len` bytes
/// (initially stale data: overwrite what you send).
#[derive(Debug)]
pub struct ReplyLoan<'a> {
    server: &'a Server,
    ticket: RequestTicket,
    len: usize,
    done: bool,
}

impl ReplyLoan<'_> {
    /// Shortens the reply to `len` bytes (no-op if not shorter).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Sends the first `len` bytes written as an error message instead of a
    /// reply: the caller gets `Error::Remote`.
    pub fn fail(mut self, len: usize) -> bool {
        self.done = true;
        self.server
            .finish(self.ticket, STATUS_ERROR, len.min(self.len))
    }

    /// Sends the reply. `false`: the slot was reclaimed meanwhile (only a
    /// protocol-breaking process can cause that).
    pub fn commit(mut self) -> bool {
        self.done = true;
        self.server.finish(self.ticket, STATUS_OK, self.len)
    }
}

impl Deref for ReplyLoan<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: we hold WRITING on the slot; `len ≤ max_reply_size`.
        unsafe {
            std::slice::from_raw_parts(
                self.server
                    .m
                    .reply_payload(self.ticket.client, self.ticket.slot),
                self.len,
            )
        }
    }
}

impl DerefMut for ReplyLoan<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`; `&mut self` makes this the only view.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.server
                    .m
                    .reply_payload(self.ticket.client, self.ticket.slot),
                self.len,
            )
        }
    }
}

impl Drop for ReplyLoan<'_> {
    fn drop(&mut self) {
        if !self.done {
            let msg = b"the server dropped the reply unfinished";
            let n = msg
                .len()
                .min(self.server.m.config().max_reply_size as usize);
            self.deref_mut_full()[..n].copy_from_slice(&msg[..n]);
            self.server.finish(self.ticket, STATUS_ERROR, n);
        }
    }
}

impl ReplyLoan<'_> {
    fn deref_mut_full(&mut self) -> &mut [u8] {
        let max = self.server.m.config().max_reply_size as usize;
        // SAFETY: we hold WRITING on the slot, whose payload area holds
        // `max_reply_size` bytes.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.server
                    .m
                    .reply_payload(self.ticket.client, self.ticket.slot),
                max,
            )
        }
    }
}
