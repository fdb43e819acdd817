//! The agent: built from the Python layer's registrations, its handlers
//! run as coroutines on the event loop that bound it.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use tacit::{Act, Agent, AgentCard, Context, ErrorCode, Rejection, StreamReceiver, StreamSender};
use tokio::sync::oneshot;

use crate::bridge::{BridgeInner, LoopBridge, call};
use crate::error::{NativeError, value_error};
use crate::peer::{PyPeer, PyStreamReceiver, PyStreamSender};
use crate::schema::{SchemaArg, schema_arg};

/// `(request, reply, handler)`.
type AskArg = (SchemaArg, SchemaArg, Py<PyAny>);
/// `(intent, handler)`.
type TellArg = (SchemaArg, Py<PyAny>);
/// `(opening, item, send, handler)`.
type StreamArg = (SchemaArg, Option<SchemaArg>, Option<SchemaArg>, Py<PyAny>);

/// Builds and binds an agent; an awaitable of [`PyAgent`].
///
/// Each handler is a Python callable `dispatch(context, payload, slot, ...)`
/// that starts the application's coroutine as a task and returns the task;
/// the coroutine settles `slot` ([`PySlot`]) with the answer.
#[pyfunction]
#[pyo3(signature = (bridge, addr, *, name, description, roles, key_file, max_message_len, max_concurrent_asks,
    connect_timeout, policy_file, credential_files, trust, asks, tells, streams, emits))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn bind(
    py: Python<'_>,
    bridge: &LoopBridge,
    addr: &str,
    name: String,
    description: Option<String>,
    roles: Vec<String>,
    key_file: Option<PathBuf>,
    max_message_len: Option<u32>,
    max_concurrent_asks: Option<u32>,
    connect_timeout: Option<f64>,
    policy_file: Option<PathBuf>,
    credential_files: Vec<PathBuf>,
    trust: Vec<String>,
    asks: Vec<AskArg>,
    tells: Vec<TellArg>,
    streams: Vec<StreamArg>,
    emits: Vec<SchemaArg>,
) -> PyResult<Py<PyAny>> {
    let addr: std::net::SocketAddr =
        addr.parse().map_err(|_| value_error("config", format!("{addr:?} is not an address such as 127.0.0.1:0")))?;
    let mut card = AgentCard::new(name);
    if let Some(description) = description {
        card = card.with_description(description);
    }
    for role in roles {
        card = card.with_role(role);
    }
    let mut builder = Agent::builder().card(card);
    if let Some(path) = key_file {
        builder = builder.key_file(path);
    }
    if let Some(len) = max_message_len {
        builder = builder.max_message_len(len);
    }
    if let Some(asks) = max_concurrent_asks {
        builder = builder.max_concurrent_asks(asks);
    }
    if let Some(seconds) = connect_timeout {
        let timeout = Duration::try_from_secs_f64(seconds)
            .map_err(|_| value_error("config", format!("connect_timeout {seconds} is not a duration")))?;
        builder = builder.connect_timeout(timeout);
    }
    if let Some(path) = policy_file {
        builder = builder.policy_file(path);
    }
    for path in credential_files {
        let bytes = std::fs::read(&path).map_err(|e| value_error("config", format!("{}: {e}", path.display())))?;
        let credential = tacit::credential::SignedCredential::decode(&bytes)
            .map_err(|e| value_error("config", format!("{} is not a credential: {e}", path.display())))?;
        builder = builder.credential(credential);
    }
    for org in trust {
        let key = org.parse().map_err(|e| value_error("config", format!("{org:?} is not an organisation key: {e}")))?;
        builder = builder.trust(key);
    }
    let queue = &bridge.inner;
    for (request, reply, dispatch) in asks {
        let (request, reply) = (schema_arg(&request)?, schema_arg(&reply)?);
        builder = builder.on_ask_schema(&request, &reply, ask_handler(queue.clone(), Arc::new(dispatch)));
    }
    for (intent, dispatch) in tells {
        let intent = schema_arg(&intent)?;
        builder = builder.on_tell_schema(&intent, tell_handler(queue.clone(), Arc::new(dispatch)));
    }
    for (opening, item, send, dispatch) in streams {
        let opening = schema_arg(&opening)?;
        let item = item.as_ref().map(schema_arg).transpose()?;
        let send = send.as_ref().map(schema_arg).transpose()?;
        let handler = stream_handler(queue.clone(), Arc::new(dispatch));
        builder = builder.on_stream_schema(&opening, item.as_ref(), send.as_ref(), handler);
    }
    for intent in emits {
        builder = builder.emits_schema(&schema_arg(&intent)?);
    }
    let queue = queue.clone();
    call(py, &bridge.inner, async move {
        let agent = builder.bind(addr).await.map_err(NativeError::from)?;
        Ok(PyAgent { agent, bridge: queue })
    })
}

