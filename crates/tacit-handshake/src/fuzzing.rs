//! Entry point for the `handshake` fuzz target in `fuzz/fuzz_targets/`, kept
//! here so that a normal `cargo test` replays the committed corpus through
//! exactly the same code. Not part of the public API.
//!
//! The input is a little program driving a dialer and an acceptor
//! [`Handshake`] joined by two simulated one-way wires, with simulated time.
//! Reading past the end of the input gives zeros.
//!
//! - Two configurations, the dialer's then the acceptor's, each:
//!   - `flags`: bit 0 `require_common_intents`; bit 1 a small
//!     `max_control_frame_len` (the `frame` byte below × 8); bit 2 no
//!     deadline; bits 3–4 `max_early_work` (0–3); bits 5–6
//!     `max_schema_requests` (1–4); bit 7 versions reach `u32::MAX`.
//!   - `versions`: lowest 1–4 (bits 0–1), span 0–3 (bits 2–3).
//!   - `timeout`: (byte + 1) × 50 ms.
//!   - `frame`: only if flags bit 1 is set.
//!   - `limits`: `max_frame_len` and `max_concurrent_asks` from the low and
//!     high nibbles; also the feature bits.
//!   - `count` (mod 9) intent bytes: bits 0–3 pick one of 16 ids (0 is
//!     `fuzz.v1.Ping`, whose real schema the agent can serve), bit 4 handles,
//!     bit 5 emits, bit 6 serve the Ping schema (a mismatch for any other
//!     id), bit 7 a 128-byte name. Repeated ids are skipped.
//! - Then operations until the input ends: a byte whose bit 0 picks the side
//!   acted on or delivered to (0 dialer, 1 acceptor) and bits 1–4 the kind:
//!   - 0: raw bytes, 1-byte length then the bytes;
//!   - 1: raw bytes, 2-byte little-endian length then the bytes;
//!   - 2, 3: the next frame the peer sent, whole;
//!   - 4: the next frame split at a point (1 byte);
//!   - 5: every queued frame from the peer in one call;
//!   - 6: the next frame one byte at a time;
//!   - 7: the next frame, left queued so it arrives again (duplicate);
//!   - 8: the next frame dropped;
//!   - 9: the next frame with one byte flipped (index and mask: 2 bytes);
//!   - 10: a prefix of the next frame (1 byte), the rest dropped;
//!   - 11: time advances (byte × 50 ms); `handle_timeout` on the side, or on
//!     both if bit 7 of the operation is set;
//!   - 12: `admit`;
//!   - 13: `add_intents` with up to 3 intents (count byte, then intent bytes);
//!   - 14: `request_schema` for one of 32 ids (the low 5 bits of a byte);
//!   - 15: `handle_stream_end`.
//!
//! After every operation both sides' transmits are moved onto the wires and
//! their events checked. At the end, if no bytes were forged, dropped or
//! duplicated, everything in flight is delivered and two established sides
//! must hold mirror-image results.
//!
//! Checked throughout: nothing panics; a failed side stays failed, sends
//! nothing more and has no more events; at most one `Established` per side,
//! before any `Updated` or schema event; state queries agree with the events;
//! a deadline is never left in the past; every transmit is one well-formed
//! frame; per operation, transmits and events are bounded; fetched schemas
//! hash to the id asked for; two sides established from genuine handshake
//! messages have mirror-image results.

use std::collections::VecDeque;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use prost::encoding::{WireType, encode_key, encode_varint};
use tacit_wire::{ErrorCode, FrameDecoder, IntentId};

use crate::{Admission, AgentCard, Capabilities, Event, Handshake, HandshakeConfig, IntentOffer, Limits, Negotiated};

