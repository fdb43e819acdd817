"""Python agents with Rust agents, over QUIC on 127.0.0.1: the `tacit` CLI and
the `echo-client` binary ask a Python agent, a Python agent asks the Rust
`echo-server`, a Python buyer trades with Rust `marketplace seller`
processes (and examples/python/buyer.py does), and a Peer gets its server
back after a restart on the same port with the same key.

Needs the workspace binaries: ``cargo build -p tacit-cli -p tacit-examples``.
Every child process is stopped in a ``finally``; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pathlib
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from conftest import ROOT, rust_binary
from echo.v1.echo_pb2 import Echo, Echoed
from market.v1.market_pb2 import AcceptQuote, NotCarried, OrderConfirmed, OutOfStock, OverMaxPrice, Quote, RequestQuote

import tacit
from tacit import Act, ErrorCode

pytestmark = pytest.mark.timeout(90)

BUYER_EXAMPLE = ROOT / "examples" / "python" / "buyer.py"


# Child processes --------------------------------------------------------------


@dataclass
class Child:
    """A Rust agent started as a child process, which printed
    ``listening on ADDR as AGENT_ID`` first."""

    proc: asyncio.subprocess.Process
    addr: str
    id: str
    banner: list[str] = field(default_factory=list)

    @property
    def spec(self) -> str:
        return f"{self.addr}@{self.id}"


async def start_agent(*argv: str | os.PathLike[str], timeout: float = 15.0) -> Child:
    """Starts ``argv`` and waits (at most ``timeout``) for its ``listening on`` line."""
    proc = await asyncio.create_subprocess_exec(
        *[os.fspath(arg) for arg in argv], stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), timeout)).decode()
        words = line.split()
        if words[:2] != ["listening", "on"] or len(words) != 5:
            raise AssertionError(f"{argv[0]} printed {line!r}, not `listening on ADDR as ID`")
        return Child(proc, words[2], words[4], [line])
    except BaseException:
        await stop(proc)
        raise


async def stop(proc: asyncio.subprocess.Process, timeout: float = 10.0) -> str:
    """SIGTERM (a graceful shutdown), SIGKILL if it lingers; returns the rest of its stdout."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        out, _ = await proc.communicate()
    return out.decode(errors="replace") if out else ""


@contextlib.asynccontextmanager
async def running(*argv: str | os.PathLike[str]) -> AsyncIterator[Child]:
    child = await start_agent(*argv)
    try:
        yield child
    finally:
        child.banner.append(await stop(child.proc))


