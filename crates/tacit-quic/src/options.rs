//! The options of one ask and of one tell: the one vocabulary every layer
//! uses (the `tacit` crate re-exports these types).

use std::time::Duration;

use tacit_wire::{Act, ConversationId, TraceContext};

/// Options of one ask.
///
/// A [`Link`](crate::Link) applies the deadline to the whole ask, re-dials and
/// re-sent attempts included; a [`Session`](crate::Session) to its one attempt.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AskOptions {
    /// The performative (default `REQUEST`; `QUERY`, `CFP`, `SUBSCRIBE`,
    /// `ACCEPT` also ask).
    pub act: Act,
    /// The message id; set it to the id of an earlier attempt to retry
    /// idempotently. Default: a fresh id.
    pub message_id: Option<u64>,
    /// The conversation this ask belongs to.
    pub conversation: ConversationId,
    /// The message this ask answers, if any (0: none).
    pub in_reply_to: u64,
    /// How long to wait for the reply; the peer learns it too. Default: none.
    pub deadline: Option<Duration>,
    /// Whether the caller may re-send this ask with the same message id
    /// after losing the connection: the peer then keeps it, and its answer,
    /// in its idempotent-retry window, and runs a re-sent copy at most once.
    /// Asks without it skip the window. Default: false.
    pub idempotent: bool,
    /// W3C trace context to carry. Default: none.
    pub trace: Option<TraceContext>,
    /// Whether to sign the ask with this endpoint's identity, so the
    /// receiver can keep a receipt (`docs/PROTOCOL.md`, "Signed receipts").
    /// Default: false.
    pub signed: bool,
    /// Whether to ask the peer to sign its answer, to keep it as a receipt
    /// (rule `receipt.sign-reply`). Default: false.
    pub sign_reply: bool,
}

impl Default for AskOptions {
    fn default() -> Self {
        Self {
            act: Act::Request,
            message_id: None,
            conversation: ConversationId::none(),
            in_reply_to: 0,
            deadline: None,
            idempotent: false,
            trace: None,
            signed: false,
            sign_reply: false,
        }
    }
}

impl AskOptions {
    /// Marks the ask as one the caller may re-send (same message id) after
    /// a lost connection: the peer runs it at most once within its retry
    /// window.
    pub fn idempotent(mut self) -> Self {
        self.idempotent = true;
        self
    }

    /// Signs the ask ([`signed`](Self::signed) field).
    pub fn signed(mut self, signed: bool) -> Self {
        self.signed = signed;
        self
    }

    /// Asks the peer to sign its answer ([`sign_reply`](Self::sign_reply) field).
    pub fn sign_reply(mut self, sign_reply: bool) -> Self {
        self.sign_reply = sign_reply;
        self
    }

    /// Sets the deadline.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Sets the message id (for idempotent retries).
    pub fn message_id(mut self, id: u64) -> Self {
        self.message_id = Some(id);
        self
    }

    /// Sets the act.
    pub fn act(mut self, act: Act) -> Self {
        self.act = act;
        self
    }

    /// Sets the conversation.
    pub fn conversation(mut self, conversation: ConversationId) -> Self {
        self.conversation = conversation;
        self
    }

    /// Sets the message this ask answers.
    pub fn in_reply_to(mut self, message_id: u64) -> Self {
        self.in_reply_to = message_id;
        self
    }

    /// Sets the trace context the ask carries.
    pub fn trace(mut self, trace: TraceContext) -> Self {
        self.trace = Some(trace);
        self
    }
}

/// Options of one tell.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TellOptions {
    /// The performative (default `INFORM`; e.g. `REJECT`, `CANCEL`, `AGREE`).
    pub act: Act,
    /// The conversation this message belongs to.
    pub conversation: ConversationId,
    /// The message this one answers, if any (0: none).
    pub in_reply_to: u64,
    /// W3C trace context to carry. Default: none.
    pub trace: Option<TraceContext>,
    /// Whether to sign the tell with this endpoint's identity
    /// (`docs/PROTOCOL.md`, "Signed receipts"). Default: false.
    pub signed: bool,
}

impl Default for TellOptions {
    fn default() -> Self {
        Self { act: Act::Inform, conversation: ConversationId::none(), in_reply_to: 0, trace: None, signed: false }
    }
}

impl TellOptions {
    /// Signs the tell ([`signed`](Self::signed) field).
    pub fn signed(mut self, signed: bool) -> Self {
        self.signed = signed;
        self
    }

    /// Sets the act.
    pub fn act(mut self, act: Act) -> Self {
        self.act = act;
        self
    }

    /// Sets the conversation.
    pub fn conversation(mut self, conversation: ConversationId) -> Self {
        self.conversation = conversation;
        self
    }

    /// Sets the message this one answers.
    pub fn in_reply_to(mut self, message_id: u64) -> Self {
        self.in_reply_to = message_id;
        self
    }

    /// Sets the trace context the message carries.
    pub fn trace(mut self, trace: TraceContext) -> Self {
        self.trace = Some(trace);
        self
    }
}
