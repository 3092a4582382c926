//! The command line of `shmbus-bridge` (reached as `shmbus bridge`: the CLI
//! passes its `--bus`/`--runtime-dir` and the rest of the arguments on).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use shmbus::Pattern;

/// How the Zenoh session joins the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// A peer: listens on `--listen`, dials `--connect` (other bridges or
    /// routers).
    Peer,
    /// A client of the zenohd router(s) named by `--connect`.
    Client,
}

/// Carries chosen topics of a local shmbus bus to other hosts through Zenoh.
///
/// Nothing leaves the host unless a topic matches an `--export` pattern,
/// nothing enters unless it matches an `--import` pattern, and multicast
/// scouting stays off unless `--scout` is given: the bridge talks only to
/// the endpoints named.
#[derive(Parser, Debug, Clone)]
// `args_override_self`: `shmbus --bus X bridge --bus Y` passes both; the
// last one wins instead of being an error.
#[command(name = "shmbus-bridge", version, args_override_self = true)]
pub struct BridgeArgs {
    /// Bus to bridge [default: $SHMBUS_BUS, else `default`].
    #[arg(long, value_name = "NAME", default_value_t = shmbus::BusOptions::default().name, hide_default_value = true)]
    pub bus: String,
    /// Directory of the daemon's socket [default: $SHMBUS_RUNTIME_DIR, else
    /// $XDG_RUNTIME_DIR/shmbus, else /tmp/shmbus-UID].
    #[arg(long, value_name = "DIR")]
    pub runtime_dir: Option<PathBuf>,
    /// Export local topics matching PATTERN (`*`, `sensors/*`, or a topic);
    /// repeatable. Topics that appear later are picked up.
    #[arg(long = "export", value_name = "PATTERN", value_parser = crate::pattern::parse)]
    pub exports: Vec<Pattern>,
    /// Import remote topics matching PATTERN into the local bus; repeatable.
    #[arg(long = "import", value_name = "PATTERN", value_parser = crate::pattern::parse)]
    pub imports: Vec<Pattern>,
    /// Answer Zenoh queries on `PREFIX/@service/NAME` by calling local
    /// services matching PATTERN (`*`, `svc/*`, or a name); repeatable.
    /// Services that appear later are picked up.
    #[arg(long = "export-service", value_name = "PATTERN", value_parser = crate::pattern::parse)]
    pub export_services: Vec<Pattern>,
    /// Serve local service NAME (an exact name) by forwarding its calls to
    /// the bridge that exports it over Zenoh; repeatable.
    #[arg(long = "import-service", value_name = "NAME", value_parser = parse_service_name)]
    pub import_services: Vec<String>,
    /// Bound on one bridged service call, in milliseconds: the exporting
    /// side's local call, and the importing side's wait for the remote
    /// reply.
    #[arg(long, value_name = "MS", default_value_t = 5000)]
    pub call_timeout_ms: u64,
    /// Zenoh endpoint to listen on (`tcp/0.0.0.0:7447`); repeatable. None by
    /// default: the bridge then only dials out.
    #[arg(long = "listen", value_name = "ENDPOINT")]
    pub listen: Vec<String>,
    /// Zenoh endpoint to connect to (`tcp/10.0.0.2:7447`); repeatable.
    #[arg(long = "connect", value_name = "ENDPOINT")]
    pub connect: Vec<String>,
    /// Session mode.
    #[arg(long, value_enum, default_value_t = Mode::Peer)]
    pub mode: Mode,
    /// Turn multicast scouting on (off by default: nothing is sent to
    /// addresses the command line did not name).
    #[arg(long)]
    pub scout: bool,
    /// A Zenoh configuration file (JSON5) to start from; the options above
    /// override it.
    #[arg(long, value_name = "FILE")]
    pub zenoh_config: Option<PathBuf>,
    /// First chunks of every Zenoh key: local topic T is key `PREFIX/T`.
    #[arg(long, value_name = "PREFIX", default_value = "shmbus", value_parser = parse_key_prefix)]
    pub key_prefix: String,
    /// How long an import waits for room in a full local `block` topic
    /// before it drops the message (counted), in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub publish_timeout_ms: u64,
    /// Replaces the host part of this bridge's origin id (by default
    /// /etc/machine-id and the host name): give each host its own TEXT when
    /// cloned hosts share both.
    #[arg(long, value_name = "TEXT")]
    pub origin: Option<String>,
    /// Export in frames: the messages of a topic that are ready together
    /// (up to 16 KiB) cross as one Zenoh sample instead of one sample
    /// each, which cuts Zenoh's per-sample work (about 3x the throughput of
    /// small messages, docs/bridge.md). A message that is alone goes alone,
    /// at once: latency does not change. Every shmbus bridge imports both
    /// forms; a plain Zenoh program reading `PREFIX/TOPIC` sees a frame as
    /// one sample (its layout is in docs/bridge.md), so leave this off when
    /// such programs read the exported keys.
    #[arg(long)]
    pub batch: bool,
    /// How often new local services are looked for (new topics need no
    /// looking: the daemon announces them), in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 500)]
    pub poll_ms: u64,
    /// Slots of a topic the importer creates (a power of two). With
    /// `--policy`/`--max-msg-size`: an imported topic that does not exist
    /// yet is created with these settings (the others the library's
    /// defaults, as `shmbus create`); an existing one is used as it is.
    /// Without any of the three, the daemon creates it with its defaults.
    #[arg(long, value_name = "N")]
    pub capacity: Option<u64>,
    /// Overflow policy of a topic the importer creates (see `--capacity`).
    #[arg(long, value_enum)]
    pub policy: Option<shmbus::Policy>,
    /// Largest message of a topic the importer creates, in bytes; K, M, G
    /// suffixes are binary (64K = 65536) (see `--capacity`).
    #[arg(long, value_name = "BYTES", value_parser = shmbus::parse_size::<u32>)]
    pub max_msg_size: Option<u32>,
}

