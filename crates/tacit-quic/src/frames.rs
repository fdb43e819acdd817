//! Frames in and out of a long-lived stream, without a copy or an
//! allocation per frame.
//!
//! [`FrameSink`]: senders encode their envelopes straight into one shared
//! buffer; the stream's writer task takes all of it at once and writes it as
//! one chunk. One allocation serves many frames, and concurrent senders share
//! packets. The buffer is bounded: [`FrameSink::send`] waits while it holds
//! more than its limit. Its allocation is reused once quinn has had all the
//! frames in it acknowledged; it starts small and grows only while frames
//! are queued faster than they are acknowledged, so an idle stream holds
//! little.
//!
//! [`FrameReader`]: cuts frames out of received chunks as slices of them;
//! only a frame split over two chunks is copied.

use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::{Buf, Bytes, BytesMut};
use tacit_wire::{Envelope, FrameBody, FrameDecoder, FrameEncoder, FrameError};
use tokio::sync::Notify;

/// Bytes a stream's send buffer holds before senders that may wait do so.
pub(crate) const SEND_BUFFER: usize = 64 * 1024;
/// The size of a sink's first send buffer allocation (more if a frame needs it).
const FIRST_ALLOCATION: usize = 512;
/// The size new send buffer allocations grow to, doubling each time the
/// previous one is still in flight when it is full (more if a frame needs it).
const MAX_ALLOCATION: usize = 8 * 1024;

/// Why a frame was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PushError {
    /// The frame is larger than the limit given.
    TooLarge,
    /// The stream is closed (its writer failed or stopped).
    Closed,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<SinkState>,
    /// Set when the writer can write no more.
    closed: AtomicBool,
    /// Live [`FrameSink`] handles; the writer finishes the stream at 0.
    senders: AtomicUsize,
    /// Senders waiting for space.
    waiting: AtomicUsize,
    /// Wakes the writer: data queued, or the last sender gone.
    data: Notify,
    /// Wakes senders waiting for space.
    space: Notify,
}

#[derive(Debug)]
struct SinkState {
    /// Frames queued for the writer task.
    buffer: BytesMut,
    /// The rest of a frame a sender could not write whole: written by the
    /// writer task before `buffer`.
    leftover: Bytes,
    /// The stream while no write is in progress ("parked"): a sender that
    /// finds it here with nothing queued writes its frame itself, without
    /// waking the writer task. The writer task takes it out while it writes.
    send: Option<quinn::SendStream>,
    /// The size of the next new allocation of `buffer`.
    allocation: usize,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, SinkState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.space.notify_waiters();
        self.data.notify_one();
    }
}

/// The sending end of a stream's frame buffer. Cloning adds a sender; the
/// stream is finished once every sender is gone and the buffer written.
#[derive(Debug)]
pub(crate) struct FrameSink {
    shared: Arc<Shared>,
}

/// The writer's end: see [`write_frames`].
#[derive(Debug)]
pub(crate) struct FrameSource {
    shared: Arc<Shared>,
}

impl Clone for FrameSink {
    fn clone(&self) -> Self {
        self.shared.senders.fetch_add(1, Ordering::Relaxed);
        Self { shared: self.shared.clone() }
    }
}

impl Drop for FrameSink {
    fn drop(&mut self) {
        if self.shared.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.data.notify_one();
        }
    }
}

