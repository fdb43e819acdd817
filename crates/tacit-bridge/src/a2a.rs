//! `tacit a2a connect`: an [A2A](https://a2a-protocol.org) agent on the Tacit
//! network, as a Tacit agent with its own identity.
//!
//! [`A2aRemote::connect`] fetches the A2A agent card
//! (`/.well-known/agent-card.json`) and builds a client for one of the
//! interfaces it declares (JSON-RPC preferred, then HTTP+JSON) with the A2A
//! project's Rust SDK (`a2a-lf` types, `a2a-client-lf` client, both for A2A
//! v1.0). [`A2aRemote::install`] then gives a Tacit [`AgentBuilder`] a card
//! derived from the A2A card ([`tacit_card`]) and a handler for the standard
//! text-and-data intent [`TextTask`] → [`TextResult`]
//! (`proto/tacit/intents/v1/text.proto`, PROTOCOL.md `[std.text]`): A2A
//! skills have no protobuf schema, so every skill is reached through
//! `TextTask`, named by its `skill` field.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use tacit_bridge::a2a::{A2aRemote, ConnectOptions};
//!
//! let remote = A2aRemote::connect("http://127.0.0.1:8080", &ConnectOptions::default()).await?;
//! let agent = remote.install(tacit::Agent::builder()).bind("127.0.0.1:0".parse()?).await?;
//! println!("listening on {} as {}", agent.local_addr()?, agent.id());
//! # Ok(()) }
//! ```
//!
//! # From `TextTask` to A2A and back
//!
//! An ask of `TextTask` becomes one A2A `SendMessage` (blocking: the A2A
//! agent answers when the task is done or needs something):
//!
//! - a user message with a text part (`text`, when not empty) and a data
//!   part (`data_json` parsed, when set); the message's metadata carries
//!   `{"skill": skill}` when a skill is named (A2A has no field for it), and
//!   its `contextId` is `context_id` when set;
//! - the reply — a message, or a task whose artifacts (then status message)
//!   hold the result — becomes a `TextResult`: its text parts joined by
//!   newlines, its data part as JSON (several data parts as a JSON array),
//!   (integral numbers as integers: A2A's data parts are protobuf `Struct`s,
//!   whose numbers are doubles), and the task's id, state (A2A v1.0's name, e.g. `TASK_STATE_COMPLETED`)
//!   and context id. File parts (raw bytes, URLs) are not carried.
//!
//! A task that is still working or waits for input (`TASK_STATE_SUBMITTED`,
//! `TASK_STATE_WORKING`, `TASK_STATE_INPUT_REQUIRED`,
//! `TASK_STATE_AUTH_REQUIRED`) is a `TextResult` too: its state says so, and
//! the asker continues with the returned `context_id`.
//!
//! # A2A outcomes and errors as Tacit rejections
//!
//! | A2A | Tacit act | Tacit code |
//! |---|---|---|
//! | task `TASK_STATE_FAILED` | `FAILURE` | `HANDLER_FAILED` (reason: the status message's text) |
//! | task `TASK_STATE_REJECTED` | `REFUSE` | `DECLINED` |
//! | task `TASK_STATE_CANCELED` | `FAILURE` | `CANCELLED` |
//! | `InvalidParams` -32602, `InvalidRequest` -32600, `JSONParseError` -32700, `ContentTypeNotSupportedError` -32005 | `NOT_UNDERSTOOD` | `INVALID_PAYLOAD` |
//! | `UnsupportedOperationError` -32004, `MethodNotFound` -32601, `VersionNotSupportedError` -32009, `ExtensionSupportRequiredError` -32008 | `REFUSE` | `DECLINED` |
//! | `TaskNotFoundError` -32001, `TaskNotCancelableError` -32002, `InvalidAgentResponseError` -32006, `InternalError` -32603 (also the SDK's transport failures: unreachable, HTTP errors, bad JSON), any other code | `FAILURE` | `HANDLER_FAILED` |
//! | no answer within the ask's deadline (or [`ConnectOptions::call_timeout`]) | `FAILURE` | `DEADLINE_EXCEEDED` |
//! | an answer whose text and data exceed [`MAX_RESULT_BYTES`] | `FAILURE` | `FIELD_TOO_LARGE` |
//!
//! A `TextTask` the bridge cannot forward is refused before any HTTP call:
//! a `data_json` that is not JSON, or a `skill` the A2A card does not list,
//! get `NOT_UNDERSTOOD` with `INVALID_PAYLOAD` and a reason naming the field.
//!
//! # Bounds
//!
//! Every HTTP call has a deadline ([`ConnectOptions::card_timeout`] for the
//! card, the ask's remaining time capped by
//! [`ConnectOptions::call_timeout`] for `SendMessage`). The card is read by
//! this module, at most [`ConnectOptions::max_card_bytes`], rather than by
//! the SDK's `AgentCardResolver`, which reads a body of any size; it is then
//! parsed into the SDK's [`AgentCard`](::a2a::AgentCard) type. The SDK's
//! JSON-RPC and HTTP+JSON transports read a `SendMessage` response whole
//! (they take no size limit), so there the bound is the deadline alone; the
//! result passed on to Tacit is bounded by [`MAX_RESULT_BYTES`].
//!
//! The SDK's client sends `SendMessage` to the URL of the interface the card
//! declares, which A2A lets differ from the card's own host: the bridge
//! trusts the card it was pointed at, as any A2A client does. A Tacit ask
//! that is cancelled or runs out of time drops its HTTP request; the A2A
//! agent is not told to cancel its task.
//!
//! # Streaming
//!
//! When the A2A card says `capabilities.streaming`, `TextTask` is offered on
//! the stream lane too (its `.proto` names `TextResult` as the stream item):
//! opening a stream becomes `SendStreamingMessage`, and each A2A event — a
//! task, a status update (its message), an artifact update (its parts), a
//! message — is one `TextResult` item, until a final state or the end of the
//! A2A stream. A stream lane carries no rejection: a failed, rejected or
//! canceled task, or an error of the table above, ends the stream with an
//! item whose `state` says so (`TASK_STATE_FAILED` for the bridge's own
//! errors) and whose `text` is the reason.
//!
//! Not done yet: task cancellation (a Tacit `CANCEL` → A2A `CancelTask`),
//! and skills with schemas of their own as typed intents.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use ::a2a::event::StreamResponse;
use ::a2a::{
    AgentCard as A2aCard, Message, Part, PartContent, Role, SendMessageConfiguration, SendMessageRequest,
    SendMessageResponse, Task, TaskState, error_code,
};
use a2a_client::{
    A2AClient, A2AClientFactory, Transport, jsonrpc::JsonRpcTransportFactory, rest::RestTransportFactory,
};
use futures_util::StreamExt as _;
use serde_json::Value;
use tacit::intents::{TextResult, TextTask};
use tacit::{AgentBuilder, AgentCard, Context, ErrorCode, Rejection, StreamReceiver, StreamSender};

