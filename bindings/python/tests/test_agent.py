"""The Python agent API, Python to Python over loopback: every lane, the
contract net, every error kind, deadlines, cancellation on the wire, bad input."""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import AsyncIterator

import pytest
from echo.v1.echo_pb2 import Echo, Echoed
from market.v1.market_pb2 import AcceptQuote, NotCarried, OrderConfirmed, Quote, RequestQuote

import tacit
from tacit import Act, ErrorCode
from tacit.intents import DelegateTask, GetTask, Ping, Pong, TaskStatus, TaskUpdate, TextResult, TextTask


def echo_agent(name: str = "echo", **options: object) -> tacit.Agent:
    agent = tacit.Agent(name, **options)  # type: ignore[arg-type]

    @agent.on_ask(Echo)
    async def echo(ctx: tacit.Context, message: Echo) -> Echoed:
        return Echoed(text=message.text)

    return agent


@pytest.fixture
async def client() -> AsyncIterator[tacit.Agent]:
    async with tacit.Agent("client", connect_timeout=1.0) as agent:
        yield agent


async def test_intent_ids_are_the_rust_ones() -> None:
    # The ids tacit-build generates for these messages (target/.../echo.v1.rs,
    # market.v1.rs) and that the Rust standard intents carry.
    assert tacit.intent_id(Echo) == "cab7a74c195db03e7a01b4889a63bb09f140b7176f01facbd1285dd52ac9f11a"
    assert tacit.intent_id(RequestQuote) == "8d28124a7e58747d95a3b24154d21ebdccafd6e1a81183b5000ff7378e49d361"
    t = tacit.intent_type(RequestQuote)
    assert (t.reply, t.name) == (Quote, "market.v1.RequestQuote")
    assert tacit.intent_type(TextTask).stream_item is TextResult
    assert tacit.intent_type(TaskUpdate).stream_item is None


async def test_error_codes_and_acts_match_the_core() -> None:
    assert [(c.name, c.value) for c in ErrorCode] == tacit._native.error_codes()
    assert [(a.name, a.value) for a in Act] == tacit._native.acts()


async def test_ask_tell_stream_datagram_describe(client: tacit.Agent) -> None:
    told: asyncio.Queue[GetTask] = asyncio.Queue()
    server = echo_agent(description="echoes", roles=["demo"])

    @server.on_tell(GetTask)
    async def on_get(ctx: tacit.Context, message: GetTask) -> None:
        await told.put(message)

    @server.on_stream(TaskUpdate, item=TaskStatus)
    async def updates(ctx: tacit.Context, opening: TaskUpdate, stream: tacit.Stream[TaskStatus, TaskStatus]) -> None:
        for n in range(3):
            await stream.send(TaskStatus(task_id=opening.status.task_id, message=str(n)))

    async with server:
        assert repr(server).startswith("<tacit Agent 'echo' ")
        async with await client.connect(server.addr, server.id) as peer:
            assert peer.id == server.id and peer.id in repr(peer)
            assert peer.card == tacit.Card("echo", "echoes", ("demo",))
            reply = await peer.ask(Echo(text="hi"))
            assert isinstance(reply, Echoed) and reply.text == "hi"
            # Standard intents every agent answers.
            pong = await peer.ask(Ping(nonce=7))
            assert isinstance(pong, Pong) and pong.nonce == 7
            await peer.tell(GetTask(task_id="t1"))
            await peer.datagram(GetTask(task_id="t2"))
            got = {(await asyncio.wait_for(told.get(), 5)).task_id for _ in range(2)}
            assert got == {"t1", "t2"}
            stream = await peer.stream(TaskUpdate(status=TaskStatus(task_id="s")), item=TaskStatus)
            items = [item.message async for item in stream]
            assert items == ["0", "1", "2"]
            # Schema fetch: a class built from the peer's descriptors.
            schema = await peer.describe("echo.v1.Echo")
            assert schema.id == tacit.intent_id(Echo)
            decoded = schema.decode(Echo(text="dyn").SerializeToString())
            assert type(decoded) is not Echo and decoded.text == "dyn"  # type: ignore[attr-defined]
            offers = {offer.name: offer for offer in await peer.offers()}
            assert offers["echo.v1.Echo"].lanes == ("ask",)
            assert offers["echo.v1.Echo"].reply_id == tacit.intent_id(Echoed)
        metrics = server.metrics()
        assert metrics["asks_received"] >= 2 and metrics["tells_received"] >= 2