/// What a handler's coroutine answers with.
type Answer = Result<(Option<Act>, Bytes), Rejection>;

/// A handler's side of one incoming message: the coroutine settles it
/// (`reply`, `reject`, `done`); dropping the Rust side (the asker
/// cancelled, or the session ended) cancels the coroutine's task.
#[pyclass(frozen, module = "tacit._native", name = "Slot")]
pub(crate) struct PySlot {
    state: Arc<SlotState>,
}

#[derive(Default)]
struct SlotState {
    answer: Mutex<Option<oneshot::Sender<Answer>>>,
    task: Mutex<Option<Py<PyAny>>>,
}

impl SlotState {
    fn send(&self, answer: Answer) -> bool {
        let sender = self.answer.lock().unwrap_or_else(|e| e.into_inner()).take();
        sender.is_some_and(|sender| sender.send(answer).is_ok())
    }
}

#[pymethods]
impl PySlot {
    /// Answers with the encoded reply and its act (`None`: the default).
    #[pyo3(signature = (act, payload))]
    fn reply(&self, act: Option<i32>, payload: &[u8]) -> PyResult<bool> {
        let act = act.map(act_from).transpose()?;
        Ok(self.state.send(Ok((act, Bytes::copy_from_slice(payload)))))
    }

    /// Answers with a rejection.
    #[pyo3(signature = (act, code, reason, detail_intent = None, detail = None))]
    fn reject(
        &self,
        act: i32,
        code: i32,
        reason: String,
        detail_intent: Option<&[u8]>,
        detail: Option<&[u8]>,
    ) -> PyResult<bool> {
        let code = ErrorCode::try_from(code).unwrap_or(ErrorCode::HandlerFailed);
        let mut rejection = match act_from(act)? {
            Act::Refuse => Rejection::refuse(code, reason),
            Act::NotUnderstood => Rejection::not_understood(code, reason),
            _ => Rejection::failure(code, reason),
        };
        if let (Some(id), Some(detail)) = (detail_intent, detail) {
            let id = tacit::IntentId::try_from(id).map_err(|_| value_error("schema", "an IntentId is 32 bytes"))?;
            rejection = rejection.with_raw_detail(id, Bytes::copy_from_slice(detail));
        }
        Ok(self.state.send(Err(rejection)))
    }

    /// Ends a tell or stream handler.
    fn done(&self) -> bool {
        self.state.send(Ok((None, Bytes::new())))
    }
}

fn act_from(act: i32) -> PyResult<Act> {
    Act::try_from(act).map_err(|_| value_error("config", format!("{act} is no act")))
}

/// Starts `dispatch(args…, slot)` on the loop, and cancels its task if the
/// returned guard is dropped before the answer.
fn start(
    queue: &Arc<BridgeInner>,
    dispatch: Arc<Py<PyAny>>,
    args: impl for<'py> FnOnce(Python<'py>) -> PyResult<Vec<Py<PyAny>>> + Send + 'static,
) -> (oneshot::Receiver<Answer>, CancelOnDrop) {
    let (sender, receiver) = oneshot::channel();
    let state = Arc::new(SlotState { answer: Mutex::new(Some(sender)), task: Mutex::new(None) });
    let slot_state = state.clone();
    queue.push(Box::new(move |py| {
        let started = (|| -> PyResult<()> {
            let mut args = args(py)?;
            args.push(Py::new(py, PySlot { state: slot_state.clone() })?.into_any());
            let task = dispatch.call1(py, pyo3::types::PyTuple::new(py, args)?)?;
            *slot_state.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
            Ok(())
        })();
        if let Err(error) = started {
            let reason = error.to_string();
            error.write_unraisable(py, None);
            slot_state.send(Err(Rejection::failed(format!("the Python handler did not start: {reason}"))));
        }
    }));
    (receiver, CancelOnDrop { queue: queue.clone(), state: Some(state) })
}

/// Cancels the handler's task unless disarmed.
struct CancelOnDrop {
    queue: Arc<BridgeInner>,
    state: Option<Arc<SlotState>>,
}

