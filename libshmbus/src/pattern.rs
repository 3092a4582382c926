//! Topic patterns: which topics a pattern subscription, a recorder or the
//! bridge follows.
//!
//! A pattern is a topic name in which whole segments may be wildcards:
//! * `*` matches exactly one segment: `sensors/*` matches `sensors/imu`,
//!   not `sensors` nor `sensors/imu/0`;
//! * `**` matches any number of segments, none included: `sensors/**`
//!   matches `sensors`, `sensors/imu` and `sensors/imu/0`, and `**` alone
//!   matches every topic;
//! * any other segment matches itself, so a pattern without wildcards is an
//!   exact topic name.
//!
//! Segments are whole: `sensors/**` does not match `sensorsX/a`, and a
//! wildcard inside a segment (`sens*`) is refused. These are Zenoh's `*` and
//! `**`, so a pattern is also a valid Zenoh key expression (the bridge maps
//! one to the other unchanged).

use std::fmt;

use crate::error::{Error, Result};
use crate::names::validate_topic;

/// One segment of a parsed pattern.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Seg {
    /// `*`: one segment.
    One,
    /// `**`: any number of segments.
    Any,
    /// A literal segment.
    Lit(String),
}

/// A parsed, valid topic pattern (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Pattern {
    text: String,
    segs: Vec<Seg>,
}

impl Pattern {
    /// Parses `text`; the error names the rule it breaks.
    pub fn parse(text: &str) -> Result<Pattern> {
        let bad = |rule| Error::InvalidName {
            kind: "pattern",
            name: text.escape_default().to_string(),
            rule,
        };
        // The literal rules are the topic rules: check them on the text with
        // each wildcard segment standing in as a plain one.
        let stand_in: Vec<&str> = text
            .split('/')
            .map(|s| if s == "*" || s == "**" { "x" } else { s })
            .collect();
        if stand_in.iter().any(|s| s.contains('*')) {
            return Err(bad(
                "`*` and `**` must be whole segments (`sensors/*`, `sensors/**`), not part of one",
            ));
        }
        validate_topic(&stand_in.join("/")).map_err(|e| match e {
            Error::InvalidName { rule, .. } => bad(rule),
            other => other,
        })?;
        let mut segs: Vec<Seg> = Vec::new();
        for s in text.split('/') {
            let seg = match s {
                "*" => Seg::One,
                "**" => Seg::Any,
                lit => Seg::Lit(lit.to_string()),
            };
            // `**/**` means what `**` means: keep one.
            if !(seg == Seg::Any && segs.last() == Some(&Seg::Any)) {
                segs.push(seg);
            }
        }
        Ok(Pattern {
            text: text.to_string(),
            segs,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the pattern has no wildcard (it names one topic).
    pub fn is_exact(&self) -> bool {
        self.segs.iter().all(|s| matches!(s, Seg::Lit(_)))
    }

    /// Whether `topic` is one of the topics the pattern covers.
    pub fn matches(&self, topic: &str) -> bool {
        let parts: Vec<&str> = topic.split('/').collect();
        matches_from(&self.segs, &parts)
    }
}

/// Whether `segs` matches all of `parts`. `**` tries every split; patterns
/// are at most 64 segments long (128 bytes), so the recursion is bounded,
/// and consecutive `**` were merged at parse time.
fn matches_from(segs: &[Seg], parts: &[&str]) -> bool {
    match segs.split_first() {
        None => parts.is_empty(),
        Some((Seg::Any, rest)) => (0..=parts.len()).any(|skip| matches_from(rest, &parts[skip..])),
        Some((seg, rest)) => match parts.split_first() {
            None => false,
            Some((part, more)) => {
                let here = match seg {
                    Seg::One => true,
                    Seg::Lit(lit) => lit == part,
                    Seg::Any => unreachable!("handled above"),
                };
                here && matches_from(rest, more)
            }
        },
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for Pattern {
    type Err = Error;
    fn from_str(s: &str) -> Result<Pattern> {
        Pattern::parse(s)
    }
}

/// Whether any of `patterns` covers `topic`.
pub fn any_matches(patterns: &[Pattern], topic: &str) -> bool {
    patterns.iter().any(|p| p.matches(topic))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, t: &str) -> bool {
        Pattern::parse(p).unwrap().matches(t)
    }

    #[test]
    fn one_star_is_one_segment() {
        assert!(m("a/*", "a/b"));
        assert!(!m("a/*", "a"));
        assert!(!m("a/*", "a/b/c"));
        assert!(m("*/x", "q/x"));
        assert!(!m("*/x", "q/y"));
        assert!(m("*", "a"));
        assert!(!m("*", "a/b"));
    }

    #[test]
    fn two_stars_are_any_depth_on_whole_segments() {
        assert!(m("a/**", "a"));
        assert!(m("a/**", "a/b"));
        assert!(m("a/**", "a/b/c"));
        assert!(!m("a/**", "ab/c"));
        assert!(!m("a/**", "ab"));
        assert!(m("**", "x"));
        assert!(m("**", "x/y/z"));
        assert!(m("a/**/z", "a/z"));
        assert!(m("a/**/z", "a/b/c/z"));
        assert!(!m("a/**/z", "a/b/c/y"));
        assert!(m("**/**/z", "a/z"));
        assert!(m("**/*", "a"));
        assert!(m("a/**/*/c", "a/b/c"));
        assert!(!m("a/**/*/c", "a/c"));
    }

    #[test]
    fn exact_names_match_only_themselves() {
        let p = Pattern::parse("sensors/imu").unwrap();
        assert!(p.is_exact());
        assert!(p.matches("sensors/imu"));
        assert!(!p.matches("sensors/imu/0"));
        assert!(!p.matches("sensors"));
        assert!(!Pattern::parse("sensors/*").unwrap().is_exact());
    }

    #[test]
    fn invalid_patterns_name_the_rule() {
        for (bad, rule) in [
            ("sens*", "whole segments"),
            ("a/**x", "whole segments"),
            ("***", "whole segments"),
            ("", "empty"),
            ("/a/*", "start or end"),
            ("a//*", "empty segment"),
            ("a/*/", "start or end"),
            ("a b/*", "may only contain"),
            ("../*", "`..`"),
        ] {
            let e = Pattern::parse(bad).unwrap_err().to_string();
            assert!(e.contains(rule), "{bad}: {e}");
            assert!(e.contains("pattern"), "{bad}: {e}");
        }
    }
}
