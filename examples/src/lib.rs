//! Example Tacit agents, shared by the binaries in `src/bin/`:
//!
//! - `echo-server` / `echo-client`: the smallest useful pair of agents, one
//!   typed intent ([`echo::v1::Echo`]) asked and answered over QUIC.
//! - `marketplace`: one buyer and several seller agents trading through FIPA
//!   contract-net rounds ([`tacit::ContractNet`]) with the typed contents of
//!   [`market::v1`]; in one process (the default) or as separate processes
//!   (`marketplace seller`, `marketplace buyer`); [`lan`] finds the sellers
//!   on the local network by mDNS.
//!
//! The intents are generated from `proto/` by `tacit-build` in `build.rs`.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod buyer;
pub mod echo_service;
pub mod lan;
pub mod net;
pub mod registry;
pub mod report;
pub mod seller;
pub mod stats;
pub mod trust;

/// The marketplace's intents (`proto/market/v1/market.proto`).
pub mod market {
    /// Package `market.v1`.
    pub mod v1 {
        tacit::include_intents!("market.v1");
    }
}

/// The echo pair's intents (`proto/echo/v1/echo.proto`).
pub mod echo {
    /// Package `echo.v1`.
    pub mod v1 {
        tacit::include_intents!("echo.v1");
    }
}

/// A small deterministic pseudo-random generator (SplitMix64): the demo's
/// choices depend on `--seed` only, never on timing.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `low..=high`.
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.next_u64() % (high - low + 1)
    }

    /// A number in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}
