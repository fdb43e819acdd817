//! `marketplace`: one buyer and several seller agents trading through FIPA
//! contract-net rounds over QUIC.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use tacit::credential::{OrgKey, SignedCredential};
use tacit::{Agent, AgentCard, AgentId, Identity, MetricsSnapshot, Peer, Receipt};
use tacit_directory::{Directory, Limits};
use tacit_examples::buyer::{self, BuyerConfig, BuyerReport};
use tacit_examples::market::v1::RequestQuote;
use tacit_examples::net::{self, Failure, PeerSpec};
use tacit_examples::registry;
use tacit_examples::report::{self, Counters, Figures, SellerRow};
use tacit_examples::seller::{Profile, Seller};
use tacit_examples::stats::{cents, count, duration};
use tacit_examples::trust::{self, Market};

/// A marketplace of Tacit agents: one buyer and several sellers, each a real
/// agent with its own Ed25519 identity and QUIC endpoint, trading in FIPA
/// contract-net rounds with typed intents (market.v1).
///
/// Each round the buyer calls for quotes on a purchase (RequestQuote, act
/// CFP) with a deadline; each seller quotes from its own stock and price
/// strategy (Quote, act PROPOSE) or refuses (out of stock, over the buyer's
/// maximum, item not carried); the buyer accepts the cheapest quote, then
/// the fastest delivery (AcceptQuote → OrderConfirmed) and rejects the
/// others. Then it prints a summary: orders per seller, intents exchanged
/// (checked against every agent's counters), wall time, latencies, and what
/// the same exchange would cost at one model inference per message.
///
/// Trust: a market organisation credentials the buyer; sellers serve only
/// buyers it credentialed (an uncredentialed agent is refused at the
/// handshake with POLICY_DENIED), accept only signed awards, and confirm
/// with a signed OrderConfirmed, so every order ends with a pair of
/// receipts (the buyer's award, kept by the seller; the seller's
/// confirmation, kept by the buyer), checked at the end.
///
/// Without a subcommand everything runs in this process on 127.0.0.1 and
/// ends by itself. To run agents in separate terminals (`tacit org keygen`
/// makes the market key, `tacit org issue` the buyer's credential):
///
///   marketplace seller --addr 127.0.0.1:5001 --profile 0 --market ORG_KEY
///   marketplace seller --addr 127.0.0.1:5002 --profile 1 --market ORG_KEY
///   marketplace buyer --key buyer.key --credential buyer.cred \
///       --seller 127.0.0.1:5001@ID1 --seller 127.0.0.1:5002@ID2
#[derive(Debug, Parser)]
#[command(name = "marketplace", version, args_conflicts_with_subcommands = true, verbatim_doc_comment)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    demo: DemoArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs one seller agent: prints `listening on ADDR as AGENT_ID`, then
    /// serves buyers until Ctrl-C (or SIGTERM) and prints its account.
    Seller(SellerArgs),
    /// Runs the buyer against sellers started with `marketplace seller`.
    Buyer(BuyerArgs),
}

/// The in-process demo.
#[derive(Debug, Args)]
struct DemoArgs {
    /// How many sellers (five distinct strategies, repeated beyond five).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=64))]
    sellers: u16,
    /// Writes each order's pair of receipts to DIR (order-N.award.receipt,
    /// order-N.confirmation.receipt), to check with `tacit verify`.
    #[arg(long, value_name = "DIR")]
    receipts: Option<PathBuf>,
    /// Also runs a directory agent: the sellers register with it, and the
    /// buyer finds them there (who handles market.v1.RequestQuote) and dials
    /// each by AgentId, with no address given.
    #[arg(long)]
    directory: bool,
    #[command(flatten)]
    trade: TradeArgs,
}

/// How the buyer trades.
#[derive(Debug, Args)]
struct TradeArgs {
    /// Contract-net rounds, one after another.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    rounds: u32,
    /// How long each call for proposals waits for the sellers' answers.
    #[arg(long, value_name = "MS", default_value_t = 500)]
    deadline_ms: u64,
    /// Seeds what the buyer asks for (the same seed, the same purchases).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Prints the first N rounds one line each.
    #[arg(long, value_name = "N", default_value_t = 5)]
    show_rounds: u32,
    /// The time of one model inference (an LLM call) to compare with.
    #[arg(long, value_name = "MS", default_value_t = 500)]
    inference_ms: u64,
}

