//! A seller agent: quotes from its own stock and price strategy, refuses
//! what it cannot sell, confirms accepted quotes and learns from lost bids.
//!
//! Each seller keeps its state behind one `Mutex`, locked only for the few
//! arithmetic steps of a handler (never across an `.await`).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use tacit::credential::OrgKey;
use tacit::intents::RejectProposal;
use tacit::{Agent, AgentBuilder, AgentCard, Context, ConversationId, ErrorCode, Receipt, Rejection};

use crate::market::v1::{AcceptQuote, NotCarried, OrderConfirmed, OutOfStock, OverMaxPrice, Quote, RequestQuote};

/// The items on sale and their reference prices per unit, in cents.
pub const CATALOG: [(&str, u64); 5] =
    [("widget", 250), ("gear", 1_200), ("sprocket", 480), ("bearing", 90), ("valve", 3_100)];

/// The code sellers refuse with: `DECLINED`, a decision rather than a
/// failure; the typed detail ([`OutOfStock`], [`OverMaxPrice`],
/// [`NotCarried`]) says why.
pub const REFUSAL_CODE: ErrorCode = ErrorCode::Declined;

/// Why a seller refused a call for proposals, read from the refusal's typed
/// detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RefusalKind {
    /// Not enough units in stock.
    OutOfStock,
    /// Its price is above the buyer's maximum.
    OverMaxPrice,
    /// It does not sell the item.
    NotCarried,
    /// Any other reason.
    Other,
}

impl RefusalKind {
    /// A few words for reports.
    pub fn label(self) -> &'static str {
        match self {
            Self::OutOfStock => "out of stock",
            Self::OverMaxPrice => "over max price",
            Self::NotCarried => "not carried",
            Self::Other => "other",
        }
    }

    /// Classifies a refusal by its typed detail.
    pub fn of(rejection: &Rejection) -> Self {
        if rejection.detail::<OutOfStock>().is_some() {
            Self::OutOfStock
        } else if rejection.detail::<OverMaxPrice>().is_some() {
            Self::OverMaxPrice
        } else if rejection.detail::<NotCarried>().is_some() {
            Self::NotCarried
        } else {
            Self::Other
        }
    }
}

/// How a seller prices and stocks.
#[derive(Debug, Clone)]
pub struct Profile {
    /// The seller's name (its card's name).
    pub name: String,
    /// Its strategy in a few words.
    pub strategy: &'static str,
    /// Its cost per unit, as a fraction of the reference price.
    pub cost_factor: f64,
    /// Its starting margin over cost (0.2 = 20 %).
    pub margin: f64,
    /// How much the margin rises after a win; it falls by half of this after
    /// each lost bid and each call it prices above the buyer's maximum.
    pub margin_step: f64,
    /// Days to deliver.
    pub delivery_days: u32,
    /// Units of each carried item at the start.
    pub stock: u32,
    /// Units of each item added at each restock (up to twice the start).
    pub restock: u32,
    /// Restocks after this many calls for proposals.
    pub restock_every: u64,
    /// The items it sells (`None`: the whole catalog).
    pub items: Option<&'static [&'static str]>,
    /// A discount from this many units: (units, fraction off).
    pub bulk_discount: Option<(u32, f64)>,
}

impl Profile {
    /// How many built-in profiles there are; [`builtin`](Self::builtin)
    /// cycles through them.
    pub const BUILTIN: usize = 5;

    /// Built-in profile `index`: five distinct strategies, then the same
    /// five again with slightly higher costs and numbered names.
    pub fn builtin(index: usize) -> Self {
        let base = match index % Self::BUILTIN {
            0 => Self {
                name: "acme".into(),
                strategy: "cheapest, slow delivery",
                cost_factor: 0.78,
                margin: 0.15,
                margin_step: 0.01,
                delivery_days: 7,
                stock: 30,
                restock: 3,
                restock_every: 10,
                items: None,
                bulk_discount: None,
            },
            1 => Self {
                name: "bolt".into(),
                strategy: "premium, next-day delivery",
                cost_factor: 0.95,
                margin: 0.10,
                margin_step: 0.02,
                delivery_days: 1,
                stock: 25,
                restock: 3,
                restock_every: 10,
                items: None,
                bulk_discount: None,
            },
            2 => Self {
                name: "crate".into(),
                strategy: "12% off from 10 units",
                cost_factor: 0.90,
                margin: 0.20,
                margin_step: 0.01,
                delivery_days: 4,
                stock: 60,
                restock: 5,
                restock_every: 10,
                items: Some(&["widget", "gear", "sprocket", "valve"]),
                bulk_discount: Some((10, 0.12)),
            },
            3 => Self {
                name: "dyna".into(),
                strategy: "undercuts hard after a loss",
                cost_factor: 0.85,
                margin: 0.30,
                margin_step: 0.04,
                delivery_days: 3,
                stock: 30,
                restock: 3,
                restock_every: 10,
                items: None,
                bulk_discount: None,
            },
            _ => Self {
                name: "ember".into(),
                strategy: "two items, deep stock",
                cost_factor: 0.74,
                margin: 0.22,
                margin_step: 0.01,
                delivery_days: 5,
                stock: 120,
                restock: 6,
                restock_every: 10,
                items: Some(&["widget", "bearing"]),
                bulk_discount: None,
            },
        };
        let generation = index / Self::BUILTIN;
        if generation == 0 {
            return base;
        }
        Self {
            name: format!("{}-{}", base.name, generation + 1),
            cost_factor: base.cost_factor + 0.02 * generation as f64,
            ..base
        }
    }

