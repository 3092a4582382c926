//! Usage errors as one line (SPEC §7: errors go to stderr as one line that
//! says what failed and what to do), with exit status 2.
//!
//! clap reports a bad command line over several lines (the error, a tip, the
//! usage, "For more information..."). Parsing here goes through
//! `try_parse` and folds that report into one line:
//! `shmbus: invalid value 'newest' for '--policy <POLICY>'; [possible values:
//! block, drop-oldest]: see `shmbus create --help``. `--help`, `--version`
//! and a bare `shmbus` (which prints the help) keep clap's own output.

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};

use crate::cli::Cli;

/// Parses the command line, or exits: 0 after `--help`/`--version`, 2 after
/// a usage error printed as one line.
pub fn parse() -> Cli {
    match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => match e.kind() {
            ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => e.exit(),
            _ => {
                let args: Vec<String> = std::env::args().skip(1).collect();
                let sub = subcommand(&args);
                crate::error::warn(&one_line(&e.render().to_string(), sub.as_deref()));
                std::process::exit(2)
            }
        },
    }
}

/// Folds clap's report into one line and appends where to read more.
fn one_line(report: &str, subcommand: Option<&str>) -> String {
    let mut text = String::new();
    let mut usage = None;
    for line in report.lines().map(str::trim) {
        if line.is_empty() || line.starts_with("For more information") {
            continue;
        }
        if let Some(u) = line.strip_prefix("Usage: ") {
            usage = Some(u);
            continue;
        }
        let line = line.strip_prefix("error: ").unwrap_or(line);
        if !text.is_empty() {
            // "...were not provided:" is continued by the list of what.
            text.push_str(if text.ends_with(':') { " " } else { "; " });
        }
        text.push_str(line);
    }
    let help = match subcommand {
        Some(sub) => format!("shmbus {sub} --help"),
        None => "shmbus --help".to_string(),
    };
    match usage {
        Some(u) => format!("{text} (usage: {u}): see `{help}`"),
        None => format!("{text}: see `{help}`"),
    }
}

/// The subcommand named on the command line, if any: the first argument that
/// is a subcommand's name or alias.
fn subcommand(args: &[String]) -> Option<String> {
    let cmd = Cli::command();
    args.iter().find_map(|arg| {
        cmd.get_subcommands()
            .find(|s| s.get_name() == arg || s.get_all_aliases().any(|a| a == arg))
            .map(|s| s.get_name().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folded(args: &[&str]) -> String {
        let e = Cli::try_parse_from(std::iter::once("shmbus").chain(args.iter().copied()))
            .expect_err("a usage error");
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        one_line(&e.render().to_string(), subcommand(&args).as_deref())
    }

    #[test]
    fn usage_errors_fold_into_one_line_with_a_pointer_to_help() {
        let missing = folded(&["pub"]);
        assert_eq!(
            missing,
            "the following required arguments were not provided: <TOPIC> (usage: shmbus pub <TOPIC> [MSG]...): see `shmbus pub --help`"
        );
        let policy = folded(&["--bus", "b", "create", "t", "--policy", "newest"]);
        assert!(
            policy.starts_with("invalid value 'newest' for '--policy <POLICY>'; [possible values: block, drop-oldest]"),
            "{policy}"
        );
        assert!(policy.ends_with(": see `shmbus create --help`"), "{policy}");
        let unknown = folded(&["ls", "--bogus"]);
        assert!(unknown.contains("'--bogus'"), "{unknown}");
        assert!(unknown.ends_with("see `shmbus topics --help`"), "{unknown}");
        for line in [missing, policy, unknown] {
            assert!(!line.contains('\n'), "{line}");
        }
        assert!(folded(&["nosuch"]).ends_with("see `shmbus --help`"));
    }
}
