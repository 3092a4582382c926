//! The client side of the control protocol: [`Bus`] asks `shmbusd` to open,
//! create, remove, list and measure topics, then attaches publishers and
//! subscribers straight to the topic's segments.
//!
//! The daemon is needed only to *set up*: once a [`Publisher`] or
//! [`Subscriber`] is attached, messages flow through shared memory and the
//! daemon may stop, crash or restart without the client noticing.
//!
//! ```no_run
//! use shmbus::{Bus, SubscribeOptions};
//! let bus = Bus::connect("default")?;
//! let mut publisher = bus.publisher("sensors/imu")?;
//! let mut subscriber = bus.subscriber("sensors/imu", SubscribeOptions::default())?;
//! publisher.send(b"hello")?;
//! assert_eq!(subscriber.recv()?.data, b"hello");
//! # Ok::<(), shmbus::Error>(())
//! ```
//!
//! # Whom a client trusts
//!
//! Before it sends anything, a client checks the runtime directory and the
//! socket in it, and then who answers: a directory that another user could
//! write to, or a socket or daemon of an unexpected uid, could be an
//! impostor's. The trusted uids are the caller's own, root's and, for a
//! directory the user named (`SHMBUS_RUNTIME_DIR`, `--runtime-dir`: a system
//! daemon's `/run/shmbus`), the directory's owner. The daemon's uid, from
//! `SO_PEERCRED`, is then the owner every segment must have (see
//! [`crate::segment`]'s *Identity*), and the daemon's reply to `open`
//! carries the nonce the mapped headers must hold.
//!
//! Each request uses a fresh connection to the control socket. A `Bus` so
//! holds no connection between calls: it is `Send + Sync`, starts no thread,
//! and a daemon restart between two calls is invisible to it.

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::control::{
    decode_reply, encode_frame, FrameReader, Op, Outcome, ReplyBody, Request, Role, TopicInfo,
    MAX_REPLY_LEN, MAX_REQUEST_LEN, PROTOCOL_VERSION,
};
use crate::error::{Error, Result};
use crate::layout::TopicConfig;
use crate::names::{default_runtime_dir, socket_path, validate_bus, validate_topic, DEFAULT_BUS};
use crate::publisher::Publisher;
use crate::segment::euid;
use crate::subscriber::{SubscribeOptions, Subscriber};
use crate::topic::TopicStats;
use crate::topic::{SegmentIdentity, TopicTrust};

/// How long a client waits for the daemon to answer one request. The daemon
/// answers from memory, so this only matters when it is stopped (SIGSTOP) or
/// wedged; the call then fails instead of hanging.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// Where to find a bus.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BusOptions {
    /// The bus name (`[A-Za-z0-9_-]{1,32}`).
    pub name: String,
    /// The directory holding the daemon's socket; `None` for the default
    /// (`SHMBUS_RUNTIME_DIR`, else `$XDG_RUNTIME_DIR/shmbus`, else
    /// `/tmp/shmbus-<uid>`).
    pub runtime_dir: Option<PathBuf>,
}

impl Default for BusOptions {
    /// The bus named by `SHMBUS_BUS`, else `default`, in the default runtime
    /// directory.
    fn default() -> Self {
        let name = std::env::var("SHMBUS_BUS")
            .ok()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| DEFAULT_BUS.to_string());
        BusOptions {
            name,
            runtime_dir: None,
        }
    }
}

/// A connection to one bus's daemon (see the module docs).
#[derive(Debug)]
pub struct Bus {
    name: String,
    runtime_dir: PathBuf,
    socket: PathBuf,
    next_id: AtomicU64,
    /// The uids this client trusts to run the daemon (see the module docs).
    trusted: [u32; 3],
    /// The daemon's uid, as the kernel reported it at connection.
    daemon_uid: u32,
}

impl Clone for Bus {
    fn clone(&self) -> Bus {
        Bus {
            name: self.name.clone(),
            runtime_dir: self.runtime_dir.clone(),
            socket: self.socket.clone(),
            next_id: AtomicU64::new(self.next_id.load(Ordering::Relaxed)),
            trusted: self.trusted,
            daemon_uid: self.daemon_uid,
        }
    }
}

