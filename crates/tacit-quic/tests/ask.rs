//! The ask lane over loopback.

use std::time::Duration;

use bytes::Bytes;
use tacit_handshake::{AgentCard, Capabilities, Identity, IntentOffer};
use tacit_quic::{AskError, AskOptions, Endpoint, Incoming, IncomingAsk, Session};
use tacit_testkit::{LOCALHOST, within};
use tacit_wire::{Act, ErrorCode, IntentId};

const ECHO: IntentId = IntentId::from_bytes([1; 32]);
const HOLD: IntentId = IntentId::from_bytes([2; 32]);
const ONLY_SERVER: IntentId = IntentId::from_bytes([3; 32]);

/// A server that handles ECHO and HOLD, a client that emits both, connected.
async fn pair(server_caps: Capabilities) -> (Endpoint, Endpoint, Session, Session) {
    let server = Endpoint::builder()
        .identity(Identity::from_secret_bytes(&[1; 32]))
        .card(AgentCard::new("server"))
        .capabilities(
            server_caps
                .with_intent(IntentOffer::handles(ECHO, "t.Echo"))
                .with_intent(IntentOffer::handles(HOLD, "t.Hold"))
                .with_intent(IntentOffer::handles(ONLY_SERVER, "t.OnlyServer")),
        )
        .bind(LOCALHOST)
        .await
        .unwrap();
    let client = Endpoint::builder()
        .identity(Identity::from_secret_bytes(&[2; 32]))
        .card(AgentCard::new("client"))
        .capabilities(
            Capabilities::default()
                .with_intent(IntentOffer::emits(ECHO, "t.Echo"))
                .with_intent(IntentOffer::emits(HOLD, "t.Hold")),
        )
        .bind(LOCALHOST)
        .await
        .unwrap();
    let dialed = within(client.connect(server.local_addr().unwrap(), Some(server.agent_id()))).await.unwrap();
    let accepted = within(server.accept()).await.unwrap().unwrap();
    (server, client, dialed, accepted)
}

/// Answers ECHO asks with their payload; hands HOLD asks to `held`.
fn serve(session: Session, held: tokio::sync::mpsc::UnboundedSender<IncomingAsk>) {
    tokio::spawn(async move {
        while let Some(Incoming::Ask(ask)) = session.next_incoming().await {
            if ask.intent == ECHO {
                let payload = ask.envelope.payload.clone();
                ask.responder.reply(ECHO, payload);
            } else {
                let _ = held.send(ask);
            }
        }
    });
}

#[tokio::test]
async fn ask_gets_its_reply_even_pipelined() {
    let (_server, _client, dialed, accepted) = pair(Capabilities::default()).await;
    let (held, _rx) = tokio::sync::mpsc::unbounded_channel();
    serve(accepted, held);
    // Sent right after connect, before the Welcome: pipelined with the full id.
    let reply = within(dialed.ask(ECHO, Bytes::from_static(b"hello"))).await.unwrap();
    assert_eq!(&reply.payload[..], b"hello");
    assert_eq!(reply.act, Act::Inform);
    // After the handshake: by alias.
    within(dialed.ready()).await.unwrap();
    let reply = within(dialed.ask(ECHO, Bytes::from_static(b"again"))).await.unwrap();
    assert_eq!(&reply.payload[..], b"again");
}

#[tokio::test]
async fn thousand_concurrent_asks_on_one_session() {
    let (_server, _client, dialed, accepted) = pair(Capabilities::default()).await;
    let (held, _rx) = tokio::sync::mpsc::unbounded_channel();
    serve(accepted, held);
    within(dialed.ready()).await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..1000u32 {
        let session = dialed.clone();
        tasks.spawn(async move {
            let reply = session.ask(ECHO, Bytes::from(i.to_le_bytes().to_vec())).await.unwrap();
            assert_eq!(&reply.payload[..], i.to_le_bytes());
        });
    }
    let mut done = 0;
    while let Some(result) = within(tasks.join_next()).await {
        result.unwrap();
        done += 1;
    }
    assert_eq!(done, 1000);
}