impl CancelOnDrop {
    fn disarm(mut self) {
        self.state = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(state) = self.state.take() {
            // Nobody waits for an answer any more.
            state.answer.lock().unwrap_or_else(|e| e.into_inner()).take();
            self.queue.push(Box::new(move |py| {
                let task = state.task.lock().unwrap_or_else(|e| e.into_inner()).take();
                if let Some(task) = task
                    && let Err(error) = task.call_method0(py, pyo3::intern!(py, "cancel"))
                {
                    error.write_unraisable(py, None);
                }
            }));
        }
    }
}

async fn answer(receiver: oneshot::Receiver<Answer>, guard: CancelOnDrop) -> Answer {
    let answer = receiver.await;
    guard.disarm();
    answer.unwrap_or_else(|_| Err(Rejection::failed("the Python handler ended without answering")))
}

fn ask_handler(
    queue: Arc<BridgeInner>,
    dispatch: Arc<Py<PyAny>>,
) -> impl Fn(Context, Bytes) -> futures_answer::Ask + Send + Sync + 'static {
    move |cx: Context, payload: Bytes| {
        let bridge = queue.clone();
        let (receiver, guard) = start(&queue, dispatch.clone(), move |py| {
            Ok(vec![Py::new(py, PyContext { cx, bridge })?.into_any(), PyBytes::new(py, &payload).unbind().into_any()])
        });
        Box::pin(answer(receiver, guard))
    }
}

fn tell_handler(
    queue: Arc<BridgeInner>,
    dispatch: Arc<Py<PyAny>>,
) -> impl Fn(Context, Bytes) -> futures_answer::Done + Send + Sync + 'static {
    move |cx: Context, payload: Bytes| {
        let bridge = queue.clone();
        let (receiver, guard) = start(&queue, dispatch.clone(), move |py| {
            Ok(vec![Py::new(py, PyContext { cx, bridge })?.into_any(), PyBytes::new(py, &payload).unbind().into_any()])
        });
        Box::pin(async move {
            let _ = answer(receiver, guard).await;
        })
    }
}

fn stream_handler(
    queue: Arc<BridgeInner>,
    dispatch: Arc<Py<PyAny>>,
) -> impl Fn(Context, Bytes, StreamSender<()>, StreamReceiver<()>) -> futures_answer::Done + Send + Sync + 'static {
    move |cx: Context, payload: Bytes, sender: StreamSender<()>, receiver: StreamReceiver<()>| {
        let bridge = queue.clone();
        let (answered, guard) = start(&queue, dispatch.clone(), move |py| {
            Ok(vec![
                Py::new(py, PyContext { cx, bridge: bridge.clone() })?.into_any(),
                PyBytes::new(py, &payload).unbind().into_any(),
                Py::new(py, PyStreamSender::new(sender, bridge.clone()))?.into_any(),
                Py::new(py, PyStreamReceiver::new(receiver, bridge))?.into_any(),
            ])
        });
        Box::pin(async move {
            let _ = answer(answered, guard).await;
        })
    }
}

mod futures_answer {
    pub(super) type Ask = std::pin::Pin<Box<dyn Future<Output = super::Answer> + Send>>;
    pub(super) type Done = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;
}

/// A bound agent.
#[pyclass(frozen, module = "tacit._native", name = "Agent")]
pub(crate) struct PyAgent {
    agent: Agent,
    bridge: Arc<BridgeInner>,
}

#[pymethods]
impl PyAgent {
    /// Its AgentId.
    #[getter]
    fn id(&self) -> String {
        self.agent.id().to_string()
    }

    /// The address it serves on, `ip:port`.
    #[getter]
    fn addr(&self) -> PyResult<String> {
        self.agent
            .local_addr()
            .map(|addr| addr.to_string())
            .map_err(|e| Python::attach(|py| NativeError::from(e).into_pyerr(py)))
    }

    /// Dials a peer; an awaitable of a [`PyPeer`].
    #[pyo3(signature = (addr, agent_id = None))]
    fn connect(&self, py: Python<'_>, addr: &str, agent_id: Option<&str>) -> PyResult<Py<PyAny>> {
        let addr: std::net::SocketAddr = addr
            .parse()
            .map_err(|_| value_error("config", format!("{addr:?} is not an address such as 127.0.0.1:7000")))?;
        let expected = agent_id
            .map(|id| id.parse::<tacit::AgentId>())
            .transpose()
            .map_err(|e| value_error("config", format!("not an AgentId: {e}")))?;
        let agent = self.agent.clone();
        let bridge = self.bridge.clone();
        call(py, &self.bridge, async move {
            let peer = agent.connect(addr, expected).await.map_err(NativeError::from)?;
            Ok(PyPeer::new(peer, bridge))
        })
    }