async def test_context_and_reply_acts(client: tacit.Agent) -> None:
    seen: list[tacit.Context] = []
    server = tacit.Agent("ctx")

    @server.on_ask(Echo)
    async def echo(ctx: tacit.Context, message: Echo) -> tacit.Reply[Echoed]:
        seen.append(ctx)
        return tacit.Reply(Echoed(text=message.text), act=Act.AGREE)

    async with server:
        peer = await client.connect(server.addr, server.id)
        conversation = peer.conversation()
        answer = await conversation.ask(Echo(text="a"), timeout=5)
        assert answer.act == Act.AGREE and answer.message.text == "a"
        ctx = seen[0]
        assert ctx.peer_id == client.id
        assert ctx.intent_name == "echo.v1.Echo" and ctx.act == Act.REQUEST
        assert ctx.conversation_id == conversation.id
        assert ctx.remaining is not None and 0 < ctx.remaining <= 5
        assert "echo.v1.Echo" in repr(ctx)


async def test_contract_net(client: tacit.Agent) -> None:
    def seller(price: int, carries: bool) -> tacit.Agent:
        agent = tacit.Agent(f"seller-{price}")

        @agent.on_ask(RequestQuote)
        async def quote(ctx: tacit.Context, request: RequestQuote) -> Quote:
            assert ctx.act == Act.CFP
            if not carries:
                raise tacit.Rejected.refuse("not carried", detail=NotCarried(item=request.item))
            return Quote(price_cents=price, seller=f"seller-{price}", in_stock=request.quantity)

        @agent.on_ask(AcceptQuote)
        async def accept(ctx: tacit.Context, request: AcceptQuote) -> OrderConfirmed:
            assert ctx.act == Act.ACCEPT
            return OrderConfirmed(order_id=price, item=request.item)

        return agent

    sellers = [seller(300, True), seller(200, True), seller(100, False)]
    for s in sellers:
        await s.start()
    try:
        peers = [await client.connect(s.addr, s.id) for s in sellers]
        round_ = await tacit.ContractNet(peers, deadline=5).call_for_proposals(RequestQuote(item="gpu", quantity=2))
        assert len(round_.proposals) == 2 and len(round_.declined) == 1
        refused = round_.declined[0][1]
        assert isinstance(refused, tacit.Rejected) and refused.code == ErrorCode.DECLINED
        assert isinstance(refused.detail, NotCarried) and refused.detail.item == "gpu"
        best = round_.best_by(lambda q: q.price_cents)
        assert best is not None and round_.proposals[best].proposal.price_cents == 200
        order = await round_.award(best, AcceptQuote(item="gpu"), "cheaper elsewhere")
        assert (order.order_id, order.item) == (200, "gpu")
    finally:
        for s in sellers:
            await s.close()


async def test_error_kinds(client: tacit.Agent, tmp_path: pathlib.Path) -> None:
    survived = asyncio.Event()
    server = tacit.Agent("errors", max_message_len=64 * 1024)

    @server.on_ask(Echo)
    async def echo(ctx: tacit.Context, message: Echo) -> Echoed:
        if message.text == "boom":
            raise RuntimeError("the handler broke")
        if message.text == "wrong":
            return Quote()  # type: ignore[return-value]
        if message.text == "slow":
            await asyncio.sleep(10)
        survived.set()
        return Echoed(text=message.text)

    async with server:
        peer = await client.connect(server.addr, server.id)
        # A handler that raises: FAILURE with a code, and the agent lives on.
        with pytest.raises(tacit.Rejected) as raised:
            await peer.ask(Echo(text="boom"))
        assert raised.value.act == Act.FAILURE and raised.value.code == ErrorCode.HANDLER_FAILED
        assert "RuntimeError: the handler broke" in raised.value.reason
        with pytest.raises(tacit.Rejected, match="returned Quote, not echo.v1.Echoed"):
            await peer.ask(Echo(text="wrong"))
        assert (await peer.ask(Echo(text="ok"))).text == "ok" and survived.is_set()
        # Deadlines.
        with pytest.raises(tacit.DeadlineExceeded) as late:
            await peer.ask(Echo(text="slow"), timeout=0.2)
        assert late.value.code == ErrorCode.DEADLINE_EXCEEDED and isinstance(late.value, TimeoutError)
        # An intent the peer does not handle.
        with pytest.raises(tacit.NotNegotiated, match="market.v1.RequestQuote is not negotiated"):
            await peer.ask(RequestQuote(item="x"))
        # Too large for the peer.
        with pytest.raises(tacit.MessageTooLarge):
            await peer.ask(Echo(text="x" * (128 * 1024)))
        # Bad input from Python.
        with pytest.raises(tacit.SchemaError):
            await peer.ask("not a message")  # type: ignore[arg-type]
        with pytest.raises(tacit.SchemaError, match="names no reply"):
            await peer.ask(Quote())
        # Connecting: nobody there, or someone else there.
        with pytest.raises(tacit.ConnectError):
            await client.connect("127.0.0.1:9", None)
        with pytest.raises(tacit.IdentityMismatch):
            await client.connect(server.addr, client.id)
        with pytest.raises(tacit.ConfigError):
            await client.connect("not an address")
    # Registration mistakes fail at once.
    with pytest.raises(tacit.SchemaError):
        tacit.Agent().on_ask(Quote)
    started = tacit.Agent()
    await started.start()
    try:
        with pytest.raises(tacit.ConfigError):
            started.on_ask(Echo)
    finally:
        await started.close()
    with pytest.raises(tacit.ConfigError):
        await tacit.Agent(policy_file=tmp_path / "missing.toml").start()
    with pytest.raises(tacit.ConfigError):
        _ = tacit.Agent().id


