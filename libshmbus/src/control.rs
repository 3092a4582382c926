//! The control protocol between `shmbusd` and its clients: message types,
//! framing, and the mapping of wire errors to [`Error`].
//!
//! The control socket carries only management (open, create, remove, list,
//! stats); messages never travel through it. Each direction is a stream of
//! frames:
//!
//! ```text
//! +----------------------+------------------------------+
//! | length: u32 LE       | body: `length` bytes of JSON |
//! +----------------------+------------------------------+
//! ```
//!
//! A request body is at most [`MAX_REQUEST_LEN`] bytes, a reply body at most
//! [`MAX_REPLY_LEN`]; a peer that announces more is cut off before anything is
//! allocated for the body. Every request carries the protocol version `v` and
//! an `id` that the reply echoes:
//!
//! ```text
//! -> {"v":1,"id":7,"op":"open","topic":"sensors/imu","role":"publish"}
//! <- {"v":1,"id":7,"ok":{"reply":"opened","created":true,"info":{...}}}
//! <- {"v":1,"id":7,"error":{"kind":"denied","message":"uid 1001 may not publish to `sensors/imu`"}}
//! ```
//!
//! Decoding is total: any byte stream fed to [`FrameReader`] and
//! [`decode_request`]/[`decode_reply`] ends in a value or a typed error, with
//! memory bounded by the frame limit, and never panics (checked by the
//! proptests below). `docs/control-protocol.md` describes the wire format for
//! writers of clients in other languages.

use std::io::{self, Read};

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::layout::TopicConfig;
use crate::topic::TopicStats;

/// A topic as listed by the daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicInfo {
    /// Topic name.
    pub topic: String,
    /// Its settings.
    pub config: TopicConfig,
    /// Live publishers attached now.
    pub publishers: u32,
    /// Live subscribers attached now.
    pub subscribers: u32,
    /// Messages published so far (the next sequence number).
    pub published: u64,
    /// Shared memory the topic reserves, in bytes.
    pub memory_bytes: u64,
}

impl TopicInfo {
    /// The summary of a topic from its settings and a stats snapshot.
    pub fn new(config: TopicConfig, stats: &TopicStats) -> TopicInfo {
        TopicInfo {
            topic: stats.topic.clone(),
            memory_bytes: stats.memory_bytes,
            config,
            publishers: stats.publishers,
            subscribers: stats.subscribers,
            published: stats.published,
        }
    }
}

/// Version of the protocol spoken by this crate. A daemon answers a request of
/// another version with [`ErrorReply::UnsupportedVersion`].
pub const PROTOCOL_VERSION: u32 = 1;
/// Bytes of the length prefix of a frame.
pub const LEN_PREFIX: usize = 4;
/// Largest request body the daemon accepts (64 KiB): a request names one
/// topic and one config, so anything bigger is hostile or broken.
pub const MAX_REQUEST_LEN: usize = 64 * 1024;
/// Largest reply body a client accepts (16 MiB): replies list every topic and
/// subscriber of a bus, so they may be much larger than requests.
pub const MAX_REPLY_LEN: usize = 16 * 1024 * 1024;

/// What a client means to do with a topic it opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Attach a publisher.
    Publish,
    /// Attach a subscriber.
    Subscribe,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Publish => "publish",
            Role::Subscribe => "subscribe",
        })
    }
}

/// One request from a client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Protocol version the client speaks ([`PROTOCOL_VERSION`]).
    pub v: u32,
    /// Chosen by the client; echoed in the reply.
    pub id: u64,
    /// What is asked.
    #[serde(flatten)]
    pub op: Op,
}

