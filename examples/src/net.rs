//! Binding and dialing agents with error messages that say what to try.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use tacit::{Agent, AgentBuilder, AgentId, Error, Identity, Peer};

/// An error for the command line: one message that says what failed and
/// what to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure(pub String);

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Failure {}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Self(message)
    }
}

/// The result type of the examples.
pub type Result<T, E = Failure> = std::result::Result<T, E>;

/// Where to find a peer: `ADDR` or `ADDR@AGENT_ID` (then the TLS handshake
/// fails unless the peer holds that id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerSpec {
    /// The peer's UDP address.
    pub addr: SocketAddr,
    /// The AgentId it must have, if given.
    pub id: Option<AgentId>,
}

impl FromStr for PeerSpec {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        let (addr, id) = match s.split_once('@') {
            Some((addr, id)) => (addr, Some(id)),
            None => (s, None),
        };
        let addr = addr.parse().map_err(|e| {
            format!("`{addr}` is not an address like 127.0.0.1:5001 ({e}); the form is ADDR or ADDR@AGENT_ID")
        })?;
        let id =
            id.map(|id| id.parse::<AgentId>().map_err(|e| format!("`{id}` is not an AgentId ({e})"))).transpose()?;
        Ok(Self { addr, id })
    }
}

impl fmt::Display for PeerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.id {
            Some(id) => write!(f, "{}@{id}", self.addr),
            None => write!(f, "{}", self.addr),
        }
    }
}

/// The examples' agents give up dialing after `timeout` (the library's
/// connect timeout, whose error names the address).
pub fn with_timeout(builder: AgentBuilder, timeout: Duration) -> AgentBuilder {
    builder.connect_timeout(timeout)
}

/// Gives `builder` the identity in `key` (created, mode 0600, if missing);
/// without a key file the agent gets a fresh identity.
pub fn with_key(builder: AgentBuilder, key: Option<&Path>) -> Result<AgentBuilder> {
    let Some(path) = key else { return Ok(builder) };
    let (identity, _) = Identity::load_or_create(path)
        .map_err(|e| Failure(format!("cannot use the key file {}: {e}", path.display())))?;
    Ok(builder.identity(identity))
}

/// Binds `builder` on `addr`, with a message that names the address.
pub async fn bind(builder: AgentBuilder, addr: SocketAddr) -> Result<Agent> {
    builder.bind(addr).await.map_err(|e| {
        Failure(format!(
            "cannot listen on {addr}: {e}\n  (is the port in use? pick another --addr, or port 0 for any free port)"
        ))
    })
}

/// Dials `what` (e.g. "an echo server") at `spec` (within the agent's
/// connect timeout, see [`with_timeout`]), waits for the capability
/// handshake and checks that the peer takes intent `I`.
pub async fn connect<I: tacit::Intent>(agent: &Agent, spec: PeerSpec, what: &str) -> Result<Peer> {
    let addr = spec.addr;
    let dial = async {
        let peer = agent.connect(addr, spec.id).await?;
        peer.ready().await?;
        Ok::<_, Error>(peer)
    };
    let peer = match dial.await {
        Ok(peer) => peer,
        Err(Error::IdentityMismatch { expected, found }) => {
            return Err(Failure(format!(
                "the agent at {addr} is {found}, not the expected {expected}\n  (check the id that {what} printed)"
            )));
        }
        Err(e) => {
            return Err(Failure(format!("{e}\n  (is {what} running there? check the address it printed)")));
        }
    };
    if !peer.can_send::<I>() {
        let name = peer.card().map(|card| card.name).unwrap_or_default();
        return Err(Failure(format!(
            "the agent at {addr} (\"{name}\", {}) does not take {}: is it {what}?",
            peer.id(),
            I::NAME
        )));
    }
    Ok(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_specs() {
        let plain: PeerSpec = "127.0.0.1:5001".parse().unwrap();
        assert_eq!(plain.addr, "127.0.0.1:5001".parse().unwrap());
        assert_eq!(plain.id, None);
        let id = Identity::generate().unwrap().agent_id();
        let with_id: PeerSpec = format!("127.0.0.1:5001@{id}").parse().unwrap();
        assert_eq!(with_id.id, Some(id));
        assert_eq!(with_id.to_string(), format!("127.0.0.1:5001@{id}"));
        assert!("localhost".parse::<PeerSpec>().unwrap_err().contains("not an address"));
        assert!("127.0.0.1:1@nope".parse::<PeerSpec>().unwrap_err().contains("not an AgentId"));
    }
}
