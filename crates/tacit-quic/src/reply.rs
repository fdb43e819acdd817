//! Answers to an ask: what of the request an answer refers to, the one
//! builder of error answers (`REFUSE` / `FAILURE` / `NOT_UNDERSTOOD` with a
//! `Refusal` payload), used by handlers' responders and by the lane itself
//! when it refuses an ask before any handler runs, and its reading back on
//! the asking side.

use bytes::Bytes;
use prost::Message as _;
use tacit_handshake::{Negotiated, Refusal};
use tacit_wire::{Act, ConversationId, Envelope, ErrorCode, IntentId, IntentRef, pb};

/// The intent an error answer names when the request named an alias the
/// receiver cannot resolve (`[ask.error-intent]`): 32 zero bytes, the id
/// of no schema.
pub(crate) const NO_INTENT: IntentId = IntentId::from_bytes([0; 32]);

/// What an answer takes from the request it answers: its id (the answer's
/// `in_reply_to`), its conversation, and its intent by full IntentId (for
/// error answers).
#[derive(Debug, Clone)]
pub(crate) struct ReplyTo {
    message_id: u64,
    conversation_id: ConversationId,
    intent: IntentId,
}

impl ReplyTo {
    /// The request `request` is answered; `negotiated` resolves the alias
    /// it may name (an alias of this agent's table, which means nothing in
    /// the reply direction).
    pub(crate) fn of(request: &Envelope, negotiated: Option<&Negotiated>) -> Self {
        let intent = match request.intent {
            IntentRef::Id(id) => id,
            IntentRef::Alias(alias) => {
                negotiated.and_then(|n| n.resolve_alias(alias)).map_or(NO_INTENT, |intent| intent.id)
            }
        };
        Self { message_id: request.message_id, conversation_id: request.conversation_id, intent }
    }

    /// The id of the request.
    pub(crate) fn message_id(&self) -> u64 {
        self.message_id
    }

    /// An answer with `act`, `intent` and `payload`, as message `id`.
    pub(crate) fn answer(&self, act: Act, intent: IntentRef, id: u64, payload: Bytes) -> Envelope {
        let mut reply = Envelope::new(intent, act, id, payload);
        reply.in_reply_to = self.message_id;
        reply.conversation_id = self.conversation_id;
        reply
    }

    /// An error answer: `act` with a `Refusal` of `code` and `reason`,
    /// naming the request's intent by its full IntentId (never an alias:
    /// `[ask.error-intent]`), as message `id`.
    pub(crate) fn error(&self, act: Act, code: ErrorCode, reason: &str, id: u64) -> Envelope {
        let refusal = pb::Refusal { code: code.into(), reason: reason.to_owned(), ..Default::default() };
        self.answer(act, IntentRef::Id(self.intent), id, Bytes::from(refusal.encode_to_vec()))
    }
}

/// The refusal an error answer carries (`REFUSE`, `FAILURE`,
/// `NOT_UNDERSTOOD`); `None` for any other act. A payload that is no
/// `Refusal`, or a code this version does not know, reads as `UNSPECIFIED`.
pub(crate) fn refusal_of(answer: &Envelope) -> Option<Refusal> {
    if !matches!(answer.act, Act::Refuse | Act::Failure | Act::NotUnderstood) {
        return None;
    }
    let refusal = pb::Refusal::decode(answer.payload.clone()).unwrap_or_default();
    let code = ErrorCode::try_from(refusal.code).unwrap_or(ErrorCode::Unspecified);
    Some(Refusal::new(code, refusal.reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_answers_carry_the_request_threading_and_a_refusal() {
        let mut request = Envelope::new(IntentRef::Alias(3), Act::Request, 7, Bytes::new());
        request.conversation_id = ConversationId::new("c-1").unwrap();
        let reply = ReplyTo::of(&request, None).error(Act::Refuse, ErrorCode::TooManyAsks, "busy", 9);
        assert_eq!((reply.act, reply.message_id, reply.in_reply_to), (Act::Refuse, 9, 7));
        // [ask.error-intent]: an alias the receiver cannot resolve is not echoed.
        assert_eq!(reply.intent, IntentRef::Id(NO_INTENT));
        assert_eq!(reply.conversation_id.as_str(), "c-1");
        assert_eq!(refusal_of(&reply), Some(Refusal::new(ErrorCode::TooManyAsks, "busy")));
        assert_eq!(refusal_of(&request), None);
    }
}
