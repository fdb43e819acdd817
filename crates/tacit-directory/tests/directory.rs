//! The directory agent over real QUIC sessions on loopback: registration
//! (and what is refused), lookups by every criterion, watches, expiry,
//! quotas, persistence across a restart, and `connect_id` through it.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tacit::credential::{Credential, OrgSigner};
use tacit::directory::{Change, DirectoryClient, Query};
use tacit::intents::{Ping, RegisterAgent};
use tacit::record::{AgentRecord, SignedAgentRecord};
use tacit::{Agent, AgentCard, AgentId, Error, ErrorCode, Identity, IntentId};
use tacit_directory::{Directory, Limits};
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(20);

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

async fn directory_agent(directory: &Directory) -> Agent {
    directory.serve(Agent::builder().card(AgentCard::new("directory"))).bind(loopback()).await.unwrap()
}

async fn client_of(directory: &Agent) -> (Agent, DirectoryClient) {
    let agent = Agent::builder().bind(loopback()).await.unwrap();
    let peer = agent.connect(directory.local_addr().unwrap(), directory.id()).await.unwrap();
    (agent, DirectoryClient::new(peer))
}

fn record(identity: &Identity, ttl: Duration) -> AgentRecord {
    AgentRecord::new(identity.agent_id(), SystemTime::now(), ttl).addr("127.0.0.1:9".parse().unwrap())
}

fn code(error: &Error) -> ErrorCode {
    error.code()
}