/// Most frames one side may queue in one operation.
const MAX_FRAMES_PER_OP: usize = 16;
/// Most bytes one side may queue in one operation.
const MAX_BYTES_PER_OP: usize = 64 * 1024;
/// Most events one side may queue in one operation (an empty capability
/// update of 3 bytes is one event, so this grows with the input).
const MAX_EVENTS_PER_OP: usize = 10_000;
/// Most frames waiting on one wire.
const MAX_IN_FLIGHT: usize = 10_000;

const DIALER: usize = 0;
const ACCEPTOR: usize = 1;
const NAMES: [&str; 2] = ["dialer", "acceptor"];

/// The name of the message whose schema the agents can serve.
const PING: &str = "fuzz.v1.Ping";

/// What one run reached, for seeding and for tallies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Each side (dialer, acceptor) was established at some point.
    pub established: [bool; 2],
    /// Why each side failed, if it did.
    pub failures: [Option<ErrorCode>; 2],
    /// `Updated` events per side.
    pub updates: [usize; 2],
    /// `SchemaReceived` events per side.
    pub schemas_received: [usize; 2],
    /// `SchemaFailed` events per side.
    pub schemas_failed: [usize; 2],
    /// Both `Established` results came from genuine messages and were
    /// compared.
    pub mirrored: bool,
    /// Both sides' final results were compared after delivering everything.
    pub final_mirrored: bool,
    /// Operations run.
    pub ops: usize,
}

/// Runs `data` as a handshake program (see the module docs); panics if an
/// invariant breaks.
pub fn handshake(data: &[u8]) {
    run(data);
}

/// Like [`handshake`], returning what the run reached.
pub fn run(data: &[u8]) -> Outcome {
    let mut input = Input { data };
    let (Some(dialer), Some(acceptor)) = (config(&mut input, NAMES[DIALER]), config(&mut input, NAMES[ACCEPTOR]))
    else {
        return Outcome::default();
    };
    let mut harness = Harness::new(dialer, acceptor);
    while !input.data.is_empty() {
        harness.op(&mut input);
        harness.settle();
        harness.outcome.ops += 1;
    }
    harness.finish();
    harness.outcome
}

/// The program being read; zeros past its end.
struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&byte, rest)) => {
                self.data = rest;
                byte
            }
            None => 0,
        }
    }

    fn bytes(&mut self, len: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(len.min(self.data.len()));
        self.data = rest;
        head
    }
}

/// The Ping schema as an encoded `FileDescriptorSet`, and its IntentId.
fn ping() -> &'static (IntentId, Bytes) {
    static PING_SCHEMA: OnceLock<(IntentId, Bytes)> = OnceLock::new();
    PING_SCHEMA.get_or_init(|| {
        let set = ping_descriptor_set();
        let id = IntentId::of_message_in_encoded_set(&set, PING).unwrap_or(IntentId::from_bytes([0; 32]));
        (id, Bytes::from(set))
    })
}

/// `syntax = "proto3"; package fuzz.v1; message Ping { uint64 nonce = 1; }`,
/// encoded by hand (prost-types is not a dependency of this crate).
fn ping_descriptor_set() -> Vec<u8> {
    fn bytes_field(tag: u32, value: &[u8], out: &mut Vec<u8>) {
        encode_key(tag, WireType::LengthDelimited, out);
        encode_varint(value.len() as u64, out);
        out.extend_from_slice(value);
    }
    fn varint_field(tag: u32, value: u64, out: &mut Vec<u8>) {
        encode_key(tag, WireType::Varint, out);
        encode_varint(value, out);
    }
    // FieldDescriptorProto: name, number, label (OPTIONAL), type (UINT64).
    let mut field = Vec::new();
    bytes_field(1, b"nonce", &mut field);
    varint_field(3, 1, &mut field);
    varint_field(4, 1, &mut field);
    varint_field(5, 4, &mut field);
    // DescriptorProto: name, field.
    let mut message = Vec::new();
    bytes_field(1, b"Ping", &mut message);
    bytes_field(2, &field, &mut message);
    // FileDescriptorProto: name, package, message_type, syntax.
    let mut file = Vec::new();
    bytes_field(1, b"fuzz/v1/ping.proto", &mut file);
    bytes_field(2, b"fuzz.v1", &mut file);
    bytes_field(4, &message, &mut file);
    bytes_field(12, b"proto3", &mut file);
    // FileDescriptorSet: file.
    let mut set = Vec::new();
    bytes_field(1, &file, &mut set);
    set
}

