//! Conversations (messages threaded by conversation id and `in_reply_to`)
//! and the FIPA contract-net protocol on top of them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tacit_handshake::AgentId;
use tacit_quic::TellOptions;
use tacit_wire::{Act, ConversationId};
use tokio::task::JoinSet;

use crate::AskOptions;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::intent::{Intent, Request};
use crate::intents::RejectProposal;
use crate::peer::Peer;
use crate::reply::Reply;

/// A conversation with one peer: every message carries the conversation id
/// and answers (`in_reply_to`) the last message received in it.
#[derive(Debug, Clone)]
pub struct Conversation {
    peer: Peer,
    id: ConversationId,
    last_received: Arc<AtomicU64>,
}

impl Conversation {
    pub(crate) fn new(peer: Peer) -> Self {
        Self { peer, id: fresh_conversation_id(), last_received: Arc::new(AtomicU64::new(0)) }
    }

    pub(crate) fn resume(peer: Peer, id: ConversationId, last_received: u64) -> Self {
        Self { peer, id, last_received: Arc::new(AtomicU64::new(last_received)) }
    }

    /// The conversation id.
    pub fn id(&self) -> ConversationId {
        self.id
    }

    /// The peer.
    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    /// Asks within the conversation (`REQUEST`).
    pub async fn ask<R: Request>(&self, request: R) -> Result<R::Reply> {
        self.ask_as(Act::Request, request).await.map(|reply| reply.message)
    }

    /// Asks within the conversation with another act (`CFP`, `ACCEPT`, `QUERY`, ...).
    pub async fn ask_as<R: Request>(&self, act: Act, request: R) -> Result<Reply<R::Reply>> {
        self.ask_with(request, AskOptions::default().act(act)).await
    }

    /// Asks within the conversation with options (its conversation id and
    /// `in_reply_to` are set by the conversation).
    pub async fn ask_with<R: Request>(&self, request: R, options: AskOptions) -> Result<Reply<R::Reply>> {
        let options = options.conversation(self.id).in_reply_to(self.last_received.load(Ordering::Relaxed));
        let (reply, message_id) = self.peer.ask_envelope::<R>(|| request.encode_to_vec().into(), options).await?;
        self.last_received.store(message_id, Ordering::Relaxed);
        Ok(reply)
    }

    /// Tells within the conversation (`INFORM`).
    pub async fn tell<I: Intent>(&self, message: I) -> Result<()> {
        self.tell_as(Act::Inform, message).await
    }

    /// Tells within the conversation with another act (`REJECT`, `AGREE`, `CANCEL`, ...).
    pub async fn tell_as<I: Intent>(&self, act: Act, message: I) -> Result<()> {
        let options = TellOptions::default()
            .act(act)
            .conversation(self.id)
            .in_reply_to(self.last_received.load(Ordering::Relaxed));
        self.peer.tell_with(message, options).await
    }
}

/// A fresh random conversation id: 32 hex digits.
impl Peer {
    /// Starts a conversation with this peer: a fresh conversation id that its
    /// messages carry, each answering the last one received.
    pub fn conversation(&self) -> Conversation {
        Conversation::new(self.clone())
    }
}

impl Context {
    /// Continues the message's conversation with the sender: what it sends
    /// carries the same conversation id and answers this message.
    pub fn conversation(&self) -> Conversation {
        Conversation::resume(self.peer().clone(), self.conversation_id(), self.message_id())
    }
}

