//! What commands run against: [`Shared`] (state shared by every connection, owned here
//! once) and [`Session`] (one connection's own state).

use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use dashmap::DashMap;
use parking_lot::Mutex;

use super::args::ArgLimits;
use super::stats::CommandStats;
use crate::config::{AppendFsync, Config};
use crate::error::RespError;
use crate::persist::{Log, LogError};
use crate::resp::Protocol;
use crate::table::{LockTable, Now};

/// What CLIENT LIST shows of a connection.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    /// CLIENT ID.
    pub id: u64,
    /// Peer address.
    pub addr: String,
    /// Local address.
    pub laddr: String,
    /// CLIENT SETNAME.
    pub name: Option<Bytes>,
    /// CLIENT SETINFO LIB-NAME.
    pub lib_name: Option<Bytes>,
    /// CLIENT SETINFO LIB-VER.
    pub lib_ver: Option<Bytes>,
    /// When it connected.
    pub since: Instant,
    /// The protocol it speaks.
    pub proto: Protocol,
    /// The last command's name (its spec's; None before the first known command).
    pub last_cmd: Option<&'static str>,
    /// Set by CLIENT KILL; the connection's task closes when it is.
    pub kill: Arc<KillSwitch>,
    /// The ACL user it is authenticated as (`default` until AUTH).
    pub user: Arc<str>,
}

/// A connection's order to close, given by CLIENT KILL and watched by the connection's
/// task (while it reads, writes or waits for a grant).
#[derive(Debug, Default)]
pub struct KillSwitch {
    killed: std::sync::atomic::AtomicBool,
    notify: tokio::sync::Notify,
}

impl KillSwitch {
    /// Orders the connection to close.
    pub fn kill(&self) {
        self.killed.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }

    /// Whether the connection was ordered to close.
    pub fn is_killed(&self) -> bool {
        self.killed.load(Ordering::Acquire)
    }

    /// Resolves once the connection is ordered to close.
    pub async fn killed(&self) {
        loop {
            let notified = self.notify.notified();
            if self.is_killed() {
                return;
            }
            notified.await;
        }
    }
}

/// Every open connection, by id.
#[derive(Debug, Default)]
pub struct Clients {
    map: DashMap<u64, Arc<Mutex<ClientInfo>>>,
    next_id: AtomicU64,
}

impl Clients {
    /// Registers the client of `stream`, named by its peer and local addresses (empty when
    /// the socket no longer has them).
    pub fn register_stream(&self, stream: &tokio::net::TcpStream) -> Arc<Mutex<ClientInfo>> {
        let name =
            |a: std::io::Result<std::net::SocketAddr>| a.map(|a| a.to_string()).unwrap_or_default();
        self.register(name(stream.peer_addr()), name(stream.local_addr()))
    }

    /// Registers a new connection; returns its info handle.
    pub fn register(&self, addr: String, laddr: String) -> Arc<Mutex<ClientInfo>> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let info = Arc::new(Mutex::new(ClientInfo {
            id,
            addr,
            laddr,
            name: None,
            lib_name: None,
            lib_ver: None,
            since: Instant::now(),
            proto: Protocol::Resp2,
            last_cmd: None,
            kill: Arc::default(),
            user: Arc::from("default"),
        }));
        self.map.insert(id, info.clone());
        info
    }

    /// Forgets a closed connection.
    pub fn unregister(&self, id: u64) {
        self.map.remove(&id);
    }

    /// Open connections.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no connection is open.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Orders every connection for which `chosen` holds to close; returns how many.
    pub fn kill_where(&self, chosen: impl Fn(&ClientInfo) -> bool) -> usize {
        let mut killed = 0;
        for entry in self.map.iter() {
            let info = entry.value().lock();
            if !info.kill.is_killed() && chosen(&info) {
                info.kill.kill();
                killed += 1;
            }
        }
        killed
    }

    /// How many connections `chosen` holds for.
    pub fn count_where(&self, chosen: impl Fn(&ClientInfo) -> bool) -> usize {
        self.map
            .iter()
            .filter(|entry| chosen(&entry.value().lock()))
            .count()
    }

    /// A snapshot of every connection's info, by id.
    pub fn all(&self) -> Vec<ClientInfo> {
        let mut all: Vec<ClientInfo> = self.map.iter().map(|e| e.value().lock().clone()).collect();
        all.sort_by_key(|c| c.id);
        all
    }
}

