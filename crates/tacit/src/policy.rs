//! Receiver-side policy: which peers may use which intents on which lanes,
//! and how much each peer may send (docs/PROTOCOL.md, "Policy").
//!
//! A [`Policy`] is a list of [`Rule`]s, a default [`Effect`] and per-peer
//! [`Limits`]. An agent given one ([`AgentBuilder::policy`](crate::AgentBuilder::policy))
//! offers each peer that dials it only the intents and lanes the rules let
//! it use, and checks every incoming ask, tell, stream and datagram:
//!
//! - **Rules, first match wins.** The rules are tried in order; the first
//!   whose every condition holds decides (allow or deny). When none matches,
//!   the default decides. A condition left empty matches anything; a list
//!   matches when any of its entries does.
//! - A denied ask is refused with `POLICY_DENIED` and its handler never
//!   runs; a denied tell or datagram is dropped (and counted under its code
//!   in [`Agent::metrics`](crate::Agent::metrics)); a denied stream is reset
//!   and stopped with `POLICY_DENIED`.
//! - **Memberships** come from the peer's verified credentials: a rule
//!   naming organisations or roles matches a member of one of them; a
//!   credential narrowed to some intents makes a membership that counts for
//!   those intents only ([`Membership::covers`]).
//! - **What the peer sees**: it is offered, in the handshake, each intent on
//!   the lanes the rules let it use ([`Policy::offered`]), and the standard
//!   `DescribeAgent` lists the same.
//! - **Limits, per peer** (by AgentId, over all its sessions), on the
//!   messages the rules allow: a rate (a token bucket: `rate` per second,
//!   up to `burst` at once), a quota (`quota` messages per `window`), and
//!   for asks a number in flight. Excess is refused with `RATE_LIMITED`,
//!   `QUOTA_EXCEEDED` or `TOO_MANY_ASKS`; other peers are not affected.
//!
//! The rate limiter is a small token bucket of this module rather than the
//! `governor` crate: the check runs under the policy's own per-peer lock,
//! together with the quota and in-flight count, and needs no dependency.
//!
//! # File format (TOML)
//!
//! ```toml
//! default = "deny"            # "allow" or "deny" (required)
//!
//! [limits]                    # optional, per peer
//! rate = 100                  # messages per second
//! burst = 20                  # optional, default: rate
//! quota = 10000               # messages per window
//! window = "1h"               # "<n>s", "<n>m", "<n>h" (default "1m")
//! max_in_flight = 16          # asks in flight
//!
//! [[rule]]
//! effect = "allow"            # "allow" or "deny" (required)
//! agents = ["<AgentId>"]      # optional: peers by AgentId (printed form)
//! orgs = ["<org AgentId>"]    # optional: peers that are members of an org
//! roles = ["ops"]             # optional: ... holding one of these roles
//! intents = ["tacit.std.v1.Ping", "<IntentId>"]  # optional: by name or id
//! lanes = ["ask", "tell", "stream", "datagram"]  # optional
//! signed = true               # optional (allow rules): demand a signature
//! ```
//!
//! An allow rule with `signed = true` ([`Rule::signed`]) lets a message
//! through only if it is signed (`docs/PROTOCOL.md`, "Signed receipts"): an
//! unsigned ask is refused with `SIGNATURE_REQUIRED`, an unsigned tell or
//! datagram dropped, an unsigned stream reset; the signature of every
//! signed message is verified before its handler runs.
//!
//! An unknown key, a wrong type or a bad value is an error naming the field
//! (`rule[1].lanes[0]`); a syntax error names the line and column.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tacit_handshake::{AgentId, IntentOffer, Lane, Lanes};
use tacit_wire::{ErrorCode, IntentId};

/// Who sent a message, as the policy sees it: the peer's AgentId and the
/// organisations its verified credentials prove it a member of
/// ([`Subject::with_credentials`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// The peer's AgentId.
    pub agent: AgentId,
    /// The peer's verified memberships.
    pub memberships: Vec<Membership>,
}

impl Subject {
    /// A subject known by its AgentId only.
    pub fn agent(agent: AgentId) -> Self {
        Self { agent, memberships: Vec::new() }
    }

