//! A dialed (or accepted) peer, and the untyped halves of stream lanes.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pyo3::prelude::*;
use tacit::credential::VerifiedCredential;
use tacit::{Act, AskOptions, ConversationId, IntentId, Peer, StreamReceiver, StreamSender, TellOptions};
use tokio::sync::Mutex;

use crate::bridge::{BridgeInner, Payload, call};
use crate::error::{NativeError, value_error};
use crate::schema::{SchemaArg, schema_arg};

/// What an ask answers: `(act, reply intent id or None, payload, message id, encoded receipt)`.
type Answered = (i32, Option<Payload>, Payload, u64, Option<Payload>);
/// One offer: `(intent id, name, handles, lane names, reply id)`.
type OfferParts = (Payload, String, bool, Vec<String>, Option<Payload>);

#[pyclass(frozen, module = "tacit._native", name = "Peer")]
pub(crate) struct PyPeer {
    peer: Peer,
    bridge: Arc<BridgeInner>,
}

impl PyPeer {
    pub(crate) fn new(peer: Peer, bridge: Arc<BridgeInner>) -> Self {
        Self { peer, bridge }
    }
}

/// Offers `id` to the peer if this session has not negotiated it and its
/// schema is registered (a no-op once negotiated).
async fn offer_registered(peer: &Peer, id: IntentId) -> Result<(), NativeError> {
    match crate::schema::registered(&id) {
        Some(schema) => peer.offer(&schema).await.map_err(NativeError::from),
        None => Ok(()),
    }
}

fn intent(id: &[u8]) -> PyResult<IntentId> {
    IntentId::try_from(id).map_err(|_| value_error("schema", "an IntentId is 32 bytes"))
}

fn conversation(id: Option<&str>) -> PyResult<ConversationId> {
    match id {
        None => Ok(ConversationId::none()),
        Some(id) => ConversationId::new(id).map_err(|e| value_error("config", format!("conversation id {id:?}: {e}"))),
    }
}

fn act(value: i32) -> PyResult<Act> {
    Act::try_from(value).map_err(|_| value_error("config", format!("{value} is no act")))
}

pub(crate) fn credentials(credentials: &[VerifiedCredential]) -> Vec<(String, Vec<String>, f64)> {
    credentials
        .iter()
        .map(|c| {
            let expires = c.not_after.duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs_f64();
            (c.org.to_string(), c.roles.clone(), expires)
        })
        .collect()
}

#[pymethods]
impl PyPeer {
    #[getter]
    fn id(&self) -> String {
        self.peer.id().to_string()
    }

    #[getter]
    fn addr(&self) -> String {
        self.peer.addr().to_string()
    }

    /// The peer's card: `(name, description, roles)`, once the handshake is done.
    #[getter]
    fn card(&self) -> Option<(String, String, Vec<String>)> {
        self.peer.card().map(|card| (card.name, card.description, card.roles))
    }

    /// The peer's verified credentials, as [`Context::peer_credentials`](crate::agent::PyContext).
    #[getter]
    fn credentials(&self) -> Vec<(String, Vec<String>, f64)> {
        credentials(&self.peer.credentials())
    }

    /// What the peer offers: `(intent id, name, handles, lane names, reply id)` each;
    /// an awaitable (it waits for the handshake).
    fn offers(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let peer = self.peer.clone();
        call(py, &self.bridge, async move {
            let negotiated = peer.ready().await.map_err(NativeError::from)?;
            let id = |id: &IntentId| Payload(Bytes::copy_from_slice(id.as_bytes()));
            let offers: Vec<OfferParts> = negotiated
                .peer_offers
                .iter()
                .map(|offer| {
                    (
                        id(&offer.id),
                        offer.name.clone(),
                        offer.handles,
                        tacit::Lane::ALL
                            .iter()
                            .filter(|lane| offer.lanes.contains(**lane))
                            .map(|lane| lane.to_string())
                            .collect::<Vec<_>>(),
                        offer.reply.as_ref().map(id),
                    )
                })
                .collect();
            Ok(offers)
        })
    }

