//! Handlers: typed async functions the agent calls for the intents peers
//! send it, stored type-erased by IntentId.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use prost::Message as _;
use tacit_quic::{FrameReceiver, FrameSender};
use tacit_wire::{Act, ErrorCode, IntentId};

use crate::context::Context;
use crate::error::{Rejection, Result};
use crate::intent::{Intent, Request};
use crate::reply::{Reply, StreamReceiver, StreamSender};

pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A handler's successful answer, encoded.
#[derive(Debug)]
pub(crate) struct Answer {
    /// `None`: the default act for the request's act.
    pub(crate) act: Option<Act>,
    pub(crate) intent: IntentId,
    pub(crate) payload: Bytes,
}

pub(crate) type AskFn = Arc<dyn Fn(Context, Bytes) -> BoxFuture<Result<Answer, Rejection>> + Send + Sync>;
pub(crate) type TellFn = Arc<dyn Fn(Context, Bytes) -> BoxFuture<()> + Send + Sync>;
pub(crate) type StreamFn = Arc<dyn Fn(Context, Bytes, FrameSender, FrameReceiver) -> BoxFuture<()> + Send + Sync>;

/// The handlers of one agent.
#[derive(Default)]
pub(crate) struct Handlers {
    pub(crate) asks: IntentTable<AskFn>,
    pub(crate) tells: IntentTable<TellFn>,
    pub(crate) streams: IntentTable<StreamFn>,
    /// Asks of intents without a typed handler ([`AgentBuilder::handle_any`](crate::AgentBuilder::handle_any)).
    pub(crate) any_ask: Option<AskFn>,
    /// One-way messages of intents without a typed handler.
    pub(crate) any_tell: Option<TellFn>,
}

impl Handlers {
    /// Whether the agent takes intents it has no type for.
    pub(crate) fn takes_any(&self) -> bool {
        self.any_ask.is_some() || self.any_tell.is_some()
    }

    /// The lanes on which the catch-all handlers take intents.
    pub(crate) fn any_lanes(&self) -> tacit_handshake::Lanes {
        let mut lanes = tacit_handshake::Lanes::NONE;
        if self.any_ask.is_some() {
            lanes = lanes.union(tacit_handshake::Lanes::ASK);
        }
        if self.any_tell.is_some() {
            lanes = lanes.union(tacit_handshake::Lanes::ONE_WAY);
        }
        lanes
    }
}

/// Values by IntentId, fixed once the agent is built, looked up on every
/// incoming message: a sorted vector, whose binary search of a few 32-byte
/// comparisons costs less than hashing the id (an IntentId is already a
/// hash; SipHash over it was 275 instructions an ask).
pub(crate) struct IntentTable<V> {
    entries: Vec<(IntentId, V)>,
}

impl<V> Default for IntentTable<V> {
    fn default() -> Self {
        Self { entries: Vec::new() }
    }
}

impl<V> IntentTable<V> {
    /// Sets the value of `id`, replacing any earlier one.
    pub(crate) fn insert(&mut self, id: IntentId, value: V) {
        match self.entries.binary_search_by(|(key, _)| key.cmp(&id)) {
            Ok(at) => self.entries[at].1 = value,
            Err(at) => self.entries.insert(at, (id, value)),
        }
    }

    pub(crate) fn get(&self, id: &IntentId) -> Option<&V> {
        self.entries.binary_search_by(|(key, _)| key.cmp(id)).ok().map(|at| &self.entries[at].1)
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

impl std::fmt::Debug for Handlers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handlers")
            .field("asks", &self.asks.len())
            .field("tells", &self.tells.len())
            .field("streams", &self.streams.len())
            .field("any_ask", &self.any_ask.is_some())
            .field("any_tell", &self.any_tell.is_some())
            .finish()
    }
}

/// What an ask handler's `Ok` may hold: the reply itself (sent with the
/// default act: `INFORM`, or `PROPOSE` to a call for proposals), or a
/// [`Reply`] with an explicit act.
///
/// Handlers return `Result<T, Rejection>`; because the error type is fixed,
/// `Ok(reply)` needs no annotation, and `?` converts any error into a
/// [`Rejection`].
pub trait IntoReply<R>: Send {
    /// The reply with its act (`None` for the default).
    fn into_reply(self) -> (Option<Act>, R);
}

impl<R: Intent> IntoReply<R> for R {
    fn into_reply(self) -> (Option<Act>, R) {
        (None, self)
    }
}