/// The A2A SDK's types (crate `a2a-lf`), as they appear in this module's API.
pub use ::a2a as types;

/// The well-known path of an A2A agent card, under the agent's base URL.
pub const AGENT_CARD_PATH: &str = "/.well-known/agent-card.json";

/// Largest `TextResult` (text and data together, in bytes) passed on to the
/// asker; it has to fit in one Tacit frame (1 MiB by default).
pub const MAX_RESULT_BYTES: usize = 960 * 1024;

/// How [`A2aRemote::connect`] reaches the A2A agent.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConnectOptions {
    /// Deadline of the agent card fetch (connect, request and body). Default 10 s.
    pub card_timeout: Duration,
    /// Largest agent card read. Default 256 KiB.
    pub max_card_bytes: usize,
    /// Longest a `SendMessage` may take when the ask has no shorter deadline. Default 60 s.
    pub call_timeout: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            card_timeout: Duration::from_secs(10),
            max_card_bytes: 256 * 1024,
            call_timeout: Duration::from_secs(60),
        }
    }
}

/// Why [`A2aRemote::connect`] failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConnectError {
    /// The URL is not an `http` or `https` URL.
    BadUrl(String),
    /// The card could not be fetched: nothing answered, or the connection failed.
    Unreachable {
        /// The card's URL.
        url: String,
        /// What failed.
        reason: String,
    },
    /// The card fetch did not finish within [`ConnectOptions::card_timeout`].
    Timeout {
        /// The card's URL.
        url: String,
    },
    /// The server answered the card fetch with an HTTP status other than success.
    Status {
        /// The card's URL.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The card is larger than [`ConnectOptions::max_card_bytes`].
    CardTooLarge {
        /// The card's URL.
        url: String,
        /// The limit.
        limit: usize,
    },
    /// The body is not an A2A agent card (not JSON, or not the card's shape).
    NotAgentCard {
        /// The card's URL.
        url: String,
        /// The parse error.
        reason: String,
    },
    /// The card declares no interface the SDK's client speaks (JSON-RPC or HTTP+JSON, A2A 1.x).
    NoInterface {
        /// The SDK's message.
        reason: String,
    },
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadUrl(url) => write!(f, "{url:?} is not an http:// or https:// URL"),
            Self::Unreachable { url, reason } => write!(f, "cannot fetch the A2A agent card {url}: {reason}"),
            Self::Timeout { url } => write!(f, "the A2A agent card {url} did not arrive in time"),
            Self::Status { url, status } => {
                write!(f, "fetching the A2A agent card {url} got HTTP {status}: is this an A2A agent?")
            }
            Self::CardTooLarge { url, limit } => write!(f, "the A2A agent card {url} is larger than {limit} bytes"),
            Self::NotAgentCard { url, reason } => write!(f, "{url} is not an A2A agent card: {reason}"),
            Self::NoInterface { reason } => {
                write!(f, "the A2A agent declares no interface this client speaks: {reason}")
            }
        }
    }
}

