//! Bridges between [Tacit](https://docs.rs/tacit) agents and the protocols
//! today's LLM agents speak (MCP tools, A2A skills).
//!
//! - [`schema`]: the JSON Schema of an intent, following the proto3 JSON
//!   mapping that `prost-reflect` reads and writes (the mapping `tacit ask`
//!   already uses). `tacit mcp` and `tacit a2a serve` build their tool and
//!   skill definitions from it.
//! - [`json`]: JSON to and from messages through descriptors, with errors
//!   that name the field, and the reply and stream types an intent declares.
//! - `mcp` (feature `mcp`): an MCP server, on the official SDK `rmcp`, whose
//!   tools are the intents of Tacit peers (`tacit mcp`), on stdio or (feature
//!   `http`) streamable HTTP.
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
