//! Agents on the local network, by mDNS / DNS-SD (feature `mdns`, with the
//! [`mdns-sd`](https://docs.rs/mdns-sd) crate).
//!
//! - An agent built with [`AgentBuilder::mdns`] announces itself once bound:
//!   the service [`SERVICE_TYPE`] (`_tacit._udp.local.`), instance name its
//!   [`AgentId`], port its bound port, and TXT properties `v=1`, `id`,
//!   `name`, `tags` and `intents` (the [`intents_digest`] of what it
//!   handles). When the agent is shut down or dropped it withdraws the
//!   announcement (a goodbye), so the others see it leave.
//! - [`MdnsLookup`] finds an AgentId's addresses on the local network for
//!   [`Agent::connect_id`]; [`AgentBuilder::mdns`] adds one to the lookup
//!   chain (memory first, then the lookups in the order they were added).
//! - [`Agent::discover`] watches the agents on the local network come
//!   ([`Discovered::Appeared`]) and go ([`Discovered::Left`]).
//!
//! Nothing in an announcement is trusted: anyone on the link can announce
//! any AgentId. An address found here is dialed expecting the AgentId, so
//! the TLS handshake proves the key; a false announcement can waste a
//! connect timeout but never impersonate. Malformed announcements are
//! ignored, each with a log line. The format is in `docs/PROTOCOL.md`
//! ("mDNS").
//!
//! ```no_run
//! # async fn run() -> tacit::Result<()> {
//! use tacit::mdns::{Discovered, Mdns};
//!
//! let seller = tacit::Agent::builder()
//!     .card(tacit::AgentCard::new("seller").with_role("seller"))
//!     .mdns(Mdns::new())
//!     .bind("0.0.0.0:0".parse().unwrap())
//!     .await?;
//! let buyer = tacit::Agent::builder().mdns(Mdns::new()).bind("0.0.0.0:0".parse().unwrap()).await?;
//! let mut agents = buyer.discover()?;
//! while let Some(event) = agents.next().await {
//!     if let Discovered::Appeared(agent) = event
//!         && agent.tags.iter().any(|tag| tag == "seller")
//!     {
//!         let peer = buyer.connect_id(agent.id).await?;
//!         # let _ = (peer, &seller);
//!         break;
//!     }
//! }
//! # Ok(())
//! # }
//! ```

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::{IpAddr, SocketAddr, SocketAddrV6};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use data_encoding::BASE32_NOPAD;
use mdns_sd::{
    IfKind, IfPredicate, ResolvedService, ScopedIp, ServiceDaemon, ServiceEvent, ServiceInfo, TxtProperties,
};
use tacit_handshake::AgentId;
use tacit_handshake::record::{MAX_ADDRS, MAX_NAME_LEN, MAX_TAG_LEN, MAX_TAGS};
use tacit_wire::IntentId;
use tokio::sync::broadcast;
use tokio::task::AbortHandle;

use crate::discovery::{Lookup, LookupFuture};
use crate::{Agent, AgentBuilder, Error, Result};

