//! Who may do what on the bus: peer credentials of a control connection
//! (`SO_PEERCRED`, `SO_PEERGROUPS`), the config's per-topic rules, and the
//! segment file modes that make the kernel enforce the same rules.
//!
//! The daemon's own uid and root may do everything. Anyone else needs a
//! `[[access]]` rule that names their uid or one of their groups, matches
//! the topic, and allows the right (publish, subscribe, create). Checking at
//! the socket alone would not be enough, since a client could open the
//! segments in `/dev/shm` directly; so each topic's segment files get the
//! group of the first matching rule that names a group, with group read (and
//! write where publishing is allowed) bits. The config reference is in
//! `docs/operations.md`.

use std::os::fd::{AsFd, AsRawFd};

use shmbus::control::Role;
use shmbus::daemon::SegmentPerms;

/// A set of rights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rights(u8);

impl Rights {
    /// No right.
    pub const NONE: Rights = Rights(0);
    /// Attach publishers.
    pub const PUBLISH: Rights = Rights(1);
    /// Attach subscribers.
    pub const SUBSCRIBE: Rights = Rights(2);
    /// Create and remove topics with explicit settings.
    pub const CREATE: Rights = Rights(4);

    /// `self` plus `other`.
    pub fn with(self, other: Rights) -> Rights {
        Rights(self.0 | other.0)
    }

    /// Whether every right of `other` is in `self`.
    pub fn has(self, other: Rights) -> bool {
        self.0 & other.0 == other.0
    }

    /// The right needed to open a topic in `role`.
    pub fn for_role(role: Role) -> Rights {
        match role {
            Role::Publish => Rights::PUBLISH,
            Role::Subscribe => Rights::SUBSCRIBE,
        }
    }
}

/// Which topics a rule covers: one exact name, every topic below a prefix
/// (`sensors/*`, any depth), or every topic (`*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pattern {
    /// Every topic.
    All,
    /// Topics whose name starts with this prefix, which ends with `/`.
    Below(String),
    /// This topic only.
    Exact(String),
}

impl Pattern {
    /// Parses `*`, `prefix/*` or an exact topic name.
    pub fn parse(text: &str) -> Result<Pattern, String> {
        if text == "*" {
            return Ok(Pattern::All);
        }
        if let Some(prefix) = text.strip_suffix("/*") {
            shmbus::names::validate_topic(prefix)
                .map_err(|e| format!("bad pattern prefix: {e}"))?;
            return Ok(Pattern::Below(format!("{prefix}/")));
        }
        if text.contains('*') {
            return Err(format!(
                "bad pattern `{}`: `*` may only be the whole pattern or follow a final `/`",
                text.escape_default()
            ));
        }
        shmbus::names::validate_topic(text).map_err(|e| format!("bad pattern: {e}"))?;
        Ok(Pattern::Exact(text.to_string()))
    }

    /// Whether `topic` is covered.
    pub fn matches(&self, topic: &str) -> bool {
        match self {
            Pattern::All => true,
            Pattern::Below(prefix) => topic.starts_with(prefix.as_str()),
            Pattern::Exact(name) => topic == name,
        }
    }
}

/// One `[[access]]` rule.
#[derive(Clone, Debug)]
pub struct Rule {
    /// Topics it covers.
    pub pattern: Pattern,
    /// Users it names.
    pub uids: Vec<u32>,
    /// Groups it names.
    pub groups: Vec<Group>,
    /// What it allows.
    pub rights: Rights,
}

impl Rule {
    fn applies_to(&self, peer: &Peer) -> bool {
        self.uids.contains(&peer.uid) || self.groups.iter().any(|g| peer.in_group(g.gid))
    }
}

/// A group resolved to its gid, keeping the name for logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// As written in the config.
    pub name: String,
    /// Its gid.
    pub gid: u32,
}

/// The credentials of a control connection's peer, as the kernel recorded
/// them at `connect`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// Process id at connect time (for logs only: pids are reused).
    pub pid: i32,
    /// Effective uid.
    pub uid: u32,
    /// Effective gid.
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
}

