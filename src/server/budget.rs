//! Server-wide memory budgets: client buffers (`--maxmemory-clients`) and the keyspace
//! (`--maxmemory`).
//!
//! Client buffers: every connection reports the capacity of its read and write buffers
//! after it changes ([`Budget::account`]). While the sum is over the budget, the
//! connections with the largest buffers are told to close ([`ConnMemory::evicted`]), biggest
//! first, until what is left fits, as Redis 7 does with `maxmemory-clients`.
//!
//! Keyspace: [`Budget::sample`] (every 100 ms, from the server's sampler task) compares the
//! process's resident memory, less the client buffers, with `--maxmemory`; while it is over,
//! [`Budget::over_maxmemory`] makes new grants fail with [`OOM`]. Releases always work, and
//! nothing held is evicted: a lock server must not drop a lock to make room. Resident memory
//! (from /proc, the figure INFO reports) is used rather than an allocator counter so that
//! the figure is the one an operator sees, whatever the allocator.
//!
//! Giving memory back: [`give_back`] asks mimalloc to return freed pages to the OS; a
//! connection that had large buffers calls it when it closes (mimalloc otherwise purges
//! only when the thread allocates again, so an idle server kept hundreds of MB), and every
//! worker thread collects its own heap at its next park or unpark ([`collect_if_asked`]),
//! since a block freed by one thread goes back only through the thread that allocated it.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::error::RespError;

/// `-OOM command not allowed when used memory > 'maxmemory'.` (Redis's text).
pub const OOM: RespError =
    RespError::fixed("OOM command not allowed when used memory > 'maxmemory'.");

/// A connection whose buffers reached this many bytes gives memory back when it closes.
pub const GIVE_BACK_BYTES: usize = 1 << 20;

/// One connection's share of the client budget.
#[derive(Debug)]
pub struct ConnMemory {
    bytes: AtomicUsize,
    evicted: AtomicBool,
    notify: Notify,
    /// Whether a budget is set: without one, [`evicted`](Self::evicted) never resolves
    /// and costs nothing (registering with the `Notify` on every read would be work on every
    /// request).
    watched: bool,
}

impl ConnMemory {
    /// Resolves once the budget has chosen this connection to close.
    pub async fn evicted(&self) {
        if !self.watched {
            return std::future::pending().await;
        }
        loop {
            let notified = self.notify.notified();
            if self.evicted.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }

    /// Whether the budget has chosen this connection to close.
    pub fn is_evicted(&self) -> bool {
        self.evicted.load(Ordering::Acquire)
    }
}

/// The server's memory budgets.
#[derive(Debug)]
pub struct Budget {
    clients_limit: usize,
    clients_total: AtomicUsize,
    conns: Mutex<HashMap<u64, Arc<ConnMemory>>>,
    maxmemory: usize,
    over: AtomicBool,
}

impl Budget {
    /// Budgets of `clients_limit` bytes for client buffers and `maxmemory` bytes for the
    /// rest (0: none).
    pub fn new(clients_limit: usize, maxmemory: usize) -> Self {
        Budget {
            clients_limit,
            clients_total: AtomicUsize::new(0),
            conns: Mutex::new(HashMap::new()),
            maxmemory,
            over: AtomicBool::new(false),
        }
    }

    /// A new connection's share (zero bytes).
    pub fn register(&self, id: u64) -> Arc<ConnMemory> {
        let mem = Arc::new(ConnMemory {
            bytes: AtomicUsize::new(0),
            evicted: AtomicBool::new(false),
            notify: Notify::new(),
            watched: self.clients_limit > 0,
        });
        if self.clients_limit > 0 {
            self.conns.lock().insert(id, mem.clone());
        }
        mem
    }

    /// A closed connection's bytes leave the total.
    pub fn unregister(&self, id: u64, mem: &ConnMemory) {
        self.account(mem, 0);
        if self.clients_limit > 0 {
            self.conns.lock().remove(&id);
        }
    }

