//! The tables: printed, and written into BENCHMARKS.md between
//! `<!-- compare:begin -->` and `<!-- compare:end -->`, with the run before
//! kept beside the new one and the targets of issue 7 judged on both.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use crate::codec::{Codec, CodecFigures};
use crate::latency::Latency;
use crate::memory::{IdleCase, IdleFigures};
use crate::unpinned::{self, Flavor};
use crate::{Case, Counts, IN_FLIGHT};

const BEGIN: &str = "<!-- compare:begin -->";
const END: &str = "<!-- compare:end -->";
const RUN_BEGIN: &str = "<!-- compare:run -->";
const RUN_END: &str = "<!-- compare:run-end -->";
const DATA: &str = "<!-- compare:data ";
const COMMAND: &str = "taskset -c 0 cargo run --release -p tacit-benches --bin compare";

/// Everything one run measured.
pub(crate) struct Results {
    /// Latency and allocations per round trip (both ends).
    pub(crate) round_trips: Vec<(Case, Latency, f64)>,
    /// Messages per second and allocations per message.
    pub(crate) throughput: Vec<(Case, f64, f64)>,
    /// Latency and allocations per connect + first request.
    pub(crate) connects: Vec<(Case, Latency, f64)>,
    /// Round trips unpinned, per flavour (`None`: the child failed).
    pub(crate) unpinned: Vec<(Flavor, Option<unpinned::Run>)>,
    pub(crate) codecs: Vec<(Codec, CodecFigures)>,
    pub(crate) idle: Vec<(IdleCase, Option<IdleFigures>)>,
    pub(crate) counts: Counts,
    pub(crate) quick: bool,
    pub(crate) elapsed: Duration,
}

impl Results {
    /// The figures the targets use, by stable key (kept in BENCHMARKS.md).
    fn data(&self) -> BTreeMap<String, f64> {
        let mut data = BTreeMap::new();
        for (case, latency, _) in &self.round_trips {
            data.insert(format!("rtt_p50/{}", case.key()), latency.p50);
            data.insert(format!("rtt_p99/{}", case.key()), latency.p99);
        }
        for (flavor, run) in &self.unpinned {
            for (case, figures) in run.iter().flat_map(|run| &run.cases) {
                if *flavor == Flavor::Multi {
                    data.insert(format!("mt_rtt_p50/{}", case.key()), figures.latency.p50);
                    data.insert(format!("mt_rtt_p99/{}", case.key()), figures.latency.p99);
                }
                data.insert(format!("wake_ups/{}/{}", flavor.arg(), case.key()), figures.wake_ups());
            }
        }
        for (case, rate, _) in &self.throughput {
            data.insert(format!("tput/{}", case.key()), *rate);
        }
        for (case, latency, _) in &self.connects {
            data.insert(format!("connect_p50/{}", case.key()), latency.p50);
        }
        for (codec, figures) in &self.codecs {
            data.insert(format!("decode_ns/{}", codec.key()), figures.decode_ns);
            data.insert(format!("decode_allocs/{}", codec.key()), figures.decode_allocs);
        }
        for (case, figures) in &self.idle {
            for (n, bytes) in figures.iter().flat_map(|f| &f.at) {
                data.insert(format!("idle_rss/{}/{n}", case.arg()), *bytes as f64);
            }
        }
        data.insert("elapsed_s".to_owned(), self.elapsed.as_secs_f64());
        // Four significant digits are plenty, and keep the comment short.
        for value in data.values_mut() {
            let scale = 10f64.powi(3 - value.abs().max(1e-9).log10().floor() as i32);
            *value = (*value * scale).round() / scale;
        }
        data
    }
}

impl Codec {
    fn key(self) -> &'static str {
        match self {
            Self::Tacit => "tacit",
            Self::TacitEnvelope => "tacit_envelope",
            Self::Prost => "prost",
            Self::Json => "json",
        }
    }
}

fn ratio(value: f64, reference: f64) -> String {
    if reference > 0.0 && value > 0.0 { format!("{:.2}", value / reference) } else { "–".to_owned() }
}

/// `1234567.8` as `1,234,568`.
fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn mib(bytes: f64) -> String {
    format!("{:.1}", bytes / (1024.0 * 1024.0))
}

