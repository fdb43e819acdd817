//! Errors of the transport, one enum per operation.

use tacit_handshake::{AgentId, Refusal};
use tacit_wire::ErrorCode;

use crate::tls::TlsError;

/// Why an endpoint could not be bound.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BindError {
    /// No identity was given to the builder.
    #[error("an endpoint needs an identity: call `.identity(..)` on the builder")]
    MissingIdentity,
    /// The card or capabilities break a limit a peer would enforce.
    #[error("invalid card or capabilities: {0}")]
    InvalidConfig(Refusal),
    /// TLS could not be set up for the identity.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The UDP socket could not be bound.
    #[error("cannot bind the UDP socket: {0}")]
    Io(#[from] std::io::Error),
}

/// Why a connection could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The peer's certificate names another agent than the one expected; the
    /// TLS handshake was aborted.
    #[error("expected agent {expected}, but the peer is {found}")]
    IdentityMismatch {
        /// The AgentId asked for.
        expected: AgentId,
        /// The AgentId the peer's certificate holds.
        found: AgentId,
    },
    /// The QUIC or TLS handshake failed (unreachable, refused, wrong ALPN,
    /// bad certificate, timed out, ...).
    #[error("connection failed: {0}")]
    Connection(#[from] quinn::ConnectionError),
    /// The connection could not even be started (e.g. an invalid address).
    #[error("cannot start a connection: {0}")]
    Start(#[from] quinn::ConnectError),
    /// TLS could not be set up.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The peer presented no usable certificate.
    #[error("the peer presented no Ed25519 certificate")]
    NoPeerIdentity,
    /// No session within the connect timeout (nothing answers at the
    /// address, or the handshake was too slow).
    #[error("no answer from {addr} within {}", crate::error::Seconds(*timeout))]
    Timeout {
        /// The address dialed.
        addr: std::net::SocketAddr,
        /// The timeout.
        timeout: std::time::Duration,
    },
}

/// Why an incoming connection was not accepted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AcceptError {
    /// The QUIC or TLS handshake failed.
    #[error("incoming connection failed: {0}")]
    Connection(#[from] quinn::ConnectionError),
    /// The peer presented no usable certificate.
    #[error("the peer presented no Ed25519 certificate")]
    NoPeerIdentity,
    /// The QUIC + TLS handshake did not finish within the handshake timeout.
    #[error("the QUIC handshake did not finish in time")]
    QuicTimeout,
    /// The peer did not open the control stream within the handshake
    /// timeout after the QUIC handshake; the connection was closed with
    /// `HANDSHAKE_TIMEOUT`.
    #[error("the peer did not open its control stream in time")]
    Timeout,
    /// The peer already had `max_connections_per_peer` connections; this one
    /// was closed with `TOO_MANY_CONNECTIONS`.
    #[error("agent {0} has too many connections")]
    TooManyConnections(AgentId),
}

/// Why a session ended or could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The capability handshake or the session was refused, by the peer
    /// (`by_peer`) or by this agent.
    #[error("session refused by {}: {refusal}", if *by_peer { "the peer" } else { "this agent" })]
    Refused {
        /// The code and reason.
        refusal: Refusal,
        /// Whether the peer refused.
        by_peer: bool,
    },
    /// The connection was lost (timed out, reset, or closed with an error).
    #[error("connection lost: {0}")]
    ConnectionLost(String),
    /// The session was closed normally (`CLOSED`), by the peer (`by_peer`)
    /// or by this side: not an error of either.
    #[error("session closed by {}: {reason}", if *by_peer { "the peer" } else { "this agent" })]
    Closed {
        /// Whether the peer closed it.
        by_peer: bool,
        /// The reason given.
        reason: String,
    },
    /// The peer shut down (`SHUTDOWN`): it stopped taking work and closed.
    #[error("the peer shut down: {0}")]
    Shutdown(String),
    /// A link could not re-establish the session: every attempt of a round
    /// failed (see `ReconnectPolicy`).
    #[error("cannot reach {0}")]
    Unreachable(String),
}

impl SessionError {
    /// The wire code that says why (refusals, `CLOSED`, `SHUTDOWN`), or
    /// `UNSPECIFIED`.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Refused { refusal, .. } => refusal.code,
            Self::Closed { .. } => ErrorCode::Closed,
            Self::Shutdown(_) => ErrorCode::Shutdown,
            Self::ConnectionLost(_) | Self::Unreachable(_) => ErrorCode::Unspecified,
        }
    }

    /// Whether the session was lost or ended (not refused): a link re-dials
    /// and re-sends what was not sent.
    pub fn is_lost(&self) -> bool {
        matches!(self, Self::ConnectionLost(_) | Self::Shutdown(_) | Self::Closed { by_peer: true, .. })
    }
}

/// A duration printed for people: `1.5 s`, `250 ms`.
pub(crate) struct Seconds(pub(crate) std::time::Duration);

impl std::fmt::Display for Seconds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let millis = self.0.as_millis();
        if millis < 1000 { write!(f, "{millis} ms") } else { write!(f, "{} s", self.0.as_secs_f64()) }
    }
}

/// Maps how a connection ended to a session error: a close with a Tacit
/// code is a refusal by the peer.
pub(crate) fn connection_error(error: quinn::ConnectionError) -> SessionError {
    match error {
        quinn::ConnectionError::ApplicationClosed(close) => {
            let code = known_code(close.error_code.into_inner()).unwrap_or(ErrorCode::Unspecified);
            let reason = String::from_utf8_lossy(&close.reason).into_owned();
            // `CLOSED` (or 0, from older peers) is a normal close, `SHUTDOWN`
            // a shutdown, any other code a refusal by the peer.
            match code {
                ErrorCode::Closed | ErrorCode::Unspecified => SessionError::Closed { by_peer: true, reason },
                ErrorCode::Shutdown => SessionError::Shutdown(reason),
                code => SessionError::Refused { refusal: Refusal::new(code, reason), by_peer: true },
            }
        }
        quinn::ConnectionError::LocallyClosed => {
            SessionError::Closed { by_peer: false, reason: "closed by this agent".into() }
        }
        other => SessionError::ConnectionLost(other.to_string()),
    }
}

/// The Tacit code a QUIC error code (a reset, a stop, a close) stands for.
fn known_code(code: u64) -> Option<ErrorCode> {
    i32::try_from(code).ok().and_then(|code| ErrorCode::try_from(code).ok())
}

/// A QUIC error code for people: its name if it is a Tacit code
/// (`INVALID_STREAM_KIND (0x307)`), else its number in hex.
pub(crate) fn code_name(code: u64) -> String {
    match known_code(code) {
        Some(known) => known.to_string(),
        None => format!("code {code:#x}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_named() {
        assert_eq!(code_name(ErrorCode::InvalidStreamKind as u64), "INVALID_STREAM_KIND (0x307)");
        assert_eq!(code_name(0x1234), "code 0x1234");
    }
}
