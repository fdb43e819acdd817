//! The buyer: runs contract-net rounds against its sellers and keeps score.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use tacit::intents::RejectProposal;
use tacit::{Agent, AgentBuilder, AgentCard, AgentId, ContractNet, Peer, Receipt};

use crate::Rng;
use crate::market::v1::{AcceptQuote, Quote, RequestQuote};
use crate::seller::{CATALOG, RefusalKind};
use crate::stats::{self, Latencies};

/// The reason every losing bidder is told.
pub const REJECTION_REASON: &str = "another seller's quote was better";

/// An agent builder with the buyer's card and the intents it sends.
pub fn agent() -> AgentBuilder {
    Agent::builder()
        .card(AgentCard::new("buyer").with_role("buyer").with_description("marketplace buyer"))
        .emits::<RequestQuote>()
        .emits::<AcceptQuote>()
}

/// How the buyer trades.
#[derive(Debug, Clone)]
pub struct BuyerConfig {
    /// Contract-net rounds, one after another.
    pub rounds: u32,
    /// How long each call for proposals waits for answers.
    pub deadline: Duration,
    /// Seeds what is bought.
    pub seed: u64,
    /// Rounds to describe one line each as they happen (0: none).
    pub show_rounds: u32,
}

/// The intents of all rounds, by kind; each is one message on the wire.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MessageCount {
    /// Calls for proposals (`CFP` asks, one per seller per round).
    pub cfps: u64,
    /// Quotes received (`PROPOSE` answers).
    pub proposals: u64,
    /// Refusals received (`REFUSE` answers).
    pub refusals: u64,
    /// Acceptances (`ACCEPT` asks).
    pub accepts: u64,
    /// Answers to acceptances (`INFORM` confirmations or refusals).
    pub results: u64,
    /// Rejections of losing proposals (`REJECT` tells).
    pub rejections: u64,
}

impl MessageCount {
    /// All messages.
    pub fn total(&self) -> u64 {
        self.cfps + self.proposals + self.refusals + self.accepts + self.results + self.rejections
    }
}

/// One seller as the buyer saw it.
#[derive(Debug, Clone)]
pub struct SellerTally {
    /// Its AgentId.
    pub id: AgentId,
    /// The name on its card.
    pub name: String,
    /// Quotes it sent.
    pub quotes: u64,
    /// Calls it refused.
    pub refusals: u64,
    /// Calls it did not answer in time (or could not be asked).
    pub unanswered: u64,
    /// Orders it confirmed.
    pub orders: u64,
    /// Units ordered from it.
    pub units: u64,
    /// Money paid to it, in cents.
    pub spent_cents: u64,
}

/// What the buyer saw over all rounds.
#[derive(Debug, Clone, Default)]
pub struct BuyerReport {
    /// Rounds run.
    pub rounds: u32,
    /// Rounds with at least one quote.
    pub rounds_with_quote: u32,
    /// Orders confirmed (at most one per round).
    pub orders: u64,
    /// Acceptances that did not end in an order.
    pub award_failures: u64,
    /// Refusals by reason.
    pub refusals: BTreeMap<RefusalKind, u64>,
    /// Calls not answered before the deadline, or not delivered.
    pub unanswered: u64,
    /// Money spent, in cents.
    pub spent_cents: u64,
    /// Per seller, in the order they were given.
    pub sellers: Vec<SellerTally>,
    /// The messages of all rounds.
    pub messages: MessageCount,
    /// Whole rounds: call for proposals, then award.
    pub round_latency: Latencies,
    /// Calls for proposals: from sending to every seller until the last answer.
    pub cfp_latency: Latencies,
    /// Awards: the `AcceptQuote` ask until its `OrderConfirmed` (rejections go out meanwhile).
    pub award_latency: Latencies,
    /// The time all rounds took.
    pub wall: Duration,
    /// One line per shown round.
    pub shown: Vec<String>,
    /// The first error of an award or of a call that was not a refusal.
    pub first_error: Option<String>,
    /// The receipts of the sellers' signed confirmations, verified on
    /// arrival (at most [`MAX_KEPT_RECEIPTS`](crate::seller::MAX_KEPT_RECEIPTS)).
    pub confirmations: Vec<Receipt>,
}

/// Picks what to buy each round.
#[derive(Debug, Clone)]
struct Shopping(Rng);

impl Shopping {
    fn next(&mut self) -> RequestQuote {
        let rng = &mut self.0;
        let (item, reference) = CATALOG[rng.range(0, CATALOG.len() as u64 - 1) as usize];
        let quantity = rng.range(1, 20) as u32;
        // A budget between 85 % and 135 % of the reference price.
        let budget = 0.85 + 0.5 * rng.unit();
        let max_price_cents = (reference as f64 * f64::from(quantity) * budget).round() as u64;
        RequestQuote { item: item.to_owned(), quantity, max_price_cents }
    }
}