/// The tables of one run, with its data, between the run markers.
pub(crate) fn run_block(results: &Results) -> String {
    let meta = Meta::read();
    let c = results.counts;
    let mut out = String::new();
    let _ = writeln!(out, "{RUN_BEGIN}");
    let _ = writeln!(
        out,
        "#### {} at `{}`{} (harness time {:.0} s{})\n",
        meta.date,
        meta.commit,
        if meta.dirty { " plus uncommitted changes" } else { "" },
        results.elapsed.as_secs_f64(),
        if results.quick { ", quick smoke counts: not a measurement" } else { "" },
    );
    let _ = writeln!(out, "Machine: {}.\n", meta.machine);

    let tacit_rtt = results.round_trips.iter().find(|r| r.0 == Case::TacitAgent).map_or(Latency::default(), |r| r.1);
    let _ = writeln!(
        out,
        "Round trip at 1 in flight ({} per case in {} interleaved rounds, after {} ms warm-up each); allocations \
         per round trip count both ends:\n",
        thousands(c.round_trips as f64),
        c.rounds,
        c.warm_up.as_millis()
    );
    let _ = writeln!(out, "| case | p50 µs | p99 µs | p50 × Tacit | p99 × Tacit | allocations |");
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|");
    for (case, latency, allocs) in &results.round_trips {
        let _ = writeln!(
            out,
            "| {} | {:.1} | {:.1} | {} | {} | {:.1} |",
            case.label(),
            latency.p50,
            latency.p99,
            ratio(latency.p50, tacit_rtt.p50),
            ratio(latency.p99, tacit_rtt.p99),
            allocs
        );
    }

    unpinned_tables(&mut out, results);

    let tacit_rate = results.throughput.iter().find(|r| r.0 == Case::TacitAgent).map_or(0.0, |r| r.1);
    if results.throughput.is_empty() {
        return finish(out, results);
    }
    let _ = writeln!(
        out,
        "\nThroughput at {IN_FLIGHT} in flight on one connection ({} messages per case; HTTP/1.1 cannot have more \
         than one request in flight on a connection, so its rows use {IN_FLIGHT} keep-alive connections, one \
         request each):\n",
        thousands(c.throughput_messages as f64)
    );
    let _ = writeln!(out, "| case | messages/s | µs/message | × Tacit | allocations/message |");
    let _ = writeln!(out, "|---|---:|---:|---:|---:|");
    for (case, rate, allocs) in &results.throughput {
        let _ = writeln!(
            out,
            "| {} | {} | {:.2} | {} | {:.1} |",
            case.label(),
            thousands(*rate),
            1e6 / rate,
            ratio(*rate, tacit_rate),
            allocs
        );
    }

    let tacit_connect = results.connects.iter().find(|r| r.0 == Case::TacitAgent).map_or(Latency::default(), |r| r.1);
    let _ = writeln!(
        out,
        "\nConnect (+ TLS and protocol handshakes) + first request and its answer ({} per case; closing is not \
         timed; raw quinn: a new connection and a request on its first stream):\n",
        thousands(c.connects as f64)
    );
    let _ = writeln!(out, "| case | p50 µs | p99 µs | p50 × Tacit | allocations |");
    let _ = writeln!(out, "|---|---:|---:|---:|---:|");
    for (case, latency, allocs) in &results.connects {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            case.label(),
            thousands(latency.p50),
            thousands(latency.p99),
            ratio(latency.p50, tacit_connect.p50),
            thousands(*allocs)
        );
    }

    let tacit_codec = results.codecs.iter().find(|r| r.0 == Codec::Tacit).map_or(CodecFigures::default(), |r| r.1);
    let _ = writeln!(
        out,
        "\nEncode / decode of the request in each protocol's own format (fastest of {} interleaved rounds; {} \
         calls each in all):\n",
        c.codec_rounds,
        thousands(c.codec_calls as f64)
    );
    let _ = writeln!(
        out,
        "| format | bytes | encode ns | decode ns | encode allocations | decode allocations | decode × Tacit |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|");
    for (codec, f) in &results.codecs {
        let _ = writeln!(
            out,
            "| {} | {} | {:.0} | {:.0} | {:.1} | {:.1} | {} |",
            codec.name(),
            f.bytes,
            f.encode_ns,
            f.decode_ns,
            f.encode_allocs,
            f.decode_allocs,
            ratio(f.decode_ns, tacit_codec.decode_ns)
        );
    }

    let [small, large] = c.idle_sessions;
    // At `n` sessions, or at the most the child could open (TCP is bounded
    // by the open-files limit).
    let per_session = |figures: &IdleFigures, n: usize| {
        let at = figures.at.iter().find(|(count, _)| *count == n).or(figures.at.last().filter(|_| n == large));
        at.map(|&(count, rss)| {
            let growth = rss.saturating_sub(figures.base) as f64;
            (count, rss as f64, growth / count.max(1) as f64)
        })
    };
    let tacit_idle = results
        .idle
        .iter()
        .find(|r| r.0 == IdleCase::TacitAgent)
        .and_then(|r| r.1.as_ref())
        .and_then(|f| per_session(f, large));
    let _ = writeln!(
        out,
        "\nMemory of idle sessions: resident set of a child process holding both ends of every session, each \
         session having answered one request (TCP: kernel socket buffers are not in the resident set; \
         QUIC keeps its buffers in the process):\n"
    );
    let _ = writeln!(
        out,
        "| case | base MiB | {small} sessions: MiB | KiB/session | {large} sessions: MiB | KiB/session | \
         KiB/session × Tacit |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|");
    for (case, figures) in &results.idle {
        let Some(figures) = figures else {
            let _ = writeln!(out, "| {} | failed | | | | | |", case.label());
            continue;
        };
        let cell = |n: usize| match per_session(figures, n) {
            Some((count, rss, per)) if count == n => (mib(rss), format!("{:.1}", per / 1024.0)),
            Some((count, rss, per)) => (format!("{} ({count} sessions)", mib(rss)), format!("{:.1}", per / 1024.0)),
            None => ("–".to_owned(), "–".to_owned()),
        };
        let (small_mib, small_per) = cell(small);
        let (large_mib, large_per) = cell(large);
        let versus = match (per_session(figures, large), tacit_idle) {
            (Some((_, _, per)), Some((_, _, tacit))) => ratio(per, tacit),
            _ => "–".to_owned(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {small_mib} | {small_per} | {large_mib} | {large_per} | {versus} |",
            case.label(),
            mib(figures.base as f64),
        );
    }
    finish(out, results)
}

