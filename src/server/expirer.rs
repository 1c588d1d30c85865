//! The expirer: the only reader of the clock for leases. It sleeps until the table's next
//! deadline, is woken early when an earlier lease is scheduled, and ends due leases with a
//! budget per round so that a mass expiry never starves other tasks.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::Notify;

use super::shutdown::Shutdown;
use crate::cmd::Server;

/// Leases ended per round before yielding to other tasks.
pub const EXPIRE_BUDGET: usize = 2_000;

/// Runs until shutdown.
pub async fn run(server: Arc<Server>, mut shutdown: Shutdown) {
    let table = server.table.clone();
    let wake = Arc::new(Notify::new());
    let waker = wake.clone();
    table.set_wake(Box::new(move || waker.notify_one()));
    loop {
        // Awake: leases scheduled while we run need not notify (we look again below).
        table.set_armed(Some(Instant::now()));
        let ended = table.expire(server.now(), EXPIRE_BUDGET);
        if ended >= EXPIRE_BUDGET {
            tokio::task::yield_now().await;
            continue;
        }
        let next = table.next_deadline();
        table.set_armed(next);
        // A lease scheduled between the two reads did not notify: look once more.
        if table.next_deadline() < next || (next.is_none() && table.next_deadline().is_some()) {
            continue;
        }
        tokio::select! {
            _ = sleep_until(next) => {}
            _ = wake.notified() => {}
            _ = shutdown.started() => return,
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
