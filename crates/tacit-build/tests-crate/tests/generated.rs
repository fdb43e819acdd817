//! Checks the intents tacit-build generated in this crate's build script
//! against an independent computation: hand-written canonical forms
//! (docs/PROTOCOL.md, "IntentId") and a protox compile of the same files here.

use std::collections::BTreeMap;
use std::path::Path;

use bytes::Bytes;
use prost::Message as _;
use tacit::{Intent, IntentId, IntentType, Request, Subscription};
use tacit_build_tests::acme::billing::v1 as billing;
use tacit_build_tests::acme::market::v1 as market;

/// Every generated intent: (fully qualified name, ID, NAME, DESCRIPTOR_SET).
fn generated() -> Vec<(&'static str, IntentId, &'static str, &'static [u8])> {
    fn entry<T: Intent>(name: &'static str) -> (&'static str, IntentId, &'static str, &'static [u8]) {
        (name, T::ID, T::NAME, T::DESCRIPTOR_SET)
    }
    vec![
        entry::<market::ReserveSlot>("acme.market.v1.ReserveSlot"),
        entry::<market::reserve_slot::Window>("acme.market.v1.ReserveSlot.Window"),
        entry::<market::SlotReserved>("acme.market.v1.SlotReserved"),
        entry::<market::CancelSlot>("acme.market.v1.CancelSlot"),
        entry::<market::SlotCancelled>("acme.market.v1.SlotCancelled"),
        entry::<market::GetWindow>("acme.market.v1.GetWindow"),
        entry::<market::WatchOffers>("acme.market.v1.WatchOffers"),
        entry::<market::SlotOffer>("acme.market.v1.SlotOffer"),
        entry::<market::Bid>("acme.market.v1.Bid"),
        entry::<market::WatchWindow>("acme.market.v1.WatchWindow"),
        entry::<market::Money>("acme.market.v1.Money"),
        entry::<billing::Charge>("acme.billing.v1.Charge"),
    ]
}

/// The crate's protos compiled here with protox, importing the options file
/// from the repository's `proto/` (not from tacit-build's embedded copy).
fn compile_here() -> prost_types::FileDescriptorSet {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    protox::compile(
        ["acme/market/v1/market.proto", "acme/billing/v1/billing.proto"],
        [manifest.join("proto"), manifest.join("../../../proto")],
    )
    .unwrap()
}

/// All message names of the compiled set outside google.protobuf and
/// tacit.v1, map entries excluded.
fn messages_in(set: &prost_types::FileDescriptorSet) -> Vec<String> {
    fn walk(scope: &str, message: &prost_types::DescriptorProto, out: &mut Vec<String>) {
        let name = format!("{scope}.{}", message.name());
        if message.options.as_ref().and_then(|o| o.map_entry) == Some(true) {
            return;
        }
        for nested in &message.nested_type {
            walk(&name, nested, out);
        }
        out.push(name);
    }
    let mut out = Vec::new();
    for file in set.file.iter().filter(|f| f.package().starts_with("acme.")) {
        for message in &file.message_type {
            walk(file.package(), message, &mut out);
        }
    }
    out.sort();
    out
}

#[test]
fn ids_match_hand_written_canonical_forms() {
    let cancel_slot = "\
tacit intent-id v1
root acme.market.v1.CancelSlot
message acme.market.v1.CancelSlot proto3
field 1 slot_id optional uint64
";
    assert_eq!(market::CancelSlot::ID, IntentId::from_canonical(cancel_slot));

    // Reaches a nested message, a map entry, a message and an enum of
    // another file, and a well-known type; the option is not part of it.
    let reserve_slot = "\
tacit intent-id v1
root acme.market.v1.ReserveSlot
enum acme.market.v1.Currency proto3
value 0 CURRENCY_UNSPECIFIED
value 1 EUR
value 2 USD
message acme.market.v1.Money proto3
field 1 currency optional enum acme.market.v1.Currency
field 2 minor_units optional sint64
message acme.market.v1.ReserveSlot proto3
field 1 resource optional string
field 2 windows repeated message acme.market.v1.ReserveSlot.Window
field 3 labels repeated message acme.market.v1.ReserveSlot.LabelsEntry
field 4 max_price optional message acme.market.v1.Money oneof=budget
field 5 free_only optional bool oneof=budget
field 6 requested_at optional message google.protobuf.Timestamp
field 7 blob optional bytes
message acme.market.v1.ReserveSlot.LabelsEntry proto3 map_entry
field 1 key optional string
field 2 value optional string
message acme.market.v1.ReserveSlot.Window proto3
field 1 start_micros optional fixed64
field 2 end_micros optional fixed64
message google.protobuf.Timestamp proto3
field 1 seconds optional int64
field 2 nanos optional int32
";
    assert_eq!(market::ReserveSlot::ID, IntentId::from_canonical(reserve_slot));
}