    fn carries(&self, item: &str) -> bool {
        match self.items {
            Some(items) => items.contains(&item),
            None => CATALOG.iter().any(|(name, _)| *name == item),
        }
    }
}

/// What a seller has done so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SellerStats {
    /// Calls for proposals received.
    pub calls: u64,
    /// Quotes sent.
    pub quotes: u64,
    /// Calls refused, by reason.
    pub refusals: BTreeMap<RefusalKind, u64>,
    /// Orders confirmed.
    pub orders: u64,
    /// Acceptances refused (the quote was no longer valid).
    pub accepts_refused: u64,
    /// Units sold.
    pub units_sold: u64,
    /// Revenue, in cents.
    pub revenue_cents: u64,
    /// Rejections of its proposals received.
    pub rejections: u64,
}

impl SellerStats {
    /// All refusals.
    pub fn refused(&self) -> u64 {
        self.refusals.values().sum()
    }
}

/// A quote waiting for the buyer's decision.
#[derive(Debug, Clone)]
struct Pending {
    item: String,
    quantity: u32,
    price_cents: u64,
    sequence: u64,
}

/// Quotes kept waiting at most; older ones are forgotten (their buyer
/// never answered).
const MAX_PENDING: usize = 1024;

/// The margin never falls below this...
const MIN_MARGIN: f64 = 0.05;
/// ...nor rises above this.
const MAX_MARGIN: f64 = 0.6;

/// A seller's state: stock, margin, open quotes, counters.
#[derive(Debug)]
pub struct SellerState {
    profile: Profile,
    stock: BTreeMap<&'static str, u32>,
    margin: f64,
    pending: HashMap<ConversationId, Pending>,
    sequence: u64,
    stats: SellerStats,
    /// The receipts of the signed awards of confirmed orders.
    awards: Vec<Receipt>,
}

/// Award receipts a seller keeps in memory at most (a real seller would
/// write them to storage); later ones are counted, not kept.
pub const MAX_KEPT_RECEIPTS: usize = 100_000;

impl SellerState {
    /// A seller with `profile`'s starting stock and margin.
    pub fn new(profile: Profile) -> Self {
        let stock =
            CATALOG.iter().filter(|(item, _)| profile.carries(item)).map(|(item, _)| (*item, profile.stock)).collect();
        Self {
            margin: profile.margin,
            profile,
            stock,
            pending: HashMap::new(),
            sequence: 0,
            stats: SellerStats::default(),
            awards: Vec::new(),
        }
    }

    /// The profile.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// Units in stock over all items.
    pub fn stock_left(&self) -> u64 {
        self.stock.values().map(|&units| u64::from(units)).sum()
    }

    /// The current margin.
    pub fn margin(&self) -> f64 {
        self.margin
    }

    /// The counters.
    pub fn stats(&self) -> &SellerStats {
        &self.stats
    }

    fn refuse(&mut self, kind: RefusalKind, reason: String, detail: impl FnOnce(Rejection) -> Rejection) -> Rejection {
        *self.stats.refusals.entry(kind).or_default() += 1;
        detail(Rejection::refuse(REFUSAL_CODE, format!("{}: {reason}", kind.label())))
    }

