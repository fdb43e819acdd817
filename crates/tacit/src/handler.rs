//! Handlers: typed async functions the agent calls for the intents peers
//! send it, stored type-erased by IntentId.

use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use prost::Message as _;
use tacit_quic::{FrameReceiver, FrameSender};
use tacit_wire::{Act, ErrorCode, IntentId};

use crate::context::Context;
use crate::error::{Error, Rejection, Result};
use crate::intent::{Intent, Request};

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
    pub(crate) asks: HashMap<IntentId, AskFn>,
    pub(crate) tells: HashMap<IntentId, TellFn>,
    pub(crate) streams: HashMap<IntentId, StreamFn>,
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

/// A reply with an explicit act, for handlers that answer with something
/// other than the default (`INFORM`, or `PROPOSE` to a call for proposals),
/// e.g. `AGREE`.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply<T> {
    /// The act of the answer.
    pub act: Act,
    /// The reply message.
    pub message: T,
}

impl<T> Reply<T> {
    /// A reply with `act`.
    pub fn new(act: Act, message: T) -> Self {
        Self { act, message }
    }
}

/// What an ask handler may return: `Result<R, Rejection>` or
/// `Result<Reply<R>, Rejection>`, where `R` is the request's reply type.
pub trait IntoReply<R>: Send {
    /// The reply with its act (`None` for the default), or the rejection.
    fn into_reply(self) -> Result<(Option<Act>, R), Rejection>;
}

impl<R: Intent> IntoReply<R> for Result<R, Rejection> {
    fn into_reply(self) -> Result<(Option<Act>, R), Rejection> {
        self.map(|reply| (None, reply))
    }
}

impl<R: Intent> IntoReply<R> for Result<Reply<R>, Rejection> {
    fn into_reply(self) -> Result<(Option<Act>, R), Rejection> {
        self.map(|reply| (Some(reply.act), reply.message))
    }
}

fn decode<I: Intent>(payload: &Bytes) -> Result<I, Rejection> {
    I::decode(payload.clone()).map_err(|e| Rejection {
        act: Act::NotUnderstood,
        code: ErrorCode::InvalidPayload,
        reason: format!("cannot decode {}: {e}", I::NAME),
    })
}

pub(crate) fn ask_fn<I, F, Fut, R>(handler: F) -> AskFn
where
    I: Request,
    F: Fn(Context, I) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = R> + Send + 'static,
    R: IntoReply<I::Reply> + 'static,
{
    let handler = Arc::new(handler);
    Arc::new(move |cx: Context, payload: Bytes| {
        let handler = handler.clone();
        Box::pin(async move {
            let request = decode::<I>(&payload)?;
            let (act, reply) = handler(cx, request).await.into_reply()?;
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
    F: Fn(Context, I, StreamReceiver<In>, StreamSender<Out>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let handler = Arc::new(handler);
    Arc::new(move |cx: Context, payload: Bytes, sender: FrameSender, receiver: FrameReceiver| {
        let handler = handler.clone();
        Box::pin(async move {
            match decode::<I>(&payload) {
                Ok(opening) => {
                    let receiver = StreamReceiver::new(receiver, I::NAME);
                    handler(cx, opening, receiver, StreamSender::new(sender)).await;
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

/// Sends typed messages on a stream lane, in order; end it with
/// [`finish`](Self::finish); dropping it ends the direction the same way,
/// after everything sent.
#[derive(Debug)]
pub struct StreamSender<T> {
    inner: FrameSender,
    _type: PhantomData<fn(T)>,
}

impl<T: prost::Message> StreamSender<T> {
    pub(crate) fn new(inner: FrameSender) -> Self {
        Self { inner, _type: PhantomData }
    }

    /// Sends one message.
    pub async fn send(&mut self, message: &T) -> Result<()> {
        Ok(self.inner.send(message.encode_to_vec().into()).await?)
    }

    /// Ends this direction with the explicit end marker.
    pub async fn finish(self) -> Result<()> {
        Ok(self.inner.finish().await?)
    }
}

/// Receives typed messages from a stream lane.
#[derive(Debug)]
pub struct StreamReceiver<T> {
    inner: FrameReceiver,
    intent: &'static str,
    _type: PhantomData<fn() -> T>,
}

impl<T: prost::Message + Default> StreamReceiver<T> {
    pub(crate) fn new(inner: FrameReceiver, intent: &'static str) -> Self {
        Self { inner, intent, _type: PhantomData }
    }

    /// The next message; `Ok(None)` at the peer's explicit end; an error if
    /// the stream was cut off ([`StreamError::Truncated`](tacit_quic::StreamError)),
    /// reset, or a message does not decode.
    pub async fn recv(&mut self) -> Result<Option<T>> {
        match self.inner.recv().await? {
            None => Ok(None),
            Some(envelope) => T::decode(envelope.payload)
                .map(Some)
                .map_err(|e| Error::Decode { intent: self.intent, reason: e.to_string() }),
        }
    }
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