#[test]
fn every_id_matches_an_independent_compile() {
    let set = compile_here();
    let generated = generated();
    let mut names: Vec<String> = generated.iter().map(|(name, ..)| (*name).to_owned()).collect();
    names.sort();
    assert_eq!(names, messages_in(&set), "every message of the protos has an Intent impl, and only those");
    for (name, id, intent_name, _) in generated {
        assert_eq!(intent_name, name);
        assert_eq!(id, IntentId::of_message(&set, name).unwrap(), "{name}");
    }
}

#[test]
fn descriptor_sets_hash_to_the_ids() {
    for (name, id, _, descriptor_set) in generated() {
        assert_eq!(IntentId::of_message_in_encoded_set(descriptor_set, name).unwrap(), id, "{name}");
    }
    assert_eq!(market::ReserveSlot::DESCRIPTOR_SET, market::FILE_DESCRIPTOR_SET);
    assert_eq!(billing::Charge::DESCRIPTOR_SET, billing::FILE_DESCRIPTOR_SET);
}

#[test]
fn descriptor_sets_hold_the_package_and_its_imports_with_comments_of_their_own_only() {
    let set = prost_types::FileDescriptorSet::decode(market::FILE_DESCRIPTOR_SET).unwrap();
    let files: Vec<&str> = set.file.iter().map(|f| f.name()).collect();
    for needed in [
        "acme/market/v1/common.proto",
        "acme/market/v1/market.proto",
        "google/protobuf/timestamp.proto",
        "tacit/v1/options.proto",
        "google/protobuf/descriptor.proto",
    ] {
        assert!(files.contains(&needed), "{needed} missing from {files:?}");
    }
    assert!(!files.contains(&"acme/billing/v1/billing.proto"), "another package's file: {files:?}");
    // Source info (comments only) for the package's own files, none for imports.
    for file in &set.file {
        let own = file.package() == "acme.market.v1";
        let locations = file.source_code_info.as_ref().map_or(&[][..], |info| &info.location[..]);
        assert!(own || locations.is_empty(), "{} has source info", file.name());
        assert!(
            locations.iter().all(|l| (l.leading_comments.is_some() || l.trailing_comments.is_some())
                && l.leading_detached_comments.is_empty()),
            "{}: locations without comments",
            file.name()
        );
    }
    let market = set.file.iter().find(|f| f.name() == "acme/market/v1/market.proto").unwrap();
    let kept = &market.source_code_info.as_ref().expect("the package's comments are kept").location;
    assert!(kept.iter().any(|l| l.leading_comments.as_deref() == Some(" Reserve a slot of a resource.\n")));

    let billing_set = prost_types::FileDescriptorSet::decode(billing::FILE_DESCRIPTOR_SET).unwrap();
    let files: Vec<&str> = billing_set.file.iter().map(|f| f.name()).collect();
    assert!(files.contains(&"acme/billing/v1/billing.proto") && files.contains(&"acme/market/v1/common.proto"));
    assert!(!files.contains(&"acme/market/v1/market.proto"), "not imported by billing: {files:?}");
}

/// Compile-time checks: each request's reply type is the one its option names.
#[test]
fn requests_name_their_replies() {
    fn reserve(reply: <market::ReserveSlot as Request>::Reply) -> market::SlotReserved {
        reply
    }
    fn cancel(reply: <market::CancelSlot as Request>::Reply) -> market::SlotCancelled {
        reply
    }
    fn get_window(reply: <market::GetWindow as Request>::Reply) -> market::reserve_slot::Window {
        reply
    }
    fn charge(reply: <billing::Charge as Request>::Reply) -> market::SlotReserved {
        reply
    }
    assert_eq!(reserve(market::SlotReserved::default()).slot_id, 0);
    assert!(!cancel(market::SlotCancelled::default()).was_reserved);
    assert_eq!(get_window(market::reserve_slot::Window::default()).end_micros, 0);
    assert_eq!(charge(market::SlotReserved { slot_id: 3, ..Default::default() }).slot_id, 3);
}

