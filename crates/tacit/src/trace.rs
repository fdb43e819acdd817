//! W3C trace context: what asks and tells carry from the current span.

use tacit_wire::TraceContext;

/// The trace context to send from the current `tracing` span, if any.
pub(crate) fn outgoing() -> Option<TraceContext> {
    None
}
