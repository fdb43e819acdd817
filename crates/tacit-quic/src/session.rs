//! A session: one QUIC connection with a peer agent, its capability
//! handshake and, after it, the negotiated capabilities.
//!
//! The control stream is driven by a task that owns the sans-IO
//! [`Handshake`] machine's I/O: it feeds the machine what the peer sends,
//! writes what the machine transmits, runs its timer and publishes its
//! events. The machine itself sits behind a mutex that is never held across
//! an `.await`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytes::Bytes;
use tacit_handshake::{AgentId, Event, Handshake, HandshakeConfig, IntentOffer, Negotiated, Refusal, Role};
use tacit_wire::{ErrorCode, IntentId};
use tokio::sync::{Notify, oneshot, watch};

use crate::error::SessionError;

/// Where a session's handshake stands.
#[derive(Debug, Clone)]
enum State {
    Handshaking,
    Ready(Arc<Negotiated>),
    Failed(SessionError),
}

type SchemaWaiters = HashMap<IntentId, Vec<oneshot::Sender<Result<(String, Bytes), Refusal>>>>;

#[derive(Debug)]
struct Inner {
    connection: quinn::Connection,
    peer: AgentId,
    role: Role,
    machine: Mutex<Handshake>,
    /// Wakes the control driver after the machine was used from outside it.
    wake: Notify,
    state: watch::Receiver<State>,
    schema_waiters: Mutex<SchemaWaiters>,
}

/// A session with a peer agent. Cheap to clone; all clones share it.
#[derive(Debug, Clone)]
pub struct Session {
    inner: Arc<Inner>,
}

impl Session {
    /// Starts the control-stream driver for a connected peer.
    pub(crate) fn start(
        connection: quinn::Connection,
        peer: AgentId,
        role: Role,
        config: Arc<HandshakeConfig>,
        send: quinn::SendStream,
        recv: quinn::RecvStream,
    ) -> Self {
        let now = Instant::now();
        let machine = match role {
            Role::Dialer => Handshake::dialer(config, now),
            Role::Acceptor => Handshake::acceptor(config, now),
        };
        let (state_tx, state_rx) = watch::channel(State::Handshaking);
        let inner = Arc::new(Inner {
            connection,
            peer,
            role,
            machine: Mutex::new(machine),
            wake: Notify::new(),
            state: state_rx,
            schema_waiters: Mutex::new(HashMap::new()),
        });
        tokio::spawn(drive_control(inner.clone(), send, recv, state_tx));
        Self { inner }
    }

    /// The peer's AgentId, from its TLS certificate.
    pub fn peer_id(&self) -> AgentId {
        self.inner.peer
    }

    /// Whether this side dialed or accepted.
    pub fn role(&self) -> Role {
        self.inner.role
    }

    /// The peer's address.
    pub fn remote_address(&self) -> std::net::SocketAddr {
        self.inner.connection.remote_address()
    }

    /// Waits for the capability handshake and returns what was negotiated
    /// (the peer's card, intents, limits, aliases).
    pub async fn ready(&self) -> Result<Arc<Negotiated>, SessionError> {
        let mut state = self.inner.state.clone();
        let outcome = state.wait_for(|s| !matches!(s, State::Handshaking)).await;
        match outcome.as_deref() {
            Ok(State::Ready(negotiated)) => Ok(negotiated.clone()),
            Ok(State::Failed(e)) => Err(e.clone()),
            _ => Err(SessionError::ConnectionLost("the session driver stopped".into())),
        }
    }

    /// What is negotiated now, if the handshake has finished.
    pub fn negotiated(&self) -> Option<Arc<Negotiated>> {
        match &*self.inner.state.borrow() {
            State::Ready(negotiated) => Some(negotiated.clone()),
            _ => None,
        }
    }

    /// Tells the peer this agent now also offers `offers`.
    pub fn add_intents(&self, offers: Vec<IntentOffer>) -> Result<(), Refusal> {
        let result = self.machine().add_intents(offers);
        self.inner.wake.notify_one();
        result
    }

    /// Fetches the schema of an intent the peer offers: its fully qualified
    /// name and an encoded `FileDescriptorSet`, verified to hash to `intent_id`.
    pub async fn describe(&self, intent_id: IntentId) -> Result<(String, Bytes), Refusal> {
        let (tx, rx) = oneshot::channel();
        {
            let mut waiters = self.inner.schema_waiters.lock().unwrap_or_else(|e| e.into_inner());
            self.machine().request_schema(intent_id)?;
            waiters.entry(intent_id).or_default().push(tx);
        }
        self.inner.wake.notify_one();
        rx.await.unwrap_or_else(|_| Err(Refusal::new(ErrorCode::ControlStreamClosed, "the session ended")))
    }