impl std::error::Error for ConnectError {}

/// A connected A2A agent: its card and an SDK client for it.
pub struct A2aRemote {
    card: A2aCard,
    card_url: String,
    client: A2AClient<Box<dyn Transport>>,
    call_timeout: Duration,
}

impl fmt::Debug for A2aRemote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("A2aRemote").field("card_url", &self.card_url).field("name", &self.card.name).finish()
    }
}

impl A2aRemote {
    /// Fetches the agent card of the A2A agent at `url` (its base URL, or the
    /// card's own URL ending in [`AGENT_CARD_PATH`]) and builds a client for
    /// the best interface it declares.
    pub async fn connect(url: &str, options: &ConnectOptions) -> Result<Self, ConnectError> {
        let card_url = card_url(url)?;
        install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(options.card_timeout)
            .build()
            .map_err(|e| ConnectError::Unreachable { url: card_url.clone(), reason: e.to_string() })?;
        let card = fetch_card(&http, &card_url, options.max_card_bytes).await?;
        let rpc_http = reqwest::Client::builder()
            .connect_timeout(options.card_timeout)
            .timeout(options.call_timeout)
            .build()
            .map_err(|e| ConnectError::Unreachable { url: card_url.clone(), reason: e.to_string() })?;
        let factory = A2AClientFactory::builder()
            .no_defaults()
            .register(Arc::new(JsonRpcTransportFactory::new(Some(rpc_http.clone()))))
            .register(Arc::new(RestTransportFactory::new(Some(rpc_http))))
            .build();
        let client =
            factory.create_from_card(&card).await.map_err(|e| ConnectError::NoInterface { reason: e.message })?;
        Ok(Self { card, card_url, client, call_timeout: options.call_timeout })
    }

    /// The A2A agent card, as fetched.
    pub fn a2a_card(&self) -> &A2aCard {
        &self.card
    }

    /// The URL the card was fetched from.
    pub fn card_url(&self) -> &str {
        &self.card_url
    }

