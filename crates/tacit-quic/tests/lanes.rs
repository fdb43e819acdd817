//! Lanes and versions over loopback: an intent sent on a lane its handler
//! did not offer fails at the sender without a round trip, and a receiver
//! refuses one that arrives anyway (a pipelined ask, sent before the sender
//! knew the lanes); a version range with nothing in common is refused with
//! `NO_COMMON_VERSION`. Each test names the PROTOCOL.md rule labels it checks.

use bytes::Bytes;
use tacit_handshake::{AgentCard, Capabilities, Identity, IntentOffer, Lane, Lanes};
use tacit_quic::{AskError, Endpoint, Incoming, Session, StreamError};
use tacit_testkit::{LOCALHOST, within};
use tacit_wire::{Act, ErrorCode, IntentId, IntentRef};

/// Handled on the ask lane only.
const ASKED: IntentId = IntentId::from_bytes([0x31; 32]);
/// Handled as a tell (and datagram) only.
const TOLD: IntentId = IntentId::from_bytes([0x32; 32]);

async fn endpoint(seed: u8, capabilities: Capabilities) -> Endpoint {
    Endpoint::builder()
        .identity(Identity::from_secret_bytes(&[seed; 32]))
        .card(AgentCard::new("lanes"))
        .capabilities(capabilities)
        .bind(LOCALHOST)
        .await
        .unwrap()
}

/// A server that handles ASKED on the ask lane and TOLD on the one-way
/// lanes, and reports every piece of work that reaches it.
async fn server() -> (Endpoint, tokio::sync::mpsc::UnboundedReceiver<&'static str>) {
    let capabilities = Capabilities::default()
        .with_intent(IntentOffer::handles(ASKED, "t.Asked").on_lanes(Lanes::ASK))
        .with_intent(IntentOffer::handles(TOLD, "t.Told").on_lanes(Lanes::ONE_WAY));
    let server = endpoint(0x41, capabilities).await;
    let (report, reports) = tokio::sync::mpsc::unbounded_channel();
    let accepting = server.clone();
    tokio::spawn(async move {
        while let Some(Ok(session)) = accepting.accept().await {
            let report = report.clone();
            tokio::spawn(async move {
                while let Some(incoming) = session.next_incoming().await {
                    let what = match incoming {
                        Incoming::Ask(ask) => {
                            ask.responder.reply(ASKED, Bytes::new());
                            "ask"
                        }
                        Incoming::Stream(_) => "stream",
                        _ => "one-way",
                    };
                    let _ = report.send(what);
                }
            });
        }
    });
    (server, reports)
}

async fn client(seed: u8, server: &Endpoint) -> (Endpoint, Session) {
    let capabilities = Capabilities::default()
        .with_intent(IntentOffer::emits(ASKED, "t.Asked"))
        .with_intent(IntentOffer::emits(TOLD, "t.Told"));
    let client = endpoint(seed, capabilities).await;
    let session = within(client.connect(server.local_addr().unwrap(), None)).await.unwrap();
    (client, session)
}

#[tokio::test]
async fn a_wrong_lane_fails_at_the_sender() {
    // Tests hs.lanes-send: nothing is sent, and the error names the lanes.
    let (server, mut reports) = server().await;
    let (_client, session) = client(0x42, &server).await;
    within(session.ready()).await.unwrap();
    let told = within(session.tell(ASKED, Bytes::new())).await;
    assert_eq!(told, Err(AskError::WrongLane { intent: ASKED, lane: Lane::Tell, offered: Lanes::ASK }));
    let datagram = within(session.send_datagram(ASKED, Bytes::new())).await;
    assert!(matches!(datagram, Err(AskError::WrongLane { lane: Lane::Datagram, .. })), "{datagram:?}");
    let asked = within(session.ask(TOLD, Bytes::new())).await;
    assert_eq!(asked, Err(AskError::WrongLane { intent: TOLD, lane: Lane::Ask, offered: Lanes::ONE_WAY }));
    let opened = within(session.open_stream(ASKED, Bytes::new())).await.map(|_| ());
    assert_eq!(opened, Err(StreamError::WrongLane { intent: ASKED, offered: Lanes::ASK }));
    // The right lanes still work, and only they reached the server.
    within(session.ask(ASKED, Bytes::new())).await.unwrap();
    within(session.tell(TOLD, Bytes::new())).await.unwrap();
    assert_eq!(within(reports.recv()).await, Some("ask"));
    assert_eq!(within(reports.recv()).await, Some("one-way"));
}

#[tokio::test]
async fn a_wrong_lane_is_refused_by_the_receiver() {
    // Tests hs.lanes-receive: an ask of an intent handled only as a tell
    // (pipelined before the Welcome, so the sender could not check) gets
    // NOT_UNDERSTOOD / INTENT_NOT_NEGOTIATED and never reaches the handler.
    let (server, mut reports) = server().await;
    let (_client, session) = client(0x43, &server).await;
    match within(session.ask(TOLD, Bytes::new())).await {
        Err(AskError::Remote { act, refusal, .. }) => {
            assert_eq!((act, refusal.code), (Act::NotUnderstood, ErrorCode::IntentNotNegotiated));
        }
        // The Welcome came first: the sender refused it itself.
        Err(AskError::WrongLane { lane: Lane::Ask, .. }) => {}
        other => panic!("expected a refusal, got {other:?}"),
    }
    within(session.ask(ASKED, Bytes::new())).await.unwrap();
    assert_eq!(within(reports.recv()).await, Some("ask"), "only the right ask reached the server");
}

