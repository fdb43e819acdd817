"""Tacit's exceptions: one class per kind of failure, all under :class:`TacitError`.

Every exception has ``code``, the wire :class:`ErrorCode` that says why
(``ErrorCode.UNSPECIFIED`` for local causes). A peer's answer that is not the
reply is a :class:`Rejected`, which carries the act, the code, the reason and
the typed detail.
"""

from __future__ import annotations

import enum
from typing import Any, Optional


class ErrorCode(enum.IntEnum):
    """The wire error codes (``docs/PROTOCOL.md``, "Error codes")."""

    UNSPECIFIED = 0
    FRAME_TOO_LARGE = 257
    FRAME_TRUNCATED = 258
    VARINT_OVERLONG = 259
    MALFORMED_MESSAGE = 260
    WRONG_WIRE_TYPE = 261
    INVALID_UTF8 = 262
    NESTING_TOO_DEEP = 263
    UNKNOWN_ACT = 264
    INVALID_INTENT_REF = 265
    FIELD_TOO_LARGE = 266
    INVALID_PAYLOAD = 267
    NO_COMMON_VERSION = 513
    NO_COMMON_INTENTS = 514
    TOO_MANY_INTENTS = 515
    CARD_TOO_LARGE = 516
    DUPLICATE_MESSAGE = 517
    UNEXPECTED_MESSAGE = 518
    HANDSHAKE_TIMEOUT = 519
    SCHEMA_MISMATCH = 520
    UNKNOWN_INTENT = 521
    TOO_MANY_EARLY_REQUESTS = 522
    TOO_MANY_SCHEMA_REQUESTS = 523
    INVALID_CAPABILITIES = 524
    CONTROL_STREAM_CLOSED = 525
    CREDENTIAL_INVALID = 528
    CREDENTIAL_EXPIRED = 529
    CREDENTIAL_REVOKED = 530
    UNTRUSTED_ORGANISATION = 531
    INTENT_NOT_NEGOTIATED = 769
    TOO_MANY_ASKS = 770
    DEADLINE_EXCEEDED = 771
    CANCELLED = 772
    NO_REPLY = 773
    SHUTDOWN = 774
    INVALID_STREAM_KIND = 775
    PROTOCOL_VIOLATION = 776
    HANDLER_FAILED = 777
    TOO_MANY_CONNECTIONS = 778
    STREAM_RATE_EXCEEDED = 779
    DECLINED = 780
    CLOSED = 781
    POLICY_DENIED = 784
    RATE_LIMITED = 785
    QUOTA_EXCEEDED = 786
    SIGNATURE_INVALID = 796
    SIGNATURE_REQUIRED = 797
    RECORD_INVALID = 1025
    RECORD_EXPIRED = 1026
    RECORD_STALE = 1027
    NOT_FOUND = 1028

    @classmethod
    def _missing_(cls, value: object) -> Optional[ErrorCode]:
        return None


def _code(value: int) -> ErrorCode:
    try:
        return ErrorCode(value)
    except ValueError:
        return ErrorCode.UNSPECIFIED


class TacitError(Exception):
    """The base of every Tacit exception."""

    code: ErrorCode

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.code = _code(code)


class Rejected(TacitError):
    """The peer answered with ``REFUSE``, ``FAILURE`` or ``NOT_UNDERSTOOD``: the
    message reached it and was not done.

    A handler raises it to answer so (``raise tacit.Rejected.refuse(...)``); any
    other exception a handler raises reaches the asker as ``FAILURE`` with
    ``HANDLER_FAILED``.
    """

    act: "Act"
    reason: str
    detail: Any
    """The typed detail (a protobuf message), if the peer attached one whose
    class is known here (see :func:`tacit.register_detail`); else ``None``."""
    detail_intent: Optional[bytes]
    detail_payload: Optional[bytes]

    def __init__(
        self,
        act: "Act",
        code: int,
        reason: str,
        detail: Any = None,
        *,
        message: Optional[str] = None,
        detail_intent: Optional[bytes] = None,
        detail_payload: Optional[bytes] = None,
    ) -> None:
        code = _code(code)
        super().__init__(message or f"{Act(act).name} {code.name}: {reason}", code)
        self.act = Act(act)
        self.reason = reason
        self.detail = detail
        self.detail_intent = detail_intent
        self.detail_payload = detail_payload

    @classmethod
    def refuse(cls, reason: str, code: int = ErrorCode.DECLINED, detail: Any = None) -> Rejected:
        """``REFUSE``: this agent will not do it (``DECLINED`` by default)."""
        return cls(Act.REFUSE, code, reason, detail)

    @classmethod
    def failure(cls, reason: str, code: int = ErrorCode.HANDLER_FAILED, detail: Any = None) -> Rejected:
        """``FAILURE``: the attempt failed (``HANDLER_FAILED`` by default)."""
        return cls(Act.FAILURE, code, reason, detail)

    @classmethod
    def not_understood(cls, reason: str, code: int = ErrorCode.INVALID_PAYLOAD) -> Rejected:
        """``NOT_UNDERSTOOD``: the message made no sense to this agent."""
        return cls(Act.NOT_UNDERSTOOD, code, reason)

    def __repr__(self) -> str:
        return f"Rejected(act={self.act.name}, code={self.code.name}, reason={self.reason!r})"


