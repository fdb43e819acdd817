//! Smoke tests: runs each example binary with small arguments, on
//! 127.0.0.1 only, and checks its exit code and output. Every process is
//! killed if it runs over [`LIMIT`].

use std::io::{BufRead, BufReader, Read};
use std::net::UdpSocket;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use tacit_testkit::process::ChildGuard;

const MARKETPLACE: &str = env!("CARGO_BIN_EXE_marketplace");
const ECHO_SERVER: &str = env!("CARGO_BIN_EXE_echo-server");
const ECHO_CLIENT: &str = env!("CARGO_BIN_EXE_echo-client");

/// The longest any process may run.
const LIMIT: Duration = Duration::from_secs(60);

/// A finished process.
#[derive(Debug)]
struct Finished {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

fn drain(mut from: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut text = String::new();
        let _ = from.read_to_string(&mut text);
        text
    })
}

/// Waits for `child` to exit, killing it after [`LIMIT`].
fn wait_bounded(child: &mut Child, what: &str) -> ExitStatus {
    let deadline = Instant::now() + LIMIT;
    loop {
        if let Some(status) = child.try_wait().expect("cannot wait for a child process") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} ran over {LIMIT:?} and was killed");
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Runs `bin` with `args` to the end.
fn run(bin: &str, args: &[&str]) -> Finished {
    let what = format!("{bin} {}", args.join(" "));
    let mut child = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let stdout = drain(child.stdout.take().unwrap());
    let stderr = drain(child.stderr.take().unwrap());
    let status = wait_bounded(&mut child, &what);
    let finished = Finished { status, stdout: stdout.join().unwrap(), stderr: stderr.join().unwrap() };
    eprintln!("$ {what}\n{}{}", finished.stdout, finished.stderr);
    finished
}

/// Runs `bin` with `args` and expects it to succeed.
fn run_ok(bin: &str, args: &[&str]) -> String {
    let finished = run(bin, args);
    assert!(finished.status.success(), "{bin} {args:?} failed: {}\n{}", finished.status, finished.stderr);
    finished.stdout
}

/// A server process that printed `listening on ADDR as AGENT_ID`.
struct Server {
    child: ChildGuard,
    lines: mpsc::Receiver<String>,
    addr: String,
    id: String,
}

impl Server {
    fn start(bin: &str, args: &[&str]) -> Self {
        let mut child = ChildGuard(
            Command::new(bin)
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {bin}: {e}")),
        );
        let lines = forward_lines(child.stdout.take().unwrap());
        let first = match lines.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => line,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{bin} {args:?} printed no first line: {e}");
            }
        };
        let words: Vec<&str> = first.split_whitespace().collect();
        assert!(matches!(words[..], ["listening", "on", _, "as", _]), "unexpected first line: {first}");
        let (addr, id) = (words[2].to_owned(), words[4].to_owned());
        assert!(addr.starts_with("127.0.0.1:"), "{addr}");
        assert_eq!(id.len(), 52, "{id}");
        Self { child, lines, addr, id }
    }

    /// `ADDR@AGENT_ID`.
    fn spec(&self) -> String {
        format!("{}@{}", self.addr, self.id)
    }

    /// Stops the server (SIGTERM where there is one, so that it prints its
    /// last words) and returns what it printed after its first line.
    fn stop(mut self) -> String {
        #[cfg(unix)]
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        #[cfg(not(unix))]
        let _ = self.child.kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && self.child.try_wait().ok().flatten().is_none() {
            thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut rest = String::new();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(1)) {
            rest.push_str(&line);
            rest.push('\n');
        }
        rest
    }
}

fn forward_lines(stdout: ChildStdout) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The line that starts with `label`, without the label.
fn after<'a>(output: &'a str, label: &str) -> &'a str {
    output
        .lines()
        .find_map(|line| line.strip_prefix(label))
        .unwrap_or_else(|| panic!("no line starts with {label:?} in:\n{output}"))
        .trim()
}

/// Every number in `text` (thousands separators allowed), in order.
fn numbers(text: &str) -> Vec<u64> {
    text.split(|c: char| !(c.is_ascii_digit() || c == ','))
        .map(|word| word.replace(',', ""))
        .filter(|digits| !digits.is_empty())
        .map(|digits| digits.parse().unwrap())
        .collect()
}

/// What the marketplace summary says about the rounds; checks that its
/// figures add up.
#[derive(Debug)]
struct Outcome {
    orders: u64,
    intents: u64,
}