#[tokio::test]
async fn no_common_version_over_quic() {
    // Tests hs.version-none over QUIC: {2} against {1}.
    let (server, _reports) = server().await;
    let mut capabilities = Capabilities::default();
    capabilities.versions = 2..=2;
    let client = endpoint(0x44, capabilities).await;
    let session = within(client.connect(server.local_addr().unwrap(), None)).await.unwrap();
    let refused = within(session.ready()).await.map(|_| ()).unwrap_err();
    assert_eq!(refused.code(), ErrorCode::NoCommonVersion, "{refused}");
}

#[tokio::test]
async fn data_envelopes_carry_the_opening_intent() {
    // Tests lane.data-intent: from the opener, the handler's alias (as the
    // opening); from the handler, the opener's alias if it has one for the
    // intent, else the full IntentId.
    const FEED: IntentId = IntentId::from_bytes([0x33; 32]);
    for opener_handles_it_too in [false, true] {
        let offer = IntentOffer::handles(FEED, "t.Feed").on_lanes(Lanes::STREAM).and_emits();
        let server = endpoint(0x45, Capabilities::default().with_intent(asked_offer()).with_intent(offer)).await;
        let accepting = server.clone();
        let (seen, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let session = accepting.accept().await.unwrap().unwrap();
            while let Some(incoming) = session.next_incoming().await {
                let Incoming::Stream(mut stream) = incoming else { continue };
                let data = stream.receiver.recv().await.unwrap().unwrap();
                let _ = seen.send((stream.envelope.intent, data.intent));
                stream.sender.send(Bytes::from_static(b"item")).await.unwrap();
                stream.sender.finish().await.unwrap();
                // Until the opener ends its side.
                while let Ok(Some(_)) = stream.receiver.recv().await {}
            }
        });
        let mine = if opener_handles_it_too {
            IntentOffer::handles(FEED, "t.Feed").on_lanes(Lanes::STREAM).and_emits()
        } else {
            IntentOffer::emits(FEED, "t.Feed")
        };
        let client = endpoint(0x46, Capabilities::default().with_intent(mine)).await;
        let session = within(client.connect(server.local_addr().unwrap(), None)).await.unwrap();
        let (mut sender, mut receiver) = within(session.open_stream(FEED, Bytes::new())).await.unwrap();
        within(sender.send(Bytes::from_static(b"data"))).await.unwrap();
        let (opening, data) = within(seen_rx.recv()).await.unwrap();
        assert_eq!((opening, data), (IntentRef::Alias(2), IntentRef::Alias(2)), "FEED is 2nd in the server's list");
        let item = within(receiver.recv()).await.unwrap().unwrap();
        let expected = if opener_handles_it_too { IntentRef::Alias(1) } else { IntentRef::Id(FEED) };
        assert_eq!(item.intent, expected, "opener handles it too: {opener_handles_it_too}");
        within(sender.finish()).await.unwrap();
    }
}

fn asked_offer() -> IntentOffer {
    IntentOffer::handles(ASKED, "t.Asked").on_lanes(Lanes::ASK)
}

/// `[lane.end]`: a handler that sends an item, finishes its direction and
/// drops the stream without reading the opener's side delivers the item
/// and its end; the opener sees its own direction stopped, not the
/// handler's reset.
#[tokio::test]
async fn a_handler_that_finishes_and_drops_its_stream_delivers_what_it_sent() {
    const FEED: IntentId = IntentId::from_bytes([0x34; 32]);
    let offer = IntentOffer::handles(FEED, "t.Feed").on_lanes(Lanes::STREAM);
    let server = endpoint(0x47, Capabilities::default().with_intent(offer)).await;
    let accepting = server.clone();
    tokio::spawn(async move {
        let session = accepting.accept().await.unwrap().unwrap();
        while let Some(incoming) = session.next_incoming().await {
            let Incoming::Stream(mut stream) = incoming else { continue };
            let _data = stream.receiver.recv().await.unwrap().unwrap();
            stream.sender.send(Bytes::from_static(b"item")).await.unwrap();
            stream.sender.finish().await.unwrap();
            drop(stream.receiver);
        }
    });
    let client = endpoint(0x48, Capabilities::default().with_intent(IntentOffer::emits(FEED, "t.Feed"))).await;
    let session = within(client.connect(server.local_addr().unwrap(), None)).await.unwrap();
    let (mut sender, mut receiver) = within(session.open_stream(FEED, Bytes::new())).await.unwrap();
    within(sender.send(Bytes::from_static(b"data"))).await.unwrap();
    let item = within(receiver.recv()).await.unwrap().unwrap();
    assert_eq!(&item.payload[..], b"item");
    assert!(within(receiver.recv()).await.unwrap().is_none(), "the handler's direction ends cleanly");
}
