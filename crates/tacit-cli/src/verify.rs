//! `tacit verify`: checks a receipt file offline (docs/PROTOCOL.md, "Signed
//! receipts").

use std::path::Path;

use tacit_handshake::{MAX_RECEIPT_LEN, Receipt};

use crate::error::{CliError, act_name, code_name};
use crate::time::rfc3339_micros;

/// Reads the receipt at `file`, prints its essentials, then `OK` or why it
/// fails; a receipt that does not decode or verify is a failure (exit 1).
pub(crate) fn run(file: &Path) -> Result<(), CliError> {
    let bytes = std::fs::read(file).map_err(|e| CliError::failure(format!("cannot read {}: {e}", file.display())))?;
    if bytes.len() > MAX_RECEIPT_LEN {
        return Err(CliError::failure(format!(
            "{} is {} bytes, more than a receipt's {MAX_RECEIPT_LEN}",
            file.display(),
            bytes.len()
        )));
    }
    let receipt =
        Receipt::decode(&bytes).map_err(|e| CliError::failure(format!("{} is not a receipt: {e}", file.display())))?;
    println!("sender        {}", receipt.sender);
    println!("receiver      {}", receipt.receiver);
    println!("intent_id     {}", receipt.intent);
    println!("act           {}", act_name(receipt.act));
    println!("message_id    {}", receipt.message_id);
    println!("in_reply_to   {}", receipt.in_reply_to);
    println!("conversation  {}", receipt.conversation_id);
    println!("signed_at     {} ({} µs)", rfc3339_micros(receipt.signed_at_micros), receipt.signed_at_micros);
    match receipt.verify() {
        Ok(()) => {
            println!("OK");
            Ok(())
        }
        Err(e) => {
            println!("INVALID");
            Err(CliError::failure(format!("{}: {} ({e})", file.display(), code_name(e.code()))))
        }
    }
}
