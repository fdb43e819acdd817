//! The stream lane's data envelopes answer the opening in both directions
//! (docs/PROTOCOL.md, "Stream lane"): `in_reply_to` is the opening's
//! `message_id`. Found by `tacit conformance` (`lane.exchange`): the
//! handler's side used an id of its own.

use bytes::Bytes;
use tacit_handshake::{AgentCard, Capabilities, Identity, IntentOffer};
use tacit_quic::{Endpoint, Incoming};
use tacit_testkit::{LOCALHOST, within};
use tacit_wire::{Act, IntentId};

const FEED: IntentId = IntentId::from_bytes([6; 32]);

async fn endpoint(seed: u8, offer: IntentOffer) -> Endpoint {
    Endpoint::builder()
        .identity(Identity::from_secret_bytes(&[seed; 32]))
        .card(AgentCard::new("feed"))
        .capabilities(Capabilities::default().with_intent(offer))
        .bind(LOCALHOST)
        .await
        .unwrap()
}

#[tokio::test]
async fn data_envelopes_answer_the_opening_both_ways() {
    let server = endpoint(1, IntentOffer::handles(FEED, "t.Feed")).await;
    let client = endpoint(2, IntentOffer::emits(FEED, "t.Feed")).await;
    let accepting = server.clone();
    let handler = tokio::spawn(async move {
        let session = accepting.accept().await.unwrap().unwrap();
        let Some(Incoming::Stream(mut stream)) = session.next_incoming().await else { panic!("a stream") };
        let opening = stream.envelope.message_id;
        let from_opener = stream.receiver.recv().await.unwrap().unwrap();
        stream.sender.send(Bytes::from_static(b"item")).await.unwrap();
        stream.sender.finish().await.unwrap();
        (opening, from_opener.in_reply_to, session)
    });
    let session = within(client.connect(server.local_addr().unwrap(), None)).await.unwrap();
    within(session.ready()).await.unwrap();
    let (mut sender, mut receiver) = within(session.open_stream(FEED, Bytes::from_static(b"open"))).await.unwrap();
    sender.send(Bytes::from_static(b"more")).await.unwrap();
    let item = within(receiver.recv()).await.unwrap().unwrap();
    let (opening, opener_reply_to, _server_session) = within(handler).await.unwrap();
    assert_eq!(opener_reply_to, opening, "the opener's data envelopes answer its opening");
    assert_eq!((item.act, item.in_reply_to), (Act::Inform, opening), "the handler's data envelopes answer the opening");
    assert_ne!(item.message_id, opening, "the handler's own ids are its own");
    let _ = sender.finish().await;
}
