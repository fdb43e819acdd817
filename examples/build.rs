//! Generates the examples' intents from proto/ with tacit-build: prost types
//! that implement `tacit::Intent` (and `tacit::Request` for the messages that
//! name a reply).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tacit_build::configure().compile(&["proto/market/v1/market.proto", "proto/echo/v1/echo.proto"], &["proto"])?;
    Ok(())
}