    /// The Tacit card derived from the A2A card ([`tacit_card`]).
    pub fn tacit_card(&self) -> AgentCard {
        tacit_card(&self.card, &self.card_url)
    }

    /// Gives `builder` the derived card and handlers of [`TextTask`] that
    /// forward it to the A2A agent (see the module docs): asked, through
    /// `SendMessage`; on a stream lane, when the A2A card says it streams,
    /// through `SendStreamingMessage`.
    pub fn install(self, builder: AgentBuilder) -> AgentBuilder {
        let card = self.tacit_card();
        let streams = self.card.capabilities.streaming == Some(true);
        let remote = Arc::new(self);
        let asked = remote.clone();
        let builder = builder.card(card).on_ask(move |cx: Context, task: TextTask| {
            let remote = asked.clone();
            async move { remote.perform(task, remote.limit(&cx)).await }
        });
        if !streams {
            return builder;
        }
        builder.on_stream(
            move |cx: Context, task: TextTask, mut items: StreamSender<TextResult>, _: StreamReceiver<()>| {
                let remote = remote.clone();
                async move {
                    let limit = remote.limit(&cx);
                    if let Err(rejection) = remote.perform_streaming(task, limit, &mut items).await {
                        // A stream lane carries no rejection: its last item says why it ended.
                        let last =
                            TextResult { text: rejection.reason, state: FAILED.to_owned(), ..TextResult::default() };
                        let _ = items.send(&last).await;
                    }
                    let _ = items.finish().await;
                }
            },
        )
    }

    fn limit(&self, cx: &Context) -> Duration {
        cx.remaining().map_or(self.call_timeout, |left| left.min(self.call_timeout))
    }

    /// Performs one `TextTask` on the A2A agent with `SendStreamingMessage`,
    /// within `timeout`: each event (task, status update, artifact update,
    /// message) is sent on `items` as a `TextResult`, until the task reaches
    /// a final state or the A2A agent ends the stream. A failed, rejected or
    /// canceled task is an item with that state and the reason as text; the
    /// errors of the table in the module docs are returned.
    pub async fn perform_streaming(
        &self,
        task: TextTask,
        timeout: Duration,
        items: &mut StreamSender<TextResult>,
    ) -> Result<(), Rejection> {
        let request = self.request(task)?;
        let run = async {
            let mut events = self.client.send_streaming_message(&request).await.map_err(|e| rejection_of_error(&e))?;
            while let Some(event) = events.next().await {
                let (item, last) = item_of_event(event.map_err(|e| rejection_of_error(&e))?)?;
                items.send(&item).await.map_err(|e| Rejection::failure(ErrorCode::Cancelled, e.to_string()))?;
                if last {
                    break;
                }
            }
            Ok(())
        };
        match tokio::time::timeout(timeout, run).await {
            Ok(outcome) => outcome,
            Err(_) => Err(Rejection::failure(
                ErrorCode::DeadlineExceeded,
                format!("the A2A agent did not finish within {} ms", timeout.as_millis()),
            )),
        }
    }

    /// Performs one `TextTask` on the A2A agent: `SendMessage`, within `timeout`.
    pub async fn perform(&self, task: TextTask, timeout: Duration) -> Result<TextResult, Rejection> {
        let request = self.request(task)?;
        let response = match tokio::time::timeout(timeout, self.client.send_message(&request)).await {
            Err(_) => {
                return Err(Rejection::failure(
                    ErrorCode::DeadlineExceeded,
                    format!("the A2A agent did not answer within {} ms", timeout.as_millis()),
                ));
            }
            Ok(Err(error)) => return Err(rejection_of_error(&error)),
            Ok(Ok(response)) => response,
        };
        result_of_response(response)
    }

