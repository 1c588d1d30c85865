//! The `baton` binary: flags and env → Config → tracing → runtime → server::run.

use std::io::ErrorKind;
use std::sync::Arc;

use baton::config::Config;
use baton::error::StartupError;

/// mimalloc instead of glibc malloc: ending 1M leases at once took 1.5 s with glibc (40% of
/// it in free-chunk consolidation) and 0.6 s with mimalloc, at the same memory per lock
/// (`cargo run --release --example lock_memory`; jemalloc: 0.78 s and +25% memory).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = match baton::settings::load() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("baton: {err}");
            std::process::exit(2);
        }
    };
    init_logging(&config.log_level);
    tracing::info!(
        "configuration (flag > env > file > default): {}",
        baton::settings::describe(&config.effective)
    );
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if config.threads > 0 {
        runtime.worker_threads(config.threads);
    }
    let runtime = runtime.enable_all().build()?;
    let config = Arc::new(config);
    let served = runtime.block_on({
        let config = config.clone();
        async move {
            let listener = baton::server::bind(&config).await?;
            baton::server::run(listener, config, shutdown_signal()).await
        }
    });
    if let Err(err) = served {
        // Display, not Debug: the message names the file, address or port to act on.
        eprintln!("baton: {err}");
        if let Some(hint) = hint(&err, &config) {
            eprintln!("baton: {hint}");
        }
        std::process::exit(1);
    }
    Ok(())
}

/// What to do about a start-up error, when there is an obvious step.
fn hint(err: &StartupError, config: &Config) -> Option<String> {
    match err {
        StartupError::Bind { addr, source } if source.kind() == ErrorKind::AddrInUse => {
            let flag = match addr.rsplit_once(':') {
                Some((_, port))
                    if Some(port) == config.http_port.map(|p| p.to_string()).as_deref() =>
                {
                    "--http-port"
                }
                _ => "--port",
            };
            Some(format!(
                "another process listens on {addr}: stop it, or choose another port with {flag}"
            ))
        }
        _ => None,
    }
}

/// Logs to stderr through a filter that CONFIG SET log-level can replace; colour codes
/// only on a terminal.
fn init_logging(filter: &str) {
    use std::io::IsTerminal;
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
                .with_ansi(std::io::stderr().is_terminal()),
        )
        .init();
    baton::settings::set_log_reloader(Box::new(move |directive| {
        let filter = EnvFilter::try_new(directive).map_err(|e| e.to_string())?;
        handle.reload(filter).map_err(|e| e.to_string())
    }));
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