/// The operations of the protocol.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Op {
    /// Checks that a daemon serves the bus and speaks this version.
    Hello {
        /// Free text naming the client, for the daemon's log.
        #[serde(default)]
        client: String,
    },
    /// Makes sure a topic exists before the client attaches to its segments;
    /// the daemon creates it with its defaults when auto-create is on.
    Open {
        /// Topic name.
        topic: String,
        /// Publish or subscribe (checked against the access rules).
        role: Role,
    },
    /// Creates a topic with explicit settings.
    Create {
        /// Topic name.
        topic: String,
        /// The topic's settings.
        config: TopicConfig,
    },
    /// Closes a topic (waking every waiter with `Closed`) and unlinks it.
    Remove {
        /// Topic name.
        topic: String,
    },
    /// Lists every topic of the bus.
    List,
    /// Detailed statistics of one topic, or of all.
    Stats {
        /// One topic, or `None` for all.
        #[serde(default)]
        topic: Option<String>,
    },
    /// Registers this connection as a pattern subscription: the daemon
    /// answers with the matching topics that exist now and, on this same
    /// connection for as long as it stays open, announces every matching
    /// topic it creates later ([`ReplyBody::Born`]). See
    /// `docs/control-protocol.md`, *Pattern subscriptions*.
    Watch {
        /// Topic patterns ([`crate::pattern::Pattern`]); at most
        /// [`MAX_WATCH_PATTERNS`].
        patterns: Vec<String>,
    },
    /// Lists the live pattern subscriptions.
    Watchers,
}

/// Most patterns one [`Op::Watch`] may name.
pub const MAX_WATCH_PATTERNS: usize = 64;

/// One reply from the daemon.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Reply {
    /// Protocol version of the daemon.
    pub v: u32,
    /// The id of the request this answers (0 when the request's id could not
    /// be read).
    pub id: u64,
    /// Success or failure.
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// Success or failure of a request.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The request was carried out.
    Ok(ReplyBody),
    /// The request failed; nothing was changed.
    Error(ErrorReply),
}

/// What a successful request returns.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "kebab-case")]
pub enum ReplyBody {
    /// Answer to [`Op::Hello`].
    Hello {
        /// Protocol version of the daemon.
        version: u32,
        /// The bus the daemon serves.
        bus: String,
        /// The daemon's pid.
        pid: u32,
        /// The daemon's name and version.
        daemon: String,
    },
    /// Answer to [`Op::Open`]: the topic exists now.
    Opened {
        /// The topic.
        info: TopicInfo,
        /// Whether this request created it.
        created: bool,
        /// The segments' nonce and modes, which the client checks on the
        /// files it maps (absent from daemons before segment identity; a
        /// client then refuses to attach).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        segments: Option<crate::topic::SegmentIdentity>,
    },
    /// Answer to [`Op::Create`].
    Created {
        /// The new topic.
        info: TopicInfo,
    },
    /// Answer to [`Op::Remove`].
    Removed,
    /// Answer to [`Op::List`].
    Topics {
        /// Every topic, sorted by name.
        topics: Vec<TopicInfo>,
    },
    /// Answer to [`Op::Stats`].
    Stats {
        /// One entry per topic asked for, sorted by name.
        stats: Vec<TopicStats>,
    },
    /// Answer to [`Op::Watch`]. The frame carries one descriptor
    /// (`SCM_RIGHTS`): the subscription's wake page, a sealed 4 KiB memfd
    /// whose first `u32` the daemon bumps (and `FUTEX_WAKE`s) after each
    /// announcement it writes to the connection.
    Watching {
        /// The matching topics that exist now, sorted by name.
        topics: Vec<WatchedTopic>,
    },
    /// An announcement on a watching connection (request id 0): the daemon
    /// created a topic the subscription matches and, before anyone could
    /// use it, attached a subscriber for it at sequence 0. The frame carries
    /// one descriptor: a fresh open file description of the topic's subs
    /// segment that holds that entry's liveness lock, so the entry lives
    /// exactly as long as the subscriber holds the descriptor.
    Born {
        /// The new topic.
        topic: String,
        /// The subscriber entry held for the subscription.
        entry: u32,
        /// The segments' nonce and modes.
        segments: crate::topic::SegmentIdentity,
    },
    /// An announcement on a watching connection (request id 0): the daemon
    /// created a matching topic but could not hold an entry for the
    /// subscription (no descriptor is attached).
    Missed {
        /// The new topic.
        topic: String,
        /// Why, and what to do.
        message: String,
    },
    /// Answer to [`Op::Watchers`].
    Watchers {
        /// One entry per live pattern subscription.
        watchers: Vec<WatcherInfo>,
    },
}

