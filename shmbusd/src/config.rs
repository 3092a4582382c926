//! The daemon's TOML config: parsing with clear errors, and resolution into
//! the [`Config`] the daemon runs on.
//!
//! Every key is optional; an empty file (or none) gives the built-in
//! defaults. Unknown keys are refused so a typo never silently does nothing.
//! Errors name the file, the line and the key, on one line. The reference is
//! the config section of `docs/operations.md`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use shmbus::{Policy, TopicConfig};

use crate::access::{AccessPolicy, Group, Pattern, Rights, Rule};

/// The config file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    daemon: DaemonSection,
    #[serde(default)]
    socket: SocketSection,
    #[serde(default)]
    defaults: TopicSettings,
    #[serde(default)]
    topic: Vec<TopicEntry>,
    #[serde(default)]
    access: Vec<AccessEntry>,
}

/// `[daemon]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DaemonSection {
    auto_create: Option<bool>,
    reap_interval_ms: Option<u64>,
    max_connections: Option<usize>,
    request_timeout_ms: Option<u64>,
    idle_timeout_ms: Option<u64>,
}

/// `[socket]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SocketSection {
    group: Option<NameOrId>,
}

/// `[defaults]`, and the settings part of a `[[topic]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TopicSettings {
    capacity: Option<u64>,
    max_msg_size: Option<u32>,
    policy: Option<Policy>,
    max_publishers: Option<u32>,
    max_subscribers: Option<u32>,
}

/// `[[topic]]`: a name and the keys of [`TopicSettings`] (spelled out,
/// because serde cannot deny unknown fields through `flatten`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TopicEntry {
    name: String,
    capacity: Option<u64>,
    max_msg_size: Option<u32>,
    policy: Option<Policy>,
    max_publishers: Option<u32>,
    max_subscribers: Option<u32>,
}

impl TopicEntry {
    fn settings(&self) -> TopicSettings {
        TopicSettings {
            capacity: self.capacity,
            max_msg_size: self.max_msg_size,
            policy: self.policy,
            max_publishers: self.max_publishers,
            max_subscribers: self.max_subscribers,
        }
    }
}

/// `[[access]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccessEntry {
    topics: String,
    #[serde(default)]
    users: Vec<NameOrId>,
    #[serde(default)]
    groups: Vec<NameOrId>,
    allow: Vec<RightName>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum RightName {
    Publish,
    Subscribe,
    Create,
}

/// A user or group, by name or by number.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum NameOrId {
    Id(u32),
    Name(String),
}

/// What the daemon runs on: the config file resolved and checked.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it was read from (`None`: built-in defaults).
    pub source: Option<PathBuf>,
    /// Create unknown topics when a client opens them.
    pub auto_create: bool,
    /// How often dead clients are looked for.
    pub reap_interval: Duration,
    /// Connections accepted at once; more are answered "busy" and closed.
    pub max_connections: usize,
    /// How long a connection may sit on a partial request or an unread reply.
    pub request_timeout: Duration,
    /// How long a connection may stay silent between requests.
    pub idle_timeout: Duration,
    /// Group the socket (and runtime directory) is opened to, if any.
    pub socket_group: Option<Group>,
    /// Settings of topics created on demand.
    pub defaults: TopicConfig,
    /// Topics created at start (and at reload), in file order.
    pub topics: Vec<(String, TopicConfig)>,
    /// Who may do what.
    pub access: AccessPolicy,
}

impl Config {
    /// Built-in defaults: auto-create on, 250 ms reaping, owner-only access.
    pub fn builtin() -> Config {
        Config {
            source: None,
            auto_create: true,
            reap_interval: Duration::from_millis(250),
            max_connections: 1024,
            request_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            socket_group: None,
            defaults: TopicConfig::default(),
            topics: Vec::new(),
            access: AccessPolicy::new(nix::unistd::geteuid().as_raw(), Vec::new()),
        }
    }

    /// Reads and checks `path`. The error is one line naming the file and,
    /// where it applies, the line and key.
    pub fn load(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
        Config::parse(&text, path)
    }

