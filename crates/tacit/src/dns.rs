//! Finding agents by AgentId through DNS: signed records in TXT records
//! under a domain (feature `dns`).
//!
//! An agent is published under a domain, the *origin*, at
//! `_tacit.<agentid>.<origin>` ([`record_name`]), as TXT records each
//! carrying one [`SignedAgentRecord`] ([`txt_strings`], [`zone_lines`]).
//! [`DnsLookup`] is the [`Lookup`] that reads them for
//! [`Agent::connect_id`](crate::Agent::connect_id): it accepts only records
//! signed by the key of the AgentId looked up, for that id and not expired,
//! so neither the zone's operator nor a spoofed answer can point the id
//! elsewhere — and the TLS handshake still proves the key of whatever
//! address a record names. The format is in `docs/PROTOCOL.md`
//! ("DNS records").
//!
//! ```no_run
//! # async fn run(id: tacit::AgentId) -> Result<(), Box<dyn std::error::Error>> {
//! use tacit::dns::DnsLookup;
//!
//! let agent = tacit::Agent::builder().lookup(DnsLookup::new("agents.example.com")?).bind("0.0.0.0:0".parse()?).await?;
//! let peer = agent.connect_id(id).await?;
//! # let _ = peer;
//! # Ok(()) }
//! ```
//!
//! Publishing is the zone operator's job: `tacit dns record` (or
//! [`zone_lines`]) prints the lines to add to the zone.

use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use data_encoding::BASE64URL_NOPAD;
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RData};
use tacit_handshake::AgentId;
use tacit_handshake::record::{MAX_RECORD_LEN, RecordError, SignedAgentRecord, VerifiedRecord};

use crate::Agent;
use crate::discovery::{Lookup, LookupFuture};
use crate::error::BoxError;