/// State shared by all connections.
#[derive(Debug)]
pub struct Shared {
    /// The configuration.
    pub config: Arc<Config>,
    /// The lock table.
    pub table: Arc<LockTable>,
    /// Open connections.
    pub clients: Clients,
    /// When the server started (monotonic).
    pub started: Instant,
    /// Grants are refused until then (`--restart-delay-ms`).
    pub refuse_grants_until: Option<Instant>,
    /// The port actually bound.
    pub port: AtomicU16,
    /// The script engine (its cache is shared by all connections).
    pub lua: crate::lua::Engine,
    /// The append-only log (None with `--persistence off` and in cluster mode).
    pub log: Option<Arc<Log>>,
    /// Memory budgets (`--maxmemory-clients`, `--maxmemory`).
    pub budget: crate::server::budget::Budget,
    /// Cluster mode's replication (None in single-node mode).
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    /// Counts and latency per command.
    pub commands: CommandStats,
    /// Whether recovery is done and shutdown not started (see [`Shared::ready`]).
    pub readiness: Readiness,
    /// Connections accepted and refused.
    pub connections: ConnectionCounts,
    /// Most open client connections (`--max-clients`, CONFIG SET max-clients).
    pub max_clients: AtomicUsize,
    /// ACL users (`--aclfile`, ACL SETUSER; `default` from `--requirepass`).
    pub acl: crate::acl::Acl,
}

/// Whether recovery is done and shutdown not started: the process-wide part of what
/// `/ready` answers ([`Shared::ready`] adds the restart delay and cluster mode's leader).
///
/// Not ready until recovery is done ([`Readiness::set_recovered`]: by `server::build` once
/// the data directory is replayed; in cluster mode by `server::serve` once the node has
/// started), and again once shutdown starts.
#[derive(Debug, Default)]
pub struct Readiness {
    recovered: AtomicBool,
    draining: AtomicBool,
}

impl Readiness {
    /// Recovery is done: commands are served.
    pub fn set_recovered(&self) {
        self.recovered.store(true, Ordering::Release);
    }

    /// Shutdown started: stop sending traffic here.
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// Ok when recovered and not shutting down, else why not (`recovering`,
    /// `shutting down`).
    pub fn check(&self) -> Result<(), &'static str> {
        if !self.recovered.load(Ordering::Acquire) {
            Err("recovering")
        } else if self.draining.load(Ordering::Acquire) {
            Err("shutting down")
        } else {
            Ok(())
        }
    }
}

/// Connections counted by the accept loop, and what the ACL refused them.
#[derive(Debug, Default)]
pub struct ConnectionCounts {
    /// Accepted (Redis's total_connections_received).
    pub accepted: AtomicU64,
    /// Refused at max-clients (Redis's rejected_connections).
    pub rejected: AtomicU64,
    /// AUTH and `HELLO ... AUTH` answered WRONGPASS (Redis's acl_access_denied_auth).
    pub auth_failures: AtomicU64,
    /// Commands refused by the user's command rules (Redis's acl_access_denied_cmd).
    pub denied_commands: AtomicU64,
    /// Commands refused by the user's key patterns (Redis's acl_access_denied_key).
    pub denied_keys: AtomicU64,
}

impl ConnectionCounts {
    /// Counts `err` when it is an ACL refusal (`-NOPERM ...`): by key pattern or by
    /// command rule, as Redis splits them.
    pub fn count_denial(&self, err: &RespError) {
        match err.text().strip_prefix("NOPERM ") {
            Some(r) if r.starts_with("No permissions to access a key") => {
                self.denied_keys.fetch_add(1, Ordering::Relaxed);
            }
            Some(_) => {
                self.denied_commands.fetch_add(1, Ordering::Relaxed);
            }
            None => {}
        }
    }
}

impl Shared {
    /// Shared state around `table`, with the users of `acl`.
    pub fn new(
        config: Arc<Config>,
        table: Arc<LockTable>,
        log: Option<Arc<Log>>,
        acl: crate::acl::Acl,
    ) -> Self {
        let started = Instant::now();
        let refuse_grants_until = config
            .restart_delay_ms
            .filter(|_| log.is_none())
            .map(|ms| started + std::time::Duration::from_millis(ms));
        let lua = crate::lua::Engine::new(crate::lua::EngineConfig {
            time_limit: std::time::Duration::from_millis(config.lua_time_limit_ms),
            memory_limit_bytes: config.lua_memory_bytes,
            threads: config.lua_thread_count(),
            ..crate::lua::EngineConfig::default()
        });
        let budget = crate::server::budget::Budget::new(config.maxmemory_clients, config.maxmemory);
        Shared {
            max_clients: AtomicUsize::new(config.max_clients),
            port: AtomicU16::new(config.port),
            config,
            table,
            clients: Clients::default(),
            started,
            refuse_grants_until,
            budget,
            log,
            cluster: None,
            lua,
            commands: CommandStats::default(),
            readiness: Readiness::default(),
            connections: ConnectionCounts::default(),
            acl,
        }
    }

    /// Reads both clocks: the only place commands get the time from.
    pub fn now(&self) -> Now {
        Self::clock()
    }

    /// Both clocks, before a server exists (recovery replays at this time).
    pub fn clock() -> Now {
        Now {
            mono: Instant::now(),
            wall_ms: crate::clock::wall_ms(),
        }
    }

