//! Answering control requests: decode, check the peer's rights, act on the
//! topics, encode the reply. Nothing here touches a socket, so every request
//! kind is handled the same way whatever connection it came from.

use shmbus::control::{decode_request, ErrorReply, Op, Outcome, ReplyBody, Role, PROTOCOL_VERSION};
use shmbus::names::validate_topic;

use std::os::fd::OwnedFd;

use shmbus::control::MAX_WATCH_PATTERNS;
use shmbus::daemon::SegmentPerms;
use shmbus::pattern::Pattern;
use shmbus::TopicConfig;

use crate::access::{Peer, Rights};
use crate::config::Config;
use crate::outgoing::{encode_reply, Outgoing};
use crate::topics::{Ensured, Topics};
use crate::watchers::Watchers;

/// Connection number of a request that came from no connection (tests).
pub const NO_CONNECTION: usize = usize::MAX;

/// The daemon's state that requests read and change.
pub struct Daemon {
    /// The bus served.
    pub bus: String,
    /// The config in force.
    pub config: Config,
    /// The topics.
    pub topics: Topics,
    /// The pattern subscriptions.
    pub watchers: Watchers,
}

impl Daemon {
    /// Creates the config's `[[topic]]`s that do not exist yet. A topic that
    /// exists with other settings (adopted from a previous run, or created
    /// by a client) is kept as it is, with a warning: its segments may hold
    /// messages and attached clients.
    pub fn create_config_topics(&mut self) {
        for (name, cfg) in self.config.topics.clone() {
            match self.topics.config(&name) {
                Some(existing) if existing != cfg => tracing::warn!(
                    "topic `{name}` exists with other settings than the config's; keeping it (remove it with `shmbus rm {name}` to apply the config)"
                ),
                Some(_) => {}
                None => {
                    let perms = self.config.access.segment_perms(&name);
                    if let Err(e) = self.ensure_topic(&name, &cfg, &perms) {
                        tracing::error!("cannot create topic `{name}` from the config: {e}");
                    }
                }
            }
        }
    }

    /// Makes sure `topic` exists; a topic this creates is born to the
    /// pattern subscriptions that match it (entries held, announcements
    /// queued) before the caller can answer anyone.
    pub fn ensure_topic(
        &mut self,
        topic: &str,
        cfg: &TopicConfig,
        perms: &SegmentPerms,
    ) -> Result<Ensured, shmbus::Error> {
        let ensured = self.topics.ensure(topic, cfg, perms)?;
        if ensured == Ensured::Created {
            if let Some(owner) = self.topics.owner(topic) {
                self.watchers.born(owner, topic, &self.config.access);
            }
        }
        Ok(ensured)
    }

    /// Answers one request frame from `peer` on connection `conn` with one
    /// reply frame (and, for `watch`, the descriptor that goes with it).
    pub fn handle_frame(&mut self, conn: usize, peer: &Peer, body: &[u8]) -> Outgoing {
        let (id, outcome, fd) = match decode_request(body) {
            Ok(req) => {
                let (outcome, fd) = self.handle_on(conn, peer, req.op);
                (req.id, outcome, fd)
            }
            Err(e) => {
                tracing::debug!(
                    "bad request from pid {} (uid {}): {}",
                    peer.pid,
                    peer.uid,
                    e.error.message()
                );
                (e.id, Outcome::Error(e.error), None)
            }
        };
        Outgoing {
            bytes: encode_reply(id, outcome),
            fd,
        }
    }

    /// Carries out one decoded request that came from no connection.
    #[cfg(test)]
    pub fn handle(&mut self, peer: &Peer, op: Op) -> Outcome {
        self.handle_on(NO_CONNECTION, peer, op).0
    }

    fn handle_on(&mut self, conn: usize, peer: &Peer, op: Op) -> (Outcome, Option<OwnedFd>) {
        if let Op::Watch { patterns } = op {
            return match self.watch(conn, peer, patterns) {
                Ok((body, fd)) => (Outcome::Ok(body), Some(fd)),
                Err(e) => (Outcome::Error(e), None),
            };
        }
        match self.dispatch(peer, op) {
            Ok(body) => (Outcome::Ok(body), None),
            Err(e) => (Outcome::Error(e), None),
        }
    }

