//! The network side: accept loop, connection tasks, the expirer, and graceful shutdown.
//!
//! [`run`] is the one entry point, used by `main` and by the integration tests (which bind
//! `127.0.0.1:0` and run it in-process).

pub mod conn;
pub mod expirer;
pub mod http;
pub mod shutdown;

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use crate::cmd::Server;
use crate::config::{Config, Switch};
use crate::error::StartupError;
use crate::persist::{Log, LogConfig, Record};
use crate::table::{LockTable, RecordSink, TableConfig};
use shutdown::ShutdownTrigger;

/// How long shutdown waits for connections to finish their in-flight replies.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Binds the listening socket of `config`.
///
/// # Errors
/// [`StartupError::Bind`] when the address cannot be bound.
pub async fn bind(config: &Config) -> Result<TcpListener, StartupError> {
    let addr = format!("{}:{}", config.bind, config.port);
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
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// The log as the table's record sink.
impl RecordSink for Log {
    fn append(&self, record: &Record) -> u64 {
        Log::append(self, record)
    }
}

/// Builds the shared state for `config`: opens and replays the data directory (when
/// persistence is on), then builds the table and the shared server state.
///
/// # Errors
/// [`StartupError`] when the data directory cannot be read or is damaged.
pub async fn build(config: Arc<Config>) -> Result<Arc<Server>, StartupError> {
    let (log, recovered) = if config.persistence == Switch::On {
        let (log, recovered) = Log::open(LogConfig::from_config(&config)).await?;
        (Some(log), Some(recovered))
    } else {
        (None, None)
    };
    let high_water = recovered.as_ref().map_or(0, |r| r.token_high_water());
    let table = LockTable::new(
        TableConfig {
            shards: config.shard_count(),
            max_waiters: config.max_waiters,
            origin: Instant::now(),
            token_seed: wall_clock_us().max(high_water),
        },
        log.clone().map(|l| l as Arc<dyn RecordSink>),
    );
    let server = Server::new(config, Arc::new(table), log);
    if let Some(recovered) = recovered {
        let now = server.now();
        for record in &recovered.records {
            server.table.replay(record, now);
        }
        let stats = server.table.stats();
        tracing::info!(
            records = recovered.records.len(),
            holders = stats.holders,
            keys = stats.keys(),
            "recovered the data directory"
        );
    }
    server.readiness.set_recovered();
    Ok(Arc::new(server))
}

/// Writes a snapshot whenever the log has grown past its bound.
async fn snapshotter(server: Arc<Server>, mut shutdown: shutdown::Shutdown) {
    let Some(log) = server.log.clone() else {
        return;
    };
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = shutdown.started() => return,
        }
        if log.wants_snapshot() {
            let table = server.table.clone();
            let now = server.now();
            if let Err(err) = log.snapshot(move |emit| table.dump(now, emit)).await {
                tracing::warn!("snapshot failed: {err}");
            }
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
    let http = match config.http_port {
        Some(port) => Some(http::start(&config, port).await?),
        None => None,
    };
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
    server: Arc<Server>,
    signal: impl Future<Output = ()>,
) -> Result<(), StartupError> {
    if let Ok(addr) = listener.local_addr() {
        server.port.store(addr.port(), Ordering::Relaxed);
        tracing::info!(%addr, shards = server.table.shard_count(), "baton ready");
    }
    let trigger = ShutdownTrigger::new();
    let expirer = tokio::spawn(expirer::run(server.clone(), trigger.subscribe()));
    let snapshots = tokio::spawn(snapshotter(server.clone(), trigger.subscribe()));
    tokio::pin!(signal);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = &mut signal => break,
        };
        let (mut stream, _) = match accepted {
            Ok(pair) => pair,
            Err(err) => {
                // Out of descriptors and the like: back off instead of spinning.
                tracing::warn!("accept failed: {err}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        server.connections.accepted.fetch_add(1, Ordering::Relaxed);
        if trigger.live() >= server.max_clients.load(Ordering::Relaxed) {
            server.connections.rejected.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                let _ = stream.write_all(b"-ERR max clients reached\r\n").await;
                let _ = stream.shutdown().await;
            });
            continue;
        }
        let guard = trigger.track();
        let shutdown = trigger.subscribe();
        let server = server.clone();
        tokio::spawn(async move {
            conn::serve(stream, server, shutdown).await;
            drop(guard);
        });
    }
    server.readiness.set_draining();
    tracing::info!("shutting down: finishing in-flight replies");
    drop(listener);
    trigger.shutdown(SHUTDOWN_GRACE).await;
    expirer.abort();
    snapshots.abort();
    if let Some(log) = &server.log {
        log.shutdown().await;
    }
    Ok(())
}