/// A topic a pattern subscription matches, as listed in
/// [`ReplyBody::Watching`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchedTopic {
    /// Topic name.
    pub topic: String,
    /// The segments' nonce and modes.
    pub segments: crate::topic::SegmentIdentity,
}

/// A live pattern subscription, as [`ReplyBody::Watchers`] lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatcherInfo {
    /// The subscriber's pid (from the kernel, `SO_PEERCRED`).
    pub pid: u32,
    /// The subscriber's uid.
    pub uid: u32,
    /// Its patterns.
    pub patterns: Vec<String>,
    /// The existing topics they cover that the subscriber may read.
    pub topics: Vec<String>,
    /// Announcements not yet written to its connection.
    pub pending: usize,
}

/// A failed request, by kind. Each kind carries what a client needs to
/// rebuild the matching [`Error`] (see [`ErrorReply::into_error`]); every
/// kind also has a `message` that a client in any language can show as is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ErrorReply {
    /// The frame was not a valid request (bad JSON, missing field, unknown
    /// op, frame too large).
    BadRequest {
        /// What was wrong.
        message: String,
    },
    /// The request's protocol version is not spoken by the daemon.
    UnsupportedVersion {
        /// What was wrong.
        message: String,
        /// The version the daemon speaks.
        supported: u32,
    },
    /// The topic does not exist (and auto-create is off, for open).
    NoSuchTopic {
        /// What was wrong.
        message: String,
        /// The topic.
        topic: String,
    },
    /// `create` of a topic that exists with other settings.
    Exists {
        /// What was wrong.
        message: String,
        /// The topic.
        topic: String,
    },
    /// The peer's uid may not do this.
    Denied {
        /// What was refused, e.g. "uid 1001 may not publish to `x`".
        message: String,
    },
    /// A name broke a naming rule.
    InvalidName {
        /// What was wrong.
        message: String,
        /// "bus", "topic" or "service".
        name_kind: String,
        /// The name.
        name: String,
    },
    /// A topic setting is out of range.
    InvalidConfig {
        /// What was wrong.
        message: String,
    },
    /// Every publisher or subscriber entry of a topic is taken.
    TooManyClients {
        /// What was wrong.
        message: String,
        /// "publisher" or "subscriber".
        role: String,
        /// The topic.
        topic: String,
        /// Its limit.
        max: u32,
    },
    /// `/dev/shm` is too small for the topic.
    NoSpace {
        /// What was wrong.
        message: String,
        /// Segment name.
        segment: String,
        /// Bytes requested.
        bytes: u64,
    },
    /// The daemon has as many connections as it accepts.
    Busy {
        /// What was wrong.
        message: String,
    },
    /// Anything else (an OS error in the daemon, a corrupt segment...).
    Internal {
        /// What was wrong.
        message: String,
    },
}

impl ErrorReply {
    /// The human-readable text of any kind.
    pub fn message(&self) -> &str {
        match self {
            ErrorReply::BadRequest { message }
            | ErrorReply::UnsupportedVersion { message, .. }
            | ErrorReply::NoSuchTopic { message, .. }
            | ErrorReply::Exists { message, .. }
            | ErrorReply::Denied { message }
            | ErrorReply::InvalidName { message, .. }
            | ErrorReply::InvalidConfig { message }
            | ErrorReply::TooManyClients { message, .. }
            | ErrorReply::NoSpace { message, .. }
            | ErrorReply::Busy { message }
            | ErrorReply::Internal { message } => message,
        }
    }

