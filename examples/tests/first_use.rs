//! Intents offered on first use (not declared with `emits`), under the two
//! conditions that broke them (found by the Python suite, issue 16):
//! many first asks at once, and a server that crashes and restarts.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use tacit::{Agent, AgentCard, AgentId, AskOptions, Error};
use tacit_examples::echo::v1::Echo;
use tacit_examples::echo_service;
use tacit_testkit::LOCALHOST;

const ECHO_SERVER: &str = env!("CARGO_BIN_EXE_echo-server");

fn echo(text: &str) -> Echo {
    Echo { text: text.into(), sent_at_micros: 0 }
}

/// 64 askers at once on each new connection: their offers of the intent
/// race. Before the fix most were refused (`INVALID_CAPABILITIES`, "offered
/// twice"), and some went out before the peer had applied the offer
/// (`INTENT_NOT_NEGOTIATED`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_asks_all_go_through() {
    tacit_testkit::within_for(Duration::from_secs(60), "the test", async {
        let (mut ok, mut failed) = (0, Vec::new());
        for _ in 0..20 {
            let server = echo_service::agent(Arc::new(AtomicU64::new(0))).bind(LOCALHOST).await.unwrap();
            let client = Agent::builder().card(AgentCard::new("client")).bind(LOCALHOST).await.unwrap();
            let peer = client.connect(server.local_addr().unwrap(), server.id()).await.unwrap();
            let mut askers = tokio::task::JoinSet::new();
            for _ in 0..64 {
                let peer = peer.clone();
                askers.spawn(async move {
                    for _ in 0..10 {
                        peer.ask(echo("x")).await?;
                    }
                    Ok::<_, Error>(())
                });
            }
            while let Some(done) = askers.join_next().await {
                match done.unwrap() {
                    Ok(()) => ok += 1,
                    Err(error) => failed.push(error.to_string()),
                }
            }
            client.shutdown(Duration::from_millis(50)).await;
            server.shutdown(Duration::from_millis(50)).await;
        }
        assert!(failed.is_empty(), "{} of {} askers failed, e.g. {:?}", failed.len(), ok + failed.len(), failed[0]);
    })
    .await;
}

/// An `echo-server` process on `port` with `key`; its AgentId.
fn start(port: u16, key: &std::path::Path) -> (Child, AgentId) {
    let mut child = Command::new(ECHO_SERVER)
        .args(["--addr", &format!("127.0.0.1:{port}"), "--key"])
        .arg(key)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    // "listening on ADDR as ID"
    let id = line.split_whitespace().skip_while(|word| *word != "as").nth(1).unwrap_or_else(|| panic!("{line:?}"));
    (child, id.parse().unwrap())
}

/// The server crashes (SIGKILL) and restarts on the same port and key: the
/// idempotent ask re-sent on the new session finds the intent offered there.
/// Before the fix the offer held only for the first session, and the
/// restarted server refused the ask `INTENT_NOT_NEGOTIATED`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_and_restarted_server_gets_the_offer_again() {
    tacit_testkit::within_for(Duration::from_secs(60), "the test", async {
        let dir = std::env::temp_dir().join(format!("tacit-first-use-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("server.key");
        let port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let (mut server, id) = start(port, &key);
        let client = Agent::builder().card(AgentCard::new("client")).bind(LOCALHOST).await.unwrap();
        let peer = client.connect(format!("127.0.0.1:{port}").parse().unwrap(), id).await.unwrap();
        assert_eq!(peer.ask(echo("before")).await.unwrap().text, "before");
        server.kill().unwrap();
        server.wait().unwrap();
        let (mut server, again) = start(port, &key);
        assert_eq!(again, id);
        let options = AskOptions::default().idempotent().deadline(Duration::from_secs(10));
        let answer = peer.ask_with(echo("after"), options).await;
        let next = peer.ask(echo("next")).await;
        server.kill().unwrap();
        server.wait().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(answer.unwrap().message.text, "after");
        assert_eq!(next.unwrap().text, "next");
    })
    .await;
}
