//! The HTTP listener (`--http-port`): `/metrics` (Prometheus text format), `/health` and
//! `/ready`.
//!
//! - `/health`: 200 `ok` while the process serves HTTP at all, recovery included: a
//!   liveness probe must not restart a node that is replaying a long log.
//! - `/ready`: 200 `ready` once recovery is done and commands are served; 503 with the
//!   reason (`recovering`, `restart delay`, `shutting down`, and in cluster mode
//!   `no leader`) otherwise: [`Shared::ready`] of the shared server state. Before that
//!   state exists (recovery runs while this listener is already up) it answers
//!   `recovering`.
//! - `/metrics`: publishes the counts kept in the server state (see `crate::metrics`) into
//!   the recorder, then renders it.
//!
//! Built on hyper 1 with hyper-util's tokio glue: the maintained low-level HTTP/1 server
//! of the tokio ecosystem, already the base of axum and of the exporter's own listener.
//! Three fixed GET routes need no router, so axum (and tower) would only add weight; the
//! exporter's built-in listener is off because it cannot serve /health and /ready, nor
//! refresh the state-derived gauges before a scrape.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::cmd::Shared;
use crate::config::Config;
use crate::error::StartupError;
use crate::metrics as m;
use crate::table::KIND_NAMES;

/// Longest time one HTTP request may take to arrive (slow clients cannot pin tasks).
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// What the handlers read.
#[derive(Debug)]
struct State {
    handle: PrometheusHandle,
    /// The server state, once recovery has built it.
    server: OnceLock<Arc<Shared>>,
}

/// The running listener; dropping it stops it.
#[derive(Debug)]
pub struct HttpListener {
    state: Arc<State>,
    tasks: Vec<JoinHandle<()>>,
    /// The address bound.
    pub addr: std::net::SocketAddr,
}

impl HttpListener {
    /// Hands the built server state to the handlers: `/ready` and `/metrics` read it.
    pub fn attach(&self, server: Arc<Shared>) {
        let _ = self.state.server.set(server);
    }
}

