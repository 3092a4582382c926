//! Pattern subscriptions as the daemon keeps them: one per watching
//! connection, with its patterns, its wake page, and the announcements not
//! yet handed to the connection.
//!
//! The protocol, and why it loses no message of a new topic and no
//! wake-up, is argued once, in the library (`libshmbus/src/watch.rs`).
//! This module is its daemon half: [`Watchers::born`] runs inside the
//! request that creates a topic, before that request's reply is queued.

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;

use shmbus::control::{Outcome, ReplyBody, WatchedTopic, WatcherInfo};
use shmbus::daemon::TopicOwner;
use shmbus::daemon::WakePage;
use shmbus::pattern::{any_matches, Pattern};

use crate::access::{AccessPolicy, Peer, Rights};
use crate::outgoing::{encode_reply, Outgoing};

/// Most announcements a watching connection may have waiting (each holds a
/// descriptor in the daemon until it is written, so the bound is also the
/// daemon's descriptors per subscription). A subscriber that stops reading
/// for longer is cut off: its held entries are released
/// (so it holds no publisher back), and when it reconnects it joins the
/// topics it missed at their oldest retained message, reporting any older
/// one as lost.
pub const MAX_PENDING: usize = 256;

/// One pattern subscription.
struct Watcher {
    peer: Peer,
    patterns: Vec<Pattern>,
    wake: WakePage,
    /// Announcements for the connection, oldest first.
    outbox: Vec<Outgoing>,
    /// Frames the connection held unwritten after its last drive (the
    /// subscriber has not read them yet).
    unsent: usize,
}

/// Every pattern subscription, by connection.
#[derive(Default)]
pub struct Watchers {
    by_conn: BTreeMap<usize, Watcher>,
}

impl Watchers {
    /// Registers connection `conn` of `peer` as a subscription to
    /// `patterns`. Returns the wake page's descriptor, for the reply.
    pub fn register(
        &mut self,
        conn: usize,
        peer: &Peer,
        patterns: Vec<Pattern>,
    ) -> shmbus::Result<OwnedFd> {
        let wake = WakePage::create()?;
        let fd = wake
            .file()
            .try_clone()
            .map_err(|e| shmbus::Error::io("cannot duplicate a wake page", e))?;
        tracing::debug!(
            "pid {} (uid {}) subscribes to patterns {:?}",
            peer.pid,
            peer.uid,
            patterns.iter().map(Pattern::as_str).collect::<Vec<_>>()
        );
        self.by_conn.insert(
            conn,
            Watcher {
                peer: peer.clone(),
                patterns,
                wake,
                outbox: Vec::new(),
                unsent: 0,
            },
        );
        Ok(fd.into())
    }

    /// Forgets connection `conn`'s subscription, if it had one. Unsent
    /// announcements close their descriptors, releasing the entries held
    /// for it (the next reap frees them).
    pub fn remove(&mut self, conn: usize) {
        self.by_conn.remove(&conn);
    }

    /// Whether `conn` is a watching connection.
    pub fn is_watching(&self, conn: usize) -> bool {
        self.by_conn.contains_key(&conn)
    }

    /// Topic `topic` (just created, owned by `owner`, not yet announced to
    /// anyone) is born: holds an entry at sequence 0 for every subscription
    /// that matches it and may read it, and queues the announcements.
    pub fn born(&mut self, owner: &TopicOwner, topic: &str, access: &AccessPolicy) {
        for w in self.by_conn.values_mut() {
            if !any_matches(&w.patterns, topic) || !access.allows(&w.peer, Rights::SUBSCRIBE, topic)
            {
                continue;
            }
            let held = owner.identity().and_then(|id| {
                owner
                    .reserve_subscriber(w.peer.pid as u32)
                    .map(|entry| entry.map(|e| (e, id)))
            });
            let (body, fd) = match held {
                Ok(Some(((entry, file), segments))) => (
                    ReplyBody::Born {
                        topic: topic.to_string(),
                        entry,
                        segments,
                    },
                    Some(OwnedFd::from(file)),
                ),
                Ok(None) => (
                    ReplyBody::Missed {
                        topic: topic.to_string(),
                        message: format!(
                            "topic `{topic}` was created with all of its {} subscriber entries taken, so none could be held for this pattern subscription: raise max_subscribers",
                            owner.config().max_subscribers
                        ),
                    },
                    None,
                ),
                Err(e) => (
                    ReplyBody::Missed {
                        topic: topic.to_string(),
                        message: format!(
                            "shmbusd could not hold an entry of new topic `{topic}` for this pattern subscription: {e}"
                        ),
                    },
                    None,
                ),
            };
            w.outbox.push(Outgoing {
                bytes: encode_reply(0, Outcome::Ok(body)),
                fd,
            });
        }
    }

    /// Takes the announcements queued for `conn`.
    pub fn take_outbox(&mut self, conn: usize) -> Vec<Outgoing> {
        self.by_conn
            .get_mut(&conn)
            .map(|w| std::mem::take(&mut w.outbox))
            .unwrap_or_default()
    }

    /// Connections with announcements queued.
    pub fn with_outbox(&self) -> Vec<usize> {
        self.by_conn
            .iter()
            .filter(|(_, w)| !w.outbox.is_empty())
            .map(|(c, _)| *c)
            .collect()
    }

    /// Records how many frames `conn` still holds unwritten, for
    /// [`Watchers::infos`].
    pub fn set_unsent(&mut self, conn: usize, unsent: usize) {
        if let Some(w) = self.by_conn.get_mut(&conn) {
            w.unsent = unsent;
        }
    }

    /// Tells `conn`'s subscriber that announcements were written to its
    /// connection: after the write, so a subscriber that read the word
    /// before draining cannot sleep past them (`watch.rs`).
    pub fn bump(&self, conn: usize) {
        if let Some(w) = self.by_conn.get(&conn) {
            w.wake.bump();
        }
    }

    /// The topics of `names` that `peer`'s `patterns` cover and `peer` may
    /// read, with their segments' identities.
    pub fn matching<'a>(
        patterns: &[Pattern],
        peer: &Peer,
        access: &AccessPolicy,
        topics: impl Iterator<Item = (&'a str, &'a TopicOwner)>,
    ) -> Vec<WatchedTopic> {
        topics
            .filter(|(name, _)| {
                any_matches(patterns, name) && access.allows(peer, Rights::SUBSCRIBE, name)
            })
            .filter_map(|(name, owner)| {
                owner.identity().ok().map(|segments| WatchedTopic {
                    topic: name.to_string(),
                    segments,
                })
            })
            .collect()
    }

    /// The subscriptions, for `shmbus stats`, as `viewer` may see them: its
    /// own, or all for the bus's owner.
    pub fn infos<'a>(
        &self,
        viewer: &Peer,
        access: &AccessPolicy,
        topics: impl Iterator<Item = &'a str> + Clone,
    ) -> Vec<WatcherInfo> {
        self.by_conn
            .iter()
            .filter(|(_, w)| access.is_owner(viewer) || w.peer.uid == viewer.uid)
            .map(|(_, w)| WatcherInfo {
                pid: w.peer.pid as u32,
                uid: w.peer.uid,
                patterns: w.patterns.iter().map(|p| p.to_string()).collect(),
                topics: topics
                    .clone()
                    .filter(|t| {
                        any_matches(&w.patterns, t) && access.allows(&w.peer, Rights::SUBSCRIBE, t)
                    })
                    .map(str::to_string)
                    .collect(),
                pending: w.outbox.len() + w.unsent,
            })
            .collect()
    }
}
