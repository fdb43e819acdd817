//! `tacit ping`: round-trip times of the standard Ping, like ping(8).

use std::time::{Duration, Instant};

use serde_json::json;
use tacit::intents::Ping;
use tacit::{Agent, AskOptions};

use crate::connect::{self, ConnectArgs};
use crate::error::{CliError, Exit};

/// Above this many pings, progress replaces the per-ping lines.
const PER_PING_LINES: u64 = 20;

/// Arguments of `tacit ping`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    connect: ConnectArgs,
    /// How many pings to send.
    #[arg(short = 'n', long = "count", value_name = "N", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..))]
    count: u64,
    /// Seconds to wait between pings (default: none, back to back).
    #[arg(short = 'i', long, value_name = "SECS", value_parser = connect::parse_secs)]
    interval: Option<Duration>,
    /// Seconds to wait for each pong.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = connect::parse_secs)]
    timeout: Duration,
    /// Print only the summary.
    #[arg(short, long)]
    quiet: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(args: Args) -> Result<(), CliError> {
    let addr = args.connect.addr.clone();
    let connection = connect::dial(&args.connect, Agent::builder(), args.connect.expect).await?;
    let peer = &connection.peer;
    let name = peer.card().map(|card| card.name).unwrap_or_default();
    eprintln!("PING {addr} ({name} {}): {} pings", peer.id(), args.count);
    let each = !args.quiet && !args.json && args.count <= PER_PING_LINES;
    let started = Instant::now();
    let mut last_progress = started;
    let mut samples = Vec::with_capacity(usize::try_from(args.count).unwrap_or(0).min(1 << 20));
    let mut failed = 0u64;
    for seq in 1..=args.count {
        if let (Some(interval), true) = (args.interval, seq > 1) {
            tokio::time::sleep(interval).await;
        }
        let sent = Instant::now();
        let options = AskOptions::default().deadline(args.timeout);
        let asking = peer.ask_with(Ping { nonce: seq }, options);
        match connect::bounded(&addr, "Ping", args.timeout + Duration::from_millis(500), asking).await {
            Ok(pong) if pong.message.nonce == seq => {
                let rtt = sent.elapsed();
                samples.push(rtt);
                if each {
                    println!("pong from {addr}: seq={seq} time={}", ms(rtt));
                }
            }
            Ok(pong) => {
                failed += 1;
                eprintln!("seq={seq}: the pong carries nonce {}, not {seq}", pong.message.nonce);
            }
            Err(error) if error.exit == Exit::Unreachable => {
                connection.close().await;
                return Err(error);
            }
            Err(error) => {
                failed += 1;
                eprintln!("seq={seq}: {}", error.message);
            }
        }
        if !each && !args.quiet && last_progress.elapsed() >= Duration::from_secs(1) {
            last_progress = Instant::now();
            let last = samples.last().map(|rtt| ms(*rtt)).unwrap_or_else(|| "-".into());
            eprintln!("  {seq}/{} pings, {failed} failed, last {last}", args.count);
        }
    }
    let elapsed = started.elapsed();
    connection.close().await;
    let summary = Summary::of(samples);
    if args.json {
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        println!(
            "{}",
            json!({
                "address": addr,
                "sent": args.count,
                "received": summary.received,
                "failed": failed,
                "elapsed_us": us(elapsed),
                "rtt_us": summary.stats.map(|s| json!({
                    "min": us(s.min), "p50": us(s.p50), "p99": us(s.p99), "max": us(s.max), "mean": us(s.mean),
                })),
            })
        );
    } else {
        println!("--- {addr} ping statistics ---");
        println!("{} sent, {} received, {failed} failed, time {}", args.count, summary.received, ms(elapsed));
        if let Some(s) = summary.stats {
            println!(
                "rtt min/p50/p99/max/mean = {:.3}/{:.3}/{:.3}/{:.3}/{:.3} ms",
                millis(s.min),
                millis(s.p50),
                millis(s.p99),
                millis(s.max),
                millis(s.mean)
            );
        }
    }
    if failed > 0 {
        return Err(CliError::failure(format!("{failed} of {} pings failed", args.count)));
    }
    Ok(())
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

fn ms(duration: Duration) -> String {
    format!("{:.3} ms", millis(duration))
}

struct Summary {
    received: usize,
    stats: Option<Stats>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Stats {
    min: Duration,
    p50: Duration,
    p99: Duration,
    max: Duration,
    mean: Duration,
}

impl Summary {
    fn of(mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        let received = samples.len();
        let stats = match (samples.first(), samples.last()) {
            (Some(&min), Some(&max)) => {
                let total: Duration = samples.iter().sum();
                Some(Stats {
                    min,
                    p50: percentile(&samples, 50),
                    p99: percentile(&samples, 99),
                    max,
                    mean: total / u32::try_from(received).unwrap_or(u32::MAX),
                })
            }
            _ => None,
        };
        Self { received, stats }
    }
}

/// The nearest-rank percentile of sorted, non-empty `samples`.
fn percentile(samples: &[Duration], percent: usize) -> Duration {
    let rank = (samples.len() * percent).div_ceil(100).max(1);
    samples[rank.min(samples.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        assert_eq!(percentile(&samples, 50), Duration::from_micros(50));
        assert_eq!(percentile(&samples, 99), Duration::from_micros(99));
        let one = [Duration::from_micros(7)];
        assert_eq!(percentile(&one, 50), one[0]);
        assert_eq!(percentile(&one, 99), one[0]);
        let stats = Summary::of(vec![Duration::from_micros(3), Duration::from_micros(1)]).stats.unwrap();
        assert_eq!(
            (stats.min, stats.max, stats.mean),
            (Duration::from_micros(1), Duration::from_micros(3), Duration::from_micros(2))
        );
    }
}
