//! The link to one peer: a [`Session`] to one AgentId that outlives its
//! connections.
//!
//! A link re-dials with backoff when its session is lost (in the background,
//! so a restarted peer is noticed without waiting for the next ask), re-sends
//! asks that were not sent, re-sends asks marked idempotent whose outcome is
//! unknown (same message id, so the receiver's retry window — `dedup.rs` —
//! runs them at most once), and keeps one stream of incoming messages across
//! reconnects. Every ask ends within its deadline, re-dials included. Both
//! halves of the retry protocol (docs/PROTOCOL.md, "Idempotent retry") live
//! in this crate.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tacit_handshake::{AgentId, IntentOffer, Negotiated, Refusal};
use tacit_wire::{Envelope, ErrorCode, IntentId};
use tokio::sync::{Notify, watch};

use crate::ask::AskError;
use crate::endpoint::Endpoint;
use crate::error::{ConnectError, SessionError};
use crate::incoming::Incoming;
use crate::options::{AskOptions, TellOptions};
use crate::session::{Session, WeakSession};
use crate::stream::{FrameReceiver, FrameSender, StreamError};

/// How a [`Link`] re-establishes a lost session: exponential backoff between
/// attempts, a bounded number of attempts per loss, each within a connect
/// timeout.
///
/// Defaults: first re-dial at once, then 50 ms doubling up to 2 s; 8
/// attempts per loss; an ask re-sent at most 3 times; 5 s per attempt. With
/// these, a peer that stays away fails an ask without a deadline after
/// about 45 s at most (8 × 5 s plus the delays); an ask with a deadline fails
/// at its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReconnectPolicy {
    /// Delay before the second attempt (the first is immediate).
    pub initial_delay: Duration,
    /// Longest delay between attempts.
    pub max_delay: Duration,
    /// Attempts per loss before the link is [`LinkState::Down`] (0: never
    /// re-dial). The next use of a down link starts a new round.
    pub max_attempts: u32,
    /// How many times one ask is re-sent after lost connections.
    pub max_retries: u32,
    /// How long one attempt may take (QUIC, TLS and the start of the
    /// capability handshake).
    pub connect_timeout: Duration,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        Self {
            initial_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(2),
            max_attempts: 8,
            max_retries: 3,
            connect_timeout: Duration::from_secs(5),
        }
    }
}

impl ReconnectPolicy {
    /// Never re-dials: a lost session stays lost.
    pub fn never() -> Self {
        Self { max_attempts: 0, max_retries: 0, ..Self::default() }
    }

    /// Sets the delays: `initial`, doubling up to `max`.
    pub fn delays(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_delay = initial;
        self.max_delay = max;
        self
    }

    /// Sets the attempts per loss.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// Sets how many times one ask is re-sent.
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }

    /// Sets how long one attempt may take.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }
}

/// Where a [`Link`] stands. Watch it with [`Link::watch`], e.g. to subscribe
/// again after the peer restarted and lost its state.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LinkState {
    /// A session is up. `generation` counts sessions: 1 for the first, one
    /// more after each reconnect.
    Up {
        /// Which session this is.
        generation: u64,
    },
    /// The session was lost and the link is re-dialing.
    Reconnecting {
        /// The attempt under way (1 for the first).
        attempt: u32,
        /// Why the last session ended.
        reason: String,
    },
    /// Re-dialing gave up ([`ReconnectPolicy::max_attempts`]); the next ask,
    /// tell or stream starts a new round.
    Down {
        /// The last attempt's error.
        reason: String,
    },
    /// Closed by this side ([`Link::close`]); final.
    Closed,
}

/// The answer to an ask through a [`Link`]: the envelope, and its intent
/// resolved with what the answering session negotiated.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LinkReply {
    /// The reply's intent, if the peer named one this side can resolve.
    pub intent: Option<IntentId>,
    /// The answer.
    pub envelope: Envelope,
}

/// The link to one peer (one AgentId at one address). Cheap to clone; all
/// clones share it. When the last clone is dropped the session is closed
/// (`CLOSED`) and re-dialing stops.
#[derive(Debug, Clone)]
pub struct Link {
    inner: Arc<LinkInner>,
}

/// A link that does not keep it open; see [`Link::downgrade`].
#[derive(Debug, Clone)]
pub struct WeakLink {
    inner: Weak<LinkInner>,
}