impl Bus {
    /// Connects to the bus `name` in the default runtime directory.
    ///
    /// Fails with [`Error::InvalidName`] for a bad name and
    /// [`Error::NoDaemon`] when no `shmbusd` serves the bus.
    pub fn connect(name: &str) -> Result<Bus> {
        Bus::connect_with(&BusOptions {
            name: name.to_string(),
            runtime_dir: None,
        })
    }

    /// Connects to the bus described by `opts`, checking that a daemon
    /// serving that bus answers in a protocol version this crate speaks.
    pub fn connect_with(opts: &BusOptions) -> Result<Bus> {
        validate_bus(&opts.name)?;
        let named = opts.runtime_dir.is_some()
            || std::env::var_os("SHMBUS_RUNTIME_DIR").is_some_and(|d| !d.is_empty());
        let runtime_dir = opts.runtime_dir.clone().unwrap_or_else(default_runtime_dir);
        let mut bus = Bus {
            socket: socket_path(&runtime_dir, &opts.name),
            name: opts.name.clone(),
            runtime_dir,
            next_id: AtomicU64::new(1),
            trusted: [euid(), 0, euid()],
            daemon_uid: u32::MAX,
        };
        bus.trusted[2] = bus.check_runtime_dir(named)?;
        bus.check_socket()?;
        let stream = bus.dial_unchecked()?;
        bus.daemon_uid = bus.peer_uid(&stream)?;
        let hello = Op::Hello {
            client: format!(
                "shmbus {} (pid {})",
                env!("CARGO_PKG_VERSION"),
                std::process::id()
            ),
        };
        match bus.request_on(stream, hello)? {
            ReplyBody::Hello { bus: served, .. } if served == bus.name => Ok(bus),
            ReplyBody::Hello { bus: served, .. } => Err(Error::Protocol(format!(
                "socket {} is served by shmbusd for bus `{served}`, not `{}`",
                bus.socket.display(),
                bus.name
            ))),
            other => Err(unexpected("hello", &other)),
        }
    }

    /// The bus name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The runtime directory holding the daemon's socket.
    pub fn runtime_dir(&self) -> &Path {
        &self.runtime_dir
    }

    /// The daemon's control socket.
    pub fn socket_path(&self) -> &Path {
        &self.socket
    }

    /// Opens `topic` for publishing: the daemon checks the caller's right
    /// and creates the topic with its defaults if it does not exist (when
    /// auto-create is on); the publisher then attaches to the segments.
    ///
    /// The segments must be the daemon's: owned by its uid, in the modes and
    /// with the nonce it announced ([`Error::Untrusted`] otherwise).
    pub fn publisher(&self, topic: &str) -> Result<Publisher> {
        let trust = self.open_checked(topic, Role::Publish)?;
        crate::crash::point("attach.announced");
        Publisher::attach_trusted(&self.name, topic, &trust)
    }

    /// Opens `topic` for subscribing, like [`Bus::publisher`].
    pub fn subscriber(&self, topic: &str, opts: SubscribeOptions) -> Result<Subscriber> {
        let trust = self.open_checked(topic, Role::Subscribe)?;
        crate::crash::point("attach.announced");
        Subscriber::attach_trusted(&self.name, topic, opts, &trust)
    }

    /// Asks the daemon to make sure `topic` exists and that the caller may
    /// use it in `role`; returns the topic's summary and whether this call
    /// created it.
    pub fn open(&self, topic: &str, role: Role) -> Result<(TopicInfo, bool)> {
        self.open_request(topic, role)
            .map(|(info, created, _)| (info, created))
    }

    /// `open`, and what the segments must be to be trusted.
    fn open_checked(&self, topic: &str, role: Role) -> Result<TopicTrust> {
        match self.open_request(topic, role)? {
            (_, _, Some(id)) => Ok(TopicTrust::announced(self.daemon_uid, id)),
            (_, _, None) => Err(Error::Protocol(format!(
                "shmbusd did not announce the segments of `{topic}` (a daemon older than this library): upgrade shmbusd"
            ))),
        }
    }

    fn open_request(
        &self,
        topic: &str,
        role: Role,
    ) -> Result<(TopicInfo, bool, Option<SegmentIdentity>)> {
        validate_topic(topic)?;
        let op = Op::Open {
            topic: topic.to_string(),
            role,
        };
        match self.request(op)? {
            ReplyBody::Opened {
                info,
                created,
                segments,
            } => Ok((info, created, segments)),
            other => Err(unexpected("open", &other)),
        }
    }

