//! The event loop: one thread, one `mio` poll over the listening socket, the
//! signal pipe and every connection, woken otherwise only by the reap timer.
//!
//! Idle, the daemon sleeps in `epoll_wait` until the next reap tick (every
//! 250 ms by default), so it uses no CPU. Each tick reaps dead clients on
//! every topic and closes connections that stalled. Connections are capped
//! (`max_connections`); one more is told "busy" and closed at once, so the
//! listen backlog never fills with clients that would wait forever.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use mio::net::UnixListener;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use shmbus::control::{ErrorReply, Outcome};

use crate::access::Peer;
use crate::config::Config;
use crate::connection::{Connection, Next};
use crate::outgoing::encode_reply;
use crate::requests::Daemon;
use crate::signals::{SignalEvent, Signals};

const LISTENER: Token = Token(0);
const SIGNALS: Token = Token(1);
const FIRST_CONNECTION: usize = 2;

/// Why the loop ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Exit {
    /// SIGTERM or SIGINT.
    Signal(&'static str),
}

/// The running server.
pub struct Server {
    poll: Poll,
    listener: UnixListener,
    socket_path: PathBuf,
    signals: Signals,
    connections: HashMap<Token, Connection>,
    next_token: usize,
    /// Connections whose budget ran out with work left.
    again: VecDeque<Token>,
    /// `accept` failed for lack of file descriptors; retry on the next tick
    /// (the edge-triggered listener will not report the waiting clients).
    accept_stalled: bool,
    /// A descriptor held in reserve: at the open-file limit it is given up
    /// for a moment to accept a waiting client and tell it why, instead of
    /// leaving it to time out.
    spare: Option<std::fs::File>,
    /// When the open-file limit was last logged (at most every 10 s).
    fd_warned: Option<Instant>,
    /// When the segment files are next checked for removal or truncation.
    next_vanished_check: Instant,
    daemon: Daemon,
}

/// How often the segment files of every topic are checked for removal or
/// truncation behind the daemon's back (two `statx` per topic): not every
/// reap tick, so that an idle daemon with many topics stays idle (at 100
/// topics, every 250 ms tick made 800 calls a second).
const VANISHED_CHECK: std::time::Duration = std::time::Duration::from_secs(2);

impl Server {
    /// A server for `daemon` on `listener`, taking signals from `signals`.
    pub fn new(
        daemon: Daemon,
        mut listener: UnixListener,
        socket_path: PathBuf,
        signals: Signals,
    ) -> std::io::Result<Server> {
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        poll.registry()
            .register(&mut SourceFd(&signals.fd()), SIGNALS, Interest::READABLE)?;
        Ok(Server {
            poll,
            listener,
            socket_path,
            signals,
            connections: HashMap::new(),
            next_token: FIRST_CONNECTION,
            again: VecDeque::new(),
            accept_stalled: false,
            spare: std::fs::File::open("/dev/null").ok(),
            fd_warned: None,
            next_vanished_check: Instant::now() + VANISHED_CHECK,
            daemon,
        })
    }

    /// The daemon state (for shutdown after the loop).
    pub fn into_daemon(self) -> Daemon {
        self.daemon
    }

