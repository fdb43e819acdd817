#!/usr/bin/env python3
"""Tacit in Python (tacit-agents) against grpcio and HTTP JSON-RPC, in one run.

Issue 16: what a Python agent's ask costs next to what Python programs use
today, and how much the Python layer adds over the Rust API. Every client and
server is in this process, on one asyncio event loop, over 127.0.0.1:

1. **Tacit-py**: a ``tacit.Agent`` with an ``Echo`` ask handler, asked by a
   second agent's ``peer.ask(Echo(...))`` (QUIC + TLS 1.3 in the native core).
2. **grpcio** (the C core) unary ``Echo`` over TLS: a ``grpc.aio`` server and
   channel, the service generated at run time with ``grpc_tools.protoc`` into
   a temporary directory, a self-signed certificate made for the run.
3. **HTTP JSON-RPC 2.0**: an aiohttp server and one ``httpx.AsyncClient``
   (HTTP/1.1, keep-alive), the way A2A's Python SDK talks; plain HTTP (the
   reference) and, as a second row, HTTPS with the same certificate.
4. **Rust API baseline**: the side-by-side harness (``target/release/compare
   --round-trips-only``) as a subprocess, for its Tacit agent API ask p50.

Figures: ask p50 / p99 at 1 in flight (sequential, after a warm-up), and
throughput with 64 asks in flight (64 tasks asking in turn; HTTP/1.1 cannot
pipeline, so httpx opens up to 64 keep-alive connections). Cases run in
interleaved rounds, so all see the same machine state.

    taskset -c 0 python bench.py            # pinned to one core (the reference)
    python bench.py                         # unpinned
    python bench.py --quick                 # smoke run (CI), well under 60 s
    python bench.py --json out.json         # also write the figures
    python bench.py --median a.json b.json  # medians of earlier runs' figures

Needs the native extension built (``maturin develop --release`` in
bindings/python) and the ``bench`` extra (grpcio, grpcio-tools, aiohttp,
httpx); ``cryptography`` if installed, else the ``openssl`` command, for the
certificate. The Rust baseline needs ``cargo build --release -p tacit-benches
--bin compare`` (skipped with a note if the binary is missing).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import importlib
import importlib.util
import json
import os
import pathlib
import platform
import re
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Optional

ROOT = pathlib.Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "examples" / "python"))

IN_FLIGHT = 64
# The request's text (the same bytes in every protocol); the reply echoes it.
TEXT = "the quick brown fox jumps over the lazy dog, 0123456789 abcdefgh"


@dataclass(frozen=True)
class Counts:
    warm_up_s: float
    sequential: int  # asks per case at 1 in flight, over all rounds
    pipelined: int  # asks per case at 64 in flight, over all rounds
    rounds: int
    phase_timeout_s: float

    @staticmethod
    def of(quick: bool) -> Counts:
        if quick:
            return Counts(warm_up_s=0.05, sequential=200, pipelined=640, rounds=2, phase_timeout_s=20.0)
        return Counts(warm_up_s=0.5, sequential=5000, pipelined=12800, rounds=5, phase_timeout_s=300.0)


# ---------------------------------------------------------------------------
# Cases: set up, one ask (checked), close.


class Case:
    key = ""
    label = ""
    # Of Counts.pipelined: the slowest case asks fewer (its rate is per second anyway).
    pipelined_share = 1.0

    async def setup(self, tmp: pathlib.Path, cert: Cert) -> None:
        raise NotImplementedError

    async def ask(self, i: int) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


def check(text: str, sent: int, got_text: str, got_sent: int) -> None:
    if got_text != text or got_sent != sent:
        raise AssertionError(f"wrong echo: {got_text!r}/{got_sent}, expected {text!r}/{sent}")


class TacitCase(Case):
    key = "tacit_py"
    label = "Tacit-py `peer.ask(Echo)` (QUIC + TLS 1.3)"

    async def setup(self, tmp: pathlib.Path, cert: Cert) -> None:
        import tacit
        from echo.v1.echo_pb2 import Echo, Echoed

        self.Echo = Echo
        served = 0
        server = tacit.Agent("bench-server")

        @server.on_ask(Echo)
        async def echo(ctx: tacit.Context, request: Any) -> Any:
            nonlocal served
            served += 1
            return Echoed(text=request.text, sent_at_micros=request.sent_at_micros, echo_number=served)

        client = tacit.Agent("bench-client").emits(Echo)
        await server.start()
        await client.start()
        self.server, self.client = server, client
        self.peer = await client.connect(server.addr, server.id)

    async def ask(self, i: int) -> None:
        reply = await self.peer.ask(self.Echo(text=TEXT, sent_at_micros=i), timeout=10.0)
        check(TEXT, i, reply.text, reply.sent_at_micros)

    async def close(self) -> None:
        self.peer.close()
        await self.client.close(0.5)
        await self.server.close(0.5)


PROTO = """
syntax = "proto3";
package pybench.v1;
message Echo { string text = 1; uint64 sent_at_micros = 2; }
message Echoed { string text = 1; uint64 sent_at_micros = 2; uint64 echo_number = 3; }
service EchoService { rpc Ask(Echo) returns (Echoed); }
"""


class GrpcCase(Case):
    key = "grpcio_tls"
    label = "grpcio unary `Ask(Echo)` (HTTP/2 + TLS)"

    async def setup(self, tmp: pathlib.Path, cert: Cert) -> None:
        import grpc
        from grpc_tools import protoc

        (tmp / "pybench_echo.proto").write_text(PROTO)
        # grpc_tools' own well-known protos are not needed: the file imports none.
        status = protoc.main(
            ["grpc_tools.protoc", f"-I{tmp}", f"--python_out={tmp}", f"--grpc_python_out={tmp}", str(tmp / "pybench_echo.proto")]
        )
        if status != 0:
            raise RuntimeError(f"grpc_tools.protoc failed ({status})")
        sys.path.insert(0, str(tmp))
        pb2 = importlib.import_module("pybench_echo_pb2")
        pb2_grpc = importlib.import_module("pybench_echo_pb2_grpc")
        self.pb2 = pb2
        served = 0

        class Servicer(pb2_grpc.EchoServiceServicer):  # type: ignore[misc, name-defined]
            async def Ask(self, request: Any, context: Any) -> Any:
                nonlocal served
                served += 1
                return pb2.Echoed(text=request.text, sent_at_micros=request.sent_at_micros, echo_number=served)

        self.server = grpc.aio.server()
        pb2_grpc.add_EchoServiceServicer_to_server(Servicer(), self.server)
        port = self.server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials([(cert.key, cert.cert)]))
        await self.server.start()
        credentials = grpc.ssl_channel_credentials(root_certificates=cert.cert)
        self.channel = grpc.aio.secure_channel(
            f"127.0.0.1:{port}", credentials, options=[("grpc.ssl_target_name_override", "localhost")]
        )
        await asyncio.wait_for(self.channel.channel_ready(), 10.0)
        self.stub = pb2_grpc.EchoServiceStub(self.channel)

    async def ask(self, i: int) -> None:
        reply = await self.stub.Ask(self.pb2.Echo(text=TEXT, sent_at_micros=i), timeout=10.0)
        check(TEXT, i, reply.text, reply.sent_at_micros)

    async def close(self) -> None:
        await self.channel.close()
        await self.server.stop(0.5)


class JsonRpcCase(Case):
    # httpx's pool scans its connections for every request: ~550 asks/s at 64 in flight.
    pipelined_share = 0.25

    def __init__(self, tls: bool) -> None:
        self.tls = tls
        self.key = "jsonrpc_tls" if tls else "jsonrpc_plain"
        self.label = "HTTP/1.1 JSON-RPC, aiohttp + httpx" + (" (TLS)" if tls else " (plain)")

    async def setup(self, tmp: pathlib.Path, cert: Cert) -> None:
        import httpx
        from aiohttp import web

        served = 0

        async def handle(request: web.Request) -> web.Response:
            nonlocal served
            body = await request.json()
            params = body["params"]
            served += 1
            result = {"text": params["text"], "sent_at_micros": params["sent_at_micros"], "echo_number": served}
            return web.json_response({"jsonrpc": "2.0", "id": body["id"], "result": result})

        app = web.Application()
        app.router.add_post("/", handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        server_ssl = None
        client_verify: Any = True
        if self.tls:
            server_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            server_ssl.load_cert_chain(cert.cert_file, cert.key_file)
            client_verify = ssl.create_default_context(cafile=cert.cert_file)
        site = web.TCPSite(self.runner, "127.0.0.1", 0, ssl_context=server_ssl)
        await site.start()
        port = self.runner.addresses[0][1]
        # The certificate names 127.0.0.1 too, so TLS verifies the address itself.
        self.url = f"{'https' if self.tls else 'http'}://127.0.0.1:{port}/"
        limits = httpx.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT)
        self.client = httpx.AsyncClient(http1=True, http2=False, limits=limits, verify=client_verify, timeout=10.0)

    async def ask(self, i: int) -> None:
        request = {"jsonrpc": "2.0", "id": i, "method": "echo", "params": {"text": TEXT, "sent_at_micros": i}}
        response = await self.client.post(self.url, json=request)
        response.raise_for_status()
        body = response.json()
        if body.get("id") != i:
            raise AssertionError(f"JSON-RPC id {body.get('id')}, expected {i}")
        result = body["result"]
        check(TEXT, i, result["text"], result["sent_at_micros"])

    async def close(self) -> None:
        await self.client.aclose()
        await self.runner.cleanup()


# ---------------------------------------------------------------------------
# Certificate for grpcio and HTTPS.


@dataclass
class Cert:
    cert: bytes
    key: bytes
    cert_file: str
    key_file: str
    how: str


def make_cert(tmp: pathlib.Path) -> Cert:
    """A self-signed P-256 certificate for localhost and 127.0.0.1."""
    cert_file, key_file = tmp / "cert.pem", tmp / "key.pem"
    try:
        import ipaddress

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
        now = datetime.datetime.now(datetime.timezone.utc)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
        how = "cryptography"
    except ImportError:
        subprocess.run(
            [
                "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", str(key_file), "-out", str(cert_file), "-days", "1", "-subj", "/CN=localhost",
                "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )
        how = "openssl"
    return Cert(cert_file.read_bytes(), key_file.read_bytes(), str(cert_file), str(key_file), how)


# ---------------------------------------------------------------------------
# Measurement.


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


async def warm_up(case: Case, seconds: float, counter: list[int]) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        counter[0] += 1
        await case.ask(counter[0])


async def sequential(case: Case, n: int, counter: list[int]) -> list[float]:
    """n asks one after another; each one's time in µs."""
    samples = []
    clock = time.perf_counter_ns
    for _ in range(n):
        counter[0] += 1
        i = counter[0]
        start = clock()
        await case.ask(i)
        samples.append((clock() - start) / 1000.0)
    return samples