    /// A bad-request reply.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ErrorReply::BadRequest {
            message: message.into(),
        }
    }

    /// The reply the daemon sends for a library error (daemon side).
    pub fn from_error(err: &Error) -> Self {
        let message = err.to_string();
        match err {
            Error::NoSuchTopic(topic) => ErrorReply::NoSuchTopic {
                message,
                topic: topic.clone(),
            },
            Error::Denied(what) => ErrorReply::Denied {
                message: what.clone(),
            },
            Error::InvalidName { kind, name, .. } => ErrorReply::InvalidName {
                message,
                name_kind: kind.to_string(),
                name: name.clone(),
            },
            Error::InvalidConfig(what) => ErrorReply::InvalidConfig {
                message: what.clone(),
            },
            Error::TooManyClients { role, topic, max } => ErrorReply::TooManyClients {
                message,
                role: role.to_string(),
                topic: topic.clone(),
                max: *max,
            },
            Error::NoSpace { segment, bytes } => ErrorReply::NoSpace {
                message,
                segment: segment.clone(),
                bytes: *bytes,
            },
            _ => ErrorReply::Internal { message },
        }
    }

    /// The library error a client returns for this reply (client side).
    ///
    /// Variants whose fields are `&'static str` in [`Error`] are rebuilt from
    /// the known values; a reply that does not fit (a newer daemon, a hostile
    /// one) becomes [`Error::Daemon`] with the daemon's message, so nothing a
    /// daemon sends can make a client misreport.
    pub fn into_error(self) -> Error {
        match self {
            ErrorReply::NoSuchTopic { topic, .. } => Error::NoSuchTopic(topic),
            ErrorReply::Denied { message } => Error::Denied(message),
            ErrorReply::InvalidConfig { message } => Error::InvalidConfig(message),
            ErrorReply::NoSpace { segment, bytes, .. } => Error::NoSpace { segment, bytes },
            ErrorReply::InvalidName {
                message,
                name_kind,
                name,
            } => {
                // The daemon and the client share the naming rules, so
                // re-checking the name here yields the exact typed error.
                let local = match name_kind.as_str() {
                    "bus" => crate::names::validate_bus(&name),
                    "topic" => crate::names::validate_topic(&name),
                    "service" => crate::names::validate_service(&name),
                    _ => Ok(()),
                };
                match local {
                    Err(e @ Error::InvalidName { .. }) => e,
                    _ => Error::Daemon(message),
                }
            }
            ErrorReply::TooManyClients {
                message,
                role,
                topic,
                max,
            } => match role.as_str() {
                "publisher" => Error::TooManyClients {
                    role: "publisher",
                    topic,
                    max,
                },
                "subscriber" => Error::TooManyClients {
                    role: "subscriber",
                    topic,
                    max,
                },
                _ => Error::Daemon(message),
            },
            ErrorReply::BadRequest { message } | ErrorReply::UnsupportedVersion { message, .. } => {
                Error::Protocol(message)
            }
            ErrorReply::Exists { message, .. }
            | ErrorReply::Busy { message }
            | ErrorReply::Internal { message } => Error::Daemon(message),
        }
    }
}

/// Why a byte stream is not a sequence of frames.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The length prefix announces more than the limit. The stream cannot be
    /// resynchronised; the connection must be closed.
    #[error("frame of {len} bytes is larger than the limit of {limit} bytes")]
    TooLarge {
        /// Announced length.
        len: u64,
        /// The limit.
        limit: usize,
    },
    /// The stream ended inside a frame.
    #[error("connection closed in the middle of a frame ({have} of {want} bytes received)")]
    Truncated {
        /// Bytes of the frame (prefix included) received.
        have: usize,
        /// Bytes the frame needs (prefix included; 4 while the prefix itself
        /// is incomplete).
        want: usize,
    },
}

/// Buffer capacity a [`FrameReader`] keeps once it is empty again.
const IDLE_CAPACITY: usize = 4096;

/// Splits a byte stream into frames, holding at most one frame's worth of
/// bytes (`LEN_PREFIX + limit`) at any time.
///
/// Feed it with [`FrameReader::read_from`] or [`FrameReader::push`], take
/// frames with [`FrameReader::next_frame`] until it returns `Ok(None)`, and
/// call [`FrameReader::finish`] at end of stream.
#[derive(Debug)]
pub struct FrameReader {
    buf: Vec<u8>,
    limit: usize,
}

