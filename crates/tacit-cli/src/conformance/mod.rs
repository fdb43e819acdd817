//! `tacit conformance`: a conformance tester for any Tacit implementation,
//! as h2spec is for HTTP/2.
//!
//! `tacit conformance ADDR` dials the implementation and runs named checks,
//! one file per spec area (`tls`, `handshake`, `ask`, `lanes`); each names
//! the rule of docs/PROTOCOL.md it tests (`[hs.refusal-close]`) and ends
//! `pass`, `fail` (with a reason) or `skip` (with a reason). The checks use
//! quinn, rustls and the tacit-wire types directly (`net`), so they can
//! send what a well-behaved agent never would. `tacit conformance --serve
//! ADDR` plays the acceptor and checks the implementation that dials it
//! (`serve`).

mod ask;
mod handshake;
mod lanes;
mod net;
mod receipt;
mod report;
mod serve;
mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::{Duration, Instant};

use tacit::Intent as _;
use tacit::intents::Ping;
use tacit_handshake::{AgentId, Identity};
use tacit_wire::{IntentRef, pb};

use crate::connect;
use crate::error::{CliError, Exit};
pub(crate) use report::Outcome;
use report::{CheckReport, Report};

/// Arguments of `tacit conformance`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The implementation to check, as HOST:PORT (dialed).
    #[arg(value_name = "ADDR", required_unless_present = "serve", conflicts_with = "serve")]
    addr: Option<String>,
    /// Play the acceptor on this address and check the implementations that dial it.
    #[arg(long, value_name = "ADDR")]
    serve: Option<SocketAddr>,
    /// With --serve: exit after the first dialing session.
    #[arg(long, requires = "serve")]
    once: bool,
    /// The AgentId the implementation must present (checked by `tls.expected-id`).
    #[arg(long, value_name = "AGENTID")]
    expect: Option<AgentId>,
    /// Print one JSON document (every check: id, rule, section, outcome, detail, duration_ms).
    #[arg(long)]
    json: bool,
    /// Run only the checks whose id or rule starts with PREFIX (repeatable).
    #[arg(long, value_name = "PREFIX")]
    only: Vec<String>,
    /// Skip the checks whose id or rule starts with PREFIX, with that reason (repeatable).
    #[arg(long, value_name = "PREFIX")]
    except: Vec<String>,
    /// Seconds each check may take before it fails.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = connect::parse_secs)]
    timeout: Duration,
}

pub(crate) async fn run(args: Args) -> Result<(), CliError> {
    if let Some(addr) = args.serve {
        return serve::run(addr, args.once, args.json, args.timeout).await;
    }
    let text = args.addr.clone().unwrap_or_default();
    let addr = connect::resolve(&text)?;
    let target = Target::new(addr, args.expect, args.timeout).await?;
    let mut report = Report::new("dial", &text);
    for check in all_checks() {
        let selected = args.only.is_empty() || args.only.iter().any(|p| check.matches(p));
        if !selected {
            continue;
        }
        let (outcome, took) = match args.except.iter().find(|p| check.matches(p)) {
            Some(prefix) => (Outcome::Skip(format!("excluded by --except {prefix}")), Duration::ZERO),
            None => target.run(&check).await,
        };
        let result = CheckReport::new(&check, outcome, took);
        if !args.json {
            report.print_line(&result);
        }
        report.push(result);
    }
    report.finish(args.json)
}

/// What a check's future returns: its outcome, or the reason it failed.
type CheckFuture<'a> = Pin<Box<dyn Future<Output = Result<Outcome, String>> + 'a>>;

/// One named check.
pub(crate) struct Check {
    /// Stable id, `area.case`.
    pub(crate) id: &'static str,
    /// The label of the rule it tests, without brackets.
    pub(crate) rule: &'static str,
    /// The spec section.
    pub(crate) section: &'static str,
    /// The rule is being settled on another branch of issue 13: the check
    /// tests the behaviour the issue asks for.
    pub(crate) provisional: bool,
    run: for<'a> fn(&'a Target) -> CheckFuture<'a>,
}

impl Check {
    fn matches(&self, prefix: &str) -> bool {
        self.id.starts_with(prefix) || self.rule.starts_with(prefix)
    }
}

/// Makes a [`Check`] of an `async fn(&Target) -> Result<Outcome, String>`.
macro_rules! check {
    ($section:expr, $id:literal, $rule:literal, $f:path) => {
        $crate::conformance::Check::new($section, $id, $rule, false, |cx| Box::pin($f(cx)))
    };
    ($section:expr, $id:literal, $rule:literal, $f:path, provisional) => {
        $crate::conformance::Check::new($section, $id, $rule, true, |cx| Box::pin($f(cx)))
    };
}
pub(crate) use check;