fn parse_service_name(s: &str) -> Result<String, String> {
    shmbus::names::validate_service(s)
        .map_err(|e| format!("{e} (--import-service takes exact service names, not patterns)"))?;
    Ok(s.to_string())
}

fn parse_key_prefix(s: &str) -> Result<String, String> {
    crate::pattern::validate_key_prefix(s)?;
    Ok(s.to_string())
}

impl BridgeArgs {
    /// The bound on an import's wait for room.
    pub fn publish_timeout(&self) -> Duration {
        Duration::from_millis(self.publish_timeout_ms)
    }

    /// The bound on one bridged service call.
    pub fn call_timeout(&self) -> Duration {
        Duration::from_millis(self.call_timeout_ms.max(1))
    }

    /// The topic discovery period.
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_ms.max(10))
    }

    /// The settings of topics the importer creates: `None` when none of
    /// `--capacity`, `--policy`, `--max-msg-size` was given (the daemon then
    /// creates them with its defaults). Unset ones take the library's
    /// defaults. Checked with the library's rules; the error names the rule.
    pub fn import_topic_config(&self) -> Result<Option<shmbus::TopicConfig>, String> {
        if self.capacity.is_none() && self.policy.is_none() && self.max_msg_size.is_none() {
            return Ok(None);
        }
        let mut cfg = shmbus::TopicConfig::default();
        if let Some(c) = self.capacity {
            cfg.capacity = c;
        }
        if let Some(p) = self.policy {
            cfg.policy = p;
        }
        if let Some(m) = self.max_msg_size {
            cfg.max_msg_size = m;
        }
        cfg.validate()
            .map_err(|e| format!("--capacity/--policy/--max-msg-size: {e}"))?;
        Ok(Some(cfg))
    }

    /// Where to find the bus.
    pub fn bus_options(&self) -> shmbus::BusOptions {
        shmbus::BusOptions {
            name: self.bus.clone(),
            runtime_dir: self
                .runtime_dir
                .clone()
                .filter(|d| !d.as_os_str().is_empty()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cli_may_pass_bus_twice_and_the_last_wins() {
        let a = BridgeArgs::parse_from([
            "shmbus-bridge",
            "--bus",
            "x",
            "--export",
            "a/*",
            "--bus",
            "y",
            "--export",
            "b",
        ]);
        assert_eq!(a.bus, "y");
        assert_eq!(
            a.exports,
            [Pattern::parse("a/*").unwrap(), Pattern::parse("b").unwrap()]
        );
        assert!(BridgeArgs::try_parse_from(["shmbus-bridge", "--export", "a*"]).is_err());
    }

    #[test]
    fn imported_services_are_exact_names() {
        let a = BridgeArgs::parse_from([
            "shmbus-bridge",
            "--import-service",
            "svc/echo",
            "--export-service",
            "svc/*",
        ]);
        assert_eq!(a.import_services, ["svc/echo"]);
        assert_eq!(a.export_services, [Pattern::parse("svc/*").unwrap()]);
        assert_eq!(a.call_timeout(), Duration::from_secs(5));
        let e = BridgeArgs::try_parse_from(["shmbus-bridge", "--import-service", "svc/*"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("exact service names"), "{e}");
    }

    #[test]
    fn import_topic_settings_are_checked_with_the_library_rules() {
        let parse = |extra: &[&str]| {
            let mut v = vec!["shmbus-bridge", "--import", "*"];
            v.extend_from_slice(extra);
            BridgeArgs::parse_from(v).import_topic_config()
        };
        assert_eq!(parse(&[]), Ok(None));
        let cfg = parse(&["--capacity", "32", "--policy", "drop-oldest"])
            .unwrap()
            .unwrap();
        assert_eq!(cfg.capacity, 32);
        assert_eq!(cfg.policy, shmbus::Policy::DropOldest);
        assert_eq!(
            cfg.max_msg_size,
            shmbus::TopicConfig::default().max_msg_size
        );
        let cfg = parse(&["--max-msg-size", "64K"]).unwrap().unwrap();
        assert_eq!(cfg.max_msg_size, 65536);
        let e = parse(&["--capacity", "33"]).unwrap_err();
        assert!(e.contains("power of two"), "{e}");
        let e = parse(&["--max-msg-size", "0"]).unwrap_err();
        assert!(e.contains("max message size"), "{e}");
        assert!(BridgeArgs::try_parse_from(["shmbus-bridge", "--policy", "newest"]).is_err());
        assert!(BridgeArgs::try_parse_from(["shmbus-bridge", "--max-msg-size", "1X"]).is_err());
    }
}