    /// A subject with the memberships its verified credentials prove: one
    /// per credential, its organisation, roles and narrowed intents (rules
    /// `policy.membership`, `policy.narrowed`).
    pub fn with_credentials(agent: AgentId, credentials: &[tacit_handshake::credential::VerifiedCredential]) -> Self {
        let memberships = credentials
            .iter()
            .map(|credential| Membership {
                org: credential.org.to_string(),
                roles: credential.roles.clone(),
                intents: credential.intents.clone(),
            })
            .collect();
        Self { agent, memberships }
    }
}

/// A verified membership of an organisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// The organisation's key, in AgentId printed form.
    pub org: String,
    /// The roles the member holds in it.
    pub roles: Vec<String>,
    /// The intents the credential is narrowed to (`None`: not narrowed).
    /// A narrowed membership counts only for these intents (rule
    /// `policy.narrowed`): for any other, a rule naming an organisation or
    /// role does not match it.
    pub intents: Option<Vec<IntentId>>,
}

impl Membership {
    /// A membership of `org` with `roles`, not narrowed.
    pub fn new(org: impl Into<String>, roles: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self { org: org.into(), roles: roles.into_iter().map(Into::into).collect(), intents: None }
    }

    /// Narrows the membership to these intents.
    #[must_use]
    pub fn narrowed(mut self, intents: impl IntoIterator<Item = IntentId>) -> Self {
        self.intents = Some(intents.into_iter().collect());
        self
    }

    /// Whether the membership counts for `intent` (it is not narrowed, or
    /// narrowed to a list naming `intent`).
    pub fn covers(&self, intent: IntentId) -> bool {
        self.intents.as_ref().is_none_or(|intents| intents.contains(&intent))
    }
}

/// What a rule (or the default) decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// The message is let through (to the limits).
    Allow,
    /// The message is refused with `POLICY_DENIED`.
    Deny,
}

/// An intent named in a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntentMatch {
    /// By its IntentId.
    Id(IntentId),
    /// By its full protobuf name (matches the intents whose name the agent
    /// knows: those it offers).
    Name(String),
}

/// One rule: an effect and the conditions under which it applies (each
/// empty condition matches anything).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    effect: Effect,
    agents: Vec<AgentId>,
    orgs: Vec<String>,
    roles: Vec<String>,
    intents: Vec<IntentMatch>,
    lanes: Vec<Lane>,
    signed: bool,
}

impl Rule {
    /// A rule that allows what it matches.
    pub fn allow() -> Self {
        Self::new(Effect::Allow)
    }

    /// A rule that denies what it matches.
    pub fn deny() -> Self {
        Self::new(Effect::Deny)
    }

    fn new(effect: Effect) -> Self {
        Self {
            effect,
            agents: Vec::new(),
            orgs: Vec::new(),
            roles: Vec::new(),
            intents: Vec::new(),
            lanes: Vec::new(),
            signed: false,
        }
    }

    /// Matches this peer (added to the peers already named).
    pub fn agent(mut self, agent: AgentId) -> Self {
        self.agents.push(agent);
        self
    }

    /// Matches members of this organisation (key in AgentId printed form).
    pub fn org(mut self, org: impl Into<String>) -> Self {
        self.orgs.push(org.into());
        self
    }

    /// Matches members holding this role (in one of the rule's orgs, or in
    /// any org if the rule names none).
    pub fn role(mut self, role: impl Into<String>) -> Self {
        self.roles.push(role.into());
        self
    }

    /// Matches this intent.
    pub fn intent(mut self, intent: IntentId) -> Self {
        self.intents.push(IntentMatch::Id(intent));
        self
    }

    /// Matches the intent of this full protobuf name.
    pub fn intent_name(mut self, name: impl Into<String>) -> Self {
        self.intents.push(IntentMatch::Name(name.into()));
        self
    }

    /// Matches this lane.
    pub fn lane(mut self, lane: Lane) -> Self {
        self.lanes.push(lane);
        self
    }

    /// Lets a message this (allow) rule matches through only if it is
    /// signed: unsigned, it is refused with `SIGNATURE_REQUIRED` (rule
    /// `policy.signed`). No effect on a deny rule.
    pub fn signed(mut self) -> Self {
        self.signed = true;
        self
    }

