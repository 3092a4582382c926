//! The command line grammar: global options and the list of subcommands.
//! Each subcommand's own options live beside its code (`publish.rs`,
//! `subscribe.rs`, ...); this file only gathers them for clap.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use shmbus::{Bus, BusOptions};

use crate::error::CliError;

/// Shown after the top-level `--help`.
const EXAMPLES: &str = "\
Quick start:
  shmbusd &                          # start the bus daemon
  shmbus sub sensors/temp            # terminal 1: print messages as they come
  shmbus pub sensors/temp 21.5       # terminal 2: publish one message
  shmbus stats                       # who is publishing, who is behind
  shmbus serve upper -- tr a-z A-Z & # a service: request on stdin, reply from stdout
  shmbus call upper hello            # prints HELLO

Exit status: 0 ok, 1 runtime error, 2 usage error, 3 timeout.";

/// Publish, subscribe, inspect and manage a shmbus shared-memory message bus.
#[derive(Parser, Debug)]
#[command(name = "shmbus", version, about, after_help = EXAMPLES)]
pub struct Cli {
    /// Options every subcommand takes.
    #[command(flatten)]
    pub global: Global,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

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

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Publish messages: arguments, stdin lines or a file.
    #[command(name = "pub")]
    Pub(crate::publish::PubArgs),
    /// Print messages of one or more topics as they arrive.
    #[command(name = "sub")]
    Sub(crate::subscribe::SubArgs),
    /// List the bus's topics with their settings and usage.
    #[command(visible_alias = "ls")]
    Topics(crate::topics::TopicsArgs),
    /// Counters, rates and lag per topic, publisher and subscriber.
    Stats(crate::stats::StatsArgs),
    /// Create a topic with chosen settings.
    Create(crate::manage::CreateArgs),
    /// Remove a topic and its shared memory.
    Rm(crate::manage::RmArgs),
    /// Call a service: send one request, print its reply.
    Call(crate::call::CallArgs),
    /// Answer a service's calls: echo them, or run a command for each (inetd style).
    Serve(crate::serve::ServeArgs),
    /// List the bus's services with their servers, clients and counters.
    Services(crate::services::ServicesArgs),
    /// Measure latency and throughput between two processes on this machine.
    Bench(crate::bench::BenchCmd),
    /// Carry topics to and from other hosts through Zenoh (runs shmbus-bridge).
    Bridge(crate::bridge::BridgeArgs),
    /// Print a shell completion script.
    Completions(crate::completions::CompletionsArgs),
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
    use clap::CommandFactory;

    #[test]
    fn grammar_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn counts_are_positive_whole_numbers() {
        assert_eq!(parse_positive("3"), Ok(3));
        assert_eq!(parse_positive("0").unwrap_err(), "must be at least 1");
        assert!(parse_positive("-1").unwrap_err().contains("whole number"));
        assert!(parse_positive("1.5").is_err());
    }

    #[test]
    fn every_subcommand_has_an_example() {
        for sub in Cli::command().get_subcommands() {
            let help = sub
                .get_after_help()
                .map(|h| h.to_string())
                .unwrap_or_default();
            assert!(
                help.contains("shmbus "),
                "`{}` has no example in its --help",
                sub.get_name()
            );
        }
    }
}