impl Peer {
    /// Reads the peer credentials of a connected Unix socket.
    pub fn of<S: AsFd>(socket: &S) -> std::io::Result<Peer> {
        let cred = nix::sys::socket::getsockopt(socket, nix::sys::socket::sockopt::PeerCredentials)
            .map_err(std::io::Error::from)?;
        Ok(Peer {
            pid: cred.pid(),
            uid: cred.uid(),
            gid: cred.gid(),
            groups: peer_groups(socket)?,
        })
    }

    /// Whether the peer has `gid` as its primary or a supplementary group.
    pub fn in_group(&self, gid: u32) -> bool {
        self.gid == gid || self.groups.contains(&gid)
    }
}

/// `SO_PEERGROUPS` (Linux 4.13+): the peer's supplementary groups, which
/// `SO_PEERCRED` lacks, so group rules work for users whose primary group is
/// another one.
fn peer_groups<S: AsFd>(socket: &S) -> std::io::Result<Vec<u32>> {
    let fd = socket.as_fd().as_raw_fd();
    let mut groups: Vec<libc::gid_t> = vec![0; 64];
    for _ in 0..2 {
        let mut len = (groups.len() * std::mem::size_of::<libc::gid_t>()) as libc::socklen_t;
        // SAFETY: `groups` is a live buffer of `len` bytes that the kernel
        // fills with gid_t values; `len` is updated to the bytes written (or,
        // with ERANGE, to the bytes needed).
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let n = len as usize / std::mem::size_of::<libc::gid_t>();
        if rc == 0 {
            groups.truncate(n);
            return Ok(groups);
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::ERANGE) || n <= groups.len() {
            return Err(err);
        }
        // A peer in more groups than we guessed: the kernel said how many.
        groups.resize(n, 0);
    }
    Err(std::io::Error::from_raw_os_error(libc::ERANGE))
}

/// The access rules of the bus.
#[derive(Clone, Debug)]
pub struct AccessPolicy {
    owner_uid: u32,
    rules: Vec<Rule>,
}

impl AccessPolicy {
    /// Rules for a daemon running as `owner_uid`.
    pub fn new(owner_uid: u32, rules: Vec<Rule>) -> AccessPolicy {
        AccessPolicy { owner_uid, rules }
    }

    /// Whether `peer` is the daemon's own user or root (allowed everything).
    pub fn is_owner(&self, peer: &Peer) -> bool {
        peer.uid == 0 || peer.uid == self.owner_uid
    }

    /// Whether `peer` may exercise `right` on `topic`.
    pub fn allows(&self, peer: &Peer, right: Rights, topic: &str) -> bool {
        self.is_owner(peer)
            || self
                .rules
                .iter()
                .any(|r| r.rights.has(right) && r.pattern.matches(topic) && r.applies_to(peer))
    }

    /// Whether `peer` has any right on `topic` (to see it in lists and
    /// stats).
    pub fn sees(&self, peer: &Peer, topic: &str) -> bool {
        self.is_owner(peer)
            || self
                .rules
                .iter()
                .any(|r| r.rights != Rights::NONE && r.pattern.matches(topic) && r.applies_to(peer))
    }