impl TradeArgs {
    fn config(&self) -> BuyerConfig {
        BuyerConfig {
            rounds: self.rounds,
            deadline: Duration::from_millis(self.deadline_ms),
            seed: self.seed,
            show_rounds: self.show_rounds,
        }
    }
}

#[derive(Debug, Args)]
struct SellerArgs {
    /// The UDP address to listen on (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    addr: SocketAddr,
    /// A key file holding the seller's identity, created if missing; without
    /// it the seller has a new AgentId each run.
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
    /// Which built-in strategy: 0 acme (cheapest, slow), 1 bolt (premium,
    /// next-day), 2 crate (bulk discount), 3 dyna (undercuts after a loss),
    /// 4 ember (two items, deep stock); 5 and up repeat them.
    #[arg(long, default_value_t = 0)]
    profile: u16,
    /// Serve only buyers credentialed by this market organisation (its key,
    /// as `tacit org keygen` printed it); without it the seller serves anyone.
    #[arg(long, value_name = "ORG_KEY")]
    market: Option<OrgKey>,
    /// Registers with this directory agent (`tacit directory serve`), as
    /// ID@HOST:PORT, so buyers can find the seller there.
    #[arg(long, value_name = "ID@HOST:PORT", value_parser = parse_directory)]
    directory: Option<(AgentId, SocketAddr)>,
}

#[derive(Debug, Args)]
struct BuyerArgs {
    /// A seller to trade with, as ADDR or ADDR@AGENT_ID (what `marketplace
    /// seller` printed); repeat for each seller.
    #[arg(long = "seller", value_name = "ADDR[@ID]", required_unless_present = "directory")]
    sellers: Vec<PeerSpec>,
    /// Finds the sellers through this directory agent instead (ID@HOST:PORT):
    /// every agent registered there that handles market.v1.RequestQuote.
    #[arg(long, value_name = "ID@HOST:PORT", value_parser = parse_directory)]
    directory: Option<(AgentId, SocketAddr)>,
    /// A key file holding the buyer's identity, created if missing.
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
    /// The market's credential for this buyer (`tacit org issue` output),
    /// presented to every seller.
    #[arg(long, value_name = "FILE")]
    credential: Option<PathBuf>,
    /// How long to wait for each seller to answer the connection.
    #[arg(long, value_name = "MS", default_value_t = 5_000)]
    connect_timeout_ms: u64,
    #[command(flatten)]
    trade: TradeArgs,
}

/// How long to wait for a connection in the in-process demo.
const LOCAL_TIMEOUT: Duration = Duration::from_secs(10);

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        None => demo(cli.demo).await,
        Some(Command::Seller(args)) => seller(args).await,
        Some(Command::Buyer(args)) => buyer(args).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("marketplace: {failure}");
            ExitCode::FAILURE
        }
    }
}

fn loopback() -> SocketAddr {
    ([127, 0, 0, 1], 0).into()
}

fn local_addr(agent: &Agent) -> Result<SocketAddr, Failure> {
    agent.local_addr().map_err(|e| Failure(format!("cannot read the bound address: {e}")))
}