async def test_cancelling_an_ask_cancels_the_handler(client: tacit.Agent) -> None:
    started, cancelled = asyncio.Event(), asyncio.Event()
    server = tacit.Agent("cancel")

    @server.on_ask(Echo)
    async def slow(ctx: tacit.Context, message: Echo) -> Echoed:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return Echoed()

    async with server:
        peer = await client.connect(server.addr, server.id)
        ask = asyncio.ensure_future(peer.ask(Echo(text="x")))
        await asyncio.wait_for(started.wait(), 5)
        ask.cancel()
        with pytest.raises(asyncio.CancelledError):
            await ask
        # The CANCEL crossed the wire: the server's handler task was cancelled.
        await asyncio.wait_for(cancelled.wait(), 5)
        assert (await peer.ask(Ping(nonce=1))).nonce == 1


async def test_policy_denies_and_other_peers_are_unaffected(client: tacit.Agent, tmp_path: pathlib.Path) -> None:
    async with tacit.Agent("friend") as friend:
        policy = tmp_path / "policy.toml"
        policy.write_text(
            f'default = "deny"\n[[rule]]\neffect = "allow"\nagents = ["{friend.id}"]\n'
            '[[rule]]\neffect = "allow"\nintents = ["tacit.std.v1.Ping", "tacit.intents.v1.Ping"]\n'
        )
        async with echo_agent(policy_file=policy) as server:
            stranger = await client.connect(server.addr, server.id)
            with pytest.raises((tacit.NotNegotiated, tacit.Rejected)) as denied:
                await stranger.ask(Echo(text="x"))
            assert denied.value.code in (ErrorCode.POLICY_DENIED, ErrorCode.INTENT_NOT_NEGOTIATED)
            ally = await friend.connect(server.addr, server.id)
            assert (await ally.ask(Echo(text="ok"))).text == "ok"


async def test_stream_both_ways_and_wrong_class(client: tacit.Agent) -> None:
    server = tacit.Agent("chat")

    @server.on_stream(Echo, item=Echoed, send=Echo)
    async def chat(ctx: tacit.Context, opening: Echo, stream: tacit.Stream[Echoed, Echo]) -> None:
        await stream.send(Echoed(text=opening.text))
        async for message in stream:
            await stream.send(Echoed(text=message.text.upper()))

    async with server:
        peer = await client.connect(server.addr, server.id)
        async with await peer.stream(Echo(text="open"), item=Echoed, send=Echo) as stream:
            first = await stream.recv()
            assert first is not None and first.text == "open"
            await stream.send(Echo(text="more"))
            second = await stream.recv()
            assert second is not None and second.text == "MORE"
            with pytest.raises(TypeError):
                await stream.send(Echoed(text="wrong way"))
        # After the exit (finish), the handler's loop ends and so does the stream.
        assert await stream.recv() is None


async def test_delegate_task_without_reply_option(client: tacit.Agent) -> None:
    # A standard intent whose reply the .proto names: TaskStatus.
    server = tacit.Agent("tasks")

    @server.on_ask(DelegateTask)
    async def run(ctx: tacit.Context, task: DelegateTask) -> TaskStatus:
        return TaskStatus(task_id=task.task_id)

    async with server:
        peer = await client.connect(server.addr, server.id)
        assert (await peer.ask(DelegateTask(task_id="d"))).task_id == "d"


async def test_an_agent_dropped_without_close_is_collected(client: tacit.Agent) -> None:
    import gc
    import weakref

    agent = echo_agent("dropped")
    await agent.start()
    addr, agent_id = agent.addr, agent.id
    ref = weakref.ref(agent)
    del agent
    gc.collect()
    # No cycle through the native agent keeps it alive (and serving): once
    # the loop has let go of the finished bind future, the agent stops.
    assert ref() is None
    for _ in range(40):
        await asyncio.sleep(0.05)
        gc.collect()
        try:
            await (await client.connect(addr, agent_id)).ask(Echo(text="x"), timeout=0.5)
        except (tacit.ConnectError, tacit.ConnectionLost, tacit.DeadlineExceeded):
            return
    pytest.fail("the dropped agent still answers after 2 s")


