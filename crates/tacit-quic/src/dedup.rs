//! The idempotent-retry window: an ask re-sent with the same message id (by
//! the same agent, on any connection) runs at most once while it is in the
//! window. The first attempt runs; a retry that arrives while it runs waits
//! for its answer; a retry after it answered gets the same answer again.

use std::collections::VecDeque;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

use tacit_handshake::AgentId;
use tacit_wire::Envelope;

use crate::fast::FastMap;
use crate::frames::FrameSink;

/// Identifies an ask across connections: who sent it, and its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AskKey {
    pub(crate) peer: AgentId,
    pub(crate) id: u64,
}

impl Hash for AskKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // One word: the id, mixed with the start of the peer's key. Equality
        // still compares the whole AgentId.
        let mut start = [0u8; 8];
        start.copy_from_slice(&self.peer.as_bytes()[..8]);
        state.write_u64(self.id ^ u64::from_le_bytes(start));
    }
}

/// Where a duplicate should get its answer: the stream it came on.
type Waiter = FrameSink;

#[derive(Debug)]
enum Entry {
    Running(Vec<Waiter>),
    Done(Envelope),
}

/// What to do with an incoming ask.
#[derive(Debug)]
pub(crate) enum Begin {
    /// Run it.
    Run,
    /// It already ran: send this answer (its `in_reply_to` is the same id).
    Answered(Envelope),
    /// It is running; the answer will be written to this stream too.
    Joined,
}

/// A bounded window of recent asks per endpoint.
#[derive(Debug)]
pub(crate) struct Dedup {
    capacity: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    entries: FastMap<AskKey, Entry>,
    order: VecDeque<AskKey>,
}

impl Dedup {
    pub(crate) fn new(capacity: usize) -> Self {
        Self { capacity, state: Mutex::new(State::default()) }
    }

    /// Whether the window is on (asks enter it).
    pub(crate) fn is_on(&self) -> bool {
        self.capacity > 0
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers an incoming ask; `writer` is where its answer goes.
    pub(crate) fn begin(&self, key: AskKey, writer: &Waiter) -> Begin {
        if self.capacity == 0 {
            return Begin::Run;
        }
        let mut state = self.state();
        let full = state.order.len() >= self.capacity;
        let oldest = if full { state.order.front().copied() } else { None };
        match state.entries.entry(key) {
            std::collections::hash_map::Entry::Occupied(mut entry) => match entry.get_mut() {
                Entry::Done(answer) => Begin::Answered(answer.clone()),
                Entry::Running(waiters) => {
                    waiters.push(writer.clone());
                    Begin::Joined
                }
            },
            std::collections::hash_map::Entry::Vacant(vacant) => {
                vacant.insert(Entry::Running(Vec::new()));
                state.order.push_back(key);
                // Oldest first out; a running entry that falls out loses its
                // duplicates' waiters, which then see their stream end.
                if let Some(oldest) = oldest {
                    state.order.pop_front();
                    state.entries.remove(&oldest);
                }
                Begin::Run
            }
        }
    }

    /// Forgets an ask that did not run (refused before its handler), telling
    /// any duplicate that joined meanwhile the same answer.
    pub(crate) fn abandon(&self, key: AskKey, answer: &Envelope) {
        let waiters = match self.state().entries.remove(&key) {
            Some(Entry::Running(waiters)) => waiters,
            _ => Vec::new(),
        };
        send_to(waiters, answer);
    }

    /// Records the answer of a finished ask (already sent on its own stream)
    /// and sends it to the duplicates waiting for it.
    pub(crate) fn finish(&self, key: AskKey, answer: Envelope) {
        let waiters = {
            let mut state = self.state();
            match state.entries.get_mut(&key) {
                Some(entry) => match entry {
                    Entry::Running(waiters) => {
                        let waiters = std::mem::take(waiters);
                        if waiters.is_empty() {
                            *entry = Entry::Done(answer);
                            return;
                        }
                        *entry = Entry::Done(answer.clone());
                        waiters
                    }
                    Entry::Done(_) => return,
                },
                None => return,
            }
        };
        send_to(waiters, &answer);
    }
}

fn send_to(waiters: Vec<Waiter>, answer: &Envelope) {
    for waiter in waiters {
        let _ = waiter.push(answer, usize::MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use tacit_handshake::Identity;
    use tacit_wire::{Act, IntentRef};

    #[test]
    fn window_is_bounded() {
        let dedup = Dedup::new(2);
        let peer = Identity::from_secret_bytes(&[1; 32]).agent_id();
        let key = |id| AskKey { peer, id };
        let (tx, _rx) = FrameSink::new(Bytes::new());
        assert!(matches!(dedup.begin(key(1), &tx), Begin::Run));
        assert!(matches!(dedup.begin(key(1), &tx), Begin::Joined));
        let answer = Envelope::new(IntentRef::Alias(1), Act::Inform, 9, Bytes::new());
        dedup.finish(key(1), answer);
        assert!(matches!(dedup.begin(key(1), &tx), Begin::Answered(_)));
        assert!(matches!(dedup.begin(key(2), &tx), Begin::Run));
        assert!(matches!(dedup.begin(key(3), &tx), Begin::Run));
        // The oldest (1) fell out of the window.
        assert!(matches!(dedup.begin(key(1), &tx), Begin::Run));
        assert_eq!(dedup.state().entries.len(), 2);
    }
}
