//! The control stream and the capability handshake on it.
//!
//! [`Control`] holds the sans-IO [`Handshake`] machine and what it has
//! negotiated so far; the lanes ask it only whether work may proceed
//! ([`admit`](Control::admit), [`ready`](Control::ready),
//! [`negotiated`](Control::negotiated)). A task ([`drive`]) owns the
//! machine's I/O: it feeds the machine what the peer sends, writes what the
//! machine transmits, runs its timer and publishes its events. The machine
//! sits behind a mutex that is never held across an `.await`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytes::Bytes;
use tacit_handshake::{Admission, AgentId, Event, Handshake, HandshakeConfig, IntentOffer, Negotiated, Refusal, Role};
use tacit_wire::{ErrorCode, IntentId};
use tokio::sync::{Notify, oneshot, watch};

use crate::error::{SessionError, connection_error};
use crate::frames::{FrameSink, write_frames};

/// Where a session's handshake stands.
#[derive(Debug, Clone)]
enum State {
    Handshaking,
    Ready(Arc<Negotiated>),
    Failed(SessionError),
}

type SchemaWaiters = HashMap<IntentId, Vec<oneshot::Sender<Result<(String, Bytes), Refusal>>>>;

/// A session's handshake: the machine, and what it negotiated.
#[derive(Debug)]
pub(crate) struct Control {
    config: Arc<HandshakeConfig>,
    machine: Mutex<Handshake>,
    /// Wakes the driver after the machine was used from outside it.
    wake: Notify,
    state: watch::Receiver<State>,
    schema_waiters: Mutex<SchemaWaiters>,
}

/// What the driver publishes to: the other end of [`Control::state`].
#[derive(Debug)]
pub(crate) struct Publisher(watch::Sender<State>);

impl Control {
    /// A handshake in `role` under `config`, not yet driven.
    /// `peer` is the AgentId TLS proved, the subject credentials must name.
    pub(crate) fn new(role: Role, config: Arc<HandshakeConfig>, peer: AgentId) -> (Arc<Self>, Publisher) {
        let now = Instant::now();
        let mut machine = match role {
            Role::Dialer => Handshake::dialer(config.clone(), now),
            Role::Acceptor => Handshake::acceptor(config.clone(), now),
        };
        machine.set_peer_id(peer);
        let (state_tx, state) = watch::channel(State::Handshaking);
        let control = Self {
            config,
            machine: Mutex::new(machine),
            wake: Notify::new(),
            state,
            schema_waiters: Mutex::new(HashMap::new()),
        };
        (Arc::new(control), Publisher(state_tx))
    }

    fn machine(&self) -> MutexGuard<'_, Handshake> {
        self.machine.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether work that arrives now may proceed, wait for the handshake,
    /// or is refused (the pipelining rule).
    pub(crate) fn admit(&self) -> Admission {
        self.machine().admit()
    }

    /// Waits for the handshake to end.
    pub(crate) async fn ready(&self) -> Result<Arc<Negotiated>, SessionError> {
        let mut state = self.state.clone();
        let outcome = state.wait_for(|s| !matches!(s, State::Handshaking)).await;
        match outcome.as_deref() {
            Ok(State::Ready(negotiated)) => Ok(negotiated.clone()),
            Ok(State::Failed(e)) => Err(e.clone()),
            _ => Err(SessionError::ConnectionLost("the session driver stopped".into())),
        }
    }

    /// Waits until what is negotiated is no longer `seen` (a capability
    /// update), and returns what is; `None` once the session has failed or
    /// its driver stopped.
    pub(crate) async fn negotiated_after(&self, seen: &Arc<Negotiated>) -> Option<Arc<Negotiated>> {
        let mut state = self.state.clone();
        let outcome = state
            .wait_for(|s| match s {
                State::Ready(negotiated) => !Arc::ptr_eq(negotiated, seen),
                _ => true,
            })
            .await;
        match outcome.as_deref() {
            Ok(State::Ready(negotiated)) => Some(negotiated.clone()),
            _ => None,
        }
    }

    /// What is negotiated now, if the handshake has finished.
    pub(crate) fn negotiated(&self) -> Option<Arc<Negotiated>> {
        match &*self.state.borrow() {
            State::Ready(negotiated) => Some(negotiated.clone()),
            _ => None,
        }
    }

    /// The largest frame this agent accepts.
    pub(crate) fn local_max_frame_len(&self) -> usize {
        self.config.capabilities().limits.max_frame_len as usize
    }

    /// The asks this agent runs at once, at most.
    pub(crate) fn local_max_concurrent_asks(&self) -> u32 {
        self.config.capabilities().limits.max_concurrent_asks
    }

    /// Offers the peer more intents (a capability update).
    pub(crate) fn add_intents(&self, offers: Vec<IntentOffer>) -> Result<(), Refusal> {
        let result = self.machine().add_intents(offers);
        self.wake.notify_one();
        result
    }