class DeadlineExceeded(TacitError, TimeoutError):
    """No answer before the deadline; the peer was told to cancel."""


class NotNegotiated(TacitError):
    """The peer does not handle this intent (or not on this lane); nothing was sent."""


class ConnectionLost(TacitError):
    """No session with the peer (it is gone, refused the session, or closed it)."""


class OutcomeUnknown(ConnectionLost):
    """The connection was lost after the ask was sent: it may have run."""


class ConnectError(TacitError):
    """Could not connect to the peer."""


class IdentityMismatch(ConnectError):
    """The peer at the address holds another AgentId than the one expected."""


class DecodeError(TacitError, ValueError):
    """A message could not be decoded as the expected class, or the peer answered
    with another intent than the request's reply."""


class MessageTooLarge(TacitError, ValueError):
    """The message is larger than the peer accepts; nothing was sent."""


class SchemaError(TacitError, ValueError):
    """A protobuf class or a fetched schema cannot be used as an intent."""


class StreamError(TacitError):
    """A stream lane failed (reset, cut off, or used after it finished)."""


class RefusedError(TacitError):
    """The peer refused a schema fetch or a capability change."""


class ConfigError(TacitError, ValueError):
    """The agent could not be configured or bound (address, key file, policy,
    credential)."""


class SignatureError(TacitError):
    """A signed answer was asked for and the answer is unsigned, or its
    signature does not verify."""


class AgentClosed(TacitError):
    """The agent is shut down."""


_KINDS: dict[str, type[TacitError]] = {
    "not_negotiated": NotNegotiated,
    "deadline": DeadlineExceeded,
    "outcome_unknown": OutcomeUnknown,
    "connection_lost": ConnectionLost,
    "decode": DecodeError,
    "too_large": MessageTooLarge,
    "stream": StreamError,
    "refused": RefusedError,
    "schema": SchemaError,
    "connect": ConnectError,
    "identity_mismatch": IdentityMismatch,
    "config": ConfigError,
    "shutdown": AgentClosed,
    "signature": SignatureError,
}

# Decoders of typed rejection details, by IntentId (tacit.register_detail).
_DETAILS: dict[bytes, Any] = {}


def _from_native(
    kind: str,
    message: str,
    code: int,
    act: Optional[int],
    reason: Optional[str],
    detail_intent: Optional[bytes],
    detail_payload: Optional[bytes],
) -> TacitError:
    """Builds the exception for an error of the native core."""
    if kind == "rejected" and act is not None:
        detail = None
        if detail_intent is not None and detail_payload is not None:
            cls = _DETAILS.get(detail_intent)
            if cls is not None:
                try:
                    detail = cls.FromString(detail_payload)
                except Exception:  # a detail that does not decode is left out
                    detail = None
        return Rejected(
            Act(act),
            code,
            reason or "",
            detail,
            message=message,
            detail_intent=detail_intent,
            detail_payload=detail_payload,
        )
    return _KINDS.get(kind, TacitError)(message, code)


class Act(enum.IntEnum):
    """The communicative act of a message (``docs/PROTOCOL.md``, "Acts")."""

    UNSPECIFIED = 0
    REQUEST = 1
    INFORM = 2
    PROPOSE = 3
    ACCEPT = 4
    REJECT = 5
    CFP = 6
    AGREE = 7
    REFUSE = 8
    FAILURE = 9
    CANCEL = 10
    QUERY = 11
    SUBSCRIBE = 12
    NOT_UNDERSTOOD = 13
