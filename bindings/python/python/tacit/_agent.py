"""Agents and the context of what they receive: the asyncio API over the Rust core."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import weakref
from collections.abc import Awaitable, Coroutine, Iterable
from types import TracebackType
from typing import Any, Callable, Optional, TypeVar, Union, cast

from google.protobuf.message import Message

from tacit import _native
from tacit._peer import Conversation, Credential, Peer, Reply, Stream, _credentials
from tacit._schema import IntentType, intent_type
from tacit.errors import _DETAILS, Act, ConfigError, ErrorCode, Rejected, SchemaError

log = logging.getLogger("tacit")

Address = Union[str, tuple[str, int]]


def _address(addr: Address) -> str:
    if isinstance(addr, tuple):
        host, port = addr
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return addr


def _start_task(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    """Starts a handler's coroutine. From Python 3.12 it runs at once up to its
    first suspension (an eager task), so a handler that answers without
    awaiting costs no turn of the loop."""
    if sys.version_info >= (3, 12):
        return asyncio.Task(coro, loop=loop, eager_start=True)
    return loop.create_task(coro)


_BRIDGES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _native.LoopBridge] = weakref.WeakKeyDictionary()


def _bridge() -> _native.LoopBridge:
    """The running loop's bridge to the Rust runtime (made on first use)."""
    loop = asyncio.get_running_loop()
    bridge = _BRIDGES.get(loop)
    if bridge is None:
        bridge = _native.LoopBridge(loop)
        loop.add_reader(bridge.fileno(), bridge.drain)
        _BRIDGES[loop] = bridge
    return bridge


class Context:
    """What a handler knows about the message it handles."""

    __slots__ = ("_native",)

    def __init__(self, native: _native.Context) -> None:
        self._native = native

    @property
    def peer_id(self) -> str:
        """The sender's AgentId, proven by its TLS certificate."""
        return self._native.peer_id

    @property
    def intent_id(self) -> str:
        return self._native.intent_id

    @property
    def intent_name(self) -> Optional[str]:
        return self._native.intent_name

    @property
    def act(self) -> Act:
        return Act(self._native.act)

    @property
    def message_id(self) -> int:
        return self._native.message_id

    @property
    def conversation_id(self) -> str:
        return self._native.conversation_id

    @property
    def remaining(self) -> Optional[float]:
        """Seconds left before the asker's deadline, if it gave one."""
        return self._native.remaining

    @property
    def peer_credentials(self) -> list[Credential]:
        """The sender's verified organisation credentials."""
        return _credentials(self._native.peer_credentials)

    @property
    def peer(self) -> Peer:
        """The sender, to send it further intents on the same session."""
        return Peer(self._native.peer)

    def conversation(self) -> Conversation:
        """Continues this message's conversation with the sender."""
        return Conversation(self.peer, self.conversation_id, self.message_id)

    def __repr__(self) -> str:
        return repr(self._native)


AskHandler = Callable[[Context, Any], Awaitable[Any]]
TellHandler = Callable[[Context, Any], Awaitable[None]]
StreamHandler = Callable[[Context, Any, "Stream[Any, Any]"], Awaitable[None]]
F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def _detail_args(detail: Any) -> tuple[Optional[bytes], Optional[bytes]]:
    if detail is None:
        return None, None
    if not isinstance(detail, Message):
        raise SchemaError(f"a rejection's detail must be a protobuf message, not {type(detail).__name__}")
    t = intent_type(type(detail))
    _DETAILS.setdefault(t.id, t.cls)
    return t.id, detail.SerializeToString()


def _reject(slot: _native.Slot, error: BaseException, name: str) -> None:
    if isinstance(error, Rejected):
        detail_intent, detail = _detail_args(error.detail)
        slot.reject(int(error.act), int(error.code), error.reason, detail_intent, detail)
    else:
        log.error("the handler of %s raised", name, exc_info=error)
        reason = f"{type(error).__name__}: {error}"
        slot.reject(int(Act.FAILURE), int(ErrorCode.HANDLER_FAILED), reason[:512])