async def run(*argv: str | os.PathLike[str], timeout: float = 30.0, stdin: bytes | None = None) -> tuple[int, str, str]:
    """Runs a command to its end without blocking the loop (the Python agents
    of the test answer on it meanwhile); kills it after ``timeout``."""
    proc = await asyncio.create_subprocess_exec(
        *[os.fspath(arg) for arg in argv],
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.communicate()
        raise AssertionError(f"{' '.join(map(str, argv))} did not end within {timeout} s") from None
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def tacit_cli() -> pathlib.Path:
    return rust_binary("tacit")


async def keygen(path: pathlib.Path) -> str:
    """A key file made by `tacit keygen`; returns its AgentId."""
    rc, out, err = await run(tacit_cli(), "keygen", "--out", path)
    assert rc == 0, err
    return out.strip()


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def echo_agent(name: str = "py-echo", **options: object) -> tuple[tacit.Agent, list[str]]:
    """A Python agent answering Echo (numbering the echoes); the list gets the
    AgentId of each asker."""
    agent = tacit.Agent(name, **options)  # type: ignore[arg-type]
    askers: list[str] = []

    @agent.on_ask(Echo)
    async def echo(ctx: tacit.Context, message: Echo) -> Echoed:
        askers.append(ctx.peer_id)
        if message.text == "refuse me":
            raise tacit.Rejected.refuse("asked to refuse")
        return Echoed(text=message.text, sent_at_micros=message.sent_at_micros, echo_number=len(askers))

    return agent, askers


# 1. Rust → Python -----------------------------------------------------------


async def test_tacit_cli_and_echo_client_ask_a_python_agent(tmp_path: pathlib.Path) -> None:
    agent, askers = echo_agent()
    async with agent:
        cli = tacit_cli()
        rc, out, err = await run(
            cli, "ask", agent.addr, "echo.v1.Echo", '{"text": "from the cli", "sentAtMicros": "42"}',
            "--expect", agent.id,
        )
        assert rc == 0, err
        assert json.loads(out) == {"text": "from the cli", "sent_at_micros": "42", "echo_number": "1"}

        # With a key file: the handler sees the CLI's AgentId, proven by TLS.
        cli_id = await keygen(tmp_path / "cli.key")
        rc, out, err = await run(cli, "ask", agent.addr, "Echo", '{"text": "keyed"}', "--key", tmp_path / "cli.key")
        assert rc == 0, err
        assert json.loads(out)["text"] == "keyed"
        assert askers[-1] == cli_id

        # The JSON comes on stdin too; a refusal is exit 7 with the code shown.
        rc, out, err = await run(cli, "ask", agent.addr, "Echo", "-", stdin=b'{"text": "refuse me"}')
        assert rc == 7, (rc, out, err)
        assert "DECLINED" in err and "asked to refuse" in err
        # Another AgentId than the agent's: exit 4, and nothing asked.
        asked = len(askers)
        rc, _, err = await run(cli, "ask", agent.addr, "Echo", "{}", "--expect", cli_id)
        assert rc == 4, err
        assert len(askers) == asked

        # The Rust example client, 20 asks one after another.
        echo_client = rust_binary("echo-client")
        rc, out, err = await run(echo_client, "--addr", agent.addr, "--expect", agent.id, "-n", "20", "from rust")
        assert rc == 0, err
        assert f'as agent {agent.id} ("py-echo")' in out
        assert 'reply 1: "from rust"' in out and "20 echoes in" in out
        assert len(askers) == asked + 20
        assert len(set(askers[-20:])) == 1 and askers[-1] not in (cli_id, agent.id)


# 2. Python → Rust -----------------------------------------------------------


async def test_python_agent_asks_the_rust_echo_server() -> None:
    async with running(rust_binary("echo-server")) as server, tacit.Agent("py-client") as client:
        async with await client.connect(server.addr, server.id) as peer:
            assert peer.id == server.id
            assert peer.card is not None and peer.card.name == "echo-server"
            assert "echo.v1.Echo" in {offer.name for offer in await peer.offers() if offer.handles}
            first = await peer.ask(Echo(text="héllo ✓", sent_at_micros=7), timeout=5)
            assert isinstance(first, Echoed)
            assert (first.text, first.sent_at_micros, first.echo_number) == ("héllo ✓", 7, 1)
            asks = (peer.ask(Echo(text=str(i), sent_at_micros=i), timeout=5) for i in range(50))
            replies = await asyncio.gather(*asks)
            assert [(r.text, r.sent_at_micros) for r in replies] == [(str(i), i) for i in range(50)]
            assert sorted(r.echo_number for r in replies) == list(range(2, 52))
            pong = await peer.ask(tacit.intents.Ping(nonce=99), timeout=5)
            assert pong.nonce == 99
        # The wrong AgentId: the TLS handshake fails.
        someone_else = client.id
        with pytest.raises(tacit.IdentityMismatch):
            wrong = await client.connect(server.addr, someone_else)
            await asyncio.wait_for(wrong.ask(Echo(text="x"), timeout=5), 10)
    assert "answered 51 echoes" in server.banner[-1]


# 3. Python buyer ↔ Rust marketplace sellers ---------------------------------


@dataclass
class Market:
    key: str
    key_file: pathlib.Path
    sellers: list[Child]


@contextlib.asynccontextmanager
async def market(tmp_path: pathlib.Path, profiles: tuple[int, ...] = (0, 1, 2)) -> AsyncIterator[Market]:
    """A market organisation key (`tacit org keygen`) and one `marketplace
    seller` per profile, serving only buyers it credentialed."""
    key_file = tmp_path / "market.key"
    rc, out, err = await run(tacit_cli(), "org", "keygen", "--out", key_file)
    assert rc == 0, err
    key = out.strip()
    sellers: list[Child] = []
    try:
        for profile in profiles:
            sellers.append(
                await start_agent(rust_binary("marketplace"), "seller", "--profile", str(profile), "--market", key)
            )
        yield Market(key, key_file, sellers)
    finally:
        outputs = await asyncio.gather(*(stop(seller.proc) for seller in sellers))
        for seller, output in zip(sellers, outputs):
            seller.banner.append(output)


def account(seller: Child) -> tuple[str, str]:
    """The account a stopped seller printed: ``(name, line)``, the line
    ``seller NAME: N calls, ..., N signed awards kept``."""
    for line in "".join(seller.banner).splitlines():
        if line.startswith("seller ") and " calls, " in line:
            name, _, _ = line.removeprefix("seller ").partition(":")
            return name, line
    raise AssertionError(f"no account in {seller.banner}")


async def credential(org_key: pathlib.Path, subject: str, path: pathlib.Path, *roles: str) -> pathlib.Path:
    """A credential for ``subject`` signed by ``org_key`` (`tacit org issue`)."""
    args: list[str | os.PathLike[str]] = ["org", "issue", "--org-key", org_key, "--subject", subject, "--expires", "1h"]
    for role in roles:
        args += ["--role", role]
    rc, _, err = await run(tacit_cli(), *args, "--out", path)
    assert rc == 0, err
    return path


async def credentialed_buyer(tmp_path: pathlib.Path, m: Market) -> tuple[pathlib.Path, pathlib.Path, str]:
    """A buyer key file and its market credential (role buyer): ``(key, credential, AgentId)``."""
    buyer_id = await keygen(tmp_path / "buyer.key")
    cred = await credential(m.key_file, buyer_id, tmp_path / "buyer.cred", "buyer")
    return tmp_path / "buyer.key", cred, buyer_id


async def test_python_buyer_trades_with_rust_sellers(tmp_path: pathlib.Path) -> None:
    tacit.register_detail(OutOfStock, OverMaxPrice, NotCarried)
    async with market(tmp_path) as m:
        key, cred, buyer_id = await credentialed_buyer(tmp_path, m)
        buyer = tacit.Agent("py-buyer", roles=["buyer"], key_file=key, credentials=[cred])
        buyer.emits(RequestQuote, AcceptQuote)
        async with buyer:
            assert buyer.id == buyer_id
            peers = [await buyer.connect(s.addr, s.id) for s in m.sellers]
            for peer in peers:
                await asyncio.wait_for(peer.offers(), 10)
            assert sorted(p.card.name for p in peers if p.card) == ["acme", "bolt", "crate"]
            contract_net = tacit.ContractNet(peers, deadline=3.0)

            # A round: three quotes, the cheapest wins with a signed award.
            request = RequestQuote(item="gear", quantity=3, max_price_cents=100_000)
            started = time.perf_counter()
            round_ = await contract_net.call_for_proposals(request)
            assert round_.declined == []
            assert len(round_.proposals) == 3
            assert all(isinstance(b.proposal, Quote) and b.proposal.price_cents > 0 for b in round_.proposals)
            best = round_.best_by(lambda q: (q.price_cents, q.delivery_days))
            assert best is not None
            winner, quote = round_.proposals[best].peer, round_.proposals[best].proposal
            acceptance = AcceptQuote(item="gear", quantity=3, price_cents=quote.price_cents)
            reply = await round_.award(best, acceptance, "another quote was better", signed=True)
            print(f"\ncontract-net round with 3 Rust sellers: {(time.perf_counter() - started) * 1000:.1f} ms")
            assert isinstance(reply, tacit.Reply) and reply.act == Act.INFORM
            order = reply.message
            assert isinstance(order, OrderConfirmed)
            assert (order.seller, order.item, order.quantity, order.price_cents) == (
                quote.seller,
                "gear",
                3,
                quote.price_cents,
            )
            # The seller's signed confirmation: `tacit verify` checks it offline.
            assert reply.receipt
            (tmp_path / "order.receipt").write_bytes(reply.receipt)
            rc, out, err = await run(tacit_cli(), "verify", tmp_path / "order.receipt")
            assert rc == 0, err
            fields = dict(line.split(None, 1) for line in out.splitlines() if " " in line.strip())
            assert fields["sender"].strip() == winner.id and fields["receiver"].strip() == buyer_id
            assert fields["act"].strip() == "INFORM" and out.rstrip().endswith("OK")

            # An unsigned award: the sellers' policy wants it signed.
            round_ = await contract_net.call_for_proposals(
                RequestQuote(item="widget", quantity=2, max_price_cents=100_000)
            )
            assert len(round_.proposals) == 3
            cheapest = round_.best_by(lambda q: q.price_cents)
            assert cheapest is not None
            price = round_.proposals[cheapest].proposal.price_cents
            with pytest.raises(tacit.Rejected) as refused:
                await round_.award(cheapest, AcceptQuote(item="widget", quantity=2, price_cents=price), "no")
            assert refused.value.code == ErrorCode.SIGNATURE_REQUIRED

            # What no seller carries: three refusals with the typed detail.
            round_ = await contract_net.call_for_proposals(
                RequestQuote(item="unobtanium", quantity=1, max_price_cents=1)
            )
            assert round_.proposals == []
            assert len(round_.declined) == 3
            for _, error in round_.declined:
                assert isinstance(error, tacit.Rejected), error
                assert (error.act, error.code) == (Act.REFUSE, ErrorCode.DECLINED)
                assert isinstance(error.detail, NotCarried) and error.detail.item == "unobtanium"
            for peer in peers:
                peer.close()
    # The winner kept the buyer's signed award (its account, printed at exit).
    accounts = dict(account(s) for s in m.sellers)
    assert "1 orders" in accounts[order.seller] and "1 signed awards kept" in accounts[order.seller], accounts


async def test_buyer_without_credential_is_refused(tmp_path: pathlib.Path) -> None:
    async with market(tmp_path) as m:
        # No credential: every seller refuses the session (POLICY_DENIED).
        async with tacit.Agent("intruder") as intruder:
            for seller in m.sellers:
                peer = await intruder.connect(seller.addr, seller.id)
                with pytest.raises(tacit.ConnectionLost) as lost:
                    await asyncio.wait_for(peer.offers(), 10)
                assert lost.value.code == ErrorCode.POLICY_DENIED, lost.value
            # A round straight after dialing (asks may leave before the
            # handshake ends): no quote, each declined with POLICY_DENIED.
            peers = [await intruder.connect(s.addr, s.id) for s in m.sellers]
            round_ = await tacit.ContractNet(peers, 3.0).call_for_proposals(
                RequestQuote(item="gear", quantity=1, max_price_cents=100_000)
            )
            assert round_.proposals == []
            assert sorted(agent_id for agent_id, _ in round_.declined) == sorted(s.id for s in m.sellers)
            for _, error in round_.declined:
                assert isinstance(error, (tacit.ConnectionLost, tacit.Rejected)), error
                assert error.code == ErrorCode.POLICY_DENIED, error
        # A credential from another organisation: not trusted.
        other_org = tmp_path / "other.key"
        rc, _, err = await run(tacit_cli(), "org", "keygen", "--out", other_org)
        assert rc == 0, err
        stranger_id = await keygen(tmp_path / "stranger.key")
        cred = await credential(other_org, stranger_id, tmp_path / "stranger.cred", "buyer")
        async with tacit.Agent("stranger", key_file=tmp_path / "stranger.key", credentials=[cred]) as stranger:
            peer = await stranger.connect(m.sellers[0].addr, m.sellers[0].id)
            with pytest.raises(tacit.TacitError) as untrusted:
                await peer.ask(RequestQuote(item="gear", quantity=1, max_price_cents=100_000), timeout=5)
            error = untrusted.value
            print(f"\nforeign credential: {type(error).__name__} {error.code.name}: {error}")
            assert error.code in (ErrorCode.UNTRUSTED_ORGANISATION, ErrorCode.POLICY_DENIED)
    for seller in m.sellers:
        assert " 0 calls, " in account(seller)[1], seller.banner


async def test_buyer_example_against_rust_sellers(tmp_path: pathlib.Path) -> None:
    async with market(tmp_path) as m:
        key, cred, buyer_id = await credentialed_buyer(tmp_path, m)
        sellers = [arg for s in m.sellers for arg in ("--seller", s.spec)]
        receipt = tmp_path / "confirmation.receipt"
        rc, out, err = await run(
            sys.executable, BUYER_EXAMPLE, "--key", key, "--credential", cred, *sellers, "--receipt", receipt,
            timeout=60,
        )
        assert rc == 0, (out, err)
        assert f"buyer {buyer_id}" in out
        assert out.count("  quote  ") == 3
        assert "order #1 from " in out and "3 x gear" in out
        rc, verified, err = await run(tacit_cli(), "verify", receipt)
        assert rc == 0 and verified.rstrip().endswith("OK"), (verified, err)
        # Without the credential: no quote, no order, exit 1.
        rc, out, err = await run(sys.executable, BUYER_EXAMPLE, *sellers, timeout=60)
        assert rc == 1, (out, err)
        assert "no quote" in out and "POLICY_DENIED" in out
    assert sum("1 signed awards kept" in account(s)[1] for s in m.sellers) == 1


# 4. Reconnect after the server restarts ---------------------------------------


ServerFactory = Callable[[int, pathlib.Path], Awaitable[tuple[str, Callable[[], Awaitable[None]]]]]


async def python_server(port: int, key: pathlib.Path) -> tuple[str, Callable[[], Awaitable[None]]]:
    """A Python echo agent on ``port`` with ``key``; stopped by Agent.close."""
    agent, _ = echo_agent("py-echo", key_file=key, listen=("127.0.0.1", port))
    await agent.start()
    return agent.id, lambda: agent.close(0.2)


async def rust_server(port: int, key: pathlib.Path) -> tuple[str, Callable[[], Awaitable[None]]]:
    """The Rust echo-server on ``port`` with ``key``; stopped by SIGTERM (it
    closes its sessions)."""
    child = await start_agent(rust_binary("echo-server"), "--addr", f"127.0.0.1:{port}", "--key", key)

    async def close() -> None:
        await stop(child.proc)

    return child.id, close


async def rust_server_killed(port: int, key: pathlib.Path) -> tuple[str, Callable[[], Awaitable[None]]]:
    """The Rust echo-server, stopped by SIGKILL: a crash, its sessions not closed."""
    child = await start_agent(rust_binary("echo-server"), "--addr", f"127.0.0.1:{port}", "--key", key)

    async def kill() -> None:
        with contextlib.suppress(ProcessLookupError):
            child.proc.kill()
        await stop(child.proc)

    return child.id, kill


@pytest.mark.parametrize("declared", [True, False], ids=["emits", "offered-on-first-use"])
@pytest.mark.parametrize(
    "server",
    [python_server, rust_server, rust_server_killed],
    ids=["python-server", "rust-server", "rust-server-killed"],
)
async def test_peer_reconnects_after_the_server_restarts(
    tmp_path: pathlib.Path, server: ServerFactory, declared: bool
) -> None:
    """The server stops (Agent.close, SIGTERM, or SIGKILL: a crash) and
    starts again on the same port with the same key: the same Peer's next
    ask, idempotent, is answered within its timeout, and so are the asks
    after it.

    ``rust-server-killed-offered-on-first-use`` fails at main 388c09a: the
    idempotent ask goes out on the dead session (where Echo was negotiated),
    the core resends it on the new session (``tacit::Peer::ask_raw``,
    idempotent retry) without offering Echo there, and the server answers
    NOT_UNDERSTOOD / INTENT_NOT_NEGOTIATED (tacit.Rejected). The offer in
    ``offer_registered`` (bindings/python/src/peer.rs) runs once, before the
    first attempt only. A typed Rust ``Peer::ask_with(Echo, idempotent)``
    fails alike (``offer_on_first_use`` also precedes the first attempt
    only): the fix belongs in crates/tacit/src/peer.rs."""
    port, key = free_udp_port(), tmp_path / "server.key"
    addr = f"127.0.0.1:{port}"
    server_id, close = await server(port, key)
    closed = False
    client = tacit.Agent("py-client")
    if declared:
        client.emits(Echo)
    try:
        async with client:
            peer = await client.connect(addr, server_id)
            assert (await peer.ask(Echo(text="before"), timeout=5)).text == "before"
            await close()
            closed = True
            with pytest.raises(tacit.TacitError) as down:
                await peer.ask(Echo(text="while down"), timeout=1)
            print(f"\nwhile the server is down: {type(down.value).__name__} {down.value.code.name}")

            restarted_id, close = await server(port, key)
            closed = False
            assert restarted_id == server_id
            started = time.perf_counter()
            answer = await peer.ask_with(Echo(text="after"), idempotent=True, timeout=8)
            elapsed = time.perf_counter() - started
            print(f"the first ask after the restart (idempotent): answered in {elapsed * 1000:.0f} ms")
            assert answer.message.text == "after"
            # And the asks after it, not idempotent.
            assert (await peer.ask(Echo(text="again"), timeout=5)).text == "again"
            assert elapsed < 8
            metrics = client.metrics()
            assert metrics["reconnects"] >= 1, metrics
    finally:
        if not closed:
            await close()


async def test_an_ask_sent_to_a_crashed_server_is_outcome_unknown(tmp_path: pathlib.Path) -> None:
    """Not idempotent, an ask on the session of a server that crashed (and
    came back: its stateless reset ends the old session) may have run: the
    Peer does not resend it, and the next ask goes on a new session."""
    port, key = free_udp_port(), tmp_path / "server.key"
    server_id, kill = await rust_server_killed(port, key)
    killed = False
    try:
        async with tacit.Agent("py-client") as client:
            peer = await client.connect(f"127.0.0.1:{port}", server_id)
            assert (await peer.ask(Echo(text="before"), timeout=5)).text == "before"
            await kill()
            killed = True
            _, kill = await rust_server_killed(port, key)
            killed = False
            with pytest.raises(tacit.OutcomeUnknown):
                await peer.ask(Echo(text="lost"), timeout=5)
            started = time.perf_counter()
            assert (await peer.ask(Echo(text="next"), timeout=5)).text == "next"
            print(f"\nthe ask after OutcomeUnknown: answered in {(time.perf_counter() - started) * 1000:.0f} ms")
    finally:
        if not killed:
            await kill()