    /// Owner, group and modes of `topic`'s segment files. The group is the
    /// first one named by a rule that matches the topic and grants publish
    /// or subscribe; it gets read on the data segment (write too if it may
    /// publish) and read-write on the subscriber segment, where subscribers
    /// keep their cursors. Without such a rule the files are owner-only.
    pub fn segment_perms(&self, topic: &str) -> SegmentPerms {
        let group = self.rules.iter().find_map(|r| {
            let grants = r.rights.has(Rights::PUBLISH) || r.rights.has(Rights::SUBSCRIBE);
            (grants && r.pattern.matches(topic))
                .then(|| r.groups.first().map(|g| g.gid))
                .flatten()
        });
        let Some(gid) = group else {
            return SegmentPerms::default();
        };
        let may_publish = self.rules.iter().any(|r| {
            r.rights.has(Rights::PUBLISH)
                && r.pattern.matches(topic)
                && r.groups.iter().any(|g| g.gid == gid)
        });
        SegmentPerms {
            data_mode: if may_publish { 0o660 } else { 0o640 },
            subs_mode: 0o660,
            gid: Some(gid),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(uid: u32, gid: u32, groups: &[u32]) -> Peer {
        Peer {
            pid: 1,
            uid,
            gid,
            groups: groups.to_vec(),
        }
    }

    fn group(gid: u32) -> Group {
        Group {
            name: gid.to_string(),
            gid,
        }
    }

    fn policy() -> AccessPolicy {
        AccessPolicy::new(
            1000,
            vec![
                Rule {
                    pattern: Pattern::parse("sensors/*").unwrap(),
                    uids: vec![],
                    groups: vec![group(500)],
                    rights: Rights::SUBSCRIBE,
                },
                Rule {
                    pattern: Pattern::parse("sensors/imu").unwrap(),
                    uids: vec![2000],
                    groups: vec![],
                    rights: Rights::PUBLISH.with(Rights::CREATE),
                },
            ],
        )
    }

    #[test]
    fn patterns() {
        assert!(Pattern::parse("*").unwrap().matches("x/y"));
        let below = Pattern::parse("a/b/*").unwrap();
        assert!(below.matches("a/b/c") && below.matches("a/b/c/d"));
        assert!(!below.matches("a/b") && !below.matches("a/bc"));
        let exact = Pattern::parse("a/b").unwrap();
        assert!(exact.matches("a/b") && !exact.matches("a/b/c"));
        for bad in ["a*", "*/a", "a/*/b", "/*", "a//*", ""] {
            assert!(Pattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn owner_and_root_may_do_everything() {
        let p = policy();
        for who in [peer(1000, 1000, &[]), peer(0, 0, &[])] {
            assert!(p.allows(&who, Rights::CREATE, "anything"));
            assert!(p.sees(&who, "anything"));
        }
    }

    #[test]
    fn others_need_a_rule() {
        let p = policy();
        let stranger = peer(3000, 3000, &[]);
        assert!(!p.allows(&stranger, Rights::SUBSCRIBE, "sensors/imu"));
        assert!(!p.sees(&stranger, "sensors/imu"));

        let member = peer(3001, 3001, &[500]);
        assert!(p.allows(&member, Rights::SUBSCRIBE, "sensors/imu"));
        assert!(!p.allows(&member, Rights::PUBLISH, "sensors/imu"));
        assert!(!p.allows(&member, Rights::SUBSCRIBE, "other"));

        let primary = peer(3002, 500, &[]);
        assert!(p.allows(&primary, Rights::SUBSCRIBE, "sensors/x"));

        let named = peer(2000, 2000, &[]);
        assert!(p.allows(&named, Rights::PUBLISH, "sensors/imu"));
        assert!(p.allows(&named, Rights::CREATE, "sensors/imu"));
        assert!(!p.allows(&named, Rights::PUBLISH, "sensors/gps"));
    }

    #[test]
    fn segment_modes_follow_group_rules() {
        let p = policy();
        let perms = p.segment_perms("sensors/imu");
        assert_eq!(perms.gid, Some(500));
        assert_eq!(perms.data_mode, 0o640);
        assert_eq!(perms.subs_mode, 0o660);

        let none = p.segment_perms("other");
        assert_eq!(none.gid, None);
        assert_eq!((none.data_mode, none.subs_mode), (0o600, 0o600));

        let publish = AccessPolicy::new(
            1000,
            vec![Rule {
                pattern: Pattern::All,
                uids: vec![],
                groups: vec![group(7)],
                rights: Rights::PUBLISH,
            }],
        );
        let perms = publish.segment_perms("t");
        assert_eq!((perms.data_mode, perms.gid), (0o660, Some(7)));
    }

    #[test]
    fn peer_credentials_of_a_socket_pair() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let me = Peer::of(&a).unwrap();
        assert_eq!(me.uid, nix::unistd::geteuid().as_raw());
        assert_eq!(me.pid as u32, std::process::id());
    }
}
