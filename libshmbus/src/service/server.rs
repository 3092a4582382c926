//! The answering side of a service: [`Server`] takes requests from the
//! shared queue (competing with the other servers: each request goes to
//! exactly one) and writes replies into the calling client's reply slot.
//!
//! Bytes in the segment that a peer could rewrite are never lent out as a
//! slice: the segment is mapped read-write by every client and server, so a
//! process breaking the protocol could change them while the application
//! reads them. A [`Request`] therefore holds a private copy of the request,
//! read from its queue cell with atomic loads (`crate::racy`) when it is
//! taken (the cell stays this server's until the `Request` is dropped), and
//! [`Server::loan_reply`] lends a private buffer that is copied into the
//! caller's reply slot when the reply is sent. The buffers are the server's,
//! made once and reused: the answering path allocates nothing in the
//! steady state.
//!
//! A request is handed out only after the server has claimed the call's
//! reply slot (`PENDING → TAKEN(me)`), so a call its client already gave up
//! is dropped without the application ever seeing it, and from then on the
//! client knows which server holds its call and watches its liveness.
//! Dropping a server with calls unanswered ends them with `ServerGone`.

use std::cell::{Cell, RefCell};
use std::ops::{Deref, DerefMut};
use std::time::Duration;

use crate::crash::point;
use crate::error::{Error, Result};
use crate::racy::atomic_read_bytes;
use crate::service::layout::{count_own, ServiceConfig, STATUS_ERROR, STATUS_OK};
use crate::service::mapped::{MappedService, Role};
use crate::service::queue::{self, Claim, QueueMemory};
use crate::service::reply;
use crate::service::wait::wait_for;
use crate::sync::Ordering;
use crate::wait::Deadline;
use crate::wait::WaitStrategy;

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
    /// Private copies of requests (`max_request_size` bytes each), one per
    /// `Request` alive.
    requests: Buffers,
    /// Private reply buffers (`max_reply_size` bytes each), one per
    /// `ReplyLoan` alive.
    replies: Buffers,
}

/// Private byte buffers of one size, made on demand and reused: a `Request`
/// or `ReplyLoan` takes one and gives it back when dropped. Usually one
/// buffer suffices; an application holding several requests or loans at a
/// time gets more, and at most `KEPT` are kept for reuse.
#[derive(Debug)]
struct Buffers {
    size: usize,
    free: RefCell<Vec<Box<[u8]>>>,
}

impl Buffers {
    /// Buffers kept for reuse at most (more are freed when given back).
    const KEPT: usize = 8;

    /// Starts with one buffer, so that the first request allocates nothing.
    fn new(size: usize) -> Buffers {
        Buffers {
            size,
            free: RefCell::new(vec![vec![0u8; size].into_boxed_slice()]),
        }
    }

    /// A buffer of `size` bytes (holding whatever its last user left).
    fn take(&self) -> Box<[u8]> {
        let reused = self.free.borrow_mut().pop();
        reused.unwrap_or_else(|| vec![0u8; self.size].into_boxed_slice())
    }

    /// Gives a buffer from `take` back.
    fn give(&self, buf: Box<[u8]>) {
        let mut free = self.free.borrow_mut();
        if buf.len() == self.size && free.len() < Buffers::KEPT {
            free.push(buf);
        }
    }
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
        let requests = Buffers::new(m.config().max_request_size as usize);
        let replies = Buffers::new(m.config().max_reply_size as usize);
        Ok(Server {
            m,
            index,
            strategy: WaitStrategy::default(),
            blocker: Cell::new(0),
            requests,
            replies,
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

    /// Waits for the next request as long as it takes (or until a signal:
    /// `Interrupted`). [`Error::Closed`]: the service's segment was removed
    /// from /dev/shm (`shmbusd` shut down or cleaned the bus, or an `rm`),
    /// so no caller can reach this server.
    pub fn recv_request(&self) -> Result<Request<'_>> {
        self.recv_with(Deadline::Never)
    }

    /// `recv_request`, waiting at most `timeout`.
    pub fn recv_request_timeout(&self, timeout: Duration) -> Result<Request<'_>> {
        self.recv_with(Deadline::After(timeout))
    }

