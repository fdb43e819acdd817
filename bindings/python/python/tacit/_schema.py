"""Protobuf classes as intents: their schemas and IntentIds (computed by the
Rust core from the classes' file descriptors, so identical to Rust's), and
classes for schemas fetched from peers."""

from __future__ import annotations

import threading
from typing import Any, Optional, Union

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import Descriptor, FileDescriptor
from google.protobuf.message import Message

from tacit import _native
from tacit.errors import SchemaError

MessageClass = type[Message]


class IntentType:
    """What Tacit knows of one protobuf message class: its IntentId, its
    descriptor set, and the classes its ``(tacit.v1.*)`` options name."""

    __slots__ = ("cls", "name", "id", "descriptor_set", "reply", "stream_item", "stream_send", "_reply_names")

    cls: MessageClass
    name: str
    id: bytes
    descriptor_set: bytes
    reply: Optional[MessageClass]
    stream_item: Optional[MessageClass]
    stream_send: Optional[MessageClass]

    def __init__(self, cls: MessageClass) -> None:
        descriptor = getattr(cls, "DESCRIPTOR", None)
        if not isinstance(descriptor, Descriptor):
            raise SchemaError(f"{cls!r} is not a generated protobuf message class")
        self.cls = cls
        self.name = descriptor.full_name
        self.descriptor_set = descriptor_set_of(descriptor.file)
        self.id, reply, item, send = _native.schema_info(self.name, self.descriptor_set)
        pool = descriptor.file.pool
        self.reply = _class_in(pool, reply)
        self.stream_item = _class_in(pool, item)
        self.stream_send = _class_in(pool, send)

    @property
    def id_str(self) -> str:
        """The IntentId as the CLI and the Rust API print it."""
        return _native.intent_id_str(self.id)

    @property
    def schema(self) -> tuple[str, bytes]:
        return (self.name, self.descriptor_set)

    def __repr__(self) -> str:
        return f"<IntentType {self.name} {self.id_str}>"


def _class_in(pool: descriptor_pool.DescriptorPool, name: Optional[str]) -> Optional[MessageClass]:
    if name is None:
        return None
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(name))


_TYPES: dict[type, IntentType] = {}
_LOCK = threading.Lock()


def intent_type(cls: Any) -> IntentType:
    """The :class:`IntentType` of a protobuf message class (computed once)."""
    found = _TYPES.get(cls)
    if found is not None:
        return found
    if not isinstance(cls, type) or not issubclass(cls, Message):
        raise SchemaError(f"{cls!r} is not a protobuf message class")
    made = IntentType(cls)
    with _LOCK:
        return _TYPES.setdefault(cls, made)


def intent_id(cls: MessageClass) -> str:
    """The IntentId of a protobuf message class, as Rust prints it."""
    return intent_type(cls).id_str


def descriptor_set_of(file: FileDescriptor) -> bytes:
    """An encoded ``FileDescriptorSet`` of ``file`` and every file it imports,
    imports first."""
    ordered: list[FileDescriptor] = []
    seen: set[str] = set()

    def visit(f: FileDescriptor) -> None:
        if f.name in seen:
            return
        seen.add(f.name)
        for dependency in f.dependencies:
            visit(dependency)
        ordered.append(f)

    visit(file)
    fds = descriptor_pb2.FileDescriptorSet()
    for f in ordered:
        fds.file.add().MergeFromString(f.serialized_pb)
    return fds.SerializeToString()


class Schema:
    """The schema of an intent fetched from a peer (:meth:`tacit.Peer.describe`),
    verified against its IntentId, with a message class built from it."""

    __slots__ = ("name", "id", "descriptor_set", "message_class", "_pool")

    name: str
    id: str
    descriptor_set: bytes
    message_class: MessageClass

    def __init__(self, name: str, descriptor_set: bytes) -> None:
        raw_id, _, _, _ = _native.schema_info(name, descriptor_set)
        self.name = name
        self.id = _native.intent_id_str(raw_id)
        self.descriptor_set = descriptor_set
        self._pool = pool_of(descriptor_set)
        self.message_class = message_factory.GetMessageClass(self._pool.FindMessageTypeByName(name))

    def decode(self, payload: bytes) -> Message:
        """Decodes an encoded message of this intent."""
        return self.message_class.FromString(payload)

    def related(self, name: str) -> MessageClass:
        """The class of another message the schema defines (a reply, a stream item)."""
        return message_factory.GetMessageClass(self._pool.FindMessageTypeByName(name))

    def __repr__(self) -> str:
        return f"<Schema {self.name} {self.id}>"


def pool_of(encoded_set: bytes) -> descriptor_pool.DescriptorPool:
    """A descriptor pool of every file in an encoded ``FileDescriptorSet``."""
    fds = descriptor_pb2.FileDescriptorSet.FromString(encoded_set)
    files = {f.name: f for f in fds.file}
    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()

    def add(name: str, depth: int) -> None:
        if name in added:
            return
        if depth > 64:
            raise SchemaError("the descriptor set's imports nest too deep")
        f = files.get(name)
        if f is None:
            raise SchemaError(f"the descriptor set lacks {name}")
        for dependency in f.dependency:
            add(dependency, depth + 1)
        pool.Add(f)
        added.add(name)

    for name in files:
        add(name, 0)
    return pool


Describable = Union[str, bytes, MessageClass]
