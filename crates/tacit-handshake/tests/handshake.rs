//! The capability handshake, driven in memory with simulated time: success,
//! agreement of both sides for any capability sets, pipelining, updates,
//! schema fetch, and every refusal code.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use prost::Message as _;
use tacit_handshake::{
    Admission, AgentCard, Capabilities, Event, HandshakeConfig, IntentOffer, Limits, Negotiated, Refusal,
};
use tacit_testkit::pair::{Pair, Side};
use tacit_wire::{ErrorCode, FrameEncoder, IntentId, pb};

fn id(n: u8) -> IntentId {
    IntentId::from_bytes([n; 32])
}

fn config(name: &str, capabilities: Capabilities) -> HandshakeConfig {
    HandshakeConfig::new(AgentCard::new(name), capabilities).unwrap()
}

fn established(events: &[Event]) -> &Negotiated {
    match events.first() {
        Some(Event::Established(negotiated)) => negotiated,
        other => panic!("expected Established, got {other:?}"),
    }
}

fn failure(events: &[Event]) -> (&Refusal, bool) {
    match events.iter().find(|e| matches!(e, Event::Failed { .. })) {
        Some(Event::Failed { refusal, by_peer }) => (refusal, *by_peer),
        _ => panic!("expected Failed, got {events:?}"),
    }
}

use tacit_handshake::fuzzing::assert_mirrored;

#[test]
fn establishes_and_negotiates() {
    let mut dialer_caps = Capabilities::default()
        .with_intent(IntentOffer::emits(id(1), "acme.v1.Ask"))
        .with_intent(IntentOffer::handles(id(2), "acme.v1.Status"))
        .with_intent(IntentOffer::emits(id(3), "acme.v1.OnlyMine"))
        .with_intent(IntentOffer::handles(id(4), "acme.v1.Both").and_emits());
    dialer_caps.limits = *Limits::default().max_frame_len(64 * 1024).max_concurrent_asks(500);
    dialer_caps.features = 0b1011;
    dialer_caps.versions = 1..=3;
    let mut acceptor_caps = Capabilities::default()
        .with_intent(IntentOffer::handles(id(4), "acme.v1.Both").and_emits())
        .with_intent(IntentOffer::handles(id(1), "acme.v1.Ask"))
        .with_intent(IntentOffer::emits(id(2), "acme.v1.Status"))
        .with_intent(IntentOffer::handles(id(5), "acme.v1.OnlyTheirs"));
    acceptor_caps.limits = *Limits::default().max_frame_len(1 << 20).max_concurrent_asks(100);
    acceptor_caps.features = 0b0110;
    acceptor_caps.versions = 1..=2;

    let mut pair = Pair::new(config("buyer", dialer_caps), config("seller", acceptor_caps));
    pair.drive_to_idle();
    let d = established(&pair.dialer_events);
    let a = established(&pair.acceptor_events);
    assert_mirrored(d, a);
    assert_eq!(d.version, 2);
    assert_eq!(d.limits, *Limits::default().max_frame_len(64 * 1024).max_concurrent_asks(100));
    assert_eq!(d.features, 0b0010);
    assert_eq!(d.peer_card.name, "seller");
    assert_eq!(a.peer_card.name, "buyer");
    // Ask: dialer → acceptor, under the acceptor's alias (its position 2).
    assert_eq!(d.send_alias(&id(1)), Some(2));
    assert!(a.can_receive(&id(1)));
    // Status: acceptor → dialer, under the dialer's alias (position 2).
    assert_eq!(a.send_alias(&id(2)), Some(2));
    // Both ways.
    assert_eq!(d.send_alias(&id(4)), Some(1));
    assert_eq!(a.send_alias(&id(4)), Some(4));
    // Offered by one side only: not negotiated.
    assert!(d.intent(&id(3)).is_none() && a.intent(&id(5)).is_none());
    assert_eq!(d.intents.len(), 3);
    // One round trip.
    assert_eq!(pair.dialer.poll_timeout(), None);
    assert!(pair.dialer.is_established() && pair.acceptor.is_established());
}

