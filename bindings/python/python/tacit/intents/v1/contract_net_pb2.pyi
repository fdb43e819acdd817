from tacit.v1 import options_pb2 as _options_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class CallForProposals(_message.Message):
    __slots__ = ("task", "intent_id", "payload", "deadline_micros")
    TASK_FIELD_NUMBER: _ClassVar[int]
    INTENT_ID_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_MICROS_FIELD_NUMBER: _ClassVar[int]
    task: str
    intent_id: bytes
    payload: bytes
    deadline_micros: int
    def __init__(self, task: _Optional[str] = ..., intent_id: _Optional[bytes] = ..., payload: _Optional[bytes] = ..., deadline_micros: _Optional[int] = ...) -> None: ...

class Proposal(_message.Message):
    __slots__ = ("terms", "cost", "valid_for_micros", "payload")
    TERMS_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    VALID_FOR_MICROS_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    terms: str
    cost: float
    valid_for_micros: int
    payload: bytes
    def __init__(self, terms: _Optional[str] = ..., cost: _Optional[float] = ..., valid_for_micros: _Optional[int] = ..., payload: _Optional[bytes] = ...) -> None: ...

class AcceptProposal(_message.Message):
    __slots__ = ("proposal_id", "payload")
    PROPOSAL_ID_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    proposal_id: int
    payload: bytes
    def __init__(self, proposal_id: _Optional[int] = ..., payload: _Optional[bytes] = ...) -> None: ...

class ContractResult(_message.Message):
    __slots__ = ("done", "result", "message")
    DONE_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    done: bool
    result: bytes
    message: str
    def __init__(self, done: _Optional[bool] = ..., result: _Optional[bytes] = ..., message: _Optional[str] = ...) -> None: ...

class RejectProposal(_message.Message):
    __slots__ = ("proposal_id", "reason")
    PROPOSAL_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    proposal_id: int
    reason: str
    def __init__(self, proposal_id: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...
