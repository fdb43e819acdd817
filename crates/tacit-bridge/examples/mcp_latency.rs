//! What the MCP bridge adds to a `tools/call` (issue 15): one Tacit agent on
//! 127.0.0.1 answers the marketplace's `RequestQuote` ask, and a
//! [`Bridge`] serves it as a tool over MCP's streamable HTTP; a plain rmcp
//! server, on the same streamable HTTP service and hyper setup, has one tool
//! that does the same work on the same JSON (JSON → `RequestQuote` through
//! [`tacit_bridge::json::from_value`] → encoded → decoded → `Quote` →
//! decoded through its schema → structured JSON). One rmcp client per
//! server, warmed up, then N sequential `tools/call`s interleaved in rounds
//! with a typed Tacit ask of the same intent from Rust: the bridge's extra is
//! the QUIC ask hop, and the ask alone shows what the hop costs without MCP.
//!
//! ```text
//! cargo run --release -p tacit-bridge --features http --example mcp_latency -- [N]
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use prost::Message as _;
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientInfo, ListToolsResult, PaginatedRequestParams, ServerCapabilities,
    ServerInfo, Tool,
};
use rmcp::service::{RequestContext, RunningService};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpClientTransport, StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData as McpError, RoleClient, RoleServer, ServerHandler, ServiceExt as _};
use serde_json::{Map, Value, json};
use tacit::{Agent, AgentCard, Context, Intent as _, Rejection, Schema};
use tacit_bridge::mcp::{Bridge, HttpOptions, PeerAddr};
use tacit_bridge::{json, schema};
use tacit_examples::market::v1::{Quote, RequestQuote};

/// The longest anything in this run may take: a wedged call ends the run.
const LIMIT: Duration = Duration::from_secs(10);

/// Calls in flight in the throughput line.
const CONCURRENCY: usize = 16;

/// The handler's work, the same on both sides: a fixed price list.
fn quote_for(request: &RequestQuote) -> Quote {
    let unit = if request.item == "gear" { 1250 } else { 990 };
    let price_cents = unit * u64::from(request.quantity);
    Quote {
        price_cents: price_cents.min(request.max_price_cents),
        delivery_days: 2 + request.quantity % 3,
        seller: "seller".into(),
        in_stock: 100u32.saturating_sub(request.quantity),
    }
}

/// The plain rmcp server: one tool, `quote`, doing what the bridge and the
/// agent do together, minus the QUIC hop.
#[derive(Debug, Clone)]
struct Direct {
    request: Schema,
    reply: Schema,
    tool: Tool,
}

impl ServerHandler for Direct {
    fn get_info(&self) -> ServerInfo {
        ServerInfo::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(vec![self.tool.clone()]))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        (name == self.tool.name).then(|| self.tool.clone())
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let arguments = Value::Object(request.arguments.unwrap_or_default());
        let message = json::from_value(self.request.message_descriptor(), &arguments)
            .map_err(|error| McpError::invalid_params(error.message, None))?;
        let payload = message.encode_to_vec();
        let asked = RequestQuote::decode(&payload[..]).map_err(|e| McpError::internal_error(e.to_string(), None))?;
        let answer = quote_for(&asked).encode_to_vec();
        let reply = self.reply.decode(&answer).map_err(|e| McpError::internal_error(e.to_string(), None))?;
        Ok(CallToolResult::structured(json::to_value(&reply)))
    }
}

/// Serves `handler` over streamable HTTP as `Bridge::serve_http` does: the
/// same rmcp service and config, hyper's HTTP/1.1, bounded bodies.
async fn serve_direct(listener: tokio::net::TcpListener, handler: Direct) {
    let service = StreamableHttpService::new(
        move || Ok(handler.clone()),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default(),
    );
    while let Ok((stream, _)) = listener.accept().await {
        let service = service.clone();
        tokio::spawn(async move {
            let handler = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let mut service = service.clone();
                let request = request.map(|body| http_body_util::Limited::new(body, tacit_bridge::mcp::MAX_LINE_LEN));
                async move { tower_service::Service::call(&mut service, request).await }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(hyper_util::rt::TokioIo::new(stream), handler);
            let _ = connection.await;
        });
    }
}

