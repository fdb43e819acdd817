//! Graceful shutdown: counts the asks being handled and the reply streams
//! still flushing, so an endpoint can wait for both before it closes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, watch};

/// Shared by an endpoint and all its sessions.
#[derive(Debug)]
pub(crate) struct Drain {
    shutting_down: watch::Sender<bool>,
    /// Asks handed to the application and not yet answered, plus reply
    /// streams whose data is not yet acknowledged.
    busy: AtomicUsize,
    idle: Notify,
}

impl Default for Drain {
    fn default() -> Self {
        Self { shutting_down: watch::channel(false).0, busy: AtomicUsize::new(0), idle: Notify::new() }
    }
}

impl Drain {
    /// Whether new asks must be refused with `SHUTDOWN`.
    pub(crate) fn is_shutting_down(&self) -> bool {
        *self.shutting_down.borrow()
    }

    /// Resolves once shutdown has begun.
    pub(crate) async fn shutdown_begun(&self) {
        let mut rx = self.shutting_down.subscribe();
        let _ = rx.wait_for(|begun| *begun).await;
    }

    pub(crate) fn begin(&self) {
        self.shutting_down.send_replace(true);
    }

    /// Something that must finish before a graceful close started.
    pub(crate) fn enter(&self) {
        self.busy.fetch_add(1, Ordering::AcqRel);
    }

    /// It finished.
    pub(crate) fn leave(&self) {
        if self.busy.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle.notify_waiters();
        }
    }

    /// Waits until nothing is busy or `limit` passes; returns how much is
    /// still busy.
    pub(crate) async fn wait(&self, limit: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let idle = self.idle.notified();
            if self.busy.load(Ordering::Acquire) == 0 {
                return 0;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                return self.busy.load(Ordering::Acquire);
            }
        }
    }
}
