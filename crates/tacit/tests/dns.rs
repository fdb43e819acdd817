//! DNS discovery (feature `dns`) against a real authoritative server:
//! hickory-server in process on 127.0.0.1 (UDP and TCP, a fresh port per
//! test), one in-memory zone `example.test.`. Agents bind loopback only;
//! every wait is bounded.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use data_encoding::BASE64URL_NOPAD;
use tacit::discovery::Lookup;
use tacit::dns::{
    DnsLookup, DnsRecordError, MAX_TXT_RECORDS, MAX_TXT_VALUE_LEN, TXT_PREFIX, parse_txt, record_name, txt_strings,
    verify_txt, zone_lines,
};
use tacit::record::{AgentRecord, RecordError, SignedAgentRecord};
use tacit::{Agent, AgentId, Error, Identity, IntentId};
use tacit_testkit::LOCALHOST;
use tacit_testkit::dns::DnsServer;

const ORIGIN: &str = "example.test";
const LIMIT: Duration = Duration::from_secs(20);

async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, future).await.unwrap_or_else(|_| panic!("{what} took over {LIMIT:?}"))
}

fn identity() -> Identity {
    Identity::generate().unwrap()
}

async fn agent(identity: Identity) -> Agent {
    Agent::builder().identity(identity).bind(LOCALHOST).await.unwrap()
}

async fn client(server: &DnsServer) -> Agent {
    Agent::builder()
        .connect_timeout(Duration::from_secs(3))
        .lookup(DnsLookup::with_nameservers(ORIGIN, &[server.addr()]).unwrap())
        .bind(LOCALHOST)
        .await
        .unwrap()
}

fn record(identity: &Identity, addrs: &[SocketAddr]) -> AgentRecord {
    let mut record = AgentRecord::new(identity.agent_id(), SystemTime::now(), Duration::from_secs(300));
    record.addrs = addrs.to_vec();
    record
}

fn strings(record: &SignedAgentRecord) -> Vec<Vec<u8>> {
    txt_strings(record).into_iter().map(String::into_bytes).collect()
}

/// `value` cut into 255-byte character-strings.
fn split(value: &[u8]) -> Vec<Vec<u8>> {
    value.chunks(255).map(<[u8]>::to_vec).collect()
}

async fn publish(server: &DnsServer, id: &AgentId, txt: Vec<Vec<u8>>) {
    server.add_txt(&record_name(id, ORIGIN), txt).await;
}

