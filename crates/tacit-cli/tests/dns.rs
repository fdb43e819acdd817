//! `tacit dns record` end to end: the real binary signs a record for a key
//! file, its zone-file output is served by an in-process DNS server
//! (hickory-server on 127.0.0.1, UDP and TCP), and an agent finds the key's
//! agent through it. Loopback only, every wait bounded.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime};

use tacit::dns::{DnsLookup, record_name};
use tacit::{Agent, Identity};
use tacit_testkit::LOCALHOST;
use tacit_testkit::dns::DnsServer;

const TACIT: &str = env!("CARGO_BIN_EXE_tacit");
const LIMIT: Duration = Duration::from_secs(20);

fn tacit(args: &[&str]) -> Output {
    // `tacit dns record` does no I/O but reading the key: it cannot hang.
    Command::new(TACIT).args(args).stdin(Stdio::null()).output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_printed_by_the_cli_resolves_and_connects() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("seller.key");
    let key = key.to_str().unwrap();
    assert!(tacit(&["keygen", "--out", key]).status.success());
    let identity = Identity::load(key).unwrap();
    let seller = Agent::builder().identity(identity.clone()).bind(LOCALHOST).await.unwrap();
    let addr = seller.local_addr().unwrap().to_string();

    let out = tacit(&[
        "dns",
        "record",
        "--key",
        key,
        "--origin",
        "example.test.",
        "--addr",
        &addr,
        "--addr",
        "192.0.2.7:4433",
        "--name",
        "seller",
        "--tag",
        "gpu",
        "--tag",
        "eu",
        "--ttl",
        "600",
    ]);
    assert!(out.status.success(), "{out:?}");
    let lines = String::from_utf8(out.stdout).unwrap();
    let expected_start = format!("{} 60 IN TXT \"tacit1=", record_name(&seller.id(), "example.test"));
    assert!(lines.starts_with(&expected_start), "{lines}");
    assert_eq!(lines.lines().count(), 1, "{lines}");

    let server = DnsServer::start_with_zone("example.test.", &lines).await;
    let lookup = DnsLookup::with_nameservers("example.test", &[server.addr()]).unwrap();
    let found = tokio::time::timeout(LIMIT, lookup.resolve(seller.id())).await.unwrap().unwrap().unwrap();
    assert_eq!(found.record.name, "seller");
    assert_eq!(found.record.tags, ["gpu", "eu"]);
    assert_eq!(found.record.addrs.len(), 2);
    assert_eq!(found.record.ttl, Duration::from_secs(600));
    assert!(found.record.issued_at <= SystemTime::now());

    let buyer = Agent::builder().lookup(lookup).bind(LOCALHOST).await.unwrap();
    let peer = tokio::time::timeout(LIMIT, buyer.connect_id(seller.id())).await.unwrap().unwrap();
    assert_eq!(peer.id(), seller.id());
    assert_eq!(buyer.known_addrs(&seller.id()), vec![seller.local_addr().unwrap()]);
}

#[test]
fn dns_record_refuses_bad_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("a.key");
    let key = key.to_str().unwrap();
    assert!(tacit(&["keygen", "--out", key]).status.success());
    let base = ["dns", "record", "--key", key, "--origin", "example.test"];
    let run = |extra: &[&str]| tacit(&[&base[..], extra].concat());

    // No address: usage error.
    assert_eq!(run(&[]).status.code(), Some(2));
    assert_eq!(run(&["--addr", "not-an-addr"]).status.code(), Some(2));
    let zero = run(&["--addr", "127.0.0.1:1", "--ttl", "0"]);
    assert_eq!(zero.status.code(), Some(1), "{zero:?}");
    assert!(String::from_utf8_lossy(&zero.stderr).contains("--ttl"), "{zero:?}");
    // A record every reader would refuse is not printed.
    let twice = run(&["--addr", "127.0.0.1:1", "--addr", "127.0.0.1:1"]);
    assert_eq!(twice.status.code(), Some(1), "{twice:?}");
    assert!(twice.stdout.is_empty());
    let bad_origin = tacit(&["dns", "record", "--key", key, "--origin", "", "--addr", "127.0.0.1:1"]);
    assert_ne!(bad_origin.status.code(), Some(0), "{bad_origin:?}");
    let no_key = tacit(&["dns", "record", "--key", "/nonexistent/k", "--origin", "x.test", "--addr", "127.0.0.1:1"]);
    assert_eq!(no_key.status.code(), Some(1));
    // --dns-ttl is the TXT record's TTL.
    let custom = run(&["--addr", "127.0.0.1:1", "--dns-ttl", "30"]);
    assert!(String::from_utf8_lossy(&custom.stdout).contains(" 30 IN TXT "), "{custom:?}");
}

/// `tacit ping ID --dns DOMAIN --dns-server ADDR`: dialing by AgentId alone
/// through the record `tacit dns record` printed; an id with no record names
/// the DNS lookup in its error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_by_id_through_dns() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("agent.key");
    let key = key.to_str().unwrap().to_owned();
    assert!(tacit(&["keygen", "--out", &key]).status.success());
    let agent = Agent::builder().identity(Identity::load(&key).unwrap()).bind(LOCALHOST).await.unwrap();
    let addr = agent.local_addr().unwrap().to_string();
    let out = tacit(&["dns", "record", "--key", &key, "--origin", "example.test", "--addr", &addr]);
    assert!(out.status.success(), "{out:?}");
    let server = DnsServer::start_with_zone("example.test.", &String::from_utf8(out.stdout).unwrap()).await;
    let dns_server = server.addr().to_string();
    let id = agent.id().to_string();
    let stranger = Identity::generate().unwrap().agent_id().to_string();
    let (found, missing) = tokio::time::timeout(
        LIMIT,
        tokio::task::spawn_blocking(move || {
            let found = tacit(&["ping", &id, "--dns", "example.test", "--dns-server", &dns_server, "--count", "2"]);
            let missing = tacit(&["ping", &stranger, "--dns", "example.test", "--dns-server", &dns_server]);
            (found, missing)
        }),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(found.status.success(), "{found:?}");
    assert!(String::from_utf8_lossy(&found.stdout).contains("2 received"), "{found:?}");
    assert_eq!(missing.status.code(), Some(3), "{missing:?}");
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("memory: no address; dns example.test: no address"), "{stderr}");
    drop(server);
}
