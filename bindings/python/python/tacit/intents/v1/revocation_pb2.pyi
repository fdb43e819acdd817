from tacit.v1 import options_pb2 as _options_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Revocations(_message.Message):
    __slots__ = ("signed_list",)
    SIGNED_LIST_FIELD_NUMBER: _ClassVar[int]
    signed_list: bytes
    def __init__(self, signed_list: _Optional[bytes] = ...) -> None: ...

class RevocationsApplied(_message.Message):
    __slots__ = ("status", "org_key", "issued_at_unix_s", "serials")
    class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATUS_UNSPECIFIED: _ClassVar[RevocationsApplied.Status]
        APPLIED: _ClassVar[RevocationsApplied.Status]
        STALE: _ClassVar[RevocationsApplied.Status]
    STATUS_UNSPECIFIED: RevocationsApplied.Status
    APPLIED: RevocationsApplied.Status
    STALE: RevocationsApplied.Status
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ORG_KEY_FIELD_NUMBER: _ClassVar[int]
    ISSUED_AT_UNIX_S_FIELD_NUMBER: _ClassVar[int]
    SERIALS_FIELD_NUMBER: _ClassVar[int]
    status: RevocationsApplied.Status
    org_key: bytes
    issued_at_unix_s: int
    serials: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, status: _Optional[_Union[RevocationsApplied.Status, str]] = ..., org_key: _Optional[bytes] = ..., issued_at_unix_s: _Optional[int] = ..., serials: _Optional[_Iterable[int]] = ...) -> None: ...