fn arb_capabilities() -> impl Strategy<Value = Capabilities> {
    let offers = proptest::collection::vec((0u8..12, any::<bool>(), any::<bool>()), 0..12);
    (offers, 1u32..4, 0u32..3, 1u32..5000, 1u32..300, any::<u64>()).prop_map(
        |(offers, min, span, frame, asks, features)| {
            let mut caps = Capabilities::default();
            let mut seen = std::collections::HashSet::new();
            for (n, handles, emits) in offers {
                if seen.insert(n) {
                    let mut offer = IntentOffer::handles(id(n), format!("acme.v1.I{n}"));
                    offer.handles = handles;
                    offer.emits = emits;
                    caps.intents.push(offer);
                }
            }
            caps.versions = min..=min + span;
            caps.limits = *Limits::default().max_frame_len(frame).max_concurrent_asks(asks);
            caps.features = features;
            caps
        },
    )
}

proptest! {
    /// For any two capability sets both sides end in the same outcome: the
    /// same (mirrored) result, or the same refusal.
    #[test]
    fn both_sides_agree(dialer in arb_capabilities(), acceptor in arb_capabilities()) {
        let mut pair = Pair::new(config("d", dialer.clone()), config("a", acceptor.clone()));
        pair.drive_to_idle();
        let common = tacit_handshake::choose_version(&dialer.versions, &acceptor.versions);
        match common {
            Some(version) => {
                let d = established(&pair.dialer_events);
                let a = established(&pair.acceptor_events);
                prop_assert_eq!(d.version, version);
                assert_mirrored(d, a);
                // Usable one way exactly when one side emits and the other handles.
                for offer in &dialer.intents {
                    let peer = acceptor.intents.iter().find(|o| o.id == offer.id);
                    let send = peer.is_some_and(|p| offer.emits && p.handles);
                    prop_assert_eq!(d.send_alias(&offer.id).is_some(), send);
                }
            }
            None => {
                prop_assert_eq!(failure(&pair.acceptor_events).0.code, ErrorCode::NoCommonVersion);
                prop_assert_eq!(failure(&pair.dialer_events), (failure(&pair.acceptor_events).0, true));
            }
        }
    }

    /// Negotiation is a function of its inputs.
    #[test]
    fn negotiation_is_deterministic(a in arb_capabilities(), b in arb_capabilities()) {
        let first = tacit_handshake::negotiate(1, &a, &b, AgentCard::new("p"));
        let second = tacit_handshake::negotiate(1, &a, &b, AgentCard::new("p"));
        prop_assert_eq!(first, second);
    }
}

fn frame(message: pb::control_message::Message) -> Bytes {
    FrameEncoder::new(usize::MAX).encode_to_bytes(&pb::ControlMessage { message: Some(message) }).unwrap()
}

fn hello(card: pb::AgentCard, capabilities: pb::Capabilities) -> Bytes {
    frame(pb::control_message::Message::Hello(pb::Hello {
        card: Some(card),
        capabilities: Some(capabilities),
        ..Default::default()
    }))
}

fn valid_capabilities() -> pb::Capabilities {
    pb::Capabilities {
        versions: Some(pb::VersionRange { min: 1, max: 1 }),
        intents: vec![],
        limits: Some(pb::Limits { max_frame_len: 1024, max_concurrent_asks: 1 }),
        features: 0,
    }
}

/// Sends `bytes` to a fresh acceptor and returns the refusal it makes and sends.
fn acceptor_refuses(bytes: &[u8]) -> Refusal {
    let mut pair = Pair::new(config("d", Capabilities::default()), config("a", Capabilities::default()));
    // Drop the dialer's real Hello; deliver only the crafted bytes.
    while pair.dialer.poll_transmit().is_some() {}
    pair.inject(Side::Acceptor, bytes);
    let (refusal, by_peer) = failure(&pair.acceptor_events);
    assert!(!by_peer);
    let refusal = refusal.clone();
    // The refusal is also on the wire, with the same code.
    pair.drive_to_idle();
    let (seen_by_dialer, by_peer) = failure(&pair.dialer_events);
    assert!(by_peer);
    assert_eq!(seen_by_dialer.code, refusal.code);
    refusal
}