#[derive(Debug)]
struct LinkInner {
    endpoint: Endpoint,
    peer: AgentId,
    addr: SocketAddr,
    policy: ReconnectPolicy,
    current: Mutex<Session>,
    state: watch::Sender<LinkState>,
    /// Rounds of re-dialing started; an operation waiting on a down link
    /// fails once a round that began after it has ended.
    rounds: AtomicU64,
    /// Set by [`Link::close`].
    closed: AtomicBool,
    signals: Arc<Signals>,
    /// What [`Link::add_intents`] added to the sessions: added again to
    /// each new session before it is used.
    added: Mutex<Vec<IntentOffer>>,
}

/// How handles reach the supervisor, which holds no strong reference to the link.
#[derive(Debug, Default)]
struct Signals {
    /// Asks a down link's supervisor to start a new round.
    redial: Notify,
    /// Stops the supervisor (the link was closed or dropped).
    stop: Notify,
}

impl Drop for LinkInner {
    fn drop(&mut self) {
        self.signals.stop.notify_one();
        lock(&self.current).close(ErrorCode::Closed, "link dropped");
    }
}

fn lock(session: &Mutex<Session>) -> std::sync::MutexGuard<'_, Session> {
    session.lock().unwrap_or_else(|e| e.into_inner())
}

impl Link {
    /// Dials `addr` once within the policy's connect timeout (with `expected`,
    /// the TLS handshake fails unless the peer holds that AgentId) and keeps
    /// the link to the AgentId found, re-dialing it as `policy` says.
    pub async fn connect(
        endpoint: &Endpoint,
        addr: SocketAddr,
        expected: Option<AgentId>,
        policy: ReconnectPolicy,
    ) -> Result<Self, ConnectError> {
        let session = endpoint.connect_within(addr, expected, policy.connect_timeout).await?;
        Ok(Self::from_session(endpoint.clone(), addr, session, policy))
    }

    fn from_session(endpoint: Endpoint, addr: SocketAddr, session: Session, policy: ReconnectPolicy) -> Self {
        let inner = Arc::new(LinkInner {
            endpoint,
            peer: session.peer_id(),
            addr,
            policy,
            current: Mutex::new(session.clone()),
            state: watch::Sender::new(LinkState::Up { generation: 1 }),
            rounds: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            signals: Arc::default(),
            added: Mutex::new(Vec::new()),
        });
        tokio::spawn(supervise(Arc::downgrade(&inner), inner.signals.clone(), session.downgrade()));
        Self { inner }
    }

    /// The peer's AgentId (proven by TLS, the same on every reconnect).
    pub fn peer_id(&self) -> AgentId {
        self.inner.peer
    }

    /// The address the link dials.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// The current session (possibly closed while the link re-dials).
    pub fn session(&self) -> Session {
        lock(&self.inner.current).clone()
    }

    /// Where the link stands now.
    pub fn state(&self) -> LinkState {
        self.inner.state.borrow().clone()
    }

    /// A watch of the link's state: every reconnect shows as a new
    /// [`LinkState::Up`] generation.
    pub fn watch(&self) -> LinkWatch {
        LinkWatch { state: self.inner.state.subscribe() }
    }

    /// What the current session negotiated, once its handshake is done.
    pub fn negotiated(&self) -> Option<Arc<Negotiated>> {
        self.session().negotiated()
    }

    /// A handle that does not keep the link open.
    pub fn downgrade(&self) -> WeakLink {
        WeakLink { inner: Arc::downgrade(&self.inner) }
    }

    /// Closes the link: the session is closed with `CLOSED` and the link
    /// does not re-dial.
    pub fn close(&self, reason: &str) {
        self.inner.closed.store(true, Ordering::SeqCst);
        self.session().close(ErrorCode::Closed, reason);
        self.inner.state.send_replace(LinkState::Closed);
        self.inner.signals.stop.notify_one();
    }

    /// Tells the peer this agent now also offers `offers` (a capability
    /// update, [`Session::add_intents`]) on this session and on every later
    /// one: a session re-established after a lost connection gets them
    /// before any ask is re-sent on it, so an intent offered on first use
    /// stays usable across reconnects.
    pub fn add_intents(&self, offers: Vec<IntentOffer>) -> Result<(), Refusal> {
        {
            let mut added = self.inner.added.lock().unwrap_or_else(|e| e.into_inner());
            for offer in &offers {
                if !added.iter().any(|known| known.id == offer.id) {
                    added.push(offer.clone());
                }
            }
        }
        self.session().add_intents(offers)
    }

