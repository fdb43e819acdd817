//! The echo endpoint keeps serving what its copies stopped serving: the
//! next connection after a failed handshake, and asks after a tell.

use std::time::Duration;

use bytes::Bytes;
use tacit_handshake::{AgentCard, Capabilities, Identity, IntentOffer};
use tacit_quic::{Endpoint, Session};
use tacit_testkit::echo::{self, ECHO, EchoStats};
use tacit_testkit::{LOCALHOST, within};

async fn endpoint(seed: u8, offer: IntentOffer) -> Endpoint {
    Endpoint::builder()
        .identity(Identity::from_secret_bytes(&[seed; 32]))
        .card(AgentCard::new("t"))
        .capabilities(Capabilities::default().with_intent(offer))
        .bind(LOCALHOST)
        .await
        .unwrap()
}

async fn session(seed: u8, server: &Endpoint) -> Session {
    let client = endpoint(seed, IntentOffer::emits(ECHO, "t.Echo")).await;
    let session = within(client.connect(server.local_addr().unwrap(), None)).await.unwrap();
    within(session.ready()).await.unwrap();
    session
}

async fn assert_echoes(session: &Session, text: &'static [u8]) {
    let reply = within(session.ask(ECHO, Bytes::from_static(text))).await.unwrap();
    assert_eq!(&reply.payload[..], text);
}

async fn failures_reach(stats: &EchoStats, count: u64) {
    within(async {
        while stats.failures() < count {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn keeps_accepting_after_a_failed_handshake() {
    let server = endpoint(1, IntentOffer::handles(ECHO, "t.Echo")).await;
    let stats = echo::spawn(&server);

    // TLS completes, the capability handshake never starts: the server's
    // handshake of this connection fails.
    let raw = endpoint(2, IntentOffer::emits(ECHO, "t.Echo")).await;
    let connection = within(raw.connect_raw(server.local_addr().unwrap())).await.unwrap();
    connection.close(0u32.into(), b"no handshake");
    failures_reach(&stats, 1).await;

    let session = session(3, &server).await;
    assert_echoes(&session, b"after a failed handshake").await;
    assert_eq!(stats.asks(), 1);
}

#[tokio::test]
async fn keeps_serving_after_a_tell() {
    let server = endpoint(1, IntentOffer::handles(ECHO, "t.Echo")).await;
    let stats = echo::spawn(&server);
    let session = session(2, &server).await;
    within(session.tell(ECHO, Bytes::from_static(b"told"))).await.unwrap();
    assert_echoes(&session, b"after a tell").await;
    within(session.tell(ECHO, Bytes::from_static(b"told again"))).await.unwrap();
    assert_echoes(&session, b"after another tell").await;
    assert_eq!((stats.sessions(), stats.failures(), stats.asks()), (1, 0, 2));
}