#[test]
fn refuses_no_common_version() {
    let mut caps = Capabilities::default();
    caps.versions = 2..=3;
    let mut pair = Pair::new(config("d", Capabilities::default()), config("a", caps));
    pair.drive_to_idle();
    let (refusal, by_peer) = failure(&pair.acceptor_events);
    assert_eq!((refusal.code, by_peer), (ErrorCode::NoCommonVersion, false));
    assert!(refusal.reason.contains("1..=1") && refusal.reason.contains("2..=3"), "{}", refusal.reason);
    assert_eq!(failure(&pair.dialer_events), (refusal, true));
    // A Welcome naming a version the dialer does not speak is refused too.
    let mut pair = Pair::new(config("d", Capabilities::default()), config("a", Capabilities::default()));
    pair.drive(1);
    let welcome = pb::Welcome {
        version: 7,
        card: Some(pb::AgentCard::default()),
        capabilities: Some(valid_capabilities()),
        ..Default::default()
    };
    pair.inject(Side::Dialer, &frame(pb::control_message::Message::Welcome(welcome)));
    assert_eq!(failure(&pair.dialer_events).0.code, ErrorCode::NoCommonVersion);
}

#[test]
fn refuses_malformed_message() {
    // A frame whose body is not a ControlMessage.
    let refusal = acceptor_refuses(&[0x03, 0xff, 0xff, 0xff]);
    assert_eq!(refusal.code, ErrorCode::MalformedMessage);
    // An overlong frame prefix.
    assert_eq!(acceptor_refuses(&[0xff; 11]).code, ErrorCode::VarintOverlong);
    // A frame over the control stream's limit.
    let mut big = BytesMut::new();
    tacit_wire::put_prefix(2 << 20, &mut big);
    assert_eq!(acceptor_refuses(&big).code, ErrorCode::FrameTooLarge);
}

#[test]
fn refuses_too_many_intents() {
    let mut caps = valid_capabilities();
    caps.intents = (0..4097u32)
        .map(|i| {
            let mut intent_id = [0u8; 32];
            intent_id[..4].copy_from_slice(&i.to_le_bytes());
            pb::IntentOffer {
                intent_id: Bytes::copy_from_slice(&intent_id),
                name: "x".into(),
                handles: true,
                emits: true,
                ..Default::default()
            }
        })
        .collect();
    let refusal = acceptor_refuses(&hello(pb::AgentCard::default(), caps));
    assert_eq!(refusal.code, ErrorCode::TooManyIntents);
    assert!(refusal.reason.contains("4097"), "{}", refusal.reason);
    // The local side checks too.
    let mut local = Capabilities::default();
    local.intents = (0..4097u32)
        .map(|i| {
            let mut bytes = [0u8; 32];
            bytes[..4].copy_from_slice(&i.to_le_bytes());
            IntentOffer::handles(IntentId::from_bytes(bytes), "x")
        })
        .collect();
    assert_eq!(HandshakeConfig::new(AgentCard::new("x"), local).unwrap_err().code, ErrorCode::TooManyIntents);
}

#[test]
fn refuses_card_too_large() {
    let card = pb::AgentCard { description: "d".repeat(17 * 1024), ..Default::default() };
    assert_eq!(acceptor_refuses(&hello(card, valid_capabilities())).code, ErrorCode::CardTooLarge);
    let card = pb::AgentCard { name: "n".repeat(65), ..Default::default() };
    assert_eq!(acceptor_refuses(&hello(card, valid_capabilities())).code, ErrorCode::CardTooLarge);
}

