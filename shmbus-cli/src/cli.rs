//! The command line grammar: global options and the list of subcommands.
//! Each subcommand's own options live beside its code (`publish.rs`,
//! `subscribe.rs`, ...); this file only gathers them for clap.

use clap::{Parser, Subcommand};

pub use crate::global::Global;

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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn grammar_is_consistent() {
        Cli::command().debug_assert();
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
