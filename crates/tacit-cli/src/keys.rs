//! `tacit keygen` and `tacit id`.

use std::io::ErrorKind;
use std::path::Path;

use tacit::Identity;
use tacit_handshake::{IdentityError, KeyFileStatus};

use crate::error::CliError;

/// The identity in the key file at `key` (created, and said so on stderr,
/// if missing), or a fresh one without a key file: what an agent the CLI
/// runs (`listen`, `a2a connect`) is.
pub(crate) fn identity_or_new(key: Option<&Path>) -> Result<Identity, CliError> {
    let Some(path) = key else { return Identity::generate().map_err(|e| CliError::failure(e.to_string())) };
    let (identity, status) = Identity::load_or_create(path).map_err(|e| CliError::failure(e.to_string()))?;
    if status == KeyFileStatus::Created {
        eprintln!("created a new key file {}", path.display());
    }
    Ok(identity)
}

/// Makes a new key file at `out`, never replacing one, and prints its AgentId.
pub(crate) fn keygen(out: &Path) -> Result<(), CliError> {
    let exists = || {
        CliError::failure(format!("{} already exists; tacit keygen never overwrites a key file", out.display()))
            .hint(format!("print its AgentId with `tacit id {}`, or choose another --out", out.display()))
    };
    if out.symlink_metadata().is_ok() {
        return Err(exists());
    }
    let (identity, status) = Identity::load_or_create(out).map_err(|e| CliError::failure(e.to_string()))?;
    if status == KeyFileStatus::Loaded {
        // Another process created it between the check and now.
        return Err(exists());
    }
    eprintln!("wrote a new key to {} (keep it private: it is the agent's identity)", out.display());
    println!("{}", identity.agent_id());
    Ok(())
}

/// Prints the AgentId of the key file at `file`.
pub(crate) fn id(file: &Path) -> Result<(), CliError> {
    match Identity::load(file) {
        Ok(identity) => {
            println!("{}", identity.agent_id());
            Ok(())
        }
        Err(IdentityError::Io { source, .. }) if source.kind() == ErrorKind::NotFound => {
            Err(CliError::failure(format!("no key file at {}", file.display()))
                .hint(format!("make one with `tacit keygen --out {}`", file.display())))
        }
        Err(e) => Err(CliError::failure(e.to_string())),
    }
}
