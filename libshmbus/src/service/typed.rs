//! Typed stubs: [`TypedClient`] and [`TypedServer`] carry any serde types,
//! marshalled with `postcard` (a compact, stable, well-kept binary format:
//! varint integers, no field names, no schema negotiation).
//!
//! Marshalling never panics on either side: a request the server cannot
//! decode is answered with an error reply (the caller gets
//! `Error::Remote`), a reply the client cannot decode is
//! `Error::BadMessage`, and a value that does not fit the service's size
//! limits is refused before anything is sent. Requests are encoded into a
//! buffer made at attach time and replies straight into the caller's reply
//! slot, so the typed path allocates only what the types themselves need.
//!
//! ```no_run
//! # fn main() -> shmbus::Result<()> {
//! use shmbus::service::{TypedClient, TypedServer};
//! use std::time::Duration;
//! // In the server process:
//! let server: TypedServer<(i64, i64), i64> = TypedServer::attach("default", "math/add")?;
//! # std::thread::spawn(move || {
//! server.serve(|(a, b)| a + b)
//! # });
//! // In a client process:
//! let mut add: TypedClient<(i64, i64), i64> = TypedClient::attach("default", "math/add")?;
//! assert_eq!(add.call_timeout(&(2, 3), Duration::from_secs(1))?, 5);
//! # Ok(()) }
//! ```

use std::marker::PhantomData;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::service::client::{Client, Ticket};
use crate::service::layout::ServiceConfig;
use crate::service::server::{RequestTicket, Server};

/// A client whose requests are `Req` and replies `Resp`.
#[derive(Debug)]
pub struct TypedClient<Req, Resp> {
    inner: Client,
    buf: Box<[u8]>,
    _types: PhantomData<fn(&Req) -> Resp>,
}

impl<Req: Serialize, Resp: DeserializeOwned> TypedClient<Req, Resp> {
    /// Attaches to service `name` of `bus` (see [`Client::attach`]).
    pub fn attach(bus: &str, name: &str) -> Result<Self> {
        Ok(Self::from_client(Client::attach(bus, name)?))
    }

    /// Wraps a raw client.
    pub fn from_client(inner: Client) -> Self {
        let buf = vec![0u8; inner.config().max_request_size as usize].into_boxed_slice();
        TypedClient {
            inner,
            buf,
            _types: PhantomData,
        }
    }

    /// The raw client underneath.
    pub fn raw(&mut self) -> &mut Client {
        &mut self.inner
    }

    fn encode(&mut self, req: &Req) -> Result<usize> {
        match postcard::to_slice(req, &mut self.buf) {
            Ok(used) => Ok(used.len()),
            Err(postcard::Error::SerializeBufferFull) => Err(Error::ServiceLimit {
                service: self.inner.service().to_string(),
                what: format!(
                    "the encoded request is over the service's max request size of {} bytes",
                    self.buf.len()
                ),
            }),
            Err(e) => Err(Error::BadMessage {
                service: self.inner.service().to_string(),
                what: format!("cannot encode the request: {e}"),
            }),
        }
    }

    fn decode(service: &str, bytes: &[u8]) -> Result<Resp> {
        postcard::from_bytes(bytes).map_err(|e| Error::BadMessage {
            service: service.to_string(),
            what: format!(
                "the reply does not decode as {}: {e}",
                std::any::type_name::<Resp>()
            ),
        })
    }

    /// Calls the service with `req` and decodes the reply, waiting as long
    /// as it takes (see [`Client::call`]).
    pub fn call(&mut self, req: &Req) -> Result<Resp> {
        self.call_timeout(req, Duration::MAX)
    }

    /// `call`, waiting at most `timeout` in all.
    pub fn call_timeout(&mut self, req: &Req, timeout: Duration) -> Result<Resp> {
        let n = self.encode(req)?;
        let service = self.inner.service().to_string();
        self.inner
            .call_timeout_with(&self.buf[..n], timeout, |b| Self::decode(&service, b))?
    }

    /// `call` for a request that is safe to repeat (see
    /// [`Client::call_idempotent`]): if the server holding it dies, the
    /// same encoded request is sent again to whichever server takes it.
    /// At least once: the dead server may have carried it out. `NoServer`
    /// when no server is left; never `ServerGone`.
    pub fn call_idempotent(&mut self, req: &Req) -> Result<Resp> {
        self.call_idempotent_timeout(req, Duration::MAX)
    }