impl FrameReader {
    /// A reader for frames of at most `limit` body bytes.
    pub fn new(limit: usize) -> FrameReader {
        FrameReader {
            buf: Vec::new(),
            limit,
        }
    }

    /// Bytes buffered (a partial frame, or complete frames not yet taken).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// How many more bytes may be buffered now. It is 0 only when a complete
    /// frame (or a too-large prefix) is waiting to be taken: callers read
    /// more only after `next_frame` returned `Ok(None)`, so a peer can never
    /// make the buffer exceed `LEN_PREFIX + limit`.
    pub fn room(&self) -> usize {
        (LEN_PREFIX + self.limit).saturating_sub(self.buf.len())
    }

    /// Appends as many of `bytes` as there is [`room`](Self::room) for;
    /// returns how many were taken.
    pub fn push(&mut self, bytes: &[u8]) -> usize {
        let n = bytes.len().min(self.room());
        self.buf.extend_from_slice(&bytes[..n]);
        n
    }

    /// Reads once from `r` into the buffer (at most [`room`](Self::room)
    /// bytes, and at most 16 KiB so a fast peer cannot grow it in one go).
    /// Returns what `read` returned: `Ok(0)` is end of stream (or no room).
    pub fn read_from<R: Read>(&mut self, r: &mut R) -> io::Result<usize> {
        // Through a stack chunk, so the buffer grows by what arrived, not
        // by what might have.
        let mut chunk = [0u8; 16 * 1024];
        let want = self.room().min(chunk.len());
        if want == 0 {
            return Ok(0);
        }
        let got = r.read(&mut chunk[..want])?;
        self.buf.extend_from_slice(&chunk[..got]);
        Ok(got)
    }

    /// Takes the next complete frame's body, if one is buffered.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        let Some(len) = self.announced_len() else {
            return Ok(None);
        };
        if len > self.limit as u64 {
            return Err(FrameError::TooLarge {
                len,
                limit: self.limit,
            });
        }
        // len <= limit, which fits in usize.
        let end = LEN_PREFIX + len as usize;
        if self.buf.len() < end {
            return Ok(None);
        }
        let body = self.buf[LEN_PREFIX..end].to_vec();
        self.buf.drain(..end);
        if self.buf.is_empty() && self.buf.capacity() > IDLE_CAPACITY {
            // A daemon keeps a reader per connection: one large request must
            // not pin its buffer for the connection's whole life.
            self.buf = Vec::new();
        }
        Ok(Some(body))
    }

    /// Whether the buffered bytes are a frame cut short; call at end of
    /// stream, after `next_frame` returned `Ok(None)`.
    pub fn finish(&self) -> Result<(), FrameError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let want = match self.announced_len() {
            Some(len) => LEN_PREFIX.saturating_add(usize::try_from(len).unwrap_or(usize::MAX)),
            None => LEN_PREFIX,
        };
        Err(FrameError::Truncated {
            have: self.buf.len(),
            want,
        })
    }

    fn announced_len(&self) -> Option<u64> {
        let prefix: [u8; LEN_PREFIX] = self.buf.get(..LEN_PREFIX)?.try_into().ok()?;
        Some(u64::from(u32::from_le_bytes(prefix)))
    }
}

/// Serialises `msg` as one frame (prefix and JSON body). Fails if the body
/// would exceed `limit`.
pub fn encode_frame<T: Serialize>(msg: &T, limit: usize) -> Result<Vec<u8>, Error> {
    let mut out = vec![0u8; LEN_PREFIX];
    serde_json::to_writer(&mut out, msg)
        .map_err(|e| Error::Protocol(format!("cannot encode a control message: {e}")))?;
    let len = out.len() - LEN_PREFIX;
    if len > limit {
        return Err(Error::Protocol(format!(
            "control message of {len} bytes is larger than the limit of {limit} bytes"
        )));
    }
    // len <= limit <= MAX_REPLY_LEN < u32::MAX.
    out[..LEN_PREFIX].copy_from_slice(&(len as u32).to_le_bytes());
    Ok(out)
}