    /// Parses config text (`path` is only for messages).
    pub fn parse(text: &str, path: &Path) -> Result<Config, String> {
        let file: File = toml::from_str(text).map_err(|e| describe_toml_error(path, text, &e))?;
        let at = |what: &str, msg: &str| format!("config {}: {what}: {msg}", path.display());
        let mut cfg = Config::builtin();
        cfg.source = Some(path.to_path_buf());

        let d = &file.daemon;
        if let Some(v) = d.auto_create {
            cfg.auto_create = v;
        }
        if let Some(ms) = d.reap_interval_ms {
            if !(10..=10_000).contains(&ms) {
                return Err(at("[daemon] reap_interval_ms", "must be 10..=10000"));
            }
            cfg.reap_interval = Duration::from_millis(ms);
        }
        if let Some(n) = d.max_connections {
            if !(1..=65_536).contains(&n) {
                return Err(at("[daemon] max_connections", "must be 1..=65536"));
            }
            cfg.max_connections = n;
        }
        if let Some(ms) = d.request_timeout_ms {
            if !(100..=600_000).contains(&ms) {
                return Err(at("[daemon] request_timeout_ms", "must be 100..=600000"));
            }
            cfg.request_timeout = Duration::from_millis(ms);
        }
        if let Some(ms) = d.idle_timeout_ms {
            if !(100..=86_400_000).contains(&ms) {
                return Err(at("[daemon] idle_timeout_ms", "must be 100..=86400000"));
            }
            cfg.idle_timeout = Duration::from_millis(ms);
        }

        if let Some(g) = &file.socket.group {
            cfg.socket_group = Some(resolve_group(g).map_err(|m| at("[socket] group", &m))?);
        }

        cfg.defaults = apply(&TopicConfig::default(), &file.defaults);
        cfg.defaults
            .validate()
            .map_err(|e| at("[defaults]", &config_reason(e)))?;

        let mut seen = BTreeSet::new();
        for (i, t) in file.topic.iter().enumerate() {
            let what = format!("[[topic]] #{} `{}`", i + 1, t.name.escape_default());
            shmbus::names::validate_topic(&t.name).map_err(|e| at(&what, &e.to_string()))?;
            if !seen.insert(t.name.clone()) {
                return Err(at(&what, "listed twice"));
            }
            let tc = apply(&cfg.defaults, &t.settings());
            tc.validate().map_err(|e| at(&what, &config_reason(e)))?;
            cfg.topics.push((t.name.clone(), tc));
        }

        let mut rules = Vec::new();
        for (i, a) in file.access.iter().enumerate() {
            let what = format!("[[access]] #{} (topics = {:?})", i + 1, a.topics);
            let pattern = Pattern::parse(&a.topics).map_err(|m| at(&what, &m))?;
            if a.users.is_empty() && a.groups.is_empty() {
                return Err(at(&what, "names no `users` and no `groups`"));
            }
            if a.allow.is_empty() {
                return Err(at(
                    &what,
                    "`allow` is empty: list publish, subscribe or create",
                ));
            }
            let mut uids = Vec::new();
            for u in &a.users {
                uids.push(resolve_user(u).map_err(|m| at(&what, &m))?);
            }
            let mut groups = Vec::new();
            for g in &a.groups {
                groups.push(resolve_group(g).map_err(|m| at(&what, &m))?);
            }
            let mut rights = Rights::NONE;
            for r in &a.allow {
                rights = rights.with(match r {
                    RightName::Publish => Rights::PUBLISH,
                    RightName::Subscribe => Rights::SUBSCRIBE,
                    RightName::Create => Rights::CREATE,
                });
            }
            if groups.is_empty() {
                tracing::warn!(
                    "config {}: {what} names users but no group: the daemon lets them in, but the topic's segment files stay owner-only, so the kernel stops them from mapping them; grant through a group they are in",
                    path.display()
                );
            }
            rules.push(Rule {
                pattern,
                uids,
                groups,
                rights,
            });
        }
        cfg.access = AccessPolicy::new(nix::unistd::geteuid().as_raw(), rules);
        Ok(cfg)
    }
}

