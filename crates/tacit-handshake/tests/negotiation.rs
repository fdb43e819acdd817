//! What the handshake negotiates beyond intents and aliases, driven in
//! memory: the protocol version, the lanes each intent is handled on, the
//! reply and stream data types offers name (and their schemas), and the
//! standard intents that need no `emits`. Each test names the rule labels
//! of docs/PROTOCOL.md it checks.

use bytes::Bytes;
use prost::Message as _;
use tacit_handshake::{
    AgentCard, Capabilities, Event, HandshakeConfig, IntentOffer, Lane, Lanes, Negotiated, Refusal, TypeSchema,
};
use tacit_testkit::pair::{Pair, Side};
use tacit_wire::{ErrorCode, FrameEncoder, IntentId, IntentRef, pb};

fn id(n: u8) -> IntentId {
    IntentId::from_bytes([n; 32])
}

fn config(name: &str, capabilities: Capabilities) -> HandshakeConfig {
    HandshakeConfig::new(AgentCard::new(name), capabilities).unwrap()
}

fn speaking(versions: std::ops::RangeInclusive<u32>) -> Capabilities {
    let mut capabilities = Capabilities::default();
    capabilities.versions = versions;
    capabilities
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

fn frame(message: pb::control_message::Message) -> Bytes {
    FrameEncoder::new(usize::MAX).encode_to_bytes(&pb::ControlMessage { message: Some(message) }).unwrap()
}

#[test]
fn versions_one_and_two_against_one_negotiate_one() {
    // Tests hs.version-highest, in both roles.
    for (dialer, acceptor) in [(1..=2, 1..=1), (1..=1, 1..=2)] {
        let mut pair = Pair::new(config("d", speaking(dialer)), config("a", speaking(acceptor)));
        pair.drive_to_idle();
        assert_eq!(established(&pair.dialer_events).version, 1);
        assert_eq!(established(&pair.acceptor_events).version, 1);
    }
    // And the highest of a wider overlap.
    let mut pair = Pair::new(config("d", speaking(1..=3)), config("a", speaking(2..=5)));
    pair.drive_to_idle();
    assert_eq!(established(&pair.dialer_events).version, 3);
}

#[test]
fn version_two_against_one_is_refused() {
    // Tests hs.version-none and hs.refusal-sent: whoever finds no common
    // version refuses with NO_COMMON_VERSION, and the peer learns that code.
    for (dialer, acceptor) in [(2..=2, 1..=1), (1..=1, 2..=2)] {
        let mut pair = Pair::new(config("d", speaking(dialer)), config("a", speaking(acceptor)));
        pair.drive_to_idle();
        let (refusal, by_peer) = failure(&pair.acceptor_events);
        assert_eq!((refusal.code, by_peer), (ErrorCode::NoCommonVersion, false));
        let (refusal, by_peer) = failure(&pair.dialer_events);
        assert_eq!((refusal.code, by_peer), (ErrorCode::NoCommonVersion, true));
    }
}

#[test]
fn lanes_and_named_types_travel_in_the_handshake() {
    // Tests hs.lanes-offer, hs.offer-reply and hs.offer-stream-types: the
    // sender learns the handler's lanes and types, and may send only there.
    let (ask, watch) = (id(1), id(2));
    let acceptor = Capabilities::default()
        .with_intent(IntentOffer::handles(ask, "acme.v1.Ask").on_lanes(Lanes::ASK).with_reply(id(11)))
        .with_intent(
            IntentOffer::handles(watch, "acme.v1.Watch").on_lanes(Lanes::STREAM).with_stream_types(Some(id(12)), None),
        );
    let dialer = Capabilities::default()
        .with_intent(IntentOffer::emits(ask, "acme.v1.Ask"))
        .with_intent(IntentOffer::emits(watch, "acme.v1.Watch"));
    let mut pair = Pair::new(config("d", dialer), config("a", acceptor));
    pair.drive_to_idle();
    let d = established(&pair.dialer_events);
    let a = established(&pair.acceptor_events);
    assert_eq!(d.send_alias_on(&ask, Lane::Ask), Ok(1));
    assert_eq!(d.send_alias_on(&ask, Lane::Stream), Err(Lanes::ASK));
    assert_eq!(d.send_alias_on(&watch, Lane::Stream), Ok(2));
    assert_eq!(d.send_alias_on(&watch, Lane::Tell), Err(Lanes::STREAM));
    assert_eq!(a.resolve_on(IntentRef::Alias(2), Lane::Stream), Some(watch));
    assert_eq!(a.resolve_on(IntentRef::Alias(2), Lane::Ask), None);
    let offer = d.peer_offer(&ask).unwrap();
    assert_eq!((offer.lanes, offer.reply), (Lanes::ASK, Some(id(11))));
    let offer = d.peer_offer(&watch).unwrap();
    assert_eq!((offer.stream_item, offer.stream_send), (Some(id(12)), None));
}

#[test]
fn an_offer_without_lanes_is_handled_on_any_lane() {
    // Tests hs.lanes-absent: a peer that predates lanes sends none.
    let mut pair = Pair::new(
        config("d", Capabilities::default().with_intent(IntentOffer::emits(id(1), "acme.v1.Ask"))),
        config("a", Capabilities::default()),
    );
    pair.drive(1);
    while pair.acceptor.poll_transmit().is_some() {}
    let old_offer = pb::IntentOffer {
        intent_id: Bytes::copy_from_slice(id(1).as_bytes()),
        name: "acme.v1.Ask".into(),
        handles: true,
        ..Default::default()
    };
    let capabilities = pb::Capabilities {
        versions: Some(pb::VersionRange { min: 1, max: 1 }),
        intents: vec![old_offer],
        limits: Some(pb::Limits { max_frame_len: 1024, max_concurrent_asks: 1 }),
        features: 0,
    };
    let welcome = pb::Welcome {
        version: 1,
        card: Some(pb::AgentCard::default()),
        capabilities: Some(capabilities),
        ..Default::default()
    };
    pair.inject(Side::Dialer, &frame(pb::control_message::Message::Welcome(welcome)));
    let d = established(&pair.dialer_events);
    for lane in Lane::ALL {
        assert_eq!(d.send_alias_on(&id(1), lane), Ok(1), "{lane}");
    }
}

#[test]
fn named_types_must_be_full_ids() {
    // Tests hs.offer-type-ids: a reply or data type that is neither empty
    // nor 32 bytes is INVALID_CAPABILITIES.
    for field in 0..3 {
        let mut offer = pb::IntentOffer {
            intent_id: Bytes::copy_from_slice(id(1).as_bytes()),
            name: "acme.v1.Ask".into(),
            handles: true,
            ..Default::default()
        };
        let short = Bytes::from_static(&[7; 31]);
        match field {
            0 => offer.reply = short,
            1 => offer.stream_item = short,
            _ => offer.stream_send = short,
        }
        let capabilities = pb::Capabilities {
            versions: Some(pb::VersionRange { min: 1, max: 1 }),
            intents: vec![offer],
            limits: Some(pb::Limits { max_frame_len: 1024, max_concurrent_asks: 1 }),
            features: 0,
        };
        let mut pair = Pair::new(config("d", Capabilities::default()), config("a", Capabilities::default()));
        while pair.dialer.poll_transmit().is_some() {}
        let hello =
            pb::Hello { card: Some(pb::AgentCard::default()), capabilities: Some(capabilities), ..Default::default() };
        pair.inject(Side::Acceptor, &frame(pb::control_message::Message::Hello(hello)));
        assert_eq!(failure(&pair.acceptor_events).0.code, ErrorCode::InvalidCapabilities);
    }
}

#[test]
fn a_handled_intent_needs_a_lane() {
    // Tests hs.lanes-offer: an offer that handles on no lane is not valid.
    let capabilities = Capabilities::default().with_intent(IntentOffer::handles(id(1), "a.A").on_lanes(Lanes::NONE));
    let refusal = HandshakeConfig::new(AgentCard::new("a"), capabilities).unwrap_err();
    assert_eq!(refusal.code, ErrorCode::InvalidCapabilities);
}

#[test]
fn standard_intents_reach_an_agent_from_a_peer_that_lists_nothing() {
    // Tests std.implicit: a peer with an empty intent list may ask the
    // standard intents the other agent handles.
    let ping = id(3);
    let agent = Capabilities::default()
        .with_intent(IntentOffer::handles(ping, "tacit.intents.v1.Ping").on_lanes(Lanes::ASK).and_emits());
    let mut pair = Pair::new(config("empty", Capabilities::default()), config("agent", agent));
    pair.drive_to_idle();
    let empty = established(&pair.dialer_events);
    let agent = established(&pair.acceptor_events);
    assert_eq!(empty.send_alias_on(&ping, Lane::Ask), Ok(1));
    assert_eq!(agent.resolve_on(IntentRef::Id(ping), Lane::Ask), Some(ping));
    // The agent emits Ping, but the empty peer handles nothing: not the other way.
    assert_eq!(agent.send_alias(&ping), None);
    tacit_handshake::fuzzing::assert_mirrored(empty, agent);
}

/// Compiles a request and its reply with protox: (ids, names, encoded set).
fn ping_pong() -> ((IntentId, IntentId), Bytes) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("ping.proto"),
        "syntax = \"proto3\";\npackage acme.v1;\n\
         message Ping { uint64 nonce = 1; }\nmessage Pong { uint64 nonce = 1; }\n",
    )
    .unwrap();
    let set = protox::compile(["ping.proto"], [dir.path()]).unwrap();
    let ping = IntentId::of_message(&set, "acme.v1.Ping").unwrap();
    let pong = IntentId::of_message(&set, "acme.v1.Pong").unwrap();
    ((ping, pong), Bytes::from(set.encode_to_vec()))
}

