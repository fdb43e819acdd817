"""Peers, streams and conversations: what an agent talks to another agent with."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, Optional, TypeVar, Union

from google.protobuf.message import Message

from tacit import _native
from tacit._schema import IntentType, Schema, intent_type
from tacit.errors import Act, DecodeError, ErrorCode, NotNegotiated, SchemaError, StreamError, TacitError

M = TypeVar("M", bound=Message)
R = TypeVar("R", bound=Message)
S = TypeVar("S", bound=Message)
T = TypeVar("T", bound=Message)


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