impl FrameSink {
    /// A sink whose buffer starts with `initial` (the stream kind).
    pub(crate) fn new(initial: &[u8]) -> (Self, FrameSource) {
        let mut buffer = BytesMut::with_capacity(FIRST_ALLOCATION);
        buffer.extend_from_slice(initial);
        let state = SinkState { buffer, leftover: Bytes::new(), send: None, allocation: FIRST_ALLOCATION };
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            closed: AtomicBool::new(false),
            senders: AtomicUsize::new(1),
            waiting: AtomicUsize::new(0),
            data: Notify::new(),
            space: Notify::new(),
        });
        (Self { shared: shared.clone() }, FrameSource { shared })
    }

    /// Whether the writer has stopped.
    pub(crate) fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }

    /// Appends `body` as a frame (at most `max_frame_len` bytes) without
    /// waiting for space; the writer task writes it.
    pub(crate) fn push(&self, body: &impl FrameBody, max_frame_len: usize) -> Result<(), PushError> {
        self.push_with(body, max_frame_len, false)
    }

    /// Like [`push`](Self::push), but writes the frame at once if nothing
    /// is queued and no write is in progress. For a sender that expects no
    /// other frame soon (one ask or answer in flight): it saves waking the
    /// writer task. Many concurrent senders batch better through it.
    pub(crate) fn push_now(&self, body: &impl FrameBody, max_frame_len: usize) -> Result<(), PushError> {
        self.push_with(body, max_frame_len, true)
    }

    fn push_with(&self, body: &impl FrameBody, max_frame_len: usize, now: bool) -> Result<(), PushError> {
        if self.is_closed() {
            return Err(PushError::Closed);
        }
        let mut state = self.shared.state();
        self.encode_locked(&mut state, body, max_frame_len, now)
    }

    fn encode_locked(
        &self,
        state: &mut SinkState,
        body: &impl FrameBody,
        max_frame_len: usize,
        now: bool,
    ) -> Result<(), PushError> {
        let len = body.body_len();
        if len > max_frame_len {
            return Err(PushError::TooLarge);
        }
        let was_empty = state.buffer.is_empty();
        let needed = len + 10;
        // Reuse the allocation if quinn is done with every frame in it;
        // otherwise allocate anew, more while the stream stays this busy.
        if state.buffer.capacity() - state.buffer.len() < needed && !state.buffer.try_reclaim(needed) {
            state.buffer.reserve(needed.max(state.allocation));
            state.allocation = (state.allocation * 2).min(MAX_ALLOCATION);
        }
        FrameEncoder::new(max_frame_len).encode(body, &mut state.buffer).map_err(|_| PushError::TooLarge)?;
        if !was_empty {
            // The writer task has been woken for what is queued already.
            return Ok(());
        }
        if now
            && state.leftover.is_empty()
            && let Some(send) = state.send.as_mut()
        {
            // Nothing queued and no write in progress: write this frame now,
            // in this task, without a hop through the writer task.
            let mut chunks = [state.buffer.split().freeze()];
            match write_now(send, &mut chunks) {
                Ok(()) if chunks[0].is_empty() => return Ok(()),
                // Partly written or blocked: the writer task goes on with it.
                Ok(()) => state.leftover = std::mem::take(&mut chunks[0]),
                Err(()) => {
                    // Nothing was written; the stream is unusable.
                    self.shared.close();
                    return Err(PushError::Closed);
                }
            }
        }
        self.shared.data.notify_one();
        Ok(())
    }

    /// Appends `envelope` as a frame, waiting while the buffer is full;
    /// with `now`, as [`push_now`](Self::push_now).
    pub(crate) async fn send(&self, envelope: &Envelope, max_frame_len: usize, now: bool) -> Result<(), PushError> {
        loop {
            let space = self.shared.space.notified();
            if self.is_closed() {
                return Err(PushError::Closed);
            }
            {
                let mut state = self.shared.state();
                if state.buffer.len() < SEND_BUFFER {
                    return self.encode_locked(&mut state, envelope, max_frame_len, now);
                }
                self.shared.waiting.fetch_add(1, Ordering::SeqCst);
            }
            space.await;
            self.shared.waiting.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Waits while the buffer is full; false once the stream is closed.
    pub(crate) async fn wait_space(&self) -> bool {
        loop {
            let space = self.shared.space.notified();
            if self.is_closed() {
                return false;
            }
            if self.shared.state().buffer.len() < SEND_BUFFER {
                return true;
            }
            self.shared.waiting.fetch_add(1, Ordering::SeqCst);
            space.await;
            self.shared.waiting.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Writes what quinn takes of `chunks` now, without waiting (the chunks are
/// advanced past what was written). `Err` if the stream cannot be written.
fn write_now(send: &mut quinn::SendStream, chunks: &mut [Bytes]) -> Result<(), ()> {
    // A no-op waker: if the stream is blocked, the writer task takes over
    // and registers its own.
    let mut cx = Context::from_waker(Waker::noop());
    let write = pin!(send.write_chunks(chunks));
    match write.poll(&mut cx) {
        Poll::Ready(Ok(_)) | Poll::Pending => Ok(()),
        Poll::Ready(Err(_)) => Err(()),
    }
}

impl Drop for FrameSource {
    fn drop(&mut self) {
        self.shared.close();
    }
}

/// Writes what the sink's senders queue to `send`, as it comes, until every
/// sender is gone; then finishes the stream and returns it (`None` if a
/// write failed). While no write is in progress the stream is parked in the
/// sink, where senders write to it directly.
pub(crate) async fn write_frames(send: quinn::SendStream, source: FrameSource) -> Option<quinn::SendStream> {
    let shared = &*source.shared;
    let mut send = Some(send);
    loop {
        let data = shared.data.notified();
        // Read the count before the buffer: whatever the last sender queued
        // before it left is then seen below.
        let done = shared.senders.load(Ordering::Acquire) == 0;
        let work = {
            let mut state = shared.state();
            if let Some(parked) = state.send.take() {
                send = Some(parked);
            }
            if state.leftover.is_empty() && state.buffer.is_empty() {
                if !done && !shared.closed.load(Ordering::Acquire) {
                    // Idle: park the stream for the senders.
                    state.send = send.take();
                }
                None
            } else {
                Some([std::mem::take(&mut state.leftover), state.buffer.split().freeze()])
            }
        };
        let Some(mut chunks) = work else {
            if done || shared.closed.load(Ordering::Acquire) {
                break;
            }
            data.await;
            continue;
        };
        if shared.waiting.load(Ordering::SeqCst) > 0 {
            shared.space.notify_waiters();
        }
        let Some(stream) = send.as_mut() else { break };
        if stream.write_all_chunks(&mut chunks).await.is_err() {
            shared.close();
            return None;
        }
    }
    let failed = shared.closed.load(Ordering::Acquire);
    shared.close();
    // The stream may still be parked (closed by a failed direct write).
    let mut send = send.or_else(|| shared.state().send.take())?;
    if failed {
        return None;
    }
    let _ = send.finish();
    Some(send)
}

/// Cuts frames out of a stream's received chunks.
#[derive(Debug)]
pub(crate) struct FrameReader {
    decoder: FrameDecoder,
    /// The rest of the last chunk.
    chunk: Bytes,
    /// A frame split over chunks, being completed.
    partial: BytesMut,
}

impl FrameReader {
    /// A reader of frames up to `max_frame_len` bytes, starting with what
    /// was read already (after the stream kind).
    pub(crate) fn new(max_frame_len: usize, initial: BytesMut) -> Self {
        Self { decoder: FrameDecoder::new(max_frame_len), chunk: Bytes::new(), partial: initial }
    }

    /// Adds a received chunk; call when [`next`](Self::next) gave `None`.
    pub(crate) fn push(&mut self, chunk: Bytes) {
        debug_assert!(self.chunk.is_empty());
        self.chunk = chunk;
    }

    /// The next whole frame, or `None` until another chunk is pushed. An
    /// error is final for the stream.
    pub(crate) fn next(&mut self) -> Result<Option<Bytes>, FrameError> {
        if !self.partial.is_empty() {
            // Complete the split frame with just the bytes it needs.
            loop {
                let needed = self.decoder.bytes_needed(&self.partial)?;
                if needed == 0 {
                    break;
                }
                if self.chunk.is_empty() {
                    return Ok(None);
                }
                let take = needed.min(self.chunk.len());
                self.partial.extend_from_slice(&self.chunk[..take]);
                self.chunk.advance(take);
            }
            return self.decoder.decode(&mut self.partial);
        }
        match self.decoder.decode_bytes(&mut self.chunk)? {
            Some(frame) => Ok(Some(frame)),
            None => {
                // An incomplete frame: keep its start.
                if !self.chunk.is_empty() {
                    self.partial.extend_from_slice(&self.chunk);
                    self.chunk.clear();
                }
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_reassembles_frames_split_anywhere() {
        let bodies: Vec<Vec<u8>> = (0..20).map(|i| vec![i as u8; i * 37]).collect();
        let mut wire = BytesMut::new();
        for body in &bodies {
            tacit_wire::put_prefix(body.len() as u64, &mut wire);
            wire.extend_from_slice(body);
        }
        let wire = wire.freeze();
        for size in [1, 2, 3, 7, 100, 1000, wire.len()] {
            let mut reader = FrameReader::new(1 << 20, BytesMut::new());
            let mut got = Vec::new();
            for piece in wire.chunks(size) {
                reader.push(Bytes::copy_from_slice(piece));
                while let Some(frame) = reader.next().unwrap() {
                    got.push(frame.to_vec());
                }
            }
            assert_eq!(got, bodies, "chunks of {size}");
        }
    }

    #[test]
    fn sink_buffers_stay_small_unless_frames_stay_in_flight() {
        let (sink, _source) = FrameSink::new(&[1]);
        let envelope =
            Envelope::new(tacit_wire::IntentRef::Alias(1), tacit_wire::Act::Request, 1, Bytes::from(vec![7; 200]));
        // Each frame taken by the writer and acknowledged (dropped) before the
        // next: one small allocation serves them all.
        for _ in 0..1000 {
            sink.push(&envelope, 1 << 20).unwrap();
            drop(sink.shared.state().buffer.split().freeze());
        }
        let state = sink.shared.state();
        assert!(state.buffer.capacity() <= FIRST_ALLOCATION, "{}", state.buffer.capacity());
        assert_eq!(state.allocation, FIRST_ALLOCATION);
        drop(state);
        // Frames kept in flight: new allocations, growing to the largest size.
        let mut in_flight = Vec::new();
        for _ in 0..1000 {
            sink.push(&envelope, 1 << 20).unwrap();
            in_flight.push(sink.shared.state().buffer.split().freeze());
        }
        assert_eq!(sink.shared.state().allocation, MAX_ALLOCATION);
    }

    #[test]
    fn reader_refuses_oversized_frames() {
        let mut reader = FrameReader::new(10, BytesMut::new());
        reader.push(Bytes::from_static(&[11, 0, 0]));
        assert!(reader.next().is_err());
    }
}