    fn request(&self, task: TextTask) -> Result<SendMessageRequest, Rejection> {
        if !task.skill.is_empty() && !self.card.skills.iter().any(|skill| skill.id == task.skill) {
            let known: Vec<&str> = self.card.skills.iter().map(|skill| skill.id.as_str()).collect();
            return Err(Rejection::not_understood(
                ErrorCode::InvalidPayload,
                truncate(
                    &format!("skill: {:?} is not a skill of this agent (skills: {})", task.skill, known.join(", ")),
                    512,
                ),
            ));
        }
        let mut parts = Vec::with_capacity(2);
        if !task.text.is_empty() {
            parts.push(Part::text(task.text));
        }
        if !task.data_json.is_empty() {
            let data: Value = serde_json::from_str(&task.data_json).map_err(|e| {
                Rejection::not_understood(ErrorCode::InvalidPayload, format!("data_json: not JSON: {e}"))
            })?;
            parts.push(Part::data(data));
        }
        if parts.is_empty() {
            return Err(Rejection::not_understood(ErrorCode::InvalidPayload, "text and data_json are both empty"));
        }
        let mut message = Message::new(Role::User, parts);
        if !task.context_id.is_empty() {
            message.context_id = Some(task.context_id);
        }
        if !task.skill.is_empty() {
            message.metadata = Some([("skill".to_owned(), Value::String(task.skill))].into_iter().collect());
        }
        Ok(SendMessageRequest {
            message,
            configuration: Some(SendMessageConfiguration {
                accepted_output_modes: None,
                task_push_notification_config: None,
                history_length: Some(0),
                return_immediately: Some(false),
            }),
            metadata: None,
            tenant: None,
        })
    }
}

/// The Tacit card of an A2A agent, within the limits of
/// [`AgentCard`] (longer values are cut at a character
/// boundary; skills past the limits are left out of roles and metadata):
///
/// - name, description: the A2A card's;
/// - software version: `a2a:` and the A2A card's version;
/// - roles: `a2a`, then each skill's id (the values of `TextTask.skill`);
/// - metadata: `a2a.card` (the card's URL), `a2a.protocol` (the first
///   interface's binding and version), and `a2a.skill.ID` = the skill's name
///   and description for each skill.
pub fn tacit_card(card: &A2aCard, card_url: &str) -> AgentCard {
    use tacit_handshake::card_limits as limits;
    let mut out = AgentCard::new(truncate(&card.name, limits::NAME))
        .with_description(truncate(&card.description, limits::DESCRIPTION))
        .with_software_version(truncate(&format!("a2a:{}", card.version), limits::SOFTWARE_VERSION))
        .with_role("a2a")
        .with_metadata("a2a.card", truncate(card_url, limits::METADATA_VALUE));
    if let Some(interface) = card.supported_interfaces.first() {
        let protocol = format!("{} {}", interface.protocol_binding, interface.protocol_version);
        out = out.with_metadata("a2a.protocol", truncate(&protocol, limits::METADATA_VALUE));
    }
    for skill in &card.skills {
        if skill.id.is_empty() || skill.id.len() > limits::ROLE {
            continue;
        }
        if out.roles.len() < limits::ROLES {
            out = out.with_role(skill.id.clone());
        }
        let key = format!("a2a.skill.{}", skill.id);
        if out.metadata.len() < limits::METADATA_ENTRIES && key.len() <= limits::METADATA_KEY {
            let about = if skill.description.is_empty() {
                skill.name.clone()
            } else {
                format!("{}: {}", skill.name, skill.description)
            };
            out = out.with_metadata(key, truncate(&about, limits::METADATA_VALUE));
        }
    }
    out
}

/// The Tacit rejection of an A2A error (the table in the module docs).
pub fn rejection_of_error(error: &::a2a::A2AError) -> Rejection {
    let reason = truncate(&format!("A2A error {}: {}", error.code, error.message), 512);
    match error.code {
        error_code::INVALID_PARAMS
        | error_code::INVALID_REQUEST
        | error_code::PARSE_ERROR
        | error_code::CONTENT_TYPE_NOT_SUPPORTED => Rejection::not_understood(ErrorCode::InvalidPayload, reason),
        error_code::UNSUPPORTED_OPERATION
        | error_code::METHOD_NOT_FOUND
        | error_code::VERSION_NOT_SUPPORTED
        | error_code::EXTENSION_SUPPORT_REQUIRED => Rejection::refuse(ErrorCode::Declined, reason),
        _ => Rejection::failure(ErrorCode::HandlerFailed, reason),
    }
}

