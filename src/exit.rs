//! Exit codes of the command line (SPEC §9) and the failure a subcommand
//! returns; `main` turns them into a process exit code in one place.

use std::fmt;

/// Exit codes of SPEC §9, converted to a process exit code in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// Done.
    Ok = 0,
    /// Any other error: unreachable service, refused token, server error.
    Error = 1,
    /// The command line or its input is wrong.
    Usage = 2,
    /// The value (or namespace) does not exist: HTTP `404`.
    NotFound = 3,
    /// A conditional write or delete did not apply: HTTP `412`.
    PreconditionFailed = 4,
}

impl Exit {
    /// `check` (SPEC §21): the checker ran out of time, nothing was found but
    /// not everything was decided. The same number as [`Exit::NotFound`].
    pub const UNDECIDED: Exit = Exit::NotFound;

    /// The number the process exits with.
    pub fn code(self) -> u8 {
        self as u8
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(exit: Exit) -> Self {
        std::process::ExitCode::from(exit.code())
    }
}

/// Why a subcommand failed: the exit code and one line for stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The exit code.
    pub exit: Exit,
    /// One line, "what failed: why"; `main` prefixes `hulykvs: `.
    pub message: String,
}

impl Failure {
    /// A failure with any exit code.
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        Failure {
            exit,
            message: message.into(),
        }
    }

    /// A wrong command line or input: exit code 2.
    pub fn usage(message: impl Into<String>) -> Self {
        Failure::new(Exit::Usage, message)
    }

    /// Any other error: exit code 1.
    pub fn error(message: impl Into<String>) -> Self {
        Failure::new(Exit::Error, message)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_the_spec() {
        let codes = [
            Exit::Ok,
            Exit::Error,
            Exit::Usage,
            Exit::NotFound,
            Exit::PreconditionFailed,
        ]
        .map(Exit::code);
        assert_eq!(codes, [0, 1, 2, 3, 4]);
        assert_eq!(Failure::usage("x").exit, Exit::Usage);
        assert_eq!(Failure::error("x").to_string(), "x");
    }
}
