//! [`Client`], its builder, and the [`Acquire`] request builder.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use redis::Value;
use tokio::time::Instant;

use crate::conn::{Conn, ConnConfig};
use crate::error::{Error, LostReason, Result};
use crate::guard::LockGuard;
use crate::hold::{Hold, Kind};
use crate::info::{self, LockInfo};
use crate::owner::new_owner_id;
use crate::semaphore::Semaphore;

/// What the client and all its guards share.
pub(crate) struct Inner {
    pub conn: Conn,
    /// The runtime the client was made on: watchdogs and releases on drop run there.
    pub handle: tokio::runtime::Handle,
    /// The lease of semaphore acquires that name none.
    pub default_ttl: Duration,
}

/// A connection to a baton server or cluster; cheap to clone (clones share connections).
///
/// Every command that the server answers at once shares one multiplexed connection
/// (reconnected automatically); each waiting acquire uses a connection of its own, as the
/// server blocks that connection until the grant. Connection failures and `TRYAGAIN`
/// answers are retried with backoff (grants are idempotent for the same owner, so a
/// retried grant gets the same token back).
///
/// ```no_run
/// # async fn demo() -> baton_client::Result<()> {
/// use std::time::Duration;
/// let client = baton_client::Client::connect("redis://127.0.0.1:6379").await?;
/// let guard = client.lock("orders", Duration::from_secs(10)).wait(Duration::from_secs(5)).await?;
/// println!("token {}", guard.token());
/// guard.unlock().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.inner.conn.config)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connects to one node (`redis://host:port`, `redis://:password@host:port`) with the
    /// default settings, and checks that it answers.
    pub async fn connect(url: &str) -> Result<Client> {
        Client::builder().node(url).build().await
    }

    /// A builder for several nodes or other timeouts.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    fn acquire(&self, kind: Kind, keys: Vec<Vec<u8>>, ttl: Duration) -> Acquire {
        Acquire {
            client: self.clone(),
            hold: Hold {
                kind,
                keys,
                owner: String::new(),
                ttl,
            },
            wait: Wait::No,
            watchdog: true,
        }
    }

    /// An exclusive lock on `key` with a lease of `ttl` (`LOCK`). Await it to try once, or
    /// add [`Acquire::wait`] to wait in the key's queue.
    pub fn lock(&self, key: impl AsRef<[u8]>, ttl: Duration) -> Acquire {
        self.acquire(Kind::Lock, vec![key.as_ref().to_vec()], ttl)
    }

    /// A read lock on `key` (`RLOCK`): shared with other readers, excludes writers.
    pub fn read_lock(&self, key: impl AsRef<[u8]>, ttl: Duration) -> Acquire {
        self.acquire(Kind::Read, vec![key.as_ref().to_vec()], ttl)
    }

    /// A write lock on `key` (`WLOCK`): excludes readers and other writers.
    pub fn write_lock(&self, key: impl AsRef<[u8]>, ttl: Duration) -> Acquire {
        self.acquire(Kind::Write, vec![key.as_ref().to_vec()], ttl)
    }

    /// A shared write lock on `key` (`WLOCK ... SHARED`): shared with other shared
    /// writers, excludes readers and exclusive writers.
    pub fn shared_write_lock(&self, key: impl AsRef<[u8]>, ttl: Duration) -> Acquire {
        self.acquire(Kind::SharedWrite, vec![key.as_ref().to_vec()], ttl)
    }

    /// Exclusive locks on all `keys` at once, or none (`MLOCK`); the server orders the
    /// queues so that this never deadlocks, whatever order clients name the keys in. The
    /// guard has one token per key ([`LockGuard::tokens`]).
    pub fn lock_many<K: AsRef<[u8]>>(
        &self,
        keys: impl IntoIterator<Item = K>,
        ttl: Duration,
    ) -> Acquire {
        let keys = keys.into_iter().map(|k| k.as_ref().to_vec()).collect();
        self.acquire(Kind::Multi, keys, ttl)
    }

    /// The semaphore `name` (counting permits).
    pub fn semaphore(&self, name: impl AsRef<[u8]>) -> Semaphore {
        Semaphore::new(self.clone(), name.as_ref().to_vec())
    }

    /// Who holds and waits for `key` (`LOCK.INFO`); `None` when nobody does.
    pub async fn lock_info(&self, key: impl AsRef<[u8]>) -> Result<Option<LockInfo>> {
        let mut cmd = redis::cmd("LOCK.INFO");
        cmd.arg(key.as_ref());
        info::lock_info(self.inner.conn.query::<Value>(&cmd).await?)
    }

    /// Sends `PING` (retried like every command).
    pub async fn ping(&self) -> Result<()> {
        self.inner.conn.query::<String>(&redis::cmd("PING")).await?;
        Ok(())
    }

    /// Sends any command on the shared connection (for what this crate has no method for,
    /// e.g. `SEM.CREATE` variants or administration). The command must not wait on the
    /// server. It is retried after connection failures, so it should be idempotent.
    pub async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T> {
        Ok(self.inner.conn.query(cmd).await?)
    }
}