/// The `TextResult` (or rejection) of an A2A `SendMessage` response.
pub fn result_of_response(response: SendMessageResponse) -> Result<TextResult, Rejection> {
    let result = match response {
        SendMessageResponse::Message(message) => {
            let (text, data_json) = collect(message.parts.iter())?;
            TextResult {
                text,
                data_json,
                task_id: String::new(),
                state: String::new(),
                context_id: message.context_id.unwrap_or_default(),
            }
        }
        SendMessageResponse::Task(task) => return result_of_task(task),
    };
    Ok(result)
}

fn result_of_task(task: Task) -> Result<TextResult, Rejection> {
    let status_text = || {
        task.status
            .message
            .as_ref()
            .map(|message| message.parts.iter().filter_map(Part::as_text).collect::<Vec<_>>().join("\n"))
            .filter(|text| !text.is_empty())
    };
    let why = |default: &str| truncate(&status_text().unwrap_or_else(|| default.to_owned()), 512);
    match task.status.state {
        TaskState::Failed => return Err(Rejection::failed(why("the A2A task failed"))),
        TaskState::Rejected => return Err(Rejection::decline(why("the A2A agent rejected the task"))),
        TaskState::Canceled => {
            return Err(Rejection::failure(ErrorCode::Cancelled, why("the A2A task was canceled")));
        }
        _ => {}
    }
    let artifact_parts = task.artifacts.iter().flatten().flat_map(|artifact| artifact.parts.iter());
    let (mut text, mut data_json) = collect(artifact_parts)?;
    if let Some(message) = &task.status.message {
        let (status_text, status_data) = collect(message.parts.iter())?;
        if text.is_empty() {
            text = status_text;
        }
        if data_json.is_empty() {
            data_json = status_data;
        }
    }
    let state = state_name(&task.status.state);
    Ok(TextResult { text, data_json, task_id: task.id, state, context_id: task.context_id })
}

/// A2A v1.0's name of a task state (`TASK_STATE_COMPLETED`).
fn state_name(state: &TaskState) -> String {
    match serde_json::to_value(state) {
        Ok(Value::String(state)) => state,
        _ => String::new(),
    }
}

const FAILED: &str = "TASK_STATE_FAILED";

/// The stream item of an A2A stream event, and whether it is the last.
fn item_of_event(event: StreamResponse) -> Result<(TextResult, bool), Rejection> {
    let status_item = |task_id: String, context_id: String, status: &::a2a::TaskStatus| {
        let (text, data_json) = match &status.message {
            Some(message) => collect(message.parts.iter())?,
            None => (String::new(), String::new()),
        };
        let result = TextResult { text, data_json, task_id, state: state_name(&status.state), context_id };
        Ok::<_, Rejection>((result, status.state.is_terminal()))
    };
    match event {
        StreamResponse::Message(message) => {
            let (text, data_json) = collect(message.parts.iter())?;
            let context_id = message.context_id.unwrap_or_default();
            Ok((TextResult { text, data_json, context_id, ..TextResult::default() }, true))
        }
        StreamResponse::StatusUpdate(update) => status_item(update.task_id, update.context_id, &update.status),
        StreamResponse::ArtifactUpdate(update) => {
            let (text, data_json) = collect(update.artifact.parts.iter())?;
            let result = TextResult {
                text,
                data_json,
                task_id: update.task_id,
                state: String::new(),
                context_id: update.context_id,
            };
            Ok((result, false))
        }
        StreamResponse::Task(task) => {
            let last = task.status.state.is_terminal();
            match result_of_task(task.clone()) {
                Ok(result) => Ok((result, last)),
                Err(rejection) => {
                    let state = state_name(&task.status.state);
                    let result = TextResult {
                        text: rejection.reason,
                        data_json: String::new(),
                        task_id: task.id,
                        state,
                        context_id: task.context_id,
                    };
                    Ok((result, true))
                }
            }
        }
    }
}