    /// The session, re-established first if it was lost, waiting at most
    /// until `deadline`.
    pub async fn live_session(&self, deadline: Option<Instant>) -> Result<Session, AskError> {
        let session = self.session();
        if !session.is_closed() {
            return Ok(session);
        }
        self.next_session(&session, deadline).await
    }

    /// Waits for a session other than `failed`: the supervisor's re-dial,
    /// or a new round of it if the link is down.
    async fn next_session(&self, failed: &Session, deadline: Option<Instant>) -> Result<Session, AskError> {
        let inner = &self.inner;
        let round = inner.rounds.load(Ordering::SeqCst);
        let mut state = inner.state.subscribe();
        let wait = async {
            loop {
                {
                    let current = self.session();
                    if !current.same_as(failed) && !current.is_closed() {
                        return Ok(current);
                    }
                }
                let seen = state.borrow_and_update().clone();
                match seen {
                    LinkState::Closed => {
                        return Err(AskError::NotSent(SessionError::Closed {
                            by_peer: false,
                            reason: "the link was closed".into(),
                        }));
                    }
                    LinkState::Down { reason } if inner.rounds.load(Ordering::SeqCst) > round => {
                        return Err(AskError::NotSent(SessionError::Unreachable(format!(
                            "{} at {}: {reason}",
                            inner.peer, inner.addr
                        ))));
                    }
                    LinkState::Down { .. } => inner.signals.redial.notify_one(),
                    // Up with the failed session (its loss not seen yet), or re-dialing.
                    _ => {}
                }
                if state.changed().await.is_err() {
                    return Err(AskError::NotSent(SessionError::Closed {
                        by_peer: false,
                        reason: "the link was dropped".into(),
                    }));
                }
            }
        };
        match deadline {
            Some(deadline) => {
                tokio::time::timeout_at(deadline.into(), wait).await.unwrap_or(Err(AskError::DeadlineExceeded))
            }
            None => wait.await,
        }
    }