    /// Offers an intent this agent sends (no-op once negotiated).
    fn offer(&self, py: Python<'_>, schema: SchemaArg) -> PyResult<Py<PyAny>> {
        let schema = schema_arg(&schema)?;
        let peer = self.peer.clone();
        call(py, &self.bridge, async move { peer.offer(&schema).await.map_err(NativeError::from) })
    }

    #[pyo3(signature = (intent_id, payload, *, timeout = None, act_value = 1, conversation_id = None,
        in_reply_to = 0, idempotent = false, signed = false, sign_reply = false))]
    #[allow(clippy::too_many_arguments)]
    fn ask(
        &self,
        py: Python<'_>,
        intent_id: &[u8],
        payload: &[u8],
        timeout: Option<f64>,
        act_value: i32,
        conversation_id: Option<&str>,
        in_reply_to: u64,
        idempotent: bool,
        signed: bool,
        sign_reply: bool,
    ) -> PyResult<Py<PyAny>> {
        let id = intent(intent_id)?;
        let mut options = AskOptions::default()
            .act(act(act_value)?)
            .conversation(conversation(conversation_id)?)
            .in_reply_to(in_reply_to);
        let timeout = timeout
            .map(|seconds| {
                Duration::try_from_secs_f64(seconds)
                    .map_err(|_| value_error("config", format!("timeout {seconds} is not a duration")))
            })
            .transpose()?;
        let started = tokio::time::Instant::now();
        if idempotent {
            options = options.idempotent();
        }
        options = options.signed(signed).sign_reply(sign_reply);
        let payload = Bytes::copy_from_slice(payload);
        let peer = self.peer.clone();
        call(py, &self.bridge, async move {
            // The offer (on a session's first use) counts against the timeout.
            match timeout {
                Some(limit) => {
                    tokio::time::timeout_at(started + limit, offer_registered(&peer, id))
                        .await
                        .map_err(|_| NativeError::deadline())??;
                    let left = limit.saturating_sub(started.elapsed());
                    if left.is_zero() {
                        return Err(NativeError::deadline());
                    }
                    options = options.deadline(left);
                }
                None => offer_registered(&peer, id).await?,
            }
            let reply = peer.ask_raw(id, payload, options).await.map_err(NativeError::from)?;
            let intent = reply.intent.map(|id| Payload(Bytes::copy_from_slice(id.as_bytes())));
            let receipt = reply.receipt.map(|receipt| Payload(receipt.encode_to_vec().into()));
            Ok::<Answered, _>((reply.act as i32, intent, Payload(reply.payload), reply.message_id, receipt))
        })
    }

    #[pyo3(signature = (intent_id, payload, *, act_value = 2, conversation_id = None, in_reply_to = 0))]
    fn tell(
        &self,
        py: Python<'_>,
        intent_id: &[u8],
        payload: &[u8],
        act_value: i32,
        conversation_id: Option<&str>,
        in_reply_to: u64,
    ) -> PyResult<Py<PyAny>> {
        let id = intent(intent_id)?;
        let options = TellOptions::default()
            .act(act(act_value)?)
            .conversation(conversation(conversation_id)?)
            .in_reply_to(in_reply_to);
        let payload = Bytes::copy_from_slice(payload);
        let peer = self.peer.clone();
        call(py, &self.bridge, async move {
            offer_registered(&peer, id).await?;
            peer.tell_raw(id, payload, options).await.map_err(NativeError::from)
        })
    }

    fn datagram(&self, py: Python<'_>, intent_id: &[u8], payload: &[u8]) -> PyResult<Py<PyAny>> {
        let id = intent(intent_id)?;
        let payload = Bytes::copy_from_slice(payload);
        let peer = self.peer.clone();
        call(py, &self.bridge, async move {
            offer_registered(&peer, id).await?;
            peer.datagram_raw(id, payload).await.map_err(NativeError::from)
        })
    }

    /// Opens a stream lane; an awaitable of `(sender, receiver)`.
    fn stream(&self, py: Python<'_>, intent_id: &[u8], payload: &[u8]) -> PyResult<Py<PyAny>> {
        let id = intent(intent_id)?;
        let payload = Bytes::copy_from_slice(payload);
        let peer = self.peer.clone();
        let bridge = self.bridge.clone();
        call(py, &self.bridge, async move {
            offer_registered(&peer, id).await?;
            let (sender, receiver) = peer.stream_raw(id, payload).await.map_err(NativeError::from)?;
            Ok((PyStreamSender::new(sender, bridge.clone()), PyStreamReceiver::new(receiver, bridge)))
        })
    }

    /// Fetches an intent's schema; an awaitable of `(name, descriptor set)`.
    fn describe(&self, py: Python<'_>, intent_id: &[u8]) -> PyResult<Py<PyAny>> {
        let id = intent(intent_id)?;
        let peer = self.peer.clone();
        call(py, &self.bridge, async move {
            let schema = peer.describe(id).await.map_err(NativeError::from)?;
            Ok((schema.name().to_owned(), Payload(schema.descriptor_set().clone())))
        })
    }

    /// Waits for the handshake (an awaitable of None).
    fn ready(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let peer = self.peer.clone();
        call(py, &self.bridge, async move { peer.ready().await.map(|_| ()).map_err(NativeError::from) })
    }

    /// Closes the connection (`CLOSED`).
    fn close(&self) {
        self.peer.close();
    }

    fn __repr__(&self) -> String {
        format!("<tacit Peer {} at {}>", self.peer.id(), self.peer.addr())
    }
}

