//! The network side: accept loop, connection tasks, the expirer, and graceful shutdown.
//!
//! [`run`] is the one entry point, used by `main` and by the integration tests (which bind
//! `127.0.0.1:0` and run it in-process).

pub mod budget;
pub mod conn;
pub mod expirer;
pub mod http;
pub mod shutdown;
pub mod tls;

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::cmd::Shared;
use crate::config::{AppendFsync, Config, Switch, YesNo};
use crate::error::StartupError;
use crate::persist::{Log, LogConfig, Record};
use crate::table::{LockTable, RecordSink, TableConfig};
use shutdown::ShutdownTrigger;

/// How long shutdown waits for connections to finish their in-flight replies.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// What a client from another host gets in protected mode (`--protected-mode yes` and no
/// password), before its connection is closed: Redis 7.0's text, word for word, so that
/// tools which recognise it keep doing so.
pub const PROTECTED_MODE_DENIED: &[u8] = b"-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want to connect from external computers to Redis you may adopt one of the following solutions: 1) Just disable protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from the same host the server is running, however MAKE SURE Redis is not publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just disable the protected mode by editing the Redis configuration file, and setting the protected mode option to 'no', and then restarting the server. 3) If you started the server manually just for testing, restart it with the '--protected-mode no' option. 4) Setup a an authentication password for the default user. NOTE: You only need to do one of the above things in order for the server to start accepting connections from the outside.\r\n";

/// The client listeners: the plain port, the TLS port, or both.
#[derive(Default)]
pub struct Listeners {
    /// The plain RESP port (`--port`); None with `--port 0` and `--tls-port` set.
    pub plain: Option<TcpListener>,
    /// The TLS port (`--tls-port`) and the acceptor that runs its handshakes.
    pub tls: Option<(TcpListener, TlsAcceptor)>,
}

impl Listeners {
    /// Only a plain listener.
    pub fn plain(listener: TcpListener) -> Self {
        Listeners {
            plain: Some(listener),
            tls: None,
        }
    }
}

/// Binds the listening socket of `config` (the plain port).
///
/// # Errors
/// [`StartupError::Bind`] when the address cannot be bound.
pub async fn bind(config: &Config) -> Result<TcpListener, StartupError> {
    bind_port(config, config.port)
}

/// Binds every client listener of `config`: the plain port (unless `--port 0` with
/// `--tls-port`) and, with `tls` (from [`tls::acceptor`]), the TLS port beside it.
///
/// # Errors
/// [`StartupError::Bind`] when an address cannot be bound.
pub async fn bind_all(
    config: &Config,
    tls: Option<TlsAcceptor>,
) -> Result<Listeners, StartupError> {
    let plain = if config.plain_port_on() {
        Some(bind_port(config, config.port)?)
    } else {
        None
    };
    let tls = match (tls, config.tls_port) {
        (Some(acceptor), Some(port)) => Some((bind_port(config, port)?, acceptor)),
        _ => None,
    };
    Ok(Listeners { plain, tls })
}

/// Binds `port` on the `--bind` address.
fn bind_port(config: &Config, port: u16) -> Result<TcpListener, StartupError> {
    let addr = format!("{}:{}", config.bind, port);
    let listen = || -> std::io::Result<TcpListener> {
        let mut last = None;
        for sock_addr in std::net::ToSocketAddrs::to_socket_addrs(&addr)? {
            let socket = match sock_addr {
                std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
                std::net::SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
            };
            socket.set_reuseaddr(true)?;
            match socket
                .bind(sock_addr)
                .and_then(|()| socket.listen(config.tcp_backlog))
            {
                Ok(listener) => return Ok(listener),
                Err(err) => last = Some(err),
            }
        }
        Err(last.unwrap_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address to bind")
        }))
    };
    listen().map_err(|source| StartupError::Bind { addr, source })
}

/// The wall clock in µs since the epoch: the fencing counter's floor.
fn wall_clock_us() -> i64 {
    i64::try_from(crate::clock::since_epoch().as_micros()).unwrap_or(i64::MAX)
}