    /// Asks `intent` with the payload `encode` gives (called once per attempt,
    /// so the first needs no copy), re-sending as the options and the policy
    /// allow, all within `options.deadline`.
    ///
    /// An ask that was never sent is re-sent on the next session. One whose
    /// outcome is unknown (the connection was lost after sending) is re-sent
    /// only if [`AskOptions::idempotent`], with the same message id; else, or
    /// once the retries run out, it ends in [`AskError::Unknown`].
    pub async fn ask_with(
        &self,
        intent: IntentId,
        encode: impl Fn() -> Bytes,
        options: AskOptions,
    ) -> Result<LinkReply, AskError> {
        let deadline = options.deadline.map(|deadline| Instant::now() + deadline);
        let mut session = self.live_session(deadline).await?;
        let message_id = options.message_id.unwrap_or_else(|| session.next_message_id());
        let mut retries = 0;
        // Whether an attempt went out and its connection was lost: from then
        // on the ask may have run, whatever later attempts say.
        let mut sent = false;
        loop {
            let mut attempt = options.clone();
            attempt.message_id = Some(message_id);
            let outcome = match deadline {
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(AskError::DeadlineExceeded);
                    }
                    attempt.deadline = Some(left);
                    // The session bounds the wait for the reply; this bounds
                    // the rest (the ask slot, opening the stream).
                    tokio::time::timeout(left, session.ask_with(intent, encode(), attempt))
                        .await
                        .unwrap_or(Err(AskError::DeadlineExceeded))
                }
                None => session.ask_with(intent, encode(), attempt).await,
            };
            let error = match outcome {
                Ok(envelope) => {
                    let intent = session.reply_intent(envelope.intent);
                    return Ok(LinkReply { intent, envelope });
                }
                Err(error) => error,
            };
            let retry = match &error {
                AskError::NotSent(e) => e.is_lost(),
                AskError::Unknown(_) => options.idempotent,
                _ => false,
            };
            sent |= matches!(error, AskError::Unknown(_));
            if !retry || retries >= self.inner.policy.max_retries || self.inner.policy.max_attempts == 0 {
                return Err(match error {
                    AskError::NotSent(e) if sent => AskError::Unknown(format!("re-sending failed: {e}")),
                    error => error,
                });
            }
            retries += 1;
            tracing::debug!(peer = %self.inner.peer, retries, "re-sending an ask after a lost connection");
            session = match self.next_session(&session, deadline).await {
                Ok(session) => session,
                // Not "not sent": the ask went out before and may have run.
                Err(AskError::NotSent(e)) if sent => {
                    return Err(AskError::Unknown(format!("lost after sending, and reconnecting failed: {e}")));
                }
                Err(e) => return Err(e),
            };
        }
    }

    /// Tells the peer (see [`Session::tell_with`]); a tell that was not sent
    /// because the session was lost is sent on the next one, once.
    pub async fn tell_with(&self, intent: IntentId, payload: Bytes, options: TellOptions) -> Result<(), AskError> {
        let mut session = self.live_session(None).await?;
        let mut retried = false;
        loop {
            match session.tell_with(intent, payload.clone(), options.clone()).await {
                Err(AskError::NotSent(e)) if e.is_lost() && !retried && self.inner.policy.max_attempts > 0 => {
                    retried = true;
                    session = self.next_session(&session, None).await?;
                }
                outcome => return outcome,
            }
        }
    }

    /// Sends one datagram on the current session (re-established first).
    pub async fn send_datagram(&self, intent: IntentId, payload: Bytes) -> Result<(), AskError> {
        self.live_session(None).await?.send_datagram(intent, payload).await
    }

    /// Opens a stream lane on the current session (re-established first).
    /// A stream does not survive a reconnect: its halves end with an error.
    pub async fn open_stream(
        &self,
        intent: IntentId,
        payload: Bytes,
    ) -> Result<(FrameSender, FrameReceiver), StreamError> {
        let session = self.live_session(None).await.map_err(|e| StreamError::ConnectionLost(e.to_string()))?;
        session.open_stream(intent, payload).await
    }

    /// Fetches the schema of an intent the peer offers (see [`Session::describe`]).
    pub async fn describe(&self, intent: IntentId) -> Result<(String, Bytes), Refusal> {
        let session =
            self.live_session(None).await.map_err(|e| Refusal::new(ErrorCode::ControlStreamClosed, e.to_string()))?;
        session.describe(intent).await
    }

    /// Waits for the capability handshake of the current session.
    pub async fn ready(&self) -> Result<Arc<Negotiated>, SessionError> {
        let session = self.live_session(None).await.map_err(|e| match e {
            AskError::NotSent(e) => e,
            other => SessionError::ConnectionLost(other.to_string()),
        })?;
        session.ready().await
    }
}

impl WeakLink {
    /// The link, if a handle still holds it.
    pub fn upgrade(&self) -> Option<Link> {
        self.inner.upgrade().map(|inner| Link { inner })
    }

    /// The next message the peer sends, over every session of the link,
    /// without keeping the link open; `None` once the link is closed or
    /// dropped.
    pub async fn next_incoming(&self) -> Option<Incoming> {
        loop {
            let (session, mut state) = {
                let link = self.upgrade()?;
                let session: WeakSession = link.session().downgrade();
                (session, link.inner.state.subscribe())
            };
            if let Some(incoming) = session.next_incoming().await {
                return Some(incoming);
            }
            // That session has ended: wait for the next one.
            loop {
                let current = state.borrow_and_update().clone();
                match current {
                    LinkState::Closed => return None,
                    LinkState::Up { .. } => {
                        let link = self.upgrade()?;
                        if !link.session().is_closed() {
                            break;
                        }
                    }
                    _ => {}
                }
                state.changed().await.ok()?;
            }
        }
    }
}

/// Changes of a [`Link`]'s state (see [`Link::watch`]).
#[derive(Debug, Clone)]
pub struct LinkWatch {
    state: watch::Receiver<LinkState>,
}

impl LinkWatch {
    /// The state now.
    pub fn current(&self) -> LinkState {
        self.state.borrow().clone()
    }

    /// Waits for the next change and returns the new state; `None` once the
    /// link is gone. Changes in quick succession may be seen as the last one.
    pub async fn changed(&mut self) -> Option<LinkState> {
        self.state.changed().await.ok()?;
        Some(self.state.borrow_and_update().clone())
    }

