//! The `baton` binary: flags, env and config file → Config → tracing → runtime → server.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use baton::config::Config;

/// mimalloc instead of glibc malloc: ending a million leases at once frees as many small
/// blocks, and glibc spends much of that in free-chunk consolidation; mimalloc ends them in
/// well under half the time at the same memory per lock, where jemalloc takes more memory
/// (`cargo run --release --example lock_memory` compares them).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let config = match baton::settings::load() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("baton: {err}");
            return ExitCode::from(2);
        }
    };
    init_logging(&config.log_level);
    tracing::info!(
        "configuration (flag > env > file > default): {}",
        baton::settings::describe(&config.effective)
    );
    match run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // Display, not the Debug structure `main() -> Result` would print: one line
            // that says what failed and what to do.
            eprintln!("baton: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Builds the runtime and serves until SIGINT or SIGTERM.
fn run(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if config.threads > 0 {
        runtime.worker_threads(config.threads);
    }
    // Memory freed on one worker but allocated on another goes back to the OS only when
    // the allocating worker collects: each does at its next park or unpark after a large
    // connection closed (server::budget).
    runtime
        .on_thread_park(baton::server::budget::collect_if_asked)
        .on_thread_unpark(baton::server::budget::collect_if_asked);
    let runtime = runtime.enable_all().build()?;
    runtime.block_on(async move {
        let config = Arc::new(config);
        // The HTTP listener first: /health answers and /ready says `recovering` while
        // the data directory is replayed.
        let http = baton::server::http::start_configured(&config).await?;
        // The certificate and key before recovery: a bad file fails the start at once.
        let tls = baton::server::tls::acceptor(&config)?;
        // Recovery, then bind: a client never reaches a server still loading.
        let server = baton::server::build(config.clone()).await?;
        if let Some(http) = &http {
            http.attach(server.clone());
        }
        let listeners = baton::server::bind_all(&config, tls).await?;
        baton::server::serve_all(listeners, server, shutdown_signal()).await?;
        drop(http);
        Ok(())
    })
}

/// Logs to stderr through a filter that CONFIG SET log-level can replace.
fn init_logging(filter: &str) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{reload, EnvFilter};

    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(colour_wanted()),
        )
        .init();
    baton::settings::set_log_reloader(Box::new(move |directive| {
        let filter = EnvFilter::try_new(directive).map_err(|e| e.to_string())?;
        handle.reload(filter).map_err(|e| e.to_string())
    }));
}

/// Log lines are coloured only for a person watching a terminal: not when stderr goes to a
/// file or a pipe, and not when `NO_COLOR` is set to anything but the empty string
/// (<https://no-color.org>).
fn colour_wanted() -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    !no_color && std::io::stderr().is_terminal()
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
