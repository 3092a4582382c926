//! Services (request/response, docs/rpc.md) across Zenoh: queryables.
//!
//! Key layout: service `NAME` is the Zenoh key `PREFIX/@service/NAME`. A
//! chunk that starts with `@` is *verbatim* in Zenoh 1.x: no wildcard
//! matches it, so the topics' subscribers (`PREFIX/**`) never see a query,
//! and since topic names cannot contain `@`, no topic key can be a service
//! key.
//!
//! * **Export** (`--export-service PATTERN`): a discovery thread lists the
//!   bus's services (their segments in /dev/shm, as `shmbus services`)
//!   every `--poll-ms`; for each new name matching a pattern it starts one
//!   thread that declares a queryable on the service's key and answers each
//!   query by calling the local service (a [`Client`] owned by that thread,
//!   bounded by `--call-timeout-ms`), replying with the reply's bytes, or
//!   with `reply_err` carrying the error text.
//! * **Import** (`--import-service NAME`): one thread per name attaches as
//!   a local [`Server`] of the service (creating it with the library's
//!   defaults if it does not exist), and answers each local request with
//!   the first reply of a Zenoh `get` on the service's key, or with an error
//!   reply naming what went wrong (no remote server, timeout, the remote
//!   service's own error).
//!
//! Calls are carried one at a time per service and direction (one thread
//! each). A bridge never queries itself (queryables take only remote
//! queries, gets go only to remote queryables), and a service it imports is
//! never exported by it (the bridge is one of its servers).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use shmbus::service::{list_bus_services, Client, Server};
use shmbus::Error;
use tracing::{info, warn};
use zenoh::sample::Locality;
use zenoh::{Session, Wait};

use shmbus::pattern::any_matches;
use shmbus::Pattern;

/// How often the service threads look at the stop flag.
const STOP_CHECK: Duration = Duration::from_millis(200);

/// Starts a named thread running the body (with the bridge's signals
/// blocked); `None` if it could not be started (logged).
pub type SpawnFn = dyn Fn(String, Box<dyn FnOnce() + Send>) -> Option<JoinHandle<()>>;

/// The Zenoh key of service `name`.
pub fn service_key(key_prefix: &str, name: &str) -> String {
    format!("{key_prefix}/@service/{name}")
}

/// What both directions need.
#[derive(Clone)]
pub struct ServiceBridge {
    /// The local bus name.
    pub bus: String,
    /// The Zenoh session.
    pub session: Session,
    /// `--key-prefix`.
    pub key_prefix: String,
    /// `--call-timeout-ms`: bound on one call, local or remote.
    pub call_timeout: Duration,
    /// Set when the bridge shuts down.
    pub stop: Arc<AtomicBool>,
}

impl ServiceBridge {
    /// The export discovery loop: starts an exporting thread for each new
    /// local service matching `patterns` and no `imported` name, until the
    /// stop flag; then joins them.
    pub fn run_exports(
        &self,
        patterns: &[Pattern],
        imported: &[Pattern],
        poll: Duration,
        spawn: &SpawnFn,
    ) {
        let mut started = HashSet::new();
        let mut threads = Vec::new();
        let mut warned = false;
        while !self.stop.load(Ordering::Relaxed) {
            match list_bus_services(&self.bus) {
                Ok(names) => {
                    warned = false;
                    for name in names {
                        if started.contains(&name)
                            || !any_matches(patterns, &name)
                            || any_matches(imported, &name)
                        {
                            continue;
                        }
                        started.insert(name.clone());
                        let me = self.clone();
                        let n = name.clone();
                        if let Some(t) = spawn(
                            format!("svc-export {name}"),
                            Box::new(move || me.export_one(&n)),
                        ) {
                            threads.push(t);
                        }
                    }
                }
                Err(e) if !warned => {
                    warned = true;
                    warn!("cannot list the services of bus `{}`: {e}", self.bus);
                }
                Err(_) => {}
            }
            let until = Instant::now() + poll;
            while Instant::now() < until && !self.stop.load(Ordering::Relaxed) {
                std::thread::sleep(STOP_CHECK.min(poll));
            }
        }
        for t in threads {
            let _ = t.join();
        }
    }

