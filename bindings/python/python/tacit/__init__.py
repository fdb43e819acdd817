"""Tacit agents in Python: structured intents (protobuf messages identified by
the hash of their schema) between agents, over QUIC, with persistent
cryptographic identity.

The package wraps Tacit's Rust core; it speaks the same protocol as Rust
agents and computes the same IntentIds.
"""

from tacit import intents
from tacit._agent import Agent, Context, register_detail
from tacit._contract import Bid, ContractNet, Round
from tacit._peer import Card, Conversation, Credential, Offer, Peer, Reply, Stream
from tacit._native import __version__
from tacit._schema import IntentType, Schema, intent_id, intent_type
from tacit.errors import (
    Act,
    AgentClosed,
    ConfigError,
    ConnectError,
    ConnectionLost,
    DeadlineExceeded,
    DecodeError,
    ErrorCode,
    IdentityMismatch,
    MessageTooLarge,
    NotNegotiated,
    OutcomeUnknown,
    RefusedError,
    Rejected,
    SchemaError,
    SignatureError,
    StreamError,
    TacitError,
)

__all__ = [
    "Act",
    "Agent",
    "AgentClosed",
    "Bid",
    "Card",
    "ConfigError",
    "ConnectError",
    "ConnectionLost",
    "Context",
    "ContractNet",
    "Conversation",
    "Credential",
    "DeadlineExceeded",
    "DecodeError",
    "ErrorCode",
    "IdentityMismatch",
    "IntentType",
    "MessageTooLarge",
    "NotNegotiated",
    "Offer",
    "OutcomeUnknown",
    "Peer",
    "RefusedError",
    "Rejected",
    "Reply",
    "Round",
    "Schema",
    "SchemaError",
    "SignatureError",
    "Stream",
    "StreamError",
    "TacitError",
    "__version__",
    "intent_id",
    "intent_type",
    "intents",
    "register_detail",
]
