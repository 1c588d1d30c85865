//! Shutdown: a watch channel that every task listens to, and a count of live connections
//! so that `run` returns only after they finished their in-flight replies.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{watch, Notify};

/// The shutdown signal as seen by one task.
#[derive(Debug, Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

impl Shutdown {
    /// Whether shutdown began.
    pub fn is_started(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves when shutdown begins (at once if it already has).
    pub async fn started(&mut self) {
        let _ = self.rx.wait_for(|v| *v).await;
    }
}

/// The sending side, owned by `server::run`.
#[derive(Debug)]
pub struct ShutdownTrigger {
    tx: watch::Sender<bool>,
    live: Arc<Live>,
}

/// Live connection count.
#[derive(Debug, Default)]
pub struct Live {
    count: AtomicUsize,
    done: Notify,
}

/// Held by a connection task for its lifetime.
#[derive(Debug)]
pub struct LiveGuard {
    live: Arc<Live>,
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        if self.live.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.live.done.notify_waiters();
        }
    }
}

impl ShutdownTrigger {
    /// A new trigger.
    pub fn new() -> Self {
        let (tx, _) = watch::channel(false);
        ShutdownTrigger {
            tx,
            live: Arc::new(Live::default()),
        }
    }

    /// A receiver for a task.
    pub fn subscribe(&self) -> Shutdown {
        Shutdown {
            rx: self.tx.subscribe(),
        }
    }

    /// Counts a connection as live until the guard drops.
    pub fn track(&self) -> LiveGuard {
        self.live.count.fetch_add(1, Ordering::AcqRel);
        LiveGuard {
            live: self.live.clone(),
        }
    }

    /// Live connections now.
    pub fn live(&self) -> usize {
        self.live.count.load(Ordering::Acquire)
    }

    /// Signals shutdown and waits until every tracked connection ended (or `grace` passed).
    pub async fn shutdown(&self, grace: std::time::Duration) {
        let _ = self.tx.send(true);
        let wait = async {
            loop {
                let notified = self.live.done.notified();
                if self.live() == 0 {
                    return;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(grace, wait).await;
    }
}

impl Default for ShutdownTrigger {
    fn default() -> Self {
        ShutdownTrigger::new()
    }
}
