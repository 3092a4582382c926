//! What a failed command tells the user, and the exit status that goes with
//! it (SPEC §7): 1 runtime error, 2 usage error, 3 timeout. Every failure is
//! one line on stderr, `shmbus: <what failed>: <what to do>`.
//!
//! Writing into a closed pipe (`shmbus sub t | head -1`) is not a failure:
//! the reader has what it wanted, so it ends quietly with status 0.

use std::io;
use std::process::ExitCode;

/// Kinds of endings other than plain success, each with its exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Something went wrong at run time (exit 1).
    Runtime,
    /// The command line asked for something impossible (exit 2).
    Usage,
    /// A timeout ran out before the command was done (exit 3).
    Timeout,
    /// Standard output was closed by its reader: stop without a word (exit 0).
    ClosedOutput,
}

/// A failed command: its kind and the one line to show.
#[derive(Debug)]
pub struct CliError {
    /// Which exit status it ends with.
    pub kind: Kind,
    /// The line shown after `shmbus: ` (empty for [`Kind::ClosedOutput`]).
    pub message: String,
}

impl CliError {
    /// A run-time failure (exit 1).
    pub fn runtime(message: impl Into<String>) -> CliError {
        CliError {
            kind: Kind::Runtime,
            message: message.into(),
        }
    }

    /// A usage error (exit 2).
    pub fn usage(message: impl Into<String>) -> CliError {
        CliError {
            kind: Kind::Usage,
            message: message.into(),
        }
    }

    /// A timeout (exit 3).
    pub fn timeout(message: impl Into<String>) -> CliError {
        CliError {
            kind: Kind::Timeout,
            message: message.into(),
        }
    }

    /// Prefixes the message with what was being done, keeping the kind.
    pub fn context(mut self, what: impl std::fmt::Display) -> CliError {
        if self.kind != Kind::ClosedOutput {
            self.message = format!("{what}: {}", self.message);
        }
        self
    }

    /// Appends what the user can do about it.
    pub fn with_hint(mut self, hint: impl std::fmt::Display) -> CliError {
        if self.kind != Kind::ClosedOutput {
            self.message = format!("{}: {hint}", self.message);
        }
        self
    }

    /// A failed write to standard output: a closed pipe ends quietly, any
    /// other error is reported.
    pub fn stdout(err: io::Error) -> CliError {
        if err.kind() == io::ErrorKind::BrokenPipe {
            CliError {
                kind: Kind::ClosedOutput,
                message: String::new(),
            }
        } else {
            CliError::runtime(format!("cannot write to standard output: {err}"))
        }
    }

    /// The exit status of this ending.
    pub fn exit_code(&self) -> u8 {
        match self.kind {
            Kind::ClosedOutput => 0,
            Kind::Runtime => 1,
            Kind::Usage => 2,
            Kind::Timeout => 3,
        }
    }

    /// Prints the line (if any) on stderr and returns the exit status.
    pub fn report(&self) -> ExitCode {
        if !self.message.is_empty() {
            warn(&self.message);
        }
        ExitCode::from(self.exit_code())
    }
}

impl From<shmbus::Error> for CliError {
    /// Names and settings the user typed are usage errors; timeouts are
    /// timeouts; everything else happened at run time. The library's
    /// messages already say what to do.
    fn from(err: shmbus::Error) -> CliError {
        let kind = match err {
            shmbus::Error::Timeout => Kind::Timeout,
            shmbus::Error::InvalidName { .. } | shmbus::Error::InvalidConfig(_) => Kind::Usage,
            _ => Kind::Runtime,
        };
        CliError {
            kind,
            message: err.to_string(),
        }
    }
}

/// Prints one line on stderr, `shmbus: <text>`. A closed stderr is ignored:
/// there is nobody left to tell.
pub fn warn(text: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "shmbus: {text}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_spec() {
        assert_eq!(CliError::runtime("x").exit_code(), 1);
        assert_eq!(CliError::usage("x").exit_code(), 2);
        assert_eq!(CliError::timeout("x").exit_code(), 3);
        let pipe = CliError::stdout(io::Error::from(io::ErrorKind::BrokenPipe));
        assert_eq!((pipe.kind, pipe.exit_code()), (Kind::ClosedOutput, 0));
        assert!(pipe.context("printing").message.is_empty());
        let other = CliError::stdout(io::Error::from_raw_os_error(libc::ENOSPC));
        assert_eq!(other.exit_code(), 1);
        assert!(other
            .message
            .starts_with("cannot write to standard output: "));
    }

    #[test]
    fn library_errors_are_classified() {
        assert_eq!(CliError::from(shmbus::Error::Timeout).exit_code(), 3);
        let bad_name = shmbus::names::validate_topic("a//b").unwrap_err();
        let e = CliError::from(bad_name);
        assert_eq!(e.exit_code(), 2);
        assert!(e.message.contains("empty segment"), "{}", e.message);
        assert_eq!(
            CliError::from(shmbus::Error::InvalidConfig("x".into())).exit_code(),
            2
        );
        assert_eq!(CliError::from(shmbus::Error::Closed).exit_code(), 1);
        let e = CliError::from(shmbus::Error::TooLarge { len: 5, max: 4 }).context("line 1");
        assert_eq!(e.exit_code(), 1);
        assert!(
            e.message.starts_with("line 1: message of 5 bytes"),
            "{}",
            e.message
        );
    }
}