impl Drop for HttpListener {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// [`start`] when `--http-port` is set, else None.
///
/// # Errors
/// As [`start`].
pub async fn start_configured(config: &Config) -> Result<Option<HttpListener>, StartupError> {
    match config.http_port {
        Some(port) => start(config, port).await.map(Some),
        None => Ok(None),
    }
}

/// Installs the Prometheus recorder, binds `--bind`:`--http-port` and serves on it.
///
/// # Errors
/// [`StartupError::HttpBind`] when the port cannot be bound, [`StartupError::Config`] when
/// a different metrics recorder is installed in this process.
pub async fn start(config: &Config, port: u16) -> Result<HttpListener, StartupError> {
    let handle = m::install().map_err(StartupError::Config)?;
    let addr = format!("{}:{}", config.bind, port);
    let listener = TcpListener::bind(&addr)
        .await
        .map_err(|source| StartupError::HttpBind {
            addr: addr.clone(),
            source,
        })?;
    let addr = listener
        .local_addr()
        .map_err(|source| StartupError::HttpBind { addr, source })?;
    tracing::info!(%addr, "http listening (/metrics, /health, /ready)");
    let state = Arc::new(State {
        handle: handle.clone(),
        server: OnceLock::new(),
    });
    let tasks = vec![
        tokio::spawn(accept(listener, state.clone())),
        tokio::spawn(m::upkeep(handle)),
    ];
    Ok(HttpListener { state, tasks, addr })
}

async fn accept(listener: TcpListener, state: Arc<State>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(err) => {
                tracing::warn!("http accept failed: {err}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(respond(&req, &state)) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            if let Err(err) = conn.await {
                tracing::debug!("http connection: {err}");
            }
        });
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn respond(req: &Request<Incoming>, state: &State) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    match req.uri().path() {
        "/health" => text(StatusCode::OK, "ok\n"),
        "/ready" => match ready(state) {
            Ok(()) => text(StatusCode::OK, "ready\n"),
            Err(why) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
        },
        "/metrics" => {
            let mut response = text(StatusCode::OK, scrape(state));
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn ready(state: &State) -> Result<(), &'static str> {
    match state.server.get() {
        Some(server) => server.ready(),
        None => Err("recovering"),
    }
}

/// Publishes the state-derived values into the recorder and renders it.
fn scrape(state: &State) -> String {
    metrics::gauge!(m::RESIDENT_MEMORY).set(m::rss_bytes() as f64);
    metrics::gauge!(m::READY).set(if ready(state).is_ok() { 1.0 } else { 0.0 });
    if let Some(server) = state.server.get() {
        publish(server);
    }
    state.handle.render()
}

/// The counts kept in the server state, as counters (absolute: they only grow) and gauges.
fn publish(server: &Shared) {
    for (spec, count) in server.commands.lifetime_counts() {
        if count.calls() + count.rejected == 0 {
            continue;
        }
        let name = spec.name.to_ascii_lowercase();
        for (result, n) in [
            ("ok", count.ok),
            ("error", count.failed + count.rejected),
            ("blocked", count.blocked),
        ] {
            metrics::counter!(m::COMMANDS, "command" => name.clone(), "result" => result)
                .absolute(n);
        }
    }
    let unknown = server.commands.lifetime_unknown();
    if unknown > 0 {
        metrics::counter!(m::COMMANDS, "command" => "unknown", "result" => "error")
            .absolute(unknown);
    }
    let stats = server.table.stats();
    for (i, kind) in KIND_NAMES.iter().enumerate() {
        metrics::gauge!(m::HELD, "kind" => *kind).set(stats.held[i] as f64);
        metrics::counter!(m::GRANTS, "kind" => *kind).absolute(stats.grants[i]);
    }
    for (kind, n) in [
        ("lock", stats.locks),
        ("semaphore", stats.semaphores),
        ("string", stats.strings),
    ] {
        metrics::gauge!(m::KEYS, "type" => kind).set(n as f64);
    }
    metrics::gauge!(m::WAITERS).set(stats.waiters as f64);
    metrics::counter!(m::LEASES_EXPIRED).absolute(stats.expired);
    metrics::counter!(m::REFRESHES).absolute(stats.refreshes);
    metrics::counter!(m::CONNECTIONS).absolute(server.connections.accepted.load(Ordering::Relaxed));
    metrics::counter!(m::CONNECTIONS_REJECTED)
        .absolute(server.connections.rejected.load(Ordering::Relaxed));
    metrics::counter!(m::AUTH_FAILURES)
        .absolute(server.connections.auth_failures.load(Ordering::Relaxed));
    metrics::counter!(m::ACL_DENIED, "reason" => "command")
        .absolute(server.connections.denied_commands.load(Ordering::Relaxed));
    metrics::counter!(m::ACL_DENIED, "reason" => "key")
        .absolute(server.connections.denied_keys.load(Ordering::Relaxed));
    metrics::gauge!(m::CONNECTED).set(server.clients.len() as f64);
    if let Some(cluster) = &server.cluster {
        // The fields of INFO replication.
        let status = cluster.status();
        let role = match status.role {
            crate::cluster::Role::Leader => "leader",
            crate::cluster::Role::Candidate => "candidate",
            crate::cluster::Role::Follower => "follower",
            crate::cluster::Role::Removed => "removed",
        };
        m::cluster(
            role,
            status.term,
            status.commit_index.saturating_sub(status.applied_index),
        );
    }
    if let Some(log) = &server.log {
        let last = log.stats().last_snapshot_unix_ms;
        if last > 0 {
            let age_ms = crate::clock::wall_ms().saturating_sub(last);
            metrics::gauge!(m::SNAPSHOT_AGE).set(age_ms as f64 / 1000.0);
        }
    }
}
