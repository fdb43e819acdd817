//! Encode and decode per message, in each protocol's own message format:
//! Tacit's envelope carrying the typed `ReserveSlot`, prost's `FlatRequest`
//! (what the gRPC case sends) and the JSON-RPC request (serde_json).
//!
//! Each routine runs in interleaved rounds; the figure is the fastest
//! round's mean time per call (the round least disturbed by the rest of the
//! machine: these are CPU-bound microseconds, and other tenants' load only
//! ever adds). Allocations per call come from the counting allocator.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use prost::Message as _;
use tacit_benches::alloc_count;
use tacit_benches::intents::ReserveSlot;
use tacit_benches::pb::FlatRequest;
use tacit_benches::reference;
use tacit_wire::{Envelope, FrameDecoder, FrameEncoder};

use crate::jsonrpc;
use crate::quic_net::reserve_slot;

/// One codec case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Codec {
    /// Tacit: encode the typed payload, then frame the envelope; decode the
    /// frame's envelope, then its typed payload.
    Tacit,
    /// Tacit's envelope alone (the payload left as bytes): what Tacit reads
    /// to route a message.
    TacitEnvelope,
    /// prost `FlatRequest`, encoded into a reused buffer, decoded in full.
    Prost,
    /// serde_json: the JSON-RPC request, encoded into a reused buffer,
    /// decoded into owned strings and byte strings.
    Json,
}

impl Codec {
    pub(crate) const ALL: [Self; 4] = [Self::Tacit, Self::TacitEnvelope, Self::Prost, Self::Json];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Tacit => "Tacit envelope + typed payload (prost)",
            Self::TacitEnvelope => "Tacit envelope only",
            Self::Prost => "gRPC message: prost FlatRequest",
            Self::Json => "JSON-RPC request: serde_json",
        }
    }
}

/// What was measured of one codec.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CodecFigures {
    /// Encoded size in bytes (Tacit: the frame, prefix included).
    pub(crate) bytes: usize,
    pub(crate) encode_ns: f64,
    pub(crate) decode_ns: f64,
    pub(crate) encode_allocs: f64,
    pub(crate) decode_allocs: f64,
}

/// The inputs, built once.
struct Inputs {
    slot: ReserveSlot,
    envelope: Envelope,
    frame: Bytes,
    flat: FlatRequest,
    flat_bytes: Bytes,
    json: jsonrpc::RpcRequest<jsonrpc::ReserveParams>,
    json_bytes: Vec<u8>,
    buf: BytesMut,
    json_buf: Vec<u8>,
    encoder: FrameEncoder,
}

impl Inputs {
    fn new() -> Self {
        let mut received = reference::framed_envelope();
        let frame = FrameDecoder::default().decode(&mut received).expect("a frame").expect("a whole frame");
        let json = jsonrpc::reference_request();
        Self {
            slot: reserve_slot(),
            envelope: reference::envelope(),
            frame,
            flat: reference::flat_request(),
            flat_bytes: Bytes::from(reference::flat_bytes()),
            json_bytes: jsonrpc::encode_request(&json),
            json,
            buf: BytesMut::with_capacity(4096),
            json_buf: Vec::with_capacity(4096),
            encoder: FrameEncoder::default(),
        }
    }

    /// One encode; returns the encoded length.
    fn encode(&mut self, codec: Codec) -> usize {
        match codec {
            Codec::Tacit | Codec::TacitEnvelope => {
                // The agent API encodes the typed request into the payload,
                // the session frames the envelope into its send buffer.
                let mut envelope = self.envelope.clone();
                if codec == Codec::Tacit {
                    envelope.payload = Bytes::from(self.slot.encode_to_vec());
                }
                self.buf.clear();
                self.encoder.encode(&envelope, &mut self.buf).expect("a small frame");
                self.buf.len()
            }
            Codec::Prost => {
                self.buf.clear();
                self.flat.encode(&mut self.buf).expect("the buffer grows");
                self.buf.len()
            }
            Codec::Json => {
                self.json_buf.clear();
                serde_json::to_writer(&mut self.json_buf, &self.json).expect("the request serializes");
                self.json_buf.len()
            }
        }
    }

    /// One decode of the encoded reference; returns something of the result.
    fn decode(&self, codec: Codec) -> usize {
        match codec {
            Codec::Tacit => {
                let envelope = Envelope::decode(self.frame.clone()).expect("a valid envelope");
                let slot: ReserveSlot = envelope.decode_payload().expect("a valid payload");
                slot.blob.len()
            }
            Codec::TacitEnvelope => {
                let envelope = Envelope::decode(self.frame.clone()).expect("a valid envelope");
                envelope.payload.len()
            }
            Codec::Prost => {
                let flat = FlatRequest::decode(&self.flat_bytes[..]).expect("a valid message");
                flat.sender.len()
            }
            Codec::Json => {
                let request = jsonrpc::decode_request(&self.json_bytes).expect("a valid request");
                request.params.blob.len()
            }
        }
    }
}

/// Measures every codec: `calls` calls of each routine in all, over
/// `rounds` interleaved rounds.
pub(crate) fn measure(calls: u64, rounds: u64) -> Vec<(Codec, CodecFigures)> {
    let mut inputs = Inputs::new();
    let mut figures: Vec<(Codec, CodecFigures)> = Codec::ALL.iter().map(|&c| (c, CodecFigures::default())).collect();
    for (codec, f) in &mut figures {
        f.bytes = inputs.encode(*codec);
        if *codec == Codec::TacitEnvelope {
            f.bytes = inputs.frame.len();
        }
        f.encode_allocs = alloc_count::measure(100, 1_000, || inputs.encode(*codec)).allocations;
        f.decode_allocs = alloc_count::measure(100, 1_000, || inputs.decode(*codec)).allocations;
    }
    let per_round = (calls / rounds).max(1);
    let mut samples: Vec<[Vec<f64>; 2]> = figures.iter().map(|_| [Vec::new(), Vec::new()]).collect();
    for _ in 0..rounds {
        for ((codec, _), samples) in figures.iter().zip(&mut samples) {
            samples[0].push(time(per_round, || inputs.encode(*codec)));
            samples[1].push(time(per_round, || inputs.decode(*codec)));
        }
    }
    for ((_, f), samples) in figures.iter_mut().zip(samples) {
        let [encode, decode] = samples;
        f.encode_ns = fastest(&encode);
        f.decode_ns = fastest(&decode);
    }
    figures
}

/// Mean nanoseconds per call of `routine` over `calls` calls.
fn time<R>(calls: u64, mut routine: impl FnMut() -> R) -> f64 {
    let start = Instant::now();
    for _ in 0..calls {
        black_box(routine());
    }
    duration_ns(start.elapsed()) / calls as f64
}

fn duration_ns(d: Duration) -> f64 {
    d.as_secs_f64() * 1e9
}

fn fastest(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::INFINITY, f64::min)
}