#[test]
fn refuses_invalid_capabilities() {
    let offer = |bytes: &[u8]| pb::IntentOffer {
        intent_id: Bytes::copy_from_slice(bytes),
        name: "x".into(),
        handles: true,
        emits: false,
        ..Default::default()
    };
    let cases = [
        pb::Capabilities { intents: vec![offer(&[1; 32]), offer(&[1; 32])], ..valid_capabilities() },
        pb::Capabilities { intents: vec![offer(&[1; 31])], ..valid_capabilities() },
        pb::Capabilities { versions: Some(pb::VersionRange { min: 2, max: 1 }), ..valid_capabilities() },
        pb::Capabilities { versions: None, ..valid_capabilities() },
        pb::Capabilities {
            limits: Some(pb::Limits { max_frame_len: 0, max_concurrent_asks: 1 }),
            ..valid_capabilities()
        },
    ];
    for caps in cases {
        assert_eq!(
            acceptor_refuses(&hello(pb::AgentCard::default(), caps.clone())).code,
            ErrorCode::InvalidCapabilities,
            "{caps:?}"
        );
    }
    let long_name = pb::IntentOffer { name: "n".repeat(129), ..offer(&[1; 32]) };
    let caps = pb::Capabilities { intents: vec![long_name], ..valid_capabilities() };
    assert_eq!(acceptor_refuses(&hello(pb::AgentCard::default(), caps)).code, ErrorCode::InvalidCapabilities);
}

#[test]
fn refuses_duplicate_and_unexpected_messages() {
    // Two Hellos.
    let first = hello(pb::AgentCard::default(), valid_capabilities());
    let mut twice = first.to_vec();
    twice.extend_from_slice(&first);
    assert_eq!(acceptor_refuses(&twice).code, ErrorCode::DuplicateMessage);
    // A Welcome sent to the acceptor.
    let welcome =
        pb::Welcome { version: 1, card: None, capabilities: Some(valid_capabilities()), ..Default::default() };
    assert_eq!(
        acceptor_refuses(&frame(pb::control_message::Message::Welcome(welcome))).code,
        ErrorCode::UnexpectedMessage
    );
    // A schema request before the handshake.
    let request = pb::DescribeIntentRequest { intent_id: Bytes::from_static(&[1; 32]) };
    assert_eq!(
        acceptor_refuses(&frame(pb::control_message::Message::DescribeRequest(request))).code,
        ErrorCode::UnexpectedMessage
    );
    // An empty control message before the handshake.
    assert_eq!(acceptor_refuses(&frame_empty()).code, ErrorCode::UnexpectedMessage);

    // After the handshake: a schema response nobody asked for, then a second Welcome.
    let mut pair = Pair::new(config("d", Capabilities::default()), config("a", Capabilities::default()));
    pair.drive_to_idle();
    let response = pb::DescribeIntentResponse { intent_id: Bytes::from_static(&[9; 32]), ..Default::default() };
    pair.inject(Side::Dialer, &frame(pb::control_message::Message::DescribeResponse(response)));
    assert_eq!(failure(&pair.dialer_events).0.code, ErrorCode::UnexpectedMessage);

    let mut pair = Pair::new(config("d", Capabilities::default()), config("a", Capabilities::default()));
    pair.drive_to_idle();
    let welcome =
        pb::Welcome { version: 1, card: None, capabilities: Some(valid_capabilities()), ..Default::default() };
    pair.inject(Side::Dialer, &frame(pb::control_message::Message::Welcome(welcome)));
    assert_eq!(failure(&pair.dialer_events).0.code, ErrorCode::DuplicateMessage);
    // Once failed, nothing more happens.
    let before = pair.dialer_events.len();
    pair.inject(Side::Dialer, &[0xff; 20]);
    assert_eq!(pair.dialer_events.len(), before);
}

fn frame_empty() -> Bytes {
    FrameEncoder::new(usize::MAX).encode_to_bytes(&pb::ControlMessage { message: None }).unwrap()
}

