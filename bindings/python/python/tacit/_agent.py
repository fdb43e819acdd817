"""Agents, peers, streams and conversations: the asyncio API over the Rust core."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import weakref
from collections.abc import AsyncIterator, Awaitable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Callable, Generic, Optional, TypeVar, Union, cast

from google.protobuf.message import Message

from tacit import _native
from tacit._schema import IntentType, Schema, intent_type
from tacit.errors import (
    _DETAILS,
    Act,
    ConfigError,
    DeadlineExceeded,
    DecodeError,
    ErrorCode,
    NotNegotiated,
    Rejected,
    SchemaError,
    StreamError,
    TacitError,
)

log = logging.getLogger("tacit")

M = TypeVar("M", bound=Message)
R = TypeVar("R", bound=Message)
S = TypeVar("S", bound=Message)
T = TypeVar("T", bound=Message)

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


@dataclass(frozen=True)
class Reply(Generic[M]):
    """A reply with its act: what :meth:`Peer.ask_with` returns, and what an
    ask handler returns to answer with another act than the default
    (``INFORM``, or ``PROPOSE`` to a call for proposals)."""

    message: M
    act: Act = Act.INFORM
    message_id: int = 0
    receipt: Optional[bytes] = None
    """The answer's receipt (encoded, already verified against the peer's
    AgentId), if the ask asked for a signed answer (``sign_reply``): keep it
    as evidence; ``tacit verify`` checks it."""


@dataclass(frozen=True)
class Card:
    """A peer's card."""

    name: str
    description: str = ""
    roles: tuple[str, ...] = ()


@dataclass(frozen=True)
class Credential:
    """A verified organisation credential."""

    org: str
    roles: tuple[str, ...]
    expires: float
    """Seconds since the Unix epoch."""


@dataclass(frozen=True)
class Offer:
    """One intent a peer offers in the handshake."""

    intent_id: str
    name: str
    handles: bool
    lanes: tuple[str, ...]
    reply_id: Optional[str]


def _credentials(raw: Sequence[tuple[str, list[str], float]]) -> list[Credential]:
    return [Credential(org, tuple(roles), expires) for org, roles, expires in raw]


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


_ASK_PLANS: dict[type, tuple[IntentType, IntentType]] = {}


def _ask_plan(cls: type, reply: Optional[type[Message]]) -> tuple[IntentType, IntentType]:
    """The request's and the reply's types (cached for the request's own reply)."""
    t = intent_type(cls)
    reply_cls = reply or t.reply
    if reply_cls is None:
        raise SchemaError(f"{t.name} names no reply: give reply=..., or the option (tacit.v1.reply)")
    plan = (t, intent_type(reply_cls))
    if reply is None:
        _ASK_PLANS[cls] = plan
    return plan


def _decode_reply(reply_t: IntentType, reply_id: Optional[bytes], payload: bytes) -> Any:
    if reply_id is not None and reply_id != reply_t.id:
        raise DecodeError(
            f"expected a {reply_t.name} reply, the peer sent intent {_native.intent_id_str(reply_id)}",
            ErrorCode.INVALID_PAYLOAD,
        )
    try:
        return reply_t.cls.FromString(payload)
    except Exception as error:
        raise DecodeError(f"cannot decode {reply_t.name}: {error}", ErrorCode.INVALID_PAYLOAD) from error


def _named(error: TacitError, t: IntentType) -> TacitError:
    """The error with the intent's name where the core knew only its id."""
    if error.args and isinstance(error.args[0], str) and "a dynamic intent" in error.args[0]:
        error.args = (error.args[0].replace("a dynamic intent", t.name), *error.args[1:])
    return error