/// The log as the table's record sink.
impl RecordSink for Log {
    fn append(&self, record: &Record) -> u64 {
        Log::append(self, record)
    }
}

/// The table's record sink while the log is not open yet: replay emits nothing, and
/// anything emitted before the log is set is kept and appended, in order, once it is.
#[derive(Default)]
struct LateLog {
    log: std::sync::OnceLock<Arc<Log>>,
    early: parking_lot::Mutex<Vec<Record>>,
}

impl LateLog {
    /// From now on records go to `log`, the early ones first.
    fn set(&self, log: Arc<Log>) {
        let mut early = self.early.lock();
        for record in early.drain(..) {
            log.append(&record);
        }
        let _ = self.log.set(log);
    }
}

impl RecordSink for LateLog {
    fn append(&self, record: &Record) -> u64 {
        if let Some(log) = self.log.get() {
            return log.append(record);
        }
        let mut early = self.early.lock();
        // Set between the check and the lock: append directly.
        match self.log.get() {
            Some(log) => log.append(record),
            None => {
                early.push(record.clone());
                0
            }
        }
    }
}

/// Builds the shared state for `config`: builds the table, then (with persistence on)
/// opens the data directory and replays it into the table record by record as it is
/// read, so recovery holds one frame in memory rather than whole files.
///
/// # Errors
/// [`StartupError`] when the data directory cannot be read, is locked or is damaged.
pub async fn build(config: Arc<Config>) -> Result<Arc<Shared>, StartupError> {
    let acl = crate::acl::Acl::new(config.requirepass.as_deref(), config.aclfile.as_deref())
        .map_err(StartupError::Acl)?;
    if let Some(cluster) = crate::cluster::Cluster::from_config(&config)? {
        return Ok(build_cluster_node(config, cluster, acl));
    }
    let persistent = config.persistence == Switch::On;
    let late = Arc::new(LateLog::default());
    // Recovered tokens raise the counter as they are replayed (`TokenCounter::observe`).
    let table = Arc::new(LockTable::new(
        TableConfig {
            shards: config.shard_count(),
            max_waiters: config.max_waiters,
            origin: Instant::now(),
            token_seed: wall_clock_us(),
        },
        persistent.then(|| late.clone() as Arc<dyn RecordSink>),
    ));
    let log = if persistent {
        let replay_into = table.clone();
        let now = crate::cmd::Shared::clock();
        let (log, recovered) = Log::open_with(LogConfig::from_config(&config), move |record| {
            replay_into.replay(&record, now)
        })
        .await?;
        late.set(log.clone());
        let stats = table.stats();
        tracing::info!(
            records = recovered.stats.records_replayed,
            holders = stats.holders,
            keys = stats.keys(),
            "recovered the data directory"
        );
        Some(log)
    } else {
        None
    };
    let server = Shared::new(config, table, log, acl);
    server.readiness.set_recovered();
    Ok(Arc::new(server))
}

/// Cluster mode: the table's records go to Raft instead of the append-only log; the table
/// starts empty and is filled by the committed log when the node starts ([`serve`]).
fn build_cluster_node(
    config: Arc<Config>,
    cluster: Arc<crate::cluster::Cluster>,
    acl: crate::acl::Acl,
) -> Arc<Shared> {
    let table = LockTable::new(
        TableConfig {
            shards: config.shard_count(),
            max_waiters: config.max_waiters,
            origin: Instant::now(),
            token_seed: wall_clock_us(),
        },
        Some(cluster.record_sink()),
    );
    // Leases end only through committed log entries, never by a replaying node's clock.
    table.set_ends_by_log(true);
    let mut server = Shared::new(config, Arc::new(table), None, acl);
    // Holds survive a restart in the replicated log: no restart delay.
    server.refuse_grants_until = None;
    server.cluster = Some(cluster);
    Arc::new(server)
}