#[test]
fn refuses_on_timeout() {
    let mut dialer = config("d", Capabilities::default());
    dialer.timeout(Duration::from_secs(3));
    let mut pair = Pair::new(dialer, config("a", Capabilities::default()));
    // The Hello is lost.
    while pair.dialer.poll_transmit().is_some() {}
    let start = pair.now;
    pair.drive_to_idle();
    let (refusal, by_peer) = failure(&pair.dialer_events);
    assert_eq!((refusal.code, by_peer), (ErrorCode::HandshakeTimeout, false));
    // The dialer's refusal reaches the acceptor one latency later.
    assert_eq!(pair.now - start, Duration::from_millis(3010));
    assert_eq!(failure(&pair.acceptor_events), (refusal, true));

    // An acceptor that hears nothing times out on its own (default 10 s).
    let mut pair = Pair::new(config("d", Capabilities::default()), config("a", Capabilities::default()));
    let start = pair.now;
    assert_eq!(pair.acceptor.poll_timeout(), Some(start + Duration::from_secs(10)));
    pair.acceptor.handle_timeout(start + Duration::from_millis(9999));
    assert!(pair.acceptor.poll_event().is_none());
    pair.acceptor.handle_timeout(start + Duration::from_secs(10));
    let event = pair.acceptor.poll_event().unwrap();
    assert!(matches!(
        event,
        Event::Failed { refusal: Refusal { code: ErrorCode::HandshakeTimeout, .. }, by_peer: false }
    ));
    assert_eq!(pair.acceptor.poll_timeout(), None);
}

#[test]
fn refuses_when_control_stream_ends_early() {
    let mut pair = Pair::new(config("d", Capabilities::default()), config("a", Capabilities::default()));
    let now = pair.now;
    pair.acceptor.handle_data(&[0x05, 0x01], now);
    pair.acceptor.handle_stream_end(now);
    let event = pair.acceptor.poll_event().unwrap();
    assert!(
        matches!(event, Event::Failed { refusal: Refusal { code: ErrorCode::FrameTruncated, .. }, by_peer: true }),
        "{event:?}"
    );
    let mut pair = Pair::new(config("d", Capabilities::default()), config("a", Capabilities::default()));
    pair.acceptor.handle_stream_end(now);
    assert!(matches!(
        pair.acceptor.poll_event(),
        Some(Event::Failed { refusal: Refusal { code: ErrorCode::ControlStreamClosed, .. }, .. })
    ));
}

#[test]
fn no_common_intents_is_a_policy() {
    let dialer = Capabilities::default().with_intent(IntentOffer::emits(id(1), "a.A"));
    let acceptor = Capabilities::default().with_intent(IntentOffer::handles(id(2), "a.B"));
    // Default: allowed.
    let mut pair = Pair::new(config("d", dialer.clone()), config("a", acceptor.clone()));
    pair.drive_to_idle();
    assert!(established(&pair.dialer_events).intents.is_empty());
    // Required: refused.
    let mut strict = config("a", acceptor);
    strict.require_common_intents(true);
    let mut pair = Pair::new(config("d", dialer), strict);
    pair.drive_to_idle();
    assert_eq!(failure(&pair.acceptor_events).0.code, ErrorCode::NoCommonIntents);
    assert_eq!(failure(&pair.dialer_events).0.code, ErrorCode::NoCommonIntents);
}

#[test]
fn pipelining_rule() {
    let mut dialer = config("d", Capabilities::default());
    dialer.max_early_work(2);
    let mut acceptor = config("a", Capabilities::default());
    acceptor.max_early_work(3);
    let mut pair = Pair::new(dialer, acceptor);
    // The dialer sends its first two pieces of work at once, then holds.
    assert_eq!(pair.dialer.admit(), Admission::Proceed);
    assert_eq!(pair.dialer.admit(), Admission::Proceed);
    assert_eq!(pair.dialer.admit(), Admission::Hold);
    // Work reaching the acceptor before the Hello: held up to its bound, then refused.
    for _ in 0..3 {
        assert_eq!(pair.acceptor.admit(), Admission::Hold);
    }
    match pair.acceptor.admit() {
        Admission::Refuse(refusal) => assert_eq!(refusal.code, ErrorCode::TooManyEarlyRequests),
        other => panic!("{other:?}"),
    }
    pair.drive_to_idle();
    // Established: everything proceeds, on both sides.
    assert!(matches!(pair.dialer_events[0], Event::Established(_)));
    assert_eq!(pair.dialer.admit(), Admission::Proceed);
    assert_eq!(pair.acceptor.admit(), Admission::Proceed);

    // After a failure, work is refused with the failure's code.
    let mut caps = Capabilities::default();
    caps.versions = 5..=5;
    let mut pair = Pair::new(config("d", Capabilities::default()), config("a", caps));
    assert_eq!(pair.acceptor.admit(), Admission::Hold);
    pair.drive_to_idle();
    assert!(matches!(pair.acceptor.admit(), Admission::Refuse(Refusal { code: ErrorCode::NoCommonVersion, .. })));
    assert!(matches!(pair.dialer.admit(), Admission::Refuse(Refusal { code: ErrorCode::NoCommonVersion, .. })));
}