/// `base` with the keys set in `s` replaced.
fn apply(base: &TopicConfig, s: &TopicSettings) -> TopicConfig {
    TopicConfig {
        capacity: s.capacity.unwrap_or(base.capacity),
        max_msg_size: s.max_msg_size.unwrap_or(base.max_msg_size),
        policy: s.policy.unwrap_or(base.policy),
        max_publishers: s.max_publishers.unwrap_or(base.max_publishers),
        max_subscribers: s.max_subscribers.unwrap_or(base.max_subscribers),
    }
}

/// The reason inside an `InvalidConfig`, without its "invalid configuration"
/// prefix (the caller's message already says where).
fn config_reason(e: shmbus::Error) -> String {
    match e {
        shmbus::Error::InvalidConfig(m) => m,
        other => other.to_string(),
    }
}

fn resolve_group(g: &NameOrId) -> Result<Group, String> {
    match g {
        NameOrId::Id(gid) => Ok(Group {
            name: gid.to_string(),
            gid: *gid,
        }),
        NameOrId::Name(name) => match nix::unistd::Group::from_name(name) {
            Ok(Some(grp)) => Ok(Group {
                name: name.clone(),
                gid: grp.gid.as_raw(),
            }),
            Ok(None) => Err(format!("no group named `{name}` on this system")),
            Err(e) => Err(format!("cannot look up group `{name}`: {e}")),
        },
    }
}

fn resolve_user(u: &NameOrId) -> Result<u32, String> {
    match u {
        NameOrId::Id(uid) => Ok(*uid),
        NameOrId::Name(name) => match nix::unistd::User::from_name(name) {
            Ok(Some(user)) => Ok(user.uid.as_raw()),
            Ok(None) => Err(format!("no user named `{name}` on this system")),
            Err(e) => Err(format!("cannot look up user `{name}`: {e}")),
        },
    }
}

/// One line: file, line, the key (with its table), the offending line's
/// text, and the parser's reason.
fn describe_toml_error(path: &Path, text: &str, e: &toml::de::Error) -> String {
    let reason = e.message().trim().replace('\n', " ");
    match e.span() {
        Some(span) => {
            let start = span.start.min(text.len());
            let line_no = text[..start].matches('\n').count() + 1;
            let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
            let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
            let line = text[line_start..line_end].trim();
            let key = match key_at(&text[..line_start], line) {
                Some(key) => format!(", key `{}`", key.escape_default()),
                None => String::new(),
            };
            format!(
                "config {} line {line_no}{key} (`{}`): {reason}",
                path.display(),
                line.escape_default()
            )
        }
        None => format!("config {}: {reason}", path.display()),
    }
}

