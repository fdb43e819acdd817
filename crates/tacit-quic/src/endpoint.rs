//! The endpoint: one UDP socket, this agent's identity, and the sessions it
//! dials and accepts.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};

use tacit_handshake::credential::{
    Applied, CredentialError, OrgKey, RevocationList, SignedCredential, SignedRevocationList, TrustStore,
};
use tacit_handshake::{AgentCard, AgentId, Capabilities, HandshakeConfig, Identity, OfferFilter, Role};
use tokio::sync::{Semaphore, mpsc};

use crate::config::TransportLimits;
use crate::dedup::Dedup;
use crate::drain::Drain;
use crate::error::{AcceptError, BindError, ConnectError};
use crate::fast::Slots;
use crate::session::{Session, SessionContext};
use crate::tls::{self, Credentials, ServerCheck};

/// Builds an [`Endpoint`]: identity, card, capabilities and limits.
#[derive(Debug, Default)]
pub struct EndpointBuilder {
    identity: Option<Identity>,
    card: AgentCard,
    capabilities: Capabilities,
    limits: TransportLimits,
    presented: Vec<SignedCredential>,
    trust: Option<TrustStore>,
    offer_filter: Filter,
}

/// The optional [`OfferFilter`] (a closure, shown as whether it is set).
#[derive(Clone, Default)]
struct Filter(Option<OfferFilter>);

impl std::fmt::Debug for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Some(OfferFilter)" } else { "None" })
    }
}

impl EndpointBuilder {
    /// The agent's identity (required).
    pub fn identity(mut self, identity: Identity) -> Self {
        self.identity = Some(identity);
        self
    }

    /// The card shown to peers.
    pub fn card(mut self, card: AgentCard) -> Self {
        self.card = card;
        self
    }

    /// The capabilities offered to peers.
    pub fn capabilities(mut self, capabilities: Capabilities) -> Self {
        self.capabilities = capabilities;
        self
    }

    /// A credential presented to every peer in the handshake.
    pub fn credential(mut self, credential: SignedCredential) -> Self {
        self.presented.push(credential);
        self
    }

    /// Verifies peers' credentials against `trust`, with each peer's
    /// TLS-proven AgentId as the subject; a presented credential that fails
    /// refuses the session (rule `trust.handshake` of docs/PROTOCOL.md).
    pub fn trust_store(mut self, trust: TrustStore) -> Self {
        self.trust = Some(trust);
        self
    }

    /// Transport limits.
    pub fn limits(mut self, limits: TransportLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Offers each accepted peer the capabilities `filter` returns for it
    /// (see [`OfferFilter`]).
    pub fn offer_filter(mut self, filter: OfferFilter) -> Self {
        self.offer_filter = Filter(Some(filter));
        self
    }

    /// Binds the UDP socket at `addr` and starts accepting connections.
    pub async fn bind(self, addr: SocketAddr) -> Result<Endpoint, BindError> {
        self.bind_to(BindTo::Addr(addr)).await
    }

    /// Like [`bind`](Self::bind), over a socket made by the caller (e.g. a
    /// fault-injecting one, `tacit_testkit::fault`).
    #[doc(hidden)]
    pub async fn bind_with_socket(self, socket: Arc<dyn quinn::AsyncUdpSocket>) -> Result<Endpoint, BindError> {
        self.bind_to(BindTo::Socket(socket)).await
    }

    async fn bind_to(self, to: BindTo) -> Result<Endpoint, BindError> {
        let identity = self.identity.ok_or(BindError::MissingIdentity)?;
        let mut handshake = HandshakeConfig::new(self.card, self.capabilities).map_err(BindError::InvalidConfig)?;
        handshake.timeout(self.limits.handshake_timeout);
        if let Some(filter) = self.offer_filter.0 {
            handshake.offer_filter(filter);
        }
        for credential in &self.presented {
            handshake.credential(credential);
        }
        let trust = self.trust.map(|trust| Arc::new(RwLock::new(trust)));
        if let Some(trust) = &trust {
            handshake.trust_store(trust.clone());
        }
        let (revocations, _) = tokio::sync::watch::channel(());
        let credentials = Credentials::new(&identity)?;
        let endpoint_config = endpoint_config(&identity);
        let transport = self.limits.quinn_transport();
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(tls::server_config(&credentials)?));
        server.transport_config(transport.clone());
        let endpoint = match to {
            BindTo::Addr(addr) => {
                let socket = std::net::UdpSocket::bind(addr)?;
                self.limits.size_socket(&socket);
                quinn::Endpoint::new(endpoint_config, Some(server), socket, Arc::new(quinn::TokioRuntime))?
            }
            BindTo::Socket(socket) => quinn::Endpoint::new_with_abstract_socket(
                endpoint_config,
                Some(server),
                socket,
                Arc::new(quinn::TokioRuntime),
            )?,
        };
        let shared = Arc::new(Shared {
            agent_id: identity.agent_id(),
            identity: Arc::new(identity.clone()),
            credentials,
            transport,
            pending_handshakes: Arc::new(Semaphore::new(self.limits.max_pending_handshakes)),
            handshake: Arc::new(handshake),
            dedup: Arc::new(Dedup::new(self.limits.dedup_window)),
            drain: Arc::new(Drain::default()),
            per_peer: Arc::default(),
            limits: self.limits,
            trust,
            revocations,
        });
        let (ready_tx, ready_rx) = mpsc::channel(1);
        tokio::spawn(accept_loop(endpoint.clone(), shared.clone(), ready_tx));
        Ok(Endpoint { inner: endpoint, shared, accepted: Arc::new(tokio::sync::Mutex::new(ready_rx)) })
    }
}

