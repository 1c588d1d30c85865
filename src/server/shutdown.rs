//! Shutdown: a signal that every task listens to, and a count of live connections so that
//! `run` returns only after they finished their in-flight replies.
//!
//! Every connection polls its [`Shutdown`] next to each read, so listening must touch no
//! state that other tasks write: each subscriber gets its own waker slot, and only
//! [`ShutdownTrigger::shutdown`] walks the list of slots. (A `watch` channel would take a
//! shared read lock and a shared waiter-list mutex on every request: lock words that every
//! worker writes.)

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Poll, Waker};

use parking_lot::Mutex;
use tokio::sync::Notify;

/// The shutdown signal as seen by one task.
#[derive(Debug)]
pub struct Shutdown {
    signal: Arc<Signal>,
    /// This subscriber's waker, woken once when shutdown begins.
    slot: Arc<Mutex<Option<Waker>>>,
}

#[derive(Debug, Default)]
struct Signal {
    started: AtomicBool,
    /// Every subscriber's slot; dead ones are pruned as the list grows.
    slots: Mutex<Slots>,
}

#[derive(Debug, Default)]
struct Slots {
    list: Vec<Weak<Mutex<Option<Waker>>>>,
    /// List length after the last prune.
    kept: usize,
}

impl Signal {
    fn subscribe(self: &Arc<Self>) -> Shutdown {
        let slot = Arc::new(Mutex::new(None));
        let mut slots = self.slots.lock();
        if slots.list.len() >= 2 * slots.kept.max(16) {
            slots.list.retain(|s| s.strong_count() > 0);
            slots.kept = slots.list.len();
        }
        slots.list.push(Arc::downgrade(&slot));
        drop(slots);
        Shutdown {
            signal: self.clone(),
            slot,
        }
    }
}

impl Clone for Shutdown {
    /// Another subscriber with a slot of its own.
    fn clone(&self) -> Self {
        self.signal.subscribe()
    }
}

impl Shutdown {
    /// Whether shutdown began.
    pub fn is_started(&self) -> bool {
        self.signal.started.load(Ordering::SeqCst)
    }

    /// Resolves when shutdown begins (at once if it already has).
    pub fn started(&mut self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx| {
            if self.is_started() {
                return Poll::Ready(());
            }
            {
                let mut slot = self.slot.lock();
                if !slot.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    *slot = Some(cx.waker().clone());
                }
            }
            // Checked again after storing the waker: `shutdown` sets the flag before it
            // takes the wakers (both SeqCst), so either it sees this waker or this load
            // sees the flag.
            if self.is_started() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }
}

/// The sending side, owned by `server::run`.
#[derive(Debug)]
pub struct ShutdownTrigger {
    signal: Arc<Signal>,
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
        ShutdownTrigger {
            signal: Arc::default(),
            live: Arc::new(Live::default()),
        }
    }

    /// A receiver for a task.
    pub fn subscribe(&self) -> Shutdown {
        self.signal.subscribe()
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
        self.signal.started.store(true, Ordering::SeqCst);
        let slots = std::mem::take(&mut self.signal.slots.lock().list);
        for slot in slots.iter().filter_map(Weak::upgrade) {
            if let Some(waker) = slot.lock().take() {
                waker.wake();
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn every_waiting_subscriber_wakes_and_late_ones_see_it_at_once() {
        let trigger = ShutdownTrigger::new();
        let waiting: Vec<_> = (0..40)
            .map(|_| {
                let mut shutdown = trigger.subscribe();
                tokio::spawn(async move { shutdown.started().await })
            })
            .collect();
        // Subscribers that came and went must not keep the signal from the others.
        for _ in 0..100 {
            drop(trigger.subscribe());
        }
        let mut idle = trigger.subscribe();
        assert!(!idle.is_started());
        tokio::task::yield_now().await;
        trigger.shutdown(Duration::from_millis(10)).await;
        for task in waiting {
            tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .expect("woken")
                .expect("task");
        }
        assert!(idle.is_started());
        idle.started().await;
        let mut late = idle.clone();
        late.started().await;
        trigger.subscribe().started().await;
    }
}
