//! Names: buses, topics, the shared-memory segments they map to, and the
//! runtime directory that holds the daemon's socket and lock.
//!
//! Segment names are built so that `ls /dev/shm` tells which bus and topic a
//! file belongs to, and so that no bus or topic name can reach another bus's
//! segments: `shmbus.<bus>.<topic with '/' as ':'>.<part>`. A bus name has no
//! `.`, a topic has no `:`, and the part suffix is fixed, so the mapping is
//! one-to-one and can be parsed back.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Bus used when none is given (`--bus` / `SHMBUS_BUS`).
pub const DEFAULT_BUS: &str = "default";
/// Longest bus name.
pub const MAX_BUS_LEN: usize = 32;
/// Longest topic name, in bytes.
pub const MAX_TOPIC_LEN: usize = 128;
/// Every segment of every bus starts with this prefix.
pub const SEGMENT_PREFIX: &str = "shmbus.";

/// Checks a bus name: `[A-Za-z0-9_-]{1,32}`.
pub fn validate_bus(name: &str) -> Result<()> {
    let bad = |rule| Error::InvalidName {
        kind: "bus",
        name: name.escape_default().to_string(),
        rule,
    };
    if name.is_empty() {
        return Err(bad("must not be empty"));
    }
    if name.len() > MAX_BUS_LEN {
        return Err(bad("must be at most 32 characters"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(bad("may only contain A-Z a-z 0-9 _ -"));
    }
    Ok(())
}

/// Checks a topic (or service) name: 1–128 bytes of `[A-Za-z0-9._/-]`, no
/// leading or trailing `/`, no empty segment, no `..`.
pub fn validate_topic(name: &str) -> Result<()> {
    validate_hierarchical("topic", name)
}

/// Checks a service name; same rules as topics, own namespace.
pub fn validate_service(name: &str) -> Result<()> {
    validate_hierarchical("service", name)
}

fn validate_hierarchical(kind: &'static str, name: &str) -> Result<()> {
    let bad = |rule| Error::InvalidName {
        kind,
        name: name.escape_default().to_string(),
        rule,
    };
    if name.is_empty() {
        return Err(bad("must not be empty"));
    }
    if name.len() > MAX_TOPIC_LEN {
        return Err(bad("must be at most 128 bytes"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'/' | b'-'))
    {
        return Err(bad("may only contain A-Z a-z 0-9 . _ / -"));
    }
    if name.starts_with('/') || name.ends_with('/') {
        return Err(bad("must not start or end with `/`"));
    }
    if name.contains("//") {
        return Err(bad("must not contain an empty segment (`//`)"));
    }
    if name.contains("..") {
        return Err(bad("must not contain `..`"));
    }
    Ok(())
}

/// The two segments of a topic. Publishers write `Data`; subscribers write
/// `Subs` and may map `Data` read-only (SPEC §8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// Header, publisher table and slots: written by publishers only.
    Data,
    /// Wait words and the subscriber table: written by subscribers.
    Subs,
}

impl Part {
    fn suffix(self) -> &'static str {
        match self {
            Part::Data => "data",
            Part::Subs => "subs",
        }
    }
}

/// The `shm_open` name (without the leading `/`) of one part of a topic.
/// Both names must already be valid.
pub fn segment_name(bus: &str, topic: &str, part: Part) -> String {
    format!(
        "{SEGMENT_PREFIX}{bus}.{}.{}",
        topic.replace('/', ":"),
        part.suffix()
    )
}

/// Suffix of a service's segment; topics end in `.data`/`.subs`, so a
/// service never shares a file name with a topic of the same name.
pub const SERVICE_SUFFIX: &str = "svc";

/// The `shm_open` name (without the leading `/`) of a service's segment:
/// `shmbus.<bus>.<service with '/' as ':'>.svc`. Both names must already be
/// valid. It starts with [`bus_segment_prefix`], so removing a bus's
/// segments removes its services too.
pub fn service_segment_name(bus: &str, service: &str) -> String {
    format!(
        "{SEGMENT_PREFIX}{bus}.{}.{SERVICE_SUFFIX}",
        service.replace('/', ":")
    )
}

/// Parses a file name from `/dev/shm` back into a service name if it is a
/// service segment of `bus` (and round-trips exactly).
pub fn parse_service_segment_name(bus: &str, file: &str) -> Option<String> {
    let rest = file.strip_prefix(&bus_segment_prefix(bus))?;
    let svc = rest.strip_suffix(".svc")?;
    if svc.contains('/') {
        return None;
    }
    let svc = svc.replace(':', "/");
    validate_service(&svc).ok()?;
    (service_segment_name(bus, &svc) == file).then_some(svc)
}

/// Prefix shared by every segment of `bus`.
pub fn bus_segment_prefix(bus: &str) -> String {
    format!("{SEGMENT_PREFIX}{bus}.")
}

/// Parses a file name from `/dev/shm` back into (topic, part) if it belongs to
/// `bus`. Returns `None` for anything else, including names that would not
/// round-trip (so a crafted file can never alias a valid topic).
pub fn parse_segment_name(bus: &str, file: &str) -> Option<(String, Part)> {
    let rest = file.strip_prefix(&bus_segment_prefix(bus))?;
    let (topic, part) = if let Some(t) = rest.strip_suffix(".data") {
        (t, Part::Data)
    } else if let Some(t) = rest.strip_suffix(".subs") {
        (t, Part::Subs)
    } else {
        return None;
    };
    if topic.contains('/') {
        return None;
    }
    let topic = topic.replace(':', "/");
    validate_topic(&topic).ok()?;
    (segment_name(bus, &topic, part) == file).then_some((topic, part))
}

/// Where the daemon's socket and lock live: `SHMBUS_RUNTIME_DIR`, else
/// `$XDG_RUNTIME_DIR/shmbus`, else `/tmp/shmbus-<uid>`.
pub fn default_runtime_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SHMBUS_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        return Path::new(&dir).join("shmbus");
    }
    PathBuf::from(format!("/tmp/shmbus-{}", nix::unistd::getuid()))
}