    /// The counters, as a dict (`errors` by code name).
    fn metrics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let m = self.agent.metrics();
        let dict = PyDict::new(py);
        for (key, value) in [
            ("asks_sent", m.asks_sent),
            ("asks_received", m.asks_received),
            ("replies_sent", m.replies_sent),
            ("replies_received", m.replies_received),
            ("rejections_sent", m.rejections_sent),
            ("rejections_received", m.rejections_received),
            ("tells_sent", m.tells_sent),
            ("tells_received", m.tells_received),
            ("streams_opened", m.streams_opened),
            ("streams_accepted", m.streams_accepted),
            ("retries", m.retries),
            ("reconnects", m.reconnects),
            ("sessions_accepted", m.sessions_accepted),
            ("sessions_ended", m.sessions_ended),
            ("payload_bytes_sent", m.payload_bytes_sent),
            ("payload_bytes_received", m.payload_bytes_received),
            ("dropped_unhandled", m.dropped_unhandled),
        ] {
            dict.set_item(key, value)?;
        }
        let errors = PyDict::new(py);
        for (code, count) in &m.errors {
            errors.set_item(code.as_str_name().trim_start_matches("ERROR_CODE_"), count)?;
        }
        dict.set_item("errors", errors)?;
        Ok(dict)
    }

    /// Stops taking new work and waits up to `drain` seconds for handlers;
    /// an awaitable of how many were still running.
    fn shutdown(&self, py: Python<'_>, drain: f64) -> PyResult<Py<PyAny>> {
        let agent = self.agent.clone();
        let drain = Duration::try_from_secs_f64(drain).unwrap_or_default();
        call(py, &self.bridge, async move { Ok(agent.shutdown(drain).await) })
    }

    fn __repr__(&self) -> String {
        let addr = self.agent.local_addr().map(|a| a.to_string()).unwrap_or_else(|_| "?".into());
        format!("<tacit Agent {} at {addr}>", self.agent.id())
    }
}

/// The context of one incoming message.
#[pyclass(frozen, module = "tacit._native", name = "Context")]
pub(crate) struct PyContext {
    cx: Context,
    bridge: Arc<BridgeInner>,
}

#[pymethods]
impl PyContext {
    #[getter]
    fn peer_id(&self) -> String {
        self.cx.peer_id().to_string()
    }

    #[getter]
    fn intent_id(&self) -> String {
        self.cx.intent().to_string()
    }

    #[getter]
    fn intent_name(&self) -> Option<String> {
        self.cx.intent_name()
    }

    #[getter]
    fn act(&self) -> i32 {
        self.cx.act() as i32
    }

    #[getter]
    fn message_id(&self) -> u64 {
        self.cx.message_id()
    }

    #[getter]
    fn in_reply_to(&self) -> u64 {
        self.cx.in_reply_to()
    }

    #[getter]
    fn conversation_id(&self) -> String {
        self.cx.conversation_id().as_str().to_owned()
    }

    /// Seconds left before the asker's deadline, if it gave one.
    #[getter]
    fn remaining(&self) -> Option<f64> {
        self.cx.remaining().map(|left| left.as_secs_f64())
    }

    /// The sender's verified credentials: `(organisation key, roles, expires)` each,
    /// `expires` in seconds since the Unix epoch.
    #[getter]
    fn peer_credentials(&self) -> Vec<(String, Vec<String>, f64)> {
        crate::peer::credentials(&self.cx.peer_credentials())
    }

    /// The sender, to send it further intents on the same session.
    #[getter]
    fn peer(&self) -> PyPeer {
        PyPeer::new(self.cx.peer().clone(), self.bridge.clone())
    }

    fn __repr__(&self) -> String {
        format!(
            "<tacit Context {} from {} act={} conversation={}>",
            self.cx.intent_name().unwrap_or_else(|| self.cx.intent().to_string()),
            self.cx.peer_id(),
            self.cx.act().as_str_name().trim_start_matches("ACT_"),
            self.cx.conversation_id().as_str()
        )
    }
}
