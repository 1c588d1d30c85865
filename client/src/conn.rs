//! Connections to the baton nodes and the retry policy.
//!
//! The `redis` crate carries the protocol: its `ConnectionManager` multiplexes requests on
//! one connection and reconnects by itself after a drop. Every command that the server
//! answers at once (non-waiting grants, REFRESH, UNLOCK, the INFO commands) goes through
//! that shared manager. A waiting grant (`WAIT ms`) blocks its connection on the server
//! until it is granted, so it gets a connection of its own (from a small pool of idle
//! ones): on the shared one a watchdog's REFRESH would queue behind it and come too late.
//!
//! A request that fails on the way (the connection dropped or timed out, or the server
//! answered `TRYAGAIN`, `LOADING`, `MASTERDOWN`, `CLUSTERDOWN` or `READONLY`, as a cluster
//! does during a failover) is sent again with exponential backoff until its deadline.
//! That is safe for every command this crate sends: grants are idempotent for the same
//! owner (same token back), REFRESH and the releases can be repeated. With several nodes
//! configured, a connection failure moves the client to the next node.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Cmd, ErrorKind, FromRedisValue, RedisError, ServerErrorKind};
use tokio::time::Instant;

/// How the client talks to the cluster (timeouts and retries); set by the builder.
#[derive(Debug, Clone)]
pub(crate) struct ConnConfig {
    /// Time to wait for a TCP connection to a node.
    pub connect_timeout: Duration,
    /// Time to wait for the reply to a command that does not wait on the server.
    pub response_timeout: Duration,
    /// How long a command that does not wait is retried after connection errors.
    pub retry_timeout: Duration,
}

/// The response timeout of a connection that waits forever (`WAIT 0`): 30 years.
const FOREVER: Duration = Duration::from_secs(30 * 365 * 24 * 3600);

/// Idle connections kept for waiting grants.
const MAX_IDLE_WAIT_CONNECTIONS: usize = 8;

/// The shared connection to the current node.
struct Current {
    /// Index into `nodes`.
    index: usize,
    /// Counts node switches, so that many failing requests switch only once.
    epoch: u64,
    manager: ConnectionManager,
}

/// The nodes, the shared connection and the pool of connections for waiting grants.
pub(crate) struct Conn {
    nodes: Vec<redis::Client>,
    current: Mutex<Current>,
    /// Idle connections for waiting grants, with the node index they lead to.
    idle: Mutex<Vec<(usize, MultiplexedConnection)>>,
    pub config: ConnConfig,
}

impl Conn {
    /// A connection set for `nodes` (at least one); connects lazily, on the first request.
    pub fn new(nodes: Vec<redis::Client>, config: ConnConfig) -> Result<Self, RedisError> {
        let manager = Self::manager(&nodes[0], &config, nodes.len())?;
        Ok(Conn {
            nodes,
            current: Mutex::new(Current {
                index: 0,
                epoch: 0,
                manager,
            }),
            idle: Mutex::new(Vec::new()),
            config,
        })
    }