#[test]
fn capability_updates_keep_aliases_and_agree() {
    let dialer = Capabilities::default().with_intent(IntentOffer::emits(id(1), "a.A").and_handles());
    let acceptor = Capabilities::default().with_intent(IntentOffer::handles(id(1), "a.A").and_emits());
    let mut pair = Pair::new(config("d", dialer), config("a", acceptor));
    pair.drive_to_idle();
    assert_eq!(established(&pair.dialer_events).send_alias(&id(1)), Some(1));

    // Both sides learn new intents at the same time.
    pair.acceptor.add_intents(vec![IntentOffer::handles(id(2), "a.B"), IntentOffer::emits(id(3), "a.C")]).unwrap();
    pair.dialer.add_intents(vec![IntentOffer::emits(id(2), "a.B"), IntentOffer::handles(id(3), "a.C")]).unwrap();
    pair.drive_to_idle();
    let last = |events: &[Event]| match events.last() {
        Some(Event::Updated(negotiated)) => negotiated.clone(),
        other => panic!("expected Updated, got {other:?}"),
    };
    let (d, a) = (last(&pair.dialer_events), last(&pair.acceptor_events));
    assert_mirrored(&d, &a);
    assert_eq!(d.send_alias(&id(1)), Some(1), "existing aliases do not move");
    assert_eq!(d.send_alias(&id(2)), Some(2));
    assert_eq!(a.send_alias(&id(3)), Some(3));
    assert_eq!(pair.dialer.negotiated(), Some(&d));

    // An update repeating a known intent is refused.
    pair.inject(
        Side::Dialer,
        &frame(pb::control_message::Message::CapabilityUpdate(pb::CapabilityUpdate {
            added: vec![pb::IntentOffer {
                intent_id: Bytes::from_static(&[1; 32]),
                name: "a.A".into(),
                handles: true,
                emits: true,
                ..Default::default()
            }],
        })),
    );
    assert_eq!(failure(&pair.dialer_events).0.code, ErrorCode::InvalidCapabilities);
}

#[test]
fn update_over_the_intent_limit_is_refused() {
    let mut pair = Pair::new(config("d", Capabilities::default()), config("a", Capabilities::default()));
    pair.drive_to_idle();
    let added = (0..4097u32)
        .map(|i| {
            let mut bytes = [0u8; 32];
            bytes[..4].copy_from_slice(&i.to_le_bytes());
            pb::IntentOffer {
                intent_id: Bytes::copy_from_slice(&bytes),
                name: "x".into(),
                handles: true,
                emits: true,
                ..Default::default()
            }
        })
        .collect();
    pair.inject(Side::Acceptor, &frame(pb::control_message::Message::CapabilityUpdate(pb::CapabilityUpdate { added })));
    assert_eq!(failure(&pair.acceptor_events).0.code, ErrorCode::TooManyIntents);
}

/// Compiles a small schema with protox and returns (IntentId, name, encoded set).
fn schema() -> (IntentId, String, Bytes) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("ping.proto"),
        "syntax = \"proto3\";\npackage acme.v1;\nmessage Ping { uint64 nonce = 1; }\n",
    )
    .unwrap();
    let set = protox::compile(["ping.proto"], [dir.path()]).unwrap();
    let id = IntentId::of_message(&set, "acme.v1.Ping").unwrap();
    (id, "acme.v1.Ping".into(), Bytes::from(set.encode_to_vec()))
}

