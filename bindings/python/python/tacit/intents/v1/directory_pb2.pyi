from tacit.v1 import options_pb2 as _options_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RegisterAgent(_message.Message):
    __slots__ = ("signed_record",)
    SIGNED_RECORD_FIELD_NUMBER: _ClassVar[int]
    signed_record: bytes
    def __init__(self, signed_record: _Optional[bytes] = ...) -> None: ...

class AgentRegistered(_message.Message):
    __slots__ = ("expires_at_unix_ms",)
    EXPIRES_AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    expires_at_unix_ms: int
    def __init__(self, expires_at_unix_ms: _Optional[int] = ...) -> None: ...

class AgentQuery(_message.Message):
    __slots__ = ("agent_id", "intent_id", "intent_name", "tag", "org_key", "role")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    INTENT_ID_FIELD_NUMBER: _ClassVar[int]
    INTENT_NAME_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    ORG_KEY_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    agent_id: bytes
    intent_id: bytes
    intent_name: str
    tag: str
    org_key: bytes
    role: str
    def __init__(self, agent_id: _Optional[bytes] = ..., intent_id: _Optional[bytes] = ..., intent_name: _Optional[str] = ..., tag: _Optional[str] = ..., org_key: _Optional[bytes] = ..., role: _Optional[str] = ...) -> None: ...

class FindAgents(_message.Message):
    __slots__ = ("query", "limit")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    query: AgentQuery
    limit: int
    def __init__(self, query: _Optional[_Union[AgentQuery, _Mapping]] = ..., limit: _Optional[int] = ...) -> None: ...

class AgentsFound(_message.Message):
    __slots__ = ("records", "truncated")
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedScalarFieldContainer[bytes]
    truncated: bool
    def __init__(self, records: _Optional[_Iterable[bytes]] = ..., truncated: _Optional[bool] = ...) -> None: ...

class WatchAgents(_message.Message):
    __slots__ = ("query",)
    QUERY_FIELD_NUMBER: _ClassVar[int]
    query: AgentQuery
    def __init__(self, query: _Optional[_Union[AgentQuery, _Mapping]] = ...) -> None: ...

class AgentChange(_message.Message):
    __slots__ = ("kind", "agent_id", "signed_record")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[AgentChange.Kind]
        PRESENT: _ClassVar[AgentChange.Kind]
        EXPIRED: _ClassVar[AgentChange.Kind]
        SYNCED: _ClassVar[AgentChange.Kind]
    KIND_UNSPECIFIED: AgentChange.Kind
    PRESENT: AgentChange.Kind
    EXPIRED: AgentChange.Kind
    SYNCED: AgentChange.Kind
    KIND_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNED_RECORD_FIELD_NUMBER: _ClassVar[int]
    kind: AgentChange.Kind
    agent_id: bytes
    signed_record: bytes
    def __init__(self, kind: _Optional[_Union[AgentChange.Kind, str]] = ..., agent_id: _Optional[bytes] = ..., signed_record: _Optional[bytes] = ...) -> None: ...