/// The QUIC endpoint configuration, with a stateless-reset key derived from
/// the agent's identity: an agent restarted with the same key answers the
/// packets of its previous incarnation's connections with a valid stateless
/// reset, so their peers notice the restart at once instead of after the
/// idle timeout (docs/PROTOCOL.md, "QUIC mapping").
fn endpoint_config(identity: &Identity) -> quinn::EndpointConfig {
    // Ed25519 signatures are deterministic: the signature of a fixed label
    // is a secret only the key's holder can compute, the same every run.
    let signature = identity.sign(b"tacit stateless reset key v1");
    let key = blake3::derive_key("tacit stateless reset key v1", &signature.to_bytes());
    // The connection ids carry a check value keyed the same way: a restarted
    // agent must accept its previous incarnation's ids as its own, or it
    // drops their packets as invalid instead of resetting them.
    let cid = blake3::derive_key("tacit connection id key v1", &signature.to_bytes());
    let cid_key = u64::from_le_bytes([cid[0], cid[1], cid[2], cid[3], cid[4], cid[5], cid[6], cid[7]]);
    let mut config = quinn::EndpointConfig::new(Arc::new(ResetKey(key)));
    config.cid_generator(move || Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key)));
    config
}

/// The stateless-reset key: a keyed BLAKE3 MAC (quinn asks only for an HMAC-like key).
struct ResetKey([u8; 32]);

impl quinn_proto::crypto::HmacKey for ResetKey {
    fn sign(&self, data: &[u8], signature_out: &mut [u8]) {
        let mac = blake3::keyed_hash(&self.0, data);
        let len = signature_out.len().min(32);
        signature_out[..len].copy_from_slice(&mac.as_bytes()[..len]);
    }

    fn signature_len(&self) -> usize {
        32
    }

    fn verify(&self, data: &[u8], signature: &[u8]) -> Result<(), quinn_proto::crypto::CryptoError> {
        // `Hash` compares in constant time.
        match <[u8; 32]>::try_from(signature) {
            Ok(signature) if blake3::keyed_hash(&self.0, data) == blake3::Hash::from(signature) => Ok(()),
            _ => Err(quinn_proto::crypto::CryptoError),
        }
    }
}

/// Where an endpoint binds.
enum BindTo {
    Addr(SocketAddr),
    Socket(Arc<dyn quinn::AsyncUdpSocket>),
}

/// Accepts connections and runs their handshakes concurrently, so a slow or
/// hostile peer delays nobody else. A permit of `max_pending_handshakes` is
/// held from the first packet until the session is handed to the
/// application, which bounds both handshakes in progress and sessions waiting
/// for `accept`.
async fn accept_loop(
    endpoint: quinn::Endpoint,
    shared: Arc<Shared>,
    ready: mpsc::Sender<Result<Session, AcceptError>>,
) {
    while let Some(incoming) = endpoint.accept().await {
        let Ok(permit) = shared.pending_handshakes.clone().try_acquire_owned() else {
            incoming.refuse();
            continue;
        };
        let (shared, ready) = (shared.clone(), ready.clone());
        tokio::spawn(async move {
            let result = finish_accept(&shared, incoming).await;
            let _ = ready.send(result).await;
            drop(permit);
        });
    }
}