    /// Answers a call for proposals in `conversation`.
    pub fn quote(&mut self, conversation: ConversationId, request: &RequestQuote) -> Result<Quote, Rejection> {
        self.stats.calls += 1;
        if self.stats.calls.is_multiple_of(self.profile.restock_every) {
            let cap = self.profile.stock * 2;
            for units in self.stock.values_mut() {
                *units = (*units + self.profile.restock).min(cap);
            }
        }
        let Some(reference) = CATALOG.iter().find(|(item, _)| *item == request.item).map(|(_, price)| *price) else {
            let detail = NotCarried { item: request.item.clone() };
            return Err(self.refuse(RefusalKind::NotCarried, format!("no such item \"{}\"", request.item), |r| {
                r.with_detail(&detail)
            }));
        };
        let Some(&in_stock) = self.stock.get(request.item.as_str()) else {
            let detail = NotCarried { item: request.item.clone() };
            let reason = format!("{} does not sell {}", self.profile.name, request.item);
            return Err(self.refuse(RefusalKind::NotCarried, reason, |r| r.with_detail(&detail)));
        };
        if request.quantity == 0 || in_stock < request.quantity {
            let detail = OutOfStock { item: request.item.clone(), available: in_stock };
            let reason = format!("{in_stock} {} left", request.item);
            return Err(self.refuse(RefusalKind::OutOfStock, reason, |r| r.with_detail(&detail)));
        }
        let price_cents = self.price(reference, request.quantity, in_stock);
        if price_cents > request.max_price_cents {
            self.lower_margin();
            let reason = format!("best price {}", crate::stats::cents(price_cents));
            let detail = OverMaxPrice { item: request.item.clone(), price_cents };
            return Err(self.refuse(RefusalKind::OverMaxPrice, reason, |r| r.with_detail(&detail)));
        }
        self.stats.quotes += 1;
        self.sequence += 1;
        if self.pending.len() >= MAX_PENDING {
            let oldest_kept = self.sequence.saturating_sub(MAX_PENDING as u64 / 2);
            self.pending.retain(|_, pending| pending.sequence >= oldest_kept);
        }
        let pending =
            Pending { item: request.item.clone(), quantity: request.quantity, price_cents, sequence: self.sequence };
        self.pending.insert(conversation, pending);
        Ok(Quote {
            price_cents,
            delivery_days: self.profile.delivery_days,
            seller: self.profile.name.clone(),
            in_stock,
        })
    }

    /// The price of `quantity` units: cost plus margin, dearer when stock
    /// runs low, cheaper in bulk where the seller offers it.
    fn price(&self, reference_cents: u64, quantity: u32, in_stock: u32) -> u64 {
        let mut unit = reference_cents as f64 * self.profile.cost_factor * (1.0 + self.margin);
        let low = f64::from(self.profile.stock) / 4.0;
        let after = f64::from(in_stock - quantity);
        if after < low {
            unit *= 1.0 + 0.4 * (1.0 - after / low);
        }
        if let Some((from, off)) = self.profile.bulk_discount
            && quantity >= from
        {
            unit *= 1.0 - off;
        }
        (unit * f64::from(quantity)).round() as u64
    }

    /// Confirms the quote accepted in `conversation`.
    pub fn accept(&mut self, conversation: ConversationId, accept: &AcceptQuote) -> Result<OrderConfirmed, Rejection> {
        let Some(pending) = self.pending.remove(&conversation) else {
            self.stats.accepts_refused += 1;
            return Err(Rejection::refuse(REFUSAL_CODE, "no open quote in this conversation"));
        };
        if (pending.item.as_str(), pending.quantity, pending.price_cents)
            != (accept.item.as_str(), accept.quantity, accept.price_cents)
        {
            self.stats.accepts_refused += 1;
            return Err(Rejection::refuse(REFUSAL_CODE, "the acceptance does not match the quote"));
        }
        let stock_left = match self.stock.get_mut(pending.item.as_str()) {
            Some(units) if *units >= pending.quantity => {
                *units -= pending.quantity;
                *units
            }
            _ => {
                self.stats.accepts_refused += 1;
                return Err(Rejection::refuse(REFUSAL_CODE, "sold out since the quote"));
            }
        };
        self.margin = (self.margin + self.profile.margin_step).min(MAX_MARGIN);
        self.stats.orders += 1;
        self.stats.units_sold += u64::from(pending.quantity);
        self.stats.revenue_cents += pending.price_cents;
        Ok(OrderConfirmed {
            order_id: self.stats.orders,
            seller: self.profile.name.clone(),
            item: pending.item,
            quantity: pending.quantity,
            price_cents: pending.price_cents,
            delivery_days: self.profile.delivery_days,
            stock_left,
        })
    }

    /// Keeps the receipt of the signed award of a confirmed order.
    pub fn keep_award(&mut self, receipt: Receipt) {
        if self.awards.len() < MAX_KEPT_RECEIPTS {
            self.awards.push(receipt);
        }
    }

    /// The receipts of the signed awards kept (buyers' signatures).
    pub fn awards(&self) -> &[Receipt] {
        &self.awards
    }

    fn lower_margin(&mut self) {
        self.margin = (self.margin - self.profile.margin_step / 2.0).max(MIN_MARGIN);
    }

    /// Notes that the proposal in `conversation` lost: lowers the margin.
    pub fn rejected(&mut self, conversation: ConversationId) {
        self.pending.remove(&conversation);
        self.stats.rejections += 1;
        self.lower_margin();
    }
}

