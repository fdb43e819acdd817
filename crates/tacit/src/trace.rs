//! Trace context, end to end: what an ask or tell carries from the current
//! `tracing` span, and the span a handler runs in.
//!
//! Every envelope can carry a W3C trace context ([`TraceContext`]: trace id,
//! span id, flags). Two functions connect it to [`tracing`]:
//!
//! - [`current`] gives the trace context to send from [`Span::current()`].
//!   [`Peer`](crate::Peer) calls it for every ask and tell that does not set
//!   one explicitly ([`AskOptions::trace`](crate::AskOptions::trace),
//!   [`TellOptions::trace`](crate::TellOptions::trace)).
//! - [`handler_span`] gives the span a handler runs in (`handle`, at `INFO`),
//!   with the intent, act, sender, conversation, message id and, when the
//!   message carries one, the caller's trace id as fields.
//!
//! Without the `opentelemetry` feature a `tracing` span has no trace id, so
//! [`current`] is always `None` (nothing is sent unless set explicitly),
//! and the handler span records the incoming trace id only as a field, so
//! logs and `tacit listen` show it; [`Context::trace`](crate::Context::trace)
//! gives it to a handler that wants to forward it by hand.
//!
//! With the `opentelemetry` feature (and a `tracing-opentelemetry` layer in
//! the subscriber, e.g. `layer`) asks and tells carry the OpenTelemetry
//! span context of the current span, and a handler span is the child of the
//! remote caller's span: both agents' spans share one trace id. The `otlp`
//! feature adds `otlp_provider`, which exports spans over OTLP (gRPC).
//!
//! Costs: with no subscriber, or with `INFO` disabled for `tacit`, neither
//! function allocates or calls into a subscriber beyond the level check.

use std::collections::HashMap;
use std::fmt;

use tacit_handshake::AgentId;
use tacit_wire::{Act, ConversationId, Envelope, IntentId, TraceContext};
use tracing::Span;

#[cfg(feature = "opentelemetry")]
pub use opentelemetry_sdk::trace::SdkTracerProvider;

/// The trace context to send from the current `tracing` span: its
/// OpenTelemetry span context when the `opentelemetry` feature is on and the
/// span has a valid one; `None` otherwise.
pub fn current() -> Option<TraceContext> {
    #[cfg(feature = "opentelemetry")]
    {
        let span = Span::current();
        // Fast path: no subscriber, or no span entered.
        if span.is_disabled() {
            return None;
        }
        otel::span_trace_context(&span)
    }
    #[cfg(not(feature = "opentelemetry"))]
    {
        None
    }
}

/// The span a handler of one incoming message runs in (named `handle`, at
/// `INFO`; its OpenTelemetry name is the intent's), a child of the current
/// span.
///
/// With `trace` (the message's trace context) the span records its trace id
/// as the field `trace_id` (32 hex digits) and, with the `opentelemetry`
/// feature, its OpenTelemetry parent is the caller's span: it joins the
/// caller's trace. A disabled span ([`Span::none`]) is returned at once when
/// `INFO` is off.
pub fn handler_span(
    trace: Option<TraceContext>,
    intent: &str,
    act: Act,
    sender: AgentId,
    conversation: ConversationId,
    message_id: u64,
) -> Span {
    let span = tracing::info_span!(
        "handle",
        otel.name = intent,
        intent,
        act = ?act,
        peer = %sender,
        conversation = conversation.as_str(),
        message_id,
        trace_id = tracing::field::Empty,
    );
    if span.is_disabled() {
        return span;
    }
    if let Some(trace) = trace {
        span.record("trace_id", tracing::field::display(Hex(&trace.trace_id)));
        #[cfg(feature = "opentelemetry")]
        otel::set_remote_parent(&span, trace);
    }
    span
}

/// [`handler_span`] for an envelope the agent dispatches; no lookup at all
/// when `INFO` is off.
pub(crate) fn incoming_span(
    names: &HashMap<IntentId, std::sync::Arc<str>>,
    intent: IntentId,
    envelope: &Envelope,
    sender: AgentId,
) -> Span {
    if !tracing::level_enabled!(tracing::Level::INFO) {
        return Span::none();
    }
    let name = names.get(&intent).map_or("?", |name| &**name);
    handler_span(envelope.trace, name, envelope.act, sender, envelope.conversation_id, envelope.message_id)
}