/// The run's data and end marker.
fn finish(mut out: String, results: &Results) -> String {
    let data = serde_json::to_string(&results.data()).unwrap_or_default();
    let _ = writeln!(out, "\n{DATA}{data} -->");
    let _ = writeln!(out, "{RUN_END}");
    out
}

/// The round trips as users run them (issue 12, finding 9), and the thread
/// wake-ups behind them.
fn unpinned_tables(out: &mut String, results: &Results) {
    let c = results.counts;
    let pinned = |case: Case| results.round_trips.iter().find(|r| r.0 == case).map_or(Latency::default(), |r| r.1);
    let Some((_, Some(multi))) = results.unpinned.iter().find(|(f, _)| *f == Flavor::Multi) else {
        let _ = writeln!(out, "\nRound trips unpinned: the child process failed (see its output).");
        return;
    };
    let quinn = multi.cases.iter().find(|r| r.0 == Case::QuinnLongLived).map_or(Latency::default(), |r| r.1.latency);
    let _ = writeln!(
        out,
        "\nRound trip at 1 in flight **as users run it**: tokio's default multi-thread runtime ({} worker threads \
         = cores), not pinned (CPUs {}), the servers on one runtime and the clients on another, each ask awaited \
         from `block_on` as in `#[tokio::main]` ({} per case in {} interleaved rounds, after {} ms warm-up each, in \
         a child process). Ratios to raw quinn's long-lived stream in the same child, and to the same case pinned \
         above; wake-ups: voluntary context switches per round trip, all threads:\n",
        multi.workers,
        multi.cpus,
        thousands(c.round_trips as f64),
        c.rounds,
        c.warm_up.as_millis()
    );
    let _ = writeln!(out, "| case | p50 µs | p99 µs | p50 × raw quinn | p99 × raw quinn | p50 × pinned | wake-ups |");
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|");
    for (case, f) in &multi.cases {
        let _ = writeln!(
            out,
            "| {} | {:.1} | {:.1} | {} | {} | {} | {:.2} |",
            case.label(),
            f.latency.p50,
            f.latency.p99,
            ratio(f.latency.p50, quinn.p50),
            ratio(f.latency.p99, quinn.p99),
            ratio(f.latency.p50, pinned(*case).p50),
            f.wake_ups()
        );
    }
    let _ = writeln!(
        out,
        "\nThread wake-ups per round trip by runtime flavour (voluntary context switches: a thread blocked and \
         had to be woken; the asking thread is the one in `block_on`; parks: tokio worker parks):\n"
    );
    let _ = writeln!(
        out,
        "| case | runtimes | p50 µs | asking thread | client runtime | server runtime | all | client parks | server \
         parks |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for &case in &unpinned::CASES {
        for (flavor, run) in &results.unpinned {
            let Some(f) = run.as_ref().and_then(|run| run.cases.iter().find(|r| r.0 == case)).map(|r| r.1) else {
                let _ = writeln!(out, "| {} | {} | failed | | | | | | |", case.label(), flavor.label());
                continue;
            };
            let _ = writeln!(
                out,
                "| {} | {} | {:.1} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
                case.label(),
                flavor.label(),
                f.latency.p50,
                f.sleeps[0],
                f.sleeps[1],
                f.sleeps[2],
                f.wake_ups(),
                f.parks[0],
                f.parks[1]
            );
        }
    }
}