/// What the value of a Tacit TXT record starts with (rule `disc.dns-txt`).
pub const TXT_PREFIX: &str = "tacit1=";
/// The first label of every Tacit name (`_tacit.<agentid>.<origin>`).
pub const NAME_LABEL: &str = "_tacit";
/// Longest character-string of a TXT record (RFC 1035).
pub const MAX_TXT_STRING_LEN: usize = 255;
/// Most TXT records read at one name; more are ignored (rule `disc.dns-bounds`).
pub const MAX_TXT_RECORDS: usize = 8;
/// Longest TXT value read (its strings concatenated): the prefix and the
/// base64url of a [`MAX_RECORD_LEN`] record.
pub const MAX_TXT_VALUE_LEN: usize = TXT_PREFIX.len() + (MAX_RECORD_LEN * 4).div_ceil(3);
/// How long [`DnsLookup`] waits for a lookup, all retries included, unless
/// told otherwise ([`DnsLookup::timeout`]).
pub const DEFAULT_LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a TXT value is not a Tacit record ([`parse_txt`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DnsRecordError {
    /// The value does not start with [`TXT_PREFIX`]: some other software's
    /// TXT record, ignored by readers.
    #[error("not a Tacit record (no {TXT_PREFIX:?} prefix)")]
    NotTacit,
    /// The strings concatenated are longer than [`MAX_TXT_VALUE_LEN`].
    #[error("a TXT value of {0} bytes, over the limit of {MAX_TXT_VALUE_LEN}")]
    TooLong(usize),
    /// What follows the prefix is not unpadded base64url.
    #[error("the value after {TXT_PREFIX:?} is not unpadded base64url: {0}")]
    Base64(String),
    /// The record does not decode, or does not verify for the id looked up.
    #[error(transparent)]
    Record(#[from] RecordError),
}

/// Why a [`DnsLookup`] could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DnsSetupError {
    /// The origin is not a domain name.
    #[error("{origin:?} is not a domain name: {reason}")]
    Origin {
        /// The origin given.
        origin: String,
        /// Why it is not one.
        reason: String,
    },
    /// The system's resolver configuration (`/etc/resolv.conf`) could not be read.
    #[error("cannot read the system's DNS configuration: {0}")]
    System(String),
    /// [`DnsLookup::with_nameservers`] got no server.
    #[error("no name server given")]
    NoServers,
}

/// `origin` as Tacit writes it in names — lowercase, without the final
/// dot — or why it is not a domain name that can hold Tacit names.
pub fn normalize_origin(origin: &str) -> Result<String, DnsSetupError> {
    let normalized = origin.trim().trim_end_matches('.').to_ascii_lowercase();
    let bad = |reason: &str| DnsSetupError::Origin { origin: origin.to_owned(), reason: reason.to_owned() };
    if normalized.is_empty() {
        return Err(bad("it is empty"));
    }
    let name = Name::from_ascii(format!("{normalized}.")).map_err(|e| bad(&e.to_string()))?;
    // Room for `_tacit.<52 chars>.` in a 255-byte name.
    if name.len() + NAME_LABEL.len() + 1 + 52 + 1 > 255 {
        return Err(bad("it is too long to hold a Tacit name"));
    }
    Ok(normalized)
}

/// The name an agent is published at under `origin`:
/// `_tacit.<agentid>.<origin>.` (fully qualified, lowercase; a final dot
/// on `origin` is optional).
pub fn record_name(id: &AgentId, origin: &str) -> String {
    let origin = origin.trim().trim_end_matches('.').to_ascii_lowercase();
    format!("{NAME_LABEL}.{id}.{origin}.")
}

/// The character-strings of the TXT record that carries `record`:
/// [`TXT_PREFIX`] and the unpadded base64url of the encoded record, cut
/// into strings of at most [`MAX_TXT_STRING_LEN`] bytes.
pub fn txt_strings(record: &SignedAgentRecord) -> Vec<String> {
    let value = format!("{TXT_PREFIX}{}", BASE64URL_NOPAD.encode(&record.encode()));
    // The value is ASCII, so every byte offset is a char boundary.
    value.as_bytes().chunks(MAX_TXT_STRING_LEN).map(|chunk| String::from_utf8_lossy(chunk).into_owned()).collect()
}

/// Zone-file lines (RFC 1035 master format) that publish `record` under
/// `origin` with the DNS TTL `ttl` (seconds): one TXT record, on one line,
/// ready to paste into the zone.
pub fn zone_lines(record: &SignedAgentRecord, origin: &str, ttl: u32) -> String {
    let id = record.record().map(|r| r.agent_id);
    let name = match id {
        Ok(id) => record_name(&id, origin),
        // A record whose body does not decode names no agent; publish it
        // nowhere rather than somewhere wrong.
        Err(_) => return String::new(),
    };
    let strings: Vec<String> = txt_strings(record).iter().map(|s| format!("\"{s}\"")).collect();
    format!("{name} {ttl} IN TXT {}\n", strings.join(" "))
}

/// The record carried by one TXT record's character-strings, decoded but
/// not verified (check it with [`SignedAgentRecord::verify_for`]).
///
/// Fails with [`DnsRecordError::NotTacit`] for a value without the prefix,
/// and never reads more than [`MAX_TXT_VALUE_LEN`] bytes.
pub fn parse_txt<S: AsRef<[u8]>>(strings: impl IntoIterator<Item = S>) -> Result<SignedAgentRecord, DnsRecordError> {
    let mut value = Vec::new();
    let mut head = Vec::with_capacity(TXT_PREFIX.len());
    let mut total = 0usize;
    for string in strings {
        let string = string.as_ref();
        let room = TXT_PREFIX.len() - head.len();
        head.extend_from_slice(&string[..room.min(string.len())]);
        total = total.saturating_add(string.len());
        if total <= MAX_TXT_VALUE_LEN {
            value.extend_from_slice(string);
        }
    }
    if head != TXT_PREFIX.as_bytes() {
        return Err(DnsRecordError::NotTacit);
    }
    if total > MAX_TXT_VALUE_LEN {
        return Err(DnsRecordError::TooLong(total));
    }
    let encoded = &value[TXT_PREFIX.len()..];
    let bytes = BASE64URL_NOPAD.decode(encoded).map_err(|e| DnsRecordError::Base64(e.to_string()))?;
    Ok(SignedAgentRecord::decode(&bytes)?)
}

/// [`parse_txt`], then [`SignedAgentRecord::verify_for`] `id` at `now`.
pub fn verify_txt<S: AsRef<[u8]>>(
    strings: impl IntoIterator<Item = S>,
    id: &AgentId,
    now: SystemTime,
) -> Result<VerifiedRecord, DnsRecordError> {
    Ok(parse_txt(strings)?.verify_for(id, now)?)
}

/// A [`Lookup`] that reads agents' signed records from TXT records under a
/// domain: [`Lookup::name`] is `dns <origin>`. Several origins are several
/// lookups.
///
/// No record there (NXDOMAIN, or no TXT record) is no address; TXT records
/// of which none verifies are an error that says why; so is a resolver
/// error (a timeout, `SERVFAIL`). Of several records that verify, the
/// newest (`issued_at`) wins.
#[derive(Clone)]
pub struct DnsLookup {
    origin: String,
    resolver: TokioResolver,
    timeout: Duration,
}

impl fmt::Debug for DnsLookup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DnsLookup")
            .field("origin", &self.origin)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

fn options(mut options: ResolverOpts) -> ResolverOpts {
    // Only TXT lookups of fully qualified names: no hosts file.
    options.use_hosts_file = ResolveHosts::Never;
    options
}

impl DnsLookup {
    /// Reads records under `origin` through the system's resolvers
    /// (`/etc/resolv.conf`).
    pub fn new(origin: &str) -> Result<Self, DnsSetupError> {
        let origin = normalize_origin(origin)?;
        let (config, opts) = hickory_resolver::system_conf::read_system_conf()
            .map_err(|e: NetError| DnsSetupError::System(e.to_string()))?;
        let resolver = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
            .with_options(options(opts))
            .build()
            .map_err(|e| DnsSetupError::System(e.to_string()))?;
        Ok(Self { origin, resolver, timeout: DEFAULT_LOOKUP_TIMEOUT })
    }

    /// Reads records under `origin` by asking `servers` (UDP, and TCP for
    /// answers too large for UDP), in order: for a private zone, or tests.
    pub fn with_nameservers(origin: &str, servers: &[SocketAddr]) -> Result<Self, DnsSetupError> {
        let origin = normalize_origin(origin)?;
        if servers.is_empty() {
            return Err(DnsSetupError::NoServers);
        }
        let name_servers = servers
            .iter()
            .map(|server| {
                let mut udp = ConnectionConfig::udp();
                udp.port = server.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = server.port();
                NameServerConfig::new(server.ip(), true, vec![udp, tcp])
            })
            .collect();
        let mut opts = ResolverOpts::default();
        opts.timeout = Duration::from_secs(2);
        opts.attempts = 1;
        let resolver = TokioResolver::builder_with_config(
            ResolverConfig::from_name_servers(name_servers),
            TokioRuntimeProvider::default(),
        )
        .with_options(options(opts))
        .build()
        .map_err(|e| DnsSetupError::System(e.to_string()))?;
        Ok(Self { origin, resolver, timeout: DEFAULT_LOOKUP_TIMEOUT })
    }

    /// Gives up on a lookup after `timeout` (default
    /// [`DEFAULT_LOOKUP_TIMEOUT`]), whatever the resolver's retries.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The origin, lowercase without the final dot.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The newest record published for `id` that verifies at `now`:
    /// `Ok(None)` when there is none (no name, no TXT record, or only other
    /// software's TXT records), an error naming why when there are Tacit
    /// records but none verifies, or when the resolver fails.
    pub async fn resolve(&self, id: AgentId) -> Result<Option<VerifiedRecord>, BoxError> {
        let name = record_name(&id, &self.origin);
        let answer = match tokio::time::timeout(self.timeout, self.resolver.txt_lookup(name.as_str())).await {
            Err(_) => return Err(format!("no answer for {name} within {:?}", self.timeout).into()),
            Ok(Err(e)) => {
                if let NetError::Dns(hickory_resolver::net::DnsError::NoRecordsFound(no)) = &e
                    && matches!(no.response_code, ResponseCode::NXDomain | ResponseCode::NoError)
                {
                    return Ok(None);
                }
                return Err(format!("{name}: {e}").into());
            }
            Ok(Ok(answer)) => answer,
        };
        let txts: Vec<_> = answer
            .answers()
            .iter()
            .filter_map(|record| match &record.data {
                RData::TXT(txt) => Some(txt),
                _ => None,
            })
            .collect();
        if txts.len() > MAX_TXT_RECORDS {
            tracing::warn!(
                %name,
                count = txts.len(),
                "more TXT records than {MAX_TXT_RECORDS}: reading the first {MAX_TXT_RECORDS}"
            );
        }
        let now = SystemTime::now();
        let considered = txts.len().min(MAX_TXT_RECORDS);
        let mut best: Option<VerifiedRecord> = None;
        let mut reasons = Vec::new();
        for txt in txts.into_iter().take(MAX_TXT_RECORDS) {
            match verify_txt(txt.txt_data.iter(), &id, now) {
                Ok(verified) => {
                    if best.as_ref().is_none_or(|b| verified.record.issued_at > b.record.issued_at) {
                        best = Some(verified);
                    }
                }
                Err(DnsRecordError::NotTacit) => tracing::debug!(%name, "ignored a TXT record that is not Tacit's"),
                Err(why) => {
                    tracing::warn!(%name, %why, "ignored a Tacit TXT record that does not verify");
                    reasons.push(why.to_string());
                }
            }
        }
        match best {
            Some(best) => Ok(Some(best)),
            None if reasons.is_empty() => Ok(None),
            None => {
                reasons.dedup();
                let plural = if considered == 1 { "" } else { "s" };
                Err(format!("{considered} TXT record{plural} at {name}, none valid: {}", reasons.join("; ")).into())
            }
        }
    }
}

impl Lookup for DnsLookup {
    fn name(&self) -> String {
        format!("dns {}", self.origin)
    }

    fn lookup<'a>(&'a self, _agent: &'a Agent, id: AgentId) -> LookupFuture<'a> {
        Box::pin(async move { Ok(self.resolve(id).await?.map(|verified| verified.record.addrs).unwrap_or_default()) })
    }
}