/// Bytes as lower-case hex, written without allocating.
struct Hex<'a>(&'a [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

/// A `tracing-opentelemetry` layer that records `tracing` spans as
/// OpenTelemetry spans of `provider` (instrumentation scope `tacit`); add it
/// to the subscriber (`tracing_subscriber::registry().with(layer(&provider))`).
#[cfg(feature = "opentelemetry")]
pub fn layer<S>(provider: &SdkTracerProvider) -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    use opentelemetry::trace::TracerProvider as _;
    tracing_opentelemetry::layer().with_tracer(provider.tracer("tacit"))
}

/// The error of [`otlp_provider`].
#[cfg(feature = "otlp")]
pub use opentelemetry_otlp::ExporterBuildError as OtlpError;

/// A tracer provider that exports spans over OTLP/gRPC in batches, to
/// `endpoint` (default: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`,
/// `OTEL_EXPORTER_OTLP_ENDPOINT`, else `http://localhost:4317`), with the
/// resource attribute `service.name` = `service_name`.
///
/// Call it inside the tokio runtime (the gRPC channel lives on it). Give it
/// to [`layer`]; call [`SdkTracerProvider::shutdown`] before exiting, so
/// the last batch is sent.
///
/// ```no_run
/// use tracing_subscriber::layer::SubscriberExt as _;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let provider = tacit::trace::otlp_provider("forecast-agent", None)?;
/// let subscriber = tracing_subscriber::registry().with(tacit::trace::layer(&provider));
/// tracing::subscriber::set_global_default(subscriber)?;
/// // ... run agents: asks, tells and handlers now join traces ...
/// provider.shutdown()?;
/// # Ok(())
/// # }
/// ```
#[cfg(feature = "otlp")]
pub fn otlp_provider(service_name: &str, endpoint: Option<&str>) -> Result<SdkTracerProvider, OtlpError> {
    use opentelemetry_otlp::WithExportConfig as _;
    let mut exporter = opentelemetry_otlp::SpanExporter::builder().with_tonic();
    if let Some(endpoint) = endpoint {
        exporter = exporter.with_endpoint(endpoint);
    }
    let resource = opentelemetry_sdk::Resource::builder().with_service_name(service_name.to_owned()).build();
    Ok(SdkTracerProvider::builder().with_batch_exporter(exporter.build()?).with_resource(resource).build())
}

/// The bridge to OpenTelemetry span contexts.
#[cfg(feature = "opentelemetry")]
mod otel {
    use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState};
    use tacit_wire::TraceContext;
    use tracing::Span;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;

    /// The span context of `span`, if it has a valid one.
    pub(super) fn span_trace_context(span: &Span) -> Option<TraceContext> {
        let cx = span.context();
        let otel = cx.span();
        let span_context = otel.span_context();
        span_context.is_valid().then(|| TraceContext {
            trace_id: span_context.trace_id().to_bytes(),
            span_id: span_context.span_id().to_bytes(),
            flags: span_context.trace_flags().to_u8(),
        })
    }

    /// Makes the remote span `trace` the OpenTelemetry parent of `span`
    /// (which must not have been entered yet).
    pub(super) fn set_remote_parent(span: &Span, trace: TraceContext) {
        let remote = SpanContext::new(
            TraceId::from_bytes(trace.trace_id),
            SpanId::from_bytes(trace.span_id),
            TraceFlags::new(trace.flags),
            true,
            TraceState::NONE,
        );
        if !remote.is_valid() {
            return;
        }
        // Fails only without an OpenTelemetry layer: the span then stays local.
        let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_lower_case_and_padded() {
        assert_eq!(Hex(&[0x00, 0x0a, 0xff]).to_string(), "000aff");
    }

    #[test]
    fn without_a_subscriber_nothing_is_sent_and_the_span_is_disabled() {
        assert_eq!(current(), None);
        let trace = TraceContext { trace_id: [1; 16], span_id: [2; 8], flags: 1 };
        let sender = tacit_handshake::Identity::generate().map(|identity| identity.agent_id());
        let Ok(sender) = sender else { return };
        assert!(handler_span(Some(trace), "x", Act::Request, sender, ConversationId::none(), 1).is_disabled());
    }
}