/// One of 32 ids: 0 is Ping's real IntentId, the others are made up.
fn pool_id(index: u8) -> IntentId {
    match index & 0x1f {
        0 => ping().0,
        n => IntentId::from_bytes([n; 32]),
    }
}

/// An intent offer from one byte (see the module docs).
fn offer(byte: u8) -> IntentOffer {
    let index = byte & 0x0f;
    let name = if byte & 0x80 != 0 {
        format!("fuzz.v1.{index:x<120}")
    } else if index == 0 {
        PING.to_owned()
    } else {
        format!("fuzz.v1.I{index}")
    };
    let mut offer = IntentOffer::handles(pool_id(index), name);
    offer.handles = byte & 0x10 != 0;
    offer.emits = byte & 0x20 != 0;
    if byte & 0x40 != 0 {
        offer = offer.with_descriptor_set(ping().1.clone());
    }
    offer
}

/// A configuration from the input (see the module docs).
fn config(input: &mut Input<'_>, name: &str) -> Option<Arc<HandshakeConfig>> {
    let flags = input.byte();
    let versions = input.byte();
    let timeout = input.byte();
    let frame_len = (flags & 0x02 != 0).then(|| usize::from(input.byte()) * 8);
    let limits = input.byte();
    let count = input.byte() % 9;
    let mut capabilities = Capabilities::default();
    for _ in 0..count {
        let offer = offer(input.byte());
        if !capabilities.intents.iter().any(|o| o.id == offer.id) {
            capabilities.intents.push(offer);
        }
    }
    let lowest = 1 + u32::from(versions & 3);
    let highest = if flags & 0x80 != 0 { u32::MAX } else { lowest + u32::from((versions >> 2) & 3) };
    capabilities.versions = lowest..=highest;
    capabilities.limits = *Limits::default()
        .max_frame_len(1 + u32::from(limits & 0x0f) * 4096)
        .max_concurrent_asks(1 + u32::from(limits >> 4));
    capabilities.features = u64::from(limits) << (limits % 57);
    let mut config = HandshakeConfig::new(AgentCard::new(name), capabilities).ok()?;
    let timeout = if flags & 0x04 != 0 { Duration::MAX } else { Duration::from_millis(50 * (u64::from(timeout) + 1)) };
    config
        .require_common_intents(flags & 0x01 != 0)
        .timeout(timeout)
        .max_early_work(usize::from((flags >> 3) & 3))
        .max_schema_requests(1 + usize::from((flags >> 5) & 3));
    if let Some(len) = frame_len {
        config.max_control_frame_len(len);
    }
    Some(Arc::new(config))
}

/// What one side's events have said so far.
#[derive(Debug, Default)]
struct Log {
    /// The `Established` result, and whether forged bytes had reached the
    /// side before it.
    established: Option<(Negotiated, bool)>,
    /// The latest `Established` or `Updated` result.
    current: Option<Negotiated>,
    /// The `Failed` refusal.
    failed: Option<crate::Refusal>,
}

struct Harness {
    machines: [Handshake; 2],
    /// Simulated time.
    now: Instant,
    /// Frames on their way to each side.
    wires: [VecDeque<Bytes>; 2],
    logs: [Log; 2],
    /// Forged bytes (raw, flipped or cut short) reached the side.
    forged: [bool; 2],
    /// A frame to the side was dropped or duplicated.
    lossy: [bool; 2],
    outcome: Outcome,
}