    /// Serves until SIGTERM/SIGINT.
    pub fn run(&mut self) -> std::io::Result<Exit> {
        let mut events = Events::with_capacity(256);
        let mut next_tick = Instant::now() + self.daemon.config.reap_interval;
        loop {
            let timeout = if self.again.is_empty() {
                next_tick.saturating_duration_since(Instant::now())
            } else {
                Duration::ZERO
            };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept_all(),
                    SIGNALS => {
                        for sig in self.signals.drain() {
                            match sig {
                                SignalEvent::Shutdown(name) => return Ok(Exit::Signal(name)),
                                SignalEvent::Reload => self.reload(),
                                SignalEvent::DumpStats => {
                                    self.daemon.topics.log_stats();
                                    crate::services::log_stats(&self.daemon.bus);
                                }
                            }
                        }
                    }
                    token => self.drive(token),
                }
            }
            for _ in 0..self.again.len() {
                if let Some(token) = self.again.pop_front() {
                    self.drive(token);
                }
            }
            let now = Instant::now();
            if now >= next_tick {
                self.tick(now);
                next_tick = now + self.daemon.config.reap_interval;
            }
        }
    }

    /// The periodic work: forget topics whose segments vanished (every
    /// [`VANISHED_CHECK`]), reap dead clients, close stalled connections,
    /// retry a stalled accept.
    fn tick(&mut self, now: Instant) {
        if now >= self.next_vanished_check {
            self.next_vanished_check = now + VANISHED_CHECK;
            if self.daemon.topics.drop_vanished() > 0 {
                // Topics the config lists come back at once.
                self.daemon.create_config_topics();
            }
        }
        self.daemon.topics.reap();
        self.deliver_announcements();
        let (request_timeout, idle_timeout) = (
            self.daemon.config.request_timeout,
            self.daemon.config.idle_timeout,
        );
        let expired: Vec<(Token, &'static str)> = self
            .connections
            .iter()
            .filter_map(|(t, c)| {
                c.expired(now, request_timeout, idle_timeout)
                    .map(|r| (*t, r))
            })
            .collect();
        for (token, reason) in expired {
            self.close(token, reason);
        }
        if self.accept_stalled {
            self.accept_all();
        }
    }

    /// At the open-file limit: frees the spare descriptor, accepts one
    /// waiting client, tells it why it cannot be served, closes it, and takes
    /// the spare back. Returns whether a client was answered.
    fn refuse_with_spare(&mut self) -> bool {
        if self.spare.take().is_none() {
            return false;
        }
        let answered = match self.listener.accept() {
            Ok((mut stream, _)) => {
                let busy = encode_reply(
                    0,
                    Outcome::Error(ErrorReply::Busy {
                        message: format!(
                            "shmbusd is out of file descriptors ({} connections open): raise its open-file limit (ulimit -n, LimitNOFILE=) and try again",
                            self.connections.len()
                        ),
                    }),
                );
                let _ = stream.write(&busy);
                true
            }
            Err(_) => false,
        };
        self.spare = std::fs::File::open("/dev/null").ok();
        answered
    }

    fn accept_all(&mut self) {
        self.accept_stalled = false;
        loop {
            let (mut stream, _) = match self.listener.accept() {
                Ok(pair) => pair,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                    if self
                        .fd_warned
                        .is_none_or(|t| t.elapsed() >= Duration::from_secs(10))
                    {
                        tracing::warn!(
                            "cannot accept control connections: {e} ({} open); raise the open-file limit or lower max_connections",
                            self.connections.len()
                        );
                        self.fd_warned = Some(Instant::now());
                    }
                    if self.refuse_with_spare() {
                        continue;
                    }
                    self.accept_stalled = true;
                    return;
                }
                Err(e) => {
                    tracing::warn!("accept on the control socket failed: {e}");
                    continue;
                }
            };
            if self.connections.len() >= self.daemon.config.max_connections {
                let busy = encode_reply(
                    0,
                    Outcome::Error(ErrorReply::Busy {
                        message: format!(
                            "shmbusd has {} control connections, its limit (max_connections): try again later",
                            self.connections.len()
                        ),
                    }),
                );
                // Best effort: a fresh socket's buffer takes a small reply.
                let _ = stream.write(&busy);
                tracing::debug!("refused a connection: at max_connections");
                continue;
            }
            let peer = match Peer::of(&stream) {
                Ok(peer) => peer,
                Err(e) => {
                    tracing::warn!("cannot read peer credentials of a connection: {e}");
                    continue;
                }
            };
            let token = Token(self.next_token);
            self.next_token += 1;
            if let Err(e) = self.poll.registry().register(
                &mut stream,
                token,
                Interest::READABLE | Interest::WRITABLE,
            ) {
                tracing::warn!("cannot watch a control connection: {e}");
                continue;
            }
            tracing::trace!(
                "connection {} from pid {} uid {}",
                token.0,
                peer.pid,
                peer.uid
            );
            self.connections
                .insert(token, Connection::new(stream, peer));
            // Registration is edge-triggered but reports data already there,
            // so the request that came with the connect is not missed.
        }
    }

    fn drive(&mut self, token: Token) {
        let Some(conn) = self.connections.get_mut(&token) else {
            return;
        };
        let daemon = &mut self.daemon;
        let next = conn.drive(|peer, body| daemon.handle_frame(token.0, peer, body));
        conn.watching = daemon.watchers.is_watching(token.0);
        self.after_drive(token, next);
        self.deliver_announcements();
    }

    fn after_drive(&mut self, token: Token, next: Next) {
        if let Some(conn) = self.connections.get_mut(&token) {
            if conn.watching {
                if conn.take_wrote() {
                    self.daemon.watchers.bump(token.0);
                }
                self.daemon.watchers.set_unsent(token.0, conn.queued());
            }
        }
        match next {
            Next::Wait => {}
            Next::Again => {
                if !self.again.contains(&token) {
                    self.again.push_back(token);
                }
            }
            Next::Close(reason) => self.close(token, reason),
        }
    }

    /// Hands the announcements that requests queued (topics born) to their
    /// watching connections and writes them; a connection that let too many
    /// pile up is closed (`watchers::MAX_PENDING`).
    fn deliver_announcements(&mut self) {
        for conn_id in self.daemon.watchers.with_outbox() {
            let token = Token(conn_id);
            let frames = self.daemon.watchers.take_outbox(conn_id);
            let Some(conn) = self.connections.get_mut(&token) else {
                continue;
            };
            for frame in frames {
                conn.push(frame);
            }
            if conn.queued() > crate::watchers::MAX_PENDING {
                tracing::warn!(
                    "pattern subscriber pid {} stopped reading: more than {} announcements wait; dropping its subscription (it reconnects and reports what it lost)",
                    conn.peer.pid,
                    crate::watchers::MAX_PENDING
                );
                self.close(token, "fell too far behind the announcements");
                continue;
            }
            let daemon = &mut self.daemon;
            let next = conn.drive(|peer, body| daemon.handle_frame(conn_id, peer, body));
            self.after_drive(token, next);
        }
    }

    fn close(&mut self, token: Token, reason: &str) {
        self.daemon.watchers.remove(token.0);
        if let Some(mut conn) = self.connections.remove(&token) {
            tracing::debug!(
                "closing connection {} (pid {}, uid {}): {reason}",
                token.0,
                conn.peer.pid,
                conn.peer.uid
            );
            let _ = self.poll.registry().deregister(&mut conn.stream);
        }
    }

    /// SIGHUP: read the config file again. A bad file keeps the old config.
    fn reload(&mut self) {
        let Some(path) = self.daemon.config.source.clone() else {
            tracing::info!("SIGHUP: no config file was given, nothing to reload");
            return;
        };
        let config = match Config::load(&path) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("SIGHUP: keeping the old config: {e}");
                return;
            }
        };
        let group = config.socket_group.as_ref();
        let perms = match self.socket_path.parent() {
            Some(dir) => crate::rundir::prepare(dir, group),
            None => Ok(()),
        };
        if let Err(e) =
            perms.and_then(|()| crate::rundir::apply_socket_perms(&self.socket_path, group))
        {
            tracing::error!("SIGHUP: keeping the old config: {e}");
            return;
        }
        self.daemon.config = config;
        self.daemon.create_config_topics();
        self.deliver_announcements();
        let access = self.daemon.config.access.clone();
        self.daemon
            .topics
            .reapply_perms(|t| access.segment_perms(t));
        tracing::info!("SIGHUP: reloaded config {}", path.display());
    }
}