/// The DNS-SD service type tacit agents announce.
pub const SERVICE_TYPE: &str = "_tacit._udp.local.";
/// The value of the `v` TXT property this version writes and reads.
pub const TXT_VERSION: &str = "1";
/// How long [`MdnsLookup`] waits for an agent it has not seen yet.
pub const DEFAULT_BROWSE_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest `tags` TXT value, in bytes (tags that do not fit are left out
/// when announcing; a longer value makes an announcement malformed).
pub const MAX_TAGS_VALUE_LEN: usize = 200;
/// Bytes of the intents digest (printed as 26 base32 characters).
pub const DIGEST_LEN: usize = 16;
/// Most agents one browser keeps track of; announcements of more are
/// ignored (and logged).
pub const MAX_AGENTS: usize = 1024;
/// Events a [`Discovery`] may fall behind by before it resynchronises.
const EVENT_BUFFER: usize = 256;
/// The printed length of an intents digest.
const DIGEST_PRINTED_LEN: usize = 26;

/// The intents digest of an announcement: the first [`DIGEST_LEN`] bytes
/// of BLAKE3 over the 32-byte ids of the intents, sorted bytewise and
/// without duplicates, concatenated; printed in lowercase RFC 4648 base32
/// without padding (26 characters). Compute it for the intents you look
/// for and compare with [`MdnsAgent::intents_digest`] (or use
/// [`MdnsAgent::handles_exactly`]).
pub fn intents_digest(ids: impl IntoIterator<Item = IntentId>) -> String {
    let mut ids: Vec<[u8; 32]> = ids.into_iter().map(|id| *id.as_bytes()).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut hasher = blake3::Hasher::new();
    for id in &ids {
        hasher.update(id);
    }
    let hash = hasher.finalize();
    let mut printed = BASE32_NOPAD.encode(&hash.as_bytes()[..DIGEST_LEN]);
    printed.make_ascii_lowercase();
    printed
}

/// mDNS settings for [`AgentBuilder::mdns`] and [`MdnsLookup::with_config`].
#[derive(Debug, Clone)]
pub struct Mdns {
    interfaces: Vec<String>,
    browse_timeout: Duration,
}

impl Default for Mdns {
    fn default() -> Self {
        Self::new()
    }
}

impl Mdns {
    /// Every interface, a browse timeout of [`DEFAULT_BROWSE_TIMEOUT`].
    pub fn new() -> Self {
        Self { interfaces: Vec::new(), browse_timeout: DEFAULT_BROWSE_TIMEOUT }
    }

    /// Announces and browses on the interface `name` (`eth0`) only; call
    /// again for more. Without any, every interface (loopback included).
    pub fn interface(mut self, name: impl Into<String>) -> Self {
        self.interfaces.push(name.into());
        self
    }

    /// How long [`MdnsLookup`] waits for an agent it has not seen yet
    /// (default [`DEFAULT_BROWSE_TIMEOUT`]).
    pub fn browse_timeout(mut self, timeout: Duration) -> Self {
        self.browse_timeout = timeout;
        self
    }
}

/// An agent seen on the local network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MdnsAgent {
    /// Its AgentId (the instance name).
    pub id: AgentId,
    /// Its addresses, each with the announced port.
    pub addrs: Vec<SocketAddr>,
    /// The name on its card (`name`; may be empty).
    pub name: String,
    /// Its tags, the roles on its card (`tags`).
    pub tags: Vec<String>,
    /// The [`intents_digest`] of the intents it handles (`intents`).
    pub intents_digest: String,
}

impl MdnsAgent {
    /// Whether it has the tag `tag`.
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }

    /// Whether the intents it handles are exactly `ids` (compares digests).
    pub fn handles_exactly(&self, ids: impl IntoIterator<Item = IntentId>) -> bool {
        self.intents_digest == intents_digest(ids)
    }
}