/// Writes a snapshot whenever the log has grown past its bound.
async fn snapshotter(server: Arc<Shared>, mut shutdown: shutdown::Shutdown) {
    let Some(log) = server.log.clone() else {
        return;
    };
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = shutdown.started() => return,
        }
        // Not while the log is failing: the rotation would not be served.
        if log.wants_snapshot() && log.failure().is_none() {
            let table = server.table.clone();
            let now = server.now();
            if let Err(err) = log.snapshot(move |emit| table.dump(now, emit)).await {
                tracing::warn!("snapshot failed: {err}");
            }
        }
    }
}

/// Redis's tcp-keepalive on an accepted socket: probes after `secs` idle, every `secs / 3`,
/// three of them, so that a vanished client is dropped (with its waits) after about twice
/// `secs`. 0 leaves keepalive off.
fn set_keepalive(stream: &tokio::net::TcpStream, secs: u64) {
    if secs == 0 {
        return;
    }
    let keepalive = socket2::TcpKeepalive::new().with_time(Duration::from_secs(secs));
    #[cfg(any(target_os = "linux", target_os = "macos", target_os = "freebsd"))]
    let keepalive = keepalive
        .with_interval(Duration::from_secs((secs / 3).max(1)))
        .with_retries(3);
    if let Err(err) = socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive) {
        tracing::debug!("cannot set TCP keepalive: {err}");
    }
}

/// Checks `--maxmemory` every 100 ms (only when it is set).
async fn sample_memory(server: Arc<Shared>, mut shutdown: shutdown::Shutdown) {
    if !server.budget.limits_keyspace() {
        return;
    }
    loop {
        server.budget.sample();
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = shutdown.started() => return,
        }
    }
}

/// Serves clients on `listener` until `signal` resolves, then stops accepting, lets every
/// connection finish its in-flight replies and returns.
///
/// # Errors
/// A [`StartupError`] when the server cannot start.
pub async fn run(
    listener: TcpListener,
    config: Arc<Config>,
    signal: impl Future<Output = ()>,
) -> Result<(), StartupError> {
    // Up before recovery: /health answers and /ready says `recovering` meanwhile.
    let http = http::start_configured(&config).await?;
    let server = build(config).await?;
    if let Some(http) = &http {
        http.attach(server.clone());
    }
    let served = serve(listener, server, signal).await;
    drop(http);
    served
}

/// Like [`run`] on state already built.
///
/// # Errors
/// A [`StartupError`] when the server cannot start.
pub async fn serve(
    listener: TcpListener,
    server: Arc<Shared>,
    signal: impl Future<Output = ()>,
) -> Result<(), StartupError> {
    serve_all(Listeners::plain(listener), server, signal).await
}

/// Accepts on `listener`, or never when there is none.
async fn accept_on(
    listener: Option<&TcpListener>,
) -> std::io::Result<(TcpStream, std::net::SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
}