/// Text parts joined by newlines; the data part as JSON, several as an array.
fn collect<'a>(parts: impl Iterator<Item = &'a Part>) -> Result<(String, String), Rejection> {
    let mut texts = Vec::new();
    let mut data = Vec::new();
    let mut size = 0usize;
    for part in parts {
        match &part.content {
            PartContent::Text(text) => {
                size += text.len() + 1;
                texts.push(text.as_str());
            }
            PartContent::Data(value) => data.push(integral(value.clone())),
            PartContent::Raw(_) | PartContent::Url(_) => {}
        }
        if size > MAX_RESULT_BYTES {
            return Err(too_large());
        }
    }
    let data_json = match data.as_slice() {
        [] => String::new(),
        [one] => serde_json::to_string(one).unwrap_or_default(),
        many => serde_json::to_string(many).unwrap_or_default(),
    };
    if size + data_json.len() > MAX_RESULT_BYTES {
        return Err(too_large());
    }
    Ok((texts.join("\n"), data_json))
}

/// A2A data parts travel as `google.protobuf.Struct`, whose numbers are all
/// doubles: the SDK hands back `42` as `42.0`. Integral doubles within ±2^53
/// (exact in a double) become integers again, so data round-trips as sent.
fn integral(value: Value) -> Value {
    const EXACT: f64 = 9_007_199_254_740_992.0;
    match value {
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() <= EXACT => Value::from(f as i64),
            _ => Value::Number(n),
        },
        Value::Array(items) => Value::Array(items.into_iter().map(integral).collect()),
        Value::Object(map) => Value::Object(map.into_iter().map(|(k, v)| (k, integral(v))).collect()),
        other => other,
    }
}

fn too_large() -> Rejection {
    Rejection::failure(
        ErrorCode::FieldTooLarge,
        format!("the A2A agent's answer is larger than {MAX_RESULT_BYTES} bytes"),
    )
}

fn card_url(url: &str) -> Result<String, ConnectError> {
    let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
    if !scheme_ok || url.len() > 2048 {
        return Err(ConnectError::BadUrl(truncate(url, 256)));
    }
    if url.trim_end_matches('/').ends_with(AGENT_CARD_PATH) {
        Ok(url.to_owned())
    } else {
        Ok(format!("{}{AGENT_CARD_PATH}", url.trim_end_matches('/')))
    }
}

