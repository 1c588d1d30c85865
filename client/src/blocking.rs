//! A blocking facade for code that does not run on tokio: the same client, guards and
//! semaphores, with methods that block the calling thread.
//!
//! The [`Client`] owns a small tokio runtime (one worker thread) on which the connections
//! and the guards' watchdogs run, so leases are renewed while the calling thread does its
//! work. Do not call these methods from inside an async runtime (tokio panics when a
//! runtime blocks inside another); use the async [`crate::Client`] there.
//!
//! ```no_run
//! use std::time::Duration;
//! use baton_client::blocking::Client;
//!
//! let client = Client::connect("redis://127.0.0.1:6379")?;
//! let guard = client.lock("nightly-report", Duration::from_secs(30)).wait(Duration::from_secs(5)).acquire()?;
//! println!("writing with fencing token {}", guard.token());
//! guard.unlock()?;
//! # Ok::<(), baton_client::Error>(())
//! ```

use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Runtime;

use crate::error::{Error, LostReason, Result};
use crate::guard::LeaseState;
use crate::info::{LockInfo, SemaphoreInfo};

/// How long dropping a [`LockGuard`] waits for its release before leaving it to the lease.
const DROP_RELEASE_TIMEOUT: Duration = Duration::from_secs(5);

/// A blocking [`crate::Client`]; cheap to clone (clones share the runtime and connections).
#[derive(Debug, Clone)]
pub struct Client {
    rt: Arc<Runtime>,
    client: crate::Client,
}

impl Client {
    /// Connects to one node with the default settings (see [`crate::Client::connect`]).
    pub fn connect(url: &str) -> Result<Client> {
        Client::from_builder(crate::Client::builder().node(url))
    }

    /// Builds a client from an async [`crate::ClientBuilder`] (several nodes, timeouts).
    pub fn from_builder(builder: crate::ClientBuilder) -> Result<Client> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("baton-client")
            .enable_all()
            .build()
            .map_err(redis::RedisError::from)?;
        let client = rt.block_on(builder.build())?;
        Ok(Client {
            rt: Arc::new(rt),
            client,
        })
    }

    fn wrap(&self, acquire: crate::Acquire) -> Acquire {
        Acquire {
            rt: self.rt.clone(),
            acquire,
        }
    }

    /// An exclusive lock (see [`crate::Client::lock`]).
    pub fn lock(&self, key: impl AsRef<[u8]>, ttl: Duration) -> Acquire {
        self.wrap(self.client.lock(key, ttl))
    }

    /// A read lock (see [`crate::Client::read_lock`]).
    pub fn read_lock(&self, key: impl AsRef<[u8]>, ttl: Duration) -> Acquire {
        self.wrap(self.client.read_lock(key, ttl))
    }

    /// A write lock (see [`crate::Client::write_lock`]).
    pub fn write_lock(&self, key: impl AsRef<[u8]>, ttl: Duration) -> Acquire {
        self.wrap(self.client.write_lock(key, ttl))
    }

    /// A shared write lock (see [`crate::Client::shared_write_lock`]).
    pub fn shared_write_lock(&self, key: impl AsRef<[u8]>, ttl: Duration) -> Acquire {
        self.wrap(self.client.shared_write_lock(key, ttl))
    }

    /// Several keys at once (see [`crate::Client::lock_many`]).
    pub fn lock_many<K: AsRef<[u8]>>(
        &self,
        keys: impl IntoIterator<Item = K>,
        ttl: Duration,
    ) -> Acquire {
        self.wrap(self.client.lock_many(keys, ttl))
    }

    /// A semaphore (see [`crate::Client::semaphore`]).
    pub fn semaphore(&self, name: impl AsRef<[u8]>) -> Semaphore {
        Semaphore {
            rt: self.rt.clone(),
            semaphore: self.client.semaphore(name),
        }
    }

    /// `LOCK.INFO` (see [`crate::Client::lock_info`]).
    pub fn lock_info(&self, key: impl AsRef<[u8]>) -> Result<Option<LockInfo>> {
        self.rt.block_on(self.client.lock_info(key))
    }

    /// The async client this one wraps.
    pub fn as_async(&self) -> &crate::Client {
        &self.client
    }
}

/// A blocking [`crate::Acquire`]: set the wait and call [`Acquire::acquire`].
#[must_use = "an Acquire does nothing until acquire() is called"]
#[derive(Debug)]
pub struct Acquire {
    rt: Arc<Runtime>,
    acquire: crate::Acquire,
}

impl Acquire {
    /// Waits up to `timeout` in the queue (see [`crate::Acquire::wait`]).
    pub fn wait(mut self, timeout: Duration) -> Self {
        self.acquire = self.acquire.wait(timeout);
        self
    }

    /// Waits until granted (see [`crate::Acquire::wait_forever`]).
    pub fn wait_forever(mut self) -> Self {
        self.acquire = self.acquire.wait_forever();
        self
    }