#[test]
fn reply_types_are_schema_fetchable() {
    // Tests reply.named and reply.fetchable: the offer of an askable intent
    // names its reply, and the agent serves the reply's schema, although
    // the reply is not offered as an intent (UNKNOWN_INTENT before).
    let ((ping, pong), set) = ping_pong();
    let acceptor = Capabilities::default().with_intent(
        IntentOffer::handles(ping, "acme.v1.Ping")
            .on_lanes(Lanes::ASK)
            .with_descriptor_set(set.clone())
            .with_reply(pong)
            .with_type_schema(TypeSchema::new(pong, "acme.v1.Pong", set.clone())),
    );
    let mut pair = Pair::new(config("d", Capabilities::default()), config("a", acceptor));
    pair.drive_to_idle();
    let reply = established(&pair.dialer_events).peer_offer(&ping).and_then(|offer| offer.reply);
    assert_eq!(reply, Some(pong));
    pair.dialer.request_schema(pong).unwrap();
    pair.drive_to_idle();
    let received = pair.dialer_events.iter().skip(1).find_map(|event| match event {
        Event::SchemaReceived { intent_id, name, .. } => Some((*intent_id, name.clone())),
        _ => None,
    });
    assert_eq!(received, Some((pong, "acme.v1.Pong".to_owned())));
    // The reply is still not an intent of the session.
    assert!(established(&pair.dialer_events).intent(&pong).is_none());
}