    /// `call_idempotent` within the one budget `timeout` (`Timeout` when it
    /// runs out).
    pub fn call_idempotent_timeout(&mut self, req: &Req, timeout: Duration) -> Result<Resp> {
        let n = self.encode(req)?;
        let service = self.inner.service().to_string();
        self.inner
            .call_idempotent_timeout_with(&self.buf[..n], timeout, |b| Self::decode(&service, b))?
    }

    /// Sends `req` without waiting for the reply (pipelining).
    pub fn send_request(&mut self, req: &Req) -> Result<Ticket> {
        let n = self.encode(req)?;
        self.inner.send_request(&self.buf[..n])
    }

    /// Waits for the reply of `ticket` and decodes it.
    pub fn recv_reply(&mut self, ticket: Ticket) -> Result<Resp> {
        self.recv_reply_timeout(ticket, Duration::MAX)
    }

    /// Waits at most `timeout` for the reply of `ticket` and decodes it.
    pub fn recv_reply_timeout(&mut self, ticket: Ticket, timeout: Duration) -> Result<Resp> {
        let service = self.inner.service().to_string();
        self.inner
            .recv_reply_timeout_with(ticket, timeout, |b| Self::decode(&service, b))?
    }
}

/// A server whose requests are `Req` and replies `Resp`.
#[derive(Debug)]
pub struct TypedServer<Req, Resp> {
    inner: Server,
    _types: PhantomData<fn(Req) -> Resp>,
}

impl<Req: DeserializeOwned, Resp: Serialize> TypedServer<Req, Resp> {
    /// Attaches to service `name` of `bus` as a server (see [`Server::attach`]).
    pub fn attach(bus: &str, name: &str) -> Result<Self> {
        Ok(Self::from_server(Server::attach(bus, name)?))
    }

    /// `attach`, creating the service with `cfg` if needed.
    pub fn attach_with(bus: &str, name: &str, cfg: &ServiceConfig) -> Result<Self> {
        Ok(Self::from_server(Server::attach_with(bus, name, cfg)?))
    }

    /// Wraps a raw server.
    pub fn from_server(inner: Server) -> Self {
        TypedServer {
            inner,
            _types: PhantomData,
        }
    }

    /// The raw server underneath.
    pub fn raw(&self) -> &Server {
        &self.inner
    }

    /// Waits at most `timeout` for one request, decodes it, and answers it
    /// with `handler`'s value. Returns whether a request was handled (a
    /// request that did not decode is answered with an error reply and
    /// counts as handled).
    pub fn serve_one(&self, timeout: Duration, handler: impl FnOnce(Req) -> Resp) -> Result<bool> {
        let req = match self.inner.recv_request_timeout(timeout) {
            Ok(r) => r,
            Err(Error::Timeout) => return Ok(false),
            Err(e) => return Err(e),
        };
        let ticket = req.ticket();
        let decoded: std::result::Result<Req, postcard::Error> = postcard::from_bytes(&req);
        drop(req);
        match decoded {
            Ok(value) => self.answer(ticket, &handler(value))?,
            Err(e) => {
                self.inner.reply_error(
                    ticket,
                    &format!(
                        "cannot decode the request as {}: {e}",
                        std::any::type_name::<Req>()
                    ),
                )?;
            }
        }
        Ok(true)
    }

    /// Answers requests with `handler` until an error (a signal:
    /// `Interrupted`).
    pub fn serve(&self, mut handler: impl FnMut(Req) -> Resp) -> Result<()> {
        loop {
            self.serve_one(Duration::from_secs(3600), &mut handler)?;
        }
    }

    /// Encodes `resp` straight into the caller's reply slot.
    fn answer(&self, ticket: RequestTicket, resp: &Resp) -> Result<()> {
        let max = self.inner.config().max_reply_size as usize;
        let Some(mut loan) = self.inner.loan_reply(ticket, max)? else {
            return Ok(()); // the caller gave up
        };
        match postcard::to_slice(resp, &mut loan) {
            Ok(used) => {
                let n = used.len();
                loan.truncate(n);
                loan.commit();
                Ok(())
            }
            Err(e) => {
                // Dropping the loan would send a generic error; say why.
                let why = match e {
                    postcard::Error::SerializeBufferFull => format!(
                        "the reply does not fit the service's max reply size of {max} bytes"
                    ),
                    e => format!("cannot encode the reply: {e}"),
                };
                let n = why.len().min(loan.len());
                loan[..n].copy_from_slice(&why.as_bytes()[..n]);
                loan.fail(n);
                Ok(())
            }
        }
    }
}
