//! The echo server's agent, shared by `echo-server` and the in-process
//! server of `echo-client`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tacit::{Agent, AgentBuilder, AgentCard, Context};

use crate::echo::v1::{Echo, Echoed};

/// An agent builder that answers [`Echo`] with [`Echoed`] and counts the
/// echoes in `served`.
pub fn agent(served: Arc<AtomicU64>) -> AgentBuilder {
    Agent::builder()
        .card(AgentCard::new("echo-server").with_description("answers echo.v1.Echo with the same text"))
        .on_ask(move |_: Context, echo: Echo| {
            let echo_number = served.fetch_add(1, Ordering::Relaxed) + 1;
            async move { Ok(Echoed { text: echo.text, sent_at_micros: echo.sent_at_micros, echo_number }) }
        })
}

/// An agent builder for the client side: it sends [`Echo`].
pub fn client() -> AgentBuilder {
    Agent::builder().card(AgentCard::new("echo-client")).emits::<Echo>()
}