impl IdleCase {
    fn label(self) -> &'static str {
        match self {
            Self::TacitAgent => "**Tacit agent API** (peers)",
            Self::TacitSession => "Tacit sessions",
            Self::RawQuic => "raw quinn (connection + stream)",
            Self::GrpcTls => "tonic gRPC + TLS (channels)",
            Self::JsonTls => "HTTP/1.1 + TLS (connections)",
        }
    }
}

// The targets.

/// One target of issue 7, item 3.
struct Target {
    text: &'static str,
    /// The measured figure, from a run's data; `None` if not measured.
    value: fn(&BTreeMap<String, f64>, &str) -> Option<f64>,
    limit: f64,
    /// Whether the figure must stay at or under the limit (else at or over).
    at_most: bool,
    /// How the figure is shown.
    unit: &'static str,
}

fn get(data: &BTreeMap<String, f64>, key: &str) -> Option<f64> {
    data.get(key).copied().filter(|v| v.is_finite() && *v > 0.0)
}

fn quotient(data: &BTreeMap<String, f64>, a: &str, b: &str) -> Option<f64> {
    Some(get(data, a)? / get(data, b)?)
}

const TARGETS: [Target; 8] = [
    Target {
        text: "ask p50 ≤ 1.1× raw quinn long-lived stream",
        value: |d, who| quotient(d, &format!("rtt_p50/{who}"), "rtt_p50/quinn_long_lived"),
        limit: 1.1,
        at_most: true,
        unit: "×",
    },
    Target {
        text: "ask p50 ≤ 2× blocking TCP floor",
        value: |d, who| quotient(d, &format!("rtt_p50/{who}"), "rtt_p50/tcp_blocking"),
        limit: 2.0,
        at_most: true,
        unit: "×",
    },
    Target {
        text: "ask p50 ≤ 0.4× tonic gRPC (TLS)",
        value: |d, who| quotient(d, &format!("rtt_p50/{who}"), "rtt_p50/grpc_tls"),
        limit: 0.4,
        at_most: true,
        unit: "×",
    },
    Target {
        text: "ask p50 ≤ 0.9× HTTP/1.1 JSON-RPC (TLS)",
        value: |d, who| quotient(d, &format!("rtt_p50/{who}"), "rtt_p50/jsonrpc_tls"),
        limit: 0.9,
        at_most: true,
        unit: "×",
    },
    Target {
        text: "throughput, 64 in flight on one connection, ≥ 0.8× raw quinn long-lived stream",
        value: |d, who| quotient(d, &format!("tput/{who}"), "tput/quinn_long_lived"),
        limit: 0.8,
        at_most: false,
        unit: "×",
    },
    Target {
        text: "envelope decode ≤ 0.15× full prost decode, 0 allocations",
        value: |d, _| {
            let ratio = quotient(d, "decode_ns/tacit_envelope", "decode_ns/prost")?;
            // Any allocation misses the target outright.
            Some(if d.get("decode_allocs/tacit_envelope").copied().unwrap_or(1.0) > 0.0 {
                f64::INFINITY
            } else {
                ratio
            })
        },
        limit: 0.15,
        at_most: true,
        unit: "×",
    },
    Target {
        text: "connect + negotiate + first ask ≤ 1.15× raw quinn connect + first request",
        value: |d, who| quotient(d, &format!("connect_p50/{who}"), "connect_p50/quinn_long_lived"),
        limit: 1.15,
        at_most: true,
        unit: "×",
    },
    Target {
        text: "10,000 idle sessions ≤ 512 MiB RSS (both ends in one process)",
        value: |d, who| {
            let case = if who == "tacit_agent" { "tacit-agent" } else { "tacit-session" };
            get(d, &format!("idle_rss/{case}/10000")).map(|bytes| bytes / (1024.0 * 1024.0))
        },
        limit: 512.0,
        at_most: true,
        unit: " MiB",
    },
];

