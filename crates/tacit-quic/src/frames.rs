//! The one frame writer and the one frame reader of every stream: the ask
//! stream and its replies, the tell stream, stream lanes and the control
//! stream all send through a [`FrameSink`] and receive through a
//! [`FrameReader`].
//!
//! [`FrameSink`]: senders encode each envelope's header (frame length and
//! every field up to the payload's length) into one shared buffer and queue
//! a large payload beside it as a chunk of its own, so it is not copied on
//! its way to QUIC (quinn's `write_chunks` takes many [`Bytes`]); small
//! frames are encoded whole into the shared buffer (see [`OWN_CHUNK`]). The
//! stream's writer task takes everything queued at once, so concurrent
//! senders share packets; a sender that finds nothing queued and no write in
//! progress writes its frame itself, without waking the task. The queue is
//! bounded: [`FrameSink::send`] waits while it holds more than
//! [`SEND_BUFFER`] bytes. The header buffer's allocation is reused once quinn
//! has had every header in it acknowledged; it starts small and grows only
//! while frames are queued faster than they are acknowledged, so an idle
//! stream holds little.
//!
//! [`FrameReader`]: cuts frames out of received chunks as slices of them;
//! only a frame split over two chunks is copied.

use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker};

use bytes::{Buf, Bytes, BytesMut};
use tacit_wire::{Envelope, ErrorCode, FrameDecoder, FrameEncoder, FrameError};
use tokio::sync::Notify;

/// Bytes a stream's queue holds before senders that may wait do so.
pub(crate) const SEND_BUFFER: usize = 64 * 1024;
/// The size of a sink's first header buffer allocation.
const FIRST_ALLOCATION: usize = 512;
/// The size new header buffer allocations grow to, doubling each time the
/// previous one is still in flight when it is full.
const MAX_ALLOCATION: usize = 8 * 1024;
/// Payloads at least this long are queued as chunks of their own instead
/// of being copied behind their header. Smaller ones are copied: quinn-proto
/// (0.11) keeps a stream's unacknowledged data as a list of the chunks it
/// was given and scans that list from the start for every piece of a packet
/// it builds, so many small chunks in flight cost more than copying them
/// (measured: 64 pipelined asks of 258 bytes took 18.3 M instructions per
/// 1,024 with every payload its own chunk, against 12.7 M copied).
pub(crate) const OWN_CHUNK: usize = 4 * 1024;
/// The most a stream is read at once.
const READ_CHUNK: usize = 64 * 1024;

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
    /// Why the stream could not be written, once it could not.
    failure: OnceLock<quinn::WriteError>,
    /// Live [`FrameSink`] handles; the writer finishes the stream at 0.
    senders: AtomicUsize,
    /// Senders waiting for space.
    waiting: AtomicUsize,
    /// Wakes the writer: data queued, a reset asked for, or the last sender gone.
    data: Notify,
    /// Wakes senders waiting for space.
    space: Notify,
}

#[derive(Debug)]
struct SinkState {
    /// What is queued for the writer, in order: whole chunks (headers split
    /// off `head`, payloads, pre-encoded frames), then what is in `head`.
    chunks: Vec<Bytes>,
    /// Headers being gathered behind `chunks`.
    head: BytesMut,
    /// Bytes queued in `chunks` and `head`.
    queued: usize,
    /// The stream while no write is in progress ("parked"): a sender that
    /// finds it here with nothing queued writes its frame itself, without
    /// waking the writer task. The writer task takes it out while it writes.
    send: Option<quinn::SendStream>,
    /// The size of the next new allocation of `head`.
    allocation: usize,
    /// A reset asked for: the writer resets the stream with this code
    /// instead of writing on.
    reset: Option<ErrorCode>,
}

impl SinkState {
    /// Everything queued, in order, leaving the queue empty.
    fn take_all(&mut self, into: &mut Vec<Bytes>) {
        into.append(&mut self.chunks);
        if !self.head.is_empty() {
            into.push(self.head.split().freeze());
        }
        self.queued = 0;
    }

    /// Puts back what a write left over (at the front of the queue).
    fn put_back(&mut self, rest: &mut Vec<Bytes>) {
        rest.retain(|chunk| !chunk.is_empty());
        self.queued += rest.iter().map(Bytes::len).sum::<usize>();
        rest.append(&mut self.chunks);
        std::mem::swap(rest, &mut self.chunks);
    }