/// Settings for a [`Client`]; from [`Client::builder`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    nodes: Vec<String>,
    config: ConnConfig,
    default_ttl: Duration,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        ClientBuilder {
            nodes: Vec::new(),
            config: ConnConfig {
                connect_timeout: Duration::from_secs(1),
                response_timeout: Duration::from_secs(5),
                retry_timeout: Duration::from_secs(10),
            },
            default_ttl: Duration::from_secs(30),
        }
    }
}

impl ClientBuilder {
    /// Adds a node (`redis://host:port`). With several nodes of one cluster the client
    /// talks to one at a time and moves to the next when a connection to it fails; any
    /// node serves every command (followers forward to the leader).
    pub fn node(mut self, url: impl Into<String>) -> Self {
        self.nodes.push(url.into());
        self
    }

    /// Time to wait for a connection to a node (default 1 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.connect_timeout = timeout;
        self
    }

    /// Time to wait for the reply to a command that does not wait on the server
    /// (default 5 s). A waiting acquire allows its wait on top of this.
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.config.response_timeout = timeout;
        self
    }

    /// How long a command is sent again after connection failures or `TRYAGAIN` answers
    /// before the error is returned (default 10 s). Lease renewals retry until the lease's
    /// end instead, waiting acquires until their wait's end.
    pub fn retry_timeout(mut self, timeout: Duration) -> Self {
        self.config.retry_timeout = timeout;
        self
    }

    /// The lease of semaphore acquires that set no [`Acquire::ttl`] (default 30 s, the
    /// watchdog timeout of Redisson).
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = ttl;
        self
    }

    /// Makes the client on the current tokio runtime (its watchdogs run there) and checks
    /// that a node answers `PING`.
    pub async fn build(self) -> Result<Client> {
        if self.nodes.is_empty() {
            return Err(Error::InvalidArgument("no node given"));
        }
        let nodes = self
            .nodes
            .iter()
            .map(|url| redis::Client::open(url.as_str()))
            .collect::<Result<Vec<_>, _>>()?;
        let client = Client {
            inner: Arc::new(Inner {
                conn: Conn::new(nodes, self.config)?,
                handle: tokio::runtime::Handle::current(),
                default_ttl: self.default_ttl,
            }),
        };
        client.ping().await?;
        Ok(client)
    }
}

/// How long an acquire waits.
#[derive(Debug, Clone, Copy)]
enum Wait {
    No,
    For(Duration),
    Forever,
}

/// A request for a lock or permits; await it (it implements [`IntoFuture`]) to get a
/// [`LockGuard`].
///
/// Without [`Acquire::wait`] it asks once and fails with [`Error::NotGranted`] if the key
/// is busy (a new request never passes queued waiters). With a wait it queues on the
/// server (strictly first come, first served) and fails with [`Error::NotGranted`] if the
/// wait runs out first. Dropping the future while it waits withdraws the request (its
/// connection closes, which takes it out of the queue) and releases a grant that may have
/// been made just then.
#[must_use = "an Acquire does nothing until it is awaited"]
#[derive(Debug)]
pub struct Acquire {
    client: Client,
    hold: Hold,
    wait: Wait,
    watchdog: bool,
}

impl Acquire {
    pub(crate) fn semaphore(
        client: Client,
        name: Vec<u8>,
        permits: u64,
        capacity: Option<u64>,
    ) -> Acquire {
        let ttl = client.inner.default_ttl;
        client.acquire(Kind::Semaphore { permits, capacity }, vec![name], ttl)
    }

    /// Waits up to `timeout` in the queue (`WAIT ms`, rounded up to whole ms). A zero
    /// timeout does not wait.
    pub fn wait(mut self, timeout: Duration) -> Self {
        self.wait = if timeout.is_zero() {
            Wait::No
        } else {
            Wait::For(timeout)
        };
        self
    }

    /// Waits until granted, however long (`WAIT 0`).
    pub fn wait_forever(mut self) -> Self {
        self.wait = Wait::Forever;
        self
    }