async fn finish_accept(shared: &Shared, incoming: quinn::Incoming) -> Result<Session, AcceptError> {
    // The QUIC + TLS handshake, then the control stream, each within the
    // handshake timeout: the dialer starts its capability handshake's clock
    // when its QUIC handshake is done, so the acceptor does the same. (With
    // one deadline from the first packet, a peer whose QUIC handshake was
    // slow, e.g. through lost packets, was cut off while its `Hello` was
    // still within its own timeout.)
    let timeout = shared.limits.handshake_timeout;
    let connection = tokio::time::timeout(timeout, incoming).await.map_err(|_| AcceptError::QuicTimeout)??;
    let peer = tls::peer_agent_id(&connection).ok_or(AcceptError::NoPeerIdentity)?;
    let Some(asks) = shared.add_connection(peer, &connection, true) else {
        return Err(AcceptError::TooManyConnections(peer));
    };
    match tokio::time::timeout(timeout, connection.accept_bi()).await {
        Ok(Ok((send, recv))) => Ok(Session::start(connection, peer, Role::Acceptor, shared.context(asks), send, recv)),
        Ok(Err(e)) => Err(AcceptError::Connection(e)),
        Err(_) => {
            // Free the peer's slot and tell it why.
            let code = quinn::VarInt::from_u32(tacit_wire::ErrorCode::HandshakeTimeout as u32);
            connection.close(code, b"no control stream before the handshake timeout");
            Err(AcceptError::Timeout)
        }
    }
}

#[derive(Debug)]
struct Shared {
    agent_id: AgentId,
    /// Signs signed asks and tells of every session.
    identity: Arc<Identity>,
    credentials: Credentials,
    transport: Arc<quinn::TransportConfig>,
    handshake: Arc<HandshakeConfig>,
    pending_handshakes: Arc<Semaphore>,
    dedup: Arc<Dedup>,
    drain: Arc<Drain>,
    /// State per connected peer: its connections and its asks in flight.
    per_peer: Arc<Mutex<std::collections::HashMap<AgentId, PeerState>>>,
    limits: TransportLimits,
    /// The trust store shared with every handshake, if credentials are checked.
    trust: Option<Arc<RwLock<TrustStore>>>,
    /// Signalled when a revocation list is applied: live sessions recheck.
    revocations: tokio::sync::watch::Sender<()>,
}

/// What one peer (by AgentId) holds of this endpoint, over all its connections.
#[derive(Debug)]
struct PeerState {
    connections: usize,
    /// Asks from this peer being handled, bounded by `max_concurrent_asks`.
    asks: Arc<Slots>,
}

impl Shared {
    fn context(&self, incoming_asks: Arc<Slots>) -> SessionContext {
        self.context_with(self.handshake.clone(), incoming_asks)
    }

    fn context_with(&self, handshake: Arc<HandshakeConfig>, incoming_asks: Arc<Slots>) -> SessionContext {
        SessionContext {
            handshake,
            dedup: self.dedup.clone(),
            drain: self.drain.clone(),
            max_stream_rate: self.limits.max_stream_rate,
            max_concurrent_streams: self.limits.max_concurrent_streams,
            incoming_asks,
            trust: self.trust.clone(),
            revocations: self.revocations.subscribe(),
            identity: self.identity.clone(),
        }
    }

    /// Counts a new connection with `peer` and returns the peer's ask
    /// semaphore, shared by all its connections. An incoming connection
    /// (`enforce_limit`) over `max_connections_per_peer` is closed instead.
    /// The count drops when the connection closes; the peer's state goes with
    /// its last connection, so a stream of new identities cannot grow it.
    fn add_connection(&self, peer: AgentId, connection: &quinn::Connection, enforce_limit: bool) -> Option<Arc<Slots>> {
        let asks = {
            let mut per_peer = self.per_peer.lock().unwrap_or_else(|e| e.into_inner());
            let max_asks = self.handshake.capabilities().limits.max_concurrent_asks as usize;
            let state = per_peer
                .entry(peer)
                .or_insert_with(|| PeerState { connections: 0, asks: Arc::new(Slots::new(max_asks)) });
            if enforce_limit && state.connections >= self.limits.max_connections_per_peer {
                let code = quinn::VarInt::from_u32(tacit_wire::ErrorCode::TooManyConnections as u32);
                connection.close(code, b"too many connections from this agent");
                return None;
            }
            state.connections += 1;
            state.asks.clone()
        };
        let (per_peer, connection) = (self.per_peer.clone(), connection.clone());
        tokio::spawn(async move {
            connection.closed().await;
            let mut per_peer = per_peer.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(state) = per_peer.get_mut(&peer) {
                state.connections = state.connections.saturating_sub(1);
                if state.connections == 0 {
                    per_peer.remove(&peer);
                }
            }
        });
        Some(asks)
    }
}

