from tacit.v1 import options_pb2 as _options_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DescribeAgent(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AgentDescription(_message.Message):
    __slots__ = ("name", "description", "roles", "software_version", "metadata", "intents")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    SOFTWARE_VERSION_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    INTENTS_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    roles: _containers.RepeatedScalarFieldContainer[str]
    software_version: str
    metadata: _containers.ScalarMap[str, str]
    intents: _containers.RepeatedCompositeFieldContainer[IntentInfo]
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., roles: _Optional[_Iterable[str]] = ..., software_version: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., intents: _Optional[_Iterable[_Union[IntentInfo, _Mapping]]] = ...) -> None: ...

class IntentInfo(_message.Message):
    __slots__ = ("intent_id", "name", "handles", "emits")
    INTENT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    HANDLES_FIELD_NUMBER: _ClassVar[int]
    EMITS_FIELD_NUMBER: _ClassVar[int]
    intent_id: bytes
    name: str
    handles: bool
    emits: bool
    def __init__(self, intent_id: _Optional[bytes] = ..., name: _Optional[str] = ..., handles: _Optional[bool] = ..., emits: _Optional[bool] = ...) -> None: ...
