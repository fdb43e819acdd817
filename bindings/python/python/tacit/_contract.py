"""The FIPA contract net, as the initiator."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Optional, Union

from google.protobuf.message import Message

from tacit._peer import M, Peer, Reply
from tacit.errors import Act, DeadlineExceeded, DecodeError, ErrorCode, TacitError

log = logging.getLogger("tacit")


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