#[tokio::test]
async fn registers_and_finds_by_every_criterion() {
    timeout(LIMIT, async {
        let directory = Directory::in_memory(Limits::default());
        let server = directory_agent(&directory).await;
        let (_agent, client) = client_of(&server).await;
        let org = OrgSigner::generate().unwrap();
        let now = SystemTime::now();
        let reserve = IntentId::from_bytes([7; 32]);
        let mut ids = Vec::new();
        for i in 0..6u8 {
            let identity = Identity::generate().unwrap();
            let mut r = record(&identity, Duration::from_secs(60)).name(format!("agent-{i}"));
            if i % 2 == 0 {
                r = r.tag("gpu").intent(reserve, "market.v1.ReserveSlot");
            }
            if i < 2 {
                let role = if i == 0 { "seller" } else { "buyer" };
                r = r.credential(
                    org.issue(
                        &Credential::new(
                            identity.agent_id(),
                            now - Duration::from_secs(5),
                            now + Duration::from_secs(600),
                        )
                        .role(role),
                    ),
                );
            }
            let expires = client.register(&r.sign(&identity)).await.unwrap();
            assert!(expires > now + Duration::from_secs(59), "the TTL is honoured");
            ids.push(identity.agent_id());
        }
        assert_eq!(directory.len(), 6);
        let found = |q: Query| {
            let client = client.clone();
            async move {
                let found = client.find(&q, 0).await.unwrap();
                assert_eq!(found.rejected, 0);
                let mut ids: Vec<AgentId> = found.records.iter().map(|r| r.record.agent_id).collect();
                ids.sort();
                ids
            }
        };
        let mut even: Vec<AgentId> = ids.iter().step_by(2).copied().collect();
        even.sort();
        assert_eq!(found(Query::new().intent(reserve)).await, even);
        assert_eq!(found(Query::new().intent_name("market.v1.ReserveSlot")).await, even);
        assert_eq!(found(Query::new().tag("gpu")).await, even);
        let mut credentialed = vec![ids[0], ids[1]];
        credentialed.sort();
        assert_eq!(found(Query::new().org(org.org_key())).await, credentialed);
        assert_eq!(found(Query::new().role("seller")).await, vec![ids[0]]);
        assert_eq!(found(Query::new().org(org.org_key()).role("buyer")).await, vec![ids[1]]);
        assert_eq!(found(Query::new().tag("gpu").role("buyer")).await, Vec::<AgentId>::new());
        assert_eq!(found(Query::new().agent(ids[3])).await, vec![ids[3]]);
        assert_eq!(found(Query::new().tag("nobody")).await, Vec::<AgentId>::new());
        assert_eq!(found(Query::new()).await.len(), 6);
        // A limit truncates, and says so.
        let two = client.find(&Query::new(), 2).await.unwrap();
        assert_eq!(two.records.len(), 2);
        assert!(two.truncated);
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn forged_expired_stale_and_oversize_records_are_refused() {
    timeout(LIMIT, async {
        let directory = Directory::in_memory(Limits::default());
        let server = directory_agent(&directory).await;
        let (_agent, client) = client_of(&server).await;
        let owner = Identity::generate().unwrap();
        let forger = Identity::generate().unwrap();

        // Signed by another key than the AgentId it names: nobody can
        // register someone else's id.
        let forged = record(&owner, Duration::from_secs(60)).sign(&forger);
        let error = client.register(&forged).await.unwrap_err();
        assert_eq!(code(&error), ErrorCode::RecordInvalid, "{error}");
        assert!(error.to_string().contains("signature"), "{error}");

        // Expired.
        let old =
            AgentRecord::new(owner.agent_id(), SystemTime::now() - Duration::from_secs(120), Duration::from_secs(60))
                .sign(&owner);
        assert_eq!(code(&client.register(&old).await.unwrap_err()), ErrorCode::RecordExpired);

        // Newer replaces older; older after newer is stale; the same again is fine.
        let first = record(&owner, Duration::from_secs(60)).sign(&owner);
        tokio::time::sleep(Duration::from_millis(5)).await;
        let second = record(&owner, Duration::from_secs(60)).name("second").sign(&owner);
        client.register(&second).await.unwrap();
        assert_eq!(code(&client.register(&first).await.unwrap_err()), ErrorCode::RecordStale);
        client.register(&second).await.unwrap();
        let held = client.find(&Query::new().agent(owner.agent_id()), 1).await.unwrap();
        assert_eq!(held.records[0].record.name, "second");

        // Thousands of addresses, and a record over 16 KiB: refused by size
        // before anything else.
        let peer = client.peer();
        let huge = Bytes::from(vec![0x0a; 20_000]);
        let error = peer.ask(RegisterAgent { signed_record: huge }).await.unwrap_err();
        assert_eq!(code(&error), ErrorCode::RecordInvalid, "{error}");
        let mut many = record(&owner, Duration::from_secs(60));
        for port in 0..3000u16 {
            many = many.addr(SocketAddr::from(([10, 0, (port >> 8) as u8, port as u8], 4433)));
        }
        let error = client.register(&many.sign(&owner)).await.unwrap_err();
        assert_eq!(code(&error), ErrorCode::RecordInvalid, "{error}");
        // Garbage.
        let error = peer.ask(RegisterAgent { signed_record: Bytes::from_static(b"\xff\xff\xff") }).await.unwrap_err();
        assert_eq!(code(&error), ErrorCode::RecordInvalid, "{error}");
        assert_eq!(directory.len(), 1, "only the good record is held");
        // The directory still serves.
        peer.ask(Ping { nonce: 1 }).await.unwrap();
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_registration_flood_hits_the_quota_and_no_one_else() {
    timeout(LIMIT, async {
        let directory = Directory::in_memory(Limits::default().registrations_per_minute(20).records_per_peer(4));
        let server = directory_agent(&directory).await;
        let (_flooder, flood) = client_of(&server).await;
        let (_other, other) = client_of(&server).await;

        // Relaying: four records of other agents fit, the fifth is over the
        // records held per peer.
        let relayed: Vec<Identity> = (0..5).map(|_| Identity::generate().unwrap()).collect();
        for identity in &relayed[..4] {
            flood.register(&record(identity, Duration::from_secs(60)).sign(identity)).await.unwrap();
        }
        let error = flood.register(&record(&relayed[4], Duration::from_secs(60)).sign(&relayed[4])).await.unwrap_err();
        assert_eq!(code(&error), ErrorCode::QuotaExceeded, "{error}");
        // Refreshing one it holds is still fine.
        tokio::time::sleep(Duration::from_millis(5)).await;
        flood.register(&record(&relayed[0], Duration::from_secs(60)).sign(&relayed[0])).await.unwrap();

        // A flood of refreshes: over 20 a minute is refused.
        let mut refused = 0;
        for _ in 0..40 {
            let r = record(&relayed[1], Duration::from_secs(60)).sign(&relayed[1]);
            match flood.register(&r).await {
                Ok(_) => {}
                Err(e) if code(&e) == ErrorCode::QuotaExceeded => refused += 1,
                Err(e) if code(&e) == ErrorCode::RecordStale => {}
                Err(e) => panic!("{e}"),
            }
        }
        assert!(refused >= 20, "{refused} refused");
        // Another peer is unaffected.
        let mine = Identity::generate().unwrap();
        other.register(&record(&mine, Duration::from_secs(60)).sign(&mine)).await.unwrap();
        assert_eq!(other.find(&Query::new().agent(mine.agent_id()), 1).await.unwrap().records.len(), 1);
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn records_expire_and_watchers_see_every_change() {
    timeout(LIMIT, async {
        let directory = Directory::in_memory(Limits::default());
        let server = directory_agent(&directory).await;
        let (_agent, client) = client_of(&server).await;
        let early = Identity::generate().unwrap();
        client.register(&record(&early, Duration::from_secs(60)).tag("gpu").sign(&early)).await.unwrap();

        let mut watch = client.watch(&Query::new().tag("gpu")).await.unwrap();
        match watch.next().await.unwrap().unwrap() {
            Change::Present(r) => assert_eq!(r.record.agent_id, early.agent_id()),
            other => panic!("{other:?}"),
        }
        assert!(matches!(watch.next().await.unwrap().unwrap(), Change::Synced));

        // Not matching: not seen. Matching, with a 1 s TTL: seen, then expired.
        let cpu = Identity::generate().unwrap();
        client.register(&record(&cpu, Duration::from_secs(60)).tag("cpu").sign(&cpu)).await.unwrap();
        let brief = Identity::generate().unwrap();
        client.register(&record(&brief, Duration::from_secs(1)).tag("gpu").sign(&brief)).await.unwrap();
        match watch.next().await.unwrap().unwrap() {
            Change::Present(r) => assert_eq!(r.record.agent_id, brief.agent_id()),
            other => panic!("{other:?}"),
        }
        let started = std::time::Instant::now();
        match watch.next().await.unwrap().unwrap() {
            Change::Expired(id) => assert_eq!(id, brief.agent_id()),
            other => panic!("{other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(3), "expired on time: {:?}", started.elapsed());
        assert!(client.find(&Query::new().agent(brief.agent_id()), 1).await.unwrap().records.is_empty());
        assert_eq!(directory.len(), 2);
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_restart_loses_no_acknowledged_registration() {
    timeout(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("directory.redb");
        let kept = Identity::generate().unwrap();
        let brief = Identity::generate().unwrap();
        let key = Identity::generate().unwrap();
        {
            let directory = Directory::open(&path, Limits::default()).unwrap();
            let server = directory.serve(Agent::builder().identity(key.clone())).bind(loopback()).await.unwrap();
            let (_agent, client) = client_of(&server).await;
            client.register(&record(&kept, Duration::from_secs(600)).tag("gpu").sign(&kept)).await.unwrap();
            client.register(&record(&brief, Duration::from_secs(1)).sign(&brief)).await.unwrap();
            // Dropped without a shutdown, right after the acknowledgements.
        }
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let directory = Directory::open(&path, Limits::default()).unwrap();
        assert_eq!(directory.loaded().records, 1, "{:?}", directory.loaded());
        assert_eq!(directory.loaded().dropped, 1, "the expired record is dropped on load");
        let server = directory.serve(Agent::builder().identity(key)).bind(loopback()).await.unwrap();
        let (_agent, client) = client_of(&server).await;
        let found = client.find(&Query::new().tag("gpu"), 0).await.unwrap();
        assert_eq!(found.records.len(), 1);
        assert_eq!(found.records[0].record.agent_id, kept.agent_id());
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn connect_id_through_the_directory() {
    timeout(LIMIT, async {
        let directory = Directory::in_memory(Limits::default());
        let server = directory_agent(&directory).await;
        let (addr, id) = (server.local_addr().unwrap(), server.id());
        let seller = Agent::builder()
            .card(AgentCard::new("seller").with_role("gpu"))
            .directory(addr, id)
            .record_ttl(Duration::from_secs(30))
            .bind(loopback())
            .await
            .unwrap();
        timeout(Duration::from_secs(5), seller.registered()).await.expect("registered");
        let buyer = Agent::builder().directory(addr, id).bind(loopback()).await.unwrap();
        let peer = buyer.connect_id(seller.id()).await.unwrap();
        assert_eq!(peer.id(), seller.id());
        peer.ask(Ping { nonce: 7 }).await.unwrap();
        assert_eq!(buyer.known_addrs(&seller.id()), vec![seller.local_addr().unwrap()], "remembered");

        // Nobody registered this one: the error names every lookup tried.
        let nobody = Identity::generate().unwrap().agent_id();
        let error = buyer.connect_id(nobody).await.unwrap_err();
        assert_eq!(error.code(), ErrorCode::NotFound);
        let text = error.to_string();
        assert!(text.contains("memory: no address"), "{text}");
        assert!(text.contains(&format!("directory {}@{addr}: no address", id.short())), "{text}");

        // A record pointing at a dead address: the dial fails, and says where.
        let ghost = Identity::generate().unwrap();
        let dead = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let ghost_record = AgentRecord::new(ghost.agent_id(), SystemTime::now(), Duration::from_secs(60))
            .addr(dead.local_addr().unwrap());
        DirectoryClient::new(buyer.connect(addr, id).await.unwrap())
            .register(&ghost_record.sign(&ghost))
            .await
            .unwrap();
        let quick = Agent::builder()
            .directory(addr, id)
            .connect_timeout(Duration::from_millis(500))
            .bind(loopback())
            .await
            .unwrap();
        let error = quick.connect_id(ghost.agent_id()).await.unwrap_err();
        assert!(error.to_string().contains(&dead.local_addr().unwrap().to_string()), "{error}");
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_lying_directory_cannot_impersonate() {
    // A record that verifies but points at another agent's address: the TLS
    // handshake refuses the impostor.
    timeout(LIMIT, async {
        let directory = Directory::in_memory(Limits::default());
        let server = directory_agent(&directory).await;
        let (addr, id) = (server.local_addr().unwrap(), server.id());
        let impostor = Agent::builder().bind(loopback()).await.unwrap();
        let victim = Identity::generate().unwrap();
        let lie = AgentRecord::new(victim.agent_id(), SystemTime::now(), Duration::from_secs(60))
            .addr(impostor.local_addr().unwrap());
        let client = DirectoryClient::new(impostor.connect(addr, id).await.unwrap());
        client.register(&lie.sign(&victim)).await.unwrap();
        let buyer = Agent::builder().directory(addr, id).bind(loopback()).await.unwrap();
        let error = buyer.connect_id(victim.agent_id()).await.unwrap_err();
        assert_eq!(error.code(), ErrorCode::NotFound, "{error}");
        let _ = SignedAgentRecord::decode(&lie.sign(&victim).encode()).unwrap();
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn watches_over_the_per_peer_limit_are_refused_with_a_code() {
    timeout(LIMIT, async {
        let directory = Directory::in_memory(Limits::default().watches_per_peer(2));
        let server = directory_agent(&directory).await;
        let (agent, client) = client_of(&server).await;
        let (_other_agent, other) = client_of(&server).await;
        let mut held = Vec::new();
        for _ in 0..2 {
            let mut watch = client.watch(&Query::new()).await.unwrap();
            assert!(matches!(watch.next().await.unwrap().unwrap(), Change::Synced));
            held.push(watch);
        }
        let mut third = client.watch(&Query::new()).await.unwrap();
        let error = third.next().await.unwrap().unwrap_err();
        assert_eq!(error.code(), ErrorCode::QuotaExceeded, "{error}");
        // Another peer still watches.
        let mut theirs = other.watch(&Query::new()).await.unwrap();
        assert!(matches!(theirs.next().await.unwrap().unwrap(), Change::Synced));
        // The watches end with their connection: the same agent, connected
        // again, watches again.
        drop(held);
        drop(third);
        client.peer().close();
        let peer = agent.connect(server.local_addr().unwrap(), server.id()).await.unwrap();
        let again = DirectoryClient::new(peer);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let mut watch = again.watch(&Query::new()).await.unwrap();
            match watch.next().await.unwrap() {
                Ok(Change::Synced) => break,
                Err(e) if e.code() == ErrorCode::QuotaExceeded && std::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                other => panic!("{other:?}"),
            }
        }
    })
    .await
    .unwrap();
}