/// The whole marketplace in this process.
async fn demo(args: DemoArgs) -> Result<(), Failure> {
    let setup = Instant::now();
    let market = Market::generate().map_err(|e| Failure(format!("cannot make the market's key: {e}")))?;
    let sellers: Vec<Seller> = (0..usize::from(args.sellers)).map(|i| Seller::new(Profile::builtin(i))).collect();
    let directory = match args.directory {
        true => {
            let directory = Directory::in_memory(Limits::default());
            let builder = directory.serve(Agent::builder().card(AgentCard::new("directory").with_role("directory")));
            Some((directory, net::bind(builder, loopback()).await?))
        }
        false => None,
    };
    let mut seller_agents = Vec::with_capacity(sellers.len());
    for seller in &sellers {
        let mut builder = net::with_timeout(seller.agent(Some(&market.key())), LOCAL_TIMEOUT);
        if let Some((_, agent)) = &directory {
            builder = registry::registered(builder, local_addr(agent)?, agent.id());
        }
        seller_agents.push(net::bind(builder, loopback()).await?);
    }
    let identity = Identity::generate().map_err(|e| Failure(format!("cannot make the buyer's key: {e}")))?;
    let credential = market.credential(identity.agent_id());
    let buyer_builder = buyer::agent().identity(identity).credential(credential);
    let buyer = net::bind(net::with_timeout(buyer_builder, LOCAL_TIMEOUT), loopback()).await?;
    let peers = match &directory {
        Some((_, directory)) => {
            for agent in &seller_agents {
                tokio::time::timeout(LOCAL_TIMEOUT, agent.registered())
                    .await
                    .map_err(|_| Failure("a seller did not register with the directory in time".into()))?;
            }
            let found = Instant::now();
            let peers = sellers_from_directory(&buyer, directory.id(), local_addr(directory)?).await?;
            if peers.len() != seller_agents.len() {
                return Err(Failure(format!("the directory gave {} sellers of {}", peers.len(), seller_agents.len())));
            }
            println!(
                "the buyer found {} sellers through the directory {:.10}… (by intent market.v1.RequestQuote) and dialed each by AgentId in {}",
                peers.len(),
                directory.id(),
                duration(found.elapsed())
            );
            peers
        }
        None => {
            let mut peers = Vec::with_capacity(seller_agents.len());
            for agent in &seller_agents {
                let spec = PeerSpec { addr: local_addr(agent)?, id: Some(agent.id()) };
                peers.push(net::connect::<RequestQuote>(&buyer, spec, "a seller").await?);
            }
            peers
        }
    };
    let setup = setup.elapsed();
    // The counters checked below are the market's: from here on.
    let baseline = buyer.metrics();

    let config = args.trade.config();
    println!(
        "Tacit marketplace: 1 buyer, {} sellers, {} contract-net rounds over QUIC (127.0.0.1)",
        sellers.len(),
        count(u64::from(config.rounds))
    );
    println!(
        "{} agents, each with its own Ed25519 identity and QUIC endpoint, up and connected in {}",
        sellers.len() + 1,
        duration(setup)
    );
    let mut rows = vec![vec!["  buyer".to_owned(), format!("{:.10}…", buyer.id()), local_addr(&buyer)?.to_string()]];
    for (seller, agent) in sellers.iter().zip(&seller_agents) {
        let state = seller.state();
        let profile = state.profile();
        rows.push(vec![
            format!("  {}", profile.name),
            format!("{:.10}…", agent.id()),
            local_addr(agent)?.to_string(),
            profile.strategy.to_owned(),
        ]);
    }
    print!("{}", report::table(&rows, 4));
    println!(
        "  market organisation {:.10}… credentials the buyer (role buyer); sellers serve only its members",
        market.key()
    );
    println!();
    let intruder = intruder(&seller_agents).await?;
    println!("{intruder}");
    println!();

    let report = buyer::trade(&peers, &config).await;
    // Rejections are tells: give the last ones a moment to be handled.
    settle(&buyer, &seller_agents).await;
    print_rounds(&report);
    let counters = Counters::All {
        buyer: report::since(buyer.metrics(), &baseline),
        sellers: seller_agents.iter().map(Agent::metrics).collect(),
    };
    let seller_rows = sellers.iter().map(|seller| SellerRow::of(&seller.state())).collect();
    let awards: Vec<Receipt> = sellers.iter().flat_map(|seller| seller.state().awards().to_vec()).collect();
    let pairs = trust::check_pairs(buyer.id(), &awards, &report.confirmations);
    let receipts = format!(
        "{} orders: {} of {} receipt pairs verify, {} unmatched\n{:20}(the award signed by the buyer, kept by the \
         seller; the confirmation signed by the seller, kept by the buyer)",
        count(report.orders),
        count(pairs.verified),
        count(pairs.pairs),
        count(pairs.unmatched),
        ""
    );
    let figures = Figures {
        report: &report,
        sellers: Some(seller_rows),
        counters,
        inference: Duration::from_millis(args.trade.inference_ms),
        receipts: Some(receipts),
    };
    print!("{}", report::render(&figures));
    if let Some(dir) = &args.receipts {
        let written = write_receipts(dir, &awards, &report.confirmations)?;
        println!("{written} receipts written to {} (check one with `tacit verify FILE`)", dir.display());
    }

    drop(peers);
    buyer.shutdown(Duration::from_millis(100)).await;
    for agent in &seller_agents {
        agent.shutdown(Duration::from_millis(100)).await;
    }
    healthy(&report)
}