    /// The argument limits from the configuration.
    pub fn arg_limits(&self) -> ArgLimits {
        ArgLimits {
            max_key_bytes: self.config.max_key_bytes,
            max_ttl_ms: self.config.max_ttl_ms,
        }
    }

    /// Whether the restart delay still refuses grants.
    pub fn refusing_grants(&self) -> bool {
        self.refuse_grants_until.is_some_and(|t| Instant::now() < t)
    }

    /// What `/ready` answers: Ok when this node takes client commands now, else why not.
    ///
    /// - `recovering`: the data directory is being replayed (or, in cluster mode, the node
    ///   is not started yet, or it leads but has not applied its term's first entry);
    /// - `shutting down`: after SIGTERM;
    /// - `restart delay`: single-node mode with persistence off, while
    ///   `--restart-delay-ms` refuses every grant (cluster mode has no restart delay);
    /// - `no leader`: cluster mode, while this node knows no leader (an election, or no
    ///   majority reachable). A follower that knows the leader is ready: it forwards.
    pub fn ready(&self) -> Result<(), &'static str> {
        self.readiness.check()?;
        if let Some(cluster) = &self.cluster {
            let status = cluster.status();
            if status.leader_id == 0 {
                return Err("no leader");
            }
            if status.leader_id == cluster.id && !status.serving {
                return Err("recovering");
            }
            return Ok(());
        }
        if self.refusing_grants() {
            return Err("restart delay");
        }
        Ok(())
    }

    /// Resolves once the log records up to `lsn` are durable (at once without a log); in
    /// cluster mode, once they are committed by a majority. Under `always` it also waits for
    /// every record appended so far: a reply may show state that another connection
    /// changed, and that must be on disk first too.
    ///
    /// # Errors
    /// The log failed (a write or sync error), or in cluster mode the leadership was lost
    /// first: the reply must not be sent.
    pub async fn wait_durable(&self, lsn: u64) -> Result<(), LogError> {
        if let Some(cluster) = &self.cluster {
            return cluster.wait_committed(lsn).await;
        }
        match &self.log {
            Some(log) => {
                let lsn = if log.fsync() == AppendFsync::Always {
                    lsn.max(log.appended_lsn())
                } else {
                    lsn
                };
                if lsn > 0 {
                    log.wait_durable(lsn).await
                } else {
                    Ok(())
                }
            }
            None => Ok(()),
        }
    }

    /// The `-MISCONF` refusal of writes while the log cannot write, or None.
    pub fn misconf(&self) -> Option<RespError> {
        let cause = self.log.as_ref()?.failure()?;
        Some(RespError::new(format!(
            "MISCONF Errors writing to the AOF file: {cause}"
        )))
    }

    /// Commands executed since start.
    pub fn commands_processed(&self) -> u64 {
        self.commands.total()
    }
}

/// One connection's state.
#[derive(Debug)]
pub struct Session {
    /// CLIENT ID.
    pub id: u64,
    /// RESP2 or RESP3.
    pub proto: Protocol,
    /// Whether AUTH passed (or no password is set).
    pub authenticated: bool,
    /// Failed AUTHs since the last success: they delay the next one (see `cmd::auth`).
    pub auth_failures: u32,
    /// Shared view for CLIENT LIST.
    pub info: Arc<Mutex<ClientInfo>>,
    /// The ACL user the connection runs as (`default` until AUTH).
    pub user: Arc<crate::acl::User>,
    /// The registry generation `user` was read at (see [`Session::refresh_user`]).
    pub acl_generation: u64,
    /// The place the current WAIT takes among the user's waiters (`max-waiters`).
    pub wait_slot: Option<crate::acl::WaitSlot>,
}

impl Session {
    /// A new connection's state: `default`, authenticated when `default` is `on nopass`.
    pub fn new(info: Arc<Mutex<ClientInfo>>, acl: &crate::acl::Acl) -> Self {
        let id = info.lock().id;
        Session {
            id,
            proto: Protocol::Resp2,
            authenticated: !acl.needs_auth(),
            auth_failures: 0,
            info,
            acl_generation: acl.generation(),
            user: acl.default_user(),
            wait_slot: None,
        }
    }

    /// The connection's WAIT ended (granted, timed out or failed).
    pub fn end_wait(&mut self) {
        self.wait_slot = None;
    }

    /// Re-reads the session's user when the registry changed since it was read (one
    /// atomic load otherwise). A deleted user's connection is being closed: until then it
    /// may do nothing.
    pub fn refresh_user(&mut self, acl: &crate::acl::Acl) {
        let generation = acl.generation();
        if generation != self.acl_generation {
            self.acl_generation = generation;
            self.user = acl
                .user(self.user.name())
                .unwrap_or_else(|| Arc::new(crate::acl::User::new(self.user.name())));
        }
    }

    /// Runs the connection as `user` from now on.
    pub fn become_user(&mut self, user: Arc<crate::acl::User>) {
        self.info.lock().user = Arc::from(user.name());
        self.user = user;
    }
}