/// What a [`Discovery`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Discovered {
    /// An agent announced itself, or changed its announcement.
    Appeared(MdnsAgent),
    /// The agent withdrew its announcement, or it expired.
    Left(AgentId),
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// At most `max` bytes of `s` (cut on a character boundary): for logs and
/// announced values.
fn bounded(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The mDNS daemon of an agent (or of a lookup), its one browse of
/// [`SERVICE_TYPE`], and the agents that browse has seen.
struct Shared {
    config: Mdns,
    daemon: Mutex<Option<ServiceDaemon>>,
    browser: Mutex<Option<(Arc<Browser>, AbortHandle)>>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Shared {
    fn new(config: Mdns) -> Self {
        Self { config, daemon: Mutex::new(None), browser: Mutex::new(None) }
    }

    /// The daemon, started on first use.
    fn daemon(&self) -> std::result::Result<ServiceDaemon, mdns_sd::Error> {
        let mut slot = lock(&self.daemon);
        if let Some(daemon) = &*slot {
            return Ok(daemon.clone());
        }
        let daemon = ServiceDaemon::new()?;
        if !self.config.interfaces.is_empty() {
            let started = daemon.disable_interface(IfKind::All).and_then(|()| {
                daemon.enable_interface(self.config.interfaces.iter().map(IfKind::from).collect::<Vec<_>>())
            });
            if let Err(e) = started {
                let _ = daemon.shutdown();
                return Err(e);
            }
        }
        *slot = Some(daemon.clone());
        Ok(daemon)
    }

    /// The browse, started on first use (within a Tokio runtime).
    fn browser(&self) -> std::result::Result<Arc<Browser>, String> {
        let mut slot = lock(&self.browser);
        if let Some((browser, _)) = &*slot {
            return Ok(browser.clone());
        }
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|e| format!("mDNS browsing needs a Tokio runtime: {e}"))?;
        let events = self.daemon().and_then(|d| d.browse(SERVICE_TYPE)).map_err(|e| format!("mDNS: {e}"))?;
        let browser = Arc::new(Browser::new());
        let task = runtime.spawn(browse(events, browser.clone())).abort_handle();
        *slot = Some((browser.clone(), task));
        Ok(browser)
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Some((_, task)) = lock(&self.browser).take() {
            task.abort();
        }
        if let Some(daemon) = lock(&self.daemon).take() {
            let _ = daemon.shutdown();
        }
    }
}

/// The agents one browse has seen, and the changes to them.
struct Browser {
    agents: Mutex<HashMap<AgentId, MdnsAgent>>,
    /// `None` once the browse has ended (the daemon stopped).
    events: Mutex<Option<broadcast::Sender<Discovered>>>,
}

impl Browser {
    fn new() -> Self {
        Self { agents: Mutex::new(HashMap::new()), events: Mutex::new(Some(broadcast::channel(EVENT_BUFFER).0)) }
    }

    fn subscribe(&self) -> Option<broadcast::Receiver<Discovered>> {
        lock(&self.events).as_ref().map(broadcast::Sender::subscribe)
    }

    fn get(&self, id: &AgentId) -> Option<MdnsAgent> {
        lock(&self.agents).get(id).cloned()
    }

    fn snapshot(&self) -> HashMap<AgentId, MdnsAgent> {
        lock(&self.agents).clone()
    }

    fn send(&self, event: Discovered) {
        if let Some(events) = &*lock(&self.events) {
            // No receiver is no error.
            let _ = events.send(event);
        }
    }

    fn appeared(&self, agent: MdnsAgent) {
        {
            let mut agents = lock(&self.agents);
            if agents.get(&agent.id) == Some(&agent) {
                return;
            }
            if !agents.contains_key(&agent.id) && agents.len() >= MAX_AGENTS {
                tracing::warn!(id = %agent.id, max = MAX_AGENTS, "ignored an mDNS announcement: too many agents");
                return;
            }
            agents.insert(agent.id, agent.clone());
        }
        tracing::debug!(id = %agent.id, addrs = ?agent.addrs, "mDNS: agent appeared");
        self.send(Discovered::Appeared(agent));
    }

    fn left(&self, id: AgentId) {
        if lock(&self.agents).remove(&id).is_some() {
            tracing::debug!(%id, "mDNS: agent left");
            self.send(Discovered::Left(id));
        }
    }
}

/// Runs the browse: turns the daemon's events into the browser's table.
async fn browse(events: mdns_sd::Receiver<ServiceEvent>, browser: Arc<Browser>) {
    while let Ok(event) = events.recv_async().await {
        match event {
            ServiceEvent::ServiceResolved(service) => match parse(&service) {
                Ok(agent) => browser.appeared(agent),
                Err(why) => tracing::warn!(
                    instance = bounded(&service.fullname, 120),
                    %why,
                    "ignored a malformed mDNS announcement"
                ),
            },
            ServiceEvent::ServiceRemoved(_, fullname) => {
                if let Ok(id) = instance_id(&fullname) {
                    browser.left(id);
                }
            }
            _ => {}
        }
    }
    tracing::debug!("mDNS browse ended");
    lock(&browser.events).take();
}

/// The AgentId of the instance `fullname` (`<id>._tacit._udp.local.`).
fn instance_id(fullname: &str) -> std::result::Result<AgentId, String> {
    let instance = fullname
        .len()
        .checked_sub(SERVICE_TYPE.len() + 1)
        .filter(|&at| {
            fullname.is_char_boundary(at)
                && fullname[at..].starts_with('.')
                && fullname[at + 1..].eq_ignore_ascii_case(SERVICE_TYPE)
        })
        .map(|at| &fullname[..at])
        .ok_or("not an instance of _tacit._udp.local.")?;
    // DNS names are case-insensitive; AgentIds are printed in lowercase.
    instance.to_ascii_lowercase().parse::<AgentId>().map_err(|e| format!("the instance name is not an AgentId: {e}"))
}

/// The value of the TXT property `key`, as UTF-8.
fn property<'a>(properties: &'a TxtProperties, key: &str) -> std::result::Result<Option<&'a str>, String> {
    match properties.get_property_val(key) {
        None => Ok(None),
        Some(None) => Err(format!("`{key}` has no value")),
        Some(Some(bytes)) => std::str::from_utf8(bytes).map(Some).map_err(|_| format!("`{key}` is not UTF-8")),
    }
}

