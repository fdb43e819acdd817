//! Generates this crate's intents from proto/ with tacit-build, as a user's
//! crate would.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tacit_build::configure()
        .include_file("intents.rs")
        .compile(&["proto/acme/market/v1/market.proto", "proto/acme/billing/v1/billing.proto"], &["proto"])?;
    Ok(())
}