async def pipelined(case: Case, n: int, counter: list[int]) -> float:
    """n asks, IN_FLIGHT at a time (each of IN_FLIGHT tasks asks in turn); seconds taken."""
    remaining = n

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            counter[0] += 1
            await case.ask(counter[0])

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
    return time.perf_counter() - start


async def measure(cases: list[Case], counts: Counts, tmp: pathlib.Path) -> dict[str, dict[str, float]]:
    cert = make_cert(tmp)
    print(f"bench: certificate by {cert.how}", file=sys.stderr)
    for case in cases:
        await asyncio.wait_for(case.setup(tmp, cert), 30.0)
    counters = {case.key: [0] for case in cases}
    latencies: dict[str, list[float]] = {case.key: [] for case in cases}
    elapsed = {case.key: 0.0 for case in cases}
    try:
        for case in cases:
            await asyncio.wait_for(warm_up(case, counts.warm_up_s, counters[case.key]), counts.phase_timeout_s)
            # The first pipelined burst opens httpx's connections and fills grpc's windows.
            await asyncio.wait_for(pipelined(case, 4 * IN_FLIGHT, counters[case.key]), counts.phase_timeout_s)
        per_round_seq = counts.sequential // counts.rounds
        per_round_pipe = {case.key: int(counts.pipelined * case.pipelined_share) // counts.rounds for case in cases}
        for round_ in range(counts.rounds):
            print(f"bench: round {round_ + 1}/{counts.rounds}", file=sys.stderr)
            for case in cases:
                latencies[case.key] += await asyncio.wait_for(
                    sequential(case, per_round_seq, counters[case.key]), counts.phase_timeout_s
                )
            for case in cases:
                elapsed[case.key] += await asyncio.wait_for(
                    pipelined(case, per_round_pipe[case.key], counters[case.key]), counts.phase_timeout_s
                )
    finally:
        for case in cases:
            try:
                await asyncio.wait_for(case.close(), 10.0)
            except Exception as error:  # closing is not measured; say so and go on
                print(f"bench: closing {case.key}: {error!r}", file=sys.stderr)
    figures = {}
    for case in cases:
        samples = sorted(latencies[case.key])
        figures[case.key] = {
            "p50_us": percentile(samples, 0.50),
            "p99_us": percentile(samples, 0.99),
            "asks_per_s": (per_round_pipe[case.key] * counts.rounds) / elapsed[case.key],
            "n_sequential": float(len(samples)),
            "n_pipelined": float(per_round_pipe[case.key] * counts.rounds),
        }
    return figures


# ---------------------------------------------------------------------------
# The Rust API baseline: the side-by-side harness's Tacit agent API ask.

AGENT_ROW = re.compile(r"^\| \*\*Tacit agent API\*\* `peer\.ask` \(reference\) \| ([0-9.,]+) \| ([0-9.,]+) \|", re.M)
UNPINNED_MARK = "**as users run it**"


def rust_baseline(quick: bool, binary: Optional[str]) -> dict[str, Any]:
    exe = pathlib.Path(binary) if binary else ROOT / "target" / "release" / "compare"
    if not exe.exists():
        return {"error": f"{exe} is missing (cargo build --release -p tacit-benches --bin compare)"}
    command = [str(exe), "--round-trips-only"] + (["--quick"] if quick else [])
    print(f"bench: Rust baseline: {' '.join(command)}", file=sys.stderr)
    started = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=40 if quick else 900, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"error": "the compare harness did not finish in time"}
    if done.returncode != 0:
        return {"error": f"compare exited {done.returncode}: {done.stderr.strip()[-400:]}"}
    out = done.stdout
    mark = out.find(UNPINNED_MARK)
    pinned = AGENT_ROW.search(out, 0, mark if mark >= 0 else len(out))
    unpinned = AGENT_ROW.search(out, mark) if mark >= 0 else None
    if pinned is None:
        return {"error": "no Tacit agent API row in the harness's output"}
    figures: dict[str, Any] = {
        "command": " ".join(["compare"] + command[1:]),
        "seconds": time.perf_counter() - started,
        "p50_us": float(pinned.group(1).replace(",", "")),
        "p99_us": float(pinned.group(2).replace(",", "")),
    }
    if unpinned is not None:
        figures["mt_p50_us"] = float(unpinned.group(1).replace(",", ""))
        figures["mt_p99_us"] = float(unpinned.group(2).replace(",", ""))
    return figures


