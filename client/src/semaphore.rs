//! [`Semaphore`]: counting permits on the server (`SEM.*`).

use redis::Value;

use crate::client::{Acquire, Client};
use crate::error::Result;
use crate::info::{self, SemaphoreInfo};

/// A named semaphore on the server; from [`Client::semaphore`]. Cheap to clone.
///
/// ```no_run
/// # async fn demo(client: baton_client::Client) -> baton_client::Result<()> {
/// use std::time::Duration;
/// let pool = client.semaphore("gpu").capacity(4);
/// let permit = pool.acquire(1).wait(Duration::from_secs(30)).await?;
/// // ... at most 4 holders of one permit run here at once ...
/// permit.unlock().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Semaphore {
    client: Client,
    name: Vec<u8>,
    capacity: Option<u64>,
}

impl Semaphore {
    pub(crate) fn new(client: Client, name: Vec<u8>) -> Semaphore {
        Semaphore {
            client,
            name,
            capacity: None,
        }
    }

    /// Acquires create the semaphore with this capacity if it does not exist
    /// (`SEM.ACQUIRE ... CAPACITY c`); an existing semaphore keeps its capacity. Without
    /// it, acquiring a missing semaphore is the server's `ERR no such semaphore`.
    pub fn capacity(mut self, capacity: u64) -> Self {
        self.capacity = Some(capacity);
        self
    }

    /// The name (key) of the semaphore.
    pub fn name(&self) -> &[u8] {
        &self.name
    }

    /// Creates the semaphore, or sets the capacity of an existing one (`SEM.CREATE`;
    /// shrinking never revokes holders).
    pub async fn create(&self, capacity: u64) -> Result<()> {
        let mut cmd = redis::cmd("SEM.CREATE");
        cmd.arg(self.name.as_slice()).arg(capacity);
        self.client.inner.conn.query::<()>(&cmd).await?;
        Ok(())
    }

    /// A request for `permits` permits (`SEM.ACQUIRE`), with the client's default lease
    /// ([`ClientBuilder::default_ttl`](crate::ClientBuilder::default_ttl)) unless
    /// [`Acquire::ttl`] sets another. The guard's watchdog renews it; dropping or
    /// unlocking the guard releases all its permits (`SEM.RELEASE`).
    pub fn acquire(&self, permits: u64) -> Acquire {
        Acquire::semaphore(
            self.client.clone(),
            self.name.clone(),
            permits,
            self.capacity,
        )
    }

    /// Capacity, use, holders and waiters (`SEM.INFO`); `None` if it does not exist.
    pub async fn info(&self) -> Result<Option<SemaphoreInfo>> {
        let mut cmd = redis::cmd("SEM.INFO");
        cmd.arg(self.name.as_slice());
        info::semaphore_info(self.client.inner.conn.query::<Value>(&cmd).await?)
    }

    /// Deletes the semaphore (`SEM.DELETE`): its waiters get an error, its holders lose
    /// their leases. `true` if it existed.
    pub async fn delete(&self) -> Result<bool> {
        let mut cmd = redis::cmd("SEM.DELETE");
        cmd.arg(self.name.as_slice());
        Ok(self.client.inner.conn.query::<i64>(&cmd).await? == 1)
    }
}