    /// Closes the session with `code`, telling the peer `reason`.
    pub fn close(&self, code: ErrorCode, reason: &str) {
        self.inner.connection.close(quinn::VarInt::from_u32(code as u32), reason.as_bytes());
    }

    /// Waits until the session ends and says why.
    pub async fn closed(&self) -> SessionError {
        connection_error(self.inner.connection.closed().await)
    }

    /// The underlying QUIC connection.
    #[doc(hidden)]
    pub fn connection(&self) -> &quinn::Connection {
        &self.inner.connection
    }

    fn machine(&self) -> MutexGuard<'_, Handshake> {
        self.inner.machine.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Maps how a connection ended to a session error: a close with a Tacit
/// code is a refusal by the peer.
pub(crate) fn connection_error(error: quinn::ConnectionError) -> SessionError {
    match error {
        quinn::ConnectionError::ApplicationClosed(close) => {
            let code = u32::try_from(close.error_code.into_inner())
                .ok()
                .and_then(|code| ErrorCode::try_from(code as i32).ok())
                .unwrap_or(ErrorCode::Unspecified);
            let reason = String::from_utf8_lossy(&close.reason).into_owned();
            SessionError::Refused { refusal: Refusal::new(code, reason), by_peer: true }
        }
        other => SessionError::ConnectionLost(other.to_string()),
    }
}

/// Runs the control stream until the session fails or the connection ends.
async fn drive_control(
    inner: Arc<Inner>,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    state: watch::Sender<State>,
) {
    loop {
        let (frames, events, deadline) = {
            let mut machine = inner.machine.lock().unwrap_or_else(|e| e.into_inner());
            let frames: Vec<Bytes> = std::iter::from_fn(|| machine.poll_transmit()).collect();
            let events: Vec<Event> = std::iter::from_fn(|| machine.poll_event()).collect();
            (frames, events, machine.poll_timeout())
        };
        for frame in frames {
            if let Err(e) = send.write_chunk(frame).await {
                tracing::debug!(peer = %inner.peer.short(), "control stream write failed: {e}");
            }
        }
        for event in events {
            match event {
                Event::Established(negotiated) | Event::Updated(negotiated) => {
                    state.send_replace(State::Ready(Arc::new(negotiated)));
                }
                Event::Failed { refusal, by_peer } => {
                    if !by_peer {
                        let _ = send.finish();
                    }
                    inner.connection.close(quinn::VarInt::from_u32(refusal.code as u32), refusal.reason.as_bytes());
                    state.send_replace(State::Failed(SessionError::Refused { refusal, by_peer }));
                    fail_schema_waiters(&inner);
                    return;
                }
                Event::SchemaReceived { intent_id, name, descriptor_set } => {
                    resolve_schema(&inner, intent_id, Ok((name, descriptor_set)));
                }
                Event::SchemaFailed { intent_id, refusal } => resolve_schema(&inner, intent_id, Err(refusal)),
                _ => {}
            }
        }
        let sleep = async {
            match deadline {
                Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            chunk = recv.read_chunk(64 * 1024, true) => {
                let mut machine = inner.machine.lock().unwrap_or_else(|e| e.into_inner());
                match chunk {
                    Ok(Some(chunk)) => machine.handle_data(&chunk.bytes, Instant::now()),
                    Ok(None) => machine.handle_stream_end(Instant::now()),
                    Err(e) => {
                        drop(machine);
                        let error = match e {
                            quinn::ReadError::ConnectionLost(e) => connection_error(e),
                            other => SessionError::ConnectionLost(other.to_string()),
                        };
                        state.send_replace(State::Failed(error));
                        fail_schema_waiters(&inner);
                        return;
                    }
                }
            }
            () = sleep => {
                inner.machine.lock().unwrap_or_else(|e| e.into_inner()).handle_timeout(Instant::now());
            }
            () = inner.wake.notified() => {}
        }
    }
}

fn resolve_schema(inner: &Inner, intent_id: IntentId, result: Result<(String, Bytes), Refusal>) {
    let waiters = inner.schema_waiters.lock().unwrap_or_else(|e| e.into_inner()).remove(&intent_id);
    for waiter in waiters.into_iter().flatten() {
        let _ = waiter.send(result.clone());
    }
}

fn fail_schema_waiters(inner: &Inner) {
    let waiters = std::mem::take(&mut *inner.schema_waiters.lock().unwrap_or_else(|e| e.into_inner()));
    for waiter in waiters.into_values().flatten() {
        let _ = waiter.send(Err(Refusal::new(ErrorCode::ControlStreamClosed, "the session ended")));
    }
}
