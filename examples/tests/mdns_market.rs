//! The marketplace over mDNS: three sellers announce themselves on the
//! local network, and a buyer that is given no address finds them with
//! `Agent::discover` (by tag and intents digest), dials each by AgentId
//! (`connect_id`, through the mDNS lookup) and trades contract-net rounds.
//!
//! Isolation: the outer test creates a network namespace of its own
//! (`tacit_testkit::netns`: multicast on its `lo`, `224.0.0.0/4` routed
//! there) and re-executes this binary inside it, where the `#[ignore]`d
//! inner test runs; the namespace is deleted afterwards, failed or not.
//! Without `ip netns` the test fails saying so.

use std::time::Duration;

use tacit::Agent;
use tacit_examples::buyer::{self, BuyerConfig};
use tacit_examples::lan;
use tacit_examples::seller::{Profile, Seller};
use tacit_testkit::LOCALHOST;
use tacit_testkit::netns::{inside, run_isolated};

#[test]
fn buyer_finds_three_sellers_by_mdns_and_trades() {
    run_isolated("inner_buyer_finds_three_sellers_by_mdns_and_trades");
}

#[test]
#[ignore = "runs inside a network namespace: see buyer_finds_three_sellers_by_mdns_and_trades"]
fn inner_buyer_finds_three_sellers_by_mdns_and_trades() {
    if !inside() {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(40), async {
            let sellers: Vec<Seller> = (0..3).map(|i| Seller::new(Profile::builtin(i))).collect();
            let mut seller_agents = Vec::new();
            for seller in &sellers {
                seller_agents.push(lan::announced(seller.agent(None)).bind(LOCALHOST).await.unwrap());
            }
            // Something else on the network that is not a seller: left alone.
            let bystander = lan::announced(Agent::builder()).bind(LOCALHOST).await.unwrap();
            let buyer = lan::announced(buyer::agent()).bind(LOCALHOST).await.unwrap();

            let (peers, failures) = lan::find_sellers(&buyer, 3, Duration::from_secs(15)).await.unwrap();
            assert!(failures.is_empty(), "{failures:?}");
            let mut found: Vec<_> = peers.iter().map(|peer| peer.id()).collect();
            found.sort();
            let mut expected: Vec<_> = seller_agents.iter().map(Agent::id).collect();
            expected.sort();
            assert_eq!(found, expected, "the buyer did not find exactly the three sellers");
            assert!(!found.contains(&bystander.id()));
            // The bystander (no roles: an empty `tags`) is seen, just not taken.
            let mut discovery = buyer.discover().unwrap();
            let bystander_seen = tokio::time::timeout(Duration::from_secs(5), async {
                loop {
                    match discovery.next().await.expect("the discovery ended") {
                        tacit::mdns::Discovered::Appeared(agent) if agent.id == bystander.id() => return agent,
                        _ => {}
                    }
                }
            })
            .await
            .expect("the bystander was not seen");
            assert!(bystander_seen.tags.is_empty() && !lan::is_seller(&bystander_seen));
            for peer in &peers {
                // Reached through mDNS: the lookup's address is remembered.
                assert!(!buyer.known_addrs(&peer.id()).is_empty());
            }

            let config = BuyerConfig { rounds: 10, deadline: Duration::from_secs(2), seed: 7, show_rounds: 0 };
            let report = buyer::trade(&peers, &config).await;
            assert_eq!(report.first_error, None);
            assert_eq!(report.unanswered, 0);
            assert!(report.rounds_with_quote > 0, "no round had a quote: {report:?}");
            assert_eq!(report.orders + report.award_failures, u64::from(report.rounds_with_quote));
            assert!(report.orders > 0, "no order: {report:?}");
            let sold: u64 = sellers.iter().map(|seller| seller.state().stats().orders).sum();
            assert_eq!(sold, report.orders);
            println!(
                "traded over mDNS: {} rounds, {} with a quote, {} orders",
                report.rounds, report.rounds_with_quote, report.orders
            );
        })
        .await
        .expect("the test took over 40 s");
    });
}