/// A QUIC endpoint speaking Tacit: dials and accepts sessions with other agents.
#[derive(Debug, Clone)]
pub struct Endpoint {
    inner: quinn::Endpoint,
    shared: Arc<Shared>,
    accepted: Arc<tokio::sync::Mutex<mpsc::Receiver<Result<Session, AcceptError>>>>,
}

impl Endpoint {
    /// Starts building an endpoint.
    pub fn builder() -> EndpointBuilder {
        EndpointBuilder::default()
    }

    /// Applies a revocation list to the trust store (rules
    /// `revoke.signature`, `revoke.trusted`, `revoke.newer`): later
    /// handshakes refuse the credentials it revokes, and live sessions whose
    /// peer relies on one are closed with `CREDENTIAL_REVOKED` at once
    /// (`revoke.live`). Without a trust store, every list is refused as untrusted.
    pub fn apply_revocations(&self, list: &SignedRevocationList) -> Result<Applied, CredentialError> {
        let Some(trust) = &self.shared.trust else {
            return list.list().and_then(|list| Err(CredentialError::UntrustedOrganisation(list.org)));
        };
        let applied = trust.write().unwrap_or_else(|e| e.into_inner()).apply_revocations(list)?;
        if applied == Applied::Replaced {
            self.shared.revocations.send_replace(());
        }
        Ok(applied)
    }

    /// Whether the trust store trusts `org` (false without a trust store).
    pub fn trusts(&self, org: &OrgKey) -> bool {
        self.shared.trust.as_ref().is_some_and(|trust| trust.read().unwrap_or_else(|e| e.into_inner()).is_trusted(org))
    }

    /// The revocation list held for `org`, if any.
    pub fn revocations(&self, org: &OrgKey) -> Option<RevocationList> {
        let trust = self.shared.trust.as_ref()?;
        trust.read().unwrap_or_else(|e| e.into_inner()).revocations(org).cloned()
    }

    /// This agent's id.
    pub fn agent_id(&self) -> AgentId {
        self.shared.agent_id
    }