async def test_identity_from_a_key_file(tmp_path: pathlib.Path) -> None:
    key = tmp_path / "agent.key"
    async with tacit.Agent("keyed", key_file=key) as first:
        first_id = first.id
    assert key.exists() and (key.stat().st_mode & 0o777) == 0o600
    async with tacit.Agent("keyed", key_file=key) as second:
        assert second.id == first_id


async def test_dynamic_intents_from_a_fetched_schema(client: tacit.Agent) -> None:
    async with echo_agent() as server:
        peer = await client.connect(server.addr, server.id)
        # A program without the echo classes: it learns them from the peer.
        schema = await peer.describe(tacit.intent_id(Echo))
        request_cls = schema.message_class
        reply_cls = schema.related("echo.v1.Echoed")
        assert request_cls is not Echo and tacit.intent_id(request_cls) == tacit.intent_id(Echo)
        request = request_cls()
        request.text = "dynamic"  # type: ignore[attr-defined]
        answer = await peer.ask(request, reply=reply_cls)
        assert answer.text == "dynamic"
        with pytest.raises(tacit.NotNegotiated):
            await peer.describe("no.such.Intent")


async def test_tells_are_handled_one_at_a_time_in_order(client: tacit.Agent) -> None:
    seen: list[str] = []
    running = 0
    overlapped = False
    server = tacit.Agent("ordered")

    @server.on_tell(GetTask)
    async def on_get(ctx: tacit.Context, message: GetTask) -> None:
        nonlocal running, overlapped
        running += 1
        overlapped |= running > 1
        await asyncio.sleep(0.001)
        seen.append(message.task_id)
        running -= 1

    async with server:
        peer = await client.connect(server.addr, server.id)
        for n in range(50):
            await peer.tell(GetTask(task_id=str(n)))
        for _ in range(200):
            if len(seen) == 50:
                break
            await asyncio.sleep(0.01)
        assert seen == [str(n) for n in range(50)] and not overlapped


async def test_more_error_kinds(client: tacit.Agent) -> None:
    server = echo_agent("more")

    @server.on_stream(TaskUpdate, item=TaskStatus)
    async def updates(ctx: tacit.Context, opening: TaskUpdate, stream: tacit.Stream[TaskStatus, TaskStatus]) -> None:
        await stream.send(TaskStatus(task_id="one"))

    async with server:
        peer = await client.connect(server.addr, server.id)
        # The reply is not of the class the caller expects.
        with pytest.raises(tacit.DecodeError, match="expected a market.v1.Quote reply"):
            await peer.ask(Echo(text="x"), reply=Quote)
        # A direction used after it finished.
        stream = await peer.stream(TaskUpdate(), item=TaskStatus)
        await stream.finish()
        with pytest.raises(tacit.StreamError):
            await stream.send(TaskStatus())
        assert [s.task_id async for s in stream] == ["one"]
    # The server is gone: a dialed peer redials until the deadline.
    with pytest.raises(tacit.DeadlineExceeded):
        await peer.ask(Echo(text="after"), timeout=0.5)
    # An accepted session does not redial: once its peer closed it, it is lost.
    callers: list[tacit.Peer] = []
    keeper = tacit.Agent("keeper")

    @keeper.on_ask(Echo)
    async def keep(ctx: tacit.Context, message: Echo) -> Echoed:
        callers.append(ctx.peer)
        return Echoed(text=message.text)

    async with keeper:
        caller = await client.connect(keeper.addr, keeper.id)
        await caller.ask(Echo(text="hello"))
        caller.close()
        with pytest.raises(tacit.ConnectionLost):
            for _ in range(50):
                await callers[0].ask(Ping(nonce=1), timeout=1)
                await asyncio.sleep(0.02)
    # This side shut down.
    closing = tacit.Agent("closing")
    await closing.start()
    other = await client.connect(client.addr, client.id)
    await closing.close()
    with pytest.raises(tacit.ConfigError, match="not started"):
        await closing.connect(client.addr)
    other.close()


async def test_undecodable_input_from_the_network_is_not_understood(client: tacit.Agent) -> None:
    async with echo_agent("strict") as server:
        peer = await client.connect(server.addr, server.id)
        assert (await peer.ask(Echo(text="warm"))).text == "warm"
        # Bytes that are no Echo (a truncated field), as a broken or hostile peer sends them.
        with pytest.raises(tacit.Rejected) as raised:
            await peer._native.ask(tacit.intent_type(Echo).id, b"\x0a\x05ab")
        assert raised.value.act == Act.NOT_UNDERSTOOD and raised.value.code == ErrorCode.INVALID_PAYLOAD
        assert "cannot decode echo.v1.Echo" in raised.value.reason
        assert (await peer.ask(Echo(text="still"))).text == "still"