impl Harness {
    fn new(dialer: Arc<HandshakeConfig>, acceptor: Arc<HandshakeConfig>) -> Self {
        // Only offsets from this instant matter, so runs are reproducible.
        static BASE: OnceLock<Instant> = OnceLock::new();
        let now = *BASE.get_or_init(Instant::now);
        let mut harness = Self {
            machines: [Handshake::dialer(dialer, now), Handshake::acceptor(acceptor, now)],
            now,
            wires: [VecDeque::new(), VecDeque::new()],
            logs: [Log::default(), Log::default()],
            forged: [false; 2],
            lossy: [false; 2],
            outcome: Outcome::default(),
        };
        harness.settle();
        harness
    }

    fn deliver(&mut self, to: usize, bytes: &[u8]) {
        let now = self.now;
        self.machines[to].handle_data(bytes, now);
    }

    fn op(&mut self, input: &mut Input<'_>) {
        let op = input.byte();
        let side = usize::from(op & 1);
        match (op >> 1) & 0x0f {
            0 => {
                let len = usize::from(input.byte());
                self.forged[side] = true;
                self.deliver(side, input.bytes(len));
            }
            1 => {
                let len = usize::from(u16::from_le_bytes([input.byte(), input.byte()]));
                self.forged[side] = true;
                self.deliver(side, input.bytes(len));
            }
            2 | 3 => {
                if let Some(frame) = self.wires[side].pop_front() {
                    self.deliver(side, &frame);
                }
            }
            4 => {
                let at = input.byte();
                if let Some(frame) = self.wires[side].pop_front() {
                    let (head, tail) = frame.split_at(usize::from(at) % (frame.len() + 1));
                    self.deliver(side, head);
                    self.deliver(side, tail);
                }
            }
            5 => {
                let all: BytesMut = self.wires[side].drain(..).flatten().collect();
                self.deliver(side, &all);
            }
            6 => {
                if let Some(frame) = self.wires[side].pop_front() {
                    for byte in frame.chunks(1) {
                        self.deliver(side, byte);
                    }
                }
            }
            7 => {
                if let Some(frame) = self.wires[side].front().cloned() {
                    self.lossy[side] = true;
                    self.deliver(side, &frame);
                }
            }
            8 => self.lossy[side] |= self.wires[side].pop_front().is_some(),
            9 => {
                let (index, mask) = (input.byte(), input.byte() | 1);
                if let Some(frame) = self.wires[side].pop_front() {
                    let mut frame = frame.to_vec();
                    let len = frame.len();
                    if let Some(byte) = frame.get_mut(usize::from(index) % len.max(1)) {
                        *byte ^= mask;
                    }
                    self.forged[side] = true;
                    self.deliver(side, &frame);
                }
            }
            10 => {
                let cut = input.byte();
                if let Some(frame) = self.wires[side].pop_front() {
                    self.forged[side] = true;
                    self.deliver(side, &frame[..usize::from(cut) % frame.len().max(1)]);
                }
            }
            11 => {
                self.now += Duration::from_millis(50 * u64::from(input.byte()));
                let sides: &[usize] = if op & 0x80 != 0 { &[DIALER, ACCEPTOR] } else { &[side] };
                for &s in sides {
                    let now = self.now;
                    let machine = &mut self.machines[s];
                    machine.handle_timeout(now);
                    let next = machine.poll_timeout();
                    assert!(next.is_none_or(|t| t > now), "{}: deadline {next:?} left in the past", NAMES[s]);
                }
            }
            12 => self.admit(side),
            13 => {
                let count = input.byte() % 4;
                let offers: Vec<IntentOffer> = (0..count).map(|_| offer(input.byte())).collect();
                let established = self.machines[side].is_established();
                // Offering again what this side already sends changes nothing.
                let local = &self.machines[side].local().intents;
                let changes = offers.iter().any(|o| !(o.emits && local.iter().any(|own| own.id == o.id && own.emits)));
                let result = self.machines[side].add_intents(offers);
                if !established {
                    assert!(result.is_err(), "{}: add_intents before the handshake", NAMES[side]);
                }
                if result.is_ok() && changes {
                    let before = self.outcome.updates[side];
                    self.collect(side);
                    assert_eq!(self.outcome.updates[side], before + 1, "{}: add_intents gave no Updated", NAMES[side]);
                }
            }
            14 => {
                let id = pool_id(input.byte());
                let established = self.machines[side].is_established();
                let result = self.machines[side].request_schema(id);
                if !established {
                    assert!(result.is_err(), "{}: request_schema before the handshake", NAMES[side]);
                }
            }
            15 => {
                let now = self.now;
                self.machines[side].handle_stream_end(now);
                assert!(self.machines[side].is_failed(), "{}: not failed after the stream ended", NAMES[side]);
            }
            _ => {}
        }
    }

