//! The streams a peer opens: counted against its rate and stream credit,
//! then routed by their kind to the receiving side of their lane.

use std::sync::{Arc, Mutex};

use tacit_wire::ErrorCode;

use crate::credit::{Dir, Held, StreamCredit};
use crate::kind;
use crate::serve::{Receiving, serve_ask_stream, serve_stream_lane, serve_tell_stream};

/// Counts the streams a peer opens in one-second windows.
#[derive(Debug)]
struct StreamRate {
    limit: u32,
    window_start: tokio::time::Instant,
    opened: u32,
}

impl StreamRate {
    fn new(limit: u32) -> Self {
        Self { limit, window_start: tokio::time::Instant::now(), opened: 0 }
    }

    /// Counts one stream; false if the peer is over its rate.
    fn allow(&mut self) -> bool {
        let now = tokio::time::Instant::now();
        if now.duration_since(self.window_start) >= std::time::Duration::from_secs(1) {
            self.window_start = now;
            self.opened = 0;
        }
        self.opened = self.opened.saturating_add(1);
        self.opened <= self.limit
    }
}

/// Closes the connection of a peer that opens streams too fast.
fn check_rate(connection: &quinn::Connection, rate: &Mutex<StreamRate>) -> bool {
    if rate.lock().unwrap_or_else(|e| e.into_inner()).allow() {
        return true;
    }
    let code = quinn::VarInt::from_u32(ErrorCode::StreamRateExceeded as u32);
    connection.close(code, b"streams opened too fast");
    false
}

fn code(code: ErrorCode) -> quinn::VarInt {
    quinn::VarInt::from_u32(code as u32)
}

/// Starts accepting the streams of both directions the peer opens, at most
/// `max_stream_rate` a second and `max_concurrent_streams` of each direction.
pub(crate) fn spawn(
    connection: &quinn::Connection,
    receiving: &Arc<Receiving>,
    max_stream_rate: u32,
    max_concurrent_streams: u32,
) {
    let rate = Arc::new(Mutex::new(StreamRate::new(max_stream_rate)));
    let bi = StreamCredit::new(Dir::Bi, max_concurrent_streams);
    let uni = StreamCredit::new(Dir::Uni, max_concurrent_streams);
    tokio::spawn(accept_bi(connection.clone(), receiving.clone(), rate.clone(), bi));
    tokio::spawn(accept_uni(connection.clone(), receiving.clone(), rate, uni));
}

/// Accepts the bidirectional streams the peer opens and serves each by its
/// kind. Each is counted as open, for the stream credit, while this side holds it.
async fn accept_bi(
    connection: quinn::Connection,
    receiving: Arc<Receiving>,
    rate: Arc<Mutex<StreamRate>>,
    mut credit: StreamCredit,
) {
    while let Ok((send, recv)) = connection.accept_bi().await {
        if !check_rate(&connection, &rate) {
            return;
        }
        let held = credit.accepted_bi(&connection);
        tokio::spawn(serve_bi(receiving.clone(), send, recv, held));
    }
}

/// Accepts the unidirectional streams the peer opens.
async fn accept_uni(
    connection: quinn::Connection,
    receiving: Arc<Receiving>,
    rate: Arc<Mutex<StreamRate>>,
    mut credit: StreamCredit,
) {
    while let Ok(mut recv) = connection.accept_uni().await {
        if !check_rate(&connection, &rate) {
            return;
        }
        let held = credit.accepted_uni(&connection);
        let receiving = receiving.clone();
        tokio::spawn(async move {
            let _held = held;
            let Some((kind, first)) = kind::read(&mut recv).await else { return };
            if kind == kind::TELL {
                serve_tell_stream(receiving, recv, first).await;
            } else {
                let _ = recv.stop(code(ErrorCode::InvalidStreamKind));
            }
        });
    }
}

/// Reads a bidirectional stream's kind and hands it to its lane.
async fn serve_bi(
    receiving: Arc<Receiving>,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    held: (Held, Held),
) {
    let Some((kind, first)) = kind::read(&mut recv).await else {
        let _ = send.reset(code(ErrorCode::InvalidStreamKind));
        return;
    };
    match kind {
        kind::ASK => serve_ask_stream(receiving, send, recv, first, held).await,
        kind::STREAM => serve_stream_lane(receiving, send, recv, first, held).await,
        _ => {
            let _ = recv.stop(code(ErrorCode::InvalidStreamKind));
            let _ = send.reset(code(ErrorCode::InvalidStreamKind));
        }
    }
}
