//! What `tacit mcp` and `tacit a2a serve` share: the bridge's identity and
//! credentials, and the bounds of its HTTP front (`tacit_bridge::http`).

use std::path::PathBuf;

use tacit::Identity;
use tacit::credential::SignedCredential;
use tacit_bridge::http::HttpOptions;

use crate::connect;
use crate::error::CliError;

/// The bridge's identity towards its Tacit peers.
#[derive(Debug, clap::Args)]
pub(crate) struct IdentityArgs {
    /// The bridge's identity, a key file (default: a fresh identity each run). Peers apply their policy to it.
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
    /// Present this credential to peers (a file of `tacit org issue`; repeatable).
    #[arg(long = "credential", value_name = "FILE")]
    credentials: Vec<PathBuf>,
}

impl IdentityArgs {
    /// The key file's identity, if one was given.
    pub(crate) fn identity(&self) -> Result<Option<Identity>, CliError> {
        self.key
            .as_ref()
            .map(|key| {
                Identity::load(key).map_err(|e| {
                    CliError::failure(e.to_string()).hint("make a key file with `tacit keygen --out FILE`")
                })
            })
            .transpose()
    }

    /// The credentials to present.
    pub(crate) fn credentials(&self) -> Result<Vec<SignedCredential>, CliError> {
        self.credentials.iter().map(|path| crate::org::read_credential(path)).collect()
    }
}

/// The bounds of an HTTP bridge.
#[derive(Debug, clap::Args)]
pub(crate) struct FrontArgs {
    /// Require `Authorization: Bearer TOKEN`, TOKEN being this file's content (trimmed). Needed to serve on an
    /// address that is not loopback.
    #[arg(long, value_name = "FILE")]
    bearer_token_file: Option<PathBuf>,
    /// Requests a second one client address may make (bursts of twice as many); 0 for no limit.
    #[arg(long, value_name = "N", default_value_t = 100)]
    rate: u32,
    /// Open connections at once from one client address.
    #[arg(long, value_name = "N", default_value_t = 64)]
    max_connections_per_client: usize,
}

impl FrontArgs {
    /// The options of the HTTP front.
    pub(crate) fn options(&self) -> Result<HttpOptions, CliError> {
        let rate = (self.rate > 0).then(|| (self.rate, self.rate.saturating_mul(2)));
        let mut options = HttpOptions::default().rate(rate).max_connections_per_client(self.max_connections_per_client);
        if let Some(path) = &self.bearer_token_file {
            let text =
                std::fs::read_to_string(path).map_err(|e| CliError::failure(format!("{}: {e}", path.display())))?;
            let token = text.trim();
            if token.is_empty() {
                return Err(CliError::failure(format!("{} holds no token", path.display())));
            }
            options = options.bearer_token(token);
        }
        Ok(options)
    }

    /// Binds `addr` (HOST:PORT): loopback, or anything with a bearer token.
    pub(crate) async fn bind(&self, what: &str, addr: &str) -> Result<tokio::net::TcpListener, CliError> {
        let target = connect::resolve(addr)?;
        if !target.ip().is_loopback() && self.bearer_token_file.is_none() {
            return Err(CliError::failure(format!(
                "{addr} is not a loopback address: serving {what} there needs --bearer-token-file"
            ))
            .hint("bind to 127.0.0.1 (the default choice for a local client), or give a token"));
        }
        tokio::net::TcpListener::bind(target)
            .await
            .map_err(|e| CliError::failure(format!("cannot listen on {addr}: {e}")))
    }

    /// Whether a bearer token is required.
    pub(crate) fn has_token(&self) -> bool {
        self.bearer_token_file.is_some()
    }

    /// `, bearer token required` when one is.
    pub(crate) fn guarded(&self) -> &'static str {
        if self.bearer_token_file.is_some() { ", bearer token required" } else { "" }
    }
}