    /// Whether [`shutdown`](Self::shutdown) has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.shared.drain.is_shutting_down()
    }

    /// The local UDP address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// Connects to the agent at `addr`. If `expected` is given, the TLS
    /// handshake fails unless the peer's certificate holds that AgentId.
    ///
    /// Returns once the QUIC handshake is done and `Hello` is on its way:
    /// work may start at once (see [`Session::ready`]).
    pub async fn connect(&self, addr: SocketAddr, expected: Option<AgentId>) -> Result<Session, ConnectError> {
        self.connect_with_alpn(addr, expected, vec![tls::ALPN.to_vec()]).await
    }

    /// Like [`connect`](Self::connect), giving up after `timeout` (instead of
    /// the handshake timeout of the endpoint's [`TransportLimits`]) with
    /// [`ConnectError::Timeout`], which names the address.
    pub async fn connect_within(
        &self,
        addr: SocketAddr,
        expected: Option<AgentId>,
        timeout: std::time::Duration,
    ) -> Result<Session, ConnectError> {
        self.dial(addr, expected, vec![tls::ALPN.to_vec()], timeout).await
    }

    /// Like [`connect`](Self::connect), offering other ALPN ids (for tests).
    #[doc(hidden)]
    pub async fn connect_with_alpn(
        &self,
        addr: SocketAddr,
        expected: Option<AgentId>,
        alpn: Vec<Vec<u8>>,
    ) -> Result<Session, ConnectError> {
        self.dial(addr, expected, alpn, self.shared.limits.handshake_timeout).await
    }

    async fn dial(
        &self,
        addr: SocketAddr,
        expected: Option<AgentId>,
        alpn: Vec<Vec<u8>>,
        timeout: std::time::Duration,
    ) -> Result<Session, ConnectError> {
        let check = Arc::new(Mutex::new(ServerCheck::default()));
        let crypto = tls::client_config(&self.shared.credentials, expected, check.clone(), alpn)?;
        let mut config = quinn::ClientConfig::new(Arc::new(crypto));
        config.transport_config(self.shared.transport.clone());
        // The server name is not checked (the AgentId is); a printed AgentId
        // is a valid DNS label, so use it when known.
        let server_name = expected.map_or_else(|| "tacit".to_owned(), |id| id.to_string());
        let connecting = self.inner.connect_with(config, addr, &server_name)?;
        let connection = match tokio::time::timeout(timeout, connecting).await {
            Err(_) => return Err(ConnectError::Timeout { addr, timeout }),
            Ok(Err(e)) => {
                let found = check.lock().ok().and_then(|c| c.found);
                return Err(match (expected, found) {
                    (Some(expected), Some(found)) if expected != found => {
                        ConnectError::IdentityMismatch { expected, found }
                    }
                    _ => ConnectError::Connection(e),
                });
            }
            Ok(Ok(connection)) => connection,
        };
        // The verifier read the AgentId from the certificate already.
        let verified = check.lock().ok().and_then(|c| c.found);
        let peer = verified.or_else(|| tls::peer_agent_id(&connection)).ok_or(ConnectError::NoPeerIdentity)?;
        let (send, recv) = connection.open_bi().await.map_err(ConnectError::Connection)?;
        let asks = self.shared.add_connection(peer, &connection, false).ok_or(ConnectError::NoPeerIdentity)?;
        Ok(Session::start(connection, peer, Role::Dialer, self.shared.context(asks), send, recv))
    }

    /// Accepts the next incoming session; `None` once the endpoint is closed.
    ///
    /// Handshakes run in the background, at most `max_pending_handshakes` at
    /// once (more connections are refused); this returns them as they finish.
    pub async fn accept(&self) -> Option<Result<Session, AcceptError>> {
        self.accepted.lock().await.recv().await
    }

    /// Shuts down gracefully: stops accepting connections, stops reading new
    /// asks, waits up to `drain` for the asks being handled to be answered and
    /// their answers acknowledged, then closes every connection with
    /// `SHUTDOWN`. Returns how many asks or reply streams were still busy when
    /// the connections closed (their askers see an unknown outcome).
    pub async fn shutdown(&self, drain: std::time::Duration) -> usize {
        self.shared.drain.begin();
        self.inner.set_server_config(None);
        let unanswered = self.shared.drain.wait(drain).await;
        self.close(tacit_wire::ErrorCode::Shutdown, b"shutting down");
        let _ = tokio::time::timeout(drain, self.inner.wait_idle()).await;
        unanswered
    }

    /// Completes a QUIC + TLS handshake with this endpoint's identity and
    /// returns the raw connection, without the capability handshake (for
    /// tests that misbehave on purpose).
    #[doc(hidden)]
    pub async fn connect_raw(&self, addr: SocketAddr) -> Result<quinn::Connection, ConnectError> {
        let check = Arc::new(Mutex::new(ServerCheck::default()));
        let crypto = tls::client_config(&self.shared.credentials, None, check, vec![tls::ALPN.to_vec()])?;
        let mut config = quinn::ClientConfig::new(Arc::new(crypto));
        config.transport_config(self.shared.transport.clone());
        Ok(self.inner.connect_with(config, addr, "tacit")?.await?)
    }

    /// Moves the endpoint to another socket (a new local address); its
    /// connections migrate (for tests of port rebinding).
    #[doc(hidden)]
    pub fn rebind_with_socket(&self, socket: Arc<dyn quinn::AsyncUdpSocket>) -> std::io::Result<()> {
        self.inner.rebind_abstract(socket)
    }

    /// Closes every connection with `code` and stops accepting.
    pub fn close(&self, code: tacit_wire::ErrorCode, reason: &[u8]) {
        self.inner.close(quinn::VarInt::from_u32(code as u32), reason);
    }

    /// Waits until every connection is closed and its peer informed.
    pub async fn wait_idle(&self) {
        self.inner.wait_idle().await;
    }
}
