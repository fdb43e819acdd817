//! What went wrong, as a message, a hint and an exit code.

use std::fmt;
use std::process::ExitCode;

use tacit::Act;

/// The exit codes of `tacit` (also listed in `tacit --help`). Clap exits
/// with 2 on usage errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    /// Anything else: files, keys, malformed captures, a schema that cannot be used.
    Failure = 1,
    /// No agent answered at the address, or the connection failed.
    Unreachable = 3,
    /// The agent at the address is not the one `--expect` names.
    IdentityMismatch = 4,
    /// The agent does not offer the intent.
    UnknownIntent = 5,
    /// The JSON does not fit the intent's schema.
    BadJson = 6,
    /// The agent answered with an error act (refuse, failure, not understood).
    Rejected = 7,
    /// No reply within the timeout.
    Timeout = 8,
    /// `tacit conformance`: at least one check failed.
    Nonconformant = 9,
}

/// An error for the user: what went wrong, and what to do about it.
#[derive(Debug)]
pub(crate) struct CliError {
    pub(crate) exit: Exit,
    pub(crate) message: String,
    pub(crate) hint: Option<String>,
}

impl CliError {
    pub(crate) fn new(exit: Exit, message: impl Into<String>) -> Self {
        Self { exit, message: message.into(), hint: None }
    }

    pub(crate) fn failure(message: impl Into<String>) -> Self {
        Self::new(Exit::Failure, message)
    }

    pub(crate) fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub(crate) fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.exit as u8)
    }

    /// An error of the agent API, while talking to the agent at `addr`.
    pub(crate) fn from_tacit(error: tacit::Error, addr: &str) -> Self {
        match error {
            tacit::Error::IdentityMismatch { expected, found } => Self::new(
                Exit::IdentityMismatch,
                format!("the agent at {addr} is not the one expected:\n  expected {expected}\n  found    {found}"),
            )
            .hint(
                "check the AgentId given to --expect (`tacit describe ADDR` shows the agent's), or leave --expect out",
            ),
            tacit::Error::Connect { reason, .. } => unreachable(addr, &reason),
            tacit::Error::Closed { reason, .. } => {
                Self::new(Exit::Unreachable, format!("the session with {addr} was closed: {reason}"))
            }
            tacit::Error::Session(e) => Self::new(Exit::Unreachable, format!("the session with {addr} failed: {e}"))
                .hint("the agent may have stopped or closed the connection; try again"),
            tacit::Error::Rejected { rejection, .. } => Self::new(
                Exit::Rejected,
                format!(
                    "the agent at {addr} answered {} ({}): {}",
                    act_name(rejection.act),
                    code_name(rejection.code),
                    rejection.reason
                ),
            ),
            tacit::Error::DeadlineExceeded { intent } => {
                Self::new(Exit::Timeout, format!("{intent}: no reply from {addr} within the timeout"))
                    .hint("raise --timeout, or check that the agent is not overloaded")
            }
            tacit::Error::NotNegotiated { intent } => Self::new(
                Exit::UnknownIntent,
                format!("the agent at {addr} did not agree to take {intent} from this tool"),
            )
            .hint("`tacit describe ADDR` shows which intents the agent handles"),
            tacit::Error::WrongLane { intent, lane, offered } => Self::new(
                Exit::Rejected,
                format!("the agent at {addr} takes {intent} on {offered}, not on the {lane} lane"),
            )
            .hint("`tacit describe ADDR` shows which intents the agent handles"),
            tacit::Error::Identity(e) => Self::failure(e.to_string()),
            other => Self::failure(format!("{addr}: {other}")),
        }
    }
}

/// Nothing answered at `addr`.
pub(crate) fn unreachable(addr: &str, why: &str) -> CliError {
    CliError::new(Exit::Unreachable, format!("cannot reach an agent at {addr}: {why}")).hint(
        "check that the agent (e.g. `tacit listen --addr ADDR`) is running at that address, \
         and that no firewall blocks UDP to that port",
    )
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tacit: error: {}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// `REQUEST`, `INFORM`, ... (the enum's name without its `ACT_` prefix).
pub(crate) fn act_name(act: Act) -> &'static str {
    let name = act.as_str_name();
    name.strip_prefix("ACT_").unwrap_or(name)
}

/// `HANDLER_FAILED`, ... (the enum's name without a prefix, if it has one).
pub(crate) fn code_name(code: tacit::ErrorCode) -> &'static str {
    let name = code.as_str_name();
    name.strip_prefix("ERROR_CODE_").unwrap_or(name)
}
