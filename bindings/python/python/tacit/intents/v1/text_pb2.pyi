from tacit.v1 import options_pb2 as _options_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class TextTask(_message.Message):
    __slots__ = ("skill", "text", "data_json", "context_id")
    SKILL_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    DATA_JSON_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_ID_FIELD_NUMBER: _ClassVar[int]
    skill: str
    text: str
    data_json: str
    context_id: str
    def __init__(self, skill: _Optional[str] = ..., text: _Optional[str] = ..., data_json: _Optional[str] = ..., context_id: _Optional[str] = ...) -> None: ...

class TextResult(_message.Message):
    __slots__ = ("text", "data_json", "task_id", "state", "context_id")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    DATA_JSON_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_ID_FIELD_NUMBER: _ClassVar[int]
    text: str
    data_json: str
    task_id: str
    state: str
    context_id: str
    def __init__(self, text: _Optional[str] = ..., data_json: _Optional[str] = ..., task_id: _Optional[str] = ..., state: _Optional[str] = ..., context_id: _Optional[str] = ...) -> None: ...