    fn matches(&self, subject: &Subject, intent: IntentId, name: Option<&str>, lane: Lane) -> bool {
        (self.agents.is_empty() || self.agents.contains(&subject.agent))
            && (self.lanes.is_empty() || self.lanes.contains(&lane))
            && (self.intents.is_empty()
                || self.intents.iter().any(|m| match m {
                    IntentMatch::Id(id) => *id == intent,
                    IntentMatch::Name(n) => name == Some(n.as_str()),
                }))
            && self.matches_membership(subject, intent)
    }

    fn matches_membership(&self, subject: &Subject, intent: IntentId) -> bool {
        if self.orgs.is_empty() && self.roles.is_empty() {
            return true;
        }
        // [policy.narrowed]: a narrowed membership counts only for its intents.
        subject.memberships.iter().any(|m| {
            (self.orgs.is_empty() || self.orgs.contains(&m.org))
                && (self.roles.is_empty() || m.roles.iter().any(|r| self.roles.contains(r)))
                && m.covers(intent)
        })
    }
}

/// A rate: `per_second` messages a second, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Messages a second, sustained.
    pub per_second: u32,
    /// Messages at once after a quiet spell.
    pub burst: u32,
}

/// A quota: `count` messages per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Messages per window.
    pub count: u32,
    /// The window (counted from the peer's first message in it).
    pub window: Duration,
}

/// Limits that apply to each peer separately.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// The rate of messages (excess: `RATE_LIMITED`).
    pub rate: Option<Rate>,
    /// The quota of messages (excess: `QUOTA_EXCEEDED`).
    pub quota: Option<Quota>,
    /// Asks in flight (excess: `TOO_MANY_ASKS`).
    pub max_in_flight: Option<u32>,
}

impl Limits {
    fn is_empty(&self) -> bool {
        self.rate.is_none() && self.quota.is_none() && self.max_in_flight.is_none()
    }
}

/// Peers tracked before idle ones are forgotten.
const TRACKED_PEERS: usize = 4096;

/// What one peer used of the limits.
#[derive(Debug)]
struct Usage {
    tokens: f64,
    refilled: Instant,
    window_start: Instant,
    in_window: u32,
    in_flight: Arc<AtomicU32>,
}

/// A receiver-side policy (see the [module documentation](self)).
#[derive(Debug)]
pub struct Policy {
    rules: Vec<Rule>,
    default: Effect,
    limits: Limits,
    usage: Mutex<HashMap<AgentId, Usage>>,
}

impl Clone for Policy {
    /// The same rules and limits, with no usage counted yet.
    fn clone(&self) -> Self {
        Self { rules: self.rules.clone(), default: self.default, limits: self.limits, usage: Mutex::default() }
    }
}

impl Default for Policy {
    fn default() -> Self {
        Self::allow_all()
    }
}

/// A message the policy let through; for an ask, it holds the peer's
/// in-flight slot until dropped (when the ask is answered).
#[derive(Debug)]
#[must_use = "dropping it ends the ask's in-flight slot"]
pub struct Admission {
    in_flight: Option<Arc<AtomicU32>>,
    signature_required: bool,
}