/// An agent without a market credential dials every seller: each refuses
/// its handshake. Returns the line that says so; an error if one let it in.
async fn intruder(sellers: &[Agent]) -> Result<String, Failure> {
    let intruder = net::bind(net::with_timeout(buyer::agent(), LOCAL_TIMEOUT), loopback()).await?;
    let mut codes = std::collections::BTreeSet::new();
    for seller in sellers {
        let peer = intruder
            .connect(local_addr(seller)?, seller.id())
            .await
            .map_err(|e| Failure(format!("the intruder could not dial a seller: {e}")))?;
        match peer.ready().await {
            Ok(_) => return Err(Failure("a seller welcomed an agent without a market credential".into())),
            Err(error) => codes.insert(error.code()),
        };
    }
    intruder.shutdown(Duration::from_millis(100)).await;
    let codes: Vec<String> = codes.iter().map(|code| format!("{} ({:#x})", code_name(*code), *code as i32)).collect();
    Ok(format!(
        "intruder {:.10}… (no market credential): refused at the handshake by {} of {} sellers with {}",
        intruder.id(),
        sellers.len(),
        sellers.len(),
        codes.join(", ")
    ))
}

/// A code's name as the spec writes it (`POLICY_DENIED`).
fn code_name(code: tacit::ErrorCode) -> &'static str {
    code.as_str_name().trim_start_matches("ERROR_CODE_")
}

/// Writes the receipt pairs of the orders to `dir`, numbered by order;
/// returns how many files were written.
fn write_receipts(dir: &std::path::Path, awards: &[Receipt], confirmations: &[Receipt]) -> Result<usize, Failure> {
    std::fs::create_dir_all(dir).map_err(|e| Failure(format!("cannot create {}: {e}", dir.display())))?;
    let mut written = 0;
    for (n, confirmation) in confirmations.iter().enumerate() {
        let award = awards.iter().find(|award| award.conversation_id == confirmation.conversation_id);
        for (kind, receipt) in [("award", award), ("confirmation", Some(confirmation))] {
            let Some(receipt) = receipt else { continue };
            let path = dir.join(format!("order-{}.{kind}.receipt", n + 1));
            std::fs::write(&path, receipt.encode_to_vec())
                .map_err(|e| Failure(format!("cannot write {}: {e}", path.display())))?;
            written += 1;
        }
    }
    Ok(written)
}