/// Runs `config.rounds` contract-net rounds with `sellers` (connected and
/// ready): each round calls for a quote on a random purchase, accepts the
/// cheapest quote (then the fastest delivery) with a signed award that asks
/// for a signed confirmation ([`Round::award_signed`](tacit::Round::award_signed)),
/// keeps the confirmation's receipt, and rejects the others.
pub async fn trade(sellers: &[Peer], config: &BuyerConfig) -> BuyerReport {
    let mut report = BuyerReport {
        rounds: config.rounds,
        sellers: sellers
            .iter()
            .map(|peer| SellerTally {
                id: peer.id(),
                name: peer.card().map(|card| card.name).unwrap_or_else(|| peer.id().short()),
                quotes: 0,
                refusals: 0,
                unanswered: 0,
                orders: 0,
                units: 0,
                spent_cents: 0,
            })
            .collect(),
        ..BuyerReport::default()
    };
    let index: HashMap<AgentId, usize> = sellers.iter().enumerate().map(|(i, peer)| (peer.id(), i)).collect();
    let contract_net = ContractNet::new(sellers.iter().cloned(), config.deadline);
    let mut shopping = Shopping(Rng::new(config.seed));
    let started = Instant::now();
    for number in 1..=config.rounds {
        let request = shopping.next();
        let round_started = Instant::now();
        let round = contract_net.call_for_proposals(request.clone()).await;
        report.cfp_latency.record(round_started.elapsed());

        report.messages.cfps += sellers.len() as u64;
        report.messages.proposals += round.proposals.len() as u64;
        for proposal in &round.proposals {
            if let Some(&i) = index.get(&proposal.peer.id()) {
                report.sellers[i].quotes += 1;
            }
        }
        let mut refused = 0;
        for (id, error) in &round.declined {
            let tally = index.get(id).map(|&i| &mut report.sellers[i]);
            match error {
                tacit::Error::Rejected { rejection, .. } => {
                    refused += 1;
                    report.messages.refusals += 1;
                    *report.refusals.entry(RefusalKind::of(rejection)).or_default() += 1;
                    tally.into_iter().for_each(|tally| tally.refusals += 1);
                }
                other => {
                    report.unanswered += 1;
                    report.first_error.get_or_insert_with(|| format!("round {number}: {other}"));
                    tally.into_iter().for_each(|tally| tally.unanswered += 1);
                }
            }
        }
        let quotes = round.proposals.len();
        let Some(best) = round.best_by_key(|quote: &Quote| (quote.price_cents, quote.delivery_days)) else {
            report.round_latency.record(round_started.elapsed());
            if number <= config.show_rounds {
                report.shown.push(format!("{}  no quote, {refused} refused", describe(number, &request)));
            }
            continue;
        };
        report.rounds_with_quote += 1;
        let winner = round.proposals[best].peer.id();
        let quote = round.proposals[best].proposal.clone();
        let rejected = round
            .proposals
            .iter()
            .enumerate()
            .filter(|(i, proposal)| *i != best && proposal.peer.can_send::<RejectProposal>())
            .count();
        let acceptance =
            AcceptQuote { item: request.item.clone(), quantity: request.quantity, price_cents: quote.price_cents };
        let award_started = Instant::now();
        let outcome = round.award_signed(best, acceptance, REJECTION_REASON).await;
        report.award_latency.record(award_started.elapsed());
        report.round_latency.record(round_started.elapsed());
        report.messages.accepts += 1;
        report.messages.rejections += rejected as u64;
        let tally = index.get(&winner).map(|&i| &mut report.sellers[i]);
        let outcome_text = match outcome {
            Ok(mut reply) => {
                if let Some(receipt) = reply.take_receipt()
                    && report.confirmations.len() < crate::seller::MAX_KEPT_RECEIPTS
                {
                    report.confirmations.push(receipt);
                }
                let order = reply.message;
                report.messages.results += 1;
                report.orders += 1;
                report.spent_cents += order.price_cents;
                if let Some(tally) = tally {
                    tally.orders += 1;
                    tally.units += u64::from(order.quantity);
                    tally.spent_cents += order.price_cents;
                }
                format!(
                    "{:<6} {:>10}  {} day{}  order #{}",
                    order.seller,
                    stats::cents(order.price_cents),
                    order.delivery_days,
                    if order.delivery_days == 1 { "" } else { "s" },
                    order.order_id
                )
            }
            Err(error) => {
                if error.is_rejection() {
                    report.messages.results += 1;
                }
                report.award_failures += 1;
                report.first_error.get_or_insert_with(|| format!("round {number}: award: {error}"));
                format!("award failed: {error}")
            }
        };
        if number <= config.show_rounds {
            report.shown.push(format!(
                "{}  {quotes} quote{}, {refused} refused  → {outcome_text}",
                describe(number, &request),
                if quotes == 1 { "" } else { "s" }
            ));
        }
    }
    report.wall = started.elapsed();
    report
}

fn describe(number: u32, request: &RequestQuote) -> String {
    format!(
        "round {number:>3}: {:>2} × {:<8} max {:>9}",
        request.quantity,
        request.item,
        stats::cents(request.max_price_cents)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shopping_is_deterministic_and_sane() {
        let mut a = Shopping(Rng::new(7));
        let mut b = Shopping(Rng::new(7));
        for _ in 0..100 {
            let (x, y) = (a.next(), b.next());
            assert_eq!(x, y);
            assert!((1..=20).contains(&x.quantity));
            assert!(CATALOG.iter().any(|(item, _)| *item == x.item));
            assert!(x.max_price_cents > 0);
        }
    }

    #[test]
    fn message_total() {
        let count = MessageCount { cfps: 5, proposals: 3, refusals: 2, accepts: 1, results: 1, rejections: 2 };
        assert_eq!(count.total(), 14);
    }
}
