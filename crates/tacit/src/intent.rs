//! Typed intents: protobuf messages that know their IntentId.

use tacit_wire::IntentId;

/// A protobuf message that travels between agents as an intent.
///
/// Implemented by the code [`tacit-build`](https://docs.rs/tacit-build)
/// generates from `.proto` files (and by Tacit's standard intents in
/// [`intents`](crate::intents)); there is rarely a reason to implement it by
/// hand. The id is the BLAKE3 hash of the message's canonical schema, as
/// `docs/PROTOCOL.md` ("IntentId") specifies, so two agents agree on an
/// intent exactly when they agree on its schema.
pub trait Intent: prost::Message + Default + Clone + Send + Sync + 'static {
    /// The intent's id: the hash of its canonical schema.
    const ID: IntentId;
    /// The message's fully qualified protobuf name, e.g. `market.v1.ReserveSlot`.
    const NAME: &'static str;
    /// An encoded `google.protobuf.FileDescriptorSet` that defines the
    /// message and everything it reaches; served to peers that fetch the
    /// schema (`describe`), and hashing to [`ID`](Self::ID).
    const DESCRIPTOR_SET: &'static [u8];
}

/// What an offer names and schema fetch serves for a type that travels
/// with an intent without being offered itself: a reply, or the data type
/// of one direction of a stream lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct IntentType {
    /// Its IntentId.
    pub id: IntentId,
    /// Its fully qualified protobuf name.
    pub name: &'static str,
    /// An encoded `FileDescriptorSet` defining it.
    pub descriptor_set: &'static [u8],
}

impl IntentType {
    /// The type of intent `I`.
    pub const fn of<I: Intent>() -> Self {
        Self { id: I::ID, name: I::NAME, descriptor_set: I::DESCRIPTOR_SET }
    }
}

/// An intent that is asked (sent as a request) and answered with one
/// [`Reply`](Self::Reply).
///
/// In a `.proto` file, a message names its reply with the message option
/// `option (tacit.v1.reply) = "SlotReserved";` (from `tacit/v1/options.proto`);
/// tacit-build then implements this trait.
pub trait Request: Intent {
    /// The intent that answers this request.
    type Reply: Intent;
}

/// An intent that opens a stream lane: after the opening, the opener sends
/// [`Send`](Self::Send) messages and the handler streams back
/// [`Item`](Self::Item) messages, each direction ended explicitly.
///
/// In a `.proto` file, a message names the types with the message options
/// `option (tacit.v1.stream_item) = "Forecast";` and (optionally)
/// `option (tacit.v1.stream_send) = "ChangeRegion";` (from
/// `tacit/v1/options.proto`); tacit-build then implements this trait. A
/// direction that carries nothing after the opening has the type `()`.
/// The types are not part of the IntentId: data envelopes carry the
/// opening's intent; peers learn the types from the handler's offer
/// (`stream_item`, `stream_send`) and from the schema.
pub trait Subscription: Intent {
    /// What the opener sends on the lane after the opening (`()`: nothing).
    type Send: prost::Message + Default + Send + 'static;
    /// What the handler streams back to the opener (`()`: nothing).
    type Item: prost::Message + Default + Send + 'static;
    /// The intent type of [`Item`](Self::Item), which the handler's offer
    /// names (`stream_item`) and its agent serves on schema fetch; `None`
    /// for `()` or a type that is not an intent. tacit-build sets it.
    const ITEM_TYPE: Option<IntentType> = None;
    /// The intent type of [`Send`](Self::Send), as for
    /// [`ITEM_TYPE`](Self::ITEM_TYPE) (`stream_send`).
    const SEND_TYPE: Option<IntentType> = None;
}