class Agent:
    """A Tacit agent: an identity, a card, handlers for the intents it takes,
    and an endpoint that serves them and dials peers.

    Register handlers, then start it with ``async with`` (or :meth:`start`)::

        agent = tacit.Agent("seller", key_file="seller.key")

        @agent.on_ask(ReserveSlot)
        async def reserve(ctx: tacit.Context, request: ReserveSlot) -> SlotReserved:
            return SlotReserved(slot_id="s1")

        async with agent:
            print(agent.id, agent.addr)
            await asyncio.Event().wait()
    """

    def __init__(
        self,
        name: str = "tacit-agent",
        *,
        description: Optional[str] = None,
        roles: Iterable[str] = (),
        key_file: Union[str, os.PathLike[str], None] = None,
        listen: Address = "127.0.0.1:0",
        max_message_len: Optional[int] = None,
        max_concurrent_asks: Optional[int] = None,
        connect_timeout: Optional[float] = None,
        policy_file: Union[str, os.PathLike[str], None] = None,
        credentials: Iterable[Union[str, os.PathLike[str]]] = (),
        trust: Iterable[str] = (),
    ) -> None:
        self.name = name
        self._config: dict[str, Any] = {
            "name": name,
            "description": description,
            "roles": list(roles),
            "key_file": None if key_file is None else os.fspath(key_file),
            "max_message_len": max_message_len,
            "max_concurrent_asks": max_concurrent_asks,
            "connect_timeout": connect_timeout,
            "policy_file": None if policy_file is None else os.fspath(policy_file),
            "credential_files": [os.fspath(path) for path in credentials],
            "trust": list(trust),
        }
        self._listen = _address(listen)
        self._asks: list[tuple[IntentType, IntentType, AskHandler]] = []
        self._tells: list[tuple[IntentType, TellHandler]] = []
        self._streams: list[tuple[IntentType, Optional[IntentType], Optional[IntentType], StreamHandler]] = []
        self._emits: list[IntentType] = []
        self._native: Optional[_native.Agent] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None

    # Registration ----------------------------------------------------------

    def _check_not_started(self) -> None:
        if self._native is not None:
            raise ConfigError("handlers are registered before the agent starts")

    def on_ask(self, request: type[Message], *, reply: Optional[type[Message]] = None) -> Callable[[F], F]:
        """Handles asks of ``request`` with an ``async def handler(ctx, request)``
        returning the reply (an instance of the class the request's
        ``(tacit.v1.reply)`` option names, or of ``reply``), or a
        :class:`Reply` to pick the act. Raise :class:`Rejected` to refuse;
        any other exception answers ``FAILURE`` / ``HANDLER_FAILED``."""
        self._check_not_started()
        t = intent_type(request)
        reply_cls = reply or t.reply
        if reply_cls is None:
            raise SchemaError(f"{t.name} names no reply: give reply=..., or the option (tacit.v1.reply)")
        reply_t = intent_type(reply_cls)

        def register(handler: F) -> F:
            self._asks.append((t, reply_t, cast(AskHandler, handler)))
            return handler

        return register

    def on_tell(self, intent: type[Message]) -> Callable[[F], F]:
        """Handles one-way messages (tells and datagrams) of ``intent`` with an
        ``async def handler(ctx, message)``, one at a time per session, in
        the order they arrive."""
        self._check_not_started()
        t = intent_type(intent)

        def register(handler: F) -> F:
            self._tells.append((t, cast(TellHandler, handler)))
            return handler

        return register

    def on_stream(
        self,
        opening: type[Message],
        *,
        item: Optional[type[Message]] = None,
        send: Optional[type[Message]] = None,
    ) -> Callable[[F], F]:
        """Handles stream lanes opened with ``opening`` with an
        ``async def handler(ctx, opening, stream)``: ``await stream.send(item)``
        streams back, ``async for message in stream`` reads what the opener
        sends. The types come from the ``(tacit.v1.stream_item)`` and
        ``(tacit.v1.stream_send)`` options, or from ``item`` and ``send``."""
        self._check_not_started()
        t = intent_type(opening)
        item_cls = item or t.stream_item
        send_cls = send or t.stream_send
        item_t = None if item_cls is None else intent_type(item_cls)
        send_t = None if send_cls is None else intent_type(send_cls)

        def register(handler: F) -> F:
            self._streams.append((t, item_t, send_t, cast(StreamHandler, handler)))
            return handler

        return register

    def emits(self, *intents: type[Message]) -> Agent:
        """Declares intents this agent sends, negotiated in the handshake (an
        undeclared one is offered on first use, one round trip more)."""
        self._check_not_started()
        self._emits.extend(intent_type(cls) for cls in intents)
        return self

    # Life ------------------------------------------------------------------

    async def start(self) -> Agent:
        """Binds the agent's socket and starts serving."""
        if self._native is not None:
            return self
        self._loop = asyncio.get_running_loop()
        bridge = _bridge()
        self._native = await _native.bind(
            bridge,
            self._listen,
            asks=[(req.schema, rep.schema, self._ask_dispatch(req, rep, h)) for req, rep, h in self._asks],
            tells=[(t.schema, self._tell_dispatch(t, h)) for t, h in self._tells],
            streams=[
                (t.schema, None if i is None else i.schema, None if s is None else s.schema, self._stream_dispatch(t, i, s, h))
                for t, i, s, h in self._streams
            ],
            emits=[t.schema for t in self._emits],
            **self._config,
        )
        return self

    async def close(self, drain: float = 1.0) -> None:
        """Stops taking new work, waits up to ``drain`` seconds for running
        handlers, and closes every session."""
        native, self._native = self._native, None
        if native is not None:
            await native.shutdown(drain)

    async def __aenter__(self) -> Agent:
        return await self.start()

    async def __aexit__(
        self, kind: Optional[type[BaseException]], error: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        await self.close()

    def _started(self) -> _native.Agent:
        if self._native is None:
            raise ConfigError("the agent is not started: use `async with agent` or `await agent.start()`")
        return self._native

    @property
    def id(self) -> str:
        """The agent's AgentId."""
        return self._started().id

    @property
    def addr(self) -> str:
        """The address it serves on, ``ip:port``."""
        return self._started().addr

    def metrics(self) -> dict[str, Any]:
        """The agent's counters (``errors`` by code name)."""
        return self._started().metrics()

    async def connect(self, addr: Address, agent_id: Optional[str] = None) -> Peer:
        """Dials a peer, expecting ``agent_id`` if given (the TLS handshake
        proves it); reconnects by itself after a lost connection."""
        native = await self._started().connect(_address(addr), agent_id)
        return Peer(native)

    def __repr__(self) -> str:
        if self._native is None:
            return f"<tacit Agent {self.name!r} (not started)>"
        return f"<tacit Agent {self.name!r} {self._native.id} at {self._native.addr}>"

    # Dispatch: the native core calls these on the loop's thread. They hold
    # no reference to the agent: the native agent holds them, and a cycle
    # through Rust is one Python's collector cannot see.

    def _ask_dispatch(self, request: IntentType, reply: IntentType, handler: AskHandler) -> Callable[..., Any]:
        decode, reply_cls, name = request.cls.FromString, reply.cls, request.name
        loop = self._loop
        assert loop is not None

        async def run(cx: _native.Context, payload: bytes, slot: _native.Slot) -> None:
            try:
                message = decode(payload)
            except Exception as error:
                slot.reject(int(Act.NOT_UNDERSTOOD), int(ErrorCode.INVALID_PAYLOAD), f"cannot decode {name}: {error}")
                return
            try:
                result = await handler(Context(cx), message)
            except asyncio.CancelledError:
                raise
            except BaseException as error:
                _reject(slot, error, name)
                return
            act: Optional[int] = None
            if isinstance(result, Reply):
                act, result = int(result.act), result.message
            if not isinstance(result, reply_cls):
                slot.reject(
                    int(Act.FAILURE),
                    int(ErrorCode.HANDLER_FAILED),
                    f"the handler of {name} returned {type(result).__name__}, not {reply.name}",
                )
                log.error("the handler of %s returned %r, not a %s", name, type(result), reply.name)
                return
            slot.reply(act, result.SerializeToString())

        def dispatch(cx: _native.Context, payload: bytes, slot: _native.Slot) -> asyncio.Task[None]:
            return _start_task(loop, run(cx, payload, slot))

        return dispatch

    def _tell_dispatch(self, intent: IntentType, handler: TellHandler) -> Callable[..., Any]:
        decode, name = intent.cls.FromString, intent.name
        loop = self._loop
        assert loop is not None

        async def run(cx: _native.Context, payload: bytes, slot: _native.Slot) -> None:
            try:
                await handler(Context(cx), decode(payload))
            except asyncio.CancelledError:
                raise
            except BaseException:
                log.exception("the handler of %s raised", name)
            finally:
                slot.done()

        def dispatch(cx: _native.Context, payload: bytes, slot: _native.Slot) -> asyncio.Task[None]:
            return _start_task(loop, run(cx, payload, slot))

        return dispatch

    def _stream_dispatch(
        self,
        opening: IntentType,
        item: Optional[IntentType],
        send: Optional[IntentType],
        handler: StreamHandler,
    ) -> Callable[..., Any]:
        decode, name = opening.cls.FromString, opening.name
        loop = self._loop
        assert loop is not None
        item_cls = None if item is None else item.cls
        send_cls = None if send is None else send.cls

        async def run(
            cx: _native.Context,
            payload: bytes,
            sender: _native.StreamSender,
            receiver: _native.StreamReceiver,
            slot: _native.Slot,
        ) -> None:
            stream: Stream[Any, Any] = Stream(sender, receiver, item_cls, send_cls, name)
            try:
                await handler(Context(cx), decode(payload), stream)
                await stream.finish()
            except asyncio.CancelledError:
                raise
            except BaseException:
                log.exception("the stream handler of %s raised", name)
            finally:
                slot.done()

        def dispatch(
            cx: _native.Context,
            payload: bytes,
            sender: _native.StreamSender,
            receiver: _native.StreamReceiver,
            slot: _native.Slot,
        ) -> asyncio.Task[None]:
            return _start_task(loop, run(cx, payload, sender, receiver, slot))

        return dispatch


def register_detail(*classes: type[Message]) -> None:
    """Makes rejection details of these classes decode into ``Rejected.detail``
    (details a handler here raises are registered by themselves)."""
    for cls in classes:
        t = intent_type(cls)
        _DETAILS[t.id] = t.cls
