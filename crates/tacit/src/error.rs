//! Errors of the agent API: one enum for what a caller can act on, each
//! variant with the wire code that says why, and [`Rejection`], a handler's
//! answer that is not the reply.
//!
//! No type of quinn, rustls or rcgen appears here: a transport failure is
//! kept as text and as the [`source`](std::error::Error::source) behind it,
//! so a bump of those crates is not a breaking change of `tacit`.

use std::fmt;
use std::net::SocketAddr;

use bytes::Bytes;
use tacit_handshake::{AgentId, IdentityError, Lane, Lanes, Refusal};
use tacit_quic::{AskError, BindError, ConnectError, SessionError, StreamError};
use tacit_wire::{Act, ErrorCode, IntentId};

use crate::intent::Intent;

/// A boxed error source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why an agent operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The peer answered with an error act (`REFUSE`, `FAILURE`,
    /// `NOT_UNDERSTOOD`): the ask reached it and was not done. The
    /// [`Rejection`] holds the code, the reason and any typed detail
    /// ([`Rejection::detail`]).
    #[error("{intent}: the peer answered {}: {rejection}", act_name(rejection.act))]
    Rejected {
        /// The intent asked.
        intent: &'static str,
        /// The peer's answer.
        rejection: Rejection,
    },
    /// The intent is not usable with this peer: the peer does not handle it
    /// (or not on this lane).
    #[error("{intent} is not negotiated with this peer: the peer does not handle it")]
    NotNegotiated {
        /// The intent's name.
        intent: &'static str,
    },
    /// The peer handles the intent, but not on this lane (it said so in
    /// the handshake); nothing was sent.
    #[error("{intent}: the peer takes it on {offered}, not on the {lane} lane")]
    WrongLane {
        /// The intent's name.
        intent: &'static str,
        /// The lane it was to go on.
        lane: Lane,
        /// The lanes on which the peer takes it.
        offered: Lanes,
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
    /// Nothing was sent: the session is gone and could not be re-established
    /// (or the peer refused the session).
    #[error("no session with the peer: {0}")]
    Session(SessionError),
    /// The session was closed normally (`CLOSED`), by this side or the peer.
    #[error("the session was closed by {}: {reason}", if *by_peer { "the peer" } else { "this agent" })]
    Closed {
        /// Whether the peer closed it.
        by_peer: bool,
        /// The reason given.
        reason: String,
    },
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
    /// The peer does not accept datagrams (it did not advertise QUIC
    /// `max_datagram_frame_size`); nothing was sent.
    #[error("the peer does not accept datagrams")]
    DatagramsUnsupported,
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
    #[error("cannot connect to {addr}: {reason}")]
    Connect {
        /// The address dialed.
        addr: SocketAddr,
        /// What went wrong.
        reason: String,
        /// The transport's error.
        #[source]
        source: Option<BoxError>,
    },
    /// The peer at the address is another agent than the one expected.
    #[error("expected agent {expected}, but the peer is {found}")]
    IdentityMismatch {
        /// The AgentId asked for.
        expected: AgentId,
        /// The AgentId the peer holds.
        found: AgentId,
    },
    /// The agent could not be bound.
    #[error("cannot bind the agent: {reason}")]
    Bind {
        /// What went wrong.
        reason: String,
        /// The transport's error.
        #[source]
        source: Option<BoxError>,
    },
    /// The identity could not be loaded or created.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// [`Agent::connect_id`](crate::Agent::connect_id) found no address that
    /// leads to the agent. `tried` names each lookup and what it said.
    #[error("agent {id} not found: {tried}")]
    NotFound {
        /// The agent looked for.
        id: AgentId,
        /// Each lookup asked, in order, and its outcome.
        tried: Attempts,
    },
    /// The agent has been shut down ([`Agent::shutdown`](crate::Agent::shutdown)).
    #[error("the agent is shut down")]
    Shutdown,
    /// The policy file could not be read ([`AgentBuilder::policy_file`](crate::AgentBuilder::policy_file)).
    #[error(transparent)]
    Policy(crate::policy::PolicyError),
    /// The ask asked for a signed answer
    /// ([`AskOptions::sign_reply`](crate::AskOptions::sign_reply)) and the
    /// peer answered unsigned: the answer is no receipt (`SIGNATURE_REQUIRED`).
    #[error("{intent}: the peer's answer is not signed, and a signed one was asked for")]
    ReplyUnsigned {
        /// The intent asked.
        intent: &'static str,
    },
    /// The peer's answer is signed, and the signature does not verify for
    /// the peer, this agent and the answer (`SIGNATURE_INVALID`).
    #[error("{intent}: the signature of the peer's answer does not verify")]
    ReplySignatureInvalid {
        /// The intent asked.
        intent: &'static str,
    },
}

/// An act's name as the spec writes it.
fn act_name(act: Act) -> &'static str {
    act.as_str_name().trim_start_matches("ACT_")
}