fn check_summary(output: &str, rounds: u64, sellers: u64) -> Outcome {
    // "20  (18 with a quote: 18 orders confirmed, 0 awards failed; 2 with no quote)"
    let [total, with_quote, orders, failed, without] = numbers(after(output, "Rounds"))[..] else {
        panic!("unexpected Rounds line in:\n{output}");
    };
    assert_eq!(total, rounds);
    assert_eq!(with_quote + without, rounds);
    assert_eq!(orders + failed, with_quote);
    assert_eq!(failed, 0, "every award should succeed on loopback");

    // "95 quotes, 5 refusals (...), 0 unanswered"
    let proposals = numbers(after(output, "Proposals"));
    let (quotes, refusals, unanswered) = (proposals[0], proposals[1], proposals[proposals.len() - 1]);
    assert_eq!(quotes + refusals + unanswered, rounds * sellers);

    // "N = cfp + quote + refuse + accept + confirm + reject"
    let [intents, cfp, quote, refuse, accept, confirm, reject] = numbers(after(output, "Intents exchanged"))[..] else {
        panic!("unexpected Intents line in:\n{output}");
    };
    assert_eq!(intents, cfp + quote + refuse + accept + confirm + reject);
    assert_eq!(cfp, rounds * sellers);
    assert_eq!((quote, refuse), (quotes, refusals));
    assert_eq!((accept, confirm), (with_quote, orders));
    assert_eq!(reject, quotes - with_quote, "every losing quote is rejected");

    let counters = after(output, "  Agent::metrics()");
    assert!(counters.ends_with("agrees"), "the counters disagree: {counters}");
    assert_eq!(numbers(counters)[0], intents);

    for label in ["round: cfp, quotes, award", "call for proposals", "award: AcceptQuote"] {
        let line = output.lines().find(|line| line.contains(label)).unwrap_or_else(|| panic!("no {label} latency"));
        assert!(line.contains(" / "), "{line}");
    }
    assert!(after(output, "Wall time").contains(&format!("for {rounds} rounds")));
    assert!(output.contains("the wall time"), "no comparison with model inference");
    Outcome { orders, intents }
}

/// The seller table's orders column, by seller name (in-process demo).
fn orders_by_seller(output: &str, names: &[&str]) -> Vec<u64> {
    names
        .iter()
        .map(|name| {
            let row = output
                .lines()
                .find(|line| line.split_whitespace().next() == Some(name) && line.contains('$'))
                .unwrap_or_else(|| panic!("no row for {name}"));
            // quotes, refused, orders, ... after the strategy words.
            let cells: Vec<&str> = row.split("  ").map(str::trim).filter(|cell| !cell.is_empty()).collect();
            cells[4].replace(',', "").parse().unwrap()
        })
        .collect()
}

#[test]
fn marketplace_in_one_process() {
    // A long deadline: under a loaded CI machine a late answer would make the
    // buyer's and the sellers' counters (rightly) disagree.
    let output =
        run_ok(MARKETPLACE, &["--rounds", "20", "--sellers", "3", "--show-rounds", "2", "--deadline-ms", "10000"]);
    assert!(
        output.starts_with("Tacit marketplace: 1 buyer, 3 sellers, 20 contract-net rounds over QUIC (127.0.0.1)\n")
    );
    assert_eq!(output.lines().filter(|line| line.trim_start().starts_with("round ")).count(), 2);
    let outcome = check_summary(&output, 20, 3);
    let orders = orders_by_seller(&output, &["acme", "bolt", "crate"]);
    assert_eq!(orders.iter().sum::<u64>(), outcome.orders);
    let total_row = output.lines().find(|line| line.starts_with("total")).expect("no total row");
    assert_eq!(numbers(total_row)[2], outcome.orders);

    // Trust: the uncredentialed agent is refused by every seller with its
    // code, and every order left a verified pair of receipts.
    let intruder = output.lines().find(|line| line.starts_with("intruder ")).expect("no intruder line");
    assert!(intruder.contains("refused at the handshake by 3 of 3 sellers with POLICY_DENIED (0x310)"), "{intruder}");
    let [orders, verified, pairs, unmatched] = numbers(after(&output, "Receipts"))[..] else {
        panic!("unexpected Receipts line in:\n{output}");
    };
    assert_eq!((orders, verified, pairs, unmatched), (outcome.orders, outcome.orders, outcome.orders, 0), "{output}");
}