impl Admission {
    /// Whether the rule that allowed the message demands a signature
    /// ([`Rule::signed`]): the agent then refuses it unsigned.
    pub fn signature_required(&self) -> bool {
        self.signature_required
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        if let Some(in_flight) = &self.in_flight {
            in_flight.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Policy {
    /// A policy with no rules that allows everything.
    pub fn allow_all() -> Self {
        Self::new(Effect::Allow)
    }

    /// A policy with no rules that denies everything.
    pub fn deny_all() -> Self {
        Self::new(Effect::Deny)
    }

    /// A policy with no rules, no limits, and this default.
    pub fn new(default: Effect) -> Self {
        Self { rules: Vec::new(), default, limits: Limits::default(), usage: Mutex::default() }
    }

    /// Adds a rule after the existing ones (first match wins).
    pub fn rule(mut self, rule: Rule) -> Self {
        self.rules.push(rule);
        self
    }

    /// Sets the per-peer limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Whether any rule names an organisation or a role (so a subject's
    /// memberships matter to it).
    pub fn uses_memberships(&self) -> bool {
        self.rules.iter().any(|rule| !rule.orgs.is_empty() || !rule.roles.is_empty())
    }

    /// Whether the policy lets everything through (no rules, default
    /// allow, no limits): the agent then skips it.
    pub fn is_open(&self) -> bool {
        self.rules.is_empty() && self.default == Effect::Allow && self.limits.is_empty()
    }

    /// What the rules decide for `subject` sending `intent` (whose name is
    /// `name`, if known) on `lane`, limits aside.
    pub fn decide(&self, subject: &Subject, intent: IntentId, name: Option<&str>, lane: Lane) -> Effect {
        self.decide_rule(subject, intent, name, lane).0
    }

    /// The effect, and whether the deciding rule demands a signature.
    fn decide_rule(&self, subject: &Subject, intent: IntentId, name: Option<&str>, lane: Lane) -> (Effect, bool) {
        self.rules
            .iter()
            .find(|rule| rule.matches(subject, intent, name, lane))
            .map_or((self.default, false), |rule| (rule.effect, rule.signed && rule.effect == Effect::Allow))
    }

    /// The lanes among `lanes` on which the rules let `subject` send
    /// `intent` (named `name`, if known), limits aside.
    pub fn allowed_lanes(&self, subject: &Subject, intent: IntentId, name: Option<&str>, lanes: Lanes) -> Lanes {
        lanes
            .iter()
            .filter(|lane| self.decide(subject, intent, name, *lane) == Effect::Allow)
            .fold(Lanes::NONE, Lanes::with)
    }

    /// What `subject` is offered of `offers` (rule `policy.offer-filter`):
    /// each handled intent on the lanes the rules let it use (limits
    /// aside); an intent left with no lane is no longer handled, and one
    /// neither handled nor emitted is left out. The handshake's offer to an
    /// accepted peer and the standard `DescribeAgent` both use this, so a
    /// caller is described exactly what it is offered (`policy.describe`).
    pub fn offered(&self, subject: &Subject, offers: &[IntentOffer]) -> Vec<IntentOffer> {
        let mut offered = offers.to_vec();
        self.restrict_offers(subject, &mut offered);
        offered
    }

    /// [`offered`](Self::offered), in place.
    pub fn restrict_offers(&self, subject: &Subject, offers: &mut Vec<IntentOffer>) {
        if self.is_open() {
            return;
        }
        offers.retain_mut(|offer| {
            if offer.handles {
                let lanes = self.allowed_lanes(subject, offer.id, Some(&offer.name), offer.lanes);
                offer.lanes = lanes;
                offer.handles = !lanes.is_empty();
            }
            offer.handles || offer.emits
        });
    }

    /// The subject the rules see for `agent`: with the memberships of its
    /// verified `credentials` when a rule names an organisation or role
    /// (a copy of them), else by its AgentId only.
    pub fn subject(
        &self,
        agent: AgentId,
        credentials: impl FnOnce() -> Vec<tacit_handshake::credential::VerifiedCredential>,
    ) -> Subject {
        if self.uses_memberships() { Subject::with_credentials(agent, &credentials()) } else { Subject::agent(agent) }
    }

    /// Checks one incoming message against the rules, then counts it
    /// against the peer's limits. `Err` is the code to refuse it with.
    pub fn admit(
        &self,
        subject: &Subject,
        intent: IntentId,
        name: Option<&str>,
        lane: Lane,
    ) -> Result<Admission, ErrorCode> {
        let (effect, signature_required) = self.decide_rule(subject, intent, name, lane);
        if effect == Effect::Deny {
            return Err(ErrorCode::PolicyDenied);
        }
        if self.limits.is_empty() {
            return Ok(Admission { in_flight: None, signature_required });
        }
        let now = Instant::now();
        let mut usage = self.usage.lock().unwrap_or_else(|e| e.into_inner());
        if usage.len() >= TRACKED_PEERS && !usage.contains_key(&subject.agent) {
            self.forget_idle(&mut usage, now);
        }
        let burst = self.limits.rate.map_or(0.0, |rate| f64::from(rate.burst.max(1)));
        let peer = usage.entry(subject.agent).or_insert_with(|| Usage {
            tokens: burst,
            refilled: now,
            window_start: now,
            in_window: 0,
            in_flight: Arc::new(AtomicU32::new(0)),
        });
        if let Some(rate) = self.limits.rate {
            let elapsed = now.saturating_duration_since(peer.refilled).as_secs_f64();
            peer.tokens = (peer.tokens + elapsed * f64::from(rate.per_second)).min(burst);
            peer.refilled = now;
            if peer.tokens < 1.0 {
                return Err(ErrorCode::RateLimited);
            }
        }
        if let Some(quota) = self.limits.quota {
            if now.saturating_duration_since(peer.window_start) >= quota.window {
                peer.window_start = now;
                peer.in_window = 0;
            }
            if peer.in_window >= quota.count {
                return Err(ErrorCode::QuotaExceeded);
            }
        }
        let in_flight = match (lane, self.limits.max_in_flight) {
            (Lane::Ask, Some(max)) => {
                if peer.in_flight.load(Ordering::Acquire) >= max {
                    return Err(ErrorCode::TooManyAsks);
                }
                peer.in_flight.fetch_add(1, Ordering::AcqRel);
                Some(peer.in_flight.clone())
            }
            _ => None,
        };
        if self.limits.rate.is_some() {
            peer.tokens -= 1.0;
        }
        peer.in_window = peer.in_window.saturating_add(1);
        Ok(Admission { in_flight, signature_required })
    }

    /// Forgets the peers with nothing in flight whose bucket is full and
    /// whose window is over: their state would be the same when new.
    fn forget_idle(&self, usage: &mut HashMap<AgentId, Usage>, now: Instant) {
        let window = self.limits.quota.map_or(Duration::ZERO, |q| q.window);
        let refill = self.limits.rate.map_or(Duration::ZERO, |r| {
            Duration::from_secs_f64(f64::from(r.burst.max(1)) / f64::from(r.per_second.max(1)))
        });
        usage.retain(|_, peer| {
            peer.in_flight.load(Ordering::Acquire) > 0
                || now.saturating_duration_since(peer.window_start) < window
                || now.saturating_duration_since(peer.refilled) < refill
        });
    }

    /// Reads a policy from a TOML file (format in the [module documentation](self)).
    pub fn load(path: impl AsRef<Path>) -> Result<Self, PolicyError> {
        let path = path.as_ref();
        let text =
            std::fs::read_to_string(path).map_err(|source| PolicyError::Io { path: path.to_path_buf(), source })?;
        Self::from_toml_str(&text)
    }

    /// Parses a policy from TOML (format in the [module documentation](self)).
    pub fn from_toml_str(text: &str) -> Result<Self, PolicyError> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            let (line, column) = e.span().map_or((0, 0), |span| line_column(text, span.start));
            PolicyError::Syntax { line, column, message: e.message().to_owned() }
        })?;
        parse_policy(&table)
    }
}