    /// The uid of the daemon serving this bus, as the kernel reported it.
    pub fn daemon_uid(&self) -> u32 {
        self.daemon_uid
    }

    /// Checks the runtime directory (see the module docs) and returns its
    /// owner. A missing directory means no daemon.
    fn check_runtime_dir(&self, named: bool) -> Result<u32> {
        let dir = &self.runtime_dir;
        let meta = match std::fs::symlink_metadata(dir) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(self.no_daemon()),
            Err(e) => {
                return Err(Error::io(
                    format!("cannot inspect runtime directory {}", dir.display()),
                    e,
                ))
            }
        };
        let untrusted = |why: String| Error::Untrusted {
            what: "runtime directory",
            path: dir.display().to_string(),
            why,
        };
        let owner = meta.uid();
        let mode = meta.mode() & 0o7777;
        if meta.file_type().is_symlink() {
            return Err(untrusted(
                "it is a symbolic link, which whoever can repoint could send you to their own socket; point SHMBUS_RUNTIME_DIR at the real directory".into(),
            ));
        }
        if !meta.is_dir() {
            return Err(untrusted("it is not a directory".into()));
        }
        if !named && owner != euid() && owner != 0 {
            return Err(untrusted(format!(
                "it belongs to uid {owner}, not to you (uid {}) nor root, so its socket could be an impostor's; remove it (`rm -r {d}` as uid {owner} or root), or set SHMBUS_RUNTIME_DIR to the directory of a daemon you trust",
                euid(),
                d = dir.display()
            )));
        }
        if mode & 0o022 != 0 {
            return Err(untrusted(format!(
                "it is writable by {} (mode {mode:04o}), who could replace the daemon's socket; fix with `chmod go-w {}` (as uid {owner} or root)",
                if mode & 0o002 != 0 { "others" } else { "its group" },
                dir.display()
            )));
        }
        Ok(owner)
    }

    /// Checks the control socket's owner (none there: `NoDaemon`).
    fn check_socket(&self) -> Result<()> {
        let meta = match std::fs::symlink_metadata(&self.socket) {
            Ok(meta) => meta,
            // No socket, or no right to see it: connecting says which.
            Err(_) => return Ok(()),
        };
        let owner = meta.uid();
        if !meta.file_type().is_socket() || !self.trusted.contains(&owner) {
            return Err(Error::Untrusted {
                what: "control socket",
                path: self.socket.display().to_string(),
                why: format!(
                    "{} owned by uid {owner}, whom this client does not trust (trusted: {}); remove it (as uid {owner} or root) and restart shmbusd",
                    if meta.file_type().is_socket() { "it is" } else { "it is not a socket, and is" },
                    self.trusted_list()
                ),
            });
        }
        Ok(())
    }

    fn trusted_list(&self) -> String {
        let mut uids: Vec<String> = self.trusted.iter().map(u32::to_string).collect();
        uids.dedup();
        uids.sort();
        uids.dedup();
        uids.join(", ")
    }

    /// The uid of the process at the other end of `stream`, if trusted.
    fn peer_uid(&self, stream: &UnixStream) -> Result<u32> {
        let cred = nix::sys::socket::getsockopt(stream, nix::sys::socket::sockopt::PeerCredentials)
            .map_err(|e| Error::errno("cannot read the control socket's peer credentials", e))?;
        let uid = cred.uid();
        if !self.trusted.contains(&uid) {
            return Err(Error::Untrusted {
                what: "control socket",
                path: self.socket.display().to_string(),
                why: format!(
                    "it is served by pid {} of uid {uid}, whom this client does not trust (trusted: {}); stop that process",
                    cred.pid(),
                    self.trusted_list()
                ),
            });
        }
        Ok(uid)
    }

    /// Creates `topic` with `cfg`. Creating a topic that exists with the same
    /// settings succeeds; with other settings it fails.
    pub fn create_topic(&self, topic: &str, cfg: &TopicConfig) -> Result<TopicInfo> {
        validate_topic(topic)?;
        cfg.validate()?;
        let op = Op::Create {
            topic: topic.to_string(),
            config: cfg.clone(),
        };
        match self.request(op)? {
            ReplyBody::Created { info } => Ok(info),
            other => Err(unexpected("create", &other)),
        }
    }

    /// Removes `topic`: attached clients get [`Error::Closed`] and its
    /// segments are unlinked.
    pub fn remove_topic(&self, topic: &str) -> Result<()> {
        validate_topic(topic)?;
        match self.request(Op::Remove {
            topic: topic.to_string(),
        })? {
            ReplyBody::Removed => Ok(()),
            other => Err(unexpected("remove", &other)),
        }
    }

    /// Every topic of the bus, sorted by name.
    pub fn topics(&self) -> Result<Vec<TopicInfo>> {
        match self.request(Op::List)? {
            ReplyBody::Topics { topics } => Ok(topics),
            other => Err(unexpected("list", &other)),
        }
    }

    /// Detailed statistics of `topic`, or of every topic.
    pub fn stats(&self, topic: Option<&str>) -> Result<Vec<TopicStats>> {
        if let Some(t) = topic {
            validate_topic(t)?;
        }
        match self.request(Op::Stats {
            topic: topic.map(str::to_string),
        })? {
            ReplyBody::Stats { stats } => Ok(stats),
            other => Err(unexpected("stats", &other)),
        }
    }

    /// The live pattern subscriptions the caller may see (its own; every
    /// one for the bus's owner): their patterns and the topics they cover.
    pub fn pattern_subscribers(&self) -> Result<Vec<crate::control::WatcherInfo>> {
        match self.request(Op::Watchers)? {
            ReplyBody::Watchers { watchers } => Ok(watchers),
            other => Err(unexpected("watchers", &other)),
        }
    }

    /// Sends one request on a fresh connection and returns the daemon's
    /// successful reply, or its error mapped to [`Error`].
    pub fn request(&self, op: Op) -> Result<ReplyBody> {
        self.request_on(self.dial()?, op)
    }

    fn request_on(&self, mut stream: UnixStream, op: Op) -> Result<ReplyBody> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let frame = encode_frame(
            &Request {
                v: PROTOCOL_VERSION,
                id,
                op,
            },
            MAX_REQUEST_LEN,
        )?;
        let sent = send_all(&stream, &frame);
        // A daemon that refuses the connection (too many clients) writes its
        // error and closes before reading: prefer its reply to EPIPE.
        let reply = match self.read_reply(&mut stream) {
            Ok(reply) => reply,
            Err(e) => {
                sent.map_err(|e| Error::io("cannot send a request to shmbusd", e))?;
                return Err(e);
            }
        };
        let reply = decode_reply(&reply)?;
        // Id 0 is the daemon's answer to a request it could not read as one
        // (connection limit, oversized frame): its error is the news.
        if let (0, Outcome::Error(e)) = (reply.id, &reply.outcome) {
            return Err(e.clone().into_error());
        }
        if reply.id != id {
            return Err(Error::Protocol(format!(
                "shmbusd answered request {} to request {id}",
                reply.id
            )));
        }
        match reply.outcome {
            Outcome::Ok(body) => Ok(body),
            Outcome::Error(e) => Err(e.into_error()),
        }
    }

    /// A connection to the daemon, which must still run as the uid it ran
    /// as when this `Bus` connected (a restart under another uid is refused).
    pub(crate) fn dial(&self) -> Result<UnixStream> {
        let stream = self.dial_unchecked()?;
        let uid = self.peer_uid(&stream)?;
        if uid != self.daemon_uid {
            return Err(Error::Untrusted {
                what: "control socket",
                path: self.socket.display().to_string(),
                why: format!(
                    "shmbusd ran as uid {} when this client connected and now answers as uid {uid}; connect again",
                    self.daemon_uid
                ),
            });
        }
        Ok(stream)
    }

    fn dial_unchecked(&self) -> Result<UnixStream> {
        let stream = UnixStream::connect(&self.socket).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => self.no_daemon(),
            io::ErrorKind::PermissionDenied => Error::Denied(format!(
                "cannot connect to {}: the socket is open only to shmbusd's user and the groups its config names",
                self.socket.display()
            )),
            _ if e.raw_os_error() == Some(libc::ENOTDIR) => self.no_daemon(),
            _ => Error::io(format!("cannot connect to {}", self.socket.display()), e),
        })?;
        let timeouts = stream
            .set_read_timeout(Some(REPLY_TIMEOUT))
            .and_then(|()| stream.set_write_timeout(Some(REPLY_TIMEOUT)));
        timeouts.map_err(|e| Error::io("cannot set a timeout on the control socket", e))?;
        Ok(stream)
    }

    fn read_reply(&self, stream: &mut UnixStream) -> Result<Vec<u8>> {
        let mut reader = FrameReader::new(MAX_REPLY_LEN);
        loop {
            match reader.next_frame() {
                Ok(Some(body)) => return Ok(body),
                Ok(None) => {}
                Err(e) => return Err(Error::Protocol(format!("bad reply from shmbusd: {e}"))),
            }
            match reader.read_from(stream) {
                Ok(0) => {
                    return Err(Error::Daemon(format!(
                        "shmbusd for bus `{}` closed the connection without answering (is it shutting down?)",
                        self.name
                    )))
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(Error::Daemon(format!(
                        "shmbusd for bus `{}` did not answer within {} s (is it stopped?)",
                        self.name,
                        REPLY_TIMEOUT.as_secs()
                    )))
                }
                Err(e) => return Err(Error::io("cannot read shmbusd's reply", e)),
            }
        }
    }

    fn no_daemon(&self) -> Error {
        Error::NoDaemon {
            bus: self.name.clone(),
            socket: self.socket.clone(),
        }
    }
}