/// An announcement, checked (rule `disc.mdns-ignore` of the protocol).
fn parse(service: &ResolvedService) -> std::result::Result<MdnsAgent, String> {
    let id = instance_id(&service.fullname)?;
    let properties = &service.txt_properties;
    match property(properties, "v")? {
        Some(TXT_VERSION) => {}
        Some(v) => return Err(format!("unknown version v={}", bounded(v, 16))),
        None => return Err("no `v` property".into()),
    }
    match property(properties, "id")? {
        Some(value) if value == id.to_string() => {}
        Some(_) => return Err("its `id` property is not its instance name".into()),
        None => return Err("no `id` property".into()),
    }
    if service.port == 0 {
        return Err("port 0".into());
    }
    let name = property(properties, "name")?.unwrap_or_default();
    if name.len() > MAX_NAME_LEN {
        return Err(format!("a name of {} bytes (most {MAX_NAME_LEN})", name.len()));
    }
    let tags_value = property(properties, "tags")?.unwrap_or_default();
    if tags_value.len() > MAX_TAGS_VALUE_LEN {
        return Err(format!("tags of {} bytes (most {MAX_TAGS_VALUE_LEN})", tags_value.len()));
    }
    let tags: Vec<String> = tags_value.split(',').filter(|t| !t.is_empty()).map(str::to_owned).collect();
    if tags.len() > MAX_TAGS || tags.iter().any(|t| t.len() > MAX_TAG_LEN) {
        return Err("too many or too long tags".into());
    }
    let digest = property(properties, "intents")?.ok_or("no `intents` property")?;
    if digest.len() != DIGEST_PRINTED_LEN
        || !digest.bytes().all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))
    {
        return Err(format!("`intents` is not a digest: {}", bounded(digest, 40)));
    }
    let mut addrs: Vec<SocketAddr> = service
        .addresses
        .iter()
        .filter(|ip| {
            let ip = ip.to_ip_addr();
            !ip.is_unspecified() && !ip.is_multicast()
        })
        .map(|ip| match ip {
            ScopedIp::V6(v6) => SocketAddrV6::new(
                *v6.addr(),
                service.port,
                0,
                if is_link_local(v6.addr()) { v6.scope_id().index } else { 0 },
            )
            .into(),
            other => SocketAddr::new(other.to_ip_addr(), service.port),
        })
        .collect();
    if addrs.is_empty() {
        return Err("no usable address".into());
    }
    addrs.sort_unstable();
    addrs.dedup();
    addrs.truncate(MAX_ADDRS);
    Ok(MdnsAgent { id, addrs, name: name.to_owned(), tags, intents_digest: digest.to_owned() })
}

