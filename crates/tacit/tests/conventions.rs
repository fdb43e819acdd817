//! The agent conventions of docs/PROTOCOL.md over loopback: offers built
//! from handlers name their lanes and reply types, replies are
//! schema-fetchable, standard intents need no declaration by the asker,
//! and a wrong lane fails at the sender. Each test names the rule labels it
//! checks.

use std::time::Duration;

use bytes::Bytes;
use prost::Message as _;
use tacit::intents::{Ping, Pong, RejectProposal};
use tacit::transport::{AskError, Capabilities, Endpoint};
use tacit::{Agent, AgentCard, AskOptions, Error, Identity, Intent, Lane, Lanes, TellOptions};
use tacit_testkit::LOCALHOST;

/// Bounds every test: nothing here may hang.
async fn bounded<T>(test: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), test).await.expect("the test took over 30 s")
}

#[tokio::test]
async fn the_reply_of_a_standard_intent_is_named_and_fetchable() {
    // Tests reply.named and reply.fetchable: `Pong` is not an offered
    // intent, yet the offer of `Ping` names it and its schema is served
    // (before: UNKNOWN_INTENT).
    bounded(async {
        let server = Agent::builder().bind(LOCALHOST).await.unwrap();
        let client = Agent::builder().bind(LOCALHOST).await.unwrap();
        let peer = client.connect(server.local_addr().unwrap(), server.id()).await.unwrap();
        let negotiated = peer.ready().await.unwrap();
        let offer = negotiated.peer_offer(&Ping::ID).unwrap();
        assert_eq!((offer.lanes, offer.reply), (Lanes::ASK, Some(Pong::ID)));
        // Tests reply.not-offered: Pong is not negotiated, yet answers arrive.
        assert!(negotiated.intent(&Pong::ID).is_none(), "a reply is not negotiated");
        assert_eq!(peer.ask(Ping { nonce: 5 }).await.unwrap(), Pong { nonce: 5 });
        let schema = peer.describe(Pong::ID).await.unwrap();
        assert_eq!(schema.name(), Pong::NAME);
        // The tell-only standard intent names no reply.
        let offer = negotiated.peer_offer(&RejectProposal::ID).unwrap();
        assert_eq!((offer.lanes, offer.reply), (Lanes::ONE_WAY, None));
    })
    .await;
}

#[tokio::test]
async fn a_peer_that_lists_no_intents_can_ping() {
    // Tests std.implicit: a peer with an empty intent list asks Ping (by
    // the agent's alias, as negotiated) and gets Pong, not 0x301.
    bounded(async {
        let server = Agent::builder().bind(LOCALHOST).await.unwrap();
        let bare = Endpoint::builder()
            .identity(Identity::generate().unwrap())
            .card(AgentCard::new("bare"))
            .capabilities(Capabilities::default())
            .bind(LOCALHOST)
            .await
            .unwrap();
        let session = bare.connect(server.local_addr().unwrap(), Some(server.id())).await.unwrap();
        session.ready().await.unwrap();
        let payload = Bytes::from(Ping { nonce: 7 }.encode_to_vec());
        let reply = session.ask(Ping::ID, payload).await.unwrap();
        assert_eq!(Pong::decode(reply.payload).unwrap(), Pong { nonce: 7 });
        // Its own intents would still need declaring: the standard ones only.
        let unknown = session.ask(tacit::IntentId::from_bytes([9; 32]), Bytes::new()).await;
        assert!(matches!(unknown, Err(AskError::NotNegotiated(_))), "{unknown:?}");
    })
    .await;
}

#[tokio::test]
async fn a_wrong_lane_fails_before_sending() {
    // Tests hs.lanes-send through the agent API: RejectProposal is handled
    // as a tell only, Ping as an ask only.
    bounded(async {
        let server = Agent::builder().bind(LOCALHOST).await.unwrap();
        let client = Agent::builder().bind(LOCALHOST).await.unwrap();
        let peer = client.connect(server.local_addr().unwrap(), server.id()).await.unwrap();
        // Once the lanes are known (a pipelined ask is refused by the
        // receiver instead: hs.lanes-receive).
        peer.ready().await.unwrap();
        let asked = peer.ask_raw(RejectProposal::ID, Bytes::new(), AskOptions::default()).await;
        assert!(matches!(asked, Err(Error::WrongLane { lane: Lane::Ask, offered: Lanes::ONE_WAY, .. })), "{asked:?}");
        let told = peer.tell_with(Ping { nonce: 1 }, TellOptions::default()).await;
        assert!(matches!(told, Err(Error::WrongLane { lane: Lane::Tell, offered: Lanes::ASK, .. })), "{told:?}");
        assert_eq!(told.unwrap_err().code(), tacit::ErrorCode::IntentNotNegotiated);
        // The right lane works.
        assert_eq!(peer.ask(Ping { nonce: 2 }).await.unwrap(), Pong { nonce: 2 });
    })
    .await;
}