    /// Fetches the schema of an intent the peer offers.
    pub(crate) async fn describe(&self, intent_id: IntentId) -> Result<(String, Bytes), Refusal> {
        let (tx, rx) = oneshot::channel();
        {
            let mut waiters = self.schema_waiters.lock().unwrap_or_else(|e| e.into_inner());
            // The driver marks the session failed before it fails the waiters
            // (under this lock), so a request after that is answered here.
            if matches!(*self.state.borrow(), State::Failed(_)) {
                return Err(session_ended());
            }
            self.machine().request_schema(intent_id)?;
            waiters.entry(intent_id).or_default().push(tx);
        }
        self.wake.notify_one();
        rx.await.unwrap_or_else(|_| Err(session_ended()))
    }

    fn resolve_schema(&self, intent_id: IntentId, result: Result<(String, Bytes), Refusal>) {
        let waiters = self.schema_waiters.lock().unwrap_or_else(|e| e.into_inner()).remove(&intent_id);
        for waiter in waiters.into_iter().flatten() {
            let _ = waiter.send(result.clone());
        }
    }

    fn fail_schema_waiters(&self) {
        let waiters = std::mem::take(&mut *self.schema_waiters.lock().unwrap_or_else(|e| e.into_inner()));
        for waiter in waiters.into_values().flatten() {
            let _ = waiter.send(Err(session_ended()));
        }
    }
}

fn session_ended() -> Refusal {
    Refusal::new(ErrorCode::ControlStreamClosed, "the session ended")
}

/// How long a refusing side waits for its `Refusal` to be acknowledged
/// before it closes the connection anyway.
const REFUSAL_LINGER: std::time::Duration = std::time::Duration::from_secs(1);

/// Runs the control stream until the session fails or the connection ends.
pub(crate) async fn drive(
    control: Arc<Control>,
    publisher: Publisher,
    connection: quinn::Connection,
    send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) {
    let Publisher(state) = publisher;
    // The machine's frames go out through the same writer as every lane's.
    let (sink, source) = FrameSink::open(send, Bytes::new());
    let writer = tokio::spawn(write_frames(source));
    loop {
        let (frames, events, deadline) = {
            let mut machine = control.machine();
            let frames: Vec<Bytes> = std::iter::from_fn(|| machine.poll_transmit()).collect();
            let events: Vec<Event> = std::iter::from_fn(|| machine.poll_event()).collect();
            (frames, events, machine.poll_timeout())
        };
        for frame in frames {
            // Handshake frames are bounded by the machine; they never wait.
            if sink.push_encoded(frame).is_err() {
                tracing::debug!("control stream write failed");
            }
        }
        for event in events {
            match event {
                Event::Established(negotiated) => {
                    // [revoke.race]: the peer's credentials were verified
                    // when its Hello or Welcome arrived; a list applied
                    // since then, before this session could be found by the
                    // sweep of `revoke.live` (which skips sessions not yet
                    // ready), is checked here. The store's read lock is held
                    // until the session is ready, so a list applied later
                    // finds it ready and closes it.
                    let trust = control.config.trust().map(|trust| trust.read().unwrap_or_else(|e| e.into_inner()));
                    let revoked = trust.as_ref().and_then(|store| {
                        negotiated.peer_credentials.iter().find(|c| store.is_revoked(&c.org, c.serial))
                    });
                    if let Some(revoked) = revoked {
                        let reason =
                            format!("credential {} of organisation {} was revoked", revoked.serial, revoked.org);
                        drop(trust);
                        connection
                            .close(quinn::VarInt::from_u32(ErrorCode::CredentialRevoked as u32), reason.as_bytes());
                        let refusal = Refusal::new(ErrorCode::CredentialRevoked, reason);
                        state.send_replace(State::Failed(SessionError::Refused { refusal, by_peer: false }));
                        control.fail_schema_waiters();
                        return;
                    }
                    state.send_replace(State::Ready(Arc::new(negotiated)));
                    drop(trust);
                }
                Event::Updated(negotiated) => {
                    state.send_replace(State::Ready(Arc::new(negotiated)));
                }
                Event::Failed { refusal, by_peer } => {
                    // [hs.refusal-sent] Dropping the sink finishes the stream
                    // after what is queued (the `Refusal`, when this side
                    // refuses). Closing the connection discards stream data
                    // QUIC has not delivered, so wait until the peer has
                    // acknowledged it (or stopped the stream), for at most
                    // `REFUSAL_LINGER`: a slow peer cannot hold the connection.
                    drop(sink);
                    let linger = async {
                        if let Ok(Some(send)) = writer.await {
                            let _ = send.stopped().await;
                        }
                    };
                    let _ = tokio::time::timeout(REFUSAL_LINGER, linger).await;
                    connection.close(quinn::VarInt::from_u32(refusal.code as u32), refusal.reason.as_bytes());
                    state.send_replace(State::Failed(SessionError::Refused { refusal, by_peer }));
                    control.fail_schema_waiters();
                    return;
                }
                Event::SchemaReceived { intent_id, name, descriptor_set } => {
                    control.resolve_schema(intent_id, Ok((name, descriptor_set)));
                }
                Event::SchemaFailed { intent_id, refusal } => control.resolve_schema(intent_id, Err(refusal)),
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
                let mut machine = control.machine();
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
                        control.fail_schema_waiters();
                        return;
                    }
                }
            }
            () = sleep => control.machine().handle_timeout(Instant::now()),
            () = control.wake.notified() => {}
        }
    }
}