fn show(value: Option<f64>, unit: &str) -> String {
    match value {
        Some(v) if v.is_infinite() => "allocates".to_owned(),
        Some(v) if unit == "×" => format!("{v:.2}×"),
        Some(v) => format!("{v:.0}{unit}"),
        None => "–".to_owned(),
    }
}

/// The targets table over the runs given (oldest first).
fn targets_table(runs: &[&BTreeMap<String, f64>]) -> String {
    let mut out = String::new();
    let headers: Vec<String> = (1..=runs.len()).map(|i| format!("run {i}: agent (session)")).collect();
    let _ = writeln!(out, "| target | {} | result |", headers.join(" | "));
    let _ = writeln!(out, "|---|{}---|", "---:|".repeat(runs.len()));
    for target in &TARGETS {
        let mut cells = Vec::new();
        let mut met_all = true;
        let mut worst: Option<f64> = None;
        for data in runs {
            let agent = (target.value)(data, "tacit_agent");
            let session = (target.value)(data, "tacit_session");
            cells.push(format!("{} ({})", show(agent, target.unit), show(session, target.unit)));
            let met = agent.is_some_and(|v| if target.at_most { v <= target.limit } else { v >= target.limit });
            met_all &= met;
            if let Some(v) = agent.filter(|_| !met) {
                let distance = if target.at_most { v - target.limit } else { target.limit - v };
                worst = Some(worst.map_or(distance, |w: f64| w.max(distance)));
            }
        }
        let result = if met_all {
            "**met**".to_owned()
        } else {
            match worst {
                Some(d) if d.is_infinite() => "**missed**: the envelope decode allocates".to_owned(),
                Some(d) => format!("**missed** by up to {}", show(Some(d), target.unit)),
                None => "not measured".to_owned(),
            }
        };
        let _ = writeln!(out, "| {} | {} | {result} |", target.text, cells.join(" | "));
    }
    out
}

/// The data of a run block.
fn parse_data(block: &str) -> Option<BTreeMap<String, f64>> {
    let start = block.find(DATA)? + DATA.len();
    let end = block[start..].find(" -->")? + start;
    serde_json::from_str(&block[start..end]).ok()
}

/// Rewrites the section of BENCHMARKS.md between the markers (appending it
/// if absent): the new run as the latest, the previous latest kept as the
/// run before, and the targets judged on both.
pub(crate) fn write_benchmarks_md(results: &Results, run_block: &str) -> std::io::Result<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../BENCHMARKS.md");
    let text = std::fs::read_to_string(&path)?;
    std::fs::write(&path, rewrite(&text, &results.data(), run_block))?;
    Ok(path)
}