/// The dotted key a `key = value` line sets, prefixed with the table it is
/// in (the last `[table]` or `[[table]]` header of `before`): the parser's
/// message names the field but not where it is.
fn key_at(before: &str, line: &str) -> Option<String> {
    let (key, _) = line.split_once('=')?;
    let key = key.trim().trim_matches('"');
    if key.is_empty() || key.starts_with('[') {
        return None;
    }
    let table = before
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .and_then(|l| l.split(']').next())
        .map(|l| l.trim_start_matches('[').trim());
    Some(match table {
        Some(t) if !t.is_empty() => format!("{t}.{key}"),
        _ => key.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, Path::new("test.toml"))
    }

    #[test]
    fn empty_file_is_the_builtin_defaults() {
        let c = parse("").unwrap();
        let b = Config::builtin();
        assert_eq!(c.defaults, b.defaults);
        assert_eq!(c.auto_create, b.auto_create);
        assert_eq!(c.reap_interval, Duration::from_millis(250));
        assert!(c.topics.is_empty());
    }

    #[test]
    fn full_example_parses() {
        let c = parse(
            r#"
            [daemon]
            auto_create = false
            reap_interval_ms = 100
            max_connections = 10
            request_timeout_ms = 1000
            idle_timeout_ms = 2000

            [defaults]
            capacity = 64
            policy = "drop-oldest"

            [[topic]]
            name = "sensors/imu"
            capacity = 8
            max_msg_size = 32

            [[topic]]
            name = "log"

            [[access]]
            topics = "sensors/*"
            users = [1234, "root"]
            groups = [0]
            allow = ["publish", "subscribe"]
            "#,
        )
        .unwrap();
        assert!(!c.auto_create);
        assert_eq!(c.max_connections, 10);
        assert_eq!(c.defaults.capacity, 64);
        assert_eq!(c.defaults.policy, Policy::DropOldest);
        assert_eq!(c.topics.len(), 2);
        assert_eq!(c.topics[0].1.capacity, 8);
        assert_eq!(c.topics[0].1.policy, Policy::DropOldest);
        assert_eq!(c.topics[1].1.capacity, 64);
    }

    /// The example in the operations guide, so the guide stays true.
    #[test]
    fn the_documented_example_is_valid() {
        let doc = include_str!("../../docs/operations.md");
        let start = doc.find("```toml\n").expect("a toml block in the guide") + 8;
        let example = &doc[start..][..doc[start..].find("```").unwrap()];
        // Every key and type is right...
        let file: File = toml::from_str(example).unwrap();
        assert_eq!((file.topic.len(), file.access.len()), (2, 2));
        // ...and with names that every system has, it resolves completely.
        let resolvable = example
            .replace("\"robots\"", "0")
            .replace("\"vision\"", "0");
        let c = parse(&resolvable).unwrap();
        assert_eq!(c.reap_interval, Duration::from_millis(250));
        assert_eq!(c.topics[0].0, "sensors/imu");
        assert_eq!(c.topics[1].1.max_msg_size, 8 << 20);
        assert_eq!(c.socket_group.as_ref().map(|g| g.gid), Some(0));
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let e = parse("[daemon]\nauto_create = true\nreap_intervall_ms = 5\n").unwrap_err();
        assert!(e.contains("test.toml line 3"), "{e}");
        assert!(e.contains("reap_intervall_ms"), "{e}");
        assert!(!e.contains('\n'), "{e}");
        assert!(e.contains("key `daemon.reap_intervall_ms`"), "{e}");

        let e = parse("[defaults]\npolicy = \"sometimes\"\n").unwrap_err();
        assert!(
            e.contains("line 2") && e.contains("key `defaults.policy`"),
            "{e}"
        );

        let e = parse("[[topic]]\nname = \"t\"\ncapacity = \"x\"\n").unwrap_err();
        assert!(e.contains("line 3, key `topic.capacity`"), "{e}");
        assert!(e.contains("invalid type"), "{e}");

        let e = parse("[defaults]\ncapacity = 1000\n").unwrap_err();
        assert!(e.contains("[defaults]"), "{e}");

        let e = parse("[[topic]]\nname = \"a//b\"\n").unwrap_err();
        assert!(e.contains("empty segment"), "{e}");

        let e = parse("[[topic]]\nname = \"a\"\n[[topic]]\nname = \"a\"\n").unwrap_err();
        assert!(e.contains("listed twice"), "{e}");

        let e = parse("[daemon]\nreap_interval_ms = 0\n").unwrap_err();
        assert!(e.contains("reap_interval_ms"), "{e}");

        let e = parse("[[access]]\ntopics = \"a/*\"\ngroups = [\"no-such-group-xyz\"]\nallow = [\"publish\"]\n")
            .unwrap_err();
        assert!(e.contains("no-such-group-xyz"), "{e}");

        let e =
            parse("[[access]]\ntopics = \"a*\"\nusers = [1]\nallow = [\"publish\"]\n").unwrap_err();
        assert!(e.contains("pattern"), "{e}");

        let e = parse("[[access]]\ntopics = \"a\"\nallow = [\"publish\"]\n").unwrap_err();
        assert!(e.contains("no `users`"), "{e}");
    }
}