fn is_link_local(ip: &std::net::Ipv6Addr) -> bool {
    (ip.segments()[0] & 0xffc0) == 0xfe80
}

/// Finds agents on the local network by AgentId, for
/// [`Agent::connect_id`]: the addresses of the instance
/// `<id>._tacit._udp.local.`, waiting up to the browse timeout
/// ([`Mdns::browse_timeout`]) for an agent not seen yet. Named `mdns` in
/// errors.
///
/// [`AgentBuilder::mdns`] adds one sharing the agent's daemon; one made
/// with [`new`](Self::new) (for [`AgentBuilder::lookup`]) starts a daemon of
/// its own at its first lookup.
#[derive(Debug)]
pub struct MdnsLookup {
    shared: Arc<Shared>,
}

impl Default for MdnsLookup {
    fn default() -> Self {
        Self::new()
    }
}

impl MdnsLookup {
    /// A lookup with the default settings ([`Mdns::new`]).
    pub fn new() -> Self {
        Self::with_config(Mdns::new())
    }

    /// A lookup with `config`'s interfaces and browse timeout.
    pub fn with_config(config: Mdns) -> Self {
        Self { shared: Arc::new(Shared::new(config)) }
    }

    async fn find(&self, id: AgentId) -> std::result::Result<Vec<SocketAddr>, String> {
        let browser = self.shared.browser()?;
        let mut events = browser.subscribe().ok_or("the mDNS browse has ended")?;
        if let Some(agent) = browser.get(&id) {
            return Ok(agent.addrs);
        }
        let wait = async {
            loop {
                match events.recv().await {
                    Ok(Discovered::Appeared(agent)) if agent.id == id => return agent.addrs,
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        if let Some(agent) = browser.get(&id) {
                            return agent.addrs;
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => return Vec::new(),
                }
            }
        };
        Ok(tokio::time::timeout(self.shared.config.browse_timeout, wait).await.unwrap_or_default())
    }
}

impl Lookup for MdnsLookup {
    fn name(&self) -> String {
        "mdns".into()
    }

