//! Bridges between [Tacit](https://docs.rs/tacit) agents and the protocols
//! today's LLM agents speak (MCP tools, A2A skills).
//!
//! For now one piece, [`schema`]: the JSON Schema of an intent, following the
//! proto3 JSON mapping that `prost-reflect` reads and writes (the mapping
//! `tacit ask` already uses). `tacit mcp` and `tacit a2a serve` build their
//! tool and skill definitions from it.
//!
//! With the `tokens` feature, the `tokens` module counts what those definitions cost
//! in an LLM's context (tiktoken's `o200k_base`).

#[cfg(feature = "a2a")]
pub mod a2a;
pub mod schema;
#[cfg(feature = "tokens")]
pub mod tokens;