/// Like [`serve`], on every listener of `listeners`: the same checks (protected mode,
/// `--max-clients`, keepalive) apply to a connection whichever port it came in on.
///
/// # Errors
/// A [`StartupError`] when the server cannot start.
pub async fn serve_all(
    listeners: Listeners,
    server: Arc<Shared>,
    signal: impl Future<Output = ()>,
) -> Result<(), StartupError> {
    let Listeners { plain, tls } = listeners;
    let shards = server.table.shard_count();
    if let Some(addr) = plain.as_ref().and_then(|l| l.local_addr().ok()) {
        server.port.store(addr.port(), Ordering::Relaxed);
        tracing::info!(%addr, shards, "baton ready");
    }
    if let Some(addr) = tls.as_ref().and_then(|(l, _)| l.local_addr().ok()) {
        if plain.is_none() {
            server.port.store(addr.port(), Ordering::Relaxed);
        }
        tracing::info!(%addr, shards, "baton TLS ready");
    }
    let trigger = ShutdownTrigger::new();
    let node = match &server.cluster {
        Some(cluster) => {
            let node = crate::cluster::start(&server, cluster, trigger.subscribe()).await?;
            // The snapshot is in the table; /ready now follows the node's leader.
            server.readiness.set_recovered();
            Some(node)
        }
        None => None,
    };
    let expirer = tokio::spawn(expirer::run(server.clone(), trigger.subscribe()));
    let snapshots = tokio::spawn(snapshotter(server.clone(), trigger.subscribe()));
    let sampler = tokio::spawn(sample_memory(server.clone(), trigger.subscribe()));
    tokio::pin!(signal);
    let fail_stop = log_fail_stop(server.clone());
    tokio::pin!(fail_stop);
    let mut fatal = None;
    let protected_mode = server.config.protected_mode == YesNo::Yes;
    loop {
        let (accepted, acceptor) = tokio::select! {
            accepted = accept_on(plain.as_ref()) => (accepted, None),
            accepted = accept_on(tls.as_ref().map(|(l, _)| l)) => {
                (accepted, tls.as_ref().map(|(_, a)| a.clone()))
            }
            _ = &mut signal => break,
            cause = &mut fail_stop => {
                fatal = Some(cause);
                break;
            }
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(err) => {
                // Out of descriptors and the like: back off instead of spinning.
                tracing::warn!("accept failed: {err}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        server.connections.accepted.fetch_add(1, Ordering::Relaxed);
        set_keepalive(&stream, server.config.tcp_keepalive);
        // As Redis: protected while the default user has no password (ACL SETUSER may
        // change that at run time).
        let protected = protected_mode && server.acl.default_is_open();
        let refusal = if protected && !peer.ip().to_canonical().is_loopback() {
            Some(PROTECTED_MODE_DENIED)
        } else if trigger.live() >= server.max_clients.load(Ordering::Relaxed) {
            Some(&b"-ERR max clients reached\r\n"[..])
        } else {
            None
        };
        if let Some(text) = refusal {
            server.connections.rejected.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(refuse(stream, acceptor, text));
            continue;
        }
        let guard = trigger.track();
        let shutdown = trigger.subscribe();
        let server = server.clone();
        tokio::spawn(async move {
            match acceptor {
                Some(acceptor) => conn::serve_tls(stream, acceptor, server, shutdown).await,
                None if server.cluster.is_some() => {
                    crate::cluster::forward::serve(stream, server, shutdown).await;
                }
                None => conn::serve(stream, server, shutdown).await,
            }
            drop(guard);
        });
    }
    server.readiness.set_draining();
    tracing::info!("shutting down: finishing in-flight replies");
    // A running script would hold its connection (and the exit) until its time limit.
    server.lua.stop();
    drop(plain);
    drop(tls);
    trigger.shutdown(SHUTDOWN_GRACE).await;
    expirer.abort();
    snapshots.abort();
    sampler.abort();
    if let Some(log) = &server.log {
        log.shutdown().await;
    }
    if let Some(node) = node {
        node.stop().await;
    }
    match fatal {
        Some(cause) => Err(StartupError::LogFailed(cause.to_string())),
        None => Ok(()),
    }
}

/// Tells a refused client why (`text`) and closes it; on the TLS port after the handshake,
/// so the client can read it (as Redis does).
async fn refuse(mut stream: TcpStream, acceptor: Option<TlsAcceptor>, text: &'static [u8]) {
    match acceptor {
        None => {
            let _ = stream.write_all(text).await;
            let _ = stream.shutdown().await;
        }
        Some(acceptor) => {
            if let Ok(mut stream) = tls::handshake(&acceptor, stream).await {
                let _ = stream.write_all(text).await;
                let _ = stream.shutdown().await;
            }
        }
    }
}

/// Resolves with the cause when the log fails under `--appendfsync always`: the server
/// then stops (fail-stop, as Redis exits on an AOF error under `always`), since the
/// changes applied in memory were never persisted. Never resolves under `everysec` and
/// `no`: there writes answer `-MISCONF` until the log writes again.
async fn log_fail_stop(server: Arc<Shared>) -> Arc<str> {
    match &server.log {
        Some(log) if log.fsync() == AppendFsync::Always => {
            let cause = log.failed().await;
            tracing::error!(%cause, "append-only log failed under appendfsync always: stopping");
            cause
        }
        _ => std::future::pending().await,
    }
}