    /// The lease each grant and renewal asks for.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.hold.ttl = ttl;
        self
    }

    /// Uses `owner` as the owner id instead of a new unique one. Two requests with the same
    /// owner and key are the same hold to the server (a repeated grant returns the same
    /// token and resets the lease), so an owner must not be shared by guards that should
    /// exclude each other. At most 256 bytes.
    pub fn owner(mut self, owner: impl Into<String>) -> Self {
        self.hold.owner = owner.into();
        self
    }

    /// Whether the guard renews its lease in the background (default `true`). Without
    /// the watchdog the lease ends after its ttl unless [`LockGuard::refresh`] renews it.
    pub fn watchdog(mut self, on: bool) -> Self {
        self.watchdog = on;
        self
    }

    fn check(&self) -> Result<()> {
        if self.hold.ttl.is_zero() {
            return Err(Error::InvalidArgument("ttl must be at least 1 ms"));
        }
        if self.hold.keys.is_empty() {
            return Err(Error::InvalidArgument("no key given"));
        }
        if let Kind::Semaphore { permits, capacity } = self.hold.kind {
            if permits == 0 || capacity == Some(0) {
                return Err(Error::InvalidArgument(
                    "permits and capacity must be at least 1",
                ));
            }
        }
        if self.hold.owner.len() > 256 {
            return Err(Error::InvalidArgument("owner longer than 256 bytes"));
        }
        Ok(())
    }

    /// Sends the request (and waits, if asked) and returns the guard.
    pub async fn acquire(mut self) -> Result<LockGuard> {
        self.check()?;
        if self.hold.owner.is_empty() {
            self.hold.owner = new_owner_id();
        }
        let inner = self.client.inner.clone();
        let hold = self.hold;
        // Until the reply is read, a grant may exist that nobody knows of: if this future
        // is dropped (or fails) before then, release it.
        let mut pending = PendingGrant {
            inner: Some((inner.clone(), hold.clone())),
        };
        let reply = match self.wait {
            Wait::No => {
                let deadline = Instant::now() + inner.conn.config.retry_timeout;
                inner
                    .conn
                    .query_until::<Value>(&hold.grant(None), deadline)
                    .await
            }
            Wait::For(timeout) => {
                let until = Instant::now() + timeout;
                inner
                    .conn
                    .query_waiting(|ms| hold.grant(ms), Some(until))
                    .await
            }
            Wait::Forever => inner.conn.query_waiting(|ms| hold.grant(ms), None).await,
        };
        let (value, sent) = reply?;
        let tokens = match value {
            Value::Nil => {
                pending.disarm();
                return Err(Error::NotGranted);
            }
            Value::Int(token) => vec![token],
            Value::Array(items) => items
                .into_iter()
                .map(|item| match item {
                    Value::Int(token) => Ok(token),
                    other => Err(Error::UnexpectedReply(format!("token {other:?}"))),
                })
                .collect::<Result<Vec<_>>>()?,
            other => return Err(Error::UnexpectedReply(format!("grant {other:?}"))),
        };
        // A grant after a wait was made somewhere between the send and now, so its lease
        // is only sure from the send on. If the first renewal is already due, renew now
        // and count from the renewal instead.
        let mut sent = sent;
        if Instant::now() >= sent + hold.refresh_interval() {
            let deadline = Instant::now() + inner.conn.config.retry_timeout;
            let mut renewed_at = None;
            for cmd in hold.refreshes() {
                let (renewed, at) = inner.conn.query_until::<i64>(&cmd, deadline).await?;
                if renewed != 1 {
                    // Gone already (an operator's DEL right after the grant); `pending`
                    // releases what is left.
                    return Err(Error::LeaseLost(LostReason::NotHeld));
                }
                renewed_at.get_or_insert(at);
            }
            sent = renewed_at.unwrap_or(sent);
        }
        pending.disarm();
        Ok(LockGuard::new(inner, hold, tokens, sent, self.watchdog))
    }
}

impl IntoFuture for Acquire {
    type Output = Result<LockGuard>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<LockGuard>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.acquire())
    }
}

/// Releases a grant whose reply was never read (the acquire was dropped or failed).
struct PendingGrant {
    inner: Option<(Arc<Inner>, Hold)>,
}

impl PendingGrant {
    fn disarm(&mut self) {
        self.inner = None;
    }
}

impl Drop for PendingGrant {
    fn drop(&mut self) {
        if let Some((inner, hold)) = self.inner.take() {
            let handle = inner.handle.clone();
            handle.spawn(async move {
                let _ = inner.conn.query::<i64>(&hold.release()).await;
            });
        }
    }
}