impl<R: Intent> IntoReply<R> for Reply<R> {
    fn into_reply(self) -> (Option<Act>, R) {
        (Some(self.act), self.message)
    }
}

fn decode<I: Intent>(payload: &Bytes) -> Result<I, Rejection> {
    I::decode(payload.clone())
        .map_err(|e| Rejection::not_understood(ErrorCode::InvalidPayload, format!("cannot decode {}: {e}", I::NAME)))
}

pub(crate) fn ask_fn<I, F, Fut, T>(handler: F) -> AskFn
where
    I: Request,
    F: Fn(Context, I) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, Rejection>> + Send + 'static,
    T: IntoReply<I::Reply> + 'static,
{
    let handler = Arc::new(handler);
    Arc::new(move |cx: Context, payload: Bytes| {
        let handler = handler.clone();
        Box::pin(async move {
            let request = decode::<I>(&payload)?;
            let (act, reply) = handler(cx, request).await?.into_reply();
            Ok(Answer { act, intent: <I::Reply as Intent>::ID, payload: reply.encode_to_vec().into() })
        })
    })
}

pub(crate) fn tell_fn<I, F, Fut>(handler: F) -> TellFn
where
    I: Intent,
    F: Fn(Context, I) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let handler = Arc::new(handler);
    Arc::new(move |cx: Context, payload: Bytes| {
        let handler = handler.clone();
        Box::pin(async move {
            match decode::<I>(&payload) {
                Ok(message) => handler(cx, message).await,
                Err(rejection) => {
                    cx.metrics().error(rejection.code);
                    tracing::debug!(intent = I::NAME, "dropped an undecodable one-way message: {}", rejection.reason);
                }
            }
        })
    })
}

pub(crate) fn stream_fn<I, In, Out, F, Fut>(handler: F) -> StreamFn
where
    I: Intent,
    In: prost::Message + Default + Send + 'static,
    Out: prost::Message + Send + 'static,
    F: Fn(Context, I, StreamSender<Out>, StreamReceiver<In>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let handler = Arc::new(handler);
    Arc::new(move |cx: Context, payload: Bytes, sender: FrameSender, receiver: FrameReceiver| {
        let handler = handler.clone();
        Box::pin(async move {
            match decode::<I>(&payload) {
                Ok(opening) => {
                    let receiver = StreamReceiver::new(receiver, I::NAME);
                    handler(cx, opening, StreamSender::new(sender), receiver).await;
                }
                Err(rejection) => {
                    cx.metrics().error(rejection.code);
                    // Dropping the halves resets the stream: the opener sees it.
                    drop((sender, receiver));
                }
            }
        })
    })
}

pub(crate) fn schema_ask_fn<F, Fut>(reply: IntentId, handler: F) -> AskFn
where
    F: Fn(Context, Bytes) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(Option<Act>, Bytes), Rejection>> + Send + 'static,
{
    let handler = Arc::new(handler);
    Arc::new(move |cx: Context, payload: Bytes| {
        let handler = handler.clone();
        Box::pin(async move {
            let (act, payload) = handler(cx, payload).await?;
            Ok(Answer { act, intent: reply, payload })
        })
    })
}

pub(crate) fn raw_stream_fn<F, Fut>(handler: F) -> StreamFn
where
    F: Fn(Context, Bytes, StreamSender<()>, StreamReceiver<()>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let handler = Arc::new(handler);
    Arc::new(move |cx: Context, payload: Bytes, sender: FrameSender, receiver: FrameReceiver| {
        let handler = handler.clone();
        Box::pin(async move {
            let receiver = StreamReceiver::new(receiver, "a dynamic intent");
            handler(cx, payload, StreamSender::new(sender), receiver).await;
        })
    })
}

pub(crate) fn any_ask_fn<F, Fut>(handler: F) -> AskFn
where
    F: Fn(Context, Bytes) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(IntentId, Bytes), Rejection>> + Send + 'static,
{
    let handler = Arc::new(handler);
    Arc::new(move |cx: Context, payload: Bytes| {
        let handler = handler.clone();
        Box::pin(async move {
            let (intent, payload) = handler(cx, payload).await?;
            Ok(Answer { act: None, intent, payload })
        })
    })
}

pub(crate) fn any_tell_fn<F, Fut>(handler: F) -> TellFn
where
    F: Fn(Context, Bytes) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let handler = Arc::new(handler);
    Arc::new(move |cx: Context, payload: Bytes| Box::pin(handler(cx, payload)))
}
