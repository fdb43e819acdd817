//! The marketplace's summary: aligned tables and figures, checked against
//! the agents' own counters.

use std::fmt::Write as _;
use std::time::Duration;

use tacit::MetricsSnapshot;

use crate::buyer::BuyerReport;
use crate::seller::{REFUSAL_CODE, SellerState};
use crate::stats::{Summary, cents, count, duration, times};

/// Width of the label column.
const LABEL: usize = 20;

/// Formats rows as a table: the first `left` columns left-aligned, the
/// others right-aligned, every column as wide as its widest cell.
pub fn table(rows: &[Vec<String>], left: usize) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().filter_map(|row| row.get(c)).map(|cell| cell.chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            let pad = widths[c].saturating_sub(cell.chars().count());
            if c > 0 {
                line.push_str("  ");
            }
            if c < left {
                line.push_str(cell);
                line.push_str(&" ".repeat(pad));
            } else {
                line.push_str(&" ".repeat(pad));
                line.push_str(cell);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// One seller's own account, for the in-process demo's table.
#[derive(Debug, Clone)]
pub struct SellerRow {
    /// Its name.
    pub name: String,
    /// Its strategy.
    pub strategy: String,
    /// Quotes sent.
    pub quotes: u64,
    /// Calls refused.
    pub refused: u64,
    /// Orders confirmed.
    pub orders: u64,
    /// Units sold.
    pub units: u64,
    /// Revenue, in cents.
    pub revenue_cents: u64,
    /// Units in stock at the end.
    pub stock_left: u64,
    /// Its margin at the end.
    pub margin: f64,
}

impl SellerRow {
    /// The row of a seller's state.
    pub fn of(state: &SellerState) -> Self {
        let stats = state.stats();
        Self {
            name: state.profile().name.clone(),
            strategy: state.profile().strategy.to_owned(),
            quotes: stats.quotes,
            refused: stats.refused(),
            orders: stats.orders,
            units: stats.units_sold,
            revenue_cents: stats.revenue_cents,
            stock_left: state.stock_left(),
            margin: state.margin(),
        }
    }
}

/// The agents' counters to check the message count against.
#[derive(Debug, Clone)]
pub enum Counters {
    /// Every agent's: the buyer's and each seller's.
    All {
        /// The buyer's.
        buyer: MetricsSnapshot,
        /// Each seller's.
        sellers: Vec<MetricsSnapshot>,
    },
    /// Only the buyer's (the sellers run elsewhere).
    Buyer(MetricsSnapshot),
}

/// The message count by the agents' counters, and whether they agree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterCheck {
    /// Messages by the counters.
    pub total: u64,
    /// Whether the counters agree with each other and with the rounds' count.
    pub agrees: bool,
    /// How they were added up, one line per side.
    pub detail: Vec<String>,
}

/// What an agent's counters add up to since `before`: the market's
/// traffic alone, without the directory lookup that came before it.
pub fn since(mut after: MetricsSnapshot, before: &MetricsSnapshot) -> MetricsSnapshot {
    after.asks_sent -= before.asks_sent;
    after.replies_received -= before.replies_received;
    after.rejections_received -= before.rejections_received;
    after.tells_sent -= before.tells_sent;
    for (code, n) in &before.errors {
        if let Some(count) = after.errors.get_mut(code) {
            *count -= n;
        }
    }
    after
}

impl Counters {
    /// Adds up the messages the counters saw and compares them with `expected`.
    pub fn check(&self, expected: u64) -> CounterCheck {
        let (buyer, sellers) = match self {
            Self::All { buyer, sellers } => (buyer, Some(sellers)),
            Self::Buyer(buyer) => (buyer, None),
        };
        let refusals = buyer.errors_with(REFUSAL_CODE);
        let total = buyer.asks_sent + buyer.replies_received + refusals + buyer.tells_sent;
        let mut detail = vec![format!(
            "buyer:   sent {} asks + {} tells, received {} replies + {} refusals",
            count(buyer.asks_sent),
            count(buyer.tells_sent),
            count(buyer.replies_received),
            count(refusals)
        )];
        let mut agrees = total == expected;
        if let Some(sellers) = sellers {
            let sum = |f: fn(&MetricsSnapshot) -> u64| sellers.iter().map(f).sum::<u64>();
            let asks = sum(|s| s.asks_received);
            let tells = sum(|s| s.tells_received);
            let replies = sum(|s| s.replies_sent);
            let refused = sum(|s| s.asks_received.saturating_sub(s.replies_sent));
            detail.push(format!(
                "sellers: received {} asks + {} tells, sent {} replies + {} refusals",
                count(asks),
                count(tells),
                count(replies),
                count(refused)
            ));
            agrees &= (asks, tells, replies, refused)
                == (buyer.asks_sent, buyer.tells_sent, buyer.replies_received, refusals);
        }
        CounterCheck { total, agrees, detail }
    }
}

/// Everything the summary shows.
#[derive(Debug, Clone)]
pub struct Figures<'a> {
    /// What the buyer saw.
    pub report: &'a BuyerReport,
    /// The sellers' own accounts, when they run in this process.
    pub sellers: Option<Vec<SellerRow>>,
    /// The counters to check against.
    pub counters: Counters,
    /// The assumed time of one model inference.
    pub inference: Duration,
    /// What the receipts of the orders show, if checked.
    pub receipts: Option<String>,
}

