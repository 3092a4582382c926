//! `shmbus create TOPIC` and `shmbus rm TOPIC`: managing topics.
//!
//! Settings are checked here with the library's own rules
//! (`TopicConfig::validate`) before the daemon is asked, so a capacity that
//! is not a power of two or a size out of range is a usage error (exit 2)
//! that names the rule, even when no daemon runs.

use shmbus::{Policy, TopicConfig};

use crate::error::CliError;
use crate::global::Global;
use crate::units;

const CREATE_EXAMPLES: &str = "\
Examples:
  shmbus create sensors/imu/0
  shmbus create frames --capacity 16 --max-msg-size 8M
  shmbus create telemetry --capacity 65536 --max-msg-size 256 --policy drop-oldest";

const RM_EXAMPLES: &str = "\
Examples:
  shmbus rm sensors/imu/0
  shmbus rm a b c";

/// Options of `shmbus create`; unset ones take the library's defaults.
#[derive(clap::Args, Debug)]
#[command(after_help = CREATE_EXAMPLES)]
pub struct CreateArgs {
    /// Name of the new topic, e.g. `sensors/imu/0`.
    pub topic: String,
    /// Number of message slots in the ring (a power of two) [default: 1024].
    #[arg(long, value_name = "N")]
    pub capacity: Option<u64>,
    /// Largest message in bytes; K, M, G suffixes are binary (64K = 65536) [default: 4K].
    #[arg(long, value_name = "BYTES", value_parser = shmbus::parse_size::<u32>)]
    pub max_msg_size: Option<u32>,
    /// What happens when the ring is full [default: block].
    #[arg(long, value_enum)]
    pub policy: Option<Policy>,
    /// Most publishers attached at once [default: 64].
    #[arg(long, value_name = "N")]
    pub max_publishers: Option<u32>,
    /// Most subscribers attached at once [default: 64].
    #[arg(long, value_name = "N")]
    pub max_subscribers: Option<u32>,
}

impl CreateArgs {
    /// The settings asked for, over the library's defaults.
    fn config(&self) -> TopicConfig {
        let mut cfg = TopicConfig::default();
        if let Some(capacity) = self.capacity {
            cfg.capacity = capacity;
        }
        if let Some(size) = self.max_msg_size {
            cfg.max_msg_size = size;
        }
        if let Some(policy) = self.policy {
            cfg.policy = policy;
        }
        if let Some(n) = self.max_publishers {
            cfg.max_publishers = n;
        }
        if let Some(n) = self.max_subscribers {
            cfg.max_subscribers = n;
        }
        cfg
    }
}

/// Runs `shmbus create`.
pub fn create(global: &Global, args: CreateArgs) -> Result<(), CliError> {
    shmbus::names::validate_topic(&args.topic)?;
    let cfg = args.config();
    cfg.validate()?;
    let bus = global.connect()?;
    let info = bus
        .create_topic(&args.topic, &cfg)
        .map_err(|e| CliError::from(e).context(format_args!("cannot create `{}`", args.topic)))?;
    let c = &info.config;
    let line = format!(
        "created topic `{}`: {} slots of up to {}, policy {}, {} of shared memory\n",
        info.topic,
        c.capacity,
        units::bytes(u64::from(c.max_msg_size)),
        c.policy,
        units::bytes(info.memory_bytes)
    );
    let mut out = crate::output::Output::new();
    out.write(line.as_bytes())?;
    out.flush()
}

/// Options of `shmbus rm`.
#[derive(clap::Args, Debug)]
#[command(after_help = RM_EXAMPLES)]
pub struct RmArgs {
    /// Topics to remove; their subscribers see the topic closed.
    #[arg(value_name = "TOPIC", required = true)]
    pub topics: Vec<String>,
}

/// Runs `shmbus rm`.
pub fn rm(global: &Global, args: RmArgs) -> Result<(), CliError> {
    crate::global::validate_topics(&args.topics)?;
    let bus = global.connect()?;
    let mut out = crate::output::Output::new();
    for topic in &args.topics {
        bus.remove_topic(topic)
            .map_err(|e| CliError::from(e).context(format_args!("cannot remove `{topic}`")))?;
        out.write(format!("removed topic `{topic}`\n").as_bytes())?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(capacity: Option<u64>, size: Option<u32>) -> CreateArgs {
        CreateArgs {
            topic: "t".into(),
            capacity,
            max_msg_size: size,
            policy: Some(Policy::DropOldest),
            max_publishers: None,
            max_subscribers: Some(3),
        }
    }

    #[test]
    fn unset_options_keep_the_defaults() {
        let cfg = args(None, None).config();
        let def = TopicConfig::default();
        assert_eq!(cfg.capacity, def.capacity);
        assert_eq!(cfg.max_msg_size, def.max_msg_size);
        assert_eq!(cfg.max_publishers, def.max_publishers);
        assert_eq!(cfg.max_subscribers, 3);
        assert_eq!(cfg.policy, Policy::DropOldest);
    }

    #[test]
    fn bad_settings_are_usage_errors() {
        for bad in [
            args(Some(1000), None),
            args(Some(0), None),
            args(None, Some(0)),
        ] {
            let e = CliError::from(bad.config().validate().unwrap_err());
            assert_eq!(e.exit_code(), 2, "{}", e.message);
        }
        assert!(args(Some(2048), Some(64 << 10)).config().validate().is_ok());
    }
}