impl Error {
    /// The wire code that says why, or `UNSPECIFIED` for local causes.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Rejected { rejection, .. } => rejection.code,
            Self::NotNegotiated { .. } | Self::WrongLane { .. } => ErrorCode::IntentNotNegotiated,
            Self::DeadlineExceeded { .. } => ErrorCode::DeadlineExceeded,
            Self::Session(e) => e.code(),
            Self::Closed { .. } => ErrorCode::Closed,
            Self::Decode { .. } | Self::UnexpectedReply { .. } => ErrorCode::InvalidPayload,
            Self::TooLarge { .. } => ErrorCode::FrameTooLarge,
            Self::Refused(refusal) => refusal.code,
            Self::Schema { .. } => ErrorCode::SchemaMismatch,
            Self::Shutdown => ErrorCode::Shutdown,
            Self::NotFound { .. } => ErrorCode::NotFound,
            Self::ReplyUnsigned { .. } => ErrorCode::SignatureRequired,
            Self::ReplySignatureInvalid { .. } => ErrorCode::SignatureInvalid,
            Self::Stream(StreamError::Reset(code)) => {
                i32::try_from(*code).ok().and_then(|c| ErrorCode::try_from(c).ok()).unwrap_or(ErrorCode::Unspecified)
            }
            Self::Unknown { .. }
            | Self::DatagramsUnsupported
            | Self::Stream(_)
            | Self::Connect { .. }
            | Self::IdentityMismatch { .. }
            | Self::Bind { .. }
            | Self::Policy(_)
            | Self::Identity(_) => ErrorCode::Unspecified,
        }
    }

    /// Whether the peer received the request and answered it with an error.
    pub fn is_rejection(&self) -> bool {
        matches!(self, Self::Rejected { .. })
    }

    /// The peer's rejection, if it answered with one.
    pub fn rejection(&self) -> Option<&Rejection> {
        match self {
            Self::Rejected { rejection, .. } => Some(rejection),
            _ => None,
        }
    }

    /// The typed detail of the peer's rejection, if it answered with one of
    /// type `D` (see [`Rejection::with_detail`]).
    pub fn detail<D: Intent>(&self) -> Option<D> {
        self.rejection().and_then(Rejection::detail)
    }

    pub(crate) fn from_session(error: SessionError) -> Self {
        match error {
            SessionError::Closed { by_peer, reason } => Self::Closed { by_peer, reason },
            other => Self::Session(other),
        }
    }

    pub(crate) fn from_ask(intent: &'static str, error: AskError) -> Self {
        match error {
            AskError::Remote { act, refusal, payload } => {
                Self::Rejected { intent, rejection: Rejection::from_wire(act, refusal, &payload) }
            }
            AskError::NotNegotiated(_) => Self::NotNegotiated { intent },
            AskError::WrongLane { lane, offered, .. } => Self::WrongLane { intent, lane, offered },
            AskError::NotSent(e) => Self::from_session(e),
            AskError::Unknown(reason) => Self::Unknown { intent, reason },
            AskError::DeadlineExceeded => Self::DeadlineExceeded { intent },
            AskError::TooLarge { len, max } => Self::TooLarge { len, max },
            AskError::DatagramsUnsupported => Self::DatagramsUnsupported,
            other => Self::Unknown { intent, reason: other.to_string() },
        }
    }

    pub(crate) fn from_stream(intent: &'static str, error: StreamError) -> Self {
        match error {
            StreamError::WrongLane { offered, .. } => Self::WrongLane { intent, lane: Lane::Stream, offered },
            other => Self::Stream(other),
        }
    }

    pub(crate) fn from_connect(addr: SocketAddr, error: ConnectError) -> Self {
        match error {
            ConnectError::IdentityMismatch { expected, found } => Self::IdentityMismatch { expected, found },
            other => Self::Connect { addr, reason: other.to_string(), source: Some(Box::new(other)) },
        }
    }

    pub(crate) fn from_bind(error: BindError) -> Self {
        Self::Bind { reason: error.to_string(), source: Some(Box::new(error)) }
    }
}

/// A handler's answer that is not the reply: `REFUSE` (the agent will not do
/// it), `FAILURE` (it tried and failed) or `NOT_UNDERSTOOD`, with a code, a
/// reason, and optionally a typed detail the asker can match on (as tonic's
/// `Status` carries details). The asker sees it as [`Error::Rejected`].
///
/// Any error converts into a `FAILURE` with `HANDLER_FAILED` and the error's
/// text, so handlers can use `?`:
///
/// ```
/// # use tacit::Rejection;
/// fn parse(text: &str) -> Result<u32, Rejection> {
///     Ok(text.parse::<u32>()?)
/// }
/// assert_eq!(parse("x").unwrap_err().code, tacit::ErrorCode::HandlerFailed);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// `REFUSE`, `FAILURE` or `NOT_UNDERSTOOD`.
    pub act: Act,
    /// The code.
    pub code: ErrorCode,
    /// A reason for the asker (kept short; it crosses the wire).
    pub reason: String,
    detail: Option<(IntentId, Bytes)>,
}

