//! Prints the canonical schema form and IntentId of a message type in some
//! `.proto` files (compiled with protox), as docs/PROTOCOL.md specifies.
//!
//! ```text
//! cargo run -p tacit-wire --example intent_id -- INCLUDE_DIR MESSAGE FILE.proto...
//! ```

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [include, message, files @ ..] = args.as_slice() else {
        return Err("usage: intent_id INCLUDE_DIR MESSAGE FILE.proto...".into());
    };
    let set = protox::compile(files, [include])?;
    let canonical = tacit_wire::canonical_schema(&set, message)?;
    print!("{canonical}");
    println!("=> {}", tacit_wire::IntentId::from_canonical(&canonical));
    Ok(())
}