/// Waits (at most 5 s) until the sellers have handled every rejection the
/// buyer told them.
async fn settle(buyer: &Agent, sellers: &[Agent]) {
    let told = buyer.metrics().tells_sent;
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let heard: u64 = sellers.iter().map(|agent| agent.metrics().tells_received).sum();
        if heard >= told {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn print_rounds(report: &BuyerReport) {
    if report.shown.is_empty() {
        return;
    }
    for line in &report.shown {
        println!("  {line}");
    }
    let more = u64::from(report.rounds) - report.shown.len() as u64;
    if more > 0 {
        println!("  ... and {} more rounds", count(more));
    }
    println!();
}

/// Fails when no seller answered anything: the run showed nothing.
fn healthy(report: &BuyerReport) -> Result<(), Failure> {
    let answered = report.messages.proposals + report.messages.refusals;
    if report.messages.cfps > 0 && answered == 0 {
        let error = report.first_error.as_deref().unwrap_or("no answers");
        return Err(Failure(format!("no seller answered any call for proposals ({error})")));
    }
    Ok(())
}

/// One seller, until interrupted.
async fn seller(args: SellerArgs) -> Result<(), Failure> {
    let seller = Seller::new(Profile::builtin(usize::from(args.profile)));
    let mut builder = net::with_key(seller.agent(args.market.as_ref()), args.key.as_deref())?;
    if let Some((id, addr)) = args.directory {
        builder = registry::registered(builder, addr, id);
    }
    let agent = net::bind(builder, args.addr).await?;
    let addr = local_addr(&agent)?;
    let (name, strategy) = {
        let state = seller.state();
        (state.profile().name.clone(), state.profile().strategy)
    };
    println!("listening on {addr} as {}", agent.id());
    println!("seller {name} ({strategy}) takes market.v1.RequestQuote and AcceptQuote until Ctrl-C");
    if let Some(market) = &args.market {
        println!("serving only buyers credentialed by market {market}; acceptances must be signed");
    }
    tacit::shutdown_signal().await;
    agent.shutdown(Duration::from_millis(500)).await;
    let state = seller.state();
    let stats = state.stats();
    println!(
        "seller {name}: {} calls, {} quotes, {} refused, {} orders, {} units sold for {}, {} units left, {} signed awards kept",
        count(stats.calls),
        count(stats.quotes),
        count(stats.refused()),
        count(stats.orders),
        count(stats.units_sold),
        cents(stats.revenue_cents),
        count(state.stock_left()),
        count(state.awards().len() as u64)
    );
    Ok(())
}

/// Parses `ID@HOST:PORT`.
fn parse_directory(text: &str) -> Result<(AgentId, SocketAddr), String> {
    let (id, addr) = text.split_once('@').ok_or_else(|| format!("{text:?} is not ID@HOST:PORT"))?;
    let id = id.parse::<AgentId>().map_err(|e| format!("{id:?}: {e}"))?;
    let addr = addr.parse::<SocketAddr>().map_err(|e| format!("{addr:?}: {e}"))?;
    Ok((id, addr))
}

/// The sellers the directory knows, connected by AgentId; unreachable ones
/// are reported and left out.
async fn sellers_from_directory(buyer: &Agent, id: AgentId, addr: SocketAddr) -> Result<Vec<Peer>, Failure> {
    let (peers, failures) = registry::find_sellers(buyer, addr, id, 64)
        .await
        .map_err(|e| Failure(format!("cannot ask the directory {addr}: {e}")))?;
    for (seller, error) in failures {
        eprintln!("left out seller {seller}: {error}");
    }
    Ok(peers)
}

/// The buyer, against sellers elsewhere.
async fn buyer(args: BuyerArgs) -> Result<(), Failure> {
    let timeout = Duration::from_millis(args.connect_timeout_ms);
    let all_loopback = args.sellers.iter().all(|spec| spec.addr.ip().is_loopback());
    let local = if all_loopback { loopback() } else { ([0, 0, 0, 0], 0).into() };
    let mut builder = net::with_key(net::with_timeout(buyer::agent(), timeout), args.key.as_deref())?;
    if let Some(path) = &args.credential {
        let bytes =
            std::fs::read(path).map_err(|e| Failure(format!("cannot read the credential {}: {e}", path.display())))?;
        let credential = SignedCredential::decode(&bytes)
            .map_err(|e| Failure(format!("{} is not a credential: {e}", path.display())))?;
        builder = builder.credential(credential);
    }
    let agent = net::bind(builder, local).await?;
    let setup = Instant::now();
    let mut peers: Vec<Peer> = Vec::with_capacity(args.sellers.len());
    for spec in &args.sellers {
        let peer = net::connect::<RequestQuote>(&agent, *spec, "a marketplace seller").await?;
        peers.push(peer);
    }
    if let Some((id, addr)) = args.directory {
        peers.extend(sellers_from_directory(&agent, id, addr).await?);
    }
    if peers.is_empty() {
        return Err(Failure("no seller to trade with".into()));
    }
    let baseline = agent.metrics();
    let config = args.trade.config();
    println!(
        "Tacit marketplace buyer {:.10}…: {} sellers, {} contract-net rounds over QUIC",
        agent.id(),
        peers.len(),
        count(u64::from(config.rounds))
    );
    let mut rows = Vec::new();
    for peer in &peers {
        let name = peer.card().map(|card| card.name).unwrap_or_default();
        rows.push(vec![format!("  {name}"), format!("{:.10}…", peer.id()), peer.addr().to_string()]);
    }
    print!("{}", report::table(&rows, 3));
    println!("connected in {}", duration(setup.elapsed()));
    println!();

    let report = buyer::trade(&peers, &config).await;
    print_rounds(&report);
    let buyer_metrics: MetricsSnapshot = report::since(agent.metrics(), &baseline);
    let receipts = format!(
        "{} orders, {} signed confirmations kept (each verified on arrival against its seller's AgentId)",
        count(report.orders),
        count(report.confirmations.len() as u64)
    );
    let figures = Figures {
        report: &report,
        sellers: None,
        counters: Counters::Buyer(buyer_metrics),
        inference: Duration::from_millis(args.trade.inference_ms),
        receipts: Some(receipts),
    };
    print!("{}", report::render(&figures));
    drop(peers);
    agent.shutdown(Duration::from_millis(100)).await;
    healthy(&report)
}