# ---------------------------------------------------------------------------
# Report.

ORDER = ["tacit_py", "grpcio_tls", "jsonrpc_plain", "jsonrpc_tls"]
LABELS = {
    "tacit_py": TacitCase.label,
    "grpcio_tls": GrpcCase.label,
    "jsonrpc_plain": "HTTP/1.1 JSON-RPC, aiohttp + httpx (plain)",
    "jsonrpc_tls": "HTTP/1.1 JSON-RPC, aiohttp + httpx (TLS)",
}


def table(figures: dict[str, dict[str, float]], rust: dict[str, Any]) -> str:
    tacit = figures["tacit_py"]
    lines = [
        "| case | p50 µs | p99 µs | asks/s, 64 in flight | Tacit-py p50 ÷ case p50 | Tacit-py asks/s ÷ case asks/s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for key in ORDER:
        if key not in figures:
            continue
        f = figures[key]
        lines.append(
            f"| {LABELS[key]} | {f['p50_us']:.1f} | {f['p99_us']:.1f} | {f['asks_per_s']:,.0f} | "
            f"{tacit['p50_us'] / f['p50_us']:.2f} | {tacit['asks_per_s'] / f['asks_per_s']:.2f} |"
        )
    out = ["\n".join(lines), ""]
    g = figures.get("grpcio_tls")
    if g is not None:
        p50_ratio = tacit["p50_us"] / g["p50_us"]
        tput_ratio = tacit["asks_per_s"] / g["asks_per_s"]
        out.append(
            f"target ask p50 <= 0.5x grpcio: {p50_ratio:.2f}x -> {'met' if p50_ratio <= 0.5 else 'MISSED'}; "
            f"throughput >= 3x grpcio: {tput_ratio:.2f}x -> {'met' if tput_ratio >= 3.0 else 'MISSED'}"
        )
    if "error" in rust:
        out.append(f"Rust API baseline: not measured ({rust['error']})")
    else:
        out.append(
            f"Rust API baseline ({rust['command']}, {rust['seconds']:.0f} s): Tacit agent API ask p50 "
            f"{rust['p50_us']:.1f} µs pinned current-thread runtime"
            + (f", {rust['mt_p50_us']:.1f} µs multi-thread runtime unpinned" if "mt_p50_us" in rust else "")
        )
        out.append(
            f"overhead = Tacit-py p50 - Rust p50 = {tacit['p50_us']:.1f} - {rust['p50_us']:.1f} = "
            f"{tacit['p50_us'] - rust['p50_us']:.1f} µs (vs the pinned row)"
            + (
                f"; {tacit['p50_us']:.1f} - {rust['mt_p50_us']:.1f} = {tacit['p50_us'] - rust['mt_p50_us']:.1f} µs "
                "(vs the multi-thread row)"
                if "mt_p50_us" in rust
                else ""
            )
        )
    return "\n".join(out)


def machine() -> str:
    cpus = sorted(os.sched_getaffinity(0))
    model = ""
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{model or platform.processor()}, {os.cpu_count()} CPUs, this run on CPU(s) {','.join(map(str, cpus))}; "
        f"Linux {platform.release()}; Python {platform.python_version()}"
    )


