//! Bridges between [Tacit](https://docs.rs/tacit) agents and the protocols
//! today's LLM agents speak (MCP tools, A2A skills).
//!
//! - [`schema`]: the JSON Schema of an intent, following the proto3 JSON
//!   mapping that `prost-reflect` reads and writes (the mapping `tacit ask`
//!   already uses). `tacit mcp` and `tacit a2a serve` build their tool and
//!   skill definitions from it.
//! - [`json`]: JSON to and from messages through descriptors, with errors
//!   that name the field, and the reply and stream types an intent declares.
//! - `peers` (feature `peers`, on with `mcp` and `a2a-server`): the Tacit
//!   side every bridge shares — the peers it follows, the intents they take
//!   under unique handles, calls with errors as act and code.
//! - `http` (feature `front`, on with `http` and `a2a-server`): the bounded
//!   HTTP front of the bridges (loopback or a bearer token, body limits,
//!   per-client rates and connections).
//! - `mcp` (feature `mcp`): an MCP server, on the official SDK `rmcp`, whose
//!   tools are the intents of Tacit peers (`tacit mcp`), on stdio or (feature
//!   `http`) streamable HTTP.
//! - `a2a` (feature `a2a`): an A2A agent on the Tacit network (`tacit a2a
//!   connect`), with the A2A SDK's client.
//! - `a2a_server` (feature `a2a-server`): an A2A server in front of Tacit
//!   peers (`tacit a2a serve`), with the A2A SDK's server.
//!
//! With the `tokens` feature, the `tokens` module counts what those definitions cost
//! in an LLM's context (tiktoken's `o200k_base`).

#[cfg(feature = "a2a")]
pub mod a2a;
#[cfg(feature = "a2a-server")]
pub mod a2a_server;
#[cfg(feature = "front")]
pub mod http;
pub mod json;
#[cfg(feature = "mcp")]
pub mod mcp;
#[cfg(feature = "peers")]
pub mod peers;
pub mod schema;
#[cfg(feature = "tokens")]
pub mod tokens;
