//! Topic patterns of `--export` and `--import`, and their Zenoh key
//! expressions.
//!
//! A pattern is one of:
//! * `*` — every topic of the bus;
//! * `PREFIX/*` — every topic under `PREFIX/`, at any depth (`sensors/*`
//!   matches `sensors/t` and `sensors/imu/0`, not `sensors` itself);
//! * an exact topic name.
//!
//! Local topic `T` is Zenoh key `KEY_PREFIX/T`, so a pattern becomes the key
//! expression `KEY_PREFIX/**`, `KEY_PREFIX/PREFIX/**` or `KEY_PREFIX/T`.

use std::fmt;

/// A parsed `--export`/`--import` pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TopicPattern {
    /// `*`: every topic.
    All,
    /// `PREFIX/*`: every topic below `PREFIX/` (the string holds `PREFIX`).
    Prefix(String),
    /// One topic, by its exact name.
    Exact(String),
}

impl TopicPattern {
    /// Parses a pattern; the error says which rule it broke.
    pub fn parse(s: &str) -> Result<TopicPattern, String> {
        if s == "*" {
            return Ok(TopicPattern::All);
        }
        if let Some(prefix) = s.strip_suffix("/*") {
            shmbus::names::validate_topic(prefix)
                .map_err(|e| format!("pattern `{s}`: its prefix is not a topic name ({e})"))?;
            return Ok(TopicPattern::Prefix(prefix.to_string()));
        }
        if s.contains('*') {
            return Err(format!(
                "pattern `{s}`: `*` is allowed only alone or as a last segment (`sensors/*`)"
            ));
        }
        shmbus::names::validate_topic(s).map_err(|e| format!("pattern `{s}`: {e}"))?;
        Ok(TopicPattern::Exact(s.to_string()))
    }

    /// Whether `topic` is covered by this pattern.
    pub fn matches(&self, topic: &str) -> bool {
        match self {
            TopicPattern::All => true,
            TopicPattern::Prefix(p) => topic
                .strip_prefix(p.as_str())
                .is_some_and(|rest| rest.starts_with('/')),
            TopicPattern::Exact(t) => topic == t,
        }
    }

    /// The Zenoh key expression covering the pattern's keys under
    /// `key_prefix`.
    pub fn key_expr(&self, key_prefix: &str) -> String {
        match self {
            TopicPattern::All => format!("{key_prefix}/**"),
            TopicPattern::Prefix(p) => format!("{key_prefix}/{p}/**"),
            TopicPattern::Exact(t) => format!("{key_prefix}/{t}"),
        }
    }
}

impl fmt::Display for TopicPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TopicPattern::All => f.write_str("*"),
            TopicPattern::Prefix(p) => write!(f, "{p}/*"),
            TopicPattern::Exact(t) => f.write_str(t),
        }
    }
}

/// Whether any of `patterns` covers `topic`.
pub fn any_matches(patterns: &[TopicPattern], topic: &str) -> bool {
    patterns.iter().any(|p| p.matches(topic))
}

/// Checks a `--key-prefix`: one or more `/`-separated non-empty chunks with
/// no Zenoh wildcard or reserved character, so that `PREFIX/TOPIC` is a
/// plain key.
pub fn validate_key_prefix(prefix: &str) -> Result<(), String> {
    let ok = !prefix.is_empty()
        && prefix.split('/').all(|chunk| {
            !chunk.is_empty()
                && chunk
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && !b"*$?#".contains(&b))
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "key prefix `{prefix}`: use non-empty `/`-separated chunks without `*`, `$`, `?` or `#` (default `shmbus`)"
        ))
    }
}

/// The local topic of a Zenoh key under `key_prefix`, if the key is
/// `KEY_PREFIX/TOPIC` with a valid topic name.
pub fn topic_of_key<'k>(key: &'k str, key_prefix: &str) -> Option<&'k str> {
    let topic = key.strip_prefix(key_prefix)?.strip_prefix('/')?;
    shmbus::names::validate_topic(topic).ok()?;
    Some(topic)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_match() {
        let all = TopicPattern::parse("*").unwrap();
        assert!(all.matches("a") && all.matches("a/b/c"));
        let p = TopicPattern::parse("sensors/*").unwrap();
        assert_eq!(p, TopicPattern::Prefix("sensors".into()));
        assert!(p.matches("sensors/t") && p.matches("sensors/imu/0"));
        assert!(!p.matches("sensors") && !p.matches("sensorsx/t") && !p.matches("other/t"));
        let e = TopicPattern::parse("a/b").unwrap();
        assert!(e.matches("a/b") && !e.matches("a/b/c") && !e.matches("a"));
        for bad in ["", "a*", "*/a", "a/*/b", "/*", "a//*", "**"] {
            assert!(TopicPattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn key_exprs() {
        assert_eq!(TopicPattern::All.key_expr("shmbus"), "shmbus/**");
        assert_eq!(
            TopicPattern::parse("sensors/*").unwrap().key_expr("x/y"),
            "x/y/sensors/**"
        );
        assert_eq!(
            TopicPattern::parse("a/b").unwrap().key_expr("shmbus"),
            "shmbus/a/b"
        );
    }

    #[test]
    fn keys_to_topics() {
        assert_eq!(topic_of_key("shmbus/a/b", "shmbus"), Some("a/b"));
        assert_eq!(topic_of_key("shmbusx/a", "shmbus"), None);
        assert_eq!(topic_of_key("shmbus/", "shmbus"), None);
        assert_eq!(topic_of_key("shmbus/a$b", "shmbus"), None);
        assert!(validate_key_prefix("shmbus").is_ok());
        assert!(validate_key_prefix("site/a").is_ok());
        for bad in ["", "a/", "/a", "a//b", "a/*", "a$"] {
            assert!(validate_key_prefix(bad).is_err(), "{bad}");
        }
    }
}