    /// The next request if one is queued.
    pub fn try_recv_request(&self) -> Result<Option<Request<'_>>> {
        match self.recv_with(Deadline::Now) {
            Ok(r) => Ok(Some(r)),
            Err(Error::Timeout) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Answers requests with `handler` until an error (a signal:
    /// `Interrupted`). `handler` gets the server's private copy of each
    /// request; its reply is copied into the caller's slot.
    pub fn serve<R: AsRef<[u8]>>(&self, mut handler: impl FnMut(&[u8]) -> R) -> Result<()> {
        loop {
            let req = self.recv_request()?;
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
                Claim::Got(pos) => {
                    point("serve.take");
                    pos
                }
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
                point("serve.claim");
                count_own(&e.taken);
                let len = len as usize;
                let mut buf = self.requests.take();
                // SAFETY: the cell's payload area holds `max_request_size`
                // bytes inside the mapping (`cell_payload`), and `len ≤
                // max_request_size` = `buf.len()` was checked above; `buf` is
                // private. The cell is TAKEN by us: its writer published it
                // before our take (whose Acquire makes the bytes visible)
                // and, under the protocol, nobody writes it until we free
                // it. A process breaking the protocol could still be writing
                // it (every party maps the segment read-write), so it is read
                // with atomic loads, and only the private copy is handed out.
                unsafe { atomic_read_bytes(m.cell_payload(pos), &mut buf[..len]) };
                point("serve.copy");
                return Some(Request {
                    server: self,
                    pos,
                    len,
                    buf,
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

    /// Waits for a request until `limit`. A blocking wait (any limit but
    /// `Now`) ends with [`Error::Closed`] once the service's segment is gone
    /// from /dev/shm, checked every tick and when the wait times out.
    fn recv_with(&self, limit: Deadline) -> Result<Request<'_>> {
        let blocking = limit != Deadline::Now;
        match self.wait_request(limit) {
            Err(Error::Timeout) if blocking && !self.m.is_linked() => Err(Error::Closed),
            other => other,
        }
    }

    fn wait_request(&self, mut limit: Deadline) -> Result<Request<'_>> {
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
                // Once the segment is gone from /dev/shm (the daemon shut
                // down or cleaned the bus, or an `rm`), no caller can find
                // this server again: say so rather than wait for ever.
                if !m.is_linked() {
                    return Err(Error::Closed);
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

    /// Claims the caller's reply slot and lends a buffer of `len` bytes to
    /// write the reply into; `commit` copies it into the slot and sends it.
    /// `Ok(None)`: the caller no longer waits. Dropping the loan uncommitted
    /// answers the call with an error. (The buffer is the server's own, not
    /// the slot: the client, or any process breaking the protocol, could
    /// write the slot while the application holds the loan.)
    pub fn loan_reply(&self, ticket: RequestTicket, len: usize) -> Result<Option<ReplyLoan<'_>>> {
        self.check_reply_len(len)?;
        if !self.begin(ticket) {
            return Ok(None);
        }
        Ok(Some(ReplyLoan {
            server: self,
            ticket,
            len,
            buf: self.replies.take(),
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
        if ok {
            point("serve.begin");
        } else {
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
            point("serve.finish");
            count_own(&self.m.server(self.index).replied);
            // `finish_reply` was a SeqCst CAS: no fence needed.
            self.m
                .client(t.client)
                .reply_ready
                .notify_all_after_seqcst_rmw();
            point("serve.notify");
        }
        ok
    }

    fn write_reply(&self, t: RequestTicket, status: u32, bytes: &[u8]) -> Result<bool> {
        if !self.begin(t) {
            return Ok(false);
        }
        Ok(self.put_reply(t, status, bytes))
    }

    /// Copies `bytes` (at most `max_reply_size`) into the reply slot of `t`,
    /// which we hold WRITING (`begin`), and completes the reply.
    fn put_reply(&self, t: RequestTicket, status: u32, bytes: &[u8]) -> bool {
        let len = bytes.len().min(self.m.config().max_reply_size as usize);
        // SAFETY: the slot's payload area holds `max_reply_size` bytes inside
        // the mapping (`reply_payload`) and `len` is clamped to it; `bytes`
        // is private memory, so they do not overlap. We hold WRITING on the
        // slot: under the protocol nobody else writes it and its client does
        // not read it until REPLIED. A plain copy through a raw pointer is
        // fine even if a process breaking the protocol touches the slot
        // meanwhile: we hold no reference to it and never read it back, so
        // the compiler has nothing to assume about its contents.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                self.m.reply_payload(t.client, t.slot),
                len,
            )
        };
        point("serve.write");
        self.finish(t, status, len)
    }
}

/// A request taken from the queue: derefs to the server's private copy of
/// its bytes, read from the queue cell when it was taken (never the cell
/// itself, which a process breaking the protocol could rewrite). The cell
/// is this server's until the `Request` is dropped (keep it short: a held
/// cell is a queue slot other clients cannot use).
#[derive(Debug)]
pub struct Request<'a> {
    server: &'a Server,
    pos: u64,
    len: usize,
    /// The private copy (`max_request_size` bytes, the first `len` valid),
    /// from `server.requests`.
    buf: Box<[u8]>,
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
        // `len ≤ max_request_size` = the buffer's length (checked at take).
        &self.buf[..self.len]
    }
}

impl Drop for Request<'_> {
    fn drop(&mut self) {
        let m = &self.server.m;
        if queue::free(m, self.pos, self.server.index, queue::state::TAKEN) {
            point("serve.free");
            // `free` was a SeqCst CAS: no fence needed (see the method).
            m.shared().space_ready.notify_all_after_seqcst_rmw();
        }
        self.server.requests.give(std::mem::take(&mut self.buf));
    }
}

/// A claimed reply slot and a buffer to write the reply into: derefs to
/// `len` bytes of the server's private reply buffer (initially stale data:
/// overwrite what you send), which `commit` or `fail` copies into the
/// caller's reply slot. The slot itself is never lent out: the client, or
/// any process breaking the protocol, could write it meanwhile.
#[derive(Debug)]
pub struct ReplyLoan<'a> {
    server: &'a Server,
    ticket: RequestTicket,
    len: usize,
    /// `max_reply_size` bytes, from `server.replies`.
    buf: Box<[u8]>,
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
        let n = len.min(self.len);
        self.send(STATUS_ERROR, n)
    }

    /// Sends the reply. `false`: the slot was reclaimed meanwhile (only a
    /// protocol-breaking process can cause that).
    pub fn commit(mut self) -> bool {
        let n = self.len;
        self.send(STATUS_OK, n)
    }

    /// Copies the first `n` bytes of the buffer into the slot and completes
    /// the reply.
    fn send(&mut self, status: u32, n: usize) -> bool {
        self.done = true;
        self.server.put_reply(self.ticket, status, &self.buf[..n])
    }
}

impl Deref for ReplyLoan<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // `len ≤ max_reply_size` = the buffer's length (`loan_reply`).
        &self.buf[..self.len]
    }
}