#[tokio::test]
async fn unnegotiated_intent_is_refused_without_a_handler_call() {
    let (_server, _client, dialed, accepted) = pair(Capabilities::default()).await;
    let (held, mut held_rx) = tokio::sync::mpsc::unbounded_channel();
    serve(accepted, held);
    within(dialed.ready()).await.unwrap();
    // The client does not emit ONLY_SERVER: refused locally, nothing sent.
    let err = within(dialed.ask(ONLY_SERVER, Bytes::new())).await.unwrap_err();
    assert_eq!(err, AskError::NotNegotiated(ONLY_SERVER));
    // An intent nobody offered.
    let unknown = IntentId::from_bytes([9; 32]);
    assert_eq!(within(dialed.ask(unknown, Bytes::new())).await.unwrap_err(), AskError::NotNegotiated(unknown));
    assert!(held_rx.try_recv().is_err(), "no handler saw anything");
}

#[tokio::test]
async fn pipelined_unknown_intent_gets_not_understood() {
    let (_server, _client, dialed, accepted) = pair(Capabilities::default()).await;
    let (held, mut held_rx) = tokio::sync::mpsc::unbounded_channel();
    serve(accepted, held);
    // Before the Welcome the client cannot know; the server answers.
    let unknown = IntentId::from_bytes([9; 32]);
    match within(dialed.ask(unknown, Bytes::new())).await {
        Err(AskError::Remote { act, refusal, .. }) => {
            assert_eq!((act, refusal.code), (Act::NotUnderstood, ErrorCode::IntentNotNegotiated));
        }
        // The Welcome may have won the race: then it is refused locally.
        Err(AskError::NotNegotiated(id)) => assert_eq!(id, unknown),
        other => panic!("{other:?}"),
    }
    assert!(held_rx.try_recv().is_err());
}