    fn manager(
        node: &redis::Client,
        config: &ConnConfig,
        node_count: usize,
    ) -> Result<ConnectionManager, RedisError> {
        // With one node the manager's own reconnect loop is the only way back; with several,
        // a quick failure lets `query` move on to the next node.
        let reconnect_tries = if node_count > 1 { 1 } else { 3 };
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.response_timeout))
            .set_number_of_retries(reconnect_tries)
            .set_min_delay(Duration::from_millis(20))
            .set_max_delay(Duration::from_millis(500));
        ConnectionManager::new_lazy_with_config(node.clone(), manager_config)
    }

    fn lock_current(&self) -> std::sync::MutexGuard<'_, Current> {
        self.current.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The shared connection and the epoch it belongs to.
    fn shared(&self) -> (ConnectionManager, usize, u64) {
        let current = self.lock_current();
        (current.manager.clone(), current.index, current.epoch)
    }

    /// Moves to the next node after a connection failure seen in `epoch` (once per epoch).
    fn next_node(&self, epoch: u64) {
        if self.nodes.len() < 2 {
            return;
        }
        let mut current = self.lock_current();
        if current.epoch != epoch {
            return;
        }
        let index = (current.index + 1) % self.nodes.len();
        if let Ok(manager) = Self::manager(&self.nodes[index], &self.config, self.nodes.len()) {
            *current = Current {
                index,
                epoch: epoch + 1,
                manager,
            };
        }
    }

    /// Sends `cmd` on the shared connection, retrying as the module documentation says
    /// until `retry_timeout` from now.
    pub async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, RedisError> {
        let deadline = Instant::now() + self.config.retry_timeout;
        Ok(self.query_until(cmd, deadline).await?.0)
    }

    /// [`Conn::query`] with an explicit deadline for the retries. Also returns when the
    /// attempt that got the reply was sent (a lease granted or renewed by it started no
    /// earlier).
    pub async fn query_until<T: FromRedisValue>(
        &self,
        cmd: &Cmd,
        deadline: Instant,
    ) -> Result<(T, Instant), RedisError> {
        let mut backoff = Backoff::default();
        loop {
            let (mut manager, _, epoch) = self.shared();
            let sent = Instant::now();
            let err = match cmd.query_async::<T>(&mut manager).await {
                Ok(value) => return Ok((value, sent)),
                Err(err) => err,
            };
            match classify(&err) {
                Failure::Final => return Err(err),
                Failure::Connection => self.next_node(epoch),
                Failure::Busy => {}
            }
            let pause = backoff.next();
            if Instant::now() + pause >= deadline {
                return Err(err);
            }
            tokio::time::sleep(pause).await;
        }
    }

    /// Sends a waiting grant on a connection of its own. `build` makes the command for a
    /// wait of the given milliseconds (`None`: send no WAIT, `Some(0)`: wait forever, as
    /// the server reads it). `until` is the end of the wait (`None`: forever; `Some(now)`:
    /// no wait). After a failure the request is sent again with the wait that is left;
    /// once the wait is over, one last time without WAIT, which returns the grant if the
    /// server made it just before the connection failed (same owner, same token).
    pub async fn query_waiting<T: FromRedisValue>(
        &self,
        build: impl Fn(Option<u64>) -> Cmd,
        until: Option<Instant>,
    ) -> Result<(T, Instant), RedisError> {
        let no_wait_deadline = Instant::now() + self.config.retry_timeout;
        let mut backoff = Backoff::default();
        loop {
            let wait_ms = match until {
                None => Some(0),
                Some(end) => {
                    let left = end.saturating_duration_since(Instant::now());
                    // Whole milliseconds, rounded up, so a wait never ends early.
                    let ms = left.as_nanos().div_ceil(1_000_000);
                    (ms > 0).then(|| u64::try_from(ms).unwrap_or(u64::MAX))
                }
            };
            let Some(wait_ms) = wait_ms else {
                // No wait (left): a plain request on the shared connection.
                let deadline = no_wait_deadline.max(Instant::now() + self.config.response_timeout);
                return self.query_until(&build(None), deadline).await;
            };
            let (node, epoch) = {
                let current = self.lock_current();
                (current.index, current.epoch)
            };
            let result = match self.wait_connection(node, wait_ms).await {
                Ok(mut conn) => {
                    let sent = Instant::now();
                    let result = build(Some(wait_ms)).query_async::<T>(&mut conn).await;
                    if result.is_ok() {
                        self.put_idle(node, conn);
                    }
                    result.map(|value| (value, sent))
                }
                Err(err) => Err(err),
            };
            let err = match result {
                Ok(value) => return Ok(value),
                Err(err) => err,
            };
            match classify(&err) {
                Failure::Final => return Err(err),
                Failure::Connection => self.next_node(epoch),
                Failure::Busy => {}
            }
            let pause = backoff.next();
            if until.is_none_or(|end| Instant::now() + pause < end) {
                tokio::time::sleep(pause).await;
            }
        }
    }

    /// An idle waiting connection to `node`, or a new one. Its replies may take as long
    /// as the wait plus the response timeout (forever for `wait_ms` 0).
    async fn wait_connection(
        &self,
        node: usize,
        wait_ms: u64,
    ) -> Result<MultiplexedConnection, RedisError> {
        let reused = {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            let found = idle.iter().position(|(n, _)| *n == node);
            found.map(|i| idle.swap_remove(i).1)
        };
        let mut conn = match reused {
            Some(conn) => conn,
            None => {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(self.config.connect_timeout))
                    .set_response_timeout(None);
                self.nodes[node]
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?
            }
        };
        // The redis crate takes a duration here; "forever" (WAIT 0) is far enough out.
        let timeout = match wait_ms {
            0 => FOREVER,
            ms => Duration::from_millis(ms).saturating_add(self.config.response_timeout),
        };
        conn.set_response_timeout(timeout);
        Ok(conn)
    }

    fn put_idle(&self, node: usize, conn: MultiplexedConnection) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE_WAIT_CONNECTIONS {
            idle.push((node, conn));
        }
    }
}