/// What this side sends on a stream lane.
#[pyclass(frozen, module = "tacit._native", name = "StreamSender")]
pub(crate) struct PyStreamSender {
    sender: Arc<Mutex<Option<StreamSender<()>>>>,
    bridge: Arc<BridgeInner>,
}

impl PyStreamSender {
    pub(crate) fn new(sender: StreamSender<()>, bridge: Arc<BridgeInner>) -> Self {
        Self { sender: Arc::new(Mutex::new(Some(sender))), bridge }
    }
}

fn finished() -> NativeError {
    NativeError::new("stream", "this direction of the stream is finished")
}

#[pymethods]
impl PyStreamSender {
    fn send(&self, py: Python<'_>, payload: &[u8]) -> PyResult<Py<PyAny>> {
        let payload = Bytes::copy_from_slice(payload);
        let sender = self.sender.clone();
        call(py, &self.bridge, async move {
            let mut sender = sender.lock().await;
            let sender = sender.as_mut().ok_or_else(finished)?;
            sender.send_raw(payload).await.map_err(NativeError::from)
        })
    }

    fn finish(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let sender = self.sender.clone();
        call(py, &self.bridge, async move {
            let taken = sender.lock().await.take();
            match taken {
                Some(sender) => sender.finish().await.map_err(NativeError::from),
                None => Ok(()),
            }
        })
    }
}

/// What the other side streams.
#[pyclass(frozen, module = "tacit._native", name = "StreamReceiver")]
pub(crate) struct PyStreamReceiver {
    receiver: Arc<Mutex<StreamReceiver<()>>>,
    bridge: Arc<BridgeInner>,
}

impl PyStreamReceiver {
    pub(crate) fn new(receiver: StreamReceiver<()>, bridge: Arc<BridgeInner>) -> Self {
        Self { receiver: Arc::new(Mutex::new(receiver)), bridge }
    }
}

#[pymethods]
impl PyStreamReceiver {
    /// The next encoded message, or None at the end.
    fn recv(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let receiver = self.receiver.clone();
        call(py, &self.bridge, async move {
            let next = receiver.lock().await.recv_raw().await.map_err(NativeError::from)?;
            Ok(next.map(Payload))
        })
    }
}
