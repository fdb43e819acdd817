//! Dialing an agent: address, identity, bounded waits, and the standard
//! `DescribeAgent`.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use tacit::intents::{AgentDescription, DescribeAgent};
use tacit::{Agent, AgentBuilder, AgentCard, AgentId, AskOptions, Identity, Peer, ReconnectPolicy};

use crate::error::{self, CliError, Exit};

/// Where and whom to dial.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ConnectArgs {
    /// The agent: its address, HOST:PORT (UDP), e.g. 127.0.0.1:4433, or its AgentId (52 base32
    /// characters), found through the lookups given (--directory; memory of this run first).
    #[arg(value_name = "ADDR|ID")]
    pub(crate) addr: String,
    /// Find agents given by AgentId on the local network by mDNS (`_tacit._udp.local`), asked
    /// after this run's memory.
    #[arg(long)]
    pub(crate) mdns: bool,
    /// Find agents given by AgentId through signed TXT records under this domain
    /// (`_tacit.<ID>.<DOMAIN>`, see `tacit dns record`; repeatable), asked after mDNS.
    #[arg(long, value_name = "DOMAIN")]
    pub(crate) dns: Vec<String>,
    /// The DNS servers --dns asks (HOST:PORT, repeatable; default: the system's resolver configuration).
    #[arg(long, value_name = "HOST:PORT", requires = "dns")]
    pub(crate) dns_server: Vec<String>,
    /// Find agents given by AgentId through this directory agent, as ID@HOST:PORT (repeatable; asked
    /// in order after the other lookups).
    #[arg(long, value_name = "ID@HOST:PORT", value_parser = parse_directory)]
    pub(crate) directory: Vec<(AgentId, String)>,
    /// Insist that the agent holds this AgentId (52 base32 characters); fail with exit 4 otherwise.
    #[arg(long, value_name = "AGENT_ID")]
    pub(crate) expect: Option<AgentId>,
    /// Dial with the identity in this key file (default: a fresh identity each run).
    #[arg(long, value_name = "FILE")]
    pub(crate) key: Option<PathBuf>,
    /// Seconds to wait for the agent to answer the connection and the capability handshake.
    #[arg(long, value_name = "SECS", default_value = "3", value_parser = parse_secs)]
    pub(crate) connect_timeout: Duration,
}

/// Parses a positive number of seconds (fractions allowed).
pub(crate) fn parse_secs(text: &str) -> Result<Duration, String> {
    let secs: f64 = text.parse().map_err(|_| format!("{text:?} is not a number of seconds"))?;
    match Duration::try_from_secs_f64(secs) {
        Ok(duration) if !duration.is_zero() => Ok(duration),
        _ => Err(format!("{text} is not a positive number of seconds")),
    }
}

/// Parses `ID@HOST:PORT`.
pub(crate) fn parse_directory(text: &str) -> Result<(AgentId, String), String> {
    let (id, addr) = text.split_once('@').ok_or_else(|| format!("{text:?} is not ID@HOST:PORT"))?;
    let id = id.parse::<AgentId>().map_err(|e| format!("{id:?}: {e}"))?;
    Ok((id, addr.to_owned()))
}

/// Adds the lookups of `args` to `builder`.
pub(crate) fn with_lookups(args: &ConnectArgs, mut builder: AgentBuilder) -> Result<AgentBuilder, CliError> {
    // Nearest and cheapest first: memory (built in), mDNS, DNS, directories.
    if args.mdns {
        builder = builder.lookup(tacit::mdns::MdnsLookup::new());
    }
    let servers = args.dns_server.iter().map(|s| resolve(s)).collect::<Result<Vec<_>, _>>()?;
    for origin in &args.dns {
        let lookup = if servers.is_empty() {
            tacit::dns::DnsLookup::new(origin)
        } else {
            tacit::dns::DnsLookup::with_nameservers(origin, &servers)
        }
        .map_err(|e| CliError::failure(format!("--dns {origin}: {e}")))?;
        builder = builder.lookup(lookup.timeout(args.connect_timeout));
    }
    for (id, addr) in &args.directory {
        builder = builder.directory(resolve(addr)?, *id);
    }
    Ok(builder)
}

/// Resolves `HOST:PORT` to one socket address.
pub(crate) fn resolve(addr: &str) -> Result<SocketAddr, CliError> {
    if let Ok(parsed) = addr.parse() {
        return Ok(parsed);
    }
    let mut found = addr.to_socket_addrs().map_err(|e| {
        CliError::new(Exit::Unreachable, format!("cannot resolve {addr:?}: {e}"))
            .hint("give the address as HOST:PORT, e.g. 127.0.0.1:4433")
    })?;
    found.next().ok_or_else(|| CliError::new(Exit::Unreachable, format!("{addr} resolves to no address")))
}

/// The wildcard address of `target`'s family, any port: where a dialing agent binds.
pub(crate) fn local_for(target: SocketAddr) -> SocketAddr {
    match target.ip() {
        IpAddr::V4(ip) if ip.is_loopback() => SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
        IpAddr::V4(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        IpAddr::V6(ip) if ip.is_loopback() => SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 0),
        IpAddr::V6(_) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
    }
}

/// An agent of this tool connected to the target, with the capability
/// handshake done.
#[derive(Debug)]
pub(crate) struct Connection {
    pub(crate) agent: Agent,
    pub(crate) peer: Peer,
}

impl Connection {
    /// Closes the session politely, so that what was sent is not cut off:
    /// with `CLOSED`, the code of an application that is done with a session
    /// (`[session.close-normal]`), then shuts this tool's agent down.
    pub(crate) async fn close(self) {
        self.peer.close();
        drop(self.peer);
        self.agent.shutdown(Duration::from_millis(200)).await;
    }
}