fn line(out: &mut String, label: &str, text: impl AsRef<str>) {
    let _ = writeln!(out, "{label:<LABEL$}{}", text.as_ref());
}

fn p50_p99(summary: Option<Summary>) -> String {
    summary.map_or_else(|| "-".to_owned(), |s| format!("{} / {}", duration(s.p50), duration(s.p99)))
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{} {}", count(n), if n == 1 { one } else { many })
}

/// Renders the summary.
pub fn render(figures: &Figures<'_>) -> String {
    let report = figures.report;
    let sellers = report.sellers.len();
    let mut out = String::new();

    // Per seller.
    let mut rows = Vec::new();
    match &figures.sellers {
        Some(own) => {
            rows.push(
                ["seller", "strategy", "quotes", "refused", "orders", "units", "revenue", "stock left", "margin"]
                    .map(String::from)
                    .to_vec(),
            );
            for row in own {
                rows.push(vec![
                    row.name.clone(),
                    row.strategy.clone(),
                    count(row.quotes),
                    count(row.refused),
                    count(row.orders),
                    count(row.units),
                    cents(row.revenue_cents),
                    count(row.stock_left),
                    format!("{:.0}%", row.margin * 100.0),
                ]);
            }
            let total = |f: fn(&SellerRow) -> u64| own.iter().map(f).sum::<u64>();
            rows.push(vec![
                "total".into(),
                String::new(),
                count(total(|r| r.quotes)),
                count(total(|r| r.refused)),
                count(total(|r| r.orders)),
                count(total(|r| r.units)),
                cents(total(|r| r.revenue_cents)),
                count(total(|r| r.stock_left)),
            ]);
        }
        None => {
            rows.push(
                ["seller", "agent", "quotes", "refused", "unanswered", "orders", "units", "paid"]
                    .map(String::from)
                    .to_vec(),
            );
            for tally in &report.sellers {
                rows.push(vec![
                    tally.name.clone(),
                    tally.id.short(),
                    count(tally.quotes),
                    count(tally.refusals),
                    count(tally.unanswered),
                    count(tally.orders),
                    count(tally.units),
                    cents(tally.spent_cents),
                ]);
            }
        }
    }
    out.push_str(&table(&rows, if figures.sellers.is_some() { 2 } else { 1 }));
    out.push('\n');

    // Outcome.
    let no_quote = u64::from(report.rounds - report.rounds_with_quote);
    line(
        &mut out,
        "Rounds",
        format!(
            "{}  ({} with a quote: {} orders confirmed, {} awards failed; {} with no quote)",
            count(u64::from(report.rounds)),
            count(u64::from(report.rounds_with_quote)),
            count(report.orders),
            count(report.award_failures),
            count(no_quote)
        ),
    );
    let refusals: Vec<String> =
        report.refusals.iter().map(|(kind, n)| format!("{} {}", count(*n), kind.label())).collect();
    let refused_total: u64 = report.refusals.values().sum();
    line(
        &mut out,
        "Proposals",
        format!(
            "{}, {}{}, {} unanswered",
            plural(report.messages.proposals, "quote", "quotes"),
            plural(refused_total, "refusal", "refusals"),
            if refusals.is_empty() { String::new() } else { format!(" ({})", refusals.join(", ")) },
            count(report.unanswered)
        ),
    );
    line(&mut out, "Spent", format!("{} on {} orders", cents(report.spent_cents), count(report.orders)));
    if let Some(receipts) = &figures.receipts {
        line(&mut out, "Receipts", receipts);
    }
    if let Some(error) = &report.first_error {
        line(&mut out, "First error", error);
    }

    // Messages.
    let m = &report.messages;
    let total = m.total();
    line(
        &mut out,
        "Intents exchanged",
        format!(
            "{} = {} cfp + {} quote + {} refuse + {} accept + {} confirm + {} reject",
            count(total),
            count(m.cfps),
            count(m.proposals),
            count(m.refusals),
            count(m.accepts),
            count(m.results),
            count(m.rejections)
        ),
    );
    let check = figures.counters.check(total);
    let agents = match &figures.counters {
        Counters::All { sellers, .. } => format!("{} agents", sellers.len() + 1),
        Counters::Buyer(_) => "the buyer".to_owned(),
    };
    line(
        &mut out,
        "  Agent::metrics()",
        format!(
            "{} by the counters of {agents} — {}",
            count(check.total),
            if check.agrees { "agrees" } else { "DISAGREES" }
        ),
    );
    for detail in &check.detail {
        line(&mut out, "", detail);
    }

    // Time.
    let wall = report.wall;
    let rounds = u64::from(report.rounds).max(1);
    line(
        &mut out,
        "Wall time",
        format!(
            "{} for {} rounds ({} per round, {} intents/s)",
            duration(wall),
            count(u64::from(report.rounds)),
            duration(wall / rounds as u32),
            count((total as f64 / wall.as_secs_f64().max(1e-9)).round() as u64)
        ),
    );
    let latencies = [
        ("round: cfp, quotes, award".to_owned(), report.round_latency.summary()),
        (format!("call for proposals ({sellers} asks at once)"), report.cfp_latency.summary()),
        ("award: AcceptQuote → OrderConfirmed (1 ask)".to_owned(), report.award_latency.summary()),
    ];
    line(&mut out, "Latency", "p50 / p99, measured by the buyer around each step");
    let width = latencies.iter().map(|(label, _)| label.chars().count()).max().unwrap_or(0);
    for (label, summary) in latencies {
        let pad = width - label.chars().count();
        line(&mut out, "", format!("{label}{}  {}", " ".repeat(pad), p50_p99(summary)));
    }

    // The same work at one model inference per message.
    let inference = figures.inference;
    let one_by_one = inference.mul_f64(total as f64);
    let critical_inferences = 2 * u64::from(report.rounds) + 2 * u64::from(report.rounds_with_quote);
    let critical = inference.mul_f64(critical_inferences as f64);
    let ratio = |d: Duration| times(d.as_secs_f64() / wall.as_secs_f64().max(1e-9));
    let llm_rows = vec![
        vec![
            "every message in turn".to_owned(),
            format!("{} × {}", count(total), duration(inference)),
            format!("= {}", duration(one_by_one)),
            format!("{} the wall time", ratio(one_by_one)),
        ],
        vec![
            "critical path only".to_owned(),
            format!("{} × {}", count(critical_inferences), duration(inference)),
            format!("= {}", duration(critical)),
            format!("{} the wall time", ratio(critical)),
        ],
    ];
    line(
        &mut out,
        "With LLM calls",
        format!("if each message took one model inference of {} (--inference-ms):", duration(inference)),
    );
    for row in table(&llm_rows, 1).lines() {
        line(&mut out, "", row);
    }
    line(
        &mut out,
        "",
        "(critical path: per round the buyer's cfp, the sellers' quotes in parallel, the accept, the confirmation)",
    );
    out
}
