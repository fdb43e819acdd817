//! The results of a conformance run: one line per check as it ends, or one
//! JSON document at the end, and the exit status.

use std::time::Duration;

use serde_json::{Value, json};

use super::Check;
use crate::error::CliError;

/// How a check ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The implementation does what the rule says (detail: what was seen).
    Pass(String),
    /// It does not (detail: what was seen instead).
    Fail(String),
    /// The check could not run here (detail: why).
    Skip(String),
}

impl Outcome {
    pub(crate) fn pass(detail: impl Into<String>) -> Result<Self, String> {
        Ok(Self::Pass(detail.into()))
    }

    pub(crate) fn skip(reason: impl Into<String>) -> Result<Self, String> {
        Ok(Self::Skip(reason.into()))
    }

    fn name(&self) -> &'static str {
        match self {
            Self::Pass(_) => "pass",
            Self::Fail(_) => "fail",
            Self::Skip(_) => "skip",
        }
    }

    fn detail(&self) -> &str {
        match self {
            Self::Pass(d) | Self::Fail(d) | Self::Skip(d) => d,
        }
    }
}

/// One check's result.
#[derive(Debug, Clone)]
pub(crate) struct CheckReport {
    id: String,
    rule: String,
    section: String,
    provisional: bool,
    outcome: Outcome,
    duration: Duration,
}

impl CheckReport {
    pub(crate) fn new(check: &Check, outcome: Outcome, duration: Duration) -> Self {
        Self::named(check.id, check.rule, check.section, check.provisional, outcome, duration)
    }

    pub(crate) fn named(
        id: &str,
        rule: &str,
        section: &str,
        provisional: bool,
        outcome: Outcome,
        duration: Duration,
    ) -> Self {
        Self { id: id.into(), rule: rule.into(), section: section.into(), provisional, outcome, duration }
    }

    fn json(&self) -> Value {
        json!({
            "id": self.id,
            "rule": self.rule,
            "section": self.section,
            "provisional": self.provisional,
            "outcome": self.outcome.name(),
            "detail": self.outcome.detail(),
            "duration_ms": u64::try_from(self.duration.as_millis()).unwrap_or(u64::MAX),
        })
    }
}

/// The results of one run (dialing mode) or of one dialing session (`--serve`).
#[derive(Debug)]
pub(crate) struct Report {
    mode: &'static str,
    peer: String,
    checks: Vec<CheckReport>,
    section: String,
}

impl Report {
    pub(crate) fn new(mode: &'static str, peer: &str) -> Self {
        Self { mode, peer: peer.into(), checks: Vec::new(), section: String::new() }
    }

    pub(crate) fn push(&mut self, check: CheckReport) {
        self.checks.push(check);
    }

    /// The checks so far.
    pub(crate) fn lines(&self) -> Vec<CheckReport> {
        self.checks.clone()
    }

    pub(crate) fn failed(&self) -> usize {
        self.checks.iter().filter(|c| matches!(c.outcome, Outcome::Fail(_))).count()
    }

    /// Prints one check as a line, under a header when its section starts.
    pub(crate) fn print_line(&mut self, check: &CheckReport) {
        if check.section != self.section {
            self.section.clone_from(&check.section);
            println!("{}", check.section);
        }
        let mark = if check.provisional { " (provisional)" } else { "" };
        let detail = check.outcome.detail();
        let detail = if detail.is_empty() { String::new() } else { format!(": {detail}") };
        println!("  {:<4} {:<28} [{}]{mark}{detail}", check.outcome.name(), check.id, check.rule);
    }

    /// The JSON document of the run.
    pub(crate) fn json(&self) -> Value {
        let count = |name: &str| self.checks.iter().filter(|c| c.outcome.name() == name).count();
        json!({
            "tool": "tacit conformance",
            "version": env!("CARGO_PKG_VERSION"),
            "mode": self.mode,
            "peer": self.peer,
            "summary": { "pass": count("pass"), "fail": count("fail"), "skip": count("skip") },
            "checks": self.checks.iter().map(CheckReport::json).collect::<Vec<_>>(),
        })
    }

    /// Prints the summary (or the JSON document) and gives the exit status.
    pub(crate) fn finish(self, json: bool) -> Result<(), CliError> {
        self.print_end(json);
        super::verdict(self.failed())
    }

    pub(crate) fn print_end(&self, json: bool) {
        if json {
            println!("{}", self.json());
        } else {
            let count = |name: &str| self.checks.iter().filter(|c| c.outcome.name() == name).count();
            println!("{} passed, {} failed, {} skipped", count("pass"), count("fail"), count("skip"));
        }
    }
}