    /// Room in `head` for `needed` more bytes: the allocation is reused if
    /// quinn is done with every header in it, otherwise a new one is made,
    /// larger while the stream stays this busy.
    fn reserve_head(&mut self, needed: usize) {
        if self.head.capacity() - self.head.len() < needed && !self.head.try_reclaim(needed) {
            self.head.reserve(needed.max(self.allocation));
            self.allocation = (self.allocation * 2).min(MAX_ALLOCATION);
        }
    }
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

    fn fail(&self, error: quinn::WriteError) {
        let _ = self.failure.set(error);
        self.close();
    }

    /// See [`FrameSink::reset`].
    fn reset(&self, code: ErrorCode) {
        let mut state = self.state();
        if self.closed.load(Ordering::Acquire) && state.send.is_none() {
            // Finished, failed or reset already: nothing to abandon.
            return;
        }
        state.reset = Some(code);
        state.chunks.clear();
        state.head.clear();
        state.queued = 0;
        if let Some(mut send) = state.send.take() {
            let _ = send.reset(quinn::VarInt::from_u32(code as u32));
        }
        drop(state);
        self.close();
    }
}

/// The sending end of a stream's frame queue. Cloning adds a sender; the
/// stream is finished once every sender is gone and the queue written.
#[derive(Debug)]
pub(crate) struct FrameSink {
    shared: Arc<Shared>,
}

/// Sees a sink's failure without keeping its stream open.
#[derive(Debug)]
pub(crate) struct SinkObserver {
    shared: Arc<Shared>,
}

impl SinkObserver {
    /// Why the stream could not be written, if it could not.
    pub(crate) fn failure(&self) -> Option<&quinn::WriteError> {
        self.shared.failure.get()
    }

    /// Resets the stream with `code`, like [`FrameSink::reset`], unless it
    /// has ended already: for the receiving half of a stream that signals a
    /// stream error on the sending half (`[streams.error]`).
    pub(crate) fn reset(&self, code: ErrorCode) {
        self.shared.reset(code);
    }
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
    /// A sink for `send`, whose stream starts with `initial` (its kind, or
    /// nothing), and the end to hand to [`write_frames`]. The stream starts
    /// parked in the sink: `initial` and the first frame are written at once,
    /// in the caller's task, without waiting for the writer task to run.
    pub(crate) fn open(mut send: quinn::SendStream, initial: Bytes) -> (Self, FrameSource) {
        let (sink, source) = Self::new(Bytes::new());
        {
            let mut state = sink.shared.state();
            let mut chunks = vec![initial];
            if write_now(&mut send, &mut chunks).is_ok() {
                state.put_back(&mut chunks);
            } else {
                // Written by the writer task, which then meets the error.
                state.chunks = chunks;
            }
            state.send = Some(send);
        }
        if sink.shared.state().queued > 0 {
            sink.shared.data.notify_one();
        }
        (sink, source)
    }