    fn admit(&mut self, side: usize) {
        let machine = &mut self.machines[side];
        let (established, failed) = (machine.is_established(), machine.is_failed());
        let admission = machine.admit();
        let ok = if failed {
            matches!(&admission, Admission::Refuse(refusal) if machine.failure() == Some(refusal))
        } else if established {
            admission == Admission::Proceed
        } else if side == DIALER {
            matches!(admission, Admission::Proceed | Admission::Hold)
        } else {
            matches!(&admission, Admission::Hold)
                || matches!(&admission, Admission::Refuse(refusal) if refusal.code == ErrorCode::TooManyEarlyRequests)
        };
        assert!(ok, "{}: admit gave {admission:?} (established {established}, failed {failed})", NAMES[side]);
    }

    /// Moves transmits onto the wires and checks events and state.
    fn settle(&mut self) {
        for side in [DIALER, ACCEPTOR] {
            self.collect(side);
        }
        if !self.outcome.mirrored
            && let (Some((d, false)), Some((a, false))) =
                (&self.logs[DIALER].established, &self.logs[ACCEPTOR].established)
        {
            assert_mirrored(d, a);
            assert_eq!(d.peer_card.name, NAMES[ACCEPTOR]);
            assert_eq!(a.peer_card.name, NAMES[DIALER]);
            self.outcome.mirrored = true;
        }
    }

    fn collect(&mut self, side: usize) {
        let name = NAMES[side];
        let other = 1 - side;
        let was_failed = self.logs[side].failed.is_some();
        let (mut frames, mut bytes) = (0, 0);
        while let Some(frame) = self.machines[side].poll_transmit() {
            assert!(!was_failed, "{name}: sent {frame:?} after failing");
            // Exactly one well-formed frame.
            let mut buffer = BytesMut::from(&frame[..]);
            let decoded = FrameDecoder::new(usize::MAX).decode(&mut buffer);
            assert!(matches!(decoded, Ok(Some(_))) && buffer.is_empty(), "{name}: sent a malformed frame {frame:?}");
            frames += 1;
            bytes += frame.len();
            self.wires[other].push_back(frame);
        }
        assert!(frames <= MAX_FRAMES_PER_OP, "{name}: {frames} frames queued in one operation");
        assert!(bytes <= MAX_BYTES_PER_OP, "{name}: {bytes} bytes queued in one operation");
        assert!(self.wires[other].len() <= MAX_IN_FLIGHT, "{} frames in flight", self.wires[other].len());

        let mut events = 0;
        while let Some(event) = self.machines[side].poll_event() {
            events += 1;
            self.on_event(side, event);
        }
        assert!(events <= MAX_EVENTS_PER_OP, "{name}: {events} events queued in one operation");

        let machine = &self.machines[side];
        let log = &self.logs[side];
        assert_eq!(machine.is_failed(), log.failed.is_some(), "{name}: is_failed disagrees with the events");
        assert_eq!(machine.failure(), log.failed.as_ref(), "{name}: failure disagrees with the events");
        let established = log.established.is_some() && log.failed.is_none();
        assert_eq!(machine.is_established(), established, "{name}: is_established disagrees with the events");
        if established {
            assert_eq!(machine.negotiated(), log.current.as_ref(), "{name}: negotiated disagrees with the events");
        }
        if established || log.failed.is_some() {
            assert_eq!(machine.poll_timeout(), None, "{name}: a deadline after the handshake ended");
        }
    }