impl Check {
    pub(crate) fn new(
        section: &'static str,
        id: &'static str,
        rule: &'static str,
        provisional: bool,
        run: for<'a> fn(&'a Target) -> CheckFuture<'a>,
    ) -> Self {
        Self { id, rule, section, provisional, run }
    }
}

/// Every check of the dialing mode, in the order they run.
fn all_checks() -> Vec<Check> {
    let mut checks = tls::checks();
    checks.extend(handshake::checks());
    checks.extend(ask::checks());
    checks.extend(lanes::checks());
    checks.extend(receipt::checks());
    checks
}

/// The implementation under test, and what a first handshake learned of it.
pub(crate) struct Target {
    /// The tester's identity (it signs what the receipt checks send).
    identity: Identity,
    dialer: net::Dialer,
    expect: Option<AgentId>,
    timeout: Duration,
    /// The Welcome of a first, well-behaved session (none if it failed).
    probe: Option<pb::Welcome>,
}

impl Target {
    async fn new(addr: SocketAddr, expect: Option<AgentId>, timeout: Duration) -> Result<Self, CliError> {
        let identity = Identity::generate().map_err(|e| CliError::failure(e.to_string()))?;
        let dialer = net::Dialer::new(&identity, addr).map_err(CliError::failure)?;
        let probe = match tokio::time::timeout(timeout, dialer.welcomed()).await {
            Ok(Ok(session)) => {
                session.connection.close(CLOSED, b"");
                Some(session.welcome)
            }
            Ok(Err(e)) => {
                eprintln!("tacit conformance: the first handshake failed: {e}");
                None
            }
            Err(_) => None,
        };
        if probe.is_none() {
            // Nothing answers at all (no close, no alert): every check would
            // fail the same way. Something that answers is checked.
            let silent = match tokio::time::timeout(timeout, dialer.dial_with(&net::TlsOffer::default())).await {
                Err(_) => Some("no answer".to_owned()),
                Ok(Err(net::Closed::Other(why))) => Some(why),
                Ok(_) => None,
            };
            if let Some(why) = silent {
                return Err(CliError::new(
                    Exit::Unreachable,
                    format!("no Tacit implementation answers at {addr}: {why}"),
                ));
            }
        }
        Ok(Self { identity, dialer, expect, timeout, probe })
    }

    async fn run(&self, check: &Check) -> (Outcome, Duration) {
        let started = Instant::now();
        let outcome = match tokio::time::timeout(self.timeout, (check.run)(self)).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(reason)) => Outcome::Fail(reason),
            Err(_) => Outcome::Fail(format!("no outcome within {:?}", self.timeout)),
        };
        (outcome, started.elapsed())
    }

    /// The peer offers to handle the standard Ping (learned from the probe).
    fn handles_ping(&self) -> bool {
        net::offers(self.probe.as_ref().and_then(|w| w.capabilities.as_ref()), Ping::ID, |o| o.handles)
    }

    /// The highest version the peer supports (1 if unknown).
    fn max_version(&self) -> u32 {
        self.probe.as_ref().and_then(|w| w.capabilities.as_ref()?.versions).map_or(1, |v| v.max)
    }

    /// After bad input: a new connection still gets a Welcome, and a Ping
    /// answer when the peer handles Ping.
    async fn still_serving(&self) -> Result<(), String> {
        let session = self.dialer.welcomed().await.map_err(|e| format!("the agent stopped serving: {e}"))?;
        if let Some(alias) = session.alias(Ping::ID).filter(|_| session.handles(Ping::ID)) {
            let mut lane = session.open_ask().await?;
            lane.send_envelopes(&[net::ping_ask(IntentRef::Alias(alias), 1, 7)]).await?;
            let reply = lane.reply().await.map_err(|e| format!("the agent stopped answering asks: {e}"))?;
            if reply.in_reply_to != 1 {
                return Err(format!("after the bad input, a Ping got an answer to {}", reply.in_reply_to));
            }
        }
        session.connection.close(CLOSED, b"");
        Ok(())
    }
}

/// The normal close code (docs/PROTOCOL.md, "Session codes").
pub(crate) const CLOSED: quinn::VarInt = quinn::VarInt::from_u32(tacit_wire::ErrorCode::Closed as u32);

/// Fails with `reason` unless `ok`.
pub(crate) fn ensure(ok: bool, reason: impl FnOnce() -> String) -> Result<(), String> {
    if ok { Ok(()) } else { Err(reason()) }
}

/// The exit status of a run with `failed` failed checks.
pub(crate) fn verdict(failed: usize) -> Result<(), CliError> {
    if failed == 0 {
        Ok(())
    } else {
        Err(CliError::new(Exit::Nonconformant, format!("{failed} conformance check(s) failed")))
    }
}