/// `text` with the section replaced (or appended): `run_block` (whose data
/// is `new_data`) as the latest run, the latest run of the old section as the
/// run before.
fn rewrite(text: &str, new_data: &BTreeMap<String, f64>, run_block: &str) -> String {
    let (before, section, after) = match (text.find(BEGIN), text.find(END)) {
        (Some(begin), Some(end)) if begin < end => {
            (&text[..begin], &text[begin + BEGIN.len()..end], &text[end + END.len()..])
        }
        _ => (text, "", "\n"),
    };
    let previous = section.find(RUN_BEGIN).and_then(|start| {
        let end = section[start..].find(RUN_END)? + start + RUN_END.len();
        Some(section[start..end].to_owned())
    });
    let previous_data = previous.as_deref().and_then(parse_data);
    let mut runs: Vec<&BTreeMap<String, f64>> = previous_data.iter().collect();
    runs.push(new_data);

    let mut out = String::new();
    out.push_str(before.trim_end());
    let _ = write!(out, "\n\n{BEGIN}\n");
    out.push_str(&section_text(&runs, run_block, previous.as_deref()));
    let _ = write!(out, "{END}\n{}", after.trim_start_matches('\n'));
    out
}

/// The whole section, from its heading.
fn section_text(runs: &[&BTreeMap<String, f64>], latest: &str, previous: Option<&str>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## Side by side: Tacit, gRPC, HTTP/JSON, raw QUIC, TCP\n");
    let _ = writeln!(
        out,
        "Written by the comparison harness (`benches/src/bin/compare/`), which replaces everything between the \
         `compare:begin` / `compare:end` markers and keeps the run before the latest. Command (both runs):\n"
    );
    let _ = writeln!(out, "```sh\n{COMMAND}\n```\n");
    out.push_str(SETUP);
    let _ = writeln!(
        out,
        "\n### Targets of issue 7 (item 3)\n\nThe ask is the typed agent-API ask; the session-level ask in \
         parentheses. Ratios of p50s and rates from the same run; \"missed by\" is the largest distance over the \
         runs shown.\n"
    );
    out.push_str(&targets_table(runs));
    let _ = writeln!(out, "\n### Latest run\n");
    out.push_str(latest);
    if let Some(previous) = previous {
        let _ = writeln!(out, "\n### The run before\n");
        out.push_str(previous.trim_end());
        out.push('\n');
    }
    out
}

const SETUP: &str = "\
Setup: one process; every client and server over 127.0.0.1; all async cases on one current-thread tokio runtime
(pinned to one core: a cross-core wake-up on this VM costs more than a round trip). The reference request carries
ids, a 16-character conversation id, five 22–24 character strings and a 128-byte blob; the answer is 2 bytes.

- **Tacit agent API**: `peer.ask(ReserveSlot { .. })` with `ReserveSlot` and `Ack` generated by tacit-build from
  `proto/tacit/bench/v1/reference.proto`; the server's typed handler answers `Ack { ok: true }`. Each request is
  built per call (a clone of a template). `TransportLimits` defaults but no keep-alive and a one-day idle timeout
  (the raw baseline has neither) and many connections per peer.
- **Tacit session**: `tacit_quic::Session::ask` with the encoded `ReserveSlot` (258 bytes); a handler task per
  session replies with the encoded `Ack`.
- **raw quinn**: TLS 1.3 (ring, Ed25519 certificates both ways), the reference envelope as a 326-byte frame, a
  3-byte ack frame; the server counts frames without decoding them. Long-lived: one bidirectional stream; stream
  per message: a new stream per request.
- **blocking TCP**: `std::net`, the client on the main thread, server threads; the same frames; `TCP_NODELAY`; no
  TLS. At 64 in flight, requests go out in one write per batch of acks read.
- **tonic gRPC**: unary `FlatRequest` (354 bytes, prost) → `Ack`; tonic's `Server` (no router) and a `Channel`,
  hand-written as tonic-build generates them; TLS 1.3 through tokio-rustls with the same certificates, or h2c.
- **JSON-RPC**: HTTP/1.1 `POST` of a JSON-RPC 2.0 request carrying `FlatRequest`'s fields (byte strings in base64;
  about 560 bytes), answered `{\"result\":{\"ok\":true}}`; hyper 1 server and connection-level client, keep-alive,
  serde_json with owned strings; TLS 1.3 as above, or plain.
