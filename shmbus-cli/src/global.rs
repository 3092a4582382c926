//! What every subcommand shares: the global options (which bus, where its
//! daemon's socket is) and the checks of arguments common to several
//! subcommands. Below every subcommand; `cli.rs` gathers them above.

use std::path::PathBuf;

use shmbus::{Bus, BusOptions};

use crate::error::CliError;

/// Options every subcommand takes: which bus, and where its daemon's socket is.
#[derive(clap::Args, Debug)]
pub struct Global {
    /// Bus to use ([A-Za-z0-9_-]{1,32}) [default: $SHMBUS_BUS, else `default`].
    // The library's default (`BusOptions::default`), so that the CLI and
    // every other client read `SHMBUS_BUS` by the same rule.
    #[arg(long, global = true, value_name = "NAME", default_value_t = BusOptions::default().name, hide_default_value = true)]
    pub bus: String,
    /// Directory of the daemon's socket [default: $SHMBUS_RUNTIME_DIR, else
    /// $XDG_RUNTIME_DIR/shmbus, else /tmp/shmbus-UID].
    // Not a clap `env`: the library resolves the default (once, for the
    // daemon and every client alike), and it treats an empty variable as
    // unset where clap would call it a missing value.
    #[arg(long, global = true, value_name = "DIR")]
    pub runtime_dir: Option<PathBuf>,
}

impl Global {
    /// Connects to the bus's daemon; a bad bus name is a usage error.
    pub fn connect(&self) -> Result<Bus, CliError> {
        shmbus::names::validate_bus(&self.bus)?;
        let opts = BusOptions {
            name: self.bus.clone(),
            runtime_dir: self
                .runtime_dir
                .clone()
                .filter(|d| !d.as_os_str().is_empty()),
        };
        Ok(Bus::connect_with(&opts)?)
    }
}

/// Parses a count that must be at least 1 (`-c`, `--repeat`), with an error
/// that says so in words rather than as a range up to 2^64.
pub fn parse_positive(text: &str) -> Result<u64, String> {
    match text.trim().parse::<u64>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("`{text}` is not a whole number")),
    }
}

/// Checks topic names given on the command line before anything connects,
/// so a typo is a usage error that names the rule it broke.
pub fn validate_topics<'a>(topics: impl IntoIterator<Item = &'a String>) -> Result<(), CliError> {
    for topic in topics {
        shmbus::names::validate_topic(topic)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_positive_whole_numbers() {
        assert_eq!(parse_positive("3"), Ok(3));
        assert_eq!(parse_positive("0").unwrap_err(), "must be at least 1");
        assert!(parse_positive("-1").unwrap_err().contains("whole number"));
        assert!(parse_positive("1.5").is_err());
    }
}