    fn on_event(&mut self, side: usize, event: Event) {
        let name = NAMES[side];
        let log = &mut self.logs[side];
        assert!(log.failed.is_none(), "{name}: {event:?} after failing");
        let established = log.established.is_some();
        match event {
            Event::Established(negotiated) => {
                assert!(!established, "{name}: a second Established");
                log.current = Some(negotiated.clone());
                log.established = Some((negotiated, self.forged[side]));
                self.outcome.established[side] = true;
            }
            Event::Updated(negotiated) => {
                assert!(established, "{name}: Updated before Established");
                log.current = Some(negotiated);
                self.outcome.updates[side] += 1;
            }
            Event::SchemaReceived { intent_id, name: message, descriptor_set } => {
                assert!(established, "{name}: SchemaReceived before Established");
                let computed = IntentId::of_message_in_encoded_set(&descriptor_set, &message);
                assert_eq!(computed, Ok(intent_id), "{name}: a received schema does not hash to its id");
                self.outcome.schemas_received[side] += 1;
            }
            Event::SchemaFailed { .. } => {
                assert!(established, "{name}: SchemaFailed before Established");
                self.outcome.schemas_failed[side] += 1;
            }
            Event::Failed { refusal, .. } => {
                self.outcome.failures[side] = Some(refusal.code);
                log.failed = Some(refusal);
            }
        }
    }

    /// If nothing was forged, dropped or duplicated, delivers everything in
    /// flight; two established sides must then agree.
    fn finish(&mut self) {
        if self.forged.contains(&true) || self.lossy.contains(&true) {
            return;
        }
        // Each round answers the previous one; schema answers end it.
        for _ in 0..8 {
            if self.wires.iter().all(VecDeque::is_empty) {
                break;
            }
            for side in [ACCEPTOR, DIALER] {
                while let Some(frame) = self.wires[side].pop_front() {
                    self.deliver(side, &frame);
                }
                self.settle();
            }
        }
        if let (Some(d), Some(a)) = (self.machines[DIALER].negotiated(), self.machines[ACCEPTOR].negotiated())
            && self.machines.iter().all(Handshake::is_established)
        {
            assert!(self.wires.iter().all(VecDeque::is_empty), "still in flight after delivering everything");
            assert_mirrored(d, a);
            self.outcome.final_mirrored = true;
        }
    }
}

/// The two sides' results are mirror images: same version, limits and
/// features, each side's send alias is the other's receive alias. Shared
/// with the handshake tests.
pub fn assert_mirrored(a: &Negotiated, b: &Negotiated) {
    assert_eq!(a.version, b.version);
    assert_eq!(a.limits, b.limits);
    assert_eq!(a.features, b.features);
    assert_eq!(a.intents.len(), b.intents.len(), "{:?}\n{:?}", a.intents, b.intents);
    for (x, y) in a.intents.iter().zip(&b.intents) {
        assert_eq!(x.id, y.id);
        assert_eq!(x.send_alias, y.receive_alias, "{:?}", x.id);
        assert_eq!(x.receive_alias, y.send_alias, "{:?}", x.id);
        assert_eq!((x.send_lanes, x.receive_lanes), (y.receive_lanes, y.send_lanes), "{:?}", x.id);
        if let Some(alias) = x.receive_alias {
            assert_eq!(a.resolve_alias(alias).map(|i| i.id), Some(x.id));
        }
        if let Some(alias) = x.send_alias {
            assert_eq!(b.resolve_alias(alias).map(|i| i.id), Some(x.id));
        }
    }
}

