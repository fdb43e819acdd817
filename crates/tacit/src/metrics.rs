//! Counters an application can read: what the agent sent and received, and
//! its errors by code. Plain relaxed atomics on the hot path; the per-code
//! map is touched only when something fails.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tacit_wire::ErrorCode;

#[derive(Debug, Default)]
pub(crate) struct Metrics {
    asks_sent: AtomicU64,
    asks_received: AtomicU64,
    replies_sent: AtomicU64,
    replies_received: AtomicU64,
    rejections_sent: AtomicU64,
    rejections_received: AtomicU64,
    tells_sent: AtomicU64,
    tells_received: AtomicU64,
    streams_opened: AtomicU64,
    streams_accepted: AtomicU64,
    retries: AtomicU64,
    reconnects: AtomicU64,
    sessions_accepted: AtomicU64,
    sessions_ended: AtomicU64,
    payload_bytes_sent: AtomicU64,
    payload_bytes_received: AtomicU64,
    dropped_unhandled: AtomicU64,
    errors: Mutex<BTreeMap<u32, u64>>,
}

/// Which counter to bump.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Counter {
    AsksSent,
    AsksReceived,
    RepliesSent,
    RepliesReceived,
    RejectionsSent,
    RejectionsReceived,
    TellsSent,
    TellsReceived,
    StreamsOpened,
    StreamsAccepted,
    Retries,
    Reconnects,
    SessionsAccepted,
    SessionsEnded,
    DroppedUnhandled,
}

impl Metrics {
    fn counter(&self, counter: Counter) -> &AtomicU64 {
        match counter {
            Counter::AsksSent => &self.asks_sent,
            Counter::AsksReceived => &self.asks_received,
            Counter::RepliesSent => &self.replies_sent,
            Counter::RepliesReceived => &self.replies_received,
            Counter::RejectionsSent => &self.rejections_sent,
            Counter::RejectionsReceived => &self.rejections_received,
            Counter::TellsSent => &self.tells_sent,
            Counter::TellsReceived => &self.tells_received,
            Counter::StreamsOpened => &self.streams_opened,
            Counter::StreamsAccepted => &self.streams_accepted,
            Counter::Retries => &self.retries,
            Counter::Reconnects => &self.reconnects,
            Counter::SessionsAccepted => &self.sessions_accepted,
            Counter::SessionsEnded => &self.sessions_ended,
            Counter::DroppedUnhandled => &self.dropped_unhandled,
        }
    }

    pub(crate) fn bump(&self, counter: Counter) {
        self.counter(counter).fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn sent(&self, counter: Counter, payload_len: usize) {
        self.bump(counter);
        self.payload_bytes_sent.fetch_add(payload_len as u64, Ordering::Relaxed);
    }

    pub(crate) fn received(&self, counter: Counter, payload_len: usize) {
        self.bump(counter);
        self.payload_bytes_received.fetch_add(payload_len as u64, Ordering::Relaxed);
    }

    pub(crate) fn error(&self, code: ErrorCode) {
        let mut errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        *errors.entry(code as u32).or_default() += 1;
    }

    pub(crate) fn snapshot(&self) -> MetricsSnapshot {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        MetricsSnapshot {
            asks_sent: get(&self.asks_sent),
            asks_received: get(&self.asks_received),
            replies_sent: get(&self.replies_sent),
            replies_received: get(&self.replies_received),
            rejections_sent: get(&self.rejections_sent),
            rejections_received: get(&self.rejections_received),
            tells_sent: get(&self.tells_sent),
            tells_received: get(&self.tells_received),
            streams_opened: get(&self.streams_opened),
            streams_accepted: get(&self.streams_accepted),
            retries: get(&self.retries),
            reconnects: get(&self.reconnects),
            sessions_accepted: get(&self.sessions_accepted),
            sessions_ended: get(&self.sessions_ended),
            payload_bytes_sent: get(&self.payload_bytes_sent),
            payload_bytes_received: get(&self.payload_bytes_received),
            dropped_unhandled: get(&self.dropped_unhandled),
            errors: errors
                .iter()
                .map(|(&code, &count)| (ErrorCode::try_from(code as i32).unwrap_or(ErrorCode::Unspecified), count))
                .collect(),
        }
    }
}

/// The agent's counters at one moment ([`Agent::metrics`](crate::Agent::metrics)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MetricsSnapshot {
    /// Asks this agent sent (each retry counts once more in `retries`, not here).
    pub asks_sent: u64,
    /// Asks peers sent this agent that reached a handler.
    pub asks_received: u64,
    /// Replies this agent's handlers sent (not counting rejections).
    pub replies_sent: u64,
    /// Replies this agent received and decoded.
    pub replies_received: u64,
    /// Asks this agent's handlers answered with a rejection (`REFUSE`,
    /// `FAILURE`, `NOT_UNDERSTOOD`), including cancellations.
    pub rejections_sent: u64,
    /// Asks peers answered with a rejection.
    pub rejections_received: u64,
    /// Tells and datagrams sent.
    pub tells_sent: u64,
    /// Tells and datagrams received that reached a handler.
    pub tells_received: u64,
    /// Stream lanes this agent opened.
    pub streams_opened: u64,
    /// Stream lanes peers opened that reached a handler.
    pub streams_accepted: u64,
    /// Asks re-sent after a lost connection.
    pub retries: u64,
    /// Sessions re-established after a lost connection.
    pub reconnects: u64,
    /// Sessions accepted from dialing peers.
    pub sessions_accepted: u64,
    /// Accepted sessions that have ended (`sessions_accepted` minus this is
    /// how many are open).
    pub sessions_ended: u64,
    /// Payload bytes sent (encoded intents, without envelopes).
    pub payload_bytes_sent: u64,
    /// Payload bytes received.
    pub payload_bytes_received: u64,
    /// Tells, datagrams and streams that arrived for an intent with no handler.
    pub dropped_unhandled: u64,
    /// Errors by code, on both sides: rejections received and sent, failed
    /// asks, undecodable messages.
    pub errors: BTreeMap<ErrorCode, u64>,
}

impl MetricsSnapshot {
    /// Errors with this code so far.
    pub fn errors_with(&self, code: ErrorCode) -> u64 {
        self.errors.get(&code).copied().unwrap_or(0)
    }
}