/// Capability sets whose offers have random lanes, and some standard names.
fn arb_capabilities() -> impl proptest::strategy::Strategy<Value = Capabilities> {
    use proptest::prelude::*;
    proptest::collection::vec((0u8..10, any::<bool>(), any::<bool>(), 1u8..16), 0..10).prop_map(|offers| {
        let mut caps = Capabilities::default();
        let mut seen = std::collections::HashSet::new();
        for (n, handles, emits, bits) in offers {
            if !seen.insert(n) {
                continue;
            }
            // Even numbers are standard intents: the name decides (std.package).
            let name = if n % 2 == 0 { format!("tacit.intents.v1.I{n}") } else { format!("acme.v1.I{n}") };
            let lanes: Lanes =
                Lane::ALL.into_iter().enumerate().filter(|(i, _)| bits & (1 << i) != 0).map(|(_, l)| l).collect();
            let mut offer = IntentOffer::handles(id(n), name).on_lanes(lanes);
            offer.handles = handles;
            offer.emits = emits;
            caps.intents.push(offer);
        }
        caps
    })
}

proptest::proptest! {
    /// Tests hs.intent-direction, hs.lanes-send, hs.lanes-receive and
    /// std.implicit for any two capability sets: both sides agree, and an
    /// intent may go on a lane exactly when the receiver handles it there
    /// and the sender emits it or it is standard.
    #[test]
    fn lanes_and_directions_agree(dialer in arb_capabilities(), acceptor in arb_capabilities()) {
        let mut pair = Pair::new(config("d", dialer.clone()), config("a", acceptor.clone()));
        pair.drive_to_idle();
        let d = established(&pair.dialer_events);
        let a = established(&pair.acceptor_events);
        tacit_handshake::fuzzing::assert_mirrored(d, a);
        for n in 0u8..10 {
            let mine = dialer.intents.iter().find(|o| o.id == id(n));
            let theirs = acceptor.intents.iter().find(|o| o.id == id(n));
            for lane in Lane::ALL {
                let allowed = theirs.is_some_and(|t| {
                    t.handles
                        && t.lanes.contains(lane)
                        && (mine.is_some_and(|m| m.emits) || tacit_handshake::is_standard(&t.name))
                });
                proptest::prop_assert_eq!(d.send_alias_on(&id(n), lane).is_ok(), allowed, "{} {}", n, lane);
                proptest::prop_assert_eq!(a.resolve_on(IntentRef::Id(id(n)), lane).is_some(), allowed);
            }
        }
    }
}