/// A request frame that could not be decoded, with what the reply needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestError {
    /// The request's id if it could be read, else 0.
    pub id: u64,
    /// The error to send back.
    pub error: ErrorReply,
}

/// Decodes a request body (daemon side). Bad JSON, a missing or unknown op,
/// and a version other than [`PROTOCOL_VERSION`] are errors that carry the
/// request's id when it was readable, so the reply can still be matched.
pub fn decode_request(body: &[u8]) -> Result<Request, RequestError> {
    /// The fields every version has; read first so a request we cannot
    /// otherwise understand still gets a reply with its id.
    #[derive(Deserialize)]
    struct Header {
        v: Option<u32>,
        id: Option<u64>,
    }
    let header: Header = serde_json::from_slice(body).map_err(|e| RequestError {
        id: 0,
        error: ErrorReply::bad_request(format!("request is not a JSON object: {e}")),
    })?;
    let id = header.id.unwrap_or(0);
    match header.v {
        Some(PROTOCOL_VERSION) => {}
        Some(v) => {
            return Err(RequestError {
                id,
                error: ErrorReply::UnsupportedVersion {
                    message: format!(
                        "protocol version {v} is not supported (shmbusd speaks version {PROTOCOL_VERSION}): use a matching shmbus library"
                    ),
                    supported: PROTOCOL_VERSION,
                },
            })
        }
        None => {
            return Err(RequestError {
                id,
                error: ErrorReply::bad_request("request has no protocol version `v`"),
            })
        }
    }
    serde_json::from_slice(body).map_err(|e| RequestError {
        id,
        error: ErrorReply::bad_request(format!("malformed request: {e}")),
    })
}