    /// Client-buffer bytes of all connections.
    pub fn clients_bytes(&self) -> usize {
        self.clients_total.load(Ordering::Relaxed)
    }

    /// Records that a connection's buffers now hold `bytes`; over the budget, closes the
    /// largest connections.
    pub fn account(&self, mem: &ConnMemory, bytes: usize) {
        let old = mem.bytes.swap(bytes, Ordering::Relaxed);
        if bytes >= old {
            self.clients_total.fetch_add(bytes - old, Ordering::Relaxed);
        } else {
            self.clients_total.fetch_sub(old - bytes, Ordering::Relaxed);
        }
        if self.clients_limit > 0 && bytes > old && self.clients_bytes() > self.clients_limit {
            self.evict();
        }
    }

    /// Marks the largest connections for closing until the others fit in the budget.
    fn evict(&self) {
        let conns = self.conns.lock();
        let mut left: usize = conns
            .values()
            .filter(|m| !m.is_evicted())
            .map(|m| m.bytes.load(Ordering::Relaxed))
            .sum();
        while left > self.clients_limit {
            let Some(biggest) = conns
                .values()
                .filter(|m| !m.is_evicted())
                .max_by_key(|m| m.bytes.load(Ordering::Relaxed))
            else {
                break;
            };
            left = left.saturating_sub(biggest.bytes.load(Ordering::Relaxed));
            biggest.evicted.store(true, Ordering::Release);
            biggest.notify.notify_waiters();
            metrics::counter!("baton_clients_evicted_total").increment(1);
            tracing::info!("client buffers over --maxmemory-clients: closing the largest");
        }
    }

    /// Whether new grants are refused (`--maxmemory`).
    pub fn over_maxmemory(&self) -> bool {
        self.over.load(Ordering::Relaxed)
    }

    /// Whether `--maxmemory` is set (the sampler runs only then).
    pub fn limits_keyspace(&self) -> bool {
        self.maxmemory > 0
    }

    /// Compares the memory in use (resident, less client buffers) with `--maxmemory`.
    pub fn sample(&self) {
        if self.maxmemory == 0 {
            return;
        }
        let resident = usize::try_from(crate::metrics::rss_bytes()).unwrap_or(usize::MAX);
        let used = resident.saturating_sub(self.clients_bytes());
        self.over.store(used > self.maxmemory, Ordering::Relaxed);
    }
}

/// Counts [`give_back`] calls: each worker thread compares it with the count it last
/// collected at when it parks or unparks ([`collect_if_asked`]).
static GIVE_BACK_ROUND: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// The [`GIVE_BACK_ROUND`] this thread last collected at.
    static COLLECTED_ROUND: Cell<u64> = const { Cell::new(0) };
}

/// Returns freed memory to the OS: now on this thread, and on every other worker thread at
/// its next park or unpark. mimalloc gives back a block freed by another thread only when
/// the thread that allocated it collects, and a connection's task may have grown its
/// buffers on one worker and closed on the other.
pub fn give_back() {
    GIVE_BACK_ROUND.fetch_add(1, Ordering::Relaxed);
    collect_if_asked();
}

/// For the runtime's `on_thread_park` and `on_thread_unpark`: collects this thread's heap
/// if [`give_back`] was called since it last did (one atomic load otherwise).
pub fn collect_if_asked() {
    let round = GIVE_BACK_ROUND.load(Ordering::Relaxed);
    COLLECTED_ROUND.with(|seen| {
        if seen.get() != round {
            seen.set(round);
            // SAFETY: `mi_collect` takes no pointers and only walks mimalloc's own
            // structures for the calling thread and abandoned segments, under mimalloc's
            // locking; it is safe to call from any thread at any time, also when mimalloc
            // is not the global allocator (then it has nothing to free).
            unsafe { libmimalloc_sys::mi_collect(true) };
        }
    });
}
