//! Errors of the agent API: one enum for what a caller can act on, each
//! variant with the wire code that says why.

use tacit_handshake::{AgentId, IdentityError, Refusal};
use tacit_quic::{AskError, BindError, ConnectError, SessionError, StreamError};
use tacit_wire::{Act, ErrorCode};

/// Why an agent operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The peer answered with an error act (`REFUSE`, `FAILURE`,
    /// `NOT_UNDERSTOOD`): the ask reached it and was not done.
    #[error("{intent}: the peer answered {act:?} ({code:?}): {reason}")]
    Rejected {
        /// The intent asked.
        intent: &'static str,
        /// The act of the answer.
        act: Act,
        /// Its code.
        code: ErrorCode,
        /// Its reason, as the peer wrote it.
        reason: String,
    },
    /// The intent is not usable with this peer: this agent does not emit it
    /// (add it with `AgentBuilder::emits`) or the peer does not handle it.
    #[error("{intent} is not negotiated with this peer: emit it (`AgentBuilder::emits`) and check the peer handles it")]
    NotNegotiated {
        /// The intent's name.
        intent: &'static str,
    },
    /// No answer before the deadline; the peer was told to cancel.
    #[error("{intent}: no reply within the deadline")]
    DeadlineExceeded {
        /// The intent asked.
        intent: &'static str,
    },
    /// The connection was lost after the ask was sent, and the ask was not
    /// retried (not idempotent, or the retries ran out): it may have run.
    #[error("{intent}: outcome unknown, the connection was lost after sending: {reason}")]
    Unknown {
        /// The intent asked.
        intent: &'static str,
        /// What happened to the connection.
        reason: String,
    },
    /// The session is gone and could not be re-established.
    #[error("no session with the peer: {0}")]
    Session(#[from] SessionError),
    /// The answer or message could not be decoded as the expected intent.
    #[error("cannot decode {intent}: {reason}")]
    Decode {
        /// The intent expected.
        intent: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// The peer answered with another intent than the request's reply type.
    #[error("expected a {expected} reply, the peer sent intent {found}")]
    UnexpectedReply {
        /// The reply type expected.
        expected: &'static str,
        /// The intent (id or alias) that came instead.
        found: String,
    },
    /// The message is larger than the peer accepts.
    #[error("the message is {len} bytes, more than the peer's limit of {max}")]
    TooLarge {
        /// Its encoded length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A stream lane failed.
    #[error(transparent)]
    Stream(#[from] StreamError),
    /// The peer refused a schema fetch or a capability change.
    #[error("refused: {0}")]
    Refused(Refusal),
    /// A fetched schema could not be used.
    #[error("schema of {intent}: {reason}")]
    Schema {
        /// The intent's name or id.
        intent: String,
        /// What was wrong.
        reason: String,
    },
    /// Could not connect to the peer.
    #[error("cannot connect: {0}")]
    Connect(#[from] ConnectError),
    /// The peer at the address is another agent than the one expected.
    #[error("expected agent {expected}, but the peer is {found}")]
    IdentityMismatch {
        /// The AgentId asked for.
        expected: AgentId,
        /// The AgentId the peer holds.
        found: AgentId,
    },
    /// The agent could not be bound.
    #[error("cannot bind the agent: {0}")]
    Bind(#[from] BindError),
    /// The identity could not be loaded or created.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The agent has been shut down.
    #[error("the agent is shut down")]
    Shutdown,
}

impl Error {
    /// The wire code that says why, or `UNSPECIFIED` for local causes.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Rejected { code, .. } => *code,
            Self::NotNegotiated { .. } => ErrorCode::IntentNotNegotiated,
            Self::DeadlineExceeded { .. } => ErrorCode::DeadlineExceeded,
            Self::Session(e) => e.code(),
            Self::Decode { .. } | Self::UnexpectedReply { .. } => ErrorCode::InvalidPayload,
            Self::TooLarge { .. } => ErrorCode::FrameTooLarge,
            Self::Refused(refusal) => refusal.code,
            Self::Schema { .. } => ErrorCode::SchemaMismatch,
            Self::Shutdown => ErrorCode::Shutdown,
            Self::Unknown { .. }
            | Self::Stream(_)
            | Self::Connect(_)
            | Self::IdentityMismatch { .. }
            | Self::Bind(_)
            | Self::Identity(_) => ErrorCode::Unspecified,
        }
    }

    /// Whether the peer received the request and answered it with an error.
    pub fn is_rejection(&self) -> bool {
        matches!(self, Self::Rejected { .. })
    }

    pub(crate) fn from_ask(intent: &'static str, error: AskError) -> Self {
        match error {
            AskError::Remote { act, refusal } => {
                Self::Rejected { intent, act, code: refusal.code, reason: refusal.reason }
            }
            AskError::NotNegotiated(_) => Self::NotNegotiated { intent },
            AskError::NotSent(e) => Self::Session(e),
            AskError::Unknown(reason) => Self::Unknown { intent, reason },
            AskError::DeadlineExceeded => Self::DeadlineExceeded { intent },
            AskError::TooLarge { len, max } => Self::TooLarge { len, max },
            other => Self::Unknown { intent, reason: other.to_string() },
        }
    }

    pub(crate) fn from_connect(error: ConnectError) -> Self {
        match error {
            ConnectError::IdentityMismatch { expected, found } => Self::IdentityMismatch { expected, found },
            other => Self::Connect(other),
        }
    }
}

/// A handler's answer that is not the reply: `REFUSE` (the agent will not do
/// it), `FAILURE` (it tried and failed) or `NOT_UNDERSTOOD`, with a code and
/// a reason the asker sees as [`Error::Rejected`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// `REFUSE`, `FAILURE` or `NOT_UNDERSTOOD`.
    pub act: Act,
    /// The code.
    pub code: ErrorCode,
    /// A reason for the asker (kept short; it crosses the wire).
    pub reason: String,
}

impl Rejection {
    /// `REFUSE` with `code`: this agent will not do it.
    pub fn refuse(code: ErrorCode, reason: impl Into<String>) -> Self {
        Self { act: Act::Refuse, code, reason: reason.into() }
    }

    /// `REFUSE` with `DECLINED`: a decision not to do it (out of stock,
    /// over budget, not interested) rather than a failure.
    pub fn decline(reason: impl Into<String>) -> Self {
        Self { act: Act::Refuse, code: ErrorCode::Declined, reason: reason.into() }
    }

    /// `FAILURE` with `HANDLER_FAILED`: the attempt failed.
    pub fn failed(reason: impl Into<String>) -> Self {
        Self { act: Act::Failure, code: ErrorCode::HandlerFailed, reason: reason.into() }
    }

    /// `FAILURE` with a specific code.
    pub fn failure(code: ErrorCode, reason: impl Into<String>) -> Self {
        Self { act: Act::Failure, code, reason: reason.into() }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} ({:?}): {}", self.act, self.code, self.reason)
    }
}

impl std::error::Error for Rejection {}

/// The result type of the agent API.
pub type Result<T, E = Error> = std::result::Result<T, E>;