    fn lookup<'a>(&'a self, _agent: &'a Agent, id: AgentId) -> LookupFuture<'a> {
        Box::pin(async move { self.find(id).await.map_err(Into::into) })
    }
}

/// The agent's announcement: withdrawn (goodbye) when dropped, with the
/// agent or at its shutdown.
struct Announcement {
    shared: Arc<Shared>,
    fullname: String,
}

impl Drop for Announcement {
    fn drop(&mut self) {
        if let Some(daemon) = lock(&self.shared.daemon).as_ref()
            && let Err(e) = daemon.unregister(&self.fullname)
        {
            tracing::warn!(error = %e, "could not withdraw the mDNS announcement");
        }
    }
}

/// The TXT properties of `agent`'s announcement.
fn properties(agent: &Agent) -> Vec<(&'static str, String)> {
    let card = agent.card();
    let mut tags = String::new();
    let mut count = 0;
    for role in &card.roles {
        if role.is_empty() || role.contains(',') || role.len() > MAX_TAG_LEN || count == MAX_TAGS {
            continue;
        }
        let extra = role.len() + usize::from(!tags.is_empty());
        if tags.len() + extra > MAX_TAGS_VALUE_LEN {
            break;
        }
        if !tags.is_empty() {
            tags.push(',');
        }
        tags.push_str(role);
        count += 1;
    }
    vec![
        ("v", TXT_VERSION.to_owned()),
        ("id", agent.id().to_string()),
        ("name", bounded(&card.name, MAX_NAME_LEN).to_owned()),
        ("tags", tags),
        ("intents", intents_digest(agent.handled_intents().into_iter().map(|(id, _)| id))),
    ]
}

fn mdns_error(what: &str, e: mdns_sd::Error) -> Error {
    Error::Bind { reason: format!("mDNS: {what}: {e}"), source: Some(Box::new(e)) }
}

/// Starts announcing `agent` (the bind hook of [`AgentBuilder::mdns`]).
fn announce(agent: &Agent, shared: Arc<Shared>) -> Result<()> {
    let instance = agent.id().to_string();
    let local = agent.local_addr()?;
    let advertised: Vec<IpAddr> = agent
        .advertised_addrs()
        .iter()
        .map(SocketAddr::ip)
        .filter(|ip| !ip.is_loopback() && !ip.is_unspecified())
        .collect();
    // The advertised addresses; else the one the agent is bound to (it
    // listens on no other); else, bound to an unspecified address, the
    // host's (IPv4 ones only for 0.0.0.0), kept up to date by the daemon.
    let (ips, auto) = match (advertised.is_empty(), local.ip().is_unspecified()) {
        (false, _) => (advertised, false),
        (true, false) => (vec![local.ip()], false),
        (true, true) => (Vec::new(), true),
    };
    let properties = properties(agent);
    let host = format!("{instance}.local.");
    let mut info = ServiceInfo::new(SERVICE_TYPE, &instance, &host, &ips[..], local.port(), &properties[..])
        .map_err(|e| mdns_error("the announcement", e))?;
    // The instance name is the AgentId: unique by construction, so no
    // probing for a conflict (which would only delay the announcement).
    info.set_requires_probe(false);
    let names = shared.config.interfaces.clone();
    if auto {
        info = info.enable_addr_auto();
        let v4_only = local.is_ipv4();
        info.set_interfaces(vec![IfKind::Predicate(IfPredicate::new(move |intf| {
            (names.is_empty() || names.contains(&intf.name)) && (!v4_only || intf.ip().is_ipv4())
        }))]);
    } else if !names.is_empty() {
        info.set_interfaces(names.iter().map(IfKind::from).collect());
    }
    let fullname = info.get_fullname().to_owned();
    shared.daemon().and_then(|daemon| daemon.register(info)).map_err(|e| mdns_error("announcing", e))?;
    tracing::debug!(%fullname, port = local.port(), ?ips, "announcing on mDNS");
    // Browse from now on, so that lookups find the agents announced since
    // at once (one announced before answers within a second or so).
    if let Err(e) = shared.browser() {
        tracing::warn!(error = %e, "mDNS: could not start browsing");
    }
    agent.attach(Box::new(Announcement { shared, fullname }));
    Ok(())
}

impl AgentBuilder {
    /// Announces the agent on the local network by mDNS once bound (see
    /// [`mdns`](crate::mdns)), withdraws the announcement when it shuts down
    /// or is dropped, and adds an [`MdnsLookup`] sharing its daemon to the
    /// chain [`Agent::connect_id`] asks: after memory and the lookups added
    /// before this call, before those added after. Binding fails if the
    /// daemon cannot start.
    pub fn mdns(mut self, mdns: Mdns) -> Self {
        let shared = Arc::new(Shared::new(mdns));
        let announcer = shared.clone();
        self.discovery.on_bind.push(Box::new(move |agent| announce(agent, announcer)));
        self.lookup(MdnsLookup { shared })
    }
}

impl Agent {
    /// Watches the agents on the local network: first one
    /// [`Discovered::Appeared`] for each agent already seen, then each
    /// change. The agent itself is not reported. Uses the daemon of
    /// [`AgentBuilder::mdns`], or starts one of its own for an agent built
    /// without. Must be called within a Tokio runtime.
    pub fn discover(&self) -> Result<Discovery> {
        let shared = self
            .with_attached(|announcement: &Announcement| announcement.shared.clone())
            .unwrap_or_else(|| Arc::new(Shared::new(Mdns::new())));
        let browser = shared.browser().map_err(|reason| Error::Bind { reason, source: None })?;
        let events = browser
            .subscribe()
            .ok_or_else(|| Error::Bind { reason: "mDNS: the browse has ended".into(), source: None })?;
        let mut discovery = Discovery {
            _shared: shared,
            browser,
            events,
            pending: VecDeque::new(),
            reported: HashMap::new(),
            own: self.id(),
        };
        discovery.resync();
        Ok(discovery)
    }
}

/// The agents on the local network coming and going: [`Agent::discover`].
pub struct Discovery {
    /// Keeps the daemon running.
    _shared: Arc<Shared>,
    browser: Arc<Browser>,
    events: broadcast::Receiver<Discovered>,
    pending: VecDeque<Discovered>,
    /// What was reported, as reported.
    reported: HashMap<AgentId, MdnsAgent>,
    own: AgentId,
}

impl fmt::Debug for Discovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Discovery").field("reported", &self.reported.len()).finish_non_exhaustive()
    }
}