/// A seller: its shared state and the handlers of its agent.
#[derive(Debug, Clone)]
pub struct Seller {
    state: Arc<Mutex<SellerState>>,
}

impl Seller {
    /// A seller with `profile`.
    pub fn new(profile: Profile) -> Self {
        Self { state: Arc::new(Mutex::new(SellerState::new(profile))) }
    }

    /// The state, locked (not to be held across an `.await`).
    pub fn state(&self) -> MutexGuard<'_, SellerState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// An agent builder with the seller's card and handlers: quotes for
    /// [`RequestQuote`] (refusals as `REFUSE`), orders for [`AcceptQuote`]
    /// (keeping the receipt of a signed one), and a lower margin after each
    /// [`RejectProposal`]. With a `market`, the seller trusts it and serves
    /// only the buyers it credentialed ([`trust::seller_policy`](crate::trust::seller_policy)).
    pub fn agent(&self, market: Option<&OrgKey>) -> AgentBuilder {
        let profile = self.state().profile().clone();
        let card = AgentCard::new(profile.name.clone())
            .with_role("seller")
            .with_description(format!("marketplace seller: {}", profile.strategy));
        let (on_cfp, on_accept, on_reject) = (self.clone(), self.clone(), self.clone());
        let builder = match market {
            Some(market) => Agent::builder().trust(*market).policy(crate::trust::seller_policy(market)),
            None => Agent::builder(),
        };
        builder
            .card(card)
            .on_ask(move |cx: Context, request: RequestQuote| {
                let answer = on_cfp.state().quote(cx.conversation_id(), &request);
                async move { answer }
            })
            .on_ask(move |cx: Context, accept: AcceptQuote| {
                let mut state = on_accept.state();
                let answer = state.accept(cx.conversation_id(), &accept);
                if let (Ok(_), Some(receipt)) = (&answer, cx.receipt()) {
                    state.keep_award(receipt.clone());
                }
                async move { answer }
            })
            .on_tell(move |cx: Context, _: RejectProposal| {
                on_reject.state().rejected(cx.conversation_id());
                async {}
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conversation(n: u32) -> ConversationId {
        ConversationId::new(&format!("c{n}")).unwrap()
    }

    fn request(item: &str, quantity: u32, max_price_cents: u64) -> RequestQuote {
        RequestQuote { item: item.into(), quantity, max_price_cents }
    }

    #[test]
    fn quotes_refuses_and_confirms() {
        let mut seller = SellerState::new(Profile::builtin(4));
        let refused = seller.quote(conversation(1), &request("gear", 1, u64::MAX)).unwrap_err();
        assert_eq!(RefusalKind::of(&refused), RefusalKind::NotCarried);
        let refused = seller.quote(conversation(2), &request("widget", 500, u64::MAX)).unwrap_err();
        assert_eq!(RefusalKind::of(&refused), RefusalKind::OutOfStock, "{}", refused.reason);
        assert_eq!(refused.detail::<OutOfStock>().map(|d| d.item), Some("widget".to_owned()));
        let refused = seller.quote(conversation(3), &request("widget", 10, 1)).unwrap_err();
        assert_eq!(RefusalKind::of(&refused), RefusalKind::OverMaxPrice);

        let quote = seller.quote(conversation(4), &request("widget", 10, u64::MAX)).unwrap();
        assert_eq!((quote.seller.as_str(), quote.in_stock), ("ember", 120));
        let accept = AcceptQuote { item: "widget".into(), quantity: 10, price_cents: quote.price_cents };
        let order = seller.accept(conversation(4), &accept).unwrap();
        assert_eq!((order.order_id, order.stock_left), (1, 110));
        // A quote is accepted once.
        assert!(seller.accept(conversation(4), &accept).is_err());
        let stats = seller.stats();
        assert_eq!((stats.calls, stats.quotes, stats.refused(), stats.orders, stats.units_sold), (4, 1, 3, 1, 10));
    }

    #[test]
    fn scarcity_raises_the_price_and_losses_lower_it() {
        let mut seller = SellerState::new(Profile::builtin(0));
        let plenty = seller.price(1_000, 1, 50);
        assert!(seller.price(1_000, 1, 2) > plenty);
        seller.quote(conversation(1), &request("gear", 1, u64::MAX)).unwrap();
        seller.rejected(conversation(1));
        assert!(seller.price(1_000, 1, 50) < plenty);
        assert_eq!(seller.stats().rejections, 1);
    }

    #[test]
    fn profiles_cycle_with_numbered_names() {
        assert_eq!(Profile::builtin(0).name, "acme");
        assert_eq!(Profile::builtin(5).name, "acme-2");
        assert_eq!(Profile::builtin(11).name, "bolt-3");
    }
}