- **As users run it** (issue 12, finding 9): the Tacit, raw quinn long-lived, gRPC and JSON-RPC round trips again,
  in a child process that widens its CPU affinity to every CPU (not pinned, whatever `taskset` the harness runs
  under), on tokio's default multi-thread runtime (worker threads = cores): the servers on one runtime, the clients
  on another, as a server process and a client process would have, each ask awaited from `block_on` as in
  `#[tokio::main]`. Two more flavours for the wake-up analysis: the same with the ask loop in a spawned task, and
  two current-thread runtimes (client on the asking thread, server on its own). The runtimes' threads are named so
  their context switches can be told apart; otherwise they are `#[tokio::main]`'s.

Ratios are to the Tacit agent API row (\"× Tacit\" above 1 means more time or more messages than Tacit).
";

/// Date, commit and machine, read at run time.
struct Meta {
    date: String,
    commit: String,
    dirty: bool,
    machine: String,
}

impl Meta {
    fn read() -> Self {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let git = |args: &[&str]| {
            std::process::Command::new("git")
                .arg("-C")
                .arg(&root)
                .args(args)
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        };
        let commit = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".to_owned());
        let dirty = git(&["status", "--porcelain", "--untracked-files=no", "--", "crates", "benches", "Cargo.lock"])
            .is_some_and(|s| !s.is_empty());
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, m)| m.trim()))
            .unwrap_or("unknown CPU")
            .to_owned();
        let cpus = cpuinfo.lines().filter(|l| l.starts_with("processor")).count();
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let allowed =
            status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).map(str::trim).unwrap_or("?").to_owned();
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_owned();
        let rustc = std::process::Command::new("rustc")
            .arg("--version")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        let machine = format!(
            "{model}, {cpus} CPUs (shared VM), this run allowed on CPU {allowed}, Linux {kernel}, {rustc}, {} profile",
            if cfg!(debug_assertions) { "debug" } else { "release" }
        );
        Self { date: today(), commit, dirty, machine }
    }
}

/// Today's date (UTC), as YYYY-MM-DD.
fn today() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    // Days to civil date (Howard Hinnant's algorithm).
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(p50: f64) -> (BTreeMap<String, f64>, String) {
        let data: BTreeMap<String, f64> =
            [("rtt_p50/tacit_agent".to_owned(), p50), ("rtt_p50/quinn_long_lived".to_owned(), 20.0)].into();
        let json = serde_json::to_string(&data).unwrap();
        (data, format!("{RUN_BEGIN}\nrun {p50}\n{DATA}{json} -->\n{RUN_END}\n"))
    }

    #[test]
    fn the_section_keeps_the_run_before_and_judges_both() {
        let text = "# Benchmarks\n\nintro\n";
        let (data, first) = block(21.0);
        let once = rewrite(text, &data, &first);
        assert!(once.starts_with("# Benchmarks\n\nintro\n\n<!-- compare:begin -->\n"));
        assert!(once.ends_with("<!-- compare:end -->\n"));
        assert!(once.contains("| ask p50 ≤ 1.1× raw quinn long-lived stream | 1.05× (–) | **met** |"));

        let (data, second) = block(23.0);
        let twice = rewrite(&once, &data, &second);
        assert_eq!(twice.matches(BEGIN).count(), 1);
        assert!(twice.contains("run 23\n") && twice.contains("run 21\n"));
        assert!(twice.find("run 23\n") < twice.find("run 21\n"), "the latest run comes first");
        assert!(twice.contains("| 1.05× (–) | 1.15× (–) | **missed** by up to 0.05× |"), "{twice}");

        let (data, third) = block(22.0);
        let thrice = rewrite(&twice, &data, &third);
        assert!(!thrice.contains("run 21\n"), "only two runs are kept");
        assert!(thrice.starts_with("# Benchmarks\n\nintro\n\n<!-- compare:begin -->"));
    }

    #[test]
    fn numbers() {
        assert_eq!(thousands(1_234_567.8), "1,234,568");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(ratio(30.0, 20.0), "1.50");
        assert_eq!(ratio(30.0, 0.0), "–");
        assert_eq!(today().len(), 10);
        let latency = Latency::of((1..=100).map(Duration::from_micros).collect());
        assert_eq!((latency.p50, latency.p99), (50.0, 99.0));
    }
}