/// Compile-time checks: each stream opener's item and send types are the
/// ones its options name, `()` where it names none.
#[test]
fn stream_openers_name_their_types() {
    fn offers(
        item: <market::WatchOffers as Subscription>::Item,
        send: <market::WatchOffers as Subscription>::Send,
    ) -> (market::SlotOffer, market::Bid) {
        (item, send)
    }
    fn window(
        item: <market::WatchWindow as Subscription>::Item,
        send: <market::WatchWindow as Subscription>::Send,
    ) -> (market::reserve_slot::Window, ()) {
        (item, send)
    }
    let (offer, bid) = offers(market::SlotOffer { slot_id: 4, ..Default::default() }, market::Bid::default());
    assert_eq!((offer.slot_id, bid.price_cents), (4, 0));
    assert_eq!(window(market::reserve_slot::Window::default(), ()).0.start_micros, 0);
    // The options are outside the IntentId: the canonical form names no option.
    let watch_window = "\
tacit intent-id v1
root acme.market.v1.WatchWindow
message acme.market.v1.WatchWindow proto3
field 1 slot_id optional uint64
";
    assert_eq!(market::WatchWindow::ID, IntentId::from_canonical(watch_window));
}

#[test]
fn stream_openers_name_the_ids_of_their_data_types() {
    // Tests lane.data-types: the ids the handler's offer names
    // (`stream_item`, `stream_send`) come from the options; `()` has none.
    assert_eq!(<market::WatchOffers as Subscription>::ITEM_TYPE, Some(IntentType::of::<market::SlotOffer>()));
    assert_eq!(<market::WatchOffers as Subscription>::SEND_TYPE, Some(IntentType::of::<market::Bid>()));
    let window = <market::WatchWindow as Subscription>::ITEM_TYPE.map(|t| t.name);
    assert_eq!(window, Some("acme.market.v1.ReserveSlot.Window"));
    assert_eq!(<market::WatchWindow as Subscription>::SEND_TYPE, None);
}

#[tokio::test]
async fn a_stream_handler_offers_its_data_types_and_serves_their_schemas() {
    // Tests hs.offer-stream-types and lane.data-fetchable through an agent.
    let localhost = "127.0.0.1:0".parse().unwrap();
    let server =
        tacit::Agent::builder().on_stream(|_, _: market::WatchOffers, _, _| async {}).bind(localhost).await.unwrap();
    let client = tacit::Agent::builder().bind(localhost).await.unwrap();
    let peer = client.connect(server.local_addr().unwrap(), server.id()).await.unwrap();
    let negotiated = tokio::time::timeout(std::time::Duration::from_secs(20), peer.ready()).await.unwrap().unwrap();
    let offer = negotiated.peer_offer(&market::WatchOffers::ID).unwrap();
    assert_eq!(offer.lanes, tacit::Lanes::STREAM);
    assert_eq!((offer.stream_item, offer.stream_send), (Some(market::SlotOffer::ID), Some(market::Bid::ID)));
    let schema = peer.describe(market::Bid::ID).await.unwrap();
    assert_eq!(schema.name(), "acme.market.v1.Bid");
}

#[test]
fn prost_round_trip() {
    let request = market::ReserveSlot {
        resource: "gpu-a100".into(),
        windows: vec![market::reserve_slot::Window { start_micros: 1, end_micros: 2 }],
        labels: BTreeMap::from([("region".to_owned(), "eu".to_owned())]),
        budget: Some(market::reserve_slot::Budget::MaxPrice(market::Money {
            currency: market::Currency::Eur as i32,
            minor_units: -250,
        })),
        requested_at: Some(prost_types::Timestamp { seconds: 1_700_000_000, nanos: 5 }),
        blob: Bytes::from_static(b"\x00\x01\x02"),
    };
    let encoded = Bytes::from(request.encode_to_vec());
    let decoded = market::ReserveSlot::decode(encoded.clone()).unwrap();
    assert_eq!(decoded, request);
    // `bytes` fields are `Bytes` that point into the buffer decoded from.
    assert!(encoded.as_ptr_range().contains(&decoded.blob.as_ptr()));

    let reply = market::SlotReserved {
        slot_id: 9,
        status: market::slot_reserved::Status::Reserved as i32,
        window: Some(market::reserve_slot::Window { start_micros: 3, end_micros: 4 }),
    };
    assert_eq!(market::SlotReserved::decode(reply.encode_to_vec().as_slice()).unwrap(), reply);
}

#[test]
fn include_file_gives_the_same_intents() {
    use tacit_build_tests::via_include_file::acme;
    assert_eq!(acme::market::v1::ReserveSlot::ID, market::ReserveSlot::ID);
    assert_eq!(acme::billing::v1::Charge::NAME, billing::Charge::NAME);
    fn charge(reply: <acme::billing::v1::Charge as Request>::Reply) -> acme::market::v1::SlotReserved {
        reply
    }
    assert_eq!(charge(Default::default()).slot_id, 0);
}