    /// `watch`: registers connection `conn` as a pattern subscription.
    fn watch(
        &mut self,
        conn: usize,
        peer: &Peer,
        patterns: Vec<String>,
    ) -> Result<(ReplyBody, OwnedFd), ErrorReply> {
        if conn == NO_CONNECTION || self.watchers.is_watching(conn) {
            return Err(ErrorReply::bad_request(
                "`watch` needs a connection of its own, and only once",
            ));
        }
        if patterns.is_empty() || patterns.len() > MAX_WATCH_PATTERNS {
            return Err(ErrorReply::bad_request(format!(
                "`watch` takes 1 to {MAX_WATCH_PATTERNS} patterns, not {}",
                patterns.len()
            )));
        }
        let patterns = patterns
            .iter()
            .map(|p| Pattern::parse(p))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ErrorReply::from_error(&e))?;
        let topics = Watchers::matching(&patterns, peer, &self.config.access, self.topics.iter());
        let fd = self
            .watchers
            .register(conn, peer, patterns)
            .map_err(|e| ErrorReply::from_error(&e))?;
        Ok((ReplyBody::Watching { topics }, fd))
    }

    fn dispatch(&mut self, peer: &Peer, op: Op) -> Result<ReplyBody, ErrorReply> {
        match op {
            Op::Hello { client } => {
                tracing::debug!("hello from {client:?} (pid {}, uid {})", peer.pid, peer.uid);
                Ok(ReplyBody::Hello {
                    version: PROTOCOL_VERSION,
                    bus: self.bus.clone(),
                    pid: std::process::id(),
                    daemon: format!("shmbusd {}", env!("CARGO_PKG_VERSION")),
                })
            }
            Op::Open { topic, role } => self.open(peer, &topic, role),
            Op::Create { topic, config } => {
                check_name(&topic)?;
                self.require(peer, Rights::CREATE, "create", &topic)?;
                config.validate().map_err(|e| ErrorReply::from_error(&e))?;
                if let Some(existing) = self.topics.config(&topic) {
                    if existing != config {
                        return Err(ErrorReply::Exists {
                            message: format!(
                                "topic `{topic}` already exists with other settings (capacity {}, max message size {}, policy {}): remove it first with `shmbus rm {topic}`",
                                existing.capacity, existing.max_msg_size, existing.policy
                            ),
                            topic,
                        });
                    }
                }
                let perms = self.config.access.segment_perms(&topic);
                self.ensure_topic(&topic, &config, &perms)
                    .map_err(|e| ErrorReply::from_error(&e))?;
                Ok(ReplyBody::Created {
                    info: self.info(&topic)?,
                })
            }
            Op::Remove { topic } => {
                check_name(&topic)?;
                self.require(peer, Rights::CREATE, "remove", &topic)?;
                self.topics
                    .remove(&topic)
                    .map_err(|e| ErrorReply::from_error(&e))?;
                Ok(ReplyBody::Removed)
            }
            Op::List => {
                let access = &self.config.access;
                Ok(ReplyBody::Topics {
                    topics: self.topics.list(|t| access.sees(peer, t)),
                })
            }
            Op::Stats { topic } => {
                let access = &self.config.access;
                let stats = match topic {
                    Some(topic) => {
                        check_name(&topic)?;
                        if !self.topics.contains(&topic) || !access.sees(peer, &topic) {
                            return Err(ErrorReply::from_error(&shmbus::Error::NoSuchTopic(topic)));
                        }
                        self.topics.stats(|t| t == topic)
                    }
                    None => self.topics.stats(|t| access.sees(peer, t)),
                };
                Ok(ReplyBody::Stats { stats })
            }
            Op::Watch { .. } => Err(ErrorReply::bad_request(
                "`watch` needs a connection of its own",
            )),
            Op::Watchers => Ok(ReplyBody::Watchers {
                watchers: self.watchers.infos(
                    peer,
                    &self.config.access,
                    self.topics.iter().map(|(name, _)| name),
                ),
            }),
        }
    }

    fn open(&mut self, peer: &Peer, topic: &str, role: Role) -> Result<ReplyBody, ErrorReply> {
        check_name(topic)?;
        self.require(peer, Rights::for_role(role), &format!("{role} to"), topic)?;
        if !self.topics.contains(topic) && !self.config.auto_create {
            return Err(ErrorReply::from_error(&shmbus::Error::NoSuchTopic(
                topic.to_string(),
            )));
        }
        let perms = self.config.access.segment_perms(topic);
        let defaults = self.config.defaults.clone();
        let ensured = self
            .ensure_topic(topic, &defaults, &perms)
            .map_err(|e| ErrorReply::from_error(&e))?;
        let segments = match self.topics.identity(topic) {
            Some(Ok(id)) => Some(id),
            Some(Err(e)) => return Err(ErrorReply::from_error(&e)),
            None => None,
        };
        Ok(ReplyBody::Opened {
            info: self.info(topic)?,
            created: ensured == Ensured::Created,
            segments,
        })
    }

    fn require(
        &self,
        peer: &Peer,
        right: Rights,
        verb: &str,
        topic: &str,
    ) -> Result<(), ErrorReply> {
        if self.config.access.allows(peer, right, topic) {
            return Ok(());
        }
        tracing::info!(
            "denied: uid {} (pid {}) may not {verb} `{topic}`",
            peer.uid,
            peer.pid
        );
        Err(ErrorReply::Denied {
            message: format!("uid {} may not {verb} `{topic}`", peer.uid),
        })
    }

    fn info(&self, topic: &str) -> Result<shmbus::TopicInfo, ErrorReply> {
        self.topics
            .info(topic)
            .ok_or_else(|| ErrorReply::from_error(&shmbus::Error::NoSuchTopic(topic.to_string())))
    }
}

