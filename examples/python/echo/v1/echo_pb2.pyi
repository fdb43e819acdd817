from tacit.v1 import options_pb2 as _options_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class Echo(_message.Message):
    __slots__ = ("text", "sent_at_micros")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SENT_AT_MICROS_FIELD_NUMBER: _ClassVar[int]
    text: str
    sent_at_micros: int
    def __init__(self, text: _Optional[str] = ..., sent_at_micros: _Optional[int] = ...) -> None: ...

class Echoed(_message.Message):
    __slots__ = ("text", "sent_at_micros", "echo_number")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SENT_AT_MICROS_FIELD_NUMBER: _ClassVar[int]
    ECHO_NUMBER_FIELD_NUMBER: _ClassVar[int]
    text: str
    sent_at_micros: int
    echo_number: int
    def __init__(self, text: _Optional[str] = ..., sent_at_micros: _Optional[int] = ..., echo_number: _Optional[int] = ...) -> None: ...