impl Discovery {
    /// The next change, or `None` if the mDNS daemon stopped.
    pub async fn next(&mut self) -> Option<Discovered> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(event);
            }
            match self.events.recv().await {
                Ok(event) => self.offer(event),
                Err(broadcast::error::RecvError::Lagged(_)) => self.resync(),
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// The agents seen now (but this one), ordered by AgentId.
    pub fn agents(&self) -> Vec<MdnsAgent> {
        let mut agents: Vec<MdnsAgent> =
            self.browser.snapshot().into_values().filter(|agent| agent.id != self.own).collect();
        agents.sort_unstable_by_key(|agent| agent.id);
        agents
    }

    fn offer(&mut self, event: Discovered) {
        match event {
            Discovered::Appeared(agent) => {
                if agent.id != self.own && self.reported.get(&agent.id) != Some(&agent) {
                    self.reported.insert(agent.id, agent.clone());
                    self.pending.push_back(Discovered::Appeared(agent));
                }
            }
            Discovered::Left(id) => {
                if self.reported.remove(&id).is_some() {
                    self.pending.push_back(Discovered::Left(id));
                }
            }
        }
    }

    /// Brings what was reported up to the browser's table (at the start,
    /// and after falling behind).
    fn resync(&mut self) {
        let now = self.browser.snapshot();
        let gone: Vec<AgentId> = self.reported.keys().filter(|id| !now.contains_key(id)).copied().collect();
        for id in gone {
            self.offer(Discovered::Left(id));
        }
        let mut present: Vec<MdnsAgent> = now.into_values().collect();
        present.sort_unstable_by_key(|agent| agent.id);
        for agent in present {
            self.offer(Discovered::Appeared(agent));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_of_known_ids() {
        // docs/PROTOCOL.md, "mDNS": the test vector.
        let a = IntentId::from_bytes([0x01; 32]);
        let b = IntentId::from_bytes([0x02; 32]);
        let digest = intents_digest([b, a, b]);
        assert_eq!(digest, "rvt3y6bw2eulccf6fslfkohtpm");
        assert_eq!(digest.len(), DIGEST_PRINTED_LEN);
        assert_eq!(intents_digest([a, b]), digest);
        assert_ne!(intents_digest([a]), digest);
        assert_eq!(intents_digest([]), "v4jutopv7gq2nicajxvdnxgjje");
    }

    #[test]
    fn instance_names() {
        let id = tacit_handshake::Identity::generate().unwrap().agent_id();
        assert_eq!(instance_id(&format!("{id}._tacit._udp.local.")).unwrap(), id);
        assert_eq!(instance_id(&format!("{}._TACIT._udp.local.", id.to_string().to_uppercase())).unwrap(), id);
        for bad in [
            "printer._tacit._udp.local.".to_owned(),
            format!("{id}._http._tcp.local."),
            format!("{id}x._tacit._udp.local."),
            format!("é{id}._tacit._udp.local."),
            "._tacit._udp.local.".to_owned(),
            String::new(),
        ] {
            assert!(instance_id(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bounded_cuts_on_characters() {
        assert_eq!(bounded("héllo", 2), "h");
        assert_eq!(bounded("abc", 10), "abc");
    }
}