fn check_name(topic: &str) -> Result<(), ErrorReply> {
    validate_topic(topic).map_err(|e| ErrorReply::from_error(&e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::Group;
    use crate::access::{AccessPolicy, Pattern, Rule};
    use shmbus::control::decode_reply;

    /// A daemon whose topics are never touched: every request below is
    /// refused before it would reach `/dev/shm`.
    fn daemon(rules: Vec<Rule>) -> Daemon {
        let mut config = Config::builtin();
        config.access = AccessPolicy::new(OWNER, rules);
        Daemon {
            bus: "unit".into(),
            config,
            topics: Topics::new("unit"),
            watchers: Watchers::default(),
        }
    }

    const OWNER: u32 = 4242;

    fn peer(uid: u32, groups: &[u32]) -> Peer {
        Peer {
            pid: 77,
            uid,
            gid: uid,
            groups: groups.to_vec(),
        }
    }

    fn denied(d: &mut Daemon, who: &Peer, op: Op) -> String {
        match d.handle(who, op) {
            Outcome::Error(ErrorReply::Denied { message }) => message,
            other => panic!("expected a denial, got {other:?}"),
        }
    }

    fn open(topic: &str, role: Role) -> Op {
        Op::Open {
            topic: topic.into(),
            role,
        }
    }

    #[test]
    fn strangers_are_denied_everything_by_default() {
        let mut d = daemon(Vec::new());
        let stranger = peer(1001, &[]);
        assert_eq!(
            denied(&mut d, &stranger, open("x", Role::Publish)),
            "uid 1001 may not publish to `x`"
        );
        assert_eq!(
            denied(&mut d, &stranger, open("x", Role::Subscribe)),
            "uid 1001 may not subscribe to `x`"
        );
        let create = Op::Create {
            topic: "x".into(),
            config: shmbus::TopicConfig::default(),
        };
        assert_eq!(
            denied(&mut d, &stranger, create),
            "uid 1001 may not create `x`"
        );
        assert_eq!(
            denied(&mut d, &stranger, Op::Remove { topic: "x".into() }),
            "uid 1001 may not remove `x`"
        );
        // What the client finally shows.
        let err = ErrorReply::Denied {
            message: "uid 1001 may not publish to `x`".into(),
        }
        .into_error();
        assert_eq!(
            err.to_string(),
            "permission denied: uid 1001 may not publish to `x`"
        );
    }

    #[test]
    fn group_rules_grant_only_their_rights_on_their_topics() {
        let rule = Rule {
            pattern: Pattern::parse("sensors/*").unwrap(),
            uids: vec![],
            groups: vec![Group {
                name: "sensors".into(),
                gid: 500,
            }],
            rights: Rights::SUBSCRIBE,
        };
        let mut d = daemon(vec![rule]);
        let member = peer(1002, &[500]);
        assert_eq!(
            denied(&mut d, &member, open("sensors/imu", Role::Publish)),
            "uid 1002 may not publish to `sensors/imu`"
        );
        assert_eq!(
            denied(&mut d, &member, open("motors/left", Role::Subscribe)),
            "uid 1002 may not subscribe to `motors/left`"
        );
        let outsider = peer(1003, &[501]);
        assert_eq!(
            denied(&mut d, &outsider, open("sensors/imu", Role::Subscribe)),
            "uid 1003 may not subscribe to `sensors/imu`"
        );
        // Names are checked before rights: a bad name is a bad name.
        assert!(matches!(
            d.handle(&member, open("sensors/../x", Role::Subscribe)),
            Outcome::Error(ErrorReply::InvalidName { .. })
        ));
        // With auto-create off, an allowed open of a missing topic is "no
        // such topic", not a creation.
        d.config.auto_create = false;
        assert!(matches!(
            d.handle(&member, open("sensors/imu", Role::Subscribe)),
            Outcome::Error(ErrorReply::NoSuchTopic { .. })
        ));
        assert!(matches!(
            d.handle(&member, Op::List),
            Outcome::Ok(ReplyBody::Topics { topics }) if topics.is_empty()
        ));
    }

    #[test]
    fn frames_get_replies_with_their_id() {
        let mut d = daemon(Vec::new());
        let me = peer(OWNER, &[]);
        let reply = decode_reply(
            &d.handle_frame(NO_CONNECTION, &me, br#"{"v":1,"id":5,"op":"hello"}"#)
                .bytes[4..],
        )
        .unwrap();
        assert_eq!(reply.id, 5);
        assert!(matches!(
            reply.outcome,
            Outcome::Ok(ReplyBody::Hello { ref bus, version: PROTOCOL_VERSION, .. }) if bus == "unit"
        ));
        let reply =
            decode_reply(&d.handle_frame(NO_CONNECTION, &me, b"\x00garbage").bytes[4..]).unwrap();
        assert_eq!(reply.id, 0);
        assert!(matches!(
            reply.outcome,
            Outcome::Error(ErrorReply::BadRequest { .. })
        ));
    }
}
