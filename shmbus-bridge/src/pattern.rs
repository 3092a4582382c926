//! Topic patterns of `--export` and `--import`, and their Zenoh key
//! expressions.
//!
//! The patterns are the library's ([`shmbus::Pattern`]): `*` is one
//! segment, `**` any depth, anything else an exact name. They are Zenoh's
//! `*` and `**` too, so local topic `T` being Zenoh key `KEY_PREFIX/T`, a
//! pattern `P` becomes the key expression `KEY_PREFIX/P` unchanged.

use shmbus::Pattern;

/// Parses an `--export`/`--import` pattern; the error names the rule it
/// broke.
pub fn parse(s: &str) -> Result<Pattern, String> {
    Pattern::parse(s).map_err(|e| e.to_string())
}

/// The Zenoh key expression covering `pattern`'s keys under `key_prefix`.
pub fn key_expr(pattern: &Pattern, key_prefix: &str) -> String {
    format!("{key_prefix}/{pattern}")
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
    fn key_exprs() {
        let k = |p: &str, prefix: &str| key_expr(&parse(p).unwrap(), prefix);
        assert_eq!(k("**", "shmbus"), "shmbus/**");
        assert_eq!(k("sensors/*", "x/y"), "x/y/sensors/*");
        assert_eq!(k("a/b", "shmbus"), "shmbus/a/b");
        assert!(parse("a*").unwrap_err().contains("whole segments"));
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
