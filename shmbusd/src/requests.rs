//! Answering control requests: decode, check the peer's rights, act on the
//! topics, encode the reply. Nothing here touches a socket, so every request
//! kind is handled the same way whatever connection it came from.

use shmbus::control::{
    decode_request, encode_frame, ErrorReply, Op, Outcome, Reply, ReplyBody, Role, MAX_REPLY_LEN,
    PROTOCOL_VERSION,
};
use shmbus::names::validate_topic;

use crate::access::{Peer, Rights};
use crate::config::Config;
use crate::topics::{Ensured, Topics};

/// The daemon's state that requests read and change.
pub struct Daemon {
    /// The bus served.
    pub bus: String,
    /// The config in force.
    pub config: Config,
    /// The topics.
    pub topics: Topics,
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
                    if let Err(e) = self.topics.ensure(&name, &cfg, &perms) {
                        tracing::error!("cannot create topic `{name}` from the config: {e}");
                    }
                }
            }
        }
    }

    /// Answers one request frame from `peer` with one reply frame.
    pub fn handle_frame(&mut self, peer: &Peer, body: &[u8]) -> Vec<u8> {
        let (id, outcome) = match decode_request(body) {
            Ok(req) => {
                let outcome = self.handle(peer, req.op);
                (req.id, outcome)
            }
            Err(e) => {
                tracing::debug!(
                    "bad request from pid {} (uid {}): {}",
                    peer.pid,
                    peer.uid,
                    e.error.message()
                );
                (e.id, Outcome::Error(e.error))
            }
        };
        encode_reply(id, outcome)
    }

    /// Carries out one decoded request.
    pub fn handle(&mut self, peer: &Peer, op: Op) -> Outcome {
        match self.dispatch(peer, op) {
            Ok(body) => Outcome::Ok(body),
            Err(e) => Outcome::Error(e),
        }
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
                self.topics
                    .ensure(&topic, &config, &perms)
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
            .topics
            .ensure(topic, &defaults, &perms)
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

    fn info(&self, topic: &str) -> Result<shmbus::bus::TopicInfo, ErrorReply> {
        self.topics
            .info(topic)
            .ok_or_else(|| ErrorReply::from_error(&shmbus::Error::NoSuchTopic(topic.to_string())))
    }
}

fn check_name(topic: &str) -> Result<(), ErrorReply> {
    validate_topic(topic).map_err(|e| ErrorReply::from_error(&e))
}

/// Encodes a reply; one too large for the protocol (a bus with a huge number
/// of topics) becomes an error reply, so the client is told instead of cut
/// off.
pub fn encode_reply(id: u64, outcome: Outcome) -> Vec<u8> {
    let reply = Reply {
        v: PROTOCOL_VERSION,
        id,
        outcome,
    };
    encode_frame(&reply, MAX_REPLY_LEN).unwrap_or_else(|e| {
        let fallback = Reply {
            v: PROTOCOL_VERSION,
            id,
            outcome: Outcome::Error(ErrorReply::Internal {
                message: e.to_string(),
            }),
        };
        encode_frame(&fallback, MAX_REPLY_LEN).unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::{AccessPolicy, Pattern, Rule};
    use crate::config::Group;
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
        let reply =
            decode_reply(&d.handle_frame(&me, br#"{"v":1,"id":5,"op":"hello"}"#)[4..]).unwrap();
        assert_eq!(reply.id, 5);
        assert!(matches!(
            reply.outcome,
            Outcome::Ok(ReplyBody::Hello { ref bus, version: PROTOCOL_VERSION, .. }) if bus == "unit"
        ));
        let reply = decode_reply(&d.handle_frame(&me, b"\x00garbage")[4..]).unwrap();
        assert_eq!(reply.id, 0);
        assert!(matches!(
            reply.outcome,
            Outcome::Error(ErrorReply::BadRequest { .. })
        ));
    }
}