def versions() -> str:
    from importlib import metadata

    parts = []
    for name in ["tacit-agents", "grpcio", "protobuf", "aiohttp", "httpx", "httpcore", "sniffio"]:
        try:
            parts.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{name} ?")
    return ", ".join(parts)


def medians(paths: list[str]) -> int:
    runs = [json.loads(pathlib.Path(p).read_text()) for p in paths]
    figures: dict[str, dict[str, float]] = {}
    for key in ORDER:
        per_run = [r["figures"][key] for r in runs if key in r["figures"]]
        if per_run:
            figures[key] = {m: statistics.median(f[m] for f in per_run) for m in per_run[0]}
    rust_runs = [r["rust"] for r in runs if "error" not in r["rust"]]
    rust: dict[str, Any] = {"error": "in no run"}
    if rust_runs:
        rust = {"command": rust_runs[0]["command"], "seconds": statistics.median(r["seconds"] for r in rust_runs)}
        for m in ["p50_us", "p99_us", "mt_p50_us", "mt_p99_us"]:
            values = [r[m] for r in rust_runs if m in r]
            if values:
                rust[m] = statistics.median(values)
    # Ratios per run, then their median (not the ratio of the medians).
    def ratio_median(a: str, b: str, m: str) -> str:
        values = [r["figures"][a][m] / r["figures"][b][m] for r in runs if a in r["figures"] and b in r["figures"]]
        return f"{statistics.median(values):.2f}" if values else "-"

    print(f"medians of {len(runs)} runs: {', '.join(paths)}")
    print(table(figures, rust))
    for key in ORDER[1:]:
        print(
            f"per-run ratio medians vs {key}: p50 {ratio_median('tacit_py', key, 'p50_us')}x, "
            f"asks/s {ratio_median('tacit_py', key, 'asks_per_s')}x"
        )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few iterations: a smoke run (CI), under 60 s")
    parser.add_argument("--json", metavar="PATH", help="also write the figures to PATH")
    parser.add_argument("--no-rust", action="store_true", help="skip the Rust API baseline")
    parser.add_argument("--rust-bin", metavar="PATH", help="the compare binary (default: target/release/compare)")
    parser.add_argument("--median", nargs="+", metavar="JSON", help="print the medians of earlier --json runs")
    args = parser.parse_args()
    if args.median:
        return medians(args.median)
    counts = Counts.of(args.quick)
    if importlib.util.find_spec("sniffio") is None:
        # httpcore then retries the failing import for every request (a path scan each time).
        print("bench: sniffio is not installed: httpx pays a failed import per request; pip install sniffio", file=sys.stderr)
    started = time.perf_counter()
    cases: list[Case] = [TacitCase(), GrpcCase(), JsonRpcCase(tls=False), JsonRpcCase(tls=True)]
    with tempfile.TemporaryDirectory(prefix="tacit-pybench-") as tmp:
        figures = asyncio.run(asyncio.wait_for(measure(cases, counts, pathlib.Path(tmp)), 20 * counts.phase_timeout_s))
    python_s = time.perf_counter() - started
    rust = {"error": "--no-rust"} if args.no_rust else rust_baseline(args.quick, args.rust_bin)
    print(f"Machine: {machine()}")
    print(f"Packages: {versions()}")
    print(
        f"Counts: {counts.sequential} sequential asks and {counts.pipelined} at {IN_FLIGHT} in flight per case "
        f"(JSON-RPC: {int(counts.pipelined * JsonRpcCase.pipelined_share)}), "
        f"in {counts.rounds} interleaved rounds, after {counts.warm_up_s} s warm-up; Python cases {python_s:.1f} s"
        + (" (quick)" if args.quick else "")
    )
    print(table(figures, rust))
    if args.json:
        record = {
            "machine": machine(),
            "packages": versions(),
            "quick": args.quick,
            "figures": figures,
            "rust": rust,
            "python_seconds": python_s,
        }
        pathlib.Path(args.json).write_text(json.dumps(record, indent=1))
    print(f"bench: done in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