/// What `connect_id` says for `id`, which must fail.
async fn not_found(client: &Agent, id: AgentId) -> String {
    match within("connect_id", client.connect_id(id)).await {
        Err(e @ Error::NotFound { .. }) => e.to_string(),
        Err(e) => panic!("expected NotFound, got {e}"),
        Ok(peer) => panic!("connected to {}", peer.id()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_id_finds_an_agent_published_in_dns() {
    let seller_identity = identity();
    let seller = agent(seller_identity.clone()).await;
    let addr = seller.local_addr().unwrap();
    // The zone as an operator writes it: the lines of `zone_lines`, read by
    // hickory's zone-file parser.
    let lines = zone_lines(&seller.record(None), ORIGIN, 60);
    assert!(lines.starts_with(&format!("_tacit.{}.example.test. 60 IN TXT \"tacit1=", seller.id())), "{lines}");
    let server = DnsServer::start_with_zone("example.test.", &lines).await;
    let buyer = client(&server).await;
    assert!(buyer.known_addrs(&seller.id()).is_empty());

    let peer = within("connect_id", buyer.connect_id(seller.id())).await.unwrap();
    assert_eq!(peer.id(), seller.id());
    // The memory lookup remembers where the agent was found.
    assert_eq!(buyer.known_addrs(&seller.id()), vec![addr]);

    // The lookup itself: the verified record, the seller's own.
    let lookup = DnsLookup::with_nameservers("Example.Test.", &[server.addr()]).unwrap();
    assert_eq!(lookup.name(), "dns example.test");
    let found = within("resolve", lookup.resolve(seller.id())).await.unwrap().unwrap();
    assert_eq!(found.record.agent_id, seller.id());
    assert_eq!(found.record.addrs, vec![addr]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_id_dials_every_address_of_the_record() {
    let server = DnsServer::start(ORIGIN).await;
    let seller_identity = identity();
    let seller = agent(seller_identity.clone()).await;
    let alive = seller.local_addr().unwrap();
    // A socket that takes datagrams and never answers: a dead agent.
    let dead_socket = UdpSocket::bind(LOCALHOST).unwrap();
    let dead = dead_socket.local_addr().unwrap();
    let signed = record(&seller_identity, &[dead, alive]).sign(&seller_identity);
    publish(&server, &seller.id(), strings(&signed)).await;

    let buyer = client(&server).await;
    let started = Instant::now();
    let peer = within("connect_id", buyer.connect_id(seller.id())).await.unwrap();
    assert_eq!(peer.id(), seller.id());
    // Dialed at once, not one after the other: no connect timeout spent on the dead one.
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    assert_eq!(buyer.known_addrs(&seller.id()), vec![alive]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_newest_valid_record_wins_and_other_txt_is_ignored() {
    let server = DnsServer::start(ORIGIN).await;
    let seller_identity = identity();
    let seller = agent(seller_identity.clone()).await;
    let alive = seller.local_addr().unwrap();
    let stale_addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let mut older = record(&seller_identity, &[stale_addr]);
    older.issued_at -= Duration::from_secs(60);
    let newer = record(&seller_identity, &[alive]);
    let id = seller.id();
    publish(&server, &id, strings(&older.sign(&seller_identity))).await;
    publish(&server, &id, vec![b"v=spf1 -all".to_vec()]).await;
    publish(&server, &id, strings(&newer.sign(&seller_identity))).await;
    publish(&server, &id, vec![b"tacit2=".to_vec(), b"AAAA".to_vec()]).await;

    let lookup = DnsLookup::with_nameservers(ORIGIN, &[server.addr()]).unwrap();
    let found = within("resolve", lookup.resolve(id)).await.unwrap().unwrap();
    assert_eq!(found.record.addrs, vec![alive]);

    let buyer = client(&server).await;
    assert_eq!(within("connect_id", buyer.connect_id(id)).await.unwrap().id(), id);
}

/// The TXT records (each its character-strings) to publish under a victim's name.
type MakeTxt = dyn Fn(&Identity) -> Vec<Vec<Vec<u8>>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_expired_and_malformed_records_are_refused() {
    let server = DnsServer::start(ORIGIN).await;
    let buyer = client(&server).await;
    let lookup = DnsLookup::with_nameservers(ORIGIN, &[server.addr()]).unwrap();
    let somewhere: SocketAddr = "127.0.0.1:9".parse().unwrap();

    // (what is published under a fresh id's name, what the error must say)
    let mut cases: Vec<(&str, Box<MakeTxt>, &str)> = Vec::new();
    cases.push((
        "signed by another key",
        Box::new(move |victim| vec![strings(&record(victim, &[somewhere]).sign(&identity()))]),
        "signature does not verify",
    ));
    cases.push((
        "another agent's valid record",
        Box::new(move |_| {
            let other = identity();
            vec![strings(&record(&other, &[somewhere]).sign(&other))]
        }),
        "the record is for",
    ));
    cases.push((
        "expired",
        Box::new(move |victim| {
            let mut old = record(victim, &[somewhere]);
            old.issued_at = SystemTime::now() - Duration::from_secs(7200);
            old.ttl = Duration::from_secs(60);
            vec![strings(&old.sign(victim))]
        }),
        "expired",
    ));
    cases.push(("bad base64", Box::new(|_| vec![vec![b"tacit1=not*base64!".to_vec()]]), "not unpadded base64url"));
    cases.push((
        "truncated body",
        Box::new(move |victim| {
            let encoded = record(victim, &[somewhere]).sign(victim).encode();
            let cut = format!("{TXT_PREFIX}{}", BASE64URL_NOPAD.encode(&encoded[..encoded.len() - 20]));
            vec![split(cut.as_bytes())]
        }),
        "malformed record",
    ));
    cases.push((
        "a 3000-byte value",
        Box::new(|_| {
            let mut value = TXT_PREFIX.as_bytes().to_vec();
            value.resize(3000, b'A');
            vec![split(&value)]
        }),
        "TXT record at",
    ));
    cases.push((
        "a value over the limit",
        Box::new(|_| {
            let mut value = TXT_PREFIX.as_bytes().to_vec();
            value.resize(MAX_TXT_VALUE_LEN + 100, b'A');
            vec![split(&value)]
        }),
        "over the limit",
    ));
    cases.push((
        "20 TXT records",
        Box::new(move |victim| (0..20).map(|_| strings(&record(victim, &[somewhere]).sign(&identity()))).collect()),
        "8 TXT records at",
    ));

    for (what, make, expected) in &cases {
        let victim = identity();
        let id = victim.agent_id();
        for txt in make(&victim) {
            publish(&server, &id, txt).await;
        }
        let error = within(what, lookup.resolve(id)).await.expect_err(what).to_string();
        assert!(error.contains(expected), "{what}: {error}");
        assert!(error.contains("none valid"), "{what}: {error}");
        println!("{what}: {error}");
        let said = not_found(&buyer, id).await;
        assert!(said.contains("dns example.test: ") && said.contains(expected), "{what}: {said}");
    }
    // 20 TXT records: only MAX_TXT_RECORDS are read.
    assert_eq!(MAX_TXT_RECORDS, 8);

    // Only other software's TXT records: no address, no error.
    let victim = identity();
    publish(&server, &victim.agent_id(), vec![b"tacit2=hello".to_vec()]).await;
    assert!(within("resolve", lookup.resolve(victim.agent_id())).await.unwrap().is_none());
    assert!(not_found(&buyer, victim.agent_id()).await.contains("dns example.test: no address"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unpublished_id_is_not_found() {
    let server = DnsServer::start(ORIGIN).await;
    let buyer = client(&server).await;
    let nobody = identity().agent_id();
    let said = not_found(&buyer, nobody).await;
    assert!(said.contains("dns example.test: no address"), "{said}");
    assert!(said.contains("memory: no address"), "{said}");
    let lookup = DnsLookup::with_nameservers(ORIGIN, &[server.addr()]).unwrap();
    assert!(within("resolve", lookup.resolve(nobody)).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_is_an_error_in_bounded_time() {
    // Takes queries, never answers (TCP to the port is refused).
    let silent = UdpSocket::bind(LOCALHOST).unwrap();
    let lookup =
        DnsLookup::with_nameservers(ORIGIN, &[silent.local_addr().unwrap()]).unwrap().timeout(Duration::from_secs(3));
    let buyer = Agent::builder().lookup(lookup).bind(LOCALHOST).await.unwrap();
    let started = Instant::now();
    let said = not_found(&buyer, identity().agent_id()).await;
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    assert!(said.contains("dns example.test: "), "{said}");
    assert!(!said.contains("dns example.test: no address"), "a silent server is not an empty answer: {said}");
}

#[test]
fn txt_values_parse_and_bound() {
    let signer = Identity::from_secret_bytes(&[7; 32]);
    let signed = record(&signer, &["127.0.0.1:4433".parse().unwrap()]).sign(&signer);
    let txt = txt_strings(&signed);
    assert!(txt.iter().all(|s| s.len() <= 255));
    assert_eq!(parse_txt(&txt).unwrap(), signed);
    assert!(verify_txt(&txt, &signer.agent_id(), SystemTime::now()).is_ok());
    assert!(matches!(
        verify_txt(&txt, &identity().agent_id(), SystemTime::now()),
        Err(DnsRecordError::Record(RecordError::WrongAgent { .. }))
    ));
    // Split anywhere: the strings are concatenated.
    let joined = txt.concat();
    let odd: Vec<&[u8]> = joined.as_bytes().chunks(3).collect();
    assert_eq!(parse_txt(odd).unwrap(), signed);
    assert_eq!(parse_txt(["v=spf1"]), Err(DnsRecordError::NotTacit));
    assert_eq!(parse_txt(Vec::<&[u8]>::new()), Err(DnsRecordError::NotTacit));
    assert_eq!(parse_txt(["tac", "it1="]).map_err(|e| matches!(e, DnsRecordError::Record(_))), Err(true));
    let long = vec![vec![b'A'; 255]; 100];
    let mut first = long.clone();
    first[0][..7].copy_from_slice(b"tacit1=");
    assert_eq!(parse_txt(&first), Err(DnsRecordError::TooLong(25_500)));
    assert_eq!(parse_txt(&long), Err(DnsRecordError::NotTacit));
    assert!(matches!(parse_txt(["tacit1=AAAA="]), Err(DnsRecordError::Base64(_))));
}

/// The test vector of docs/PROTOCOL.md ("DNS records"): a fixed key and
/// record, and the exact TXT strings they publish.
#[test]
fn the_documented_test_vector_holds() {
    let identity = Identity::from_secret_bytes(&[1; 32]);
    let id = identity.agent_id();
    let issued = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let signed = AgentRecord::new(id, issued, Duration::from_secs(3600))
        .addr("192.0.2.1:4433".parse().unwrap())
        .addr("[2001:db8::1]:4433".parse().unwrap())
        .name("seller")
        .tag("gpu")
        .tag("eu-west")
        .intent(IntentId::from_bytes([2; 32]), "market.v1.ReserveSlot")
        .sign(&identity);
    let txt = txt_strings(&signed);
    let name = record_name(&id, ORIGIN);
    let zone = zone_lines(&signed, ORIGIN, 300);
    println!("id {id}\nname {name}\nstrings {txt:#?}\nzone {zone}");
    assert_eq!(id.to_string(), VECTOR_ID);
    assert_eq!(name, format!("_tacit.{VECTOR_ID}.example.test."));
    assert_eq!(txt, VECTOR_TXT);
    assert_eq!(zone, format!("{name} 300 IN TXT {}\n", VECTOR_TXT.map(|s| format!("\"{s}\"")).join(" ")));
    let verified = verify_txt(&txt, &id, issued + Duration::from_secs(1)).unwrap();
    assert_eq!(verified.record.name, "seller");
    assert!(matches!(
        verify_txt(&txt, &id, issued + Duration::from_secs(3600)),
        Err(DnsRecordError::Record(RecordError::Expired(_)))
    ));
}

const VECTOR_ID: &str = "rkeohxlubhyzl7ks3mwtzos5olfgocn7dwkbeg7toseadnapn5oa";
const VECTOR_TXT: [&str; 2] = [
    "tacit1=CqEBCiCKiOPddAnxlf1S2y08ul1yymcJvx2UEhvzdIgBtA9vXBIOMTkyLjAuMi4xOjQ0MzMSElsyMDAxOmRiODo6MV06NDQzMxoGc2VsbGVyIgNncHUiB2V1LXdlc3QqOQogAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgISFW1hcmtldC52MS5SZXNlcnZlU2xvdDiAoPHCsTRAkBwSQCun-Ym79eIiXc0zuJDGM3oKvSRO",
    "J_HFsj1X3wRlapuKUYmqeuY-URMZKVZt2cnv_DNkHtsq1swaUFdyDFihkAs",
];