async fn fetch_card(http: &reqwest::Client, url: &str, limit: usize) -> Result<A2aCard, ConnectError> {
    let failed = |e: reqwest::Error| {
        if e.is_timeout() {
            ConnectError::Timeout { url: url.to_owned() }
        } else if e.is_builder() {
            ConnectError::BadUrl(truncate(url, 256))
        } else {
            ConnectError::Unreachable { url: url.to_owned(), reason: error_chain(&e) }
        }
    };
    let mut response = http.get(url).header("accept", "application/json").send().await.map_err(failed)?;
    let status = response.status();
    if !status.is_success() {
        return Err(ConnectError::Status { url: url.to_owned(), status: status.as_u16() });
    }
    if response.content_length().is_some_and(|len| len > limit as u64) {
        return Err(ConnectError::CardTooLarge { url: url.to_owned(), limit });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(failed)? {
        if body.len() + chunk.len() > limit {
            return Err(ConnectError::CardTooLarge { url: url.to_owned(), limit });
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|e| ConnectError::NotAgentCard { url: url.to_owned(), reason: e.to_string() })
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The SDK's client is built with rustls and no crypto provider of its own:
/// use ring, the provider the Tacit agent's QUIC already uses.
fn install_crypto_provider() {
    // Err: a provider is installed already, which serves as well.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// `text` cut to at most `max` bytes at a character boundary.
fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_urls() {
        assert_eq!(card_url("http://h:1").unwrap(), "http://h:1/.well-known/agent-card.json");
        assert_eq!(card_url("http://h:1/a/").unwrap(), "http://h:1/a/.well-known/agent-card.json");
        assert_eq!(card_url("https://h/.well-known/agent-card.json").unwrap(), "https://h/.well-known/agent-card.json");
        assert!(matches!(card_url("ftp://h"), Err(ConnectError::BadUrl(_))));
        assert!(matches!(card_url("h:1"), Err(ConnectError::BadUrl(_))));
    }

    #[test]
    fn truncates_at_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("héllo", 3), "hé");
        assert_eq!(truncate("abc", 10), "abc");
    }

    #[test]
    fn error_codes_map_to_the_table() {
        let code = |c| rejection_of_error(&::a2a::A2AError::new(c, "x")).code;
        assert_eq!(code(error_code::INVALID_PARAMS), ErrorCode::InvalidPayload);
        assert_eq!(code(error_code::UNSUPPORTED_OPERATION), ErrorCode::Declined);
        assert_eq!(code(error_code::INTERNAL_ERROR), ErrorCode::HandlerFailed);
        assert_eq!(code(-1), ErrorCode::HandlerFailed);
    }

    #[test]
    fn integral_doubles_become_integers() {
        let value = serde_json::json!({"a": 42.0, "b": [1.5, -3.0], "c": 1e300, "d": "7"});
        assert_eq!(integral(value).to_string(), r#"{"a":42,"b":[1.5,-3],"c":1e+300,"d":"7"}"#);
    }

    #[test]
    fn oversized_answers_are_refused() {
        let big = "x".repeat(MAX_RESULT_BYTES + 1);
        let message = Message::new(Role::Agent, vec![Part::text(big)]);
        let error = result_of_response(SendMessageResponse::Message(message)).unwrap_err();
        assert_eq!(error.code, ErrorCode::FieldTooLarge);
    }

    #[tokio::test]
    async fn a_card_over_every_limit_is_accepted_by_an_agent() {
        let tacit = tacit_card(&oversized_card(), "http://127.0.0.1:1");
        let agent = tacit::Agent::builder().card(tacit).bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        agent.shutdown(Duration::from_millis(10)).await;
    }

    fn oversized_card() -> A2aCard {
        let mut card: A2aCard = serde_json::from_value(serde_json::json!({
            "name": "n".repeat(500),
            "description": "d".repeat(5000),
            "version": "v".repeat(100),
            "supportedInterfaces": [{ "url": "u".repeat(300), "protocolBinding": "b".repeat(300), "protocolVersion": "1.0" }],
            "capabilities": {},
            "skills": [],
        }))
        .unwrap();
        for i in 0..100 {
            card.skills.push(
                serde_json::from_value(serde_json::json!({
                    "id": format!("skill-{i}-{}", "i".repeat(40)), "name": "s", "description": "é".repeat(400), "tags": []
                }))
                .unwrap(),
            );
        }
        card
    }

    #[test]
    fn a_card_over_every_limit_still_fits() {
        let mut card: A2aCard = serde_json::from_value(serde_json::json!({
            "name": "n".repeat(500),
            "description": "d".repeat(5000),
            "version": "v".repeat(100),
            "supportedInterfaces": [],
            "capabilities": {},
            "skills": [],
        }))
        .unwrap();
        for i in 0..100 {
            card.skills.push(
                serde_json::from_value(serde_json::json!({
                    "id": format!("skill-{i}"), "name": "s", "description": "é".repeat(400), "tags": []
                }))
                .unwrap(),
            );
        }
        let tacit = tacit_card(&card, "http://127.0.0.1:1");
        assert_eq!(tacit.name.len(), tacit_handshake::card_limits::NAME);
        assert_eq!(tacit.roles.len(), tacit_handshake::card_limits::ROLES);
        assert_eq!(tacit.metadata.len(), tacit_handshake::card_limits::METADATA_ENTRIES);
        assert!(tacit.metadata.values().all(|v| v.len() <= tacit_handshake::card_limits::METADATA_VALUE));
    }
}