/// What a failed request means for the next attempt.
#[derive(Debug, PartialEq, Eq)]
enum Failure {
    /// An answer: do not retry.
    Final,
    /// The connection failed or timed out: retry, on the next node if there is one.
    Connection,
    /// The node asked to come back later (failover, loading): retry on the same node.
    Busy,
}

/// Whether a request that failed with `err` may succeed when sent again (a connection
/// failure or a node that asked to come back later), rather than being an answer.
pub(crate) fn is_transient(err: &RedisError) -> bool {
    classify(err) != Failure::Final
}

fn classify(err: &RedisError) -> Failure {
    match err.kind() {
        ErrorKind::Server(
            ServerErrorKind::TryAgain
            | ServerErrorKind::BusyLoading
            | ServerErrorKind::MasterDown
            | ServerErrorKind::ClusterDown
            | ServerErrorKind::ReadOnly,
        ) => Failure::Busy,
        ErrorKind::Io | ErrorKind::Parse | ErrorKind::ClusterConnectionNotFound => {
            Failure::Connection
        }
        _ if err.is_timeout() || err.is_connection_dropped() || err.is_connection_refusal() => {
            Failure::Connection
        }
        _ => Failure::Final,
    }
}

/// Exponential backoff from 10 ms to 1 s with jitter (each pause is 50..100 % of the step).
#[derive(Debug)]
struct Backoff {
    step: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            step: Duration::from_millis(10),
        }
    }
}

impl Backoff {
    fn next(&mut self) -> Duration {
        let step = self.step;
        self.step = (self.step * 2).min(Duration::from_secs(1));
        step.mul_f64(0.5 + fastrand::f64() / 2.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tryagain_is_retried_on_the_same_node() {
        let err = RedisError::from((ErrorKind::Server(ServerErrorKind::TryAgain), "failover"));
        assert_eq!(classify(&err), Failure::Busy);
    }

    #[test]
    fn a_connection_drop_is_retried_on_the_next_node() {
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert_eq!(classify(&RedisError::from(io)), Failure::Connection);
    }

    #[test]
    fn an_error_reply_is_final() {
        let err = RedisError::from((
            ErrorKind::Server(ServerErrorKind::ResponseError),
            "owner already holds this key in another mode",
        ));
        assert_eq!(classify(&err), Failure::Final);
    }

    #[test]
    fn backoff_grows_to_a_second() {
        let mut backoff = Backoff::default();
        let pauses: Vec<_> = (0..12).map(|_| backoff.next()).collect();
        assert!(pauses[0] <= Duration::from_millis(10));
        assert!(pauses[11] >= Duration::from_millis(500));
        assert!(pauses.iter().all(|p| *p <= Duration::from_secs(1)));
    }
}
