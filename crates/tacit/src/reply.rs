//! What travels back: a reply with an explicit act, and the typed halves of
//! a stream lane. Used by both sides (handlers and [`Peer`](crate::Peer)).

use std::marker::PhantomData;

use tacit_handshake::Receipt;
use tacit_quic::{FrameReceiver, FrameSender};
use tacit_wire::Act;

use crate::error::{Error, Result};

/// A reply with an explicit act, for handlers that answer with something
/// other than the default (`INFORM`, or `PROPOSE` to a call for proposals),
/// e.g. `AGREE`.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply<T> {
    /// The act of the answer.
    pub act: Act,
    /// The reply message.
    pub message: T,
    /// The verified receipt of a signed answer.
    pub(crate) receipt: Option<Box<Receipt>>,
}

impl<T> Reply<T> {
    /// A reply with `act`.
    pub fn new(act: Act, message: T) -> Self {
        Self { act, message, receipt: None }
    }

    /// The answer's receipt, if the peer signed it (it does when the ask
    /// asked, [`AskOptions::sign_reply`](crate::AskOptions::sign_reply)):
    /// already verified against the peer's AgentId. Keep it
    /// ([`Receipt::encode_to_vec`]) as evidence that the peer sent this
    /// answer; anyone can check it with `tacit verify`.
    pub fn receipt(&self) -> Option<&Receipt> {
        self.receipt.as_deref()
    }

    /// Takes the receipt out of the reply.
    pub fn take_receipt(&mut self) -> Option<Receipt> {
        self.receipt.take().map(|receipt| *receipt)
    }
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

    /// Sends one already encoded message (for the untyped halves of
    /// [`Peer::stream_raw`](crate::Peer::stream_raw)).
    pub async fn send_raw(&mut self, payload: bytes::Bytes) -> Result<()> {
        Ok(self.inner.send(payload).await?)
    }

    /// Ends this direction with the explicit end marker.
    pub async fn finish(self) -> Result<()> {
        Ok(self.inner.finish().await?)
    }

    /// Abandons this direction with a stream error: the peer's receiver
    /// fails with `code` ([`Error::code`](crate::Error::code)), and messages
    /// not yet delivered may be lost. For a handler that refuses a stream
    /// (a quota, a malformed opening) with a code on the wire.
    pub fn reset(self, code: tacit_wire::ErrorCode) {
        self.inner.reset(code);
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

    /// The next message still encoded; `Ok(None)` at the peer's explicit
    /// end (for the untyped halves of [`Peer::stream_raw`](crate::Peer::stream_raw)).
    pub async fn recv_raw(&mut self) -> Result<Option<bytes::Bytes>> {
        Ok(self.inner.recv().await?.map(|envelope| envelope.payload))
    }
}