class Peer:
    """A connection to another agent (dialed with :meth:`Agent.connect`, or the
    sender of a message, :attr:`Context.peer`)."""

    __slots__ = ("_native", "__weakref__")

    def __init__(self, native: _native.Peer) -> None:
        self._native = native

    @property
    def id(self) -> str:
        """The peer's AgentId."""
        return self._native.id

    @property
    def addr(self) -> str:
        return self._native.addr

    @property
    def card(self) -> Optional[Card]:
        """The peer's card, once the handshake is done."""
        raw = self._native.card
        return None if raw is None else Card(raw[0], raw[1], tuple(raw[2]))

    @property
    def credentials(self) -> list[Credential]:
        """The peer's verified organisation credentials."""
        return _credentials(self._native.credentials)

    async def offers(self) -> list[Offer]:
        """What the peer offers (waits for the handshake)."""
        raw = await self._native.offers()
        return [
            Offer(_native.intent_id_str(i), n, h, tuple(lanes), None if r is None else _native.intent_id_str(r))
            for i, n, h, lanes, r in raw
        ]

    async def ask(self, request: Message, *, timeout: Optional[float] = None, reply: Optional[type[R]] = None) -> Any:
        """Asks the peer and returns its reply (an instance of the request's
        reply class). Raises :class:`Rejected` if the peer refused or failed,
        :class:`DeadlineExceeded` after ``timeout`` seconds (the peer is told
        to cancel). Cancelling the awaiting task cancels the ask on the wire."""
        # The hot path: one lookup for both types, no Reply built.
        plan = _ASK_PLANS.get(type(request)) if reply is None else None
        if plan is None:
            plan = _ask_plan(type(request), reply)
        t, reply_t = plan
        try:
            answer = await self._native.ask(t.id, request.SerializeToString(), timeout=timeout)
        except TacitError as error:
            raise _named(error, t) from None
        return _decode_reply(reply_t, answer[1], answer[2])

    async def ask_with(
        self,
        request: Message,
        *,
        act: Act = Act.REQUEST,
        timeout: Optional[float] = None,
        conversation: Optional[str] = None,
        in_reply_to: int = 0,
        idempotent: bool = False,
        signed: bool = False,
        sign_reply: bool = False,
        reply: Optional[type[R]] = None,
    ) -> Reply[Any]:
        """Like :meth:`ask`, with an act, a conversation, and the answer's act
        and message id (a :class:`Reply`). ``idempotent`` lets the ask be
        re-sent after a lost connection; ``signed`` signs the request with
        this agent's key (the handler gets a receipt); ``sign_reply`` asks
        for a signed answer, whose receipt :attr:`Reply.receipt` holds (an
        unsigned answer raises :class:`SignatureError`)."""
        t, reply_t = _ask_plan(type(request), reply)
        try:
            answer_act, reply_id, payload, message_id, receipt = await self._native.ask(
                t.id,
                request.SerializeToString(),
                timeout=timeout,
                act_value=int(act),
                conversation_id=conversation,
                in_reply_to=in_reply_to,
                idempotent=idempotent,
                signed=signed,
                sign_reply=sign_reply,
            )
        except TacitError as error:
            raise _named(error, t) from None
        message = _decode_reply(reply_t, reply_id, payload)
        return Reply(message, Act(answer_act), message_id, receipt)

    async def tell(
        self, message: Message, *, act: Act = Act.INFORM, conversation: Optional[str] = None, in_reply_to: int = 0
    ) -> None:
        """Sends ``message`` one way, reliably and in order with other tells."""
        t = intent_type(type(message))
        try:
            await self._native.tell(
                t.id, message.SerializeToString(), act_value=int(act), conversation_id=conversation, in_reply_to=in_reply_to
            )
        except TacitError as error:
            raise _named(error, t) from None

    async def datagram(self, message: Message) -> None:
        """Sends ``message`` as one QUIC datagram: unreliable, unordered, small."""
        t = intent_type(type(message))
        try:
            await self._native.datagram(t.id, message.SerializeToString())
        except TacitError as error:
            raise _named(error, t) from None

    async def stream(
        self,
        opening: Message,
        *,
        item: Optional[type[Message]] = None,
        send: Optional[type[Message]] = None,
    ) -> Stream[Any, Any]:
        """Opens a stream lane: ``async for item in stream`` reads what the
        peer streams back, ``await stream.send(message)`` sends after the
        opening, ``await stream.finish()`` ends this side."""
        t = intent_type(type(opening))
        try:
            sender, receiver = await self._native.stream(t.id, opening.SerializeToString())
        except TacitError as error:
            raise _named(error, t) from None
        return Stream(sender, receiver, send or t.stream_send, item or t.stream_item, t.name)

    async def describe(self, intent: Union[str, bytes, type[Message]]) -> Schema:
        """Fetches an intent's schema from the peer, verified against its id,
        with a message class to decode it (for intents this program has no
        class for). ``intent`` is an IntentId (as printed, or 32 bytes), an
        intent name the peer offers, or a class."""
        if isinstance(intent, type):
            raw = intent_type(intent).id
        elif isinstance(intent, bytes):
            raw = intent
        else:
            raw = await self._resolve(intent)
        name, descriptor_set = await self._native.describe(raw)
        return Schema(name, descriptor_set)

    async def _resolve(self, intent: str) -> bytes:
        for i, n, _h, _lanes, _r in await self._native.offers():
            if n == intent or _native.intent_id_str(i) == intent:
                return bytes(i)
        raise NotNegotiated(f"the peer offers no intent {intent!r}", ErrorCode.INTENT_NOT_NEGOTIATED)

    def conversation(self) -> Conversation:
        """Starts a conversation with this peer: a fresh conversation id that
        its messages carry, each answering the last one received."""
        return Conversation(self, os.urandom(16).hex(), 0)

    def close(self) -> None:
        """Closes the connection."""
        self._native.close()

    async def __aenter__(self) -> Peer:
        await self._native.ready()
        return self

    async def __aexit__(
        self, kind: Optional[type[BaseException]], error: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<tacit Peer {self.id} at {self.addr}>"


class Stream(Generic[S, T]):
    """One stream lane: sends ``S`` messages and receives ``T`` messages, each
    direction ended explicitly. Iterate it (``async for``) to receive."""

    __slots__ = ("_sender", "_receiver", "_send_cls", "_recv_cls", "_name")

    def __init__(
        self,
        sender: _native.StreamSender,
        receiver: _native.StreamReceiver,
        send_cls: Optional[type[S]],
        recv_cls: Optional[type[T]],
        name: str,
    ) -> None:
        self._sender = sender
        self._receiver = receiver
        self._send_cls = send_cls
        self._recv_cls = recv_cls
        self._name = name

    async def send(self, message: S) -> None:
        """Sends one message on the lane."""
        if self._send_cls is not None and not isinstance(message, self._send_cls):
            raise TypeError(f"{self._name} carries {self._send_cls.__name__}, not {type(message).__name__}")
        await self._sender.send(message.SerializeToString())

    async def finish(self) -> None:
        """Ends this direction (what was sent is delivered first)."""
        await self._sender.finish()

    async def recv(self) -> Optional[T]:
        """The next message, or ``None`` at the other side's end."""
        payload = await self._receiver.recv()
        if payload is None:
            return None
        if self._recv_cls is None:
            raise StreamError(f"{self._name}: a message came on a direction that carries none")
        try:
            return self._recv_cls.FromString(payload)
        except Exception as error:
            raise DecodeError(f"cannot decode {self._recv_cls.__name__}: {error}", ErrorCode.INVALID_PAYLOAD) from error

    def __aiter__(self) -> AsyncIterator[T]:
        return self

    async def __anext__(self) -> T:
        message = await self.recv()
        if message is None:
            raise StopAsyncIteration
        return message

    async def __aenter__(self) -> Stream[S, T]:
        return self

    async def __aexit__(
        self, kind: Optional[type[BaseException]], error: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        await self.finish()

    def __repr__(self) -> str:
        return f"<tacit Stream {self._name}>"


class Conversation:
    """Messages with one peer threaded by a conversation id: each answers
    (``in_reply_to``) the last message received in it."""

    __slots__ = ("peer", "id", "_last")

    def __init__(self, peer: Peer, conversation_id: str, last_received: int) -> None:
        self.peer = peer
        self.id = conversation_id
        self._last = last_received

    async def ask(self, request: Message, *, act: Act = Act.REQUEST, timeout: Optional[float] = None) -> Reply[Any]:
        """Asks in the conversation; the answer's message id becomes the last received."""
        answer = await self.peer.ask_with(
            request, act=act, timeout=timeout, conversation=self.id, in_reply_to=self._last
        )
        self._last = answer.message_id
        return answer

    async def tell(self, message: Message, *, act: Act = Act.INFORM) -> None:
        """Tells in the conversation."""
        await self.peer.tell(message, act=act, conversation=self.id, in_reply_to=self._last)

    def __repr__(self) -> str:
        return f"<tacit Conversation {self.id} with {self.peer.id}>"


@dataclass
class Bid(Generic[M]):
    """One proposal of a :class:`ContractNet` round."""

    peer: Peer
    proposal: M
    proposal_id: int


@dataclass
class Round(Generic[M]):
    """The answers to one call for proposals."""

    conversation_id: str
    proposals: list[Bid[M]] = field(default_factory=list)
    declined: list[tuple[str, TacitError]] = field(default_factory=list)
    """Participants that refused, failed, answered late or could not be reached: ``(AgentId, error)``."""

    def best_by(self, key: Callable[[M], Any]) -> Optional[int]:
        """The index of the best proposal by ``key`` (smallest first), if any."""
        if not self.proposals:
            return None
        return min(range(len(self.proposals)), key=lambda i: key(self.proposals[i].proposal))

    async def award(self, winner: int, acceptance: Message, reason: str, *, signed: bool = False) -> Any:
        """Accepts proposal ``winner`` with ``acceptance`` (an ``ACCEPT`` ask whose
        reply is the result) and rejects the others with ``reason``. With
        ``signed``, the award is signed and a signed confirmation is asked
        for: the result is then a :class:`Reply` carrying its receipt."""
        if not 0 <= winner < len(self.proposals):
            raise IndexError(f"no proposal {winner}")
        chosen = self.proposals[winner]
        others = [bid for i, bid in enumerate(self.proposals) if i != winner]
        accepted = chosen.peer.ask_with(
            acceptance,
            act=Act.ACCEPT,
            conversation=self.conversation_id,
            in_reply_to=chosen.proposal_id,
            signed=signed,
            sign_reply=signed,
        )
        result, _ = await asyncio.gather(accepted, _reject_bids(others, self.conversation_id, reason))
        return result if signed else result.message

    async def reject_all(self, reason: str) -> None:
        """Rejects every proposal with ``reason``."""
        await _reject_bids(self.proposals, self.conversation_id, reason)


async def _reject_bids(bids: Sequence[Bid[Any]], conversation: str, reason: str) -> None:
    from tacit.intents import RejectProposal

    async def one(bid: Bid[Any]) -> None:
        try:
            await bid.peer.tell(
                RejectProposal(proposal_id=bid.proposal_id, reason=reason),
                act=Act.REJECT,
                conversation=conversation,
                in_reply_to=bid.proposal_id,
            )
        except TacitError as error:
            log.debug("a proposal rejection was not delivered: %s", error)

    await asyncio.gather(*(one(bid) for bid in bids))


class ContractNet:
    """The FIPA contract-net protocol as the initiator: call for proposals
    (``CFP``) on every participant at once, collect ``PROPOSE`` answers until
    the deadline, then award one and reject the others."""

    def __init__(self, participants: Iterable[Peer], deadline: float) -> None:
        self.participants = list(participants)
        self.deadline = deadline

    async def call_for_proposals(self, task: Message) -> Round[Any]:
        """Calls for proposals on ``task`` (a request whose reply is the proposal)."""
        conversation = os.urandom(16).hex()
        round_: Round[Any] = Round(conversation)

        async def one(peer: Peer) -> Union[Reply[Any], TacitError]:
            try:
                return await peer.ask_with(task, act=Act.CFP, conversation=conversation, timeout=self.deadline)
            except TacitError as error:
                return error

        try:
            answers = await asyncio.wait_for(
                asyncio.gather(*(one(peer) for peer in self.participants)), self.deadline + 1.0
            )
        except asyncio.TimeoutError:
            answers = [DeadlineExceeded("no proposal within the deadline", ErrorCode.DEADLINE_EXCEEDED)] * len(
                self.participants
            )
        for peer, answer in zip(self.participants, answers):
            if isinstance(answer, TacitError):
                round_.declined.append((peer.id, answer))
            elif answer.act == Act.PROPOSE:
                round_.proposals.append(Bid(peer, answer.message, answer.message_id))
            else:
                error = DecodeError(f"expected a PROPOSE, the peer answered {answer.act.name}", ErrorCode.INVALID_PAYLOAD)
                round_.declined.append((peer.id, error))
        return round_


def register_detail(*classes: type[Message]) -> None:
    """Makes rejection details of these classes decode into ``Rejected.detail``
    (details a handler here raises are registered by themselves)."""
    for cls in classes:
        t = intent_type(cls)
        _DETAILS[t.id] = t.cls