    /// Waits until the link is up with a session newer than `generation`,
    /// and returns its generation; `None` once the link is closed or gone.
    pub async fn reconnected_after(&mut self, generation: u64) -> Option<u64> {
        loop {
            match &*self.state.borrow_and_update() {
                LinkState::Up { generation: now } if *now > generation => return Some(*now),
                LinkState::Closed => return None,
                _ => {}
            }
            self.state.changed().await.ok()?;
        }
    }
}

/// Re-dials while the link lives: after each loss of its session, and again
/// when an operation finds the link down.
async fn supervise(link: Weak<LinkInner>, signals: Arc<Signals>, first: WeakSession) {
    let mut session = first;
    let mut generation = 1;
    loop {
        // Wait for the session to end, or the link to go.
        let reason = {
            let Some(strong) = session.upgrade() else { return };
            tokio::select! {
                error = strong.closed() => error.to_string(),
                () = signals.stop.notified() => return,
            }
        };
        let Some(inner) = link.upgrade() else { return };
        if inner.closed.load(Ordering::SeqCst) {
            inner.state.send_replace(LinkState::Closed);
            return;
        }
        let (endpoint, addr, peer, policy) = (inner.endpoint.clone(), inner.addr, inner.peer, inner.policy);
        drop(inner);
        tracing::debug!(%peer, %addr, %reason, "session lost");
        let mut last = reason.clone();
        loop {
            // One round of attempts.
            if let Some(inner) = link.upgrade() {
                inner.rounds.fetch_add(1, Ordering::SeqCst);
            }
            let mut delay = policy.initial_delay;
            let mut connected = None;
            for attempt in 1..=policy.max_attempts {
                let Some(inner) = link.upgrade() else { return };
                if inner.closed.load(Ordering::SeqCst) {
                    return;
                }
                inner.state.send_replace(LinkState::Reconnecting { attempt, reason: reason.clone() });
                drop(inner);
                if attempt > 1 {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(policy.max_delay);
                }
                match endpoint.connect_within(addr, Some(peer), policy.connect_timeout).await {
                    Ok(new) => {
                        connected = Some(new);
                        break;
                    }
                    Err(error) => {
                        tracing::debug!(%peer, %addr, attempt, %error, "re-dial failed");
                        // Someone else answers at that address: retrying will not help.
                        let mismatch = matches!(error, ConnectError::IdentityMismatch { .. });
                        last = error.to_string();
                        if mismatch {
                            break;
                        }
                    }
                }
            }
            if let Some(new) = &connected {
                readd_intents(&link, new, policy.connect_timeout).await;
            }
            let Some(inner) = link.upgrade() else { return };
            if let Some(new) = connected {
                if inner.closed.load(Ordering::SeqCst) {
                    new.close(ErrorCode::Closed, "link closed");
                    return;
                }
                generation += 1;
                session = new.downgrade();
                *lock(&inner.current) = new;
                inner.state.send_replace(LinkState::Up { generation });
                tracing::debug!(%peer, %addr, generation, "reconnected");
                break;
            }
            if policy.max_attempts == 0 {
                last = "re-dialing is disabled".into();
            }
            inner.state.send_replace(LinkState::Down { reason: last.clone() });
            drop(inner);
            // Until an operation asks for a new round, or the link goes.
            tokio::select! {
                () = signals.redial.notified() => {}
                () = signals.stop.notified() => return,
            }
        }
    }
}

/// Adds what [`Link::add_intents`] added before to a re-established
/// session, and waits (at most `timeout`) until the peer has applied it:
/// the control stream is ordered, so once a schema request sent after the
/// update is answered, the update is in force, and asks re-sent on the
/// session find the intents negotiated.
async fn readd_intents(link: &Weak<LinkInner>, session: &Session, timeout: Duration) {
    let Some(inner) = link.upgrade() else { return };
    let added = inner.added.lock().unwrap_or_else(|e| e.into_inner()).clone();
    drop(inner);
    let Some(first) = added.first().map(|offer| offer.id) else { return };
    // Capabilities change only once the handshake is done (a dial returns
    // before the peer's answer arrives: early asks need not wait for it).
    if !matches!(tokio::time::timeout(timeout, session.ready()).await, Ok(Ok(_))) {
        return;
    }
    if let Err(refusal) = session.add_intents(added) {
        tracing::debug!(%refusal, "could not offer the intents again on the new session");
        return;
    }
    let _ = tokio::time::timeout(timeout, session.describe(first)).await;
}