    /// A sink whose stream starts with `initial`, without a stream yet.
    pub(crate) fn new(initial: Bytes) -> (Self, FrameSource) {
        let queued = initial.len();
        let chunks = if initial.is_empty() { Vec::new() } else { vec![initial] };
        let state = SinkState {
            chunks,
            head: BytesMut::with_capacity(FIRST_ALLOCATION),
            queued,
            send: None,
            allocation: FIRST_ALLOCATION,
            reset: None,
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            closed: AtomicBool::new(false),
            failure: OnceLock::new(),
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

    /// Why the stream could not be written, if it could not.
    pub(crate) fn failure(&self) -> Option<&quinn::WriteError> {
        self.shared.failure.get()
    }

    /// A handle that sees the stream's failure without counting as a sender.
    pub(crate) fn observer(&self) -> SinkObserver {
        SinkObserver { shared: self.shared.clone() }
    }

    /// Queues `envelope` as a frame (at most `max_frame_len` bytes) without
    /// waiting for space; the writer task writes it.
    pub(crate) fn push(&self, envelope: &Envelope, max_frame_len: usize) -> Result<(), PushError> {
        self.push_with(envelope, max_frame_len, false)
    }

    /// Like [`push`](Self::push), but writes the frame at once if nothing
    /// is queued and no write is in progress. For a sender that expects no
    /// other frame soon (one ask or answer in flight): it saves waking the
    /// writer task. Many concurrent senders batch better through it.
    pub(crate) fn push_now(&self, envelope: &Envelope, max_frame_len: usize) -> Result<(), PushError> {
        self.push_with(envelope, max_frame_len, true)
    }

    /// Queues bytes that are already framed (the handshake machine's frames,
    /// a stream lane's end marker), as [`push_now`](Self::push_now) does.
    pub(crate) fn push_encoded(&self, frame: Bytes) -> Result<(), PushError> {
        if self.is_closed() {
            return Err(PushError::Closed);
        }
        let mut state = self.shared.state();
        let was_empty = state.queued == 0;
        state.queued += frame.len();
        state.chunks.push(frame);
        self.queued_locked(&mut state, was_empty, true)
    }

    fn push_with(&self, envelope: &Envelope, max_frame_len: usize, now: bool) -> Result<(), PushError> {
        if self.is_closed() {
            return Err(PushError::Closed);
        }
        let mut state = self.shared.state();
        self.encode_locked(&mut state, envelope, max_frame_len, now)
    }

    fn encode_locked(
        &self,
        state: &mut SinkState,
        envelope: &Envelope,
        max_frame_len: usize,
        now: bool,
    ) -> Result<(), PushError> {
        let len = envelope.encoded_len();
        if len > max_frame_len {
            return Err(PushError::TooLarge);
        }
        let was_empty = state.queued == 0;
        let payload = &envelope.payload;
        let encoder = FrameEncoder::new(max_frame_len);
        let before = state.head.len();
        let own_chunk = payload.len() >= OWN_CHUNK;
        if own_chunk {
            // The payload goes as a chunk of its own, not copied.
            state.reserve_head(len - payload.len() + 10);
            encoder.encode_head(envelope, &mut state.head).map_err(|_| PushError::TooLarge)?;
            let head = state.head.split().freeze();
            state.chunks.push(head);
            state.chunks.push(payload.clone());
        } else {
            state.reserve_head(len + 10);
            encoder.encode(envelope, &mut state.head).map_err(|_| PushError::TooLarge)?;
        }
        state.queued += state.head.len() - before + if own_chunk { payload.len() } else { 0 };
        self.queued_locked(state, was_empty, now)
    }

    /// After a frame was queued: write at once (`now`, into an idle parked
    /// stream), or wake the writer task if the queue was empty.
    fn queued_locked(&self, state: &mut SinkState, was_empty: bool, now: bool) -> Result<(), PushError> {
        if !was_empty {
            // The writer task has been woken for what is queued already.
            return Ok(());
        }
        // The queue held nothing before this frame: at most its header and
        // payload are queued now, plus what is still gathering in `head`.
        if now
            && state.reset.is_none()
            && state.chunks.len() <= 2
            && let Some(mut send) = state.send.take()
        {
            // Nothing queued and no write in progress: write this frame
            // now, in this task, without a hop through the writer task (and
            // without an allocation: the chunks are on the stack).
            let mut chunks: [Bytes; 3] = Default::default();
            let mut count = 0;
            for chunk in state.chunks.drain(..) {
                chunks[count] = chunk;
                count += 1;
            }
            if !state.head.is_empty() {
                chunks[count] = state.head.split().freeze();
                count += 1;
            }
            state.queued = 0;
            let written = write_now(&mut send, &mut chunks[..count]);
            state.send = Some(send);
            match written {
                Ok(()) if chunks.iter().all(Bytes::is_empty) => return Ok(()),
                // Partly written or blocked: the writer task goes on with it.
                Ok(()) => state.put_back(&mut chunks.into_iter().collect()),
                Err(e) => {
                    // The stream is unusable.
                    self.shared.fail(e);
                    return Err(PushError::Closed);
                }
            }
        }
        self.shared.data.notify_one();
        Ok(())
    }

    /// Queues `envelope` as a frame, waiting while the queue is full; with
    /// `now`, as [`push_now`](Self::push_now).
    pub(crate) async fn send(&self, envelope: &Envelope, max_frame_len: usize, now: bool) -> Result<(), PushError> {
        loop {
            let space = self.shared.space.notified();
            if self.is_closed() {
                return Err(PushError::Closed);
            }
            {
                let mut state = self.shared.state();
                if state.queued < SEND_BUFFER {
                    return self.encode_locked(&mut state, envelope, max_frame_len, now);
                }
                self.shared.waiting.fetch_add(1, Ordering::SeqCst);
            }
            space.await;
            self.shared.waiting.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Waits while the queue is full; false once the stream is closed.
    pub(crate) async fn wait_space(&self) -> bool {
        loop {
            let space = self.shared.space.notified();
            if self.is_closed() {
                return false;
            }
            if self.shared.state().queued < SEND_BUFFER {
                return true;
            }
            self.shared.waiting.fetch_add(1, Ordering::SeqCst);
            space.await;
            self.shared.waiting.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Abandons the stream: resets it with `code` (now if it is idle, else
    /// once the write in progress returns) and drops whatever is queued.
    pub(crate) fn reset(&self, code: ErrorCode) {
        self.shared.reset(code);
    }
}

/// Writes what quinn takes of `chunks` now, without waiting (written chunks
/// are emptied, a partly written one advanced).
fn write_now(send: &mut quinn::SendStream, chunks: &mut [Bytes]) -> Result<(), quinn::WriteError> {
    // A no-op waker: if the stream is blocked, the writer task takes over
    // and registers its own.
    let mut cx = Context::from_waker(Waker::noop());
    let write = pin!(send.write_chunks(chunks));
    match write.poll(&mut cx) {
        Poll::Ready(Ok(_)) | Poll::Pending => Ok(()),
        Poll::Ready(Err(e)) => Err(e),
    }
}

impl Drop for FrameSource {
    fn drop(&mut self) {
        self.shared.close();
    }
}

/// Writes what the sink's senders queue to `send`, as it comes, until every
/// sender is gone; then finishes the stream and returns it (`None` if a
/// write failed or the stream was reset). While no write is in progress the
/// stream is parked in the sink, where senders write to it directly.
pub(crate) async fn write_frames(source: FrameSource) -> Option<quinn::SendStream> {
    let shared = &*source.shared;
    let mut send = None;
    let mut chunks = Vec::new();
    loop {
        let data = shared.data.notified();
        // Read the count before the queue: whatever the last sender queued
        // before it left is then seen below.
        let done = shared.senders.load(Ordering::Acquire) == 0;
        {
            let mut state = shared.state();
            if let Some(parked) = state.send.take() {
                send = Some(parked);
            }
            if let Some(code) = state.reset {
                if let Some(mut send) = send.take() {
                    let _ = send.reset(quinn::VarInt::from_u32(code as u32));
                }
                drop(state);
                shared.close();
                return None;
            }
            if state.queued == 0 && state.chunks.is_empty() {
                if !done && !shared.closed.load(Ordering::Acquire) {
                    // Idle: park the stream for the senders.
                    state.send = send.take();
                }
            } else {
                state.take_all(&mut chunks);
            }
        }
        if chunks.is_empty() {
            if done || shared.closed.load(Ordering::Acquire) {
                break;
            }
            data.await;
            continue;
        }
        if shared.waiting.load(Ordering::SeqCst) > 0 {
            shared.space.notify_waiters();
        }
        let Some(stream) = send.as_mut() else { break };
        if let Err(e) = stream.write_all_chunks(&mut chunks).await {
            shared.fail(e);
            return None;
        }
        chunks.clear();
    }
    let failed = shared.failure.get().is_some() || shared.state().reset.is_some();
    shared.close();
    // The stream may still be parked (closed by a failed direct write).
    let mut send = send.or_else(|| shared.state().send.take())?;
    if failed {
        return None;
    }
    let _ = send.finish();
    Some(send)
}

/// How reading frames off a stream failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ReadFailure {
    /// A frame was malformed or too large; the stream was stopped with its code.
    Frame(FrameError),
    /// The stream ended inside a frame.
    Truncated,
    /// The peer reset the stream with this code.
    Reset(u64),
    /// The connection was lost (or the stream otherwise unusable).
    Lost(String),
}

impl std::fmt::Display for ReadFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Frame(e) => e.fmt(f),
            Self::Truncated => f.write_str("the stream ended inside a frame"),
            Self::Reset(code) => write!(f, "the peer reset the stream with {}", crate::error::code_name(*code)),
            Self::Lost(reason) => f.write_str(reason),
        }
    }
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

    /// A reader of frames up to `max_frame_len` bytes whose stream went on
    /// with `first` after its kind (not copied).
    pub(crate) fn starting_with(max_frame_len: usize, first: Bytes) -> Self {
        Self { decoder: FrameDecoder::new(max_frame_len), chunk: first, partial: BytesMut::new() }
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

    /// Reads the next chunk of `recv` into the reader (after
    /// [`next`](Self::next) gave `None`): `Ok(false)` at the stream's end
    /// between frames. Cancel-safe.
    pub(crate) async fn fill(&mut self, recv: &mut quinn::RecvStream) -> Result<bool, ReadFailure> {
        match recv.read_chunk(READ_CHUNK, true).await {
            Ok(Some(chunk)) => {
                self.push(chunk.bytes);
                Ok(true)
            }
            Ok(None) if self.partial.is_empty() && self.chunk.is_empty() => Ok(false),
            Ok(None) => Err(ReadFailure::Truncated),
            Err(quinn::ReadError::Reset(code)) => Err(ReadFailure::Reset(code.into_inner())),
            Err(e) => Err(ReadFailure::Lost(e.to_string())),
        }
    }

    /// The next frame read off `recv`; `None` at the stream's end between
    /// frames. A malformed frame stops the stream with its code.
    pub(crate) async fn read(&mut self, recv: &mut quinn::RecvStream) -> Result<Option<Bytes>, ReadFailure> {
        loop {
            match self.next() {
                Ok(Some(frame)) => return Ok(Some(frame)),
                Ok(None) => {}
                Err(e) => {
                    let _ = recv.stop(quinn::VarInt::from_u32(e.code() as u32));
                    return Err(ReadFailure::Frame(e));
                }
            }
            if !self.fill(recv).await? {
                return Ok(None);
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
    fn frames_in_one_chunk_are_slices_of_it() {
        let mut wire = BytesMut::new();
        for body in [&b"one"[..], b"two"] {
            tacit_wire::put_prefix(body.len() as u64, &mut wire);
            wire.extend_from_slice(body);
        }
        let wire = wire.freeze();
        let range = wire.as_ptr_range();
        let mut reader = FrameReader::starting_with(1 << 20, wire.clone());
        while let Some(frame) = reader.next().unwrap() {
            assert!(range.contains(&frame.as_ptr()), "a frame was copied");
        }
    }

    /// Everything queued in `sink`, as the writer would take it.
    fn drain(sink: &FrameSink) -> Vec<Bytes> {
        let mut chunks = Vec::new();
        sink.shared.state().take_all(&mut chunks);
        chunks
    }

    #[test]
    fn large_payloads_are_queued_as_their_own_chunks() {
        let (sink, _source) = FrameSink::new(Bytes::from_static(&[1]));
        let payload = Bytes::from(vec![7; OWN_CHUNK]);
        let mut envelope = Envelope::new(tacit_wire::IntentRef::Alias(1), tacit_wire::Act::Request, 1, payload.clone());
        envelope.in_reply_to = 5;
        sink.push(&envelope, 1 << 20).unwrap();
        sink.push(&Envelope::new(tacit_wire::IntentRef::Alias(2), tacit_wire::Act::Inform, 2, Bytes::new()), 1 << 20)
            .unwrap();
        let chunks = drain(&sink);
        // The kind, the first header, the payload (the caller's memory), the second frame.
        assert_eq!(chunks.len(), 4);
        assert_eq!(chunks[2].as_ptr(), payload.as_ptr());
        let wire: Vec<u8> = chunks.iter().flat_map(|c| c.to_vec()).collect();
        let mut reader = FrameReader::new(1 << 20, BytesMut::new());
        reader.push(Bytes::from(wire[1..].to_vec()));
        assert_eq!(Envelope::decode(reader.next().unwrap().unwrap()).unwrap(), envelope);
        assert_eq!(Envelope::decode(reader.next().unwrap().unwrap()).unwrap().message_id, 2);
        assert_eq!(sink.shared.state().queued, 0);
    }

    #[test]
    fn sink_buffers_stay_small_unless_frames_stay_in_flight() {
        let (sink, _source) = FrameSink::new(Bytes::from_static(&[1]));
        let envelope =
            Envelope::new(tacit_wire::IntentRef::Alias(1), tacit_wire::Act::Request, 1, Bytes::from(vec![7; 200]));
        // Each frame taken by the writer and acknowledged (dropped) before the
        // next: one small allocation serves them all.
        for _ in 0..1000 {
            sink.push(&envelope, 1 << 20).unwrap();
            drop(drain(&sink));
        }
        let state = sink.shared.state();
        assert!(state.head.capacity() <= FIRST_ALLOCATION, "{}", state.head.capacity());
        assert_eq!(state.allocation, FIRST_ALLOCATION);
        drop(state);
        // Frames kept in flight: new allocations, growing to the largest size.
        let mut in_flight = Vec::new();
        for _ in 0..1000 {
            sink.push(&envelope, 1 << 20).unwrap();
            in_flight.push(drain(&sink));
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