impl Rejection {
    /// `REFUSE` with `code`: this agent will not do it.
    pub fn refuse(code: ErrorCode, reason: impl Into<String>) -> Self {
        Self { act: Act::Refuse, code, reason: reason.into(), detail: None }
    }

    /// `REFUSE` with `DECLINED`: a decision not to do it (out of stock,
    /// over budget, not interested) rather than a failure.
    pub fn decline(reason: impl Into<String>) -> Self {
        Self::refuse(ErrorCode::Declined, reason)
    }

    /// `FAILURE` with `HANDLER_FAILED`: the attempt failed.
    pub fn failed(reason: impl Into<String>) -> Self {
        Self::failure(ErrorCode::HandlerFailed, reason)
    }

    /// `FAILURE` with a specific code.
    pub fn failure(code: ErrorCode, reason: impl Into<String>) -> Self {
        Self { act: Act::Failure, code, reason: reason.into(), detail: None }
    }

    /// `NOT_UNDERSTOOD` with a code.
    pub fn not_understood(code: ErrorCode, reason: impl Into<String>) -> Self {
        Self { act: Act::NotUnderstood, code, reason: reason.into(), detail: None }
    }

    /// Attaches a typed detail (an intent of the application's, e.g.
    /// `OutOfStock { sku, available }`) that the asker reads with
    /// [`detail`](Self::detail) or [`Error::detail`]. Details are not
    /// negotiated: they travel with their full IntentId.
    pub fn with_detail<D: Intent>(mut self, detail: &D) -> Self {
        self.detail = Some((D::ID, detail.encode_to_vec().into()));
        self
    }

    /// Attaches a detail known only by its IntentId and encoding (from a
    /// schema known at run time; see [`with_detail`](Self::with_detail)).
    pub fn with_raw_detail(mut self, intent: IntentId, detail: Bytes) -> Self {
        self.detail = Some((intent, detail));
        self
    }

    /// The detail, if there is one of type `D` and it decodes.
    pub fn detail<D: Intent>(&self) -> Option<D> {
        match &self.detail {
            Some((id, payload)) if *id == D::ID => D::decode(payload.clone()).ok(),
            _ => None,
        }
    }

    /// The detail's IntentId and encoding, whatever its type.
    pub fn raw_detail(&self) -> Option<(IntentId, &Bytes)> {
        self.detail.as_ref().map(|(id, payload)| (*id, payload))
    }

    /// The `tacit.v1.Refusal` payload of the answer.
    pub(crate) fn to_wire(&self) -> Bytes {
        let (detail_intent, detail) = match &self.detail {
            Some((id, payload)) => (Bytes::copy_from_slice(id.as_bytes()), payload.clone()),
            None => (Bytes::new(), Bytes::new()),
        };
        let refusal =
            tacit_wire::pb::Refusal { code: self.code as i32, reason: self.reason.clone(), detail_intent, detail };
        prost::Message::encode_to_vec(&refusal).into()
    }

    fn from_wire(act: Act, refusal: Refusal, payload: &Bytes) -> Self {
        let detail = <tacit_wire::pb::Refusal as prost::Message>::decode(payload.clone()).ok().and_then(|wire| {
            let id: [u8; 32] = wire.detail_intent.as_ref().try_into().ok()?;
            Some((IntentId::from_bytes(id), wire.detail))
        });
        Self { act, code: refusal.code, reason: refusal.reason, detail }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({:#x}): {}",
            self.code.as_str_name().trim_start_matches("ERROR_CODE_"),
            self.code as i32,
            self.reason
        )
    }
}

/// Any error is a `FAILURE` with `HANDLER_FAILED` and the error's text (so
/// `?` works in handlers). `Rejection` itself is therefore not a
/// `std::error::Error`; [`Error::Rejected`] is, on the asker's side.
impl<E: std::error::Error + Send + Sync + 'static> From<E> for Rejection {
    fn from(error: E) -> Self {
        Self::failed(error.to_string())
    }
}

/// The result type of the agent API.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One lookup asked by [`Agent::connect_id`](crate::Agent::connect_id), and what came of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The lookup's [`name`](crate::discovery::Lookup::name) (`"memory"` for known addresses).
    pub lookup: String,
    /// What it said: "no address", its error, or each address tried and why
    /// the dial failed.
    pub outcome: String,
}

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.lookup, self.outcome)
    }
}

/// The attempts of a failed [`Agent::connect_id`](crate::Agent::connect_id), printed `a: …; b: …`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempts(pub Vec<Attempt>);

impl fmt::Display for Attempts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, attempt) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{attempt}")?;
        }
        Ok(())
    }
}