#[test]
fn schema_fetch_verifies_the_hash() {
    let (ping, name, set) = schema();
    let (other, _, _) = {
        let mut wrong = schema();
        wrong.0 = IntentId::from_bytes([0xee; 32]);
        wrong
    };
    let acceptor = Capabilities::default()
        .with_intent(IntentOffer::handles(ping, name.clone()).with_descriptor_set(set.clone()))
        // Claims to be `other` but serves Ping's schema: its hash will not match.
        .with_intent(IntentOffer::handles(other, name.clone()).with_descriptor_set(set.clone()));
    let mut pair = Pair::new(config("d", Capabilities::default()), config("a", acceptor));
    pair.drive_to_idle();
    pair.dialer.request_schema(ping).unwrap();
    pair.dialer.request_schema(other).unwrap();
    pair.dialer.request_schema(id(0x77)).unwrap();
    pair.drive_to_idle();
    let outcomes: Vec<&Event> = pair.dialer_events.iter().skip(1).collect();
    assert_eq!(outcomes.len(), 3, "{outcomes:?}");
    assert!(outcomes.contains(&&Event::SchemaReceived { intent_id: ping, name, descriptor_set: set }));
    let failed = |wanted: IntentId| {
        outcomes.iter().find_map(|e| match e {
            Event::SchemaFailed { intent_id, refusal } if *intent_id == wanted => Some(refusal.code),
            _ => None,
        })
    };
    assert_eq!(failed(other), Some(ErrorCode::SchemaMismatch));
    assert_eq!(failed(id(0x77)), Some(ErrorCode::UnknownIntent));
    // The session goes on.
    assert!(pair.dialer.is_established() && pair.acceptor.is_established());
}

#[test]
fn schema_requests_are_bounded() {
    let mut dialer = config("d", Capabilities::default());
    dialer.max_schema_requests(2);
    let mut pair = Pair::new(dialer, config("a", Capabilities::default()));
    pair.drive_to_idle();
    pair.dialer.request_schema(id(1)).unwrap();
    pair.dialer.request_schema(id(2)).unwrap();
    assert_eq!(pair.dialer.request_schema(id(3)).unwrap_err().code, ErrorCode::TooManySchemaRequests);

    // A peer that asks faster than it reads the answers is cut off.
    let mut acceptor = config("a", Capabilities::default());
    acceptor.max_schema_requests(4);
    let mut pair = Pair::new(config("d", Capabilities::default()), acceptor);
    pair.drive_to_idle();
    let request = frame(pb::control_message::Message::DescribeRequest(pb::DescribeIntentRequest {
        intent_id: Bytes::from_static(&[1; 32]),
    }));
    let flood: Vec<u8> = std::iter::repeat_n(request.to_vec(), 10).flatten().collect();
    let now = pair.now;
    pair.acceptor.handle_data(&flood, now);
    let events: Vec<Event> = std::iter::from_fn(|| pair.acceptor.poll_event()).collect();
    assert_eq!(failure(&events).0.code, ErrorCode::TooManySchemaRequests);
}

#[test]
fn update_floods_cost_one_negotiation() {
    let mut pair = Pair::new(config("d", Capabilities::default()), config("a", Capabilities::default()));
    pair.drive_to_idle();
    let before = pair.acceptor_events.len();
    // Ten thousand empty updates: nothing changes, nothing is queued.
    let empty = frame(pb::control_message::Message::CapabilityUpdate(pb::CapabilityUpdate { added: vec![] }));
    let flood: Vec<u8> = std::iter::repeat_n(empty.to_vec(), 10_000).flatten().collect();
    pair.inject(Side::Acceptor, &flood);
    assert_eq!(pair.acceptor_events.len(), before);
    // A hundred one-intent updates in one read: one negotiation, one event.
    let updates: Vec<u8> = (0..100u8)
        .flat_map(|n| {
            frame(pb::control_message::Message::CapabilityUpdate(pb::CapabilityUpdate {
                added: vec![pb::IntentOffer {
                    intent_id: Bytes::copy_from_slice(&[n; 32]),
                    name: format!("a.I{n}"),
                    handles: true,
                    emits: true,
                    ..Default::default()
                }],
            }))
            .to_vec()
        })
        .collect();
    pair.inject(Side::Acceptor, &updates);
    assert_eq!(pair.acceptor_events.len(), before + 1);
    assert!(matches!(pair.acceptor_events.last(), Some(Event::Updated(_))));
}
