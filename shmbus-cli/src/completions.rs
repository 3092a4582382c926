//! `shmbus completions SHELL`: prints a completion script generated from the
//! same clap grammar the tool parses with, so it never falls out of date.

use clap_complete::Shell;

use crate::error::CliError;

const EXAMPLES: &str = "\
Examples:
  shmbus completions bash > ~/.local/share/bash-completion/completions/shmbus
  shmbus completions zsh > ~/.zfunc/_shmbus
  shmbus completions fish > ~/.config/fish/completions/shmbus.fish";

/// Shells we generate for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ShellArg {
    /// GNU bash.
    Bash,
    /// Z shell.
    Zsh,
    /// fish.
    Fish,
}

/// Options of `shmbus completions`.
#[derive(clap::Args, Debug)]
#[command(after_help = EXAMPLES)]
pub struct CompletionsArgs {
    /// Shell to generate the script for.
    #[arg(value_enum)]
    pub shell: ShellArg,
}

/// Runs `shmbus completions`.
pub fn run(args: CompletionsArgs, mut grammar: clap::Command) -> Result<(), CliError> {
    let shell = match args.shell {
        ShellArg::Bash => Shell::Bash,
        ShellArg::Zsh => Shell::Zsh,
        ShellArg::Fish => Shell::Fish,
    };
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut grammar, "shmbus", &mut script);
    let mut out = crate::output::Output::new();
    out.write(&script)?;
    out.flush()
}