#[tokio::test]
async fn remote_refusal_and_missing_reply_carry_codes() {
    let (_server, _client, dialed, accepted) = pair(Capabilities::default()).await;
    let (held, mut held_rx) = tokio::sync::mpsc::unbounded_channel();
    serve(accepted, held);
    let asker = dialed.clone();
    let refused = tokio::spawn(async move { asker.ask(HOLD, Bytes::new()).await });
    let ask = within(held_rx.recv()).await.unwrap();
    ask.responder.refuse(ErrorCode::Unspecified, "not today");
    match within(refused).await.unwrap() {
        Err(AskError::Remote { act: Act::Refuse, refusal, .. }) => assert_eq!(refusal.reason, "not today"),
        other => panic!("{other:?}"),
    }
    let asker = dialed.clone();
    let dropped = tokio::spawn(async move { asker.ask(HOLD, Bytes::new()).await });
    drop(within(held_rx.recv()).await.unwrap());
    match within(dropped).await.unwrap() {
        Err(AskError::Remote { act: Act::Failure, refusal, .. }) => assert_eq!(refusal.code, ErrorCode::NoReply),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn deadline_and_cancel_reach_the_handler() {
    let (_server, _client, dialed, accepted) = pair(Capabilities::default()).await;
    let (held, mut held_rx) = tokio::sync::mpsc::unbounded_channel();
    serve(accepted, held);
    within(dialed.ready()).await.unwrap();
    let options = AskOptions::default().deadline(Duration::from_millis(200));
    let asker = dialed.clone();
    let asking = tokio::spawn(async move { asker.ask_with(HOLD, Bytes::new(), options).await });
    let mut ask = within(held_rx.recv()).await.unwrap();
    assert!(ask.envelope.deadline_micros > 0 && ask.envelope.deadline_micros <= 200_000);
    assert_eq!(within(asking).await.unwrap(), Err(AskError::DeadlineExceeded));
    within(ask.responder.cancelled()).await;
    assert!(ask.responder.is_cancelled());

    // Dropping the ask future cancels too.
    let asker = dialed.clone();
    let asking = tokio::spawn(async move { asker.ask(HOLD, Bytes::new()).await });
    let mut ask = within(held_rx.recv()).await.unwrap();
    asking.abort();
    within(ask.responder.cancelled()).await;
}

#[tokio::test]
async fn too_many_concurrent_asks_are_refused() {
    let mut caps = Capabilities::default();
    caps.limits.max_concurrent_asks(2);
    let (server, client, dialed, accepted) = pair(caps).await;
    let (held, mut held_rx) = tokio::sync::mpsc::unbounded_channel();
    serve(accepted, held);
    within(dialed.ready()).await.unwrap();
    let mut waiting = Vec::new();
    for _ in 0..2 {
        let asker = dialed.clone();
        waiting.push(tokio::spawn(async move { asker.ask(HOLD, Bytes::new()).await }));
    }
    let first = within(held_rx.recv()).await.unwrap();
    let second = within(held_rx.recv()).await.unwrap();
    // A third ask on the same session waits for a slot (the limit is negotiated)...
    let asker = dialed.clone();
    let third = tokio::spawn(async move { asker.ask(ECHO, Bytes::from_static(b"third")).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!third.is_finished(), "the third ask must wait for a slot");
    // ...while a second connection of the same agent, which does not share
    // that session's slots, is refused: the receiver counts per peer...
    let second_session = within(client.connect(server.local_addr().unwrap(), Some(server.agent_id()))).await.unwrap();
    let (held2, _held2_rx) = tokio::sync::mpsc::unbounded_channel();
    serve(within(server.accept()).await.unwrap().unwrap(), held2);
    match within(second_session.ask(ECHO, Bytes::new())).await {
        Err(AskError::Remote { act: Act::Refuse, refusal, .. }) => assert_eq!(refusal.code, ErrorCode::TooManyAsks),
        other => panic!("{other:?}"),
    }
    // ...while another peer's asks keep working.
    let other = Endpoint::builder()
        .identity(Identity::from_secret_bytes(&[3; 32]))
        .capabilities(Capabilities::default().with_intent(IntentOffer::emits(ECHO, "t.Echo")))
        .bind(LOCALHOST)
        .await
        .unwrap();
    let other_session = within(other.connect(server.local_addr().unwrap(), None)).await.unwrap();
    let (held3, _held3_rx) = tokio::sync::mpsc::unbounded_channel();
    serve(within(server.accept()).await.unwrap().unwrap(), held3);
    within(other_session.ask(ECHO, Bytes::from_static(b"fine"))).await.unwrap();
    // Once the held asks are answered, the waiting ask goes through.
    first.responder.reply(HOLD, Bytes::new());
    second.responder.reply(HOLD, Bytes::new());
    for task in waiting {
        within(task).await.unwrap().unwrap();
    }
    assert_eq!(&within(third).await.unwrap().unwrap().payload[..], b"third");
    within(dialed.ask(ECHO, Bytes::from_static(b"ok"))).await.unwrap();
}

#[tokio::test]
async fn connection_lost_after_sending_is_unknown() {
    let (server, _client, dialed, accepted) = pair(Capabilities::default()).await;
    let (held, mut held_rx) = tokio::sync::mpsc::unbounded_channel();
    serve(accepted, held);
    within(dialed.ready()).await.unwrap();
    let asker = dialed.clone();
    let asking = tokio::spawn(async move { asker.ask(HOLD, Bytes::new()).await });
    let _ask = within(held_rx.recv()).await.unwrap();
    server.close(ErrorCode::Shutdown, b"going away");
    match within(asking).await.unwrap() {
        Err(AskError::Unknown(_)) => {}
        other => panic!("expected Unknown, got {other:?}"),
    }
    // Asks after the loss are not sent, and say so.
    match within(dialed.ask(ECHO, Bytes::new())).await {
        Err(AskError::NotSent(_)) | Err(AskError::Unknown(_)) => {}
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn tells_and_datagrams_arrive() {
    let (_server, _client, dialed, accepted) = pair(Capabilities::default()).await;
    within(dialed.ready()).await.unwrap();
    for i in 0..100u32 {
        within(dialed.tell(ECHO, Bytes::from(i.to_le_bytes().to_vec()))).await.unwrap();
    }
    // Tells arrive reliably and in order.
    for i in 0..100u32 {
        match within(accepted.next_incoming()).await {
            Some(Incoming::Tell(message)) => {
                assert_eq!(message.intent, ECHO);
                assert_eq!(&message.envelope.payload[..], i.to_le_bytes());
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(within(dialed.tell(ONLY_SERVER, Bytes::new())).await, Err(AskError::NotNegotiated(ONLY_SERVER)));
    // Datagrams: unreliable in general, but loopback delivers this one.
    within(dialed.send_datagram(ECHO, Bytes::from_static(b"ping"))).await.unwrap();
    match within(accepted.next_incoming()).await {
        Some(Incoming::Datagram(message)) => assert_eq!(&message.envelope.payload[..], b"ping"),
        other => panic!("{other:?}"),
    }
    let too_big = Bytes::from(vec![0; 4000]);
    assert!(matches!(within(dialed.send_datagram(ECHO, too_big)).await, Err(AskError::TooLarge { .. })));
}

#[tokio::test]
async fn idempotent_retry_runs_once_across_connections() {
    let (server, client, dialed, accepted) = pair(Capabilities::default()).await;
    let executions = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (release_tx, release_rx) = tokio::sync::watch::channel(false);
    // Every session the server accepts runs HOLD asks: count, wait for release, reply.
    let handle = |session: Session| {
        let (executions, release_rx) = (executions.clone(), release_rx.clone());
        tokio::spawn(async move {
            while let Some(Incoming::Ask(ask)) = session.next_incoming().await {
                executions.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut release = release_rx.clone();
                tokio::spawn(async move {
                    let _ = release.wait_for(|released| *released).await;
                    ask.responder.reply(HOLD, Bytes::from_static(b"done"));
                });
            }
        });
    };
    handle(accepted);
    within(dialed.ready()).await.unwrap();
    let options = AskOptions::default().message_id(777).idempotent();

    // First attempt: runs, then the connection is lost before the reply.
    let asker = dialed.clone();
    let first_options = options.clone();
    let first = tokio::spawn(async move { asker.ask_with(HOLD, Bytes::new(), first_options).await });
    while executions.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    dialed.close(ErrorCode::Unspecified, "network died");
    assert!(matches!(within(first).await.unwrap(), Err(AskError::Unknown(_)) | Err(AskError::NotSent(_))));

    // Retry on a new connection while the first run is still going: it waits for that run.
    let again = within(client.connect(server.local_addr().unwrap(), Some(server.agent_id()))).await.unwrap();
    handle(within(server.accept()).await.unwrap().unwrap());
    within(again.ready()).await.unwrap();
    let asker = again.clone();
    let retry_options = options.clone();
    let retry = tokio::spawn(async move { asker.ask_with(HOLD, Bytes::new(), retry_options).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    release_tx.send(true).unwrap();
    let reply = within(retry).await.unwrap().unwrap();
    assert_eq!(&reply.payload[..], b"done");

    // A later retry gets the recorded answer.
    let reply = within(again.ask_with(HOLD, Bytes::new(), options)).await.unwrap();
    assert_eq!(&reply.payload[..], b"done");
    assert_eq!(executions.load(std::sync::atomic::Ordering::SeqCst), 1, "ran exactly once");

    // A new id runs again.
    within(again.ask(HOLD, Bytes::new())).await.unwrap();
    assert_eq!(executions.load(std::sync::atomic::Ordering::SeqCst), 2);

    // An ask not marked idempotent skips the window: the same id runs again.
    let unmarked = AskOptions::default().message_id(777);
    within(again.ask_with(HOLD, Bytes::new(), unmarked)).await.unwrap();
    assert_eq!(executions.load(std::sync::atomic::Ordering::SeqCst), 3, "not in the window");
}

#[tokio::test]
async fn graceful_shutdown_answers_in_flight_asks() {
    let (server, _client, dialed, accepted) = pair(Capabilities::default()).await;
    let (held, mut held_rx) = tokio::sync::mpsc::unbounded_channel();
    serve(accepted, held);
    within(dialed.ready()).await.unwrap();
    let mut asks = tokio::task::JoinSet::new();
    for i in 0..100u32 {
        let asker = dialed.clone();
        asks.spawn(async move { (i, asker.ask(HOLD, Bytes::from(i.to_le_bytes().to_vec())).await) });
    }
    let mut in_flight = Vec::new();
    for _ in 0..100 {
        in_flight.push(within(held_rx.recv()).await.unwrap());
    }
    // Shut down while 100 asks are being handled.
    let shutting_down = {
        let server = server.clone();
        tokio::spawn(async move { server.shutdown(Duration::from_secs(5)).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    // New asks are refused explicitly.
    match within(dialed.ask(ECHO, Bytes::new())).await {
        Err(AskError::Remote { act: Act::Refuse, refusal, .. }) => assert_eq!(refusal.code, ErrorCode::Shutdown),
        other => panic!("{other:?}"),
    }
    // The handlers finish; every in-flight ask gets its own reply.
    for ask in in_flight {
        let payload = ask.envelope.payload.clone();
        ask.responder.reply(HOLD, payload);
    }
    assert_eq!(within(shutting_down).await.unwrap(), 0, "nothing left unanswered");
    let mut replied = 0;
    while let Some(result) = within(asks.join_next()).await {
        let (i, reply) = result.unwrap();
        assert_eq!(&reply.unwrap().payload[..], i.to_le_bytes());
        replied += 1;
    }
    assert_eq!(replied, 100);
    // Then the session is closed with SHUTDOWN.
    match within(dialed.closed()).await {
        error @ tacit_quic::SessionError::Shutdown(_) => assert_eq!(error.code(), ErrorCode::Shutdown),
        other => panic!("{other:?}"),
    }
}

#[test]
fn error_texts_name_codes_by_name() {
    let refusal = tacit_handshake::Refusal::new(ErrorCode::TooManyAsks, "more than 4 asks in flight");
    let remote = AskError::Remote { act: Act::Refuse, refusal: refusal.clone(), payload: Bytes::new() };
    assert_eq!(remote.to_string(), "the peer answered REFUSE: TOO_MANY_ASKS (0x302): more than 4 asks in flight");
    let refused = tacit_quic::SessionError::Refused { refusal, by_peer: true };
    assert_eq!(refused.to_string(), "session refused by the peer: TOO_MANY_ASKS (0x302): more than 4 asks in flight");
}

/// [receipt.sign] [receipt.verify]: `AskOptions::signed(true)` signs the ask
/// with the dialer's identity for the acceptor, over the full IntentId even
/// when it travels as an alias; the receiver builds a receipt from the
/// TLS-proven peer and itself, and it verifies, also after a file round
/// trip. An unsigned ask carries no signature.
#[tokio::test]
async fn signed_ask_gives_the_receiver_a_receipt() {
    let (server, client, dialed, accepted) = pair(Capabilities::default()).await;
    let (held, mut asks) = tokio::sync::mpsc::unbounded_channel();
    let peer = accepted.peer_id();
    serve(accepted, held);
    within(dialed.ready()).await.unwrap();
    let options = AskOptions::default().signed(true).in_reply_to(9);
    let signed = tokio::spawn({
        let dialed = dialed.clone();
        async move { dialed.ask_with(HOLD, Bytes::from_static(b"order 7"), options).await }
    });
    let ask = within(asks.recv()).await.unwrap();
    assert_eq!(peer, client.agent_id());
    assert!(matches!(ask.envelope.intent, tacit_wire::IntentRef::Alias(_)));
    let receipt = tacit_handshake::Receipt::from_envelope(peer, server.agent_id(), ask.intent, &ask.envelope)
        .expect("the ask is signed");
    receipt.verify().unwrap();
    tacit_handshake::Receipt::decode(&receipt.encode_to_vec()).unwrap().verify().unwrap();
    // The receiver is part of what is signed: another receiver's receipt fails.
    let elsewhere = tacit_handshake::Receipt { receiver: Identity::from_secret_bytes(&[9; 32]).agent_id(), ..receipt };
    assert!(elsewhere.verify().is_err());
    ask.responder.reply(HOLD, Bytes::new());
    within(signed).await.unwrap().unwrap();

    let unsigned = tokio::spawn(async move { dialed.ask(HOLD, Bytes::from_static(b"plain")).await });
    let ask = within(asks.recv()).await.unwrap();
    assert!(ask.envelope.signature.is_none());
    ask.responder.reply(HOLD, Bytes::new());
    within(unsigned).await.unwrap().unwrap();
}

/// [receipt.sign]: `TellOptions::signed(true)` signs a tell too.
#[tokio::test]
async fn signed_tell_gives_the_receiver_a_receipt() {
    let (server, client, dialed, accepted) = pair(Capabilities::default()).await;
    within(dialed.ready()).await.unwrap();
    let options = tacit_quic::TellOptions::default().signed(true);
    within(dialed.tell_with(ECHO, Bytes::from_static(b"note"), options)).await.unwrap();
    let Some(Incoming::Tell(tell)) = within(accepted.next_incoming()).await else { panic!("expected a tell") };
    let receipt =
        tacit_handshake::Receipt::from_envelope(client.agent_id(), server.agent_id(), tell.intent, &tell.envelope)
            .expect("the tell is signed");
    assert_eq!(receipt.act, Act::Inform);
    receipt.verify().unwrap();
}
