//! Tacit: agent-to-agent messaging with typed intents over QUIC.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod intent;

pub use intent::{Intent, Request};
pub use tacit_handshake::{AgentCard, AgentId, Identity};
pub use tacit_wire::{Act, ConversationId, ErrorCode, IntentId};