    /// Answers Zenoh queries on service `name`'s key by calling the local
    /// service, until the stop flag.
    fn export_one(&self, name: &str) {
        let key = service_key(&self.key_prefix, name);
        let queryable = match self
            .session
            .declare_queryable(key.clone())
            .allowed_origin(Locality::Remote)
            .wait()
        {
            Ok(q) => q,
            Err(e) => {
                warn!("cannot declare a Zenoh queryable on `{key}`: {e}");
                return;
            }
        };
        info!("exporting service `{name}` as `{key}`");
        let mut client: Option<Client> = None;
        while !self.stop.load(Ordering::Relaxed) {
            let query = match queryable.recv_timeout(STOP_CHECK) {
                Ok(Some(q)) => q,
                Ok(None) => continue,
                Err(_) => break, // the queryable was undeclared
            };
            let request = query
                .payload()
                .map(|p| p.to_bytes().into_owned())
                .unwrap_or_default();
            let result = match &mut client {
                Some(c) => c.call_timeout(&request, self.call_timeout),
                None => match Client::attach(&self.bus, name) {
                    Ok(c) => client.insert(c).call_timeout(&request, self.call_timeout),
                    Err(e) => Err(e),
                },
            };
            let sent = match result {
                Ok(reply) => query.reply(query.key_expr().clone(), reply).wait(),
                Err(e) => {
                    // A client of a removed (maybe re-created) service, or
                    // one whose servers are all gone, attaches again next
                    // time.
                    if !matches!(e, Error::Remote { .. } | Error::Timeout) {
                        client = None;
                    }
                    query.reply_err(remote_error_text(name, &e)).wait()
                }
            };
            if let Err(e) = sent {
                warn!("cannot answer a Zenoh query on `{key}`: {e}");
            }
        }
    }

    /// Serves service `name` locally by forwarding each request to Zenoh,
    /// until the stop flag.
    pub fn import_one(&self, name: &str) {
        let server = match Server::attach(&self.bus, name) {
            Ok(s) => s,
            Err(e) => {
                warn!(
                    "cannot serve imported service `{name}` on bus `{}`: {e}",
                    self.bus
                );
                return;
            }
        };
        let key = service_key(&self.key_prefix, name);
        info!("importing service `{name}` from `{key}`");
        while !self.stop.load(Ordering::Relaxed) {
            let (ticket, request) = match server.recv_request_timeout(STOP_CHECK) {
                Ok(r) => (r.ticket(), r.to_vec()),
                Err(Error::Timeout | Error::Interrupted) => continue,
                Err(e) => {
                    warn!("imported service `{name}`: receiving a request failed: {e}; no longer serving it");
                    return;
                }
            };
            let answer = self.forward(name, &key, request);
            let sent = match answer {
                Ok(reply) => match server.reply(ticket, &reply) {
                    Err(e) => server.reply_error(
                        ticket,
                        &format!("the remote reply could not be passed on: {e}"),
                    ),
                    ok => ok,
                },
                Err(message) => server.reply_error(ticket, &message),
            };
            if let Err(e) = sent {
                warn!("imported service `{name}`: cannot answer a local call: {e}");
            }
        }
    }

    /// One remote call: the first reply's bytes, or the error text for the
    /// local caller.
    fn forward(&self, name: &str, key: &str, request: Vec<u8>) -> Result<Vec<u8>, String> {
        let replies = self
            .session
            .get(key)
            .payload(request)
            .allowed_destination(Locality::Remote)
            .timeout(self.call_timeout)
            .wait()
            .map_err(|e| format!("cannot query Zenoh key `{key}`: {e}"))?;
        // Zenoh closes the channel after the last reply, at once when no
        // queryable matches, or with a "Timeout" error reply.
        let deadline = Instant::now() + self.call_timeout + Duration::from_secs(1);
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return Err(format!(
                    "the bridge importing service `{name}` is shutting down"
                ));
            }
            if Instant::now() >= deadline {
                return Err(timeout_text(name, self.call_timeout));
            }
            match replies.recv_timeout(STOP_CHECK) {
                Ok(Some(reply)) => {
                    return match reply.result() {
                        Ok(sample) => Ok(sample.payload().to_bytes().into_owned()),
                        Err(err) => {
                            let text = err.payload().try_to_string().map_or_else(
                                |_| String::from_utf8_lossy(&err.payload().to_bytes()).into_owned(),
                                |s| s.into_owned(),
                            );
                            Err(if text == "Timeout" {
                                timeout_text(name, self.call_timeout)
                            } else {
                                text
                            })
                        }
                    };
                }
                Ok(None) => continue,
                Err(_) => {
                    return Err(format!(
                        "no remote server for service `{name}`: no bridge exports it on Zenoh key `{key}` (run `shmbus bridge --export-service {name}` where it is served)"
                    ))
                }
            }
        }
    }
}

fn timeout_text(name: &str, timeout: Duration) -> String {
    format!(
        "no reply from the remote service `{name}` within {} ms (--call-timeout-ms)",
        timeout.as_millis()
    )
}

/// The error text an exporting bridge sends back for a failed local call.
fn remote_error_text(name: &str, e: &Error) -> String {
    match e {
        // The service's own error reply: passed on as it is.
        Error::Remote { message, .. } => message.clone(),
        Error::Timeout => format!("service `{name}` on the remote bus did not reply in time"),
        _ => format!("on the remote bus: {e}"),
    }
}