/// Binds an agent from `builder` (with this tool's card and no automatic
/// reconnection) and dials `args.addr`, insisting on `expect`, within
/// `args.connect_timeout`.
pub(crate) async fn dial(
    args: &ConnectArgs,
    builder: AgentBuilder,
    expect: Option<AgentId>,
) -> Result<Connection, CliError> {
    if let Ok(id) = args.addr.parse::<AgentId>() {
        return dial_id(args, builder, id).await;
    }
    let target = resolve(&args.addr)?;
    let mut builder = builder
        .card(AgentCard::new("tacit-cli").with_software_version(env!("CARGO_PKG_VERSION")))
        .reconnect(ReconnectPolicy::never());
    if let Some(key) = &args.key {
        let identity = Identity::load(key)
            .map_err(|e| CliError::failure(e.to_string()).hint("make a key file with `tacit keygen --out FILE`"))?;
        builder = builder.identity(identity);
    }
    let agent = builder
        .bind(local_for(target))
        .await
        .map_err(|e| CliError::failure(format!("cannot open a UDP socket to dial from: {e}")))?;
    let connecting = async {
        let peer = agent.connect(target, expect).await?;
        peer.ready().await?;
        Ok::<_, tacit::Error>(peer)
    };
    match tokio::time::timeout(args.connect_timeout, connecting).await {
        Ok(Ok(peer)) => Ok(Connection { agent, peer }),
        Ok(Err(e)) => Err(CliError::from_tacit(e, &args.addr)),
        Err(_) => {
            Err(error::unreachable(&args.addr, &format!("no answer within {}", show_duration(args.connect_timeout))))
        }
    }
}

/// [`dial`] of an agent given by AgentId, through the lookups of `args`.
async fn dial_id(args: &ConnectArgs, builder: AgentBuilder, id: AgentId) -> Result<Connection, CliError> {
    if args.expect.is_some_and(|expected| expected != id) {
        return Err(CliError::failure(format!("--expect names another agent than {id}")));
    }
    let mut builder = with_lookups(args, builder)?
        .card(AgentCard::new("tacit-cli").with_software_version(env!("CARGO_PKG_VERSION")))
        .reconnect(ReconnectPolicy::never())
        .connect_timeout(args.connect_timeout);
    if let Some(key) = &args.key {
        let identity = Identity::load(key)
            .map_err(|e| CliError::failure(e.to_string()).hint("make a key file with `tacit keygen --out FILE`"))?;
        builder = builder.identity(identity);
    }
    // Dial from the family of the first directory (IPv4 without one).
    let from = match args.directory.first().map(|(_, addr)| resolve(addr)).transpose()? {
        Some(directory) => local_for(directory),
        None => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
    };
    let agent = builder
        .bind(from)
        .await
        .map_err(|e| CliError::failure(format!("cannot open a UDP socket to dial from: {e}")))?;
    // Each lookup and each dial is bounded by the connect timeout; the
    // whole by that times the lookups asked (and memory).
    let lookups = args.directory.len() + args.dns.len() + usize::from(args.mdns);
    let limit = args.connect_timeout * (2 + u32::try_from(lookups).unwrap_or(u32::MAX / 4));
    let connecting = async {
        let peer = agent.connect_id(id).await?;
        peer.ready().await?;
        Ok::<_, tacit::Error>(peer)
    };
    match tokio::time::timeout(limit, connecting).await {
        Ok(Ok(peer)) => Ok(Connection { agent, peer }),
        Ok(Err(tacit::Error::NotFound { id, tried })) => {
            Err(CliError::new(Exit::Unreachable, format!("agent {id} not found; tried {tried}"))
                .hint("give its address instead, or a lookup that knows it (--directory ID@HOST:PORT)"))
        }
        Ok(Err(e)) => Err(CliError::from_tacit(e, &args.addr)),
        Err(_) => Err(error::unreachable(&args.addr, &format!("not found within {}", show_duration(limit)))),
    }
}

/// Runs `work` against the agent at `addr`, failing with exit 8 after `limit`.
pub(crate) async fn bounded<T>(
    addr: &str,
    what: &str,
    limit: Duration,
    work: impl Future<Output = Result<T, tacit::Error>>,
) -> Result<T, CliError> {
    match tokio::time::timeout(limit, work).await {
        Ok(result) => result.map_err(|e| CliError::from_tacit(e, addr)),
        Err(_) => {
            Err(CliError::new(Exit::Timeout, format!("{what}: no answer from {addr} within {}", show_duration(limit)))
                .hint("raise --timeout, or check that the agent is not overloaded"))
        }
    }
}

/// Asks the standard `DescribeAgent`.
pub(crate) async fn describe_agent(
    connection: &Connection,
    addr: &str,
    limit: Duration,
) -> Result<AgentDescription, CliError> {
    let options = AskOptions::default().deadline(limit);
    let ask = async { connection.peer.ask_with(DescribeAgent {}, options).await.map(|reply| reply.message) };
    bounded(addr, "DescribeAgent", limit + Duration::from_millis(500), ask).await
}

/// `3 s`, `250 ms`.
pub(crate) fn show_duration(duration: Duration) -> String {
    if duration.subsec_nanos() == 0 {
        format!("{} s", duration.as_secs())
    } else if duration < Duration::from_secs(1) {
        format!("{} ms", duration.as_millis())
    } else {
        format!("{:.1} s", duration.as_secs_f64())
    }
}