type Client = RunningService<RoleClient, ClientInfo>;

async fn client(url: String) -> Result<Client, Box<dyn std::error::Error>> {
    let connecting = ClientInfo::default().serve(StreamableHttpClientTransport::from_uri(url));
    Ok(tokio::time::timeout(LIMIT, connecting).await??)
}

/// One `tools/call`; fails on a tool error or a reply without the quote.
async fn call(client: &Client, tool: &'static str, arguments: &Map<String, Value>) -> Result<(), String> {
    let params = CallToolRequestParams::new(tool).with_arguments(arguments.clone());
    let result = match tokio::time::timeout(LIMIT, client.call_tool(params)).await {
        Err(_) => return Err(format!("{tool}: no answer in {} s", LIMIT.as_secs())),
        Ok(Err(e)) => return Err(format!("{tool}: {e}")),
        Ok(Ok(result)) => result,
    };
    match result.structured_content {
        Some(quote) if result.is_error != Some(true) && quote["priceCents"] == "6250" => Ok(()),
        _ => Err(format!("{tool}: unexpected result {result:?}")),
    }
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() - 1) as f64 * p).round() as usize]
}

/// Calls per second with [`CONCURRENCY`] `tools/call`s in flight, `total` in all.
async fn throughput(client: &Client, tool: &'static str, arguments: &Map<String, Value>, total: usize) -> f64 {
    let started = Instant::now();
    let calls = futures::stream::iter(0..total).map(|_| call(client, tool, arguments)).buffer_unordered(CONCURRENCY);
    let failed = calls.filter(|result| std::future::ready(result.is_err())).count().await;
    let elapsed = started.elapsed();
    if failed > 0 {
        eprintln!("{tool}: {failed} of {total} calls failed under load");
    }
    (total - failed) as f64 / elapsed.as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args().nth(1).map(|a| a.parse()).transpose()?.unwrap_or(2000);
    if n == 0 {
        return Err("N must be at least 1".into());
    }
    // reqwest in this workspace may be built with rustls and no provider of
    // its own (the `a2a` feature); plain HTTP on loopback needs none, but a
    // client builder that looks for one finds ring.
    let _ = rustls::crypto::ring::default_provider().install_default();

    // The Tacit agent, and the bridge in front of it.
    let seller = Agent::builder()
        .card(AgentCard::new("seller"))
        .on_ask(|_: Context, request: RequestQuote| async move { Ok::<_, Rejection>(quote_for(&request)) })
        .bind("127.0.0.1:0".parse()?)
        .await?;
    let peer: PeerAddr = format!("{}={}", seller.local_addr()?, seller.id()).parse()?;
    let bridge = Bridge::builder().peer(peer).start().await?;
    let bridged_tool = "seller_RequestQuote";
    if !bridge.tools().iter().any(|tool| tool.name == bridged_tool) {
        return Err(format!("the bridge offers no {bridged_tool}: {:?}", bridge.tools()).into());
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let bridge_url = format!("http://{}/mcp", listener.local_addr()?);
    // The rate limiter runs but never trips (the default, 100/s a client, would).
    tokio::spawn(bridge.serve_http(listener, HttpOptions::default().rate(Some((1_000_000, 1_000_000)))));

    // The plain rmcp server.
    let request = Schema::of::<RequestQuote>()?;
    let reply = Schema::of::<Quote>()?;
    let definition = schema::tool_definition(
        "quote",
        request.message_descriptor(),
        Some(reply.message_descriptor()),
        schema::Style::Compact,
    );
    let tool: Tool = serde_json::from_value(definition)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let direct_url = format!("http://{}/mcp", listener.local_addr()?);
    tokio::spawn(serve_direct(listener, Direct { request: request.clone(), reply, tool }));

    // The clients: MCP to each server, and Tacit straight to the agent.
    let direct = client(direct_url).await?;
    let bridged = client(bridge_url).await?;
    let asker = Agent::builder().emits::<RequestQuote>().bind("127.0.0.1:0".parse()?).await?;
    let tacit = asker.connect(seller.local_addr()?, seller.id()).await?;

    let arguments = json!({"item": "gear", "quantity": 5, "maxPriceCents": "100000"});
    let arguments = arguments.as_object().cloned().ok_or("the arguments are an object")?;
    let typed = RequestQuote { item: "gear".into(), quantity: 5, max_price_cents: 100_000 };

    let warmup = n / 10;
    let (mut a, mut b, mut c) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..n + warmup {
        let started = Instant::now();
        call(&direct, "quote", &arguments).await?;
        let direct_took = started.elapsed();
        let started = Instant::now();
        call(&bridged, bridged_tool, &arguments).await?;
        let bridged_took = started.elapsed();
        let started = Instant::now();
        let quote = tokio::time::timeout(LIMIT, tacit.ask(typed.clone())).await??;
        let tacit_took = started.elapsed();
        if quote.price_cents != 6250 {
            return Err(format!("unexpected quote {quote:?}").into());
        }
        if i >= warmup {
            a.push(direct_took);
            b.push(bridged_took);
            c.push(tacit_took);
        }
    }

    let rows = [
        ("MCP tools/call, rmcp server direct", &mut a),
        ("MCP tools/call, via the bridge", &mut b),
        ("Tacit ask from Rust (no MCP)", &mut c),
    ];
    let mut p50s = Vec::new();
    let mut p99s = Vec::new();
    println!("{:<36} {:>6} {:>8} {:>8}", "path (RequestQuote → Quote)", "n", "p50 µs", "p99 µs");
    for (name, samples) in rows {
        let (p50, p99) = (percentile(samples, 0.5), percentile(samples, 0.99));
        println!("{name:<36} {n:>6} {:>8} {:>8}", p50.as_micros(), p99.as_micros());
        p50s.push(p50.as_secs_f64() * 1e6);
        p99s.push(p99.as_secs_f64() * 1e6);
    }
    println!(
        "added by the bridge (bridge − direct): p50 {:+.0} µs ({:.2}×), p99 {:+.0} µs ({:.2}×)",
        p50s[1] - p50s[0],
        p50s[1] / p50s[0],
        p99s[1] - p99s[0],
        p99s[1] / p99s[0],
    );

    // What the bridge does per call that the direct server does not, besides
    // the ask: it finds the reply's schema in the request's descriptor set.
    let lookups = 200;
    let started = Instant::now();
    for _ in 0..lookups {
        if request.related(Quote::ID).is_none() {
            return Err("Quote is not in RequestQuote's descriptor set".into());
        }
    }
    let messages = request.message_descriptor().parent_pool().all_messages().count();
    println!(
        "the bridge's reply-schema lookup (Schema::related, {messages} messages in the set): {:.0} µs a call",
        started.elapsed().as_secs_f64() * 1e6 / f64::from(lookups)
    );

    let total = n.max(CONCURRENCY);
    let direct_rate = throughput(&direct, "quote", &arguments, total).await;
    let bridged_rate = throughput(&bridged, bridged_tool, &arguments, total).await;
    println!(
        "throughput, {CONCURRENCY} calls in flight, {total} calls: direct {direct_rate:.0}/s, bridge {bridged_rate:.0}/s ({:.2}×)",
        bridged_rate / direct_rate
    );

    let _ = tokio::time::timeout(LIMIT, direct.cancel()).await;
    let _ = tokio::time::timeout(LIMIT, bridged.cancel()).await;
    tacit.close();
    asker.shutdown(Duration::from_millis(100)).await;
    seller.shutdown(Duration::from_millis(100)).await;
    Ok(())
}