/// The pair of receipts of each order is written as files that decode and
/// verify, signed by the buyer (awards) and the sellers (confirmations).
#[test]
fn marketplace_writes_verifiable_receipts() {
    let dir = std::env::temp_dir().join(format!("tacit-receipts-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let output = run_ok(
        MARKETPLACE,
        &["--rounds", "10", "--sellers", "2", "--deadline-ms", "10000", "--receipts", dir.to_str().unwrap()],
    );
    let orders = numbers(after(&output, "Receipts"))[0];
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|entry| entry.unwrap().path()).collect();
    files.sort();
    assert_eq!(files.len() as u64, 2 * orders, "{files:?}");
    for file in &files {
        let receipt = tacit::Receipt::decode(&std::fs::read(file).unwrap()).unwrap();
        receipt.verify().unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let name = file.file_name().unwrap().to_str().unwrap();
        let act = if name.ends_with(".award.receipt") { tacit::Act::Accept } else { tacit::Act::Inform };
        assert_eq!(receipt.act, act, "{name}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--directory`: the sellers register with an in-process directory and
/// the buyer finds them there by intent, dialing each by AgentId.
#[test]
fn marketplace_through_a_directory() {
    let output = run_ok(
        MARKETPLACE,
        &["--directory", "--rounds", "10", "--sellers", "3", "--show-rounds", "0", "--deadline-ms", "10000"],
    );
    let found = output.lines().find(|line| line.starts_with("the buyer found ")).expect("no directory line");
    assert!(found.starts_with("the buyer found 3 sellers through the directory"), "{found}");
    check_summary(&output, 10, 3);
}

/// Sellers in their own processes register with a directory agent (run
/// here, in the test's process); the buyer, given only the directory, finds
/// both and trades with them.
#[test]
fn marketplace_sellers_found_through_a_directory_in_separate_processes() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let (directory, agent) = runtime.block_on(async {
        // The directory starts its expiry task: inside the runtime.
        let directory = tacit_directory::Directory::in_memory(tacit_directory::Limits::default());
        let agent = directory.serve(tacit::Agent::builder()).bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        (directory, agent)
    });
    let spec = format!("{}@{}", agent.id(), agent.local_addr().unwrap());
    let sellers: Vec<Server> = (0..2)
        .map(|profile| {
            let profile = profile.to_string();
            Server::start(
                MARKETPLACE,
                &["seller", "--addr", "127.0.0.1:0", "--profile", &profile, "--directory", &spec],
            )
        })
        .collect();
    // Wait until both have registered.
    let deadline = Instant::now() + Duration::from_secs(10);
    while directory.len() < 2 {
        assert!(Instant::now() < deadline, "the sellers did not register");
        thread::sleep(Duration::from_millis(20));
    }
    let output = run_ok(
        MARKETPLACE,
        &["buyer", "--directory", &spec, "--rounds", "5", "--show-rounds", "0", "--deadline-ms", "10000"],
    );
    assert!(output.contains(": 2 sellers, 5 contract-net rounds over QUIC"), "{output}");
    for seller in &sellers {
        let id = seller.spec();
        let id = &id[id.find('@').unwrap() + 1..];
        assert!(output.contains(&id[..10]), "{id} not in {output}");
    }
    check_summary(&output, 5, 2);
    drop(sellers);
    drop(agent);
    runtime.shutdown_timeout(Duration::from_secs(1));
}

#[test]
fn marketplace_in_separate_processes() {
    // The market organisation and the buyer's credential, made as `tacit org
    // keygen` and `tacit org issue` would.
    let dir = std::env::temp_dir().join(format!("tacit-market-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let market = tacit::credential::OrgSigner::generate().unwrap();
    let key = dir.join("buyer.key");
    let (buyer, _) = tacit::Identity::load_or_create(&key).unwrap();
    let now = std::time::SystemTime::now();
    let credential = tacit::credential::Credential::new(buyer.agent_id(), now, now + Duration::from_secs(600))
        .role("buyer")
        .serial(1);
    let credential_file = dir.join("buyer.cred");
    std::fs::write(&credential_file, market.issue(&credential).encode()).unwrap();
    let market_key = market.org_key().to_string();

    let sellers: Vec<Server> = (0..2)
        .map(|profile| {
            let profile = profile.to_string();
            Server::start(
                MARKETPLACE,
                &["seller", "--addr", "127.0.0.1:0", "--profile", &profile, "--market", &market_key],
            )
        })
        .collect();
    let specs: Vec<String> = sellers.iter().map(Server::spec).collect();
    // Without the credential, the buyer is refused by the first seller.
    let refused = run(MARKETPLACE, &["buyer", "--seller", &specs[0], "--rounds", "1"]);
    assert!(!refused.status.success(), "{refused:?}");
    assert!(refused.stderr.contains("POLICY_DENIED"), "{}", refused.stderr);
    let output = run_ok(
        MARKETPLACE,
        &[
            "buyer",
            "--key",
            key.to_str().unwrap(),
            "--credential",
            credential_file.to_str().unwrap(),
            "--seller",
            &specs[0],
            "--seller",
            &specs[1],
            "--rounds",
            "10",
            "--show-rounds",
            "0",
            "--deadline-ms",
            "10000",
        ],
    );
    assert!(output.contains(": 2 sellers, 10 contract-net rounds over QUIC"), "{output}");
    assert!(after(&output, "  Agent::metrics()").contains("the buyer"));
    let outcome = check_summary(&output, 10, 2);
    assert!(outcome.intents >= 10 * 2 * 2);
    let [orders, kept] = numbers(after(&output, "Receipts"))[..] else {
        panic!("unexpected Receipts line in:\n{output}")
    };
    assert_eq!((orders, kept), (outcome.orders, outcome.orders));
    let _ = std::fs::remove_dir_all(&dir);

    // Each seller's own account, printed as it stops.
    let mut sold = 0;
    for (seller, name) in sellers.into_iter().zip(["acme", "bolt"]) {
        let rest = seller.stop();
        if cfg!(unix) {
            let account = after(&rest, &format!("seller {name}:"));
            let figures = numbers(account);
            assert_eq!(figures[0], 10, "calls for proposals seen by {name}: {account}");
            sold += figures[3];
            assert_eq!(figures[figures.len() - 1], figures[3], "{name} keeps a signed award per order: {account}");
        }
    }
    if cfg!(unix) {
        assert_eq!(sold, outcome.orders);
    }
}

#[test]
fn echo_pair() {
    let server = Server::start(ECHO_SERVER, &["--addr", "127.0.0.1:0"]);
    let output = run_ok(ECHO_CLIENT, &["--addr", &server.addr, "--expect", &server.id, "-n", "20", "smoke test"]);
    assert!(output.starts_with(&format!("connected to {} as agent {}", server.addr, server.id)), "{output}");
    assert!(output.contains("reply 1: \"smoke test\" (echo #1 from the server"), "{output}");
    assert_eq!(output.lines().filter(|line| line.starts_with("reply ")).count(), 5);
    assert!(output.contains("... 15 more replies"));
    let latency = after(&output, "20 echoes in");
    assert!(latency.contains("p50") && latency.contains("p99"), "{latency}");

    // The wrong AgentId is refused, with a message that says so.
    let other = tacit::Identity::generate().unwrap().agent_id().to_string();
    let refused = run(ECHO_CLIENT, &["--addr", &server.addr, "--expect", &other]);
    assert!(!refused.status.success());
    assert!(refused.stderr.contains(&format!("is {}, not the expected {other}", server.id)), "{}", refused.stderr);

    let rest = server.stop();
    if cfg!(unix) {
        assert!(rest.contains("answered 20 echoes"), "{rest}");
    }
}

#[test]
fn echo_client_on_its_own() {
    let output = run_ok(ECHO_CLIENT, &["-n", "3"]);
    assert!(output.starts_with("no --addr: started an echo server in this process at 127.0.0.1:"), "{output}");
    assert!(output.contains("reply 3: \"hello, tacit\" (echo #3"), "{output}");
    assert!(after(&output, "3 echoes in").contains("p99"));
}

#[test]
fn a_silent_address_fails_with_a_clear_message() {
    // A UDP socket that never answers: the QUIC handshake cannot complete.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();

    let echo = run(ECHO_CLIENT, &["--addr", &addr, "--timeout-ms", "300"]);
    assert!(!echo.status.success());
    assert!(echo.stderr.contains(&addr) && echo.stderr.contains("echo server"), "{}", echo.stderr);

    let buyer = run(MARKETPLACE, &["buyer", "--seller", &addr, "--connect-timeout-ms", "300", "--rounds", "1"]);
    assert!(!buyer.status.success());
    assert!(buyer.stderr.contains(&addr) && buyer.stderr.contains("seller"), "{}", buyer.stderr);

    let bad = run(MARKETPLACE, &["buyer", "--seller", "not-an-address"]);
    assert_eq!(bad.status.code(), Some(2), "a usage error");
    assert!(bad.stderr.contains("not an address"), "{}", bad.stderr);
    drop(silent);
}

#[test]
fn every_binary_has_help() {
    for (bin, expected) in
        [(MARKETPLACE, "contract-net"), (ECHO_SERVER, "listening on ADDR as AGENT_ID"), (ECHO_CLIENT, "p50 / p99")]
    {
        let help = run_ok(bin, &["--help"]);
        assert!(help.contains("Usage:") && help.contains(expected), "{bin} --help:\n{help}");
    }
    for sub in ["seller", "buyer"] {
        let help = run_ok(MARKETPLACE, &[sub, "--help"]);
        assert!(help.contains("Usage: marketplace"), "{help}");
    }
}
