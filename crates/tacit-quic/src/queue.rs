//! The queue of work for the application ([`Session::next_incoming`](crate::Session::next_incoming)):
//! a bounded `VecDeque` of [`Incoming`](crate::Incoming) under a short std mutex, never held across an
//! `.await`. It replaces a tokio `mpsc` channel behind a tokio mutex: an
//! item is moved into the queue once and out of it once, and taking
//! one costs a lock and no wake-up unless a producer waits for space.

use std::collections::VecDeque;
use std::pin::pin;
use std::sync::{Mutex, MutexGuard};

use tokio::sync::Notify;

#[derive(Debug)]
struct State<T> {
    items: VecDeque<T>,
    /// Set once the connection has closed: what is queued is still taken,
    /// then `None`.
    ended: bool,
    /// Consumers waiting in [`IncomingQueue::pop`].
    consumers: usize,
    /// Producers waiting for space.
    producers: usize,
}

/// Work for the application, bounded at `capacity` items for producers
/// that wait ([`push`](IncomingQueue::push)).
#[derive(Debug)]
pub(crate) struct IncomingQueue<T> {
    capacity: usize,
    state: Mutex<State<T>>,
    /// Wakes a consumer: an item was queued, or the queue ended.
    items: Notify,
    /// Wakes producers waiting for space.
    space: Notify,
}

impl<T> IncomingQueue<T> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            state: Mutex::new(State { items: VecDeque::new(), ended: false, consumers: 0, producers: 0 }),
            items: Notify::new(),
            space: Notify::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until the queue has room for one more item. Producers each
    /// wait before they [`push`](Self::push), so the queue holds at most
    /// its capacity plus one item per producer task.
    pub(crate) async fn reserve(&self) {
        loop {
            let space = self.space.notified();
            {
                let mut state = self.state();
                if state.items.len() < self.capacity {
                    return;
                }
                state.producers += 1;
            }
            let _waiting = Waiting { queue: self, producer: true };
            space.await;
        }
    }

    /// Queues `item` (after [`reserve`](Self::reserve)).
    pub(crate) fn push(&self, item: T) {
        let wake = {
            let mut state = self.state();
            state.items.push_back(item);
            state.consumers > 0
        };
        if wake {
            self.items.notify_one();
        }
    }

    /// Queues `item` if there is room; drops it otherwise.
    pub(crate) fn try_push(&self, item: T) {
        let wake = {
            let mut state = self.state();
            if state.items.len() >= self.capacity {
                return;
            }
            state.items.push_back(item);
            state.consumers > 0
        };
        if wake {
            self.items.notify_one();
        }
    }

    /// Ends the queue: consumers get what is queued, then `None`.
    pub(crate) fn end(&self) {
        self.state().ended = true;
        self.items.notify_waiters();
    }

    /// The next item; `None` once the queue has ended and is empty.
    pub(crate) async fn pop(&self) -> Option<T> {
        if let Some(item) = self.try_pop() {
            return item;
        }
        loop {
            let mut notified = pin!(self.items.notified());
            // Registered before looking, so that no push or end is missed.
            notified.as_mut().enable();
            {
                let mut state = self.state();
                if let Some(item) = self.take(&mut state) {
                    return item;
                }
                state.consumers += 1;
            }
            let _waiting = Waiting { queue: self, producer: false };
            notified.await;
        }
    }

    fn try_pop(&self) -> Option<Option<T>> {
        let mut state = self.state();
        self.take(&mut state)
    }

    /// An item, `Some(None)` at the end, `None` if the consumer must wait.
    fn take(&self, state: &mut State<T>) -> Option<Option<T>> {
        match state.items.pop_front() {
            Some(item) => {
                if state.producers > 0 {
                    self.space.notify_waiters();
                }
                Some(Some(item))
            }
            None if state.ended => Some(None),
            None => None,
        }
    }
}

/// Counts a waiting producer or consumer until it stops waiting (woken or dropped).
struct Waiting<'a, T> {
    queue: &'a IncomingQueue<T>,
    producer: bool,
}

impl<T> Drop for Waiting<'_, T> {
    fn drop(&mut self) {
        let mut state = self.queue.state();
        if self.producer {
            state.producers -= 1;
        } else {
            state.consumers -= 1;
        }
    }
}