    /// The lease (see [`crate::Acquire::ttl`]).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.acquire = self.acquire.ttl(ttl);
        self
    }

    /// A chosen owner id (see [`crate::Acquire::owner`]).
    pub fn owner(mut self, owner: impl Into<String>) -> Self {
        self.acquire = self.acquire.owner(owner);
        self
    }

    /// Whether the watchdog runs (see [`crate::Acquire::watchdog`]).
    pub fn watchdog(mut self, on: bool) -> Self {
        self.acquire = self.acquire.watchdog(on);
        self
    }

    /// Sends the request, blocks until granted (or not), and returns the guard.
    pub fn acquire(self) -> Result<LockGuard> {
        let guard = self.rt.block_on(self.acquire.acquire())?;
        Ok(LockGuard {
            rt: self.rt,
            guard: Some(guard),
        })
    }
}

/// A blocking [`crate::LockGuard`]. Dropping it releases the hold, blocking for up to
/// 5 s for the server's answer.
#[must_use = "dropping the guard releases the lock at once"]
#[derive(Debug)]
pub struct LockGuard {
    rt: Arc<Runtime>,
    /// Always `Some` until `unlock` or `drop` take it.
    guard: Option<crate::LockGuard>,
}

impl LockGuard {
    fn guard(&self) -> &crate::LockGuard {
        self.guard
            .as_ref()
            .expect("the guard is only taken by unlock and drop")
    }

    /// The fencing token (see [`crate::LockGuard::token`]).
    pub fn token(&self) -> i64 {
        self.guard().token()
    }

    /// The fencing tokens, one per key (see [`crate::LockGuard::tokens`]).
    pub fn tokens(&self) -> &[i64] {
        self.guard().tokens()
    }

    /// The owner id of the hold.
    pub fn owner(&self) -> &str {
        self.guard().owner()
    }

    /// The lease's state now.
    pub fn state(&self) -> LeaseState {
        self.guard().state()
    }

    /// `Ok(())` while held (see [`crate::LockGuard::ensure_held`]).
    pub fn ensure_held(&self) -> Result<()> {
        self.guard().ensure_held()
    }

    /// Whether the lease is held.
    pub fn is_held(&self) -> bool {
        self.guard().is_held()
    }

    /// Blocks until the lease is lost or `timeout` passes; `Some(reason)` if it was lost.
    pub fn wait_lost(&self, timeout: Duration) -> Option<LostReason> {
        let lost = self.guard().lost();
        self.rt
            .block_on(async { tokio::time::timeout(timeout, lost).await.ok() })
    }

    /// Renews the lease now (see [`crate::LockGuard::refresh`]).
    pub fn refresh(&self) -> Result<()> {
        self.rt.block_on(self.guard().refresh())
    }

    /// Stops the watchdog (see [`crate::LockGuard::stop_watchdog`]).
    pub fn stop_watchdog(&mut self) {
        if let Some(guard) = self.guard.as_mut() {
            guard.stop_watchdog();
        }
    }

    /// Releases the hold and reports the result (see [`crate::LockGuard::unlock`]).
    pub fn unlock(mut self) -> Result<()> {
        match self.guard.take() {
            Some(guard) => self.rt.block_on(guard.unlock()),
            None => Err(Error::LeaseLost(LostReason::NotHeld)),
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        let Some(guard) = self.guard.take() else {
            return;
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            // Inside some runtime blocking is not allowed: the async guard's drop releases
            // in a task on this client's runtime instead.
            drop(guard);
            return;
        }
        let _ = self
            .rt
            .block_on(async { tokio::time::timeout(DROP_RELEASE_TIMEOUT, guard.unlock()).await });
    }
}

/// A blocking [`crate::Semaphore`].
#[derive(Debug, Clone)]
pub struct Semaphore {
    rt: Arc<Runtime>,
    semaphore: crate::Semaphore,
}

impl Semaphore {
    /// Create on acquire with this capacity (see [`crate::Semaphore::capacity`]).
    pub fn capacity(mut self, capacity: u64) -> Self {
        self.semaphore = self.semaphore.capacity(capacity);
        self
    }

    /// `SEM.CREATE` (see [`crate::Semaphore::create`]).
    pub fn create(&self, capacity: u64) -> Result<()> {
        self.rt.block_on(self.semaphore.create(capacity))
    }

    /// A request for permits (see [`crate::Semaphore::acquire`]).
    pub fn acquire(&self, permits: u64) -> Acquire {
        Acquire {
            rt: self.rt.clone(),
            acquire: self.semaphore.acquire(permits),
        }
    }

    /// `SEM.INFO` (see [`crate::Semaphore::info`]).
    pub fn info(&self) -> Result<Option<SemaphoreInfo>> {
        self.rt.block_on(self.semaphore.info())
    }

    /// `SEM.DELETE` (see [`crate::Semaphore::delete`]).
    pub fn delete(&self) -> Result<bool> {
        self.rt.block_on(self.semaphore.delete())
    }
}