fn fresh_conversation_id() -> ConversationId {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // No OS randomness: fall back to time and a counter, still unique here.
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        bytes[..8].copy_from_slice(&(nanos as u64).to_le_bytes());
        bytes[8..].copy_from_slice(&COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    ConversationId::new(&hex).unwrap_or(ConversationId::none())
}

/// A participant's answer to a call for proposals, with its message id.
type Answer<P> = Result<(Reply<P>, u64)>;

/// One proposal received in a [`ContractNet`] round (a `Bid` to keep it apart
/// from the standard intent [`intents::Proposal`](crate::intents::Proposal)).
/// It may carry any proposal type `P`.
#[derive(Debug, Clone)]
pub struct Bid<P> {
    /// Who proposed.
    pub peer: Peer,
    /// What it proposed.
    pub proposal: P,
    /// The proposal's message id (what acceptance and rejection answer).
    pub proposal_id: u64,
}

/// The FIPA contract-net protocol with typed contents, as the initiator.
///
/// 1. [`call_for_proposals`](Self::call_for_proposals) sends the task (a
///    [`Request`] whose reply type is the proposal) with act `CFP` to every
///    participant at once and collects `PROPOSE` answers until the deadline;
///    refusals, failures and late or lost answers are kept apart.
/// 2. [`Round::award`] accepts one proposal (an `ACCEPT` ask whose reply is
///    the result, `INFORM`) and rejects the others (`REJECT` tells carrying
///    [`RejectProposal`]).
///
/// All messages of a round share one conversation id and answer each other
/// by `in_reply_to`. A participant handles the task with an ordinary
/// [`AgentBuilder::handle`](crate::AgentBuilder::handle) handler: its reply
/// goes out as `PROPOSE` because the ask was a `CFP`; returning a
/// [`Rejection`](crate::Rejection) refuses to bid.
#[derive(Debug, Clone)]
pub struct ContractNet {
    participants: Vec<Peer>,
    deadline: Duration,
}

impl ContractNet {
    /// A contract net among `participants`; proposals are collected for
    /// `deadline` after the call.
    pub fn new(participants: impl IntoIterator<Item = Peer>, deadline: Duration) -> Self {
        Self { participants: participants.into_iter().collect(), deadline }
    }

    /// Calls for proposals on `task` and waits for the answers (at most the
    /// deadline).
    pub async fn call_for_proposals<T: Request>(&self, task: T) -> Round<T::Reply> {
        let conversation = fresh_conversation_id();
        let payload: bytes::Bytes = task.encode_to_vec().into();
        let mut calls = JoinSet::new();
        for (index, peer) in self.participants.iter().enumerate() {
            let peer = peer.clone();
            let payload = payload.clone();
            let options = AskOptions::default().act(Act::Cfp).conversation(conversation).deadline(self.deadline);
            calls.spawn(async move { (index, peer.ask_envelope::<T>(|| payload.clone(), options).await) });
        }
        let mut answers: Vec<(usize, Answer<T::Reply>)> = Vec::with_capacity(self.participants.len());
        // Each ask stops at the deadline by itself; the outer bound only
        // guards against a task that cannot be polled in time.
        let collect = async {
            while let Some(joined) = calls.join_next().await {
                if let Ok(answer) = joined {
                    answers.push(answer);
                }
            }
        };
        let _ = tokio::time::timeout(self.deadline + Duration::from_secs(1), collect).await;
        calls.abort_all();
        answers.sort_by_key(|(index, _)| *index);
        let mut round = Round { conversation, proposals: Vec::new(), declined: Vec::new() };
        let mut answered = vec![false; self.participants.len()];
        for (index, answer) in answers {
            answered[index] = true;
            let peer = self.participants[index].clone();
            match answer {
                Ok((reply, proposal_id)) if reply.act == Act::Propose => {
                    round.proposals.push(Bid { peer, proposal: reply.message, proposal_id });
                }
                Ok((reply, _)) => round.declined.push((
                    peer.id(),
                    Error::UnexpectedReply { expected: "a PROPOSE", found: format!("{:?}", reply.act) },
                )),
                Err(error) => round.declined.push((peer.id(), error)),
            }
        }
        for (index, peer) in self.participants.iter().enumerate() {
            if !answered[index] {
                round.declined.push((peer.id(), Error::DeadlineExceeded { intent: T::NAME }));
            }
        }
        round
    }
}

/// The answers to one call for proposals.
#[derive(Debug)]
pub struct Round<P> {
    conversation: ConversationId,
    /// The proposals, in the order of the participants.
    pub proposals: Vec<Bid<P>>,
    /// Participants that refused, failed, answered late or could not be reached.
    pub declined: Vec<(AgentId, Error)>,
}

impl<P: Intent> Round<P> {
    /// The conversation id of the round.
    pub fn conversation(&self) -> ConversationId {
        self.conversation
    }

    /// The index of the best proposal by `key` (smallest first), if any.
    pub fn best_by_key<K: PartialOrd>(&self, mut key: impl FnMut(&P) -> K) -> Option<usize> {
        let mut best: Option<(usize, K)> = None;
        for (index, proposal) in self.proposals.iter().enumerate() {
            let k = key(&proposal.proposal);
            if best.as_ref().is_none_or(|(_, best_key)| k < *best_key) {
                best = Some((index, k));
            }
        }
        best.map(|(index, _)| index)
    }

    /// Accepts proposal `winner` with `acceptance` (an `ACCEPT` ask; its
    /// reply is the result) and rejects every other proposal with `reason`.
    /// Rejections are sent while the acceptance runs; one that cannot be
    /// delivered does not fail the award.
    pub async fn award<A: Request>(self, winner: usize, acceptance: A, reason: &str) -> Result<A::Reply> {
        self.award_inner(winner, acceptance, reason, false).await.map(|reply| reply.message)
    }

    /// Like [`award`](Self::award), with receipts on both sides: the
    /// acceptance is signed ([`AskOptions::signed`]), so the winner can keep
    /// the initiator's award as a receipt
    /// ([`Context::receipt`](crate::Context::receipt)), and asks for a
    /// signed confirmation ([`AskOptions::sign_reply`]), which the returned
    /// reply carries, verified ([`Reply::receipt`]). An unsigned
    /// confirmation is an error ([`Error::ReplyUnsigned`]).
    pub async fn award_signed<A: Request>(self, winner: usize, acceptance: A, reason: &str) -> Result<Reply<A::Reply>> {
        self.award_inner(winner, acceptance, reason, true).await
    }

    async fn award_inner<A: Request>(
        self,
        winner: usize,
        acceptance: A,
        reason: &str,
        signed: bool,
    ) -> Result<Reply<A::Reply>> {
        let Round { conversation, mut proposals, .. } = self;
        if winner >= proposals.len() {
            return Err(Error::Decode { intent: A::NAME, reason: format!("no proposal {winner}") });
        }
        let chosen = proposals.swap_remove(winner);
        let rejections = reject(proposals, conversation, reason);
        let options = AskOptions::default()
            .act(Act::Accept)
            .conversation(conversation)
            .in_reply_to(chosen.proposal_id)
            .signed(signed)
            .sign_reply(signed);
        let accepted = chosen.peer.ask_envelope::<A>(|| acceptance.encode_to_vec().into(), options);
        let (accepted, ()) = tokio::join!(accepted, rejections);
        accepted.map(|(reply, _)| reply)
    }

    /// Rejects every proposal with `reason`.
    pub async fn reject_all(self, reason: &str) {
        reject(self.proposals, self.conversation, reason).await;
    }
}

async fn reject<P>(proposals: Vec<Bid<P>>, conversation: ConversationId, reason: &str) {
    let mut sends = JoinSet::new();
    for proposal in proposals {
        let message = RejectProposal { proposal_id: proposal.proposal_id, reason: reason.to_owned() };
        let options =
            TellOptions::default().act(Act::Reject).conversation(conversation).in_reply_to(proposal.proposal_id);
        let peer = proposal.peer;
        // Only to peers that take rejections; others simply hear nothing more.
        if peer.can_send::<RejectProposal>() {
            sends.spawn(async move { peer.tell_with(message, options).await });
        }
    }
    while let Some(sent) = sends.join_next().await {
        if let Ok(Err(error)) = sent {
            tracing::debug!(%error, "a proposal rejection was not delivered");
        }
    }
}
