"""Tacit's standard intents (``proto/tacit/intents/v1``), which every agent
answers or understands: ping, health, describe, tasks, text, contract net."""

from tacit.intents.v1.contract_net_pb2 import (
    AcceptProposal,
    CallForProposals,
    ContractResult,
    Proposal,
    RejectProposal,
)
from tacit.intents.v1.describe_pb2 import AgentDescription, DescribeAgent, IntentInfo
from tacit.intents.v1.ping_pb2 import Health, HealthCheck, Ping, Pong
from tacit.intents.v1.revocation_pb2 import Revocations, RevocationsApplied
from tacit.intents.v1.task_pb2 import (
    CancelTask,
    DelegateTask,
    GetTask,
    ProvideInput,
    TaskState,
    TaskStatus,
    TaskUpdate,
)
from tacit.intents.v1.text_pb2 import TextResult, TextTask

__all__ = [
    "AcceptProposal",
    "AgentDescription",
    "CallForProposals",
    "CancelTask",
    "ContractResult",
    "DelegateTask",
    "DescribeAgent",
    "GetTask",
    "Health",
    "HealthCheck",
    "IntentInfo",
    "Ping",
    "Pong",
    "Proposal",
    "ProvideInput",
    "RejectProposal",
    "Revocations",
    "RevocationsApplied",
    "TaskState",
    "TaskStatus",
    "TaskUpdate",
    "TextResult",
    "TextTask",
]