impl DerefMut for ReplyLoan<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.buf[..self.len]
    }
}

impl Drop for ReplyLoan<'_> {
    fn drop(&mut self) {
        if !self.done {
            let msg = b"the server dropped the reply unfinished";
            let n = msg.len().min(self.buf.len());
            self.buf[..n].copy_from_slice(&msg[..n]);
            self.send(STATUS_ERROR, n);
        }
        self.server.replies.give(std::mem::take(&mut self.buf));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::client::Client;

    const T: Duration = Duration::from_secs(20);

    fn cfg() -> ServiceConfig {
        ServiceConfig {
            queue_capacity: 8,
            max_request_size: 100,
            max_reply_size: 60,
            max_servers: 1,
            max_clients: 1,
            max_in_flight: 4,
        }
    }

    /// Requests and loans are private buffers, never the segment's bytes:
    /// several may be held at once, each with its own contents, and the
    /// buffers are reused once given back.
    #[test]
    fn requests_and_loans_are_private_copies() {
        let bus = format!("svcunit{}-private", std::process::id());
        let server = Server::attach_with(&bus, "p", &cfg()).unwrap();
        let mut c = Client::attach(&bus, "p").unwrap();
        let t1 = c.send_request(b"first").unwrap();
        let t2 = c.send_request(b"second").unwrap();
        let r1 = server.recv_request_timeout(T).unwrap();
        let r2 = server.recv_request_timeout(T).unwrap();
        assert_eq!((&*r1, &*r2), (&b"first"[..], &b"second"[..]));
        for r in [&r1, &r2] {
            let cell = server.m.cell_payload(r.pos) as usize;
            let at = r.as_ptr() as usize;
            assert!(
                at + r.len() <= cell || at >= cell + 100,
                "a request must not point into its queue cell"
            );
        }
        // A loan writes into its own buffer, read back through `Deref`, and
        // reaches the slot only on commit.
        let mut loan = server.loan_reply(r2.ticket(), 6).unwrap().unwrap();
        loan.copy_from_slice(b"SECOND");
        assert_eq!(&*loan, b"SECOND");
        let slot = server.m.reply_payload(r2.ticket().client, r2.ticket().slot) as usize;
        assert!(loan.as_ptr() as usize >= slot + 60 || (loan.as_ptr() as usize) + 6 <= slot);
        assert!(loan.commit());
        assert!(server.reply(r1.ticket(), b"FIRST").unwrap());
        let (b1, b2) = (r1.buf.as_ptr(), r2.buf.as_ptr());
        drop((r1, r2));
        assert_eq!(c.recv_reply_timeout(t1, T).unwrap(), b"FIRST");
        assert_eq!(c.recv_reply_timeout(t2, T).unwrap(), b"SECOND");
        // Both request buffers went back to the pool and are reused.
        let t3 = c.send_request(b"third").unwrap();
        let r3 = server.recv_request_timeout(T).unwrap();
        assert_eq!(&*r3, b"third");
        assert!(r3.buf.as_ptr() == b1 || r3.buf.as_ptr() == b2);
        assert!(server.reply(r3.ticket(), b"").unwrap());
        drop(r3);
        assert_eq!(c.recv_reply_timeout(t3, T).unwrap(), b"");
        drop((c, server));
        let _ = crate::topic::remove_bus_segments(&bus);
    }
}
