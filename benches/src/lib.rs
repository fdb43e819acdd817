//! Shared fixtures for Tacit's benchmarks.
pub mod reference {}