/// Entry point of the `identity` fuzz target: the input is parsed both as a
/// key file (the PEM / PKCS#8 parser behind [`Identity::load`](crate::Identity::load))
/// and, if it is text, as a printed AgentId. A key that parses must survive
/// writing and reading back as the same identity; an AgentId that parses
/// must print as exactly the input (each AgentId has one printed form) and
/// hold a valid key.
pub fn identity(data: &[u8]) {
    if data.len() <= 16 * 1024
        && let Ok(identity) = crate::identity::parse_pem(data)
    {
        let written = identity.to_pkcs8_pem();
        let again = crate::identity::parse_pem(written.as_bytes()).map_err(|e| e.to_string());
        assert_eq!(again.map(|i| i.agent_id()), Ok(identity.agent_id()), "a parsed key does not round-trip");
        assert!(crate::AgentId::from_bytes(*identity.agent_id().as_bytes()).is_ok());
    }
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(id) = text.parse::<crate::AgentId>() {
        assert_eq!(id.to_string(), text, "an AgentId parsed from a form it does not print");
        assert!(crate::AgentId::from_bytes(*id.as_bytes()).is_ok());
    }
    if let Ok(id) = text.parse::<IntentId>() {
        assert_eq!(id.to_string(), text.to_ascii_lowercase());
    }
}

/// Entry point of the `credential` fuzz target: the input is decoded as a
/// `SignedCredential` and checked against a store trusting the organisation
/// it names; whatever the outcome, nothing panics, and a credential that
/// decodes re-encodes to a value that decodes to the same credential.
pub fn credential(data: &[u8]) {
    use crate::credential::{SignedCredential, TrustStore};
    let Ok(signed) = SignedCredential::decode(data) else { return };
    let again = SignedCredential::decode(&signed.encode());
    assert_eq!(again.as_ref(), Ok(&signed), "a decoded credential does not round-trip");
    if let Ok((org, credential)) = signed.credential() {
        let mut store = TrustStore::new();
        store.trust(org);
        use std::time::{Duration, UNIX_EPOCH};
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        if let Ok(verified) = store.verify(&signed, &credential.subject, now) {
            assert_eq!(verified.org, org);
            assert_eq!(verified.roles, credential.roles);
        }
    }
}

/// Entry point of the `revocations` fuzz target: the input is decoded as a
/// `SignedRevocationList` and applied to a store trusting the organisation
/// it names; nothing panics, and a list that decodes round-trips.
pub fn revocations(data: &[u8]) {
    use crate::credential::{SignedRevocationList, TrustStore};
    let Ok(signed) = SignedRevocationList::decode(data) else { return };
    let again = SignedRevocationList::decode(&signed.encode());
    assert_eq!(again.as_ref(), Ok(&signed), "a decoded revocation list does not round-trip");
    if let Ok(list) = signed.list() {
        let mut store = TrustStore::new();
        store.trust(list.org);
        if store.apply_revocations(&signed).is_ok() {
            assert!(list.serials.iter().all(|&serial| store.is_revoked(&list.org, serial)));
        }
    }
}

/// The `receipt` target: a receipt file is decoded and, when it decodes,
/// verified; a receipt that decodes re-encodes to a file that decodes to the
/// same receipt, and tampering with its signature never makes it verify.
pub fn receipt(data: &[u8]) {
    let Ok(receipt) = crate::Receipt::decode(data) else {
        return;
    };
    let verified = receipt.verify().is_ok();
    let again = crate::Receipt::decode(&receipt.encode_to_vec());
    assert_eq!(again.as_ref(), Ok(&receipt));
    if verified {
        let mut bad = receipt.clone();
        bad.signature[0] ^= 1;
        assert!(bad.verify().is_err());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ping_schema_hashes() {
        assert_ne!(ping().0, IntentId::from_bytes([0; 32]));
    }

    #[test]
    fn an_empty_program_establishes() {
        let outcome = run(&[]);
        assert!(outcome.mirrored && outcome.final_mirrored, "{outcome:?}");
    }
}