/// Why a policy file was not read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The file could not be read.
    #[error("cannot read policy file {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The text is not TOML.
    #[error("policy: line {line}, column {column}: {message}")]
    Syntax {
        /// The line (from 1).
        line: usize,
        /// The column (from 1).
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// A field is missing, unknown, of the wrong type or has a bad value.
    #[error("policy: field `{field}`: {reason}")]
    Field {
        /// Where, as `rule[1].lanes[0]`.
        field: String,
        /// What is wrong.
        reason: String,
    },
}

/// The entry point of the `policy` fuzz target (`fuzz/fuzz_targets/policy.rs`)
/// and of its corpus replay: parses `data` as a policy file and, if it
/// parses, checks a message against it. Must never panic.
#[doc(hidden)]
pub fn fuzz_policy_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match Policy::from_toml_str(text) {
        Ok(policy) => {
            let subject = Subject::agent(tacit_handshake::Identity::from_secret_bytes(&[1; 32]).agent_id());
            for lane in Lane::ALL {
                let _ = policy.admit(&subject, IntentId::from_bytes([0; 32]), Some("tacit.intents.v1.Ping"), lane);
            }
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    // By bytes: the offset need not fall on a character boundary.
    let before = &text.as_bytes()[..offset.min(text.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let start = before.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let column = String::from_utf8_lossy(&before[start..]).chars().count() + 1;
    (line, column)
}

fn field_error(field: impl Into<String>, reason: impl Into<String>) -> PolicyError {
    PolicyError::Field { field: field.into(), reason: reason.into() }
}

fn check_keys(table: &toml::Table, at: &str, known: &[&str]) -> Result<(), PolicyError> {
    match table.keys().find(|key| !known.contains(&key.as_str())) {
        Some(key) => {
            let field = if at.is_empty() { key.clone() } else { format!("{at}.{key}") };
            Err(field_error(field, format!("unknown key (expected one of: {})", known.join(", "))))
        }
        None => Ok(()),
    }
}

fn parse_effect(value: Option<&toml::Value>, field: &str) -> Result<Effect, PolicyError> {
    match value {
        None => Err(field_error(field, "missing (\"allow\" or \"deny\")")),
        Some(toml::Value::String(s)) if s == "allow" => Ok(Effect::Allow),
        Some(toml::Value::String(s)) if s == "deny" => Ok(Effect::Deny),
        Some(_) => Err(field_error(field, "expected \"allow\" or \"deny\"")),
    }
}

fn parse_policy(table: &toml::Table) -> Result<Policy, PolicyError> {
    check_keys(table, "", &["default", "limits", "rule"])?;
    let mut policy = Policy::new(parse_effect(table.get("default"), "default")?);
    if let Some(limits) = table.get("limits") {
        let toml::Value::Table(limits) = limits else { return Err(field_error("limits", "expected a table")) };
        policy.limits = parse_limits(limits)?;
    }
    match table.get("rule") {
        None => {}
        Some(toml::Value::Array(rules)) => {
            for (i, rule) in rules.iter().enumerate() {
                let at = format!("rule[{i}]");
                let toml::Value::Table(rule) = rule else { return Err(field_error(at, "expected a table")) };
                policy.rules.push(parse_rule(rule, &at)?);
            }
        }
        Some(_) => return Err(field_error("rule", "expected an array of tables ([[rule]])")),
    }
    Ok(policy)
}

fn parse_u32(table: &toml::Table, key: &str, at: &str) -> Result<Option<u32>, PolicyError> {
    match table.get(key) {
        None => Ok(None),
        Some(toml::Value::Integer(n)) if *n > 0 && *n <= i64::from(u32::MAX) => Ok(Some(*n as u32)),
        Some(_) => Err(field_error(format!("{at}.{key}"), "expected a positive integer")),
    }
}

fn parse_window(value: &toml::Value, field: &str) -> Result<Duration, PolicyError> {
    let bad = || field_error(field, "expected \"<n>s\", \"<n>m\" or \"<n>h\" with n > 0");
    let toml::Value::String(s) = value else { return Err(bad()) };
    let (number, unit) = s.split_at(s.len().saturating_sub(1));
    let n: u64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "s" => n,
        "m" => n.checked_mul(60).ok_or_else(bad)?,
        "h" => n.checked_mul(3600).ok_or_else(bad)?,
        _ => return Err(bad()),
    };
    if seconds == 0 {
        return Err(bad());
    }
    Ok(Duration::from_secs(seconds))
}

fn parse_limits(table: &toml::Table) -> Result<Limits, PolicyError> {
    let at = "limits";
    check_keys(table, at, &["rate", "burst", "quota", "window", "max_in_flight"])?;
    let rate = parse_u32(table, "rate", at)?;
    let burst = parse_u32(table, "burst", at)?;
    if burst.is_some() && rate.is_none() {
        return Err(field_error("limits.burst", "needs `rate`"));
    }
    let quota = parse_u32(table, "quota", at)?;
    let window = match table.get("window") {
        Some(value) => parse_window(value, "limits.window")?,
        None => Duration::from_secs(60),
    };
    if table.contains_key("window") && quota.is_none() {
        return Err(field_error("limits.window", "needs `quota`"));
    }
    Ok(Limits {
        rate: rate.map(|per_second| Rate { per_second, burst: burst.unwrap_or(per_second) }),
        quota: quota.map(|count| Quota { count, window }),
        max_in_flight: parse_u32(table, "max_in_flight", at)?,
    })
}

fn strings<'a>(table: &'a toml::Table, key: &str, at: &str) -> Result<Vec<(String, &'a str)>, PolicyError> {
    match table.get(key) {
        None => Ok(Vec::new()),
        Some(toml::Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                toml::Value::String(s) => Ok((format!("{at}.{key}[{i}]"), s.as_str())),
                _ => Err(field_error(format!("{at}.{key}[{i}]"), "expected a string")),
            })
            .collect(),
        Some(_) => Err(field_error(format!("{at}.{key}"), "expected an array of strings")),
    }
}