/// Decodes a reply body (client side).
pub fn decode_reply(body: &[u8]) -> Result<Reply, Error> {
    serde_json::from_slice(body)
        .map_err(|e| Error::Protocol(format!("malformed reply from shmbusd: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Policy;
    use proptest::prelude::*;

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut out = (body.len() as u32).to_le_bytes().to_vec();
        out.extend_from_slice(body);
        out
    }

    fn sample_requests() -> Vec<Request> {
        let ops = vec![
            Op::Hello {
                client: "test".into(),
            },
            Op::Open {
                topic: "sensors/imu/0".into(),
                role: Role::Publish,
            },
            Op::Open {
                topic: "a".into(),
                role: Role::Subscribe,
            },
            Op::Create {
                topic: "b/c".into(),
                config: TopicConfig {
                    capacity: 8,
                    max_msg_size: 100,
                    policy: Policy::DropOldest,
                    max_publishers: 2,
                    max_subscribers: 3,
                },
            },
            Op::Remove { topic: "x".into() },
            Op::List,
            Op::Stats { topic: None },
            Op::Stats {
                topic: Some("y".into()),
            },
        ];
        ops.into_iter()
            .enumerate()
            .map(|(i, op)| Request {
                v: PROTOCOL_VERSION,
                id: i as u64 + u64::from(u32::MAX),
                op,
            })
            .collect()
    }

    #[test]
    fn requests_round_trip_through_frames() {
        let mut reader = FrameReader::new(MAX_REQUEST_LEN);
        let reqs = sample_requests();
        for r in &reqs {
            let bytes = encode_frame(r, MAX_REQUEST_LEN).unwrap();
            assert_eq!(reader.push(&bytes), bytes.len());
        }
        for r in &reqs {
            let body = reader.next_frame().unwrap().expect("a frame");
            assert_eq!(&decode_request(&body).unwrap(), r);
        }
        assert_eq!(reader.next_frame().unwrap(), None);
        assert_eq!(reader.finish(), Ok(()));
    }

    #[test]
    fn wire_format_is_as_documented() {
        let r = Request {
            v: 1,
            id: 7,
            op: Op::Open {
                topic: "t".into(),
                role: Role::Subscribe,
            },
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"v":1,"id":7,"op":"open","topic":"t","role":"subscribe"}"#
        );
        let reply = Reply {
            v: 1,
            id: 7,
            outcome: Outcome::Error(ErrorReply::Denied {
                message: "no".into(),
            }),
        };
        assert_eq!(
            serde_json::to_string(&reply).unwrap(),
            r#"{"v":1,"id":7,"error":{"kind":"denied","message":"no"}}"#
        );
        let ok = Reply {
            v: 1,
            id: 8,
            outcome: Outcome::Ok(ReplyBody::Removed),
        };
        let text = serde_json::to_string(&ok).unwrap();
        assert_eq!(text, r#"{"v":1,"id":8,"ok":{"reply":"removed"}}"#);
        assert!(matches!(
            decode_reply(text.as_bytes()).unwrap().outcome,
            Outcome::Ok(ReplyBody::Removed)
        ));
    }

    #[test]
    fn bad_requests_keep_their_id() {
        let e = decode_request(br#"{"v":1,"id":9,"op":"fly"}"#).unwrap_err();
        assert_eq!(e.id, 9);
        assert!(matches!(e.error, ErrorReply::BadRequest { .. }));

        let e = decode_request(br#"{"v":2,"id":10,"op":"list"}"#).unwrap_err();
        assert_eq!(e.id, 10);
        assert!(matches!(
            e.error,
            ErrorReply::UnsupportedVersion { supported: 1, .. }
        ));

        let e = decode_request(br#"{"id":11,"op":"list"}"#).unwrap_err();
        assert_eq!(e.id, 11);

        for junk in [&b""[..], b"[]", b"nul", b"\xff\xfe", b"{\"v\":1,\"id\":-1}"] {
            let e = decode_request(junk).unwrap_err();
            assert!(matches!(e.error, ErrorReply::BadRequest { .. }), "{junk:?}");
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let mut body = br#"{"v":1,"id":1,"op":"list","x":"#.to_vec();
        body.extend(std::iter::repeat_n(b'[', 60_000));
        assert!(decode_request(&body).is_err());
    }

    #[test]
    fn too_large_prefix_is_refused_before_allocating() {
        let mut reader = FrameReader::new(MAX_REQUEST_LEN);
        reader.push(&u32::MAX.to_le_bytes());
        assert_eq!(
            reader.next_frame(),
            Err(FrameError::TooLarge {
                len: u64::from(u32::MAX),
                limit: MAX_REQUEST_LEN
            })
        );
        assert_eq!(reader.buffered(), 4);
    }

    #[test]
    fn truncated_frames_are_reported() {
        let bytes = frame(br#"{"v":1,"id":1,"op":"list"}"#);
        let mut reader = FrameReader::new(MAX_REQUEST_LEN);
        reader.push(&bytes[..2]);
        assert_eq!(reader.next_frame(), Ok(None));
        assert_eq!(
            reader.finish(),
            Err(FrameError::Truncated { have: 2, want: 4 })
        );
        reader.push(&bytes[2..10]);
        assert_eq!(reader.next_frame(), Ok(None));
        assert_eq!(
            reader.finish(),
            Err(FrameError::Truncated {
                have: 10,
                want: bytes.len()
            })
        );
    }

    #[test]
    fn read_from_respects_the_bound() {
        let limit = 16;
        let mut reader = FrameReader::new(limit);
        let mut src: &[u8] = &[0xAA; 1000];
        // Prefix 0xAAAAAAAA announces far more than the limit.
        while reader.read_from(&mut src).unwrap() > 0 {}
        assert_eq!(reader.buffered(), LEN_PREFIX + limit);
        assert!(matches!(
            reader.next_frame(),
            Err(FrameError::TooLarge { .. })
        ));
    }

    #[test]
    fn errors_map_back_to_library_errors() {
        let cases: Vec<Error> = vec![
            Error::NoSuchTopic("a/b".into()),
            Error::Denied("uid 5 may not publish to `a`".into()),
            Error::InvalidConfig("capacity must be a power of two".into()),
            Error::NoSpace {
                segment: "shmbus.b.t.data".into(),
                bytes: 10,
            },
            Error::TooManyClients {
                role: "subscriber",
                topic: "t".into(),
                max: 4,
            },
            crate::names::validate_topic("a//b").unwrap_err(),
        ];
        for err in cases {
            let wire = ErrorReply::from_error(&err);
            let json = serde_json::to_string(&wire).unwrap();
            let back: ErrorReply = serde_json::from_str(&json).unwrap();
            assert_eq!(back.clone().into_error().to_string(), err.to_string());
            assert!(!back.message().is_empty());
        }
        // A forged InvalidName for a valid name becomes a plain daemon error.
        let forged = ErrorReply::InvalidName {
            message: "bogus".into(),
            name_kind: "topic".into(),
            name: "fine".into(),
        };
        assert!(matches!(forged.into_error(), Error::Daemon(m) if m == "bogus"));
    }

    proptest! {
        #[test]
        fn any_bytes_in_any_chunks_never_panic(
            data in proptest::collection::vec(any::<u8>(), 0..4096),
            chunks in proptest::collection::vec(1usize..512, 1..32),
        ) {
            let limit = 1024;
            let mut reader = FrameReader::new(limit);
            let mut rest: &[u8] = &data;
            let mut i = 0;
            'feed: while !rest.is_empty() {
                let n = chunks[i % chunks.len()].min(rest.len());
                i += 1;
                let taken = reader.push(&rest[..n]);
                rest = &rest[taken..];
                prop_assert!(reader.buffered() <= LEN_PREFIX + limit);
                loop {
                    match reader.next_frame() {
                        Ok(Some(body)) => {
                            prop_assert!(body.len() <= limit);
                            let _ = decode_request(&body);
                            let _ = decode_reply(&body);
                        }
                        Ok(None) => break,
                        Err(FrameError::TooLarge { len, .. }) => {
                            prop_assert!(len > limit as u64);
                            break 'feed;
                        }
                        Err(e) => return Err(TestCaseError::fail(format!("unexpected {e}"))),
                    }
                }
                if taken == 0 {
                    return Err(TestCaseError::fail("no room without a frame to take"));
                }
            }
            let _ = reader.finish();
        }

        #[test]
        fn truncated_valid_frames_are_never_frames(cut in 0usize..200, which in 0usize..8) {
            let req = &sample_requests()[which];
            let bytes = encode_frame(req, MAX_REQUEST_LEN).unwrap();
            let cut = cut.min(bytes.len() - 1);
            let mut reader = FrameReader::new(MAX_REQUEST_LEN);
            reader.push(&bytes[..cut]);
            prop_assert_eq!(reader.next_frame(), Ok(None));
            if cut == 0 {
                prop_assert_eq!(reader.finish(), Ok(()));
            } else {
                let truncated = matches!(reader.finish(), Err(FrameError::Truncated { .. }));
                prop_assert!(truncated);
            }
        }

        #[test]
        fn huge_lengths_are_refused(len in (MAX_REQUEST_LEN as u32 + 1)..=u32::MAX, tail in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut reader = FrameReader::new(MAX_REQUEST_LEN);
            reader.push(&len.to_le_bytes());
            reader.push(&tail);
            let too_large = matches!(reader.next_frame(), Err(FrameError::TooLarge { .. }));
            prop_assert!(too_large);
            prop_assert!(reader.buffered() <= LEN_PREFIX + 64);
        }

        #[test]
        fn random_json_bodies_never_panic(s in "\\PC{0,300}") {
            let _ = decode_request(s.as_bytes());
            let _ = decode_reply(s.as_bytes());
            // JSON-escape the topic (Rust's `{:?}` escapes are not JSON).
            let topic = serde_json::to_string(&s).unwrap();
            let wrapped = format!(r#"{{"v":1,"id":3,"op":"open","topic":{topic},"role":"publish"}}"#);
            if let Err(e) = decode_request(wrapped.as_bytes()) {
                prop_assert_eq!(e.id, 3);
            }
        }
    }
}