/// The control socket of `bus` in `runtime_dir`.
pub fn socket_path(runtime_dir: &Path, bus: &str) -> PathBuf {
    runtime_dir.join(format!("{bus}.sock"))
}

/// The lock file (one daemon per bus) of `bus` in `runtime_dir`.
pub fn lock_path(runtime_dir: &Path, bus: &str) -> PathBuf {
    runtime_dir.join(format!("{bus}.lock"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bus_names() {
        assert!(validate_bus("default").is_ok());
        assert!(validate_bus("a-B_9").is_ok());
        assert!(validate_bus(&"x".repeat(32)).is_ok());
        assert!(validate_bus(&"x".repeat(33)).is_err());
        assert!(validate_bus("").is_err());
        assert!(validate_bus("a.b").is_err());
        assert!(validate_bus("a/b").is_err());
    }

    #[test]
    fn topic_names_name_the_rule() {
        assert!(validate_topic("sensors/imu/0").is_ok());
        assert!(validate_topic("a.b-c_d").is_ok());
        for (bad, rule) in [
            ("", "empty"),
            ("/a", "start or end"),
            ("a/", "start or end"),
            ("a//b", "empty segment"),
            ("a/../b", ".."),
            ("a b", "may only contain"),
            ("a:b", "may only contain"),
        ] {
            let err = validate_topic(bad).unwrap_err().to_string();
            assert!(err.contains(rule), "{bad:?}: {err}");
        }
        assert!(validate_topic(&"a".repeat(129)).is_err());
    }

    #[test]
    fn segment_names_round_trip() {
        for topic in ["a", "sensors/imu/0", "x.data", "a.b/c.subs"] {
            for part in [Part::Data, Part::Subs] {
                let name = segment_name("bus1", topic, part);
                assert!(!name.contains('/'));
                assert_eq!(
                    parse_segment_name("bus1", &name),
                    Some((topic.to_string(), part))
                );
                assert_eq!(parse_segment_name("bus", &name), None);
            }
        }
        assert_eq!(parse_segment_name("b", "shmbus.b.a::b.data"), None);
        assert_eq!(parse_segment_name("b", "shmbus.b.a.other"), None);
    }

    #[test]
    fn service_segment_names_round_trip_apart_from_topics() {
        for svc in ["a", "math/add", "x.data", "a.b/c.svc"] {
            let name = service_segment_name("bus1", svc);
            assert!(name.starts_with(&bus_segment_prefix("bus1")));
            assert_eq!(
                parse_service_segment_name("bus1", &name),
                Some(svc.to_string())
            );
            assert_eq!(parse_service_segment_name("bus", &name), None);
            // Never taken for a topic segment, and no topic's is a service's.
            assert_eq!(parse_segment_name("bus1", &name), None);
            for part in [Part::Data, Part::Subs] {
                let t = segment_name("bus1", svc, part);
                assert_eq!(parse_service_segment_name("bus1", &t), None);
            }
        }
        assert_eq!(parse_service_segment_name("b", "shmbus.b.a::b.svc"), None);
    }
}