fn parse_rule(table: &toml::Table, at: &str) -> Result<Rule, PolicyError> {
    check_keys(table, at, &["effect", "agents", "orgs", "roles", "intents", "lanes", "signed"])?;
    let mut rule = Rule::new(parse_effect(table.get("effect"), &format!("{at}.effect"))?);
    for (field, s) in strings(table, "agents", at)? {
        rule.agents.push(s.parse().map_err(|e| field_error(field, format!("not an AgentId: {e}")))?);
    }
    for (field, s) in strings(table, "orgs", at)? {
        s.parse::<AgentId>().map_err(|e| field_error(field, format!("not an org key (AgentId form): {e}")))?;
        rule.orgs.push(s.to_owned());
    }
    rule.roles = strings(table, "roles", at)?.into_iter().map(|(_, s)| s.to_owned()).collect();
    for (field, s) in strings(table, "intents", at)? {
        if s.is_empty() {
            return Err(field_error(field, "empty intent"));
        }
        rule.intents.push(match s.parse::<IntentId>() {
            Ok(id) => IntentMatch::Id(id),
            Err(_) => IntentMatch::Name(s.to_owned()),
        });
    }
    for (field, s) in strings(table, "lanes", at)? {
        rule.lanes.push(match s {
            "ask" => Lane::Ask,
            "tell" => Lane::Tell,
            "stream" => Lane::Stream,
            "datagram" => Lane::Datagram,
            _ => return Err(field_error(field, "expected \"ask\", \"tell\", \"stream\" or \"datagram\"")),
        });
    }
    match table.get("signed") {
        None => {}
        Some(toml::Value::Boolean(signed)) => rule.signed = *signed,
        Some(_) => return Err(field_error(format!("{at}.signed"), "expected true or false")),
    }
    Ok(rule)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(seed: u8) -> AgentId {
        tacit_handshake::Identity::from_secret_bytes(&[seed; 32]).agent_id()
    }

    // [policy.first-match] the first matching rule decides; [policy.default]
    // none matching: the default.
    #[test]
    fn first_match_wins_then_default() {
        let (a, b) = (agent(1), agent(2));
        let id = IntentId::from_bytes([7; 32]);
        let policy = Policy::deny_all().rule(Rule::deny().agent(a).lane(Lane::Tell)).rule(Rule::allow().agent(a));
        assert_eq!(policy.decide(&Subject::agent(a), id, None, Lane::Tell), Effect::Deny);
        assert_eq!(policy.decide(&Subject::agent(a), id, None, Lane::Ask), Effect::Allow);
        assert_eq!(policy.decide(&Subject::agent(b), id, None, Lane::Ask), Effect::Deny);
    }

    // [policy.membership] org and role conditions match verified memberships.
    #[test]
    fn org_and_role_match_memberships() {
        let org = agent(9).to_string();
        let id = IntentId::from_bytes([7; 32]);
        let policy = Policy::deny_all().rule(Rule::allow().org(org.clone()).role("ops"));
        let member = |roles: &[&str]| Subject {
            agent: agent(1),
            memberships: vec![Membership::new(org.clone(), roles.iter().copied())],
        };
        assert_eq!(policy.decide(&member(&["ops"]), id, None, Lane::Ask), Effect::Allow);
        assert_eq!(policy.decide(&member(&["dev"]), id, None, Lane::Ask), Effect::Deny);
        assert_eq!(policy.decide(&Subject::agent(agent(1)), id, None, Lane::Ask), Effect::Deny);
    }

    // [policy.narrowed] a narrowed membership matches org and role
    // conditions only for the intents it names, deny rules as allow rules.
    #[test]
    fn narrowed_memberships_count_only_for_their_intents() {
        let org = agent(9).to_string();
        let (named, other) = (IntentId::from_bytes([7; 32]), IntentId::from_bytes([8; 32]));
        let allow = Policy::deny_all().rule(Rule::allow().org(org.clone()));
        let narrowed =
            Subject { agent: agent(1), memberships: vec![Membership::new(org.clone(), ["ops"]).narrowed([named])] };
        assert_eq!(allow.decide(&narrowed, named, None, Lane::Ask), Effect::Allow);
        assert_eq!(allow.decide(&narrowed, other, None, Lane::Ask), Effect::Deny);
        let deny = Policy::allow_all().rule(Rule::deny().org(org.clone()).role("ops"));
        assert_eq!(deny.decide(&narrowed, named, None, Lane::Ask), Effect::Deny);
        assert_eq!(deny.decide(&narrowed, other, None, Lane::Ask), Effect::Allow);
        // Not narrowed: every intent.
        let full = Subject { agent: agent(1), memberships: vec![Membership::new(org, ["ops"])] };
        assert_eq!(allow.decide(&full, other, None, Lane::Ask), Effect::Allow);
        // The offers follow the same rule.
        let offers = vec![
            IntentOffer::handles(named, "a.v1.Named").on_lanes(Lanes::ASK),
            IntentOffer::handles(other, "a.v1.Other").on_lanes(Lanes::ASK.union(Lanes::ONE_WAY)),
        ];
        let offered = allow.offered(&narrowed, &offers);
        assert_eq!(offered.len(), 1);
        assert_eq!((offered[0].id, offered[0].lanes), (named, Lanes::ASK));
    }

    // [policy.offer-filter] each handled intent on the allowed lanes only.
    #[test]
    fn offers_keep_the_allowed_lanes() {
        let (a, id) = (agent(1), IntentId::from_bytes([7; 32]));
        let policy = Policy::deny_all().rule(Rule::allow().agent(a).lane(Lane::Tell));
        let offers = vec![
            IntentOffer::handles(id, "a.v1.X").on_lanes(Lanes::ASK.union(Lanes::ONE_WAY)),
            IntentOffer::emits(IntentId::from_bytes([8; 32]), "a.v1.Out"),
        ];
        let offered = policy.offered(&Subject::agent(a), &offers);
        assert_eq!(offered[0].lanes, Lanes::of(Lane::Tell));
        assert!(offered[1].emits && !offered[1].handles, "emitted intents stay");
        let stranger = policy.offered(&Subject::agent(agent(2)), &offers);
        assert_eq!(stranger.len(), 1, "an intent with no lane left is not handled: {stranger:?}");
        assert!(!stranger[0].handles);
    }

    // [policy.intent-match] by name (when known) or IntentId.
    #[test]
    fn intents_by_name_or_id() {
        let id = IntentId::from_bytes([7; 32]);
        let policy = Policy::deny_all().rule(Rule::allow().intent_name("a.v1.X")).rule(Rule::allow().intent(id));
        let s = Subject::agent(agent(1));
        let other = IntentId::from_bytes([8; 32]);
        assert_eq!(policy.decide(&s, other, Some("a.v1.X"), Lane::Ask), Effect::Allow);
        assert_eq!(policy.decide(&s, other, None, Lane::Ask), Effect::Deny);
        assert_eq!(policy.decide(&s, id, None, Lane::Ask), Effect::Allow);
    }

    // [policy.in-flight] the slot is given back when the admission drops.
    #[test]
    fn in_flight_slots_return() {
        let policy = Policy::allow_all().limits(Limits { max_in_flight: Some(1), ..Limits::default() });
        let s = Subject::agent(agent(1));
        let id = IntentId::from_bytes([7; 32]);
        let first = policy.admit(&s, id, None, Lane::Ask).unwrap();
        assert_eq!(policy.admit(&s, id, None, Lane::Ask).unwrap_err(), ErrorCode::TooManyAsks);
        // Tells hold no slot.
        assert!(policy.admit(&s, id, None, Lane::Tell).is_ok());
        drop(first);
        assert!(policy.admit(&s, id, None, Lane::Ask).is_ok());
    }

    #[test]
    fn file_format_round_trip() {
        let a = agent(1);
        let text = format!(
            "default = \"deny\"\n[limits]\nrate = 5\nburst = 2\nquota = 10\nwindow = \"1h\"\nmax_in_flight = 3\n\n\
             [[rule]]\neffect = \"allow\"\nagents = [\"{a}\"]\nintents = [\"a.v1.X\"]\nlanes = [\"ask\", \"tell\"]\n"
        );
        let policy = Policy::from_toml_str(&text).unwrap();
        assert_eq!(policy.default, Effect::Deny);
        assert_eq!(policy.limits.rate, Some(Rate { per_second: 5, burst: 2 }));
        assert_eq!(policy.limits.quota, Some(Quota { count: 10, window: Duration::from_secs(3600) }));
        assert_eq!(policy.limits.max_in_flight, Some(3));
        assert_eq!(policy.rules, vec![Rule::allow().agent(a).intent_name("a.v1.X").lane(Lane::Ask).lane(Lane::Tell)]);
    }
}
