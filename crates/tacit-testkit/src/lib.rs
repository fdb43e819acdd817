//! Tacit's shared test machinery, written once so that test binaries stop
//! carrying diverging copies of it. A dev-dependency of the workspace's
//! crates only (`publish = false`): no normal build contains it.
//!
//! - [`LOCALHOST`], [`within`] / [`within_for`]: the loopback address every
//!   test binds, and bounded waits (a hung step fails the test instead of
//!   hanging it).
//! - [`corpus`]: replays the committed fuzz corpus (`fuzz/corpus/<target>/`,
//!   `fuzz/regressions/<target>/`) through a fuzz target's entry point, so a
//!   stable `cargo test` runs it.
//! - [`netns`]: a network namespace of the test's own (multicast on its
//!   loopback, deleted on drop) and the re-execution of an inner test in it,
//!   for mDNS tests.
//! - [`process`]: a guard that kills and reaps a child process when dropped,
//!   a failed test included.
//! - `pair` (feature `handshake`): a dialer and an acceptor handshake joined
//!   in memory, with simulated time and latency.
//! - `fault` (feature `quic`): a UDP socket for quinn that loses, duplicates,
//!   reorders, delays, corrupts and truncates datagrams, its seeded RNG and
//!   the per-seed test runner.
//! - `dns` (feature `dns`): an authoritative DNS server in process
//!   (hickory-server) on loopback, UDP and TCP, one zone in memory.
//! - `echo` (feature `quic`): one echo endpoint, which keeps accepting after a
//!   failed handshake and keeps serving after a tell.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use tacit_testkit::{LOCALHOST, within, within_for};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let socket = std::net::UdpSocket::bind(LOCALHOST).unwrap();
//! assert!(socket.local_addr().unwrap().ip().is_loopback());
//! assert_eq!(within(async { 1 + 1 }).await, 2);
//! within_for(Duration::from_secs(1), "a quick step", async {}).await;
//! # }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

pub mod corpus;
#[cfg(feature = "dns")]
pub mod dns;
#[cfg(feature = "quic")]
pub mod echo;
#[cfg(feature = "quic")]
pub mod fault;
pub mod netns;
#[cfg(feature = "handshake")]
pub mod pair;
pub mod process;

/// `127.0.0.1:0`: loopback, any free port.
pub const LOCALHOST: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);

/// How long one test step may take in [`within`].
pub const STEP: Duration = Duration::from_secs(20);

/// Awaits `future`, panicking with "test step timed out" if it takes over
/// [`STEP`]. Must be called within a Tokio runtime.
pub async fn within<T>(future: impl Future<Output = T>) -> T {
    within_for(STEP, "test step", future).await
}

/// Awaits `future`, panicking with "`what`: no outcome within `limit`" if it
/// takes longer. Must be called within a Tokio runtime.
// Test support: a timeout fails the test.
#[allow(clippy::panic)]
pub async fn within_for<T>(limit: Duration, what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, future).await {
        Ok(value) => value,
        Err(_) => panic!("{what} timed out: no outcome within {limit:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    #[should_panic(expected = "slow step timed out: no outcome within 10ms")]
    async fn within_for_panics_naming_the_step() {
        within_for(Duration::from_millis(10), "slow step", std::future::pending::<()>()).await;
    }

    #[tokio::test]
    async fn within_returns_the_outcome() {
        assert_eq!(within(async { 7 }).await, 7);
    }
}