/// Writes all of `buf` with `MSG_NOSIGNAL`: a daemon that closed the
/// connection (busy, shutting down) must give this process `EPIPE`, never a
/// SIGPIPE that would kill a host program that did not ignore it.
pub(crate) fn send_all(stream: &UnixStream, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        // SAFETY: `buf` is a live slice of `buf.len()` readable bytes and
        // the descriptor belongs to `stream` for the whole call.
        let n = unsafe {
            libc::send(
                stream.as_raw_fd(),
                buf.as_ptr().cast(),
                buf.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        // 0 < n <= buf.len().
        buf = &buf[n as usize..];
    }
    Ok(())
}

fn unexpected(op: &str, body: &ReplyBody) -> Error {
    let kind = match body {
        ReplyBody::Hello { .. } => "hello",
        ReplyBody::Opened { .. } => "opened",
        ReplyBody::Created { .. } => "created",
        ReplyBody::Removed => "removed",
        ReplyBody::Topics { .. } => "topics",
        ReplyBody::Stats { .. } => "stats",
        ReplyBody::Watching { .. } => "watching",
        ReplyBody::Born { .. } => "born",
        ReplyBody::Missed { .. } => "missed",
        ReplyBody::Watchers { .. } => "watchers",
    };
    Error::Protocol(format!("shmbusd answered `{op}` with `{kind}`"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::LEN_PREFIX;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixListener;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn bus_is_send_and_sync() {
        assert_send_sync::<Bus>();
    }

    #[test]
    fn no_daemon_names_bus_and_socket() {
        let dir = tempdir();
        let err = Bus::connect_with(&BusOptions {
            name: "nobody-here".into(),
            runtime_dir: Some(dir.clone()),
        })
        .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::NoDaemon { .. }), "{text}");
        assert!(text.contains("shmbusd --bus nobody-here"), "{text}");
        assert!(text.contains(&dir.display().to_string()), "{text}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn bad_bus_name_is_refused_before_connecting() {
        let err = Bus::connect("a.b").unwrap_err();
        assert!(matches!(err, Error::InvalidName { kind: "bus", .. }));
    }

    /// A peer that reads one request and answers with `answer`, to check that
    /// a broken daemon yields errors, never a hang or a panic.
    fn serve_once(answer: Vec<u8>) -> (PathBuf, std::thread::JoinHandle<()>) {
        let dir = tempdir();
        let listener = UnixListener::bind(socket_path(&dir, "b")).unwrap();
        let handle = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut len = [0u8; LEN_PREFIX];
            s.read_exact(&mut len).unwrap();
            let mut body = vec![0; u32::from_le_bytes(len) as usize];
            s.read_exact(&mut body).unwrap();
            let _ = s.write_all(&answer);
        });
        (dir, handle)
    }

    fn bus_at(dir: &Path) -> Bus {
        Bus {
            name: "b".into(),
            runtime_dir: dir.to_path_buf(),
            socket: socket_path(dir, "b"),
            next_id: AtomicU64::new(1),
            trusted: [euid(), 0, euid()],
            daemon_uid: euid(),
        }
    }

    #[test]
    fn broken_replies_are_errors() {
        let huge = u32::MAX.to_le_bytes().to_vec();
        let truncated = [&20u32.to_le_bytes()[..], b"{\"v\":1"].concat();
        let garbage = [&3u32.to_le_bytes()[..], b"xyz"].concat();
        let wrong_id = encode_frame(
            &crate::control::Reply {
                v: 1,
                id: 99,
                outcome: Outcome::Ok(ReplyBody::Removed),
            },
            MAX_REPLY_LEN,
        )
        .unwrap();
        for answer in [huge, truncated, garbage, wrong_id] {
            let (dir, handle) = serve_once(answer);
            let err = bus_at(&dir).request(Op::List).unwrap_err();
            assert!(
                matches!(err, Error::Protocol(_) | Error::Daemon(_)),
                "{err}"
            );
            handle.join().unwrap();
            std::fs::remove_dir_all(dir).unwrap();
        }
    }

    #[test]
    fn an_error_without_a_request_id_is_reported_as_is() {
        let reply = encode_frame(
            &crate::control::Reply {
                v: 1,
                id: 0,
                outcome: Outcome::Error(crate::control::ErrorReply::Busy {
                    message: "shmbusd has 2 control connections, its limit".into(),
                }),
            },
            MAX_REPLY_LEN,
        )
        .unwrap();
        let (dir, handle) = serve_once(reply);
        let err = bus_at(&dir).request(Op::List).unwrap_err();
        assert!(
            matches!(&err, Error::Daemon(m) if m.contains("its limit")),
            "{err}"
        );
        handle.join().unwrap();
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn writing_to_a_closed_daemon_connection_is_epipe_not_sigpipe() {
        // In a child with SIGPIPE at its default action (the test harness
        // ignores it): a plain write to a closed peer would kill it.
        // SAFETY: the child calls only async-signal-safe functions
        // (signal, socketpair via std, close, send, _exit), so forking a
        // multi-threaded test process is sound.
        match unsafe { nix::unistd::fork() }.expect("fork") {
            nix::unistd::ForkResult::Child => {
                // SAFETY: restoring the default action of SIGPIPE, and
                // unblocking it in case the forking thread had it blocked.
                unsafe {
                    libc::signal(libc::SIGPIPE, libc::SIG_DFL);
                    let mut set: libc::sigset_t = std::mem::zeroed();
                    libc::sigemptyset(&mut set);
                    libc::sigaddset(&mut set, libc::SIGPIPE);
                    libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
                }
                let code = match UnixStream::pair() {
                    Ok((a, b)) => {
                        drop(b);
                        match send_all(&a, b"request") {
                            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => 0,
                            _ => 1,
                        }
                    }
                    Err(_) => 2,
                };
                // SAFETY: leaving the child without running the parent's
                // atexit handlers or destructors.
                unsafe { libc::_exit(code) }
            }
            nix::unistd::ForkResult::Parent { child } => {
                let status = nix::sys::wait::waitpid(child, None).expect("waitpid");
                assert_eq!(status, nix::sys::wait::WaitStatus::Exited(child, 0));
            }
        }
    }

    #[test]
    fn daemon_errors_become_library_errors() {
        let reply = encode_frame(
            &crate::control::Reply {
                v: 1,
                id: 1,
                outcome: Outcome::Error(crate::control::ErrorReply::NoSuchTopic {
                    message: "no topic".into(),
                    topic: "t".into(),
                }),
            },
            MAX_REPLY_LEN,
        )
        .unwrap();
        let (dir, handle) = serve_once(reply);
        let err = bus_at(&dir).remove_topic("t").unwrap_err();
        assert!(matches!(err, Error::NoSuchTopic(t) if t == "t"));
        handle.join().unwrap();
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn tempdir() -> PathBuf {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "shmbus-bus-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
