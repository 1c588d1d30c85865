//! The expirer: the only reader of the clock for leases. It sleeps until the table's next
//! deadline, is woken early when an earlier lease is scheduled, and ends due leases in short
//! rounds so that a mass expiry never starves other tasks.
//!
//! A round splits the shards into as many parts as the runtime has workers and expires
//! them in parallel (one task per part, each shard locked on its own), at most
//! [`ROUND_BUDGET`] leases per part; between rounds it yields. One task alone falls seconds
//! behind when a million leases fall due within a second; in parallel the last one ends
//! within a few ms of its deadline (benches/scenarios.sh, scenario 6, shows both). A
//! smaller budget gives PING more turns during such an expiry.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::Notify;

use super::shutdown::Shutdown;
use crate::cmd::Shared;
use crate::table::{LockTable, Now};

/// Leases ended per part of the shards and round before yielding to other tasks: a few
/// hundred microseconds of work.
pub const ROUND_BUDGET: usize = 256;

/// Runs until shutdown.
pub async fn run(server: Arc<Shared>, mut shutdown: Shutdown) {
    let table = server.table.clone();
    let parts = tokio::runtime::Handle::current()
        .metrics()
        .num_workers()
        .clamp(1, table.shard_count().max(1));
    let wake = Arc::new(Notify::new());
    let waker = wake.clone();
    table.set_wake(Box::new(move || waker.notify_one()));
    loop {
        // Cluster mode: only the serving leader ends leases, after its lease extension.
        if let Some(cluster) = &server.cluster {
            tokio::select! {
                _ = cluster.expiry_allowed() => {}
                _ = shutdown.started() => return,
            }
        }
        // Awake: leases scheduled while we run need not notify (we look again below).
        table.set_armed(Some(Instant::now()));
        if expire_round(&table, server.now(), parts).await {
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

/// One round over all shards, `parts` of them in parallel. True if some part used its whole
/// budget (more may be due).
async fn expire_round(table: &Arc<LockTable>, now: Now, parts: usize) -> bool {
    let shards = table.shard_count();
    let per_part = shards.div_ceil(parts);
    let mut others = Vec::with_capacity(parts.saturating_sub(1));
    for part in 1..parts {
        let table = table.clone();
        let range = part * per_part..((part + 1) * per_part).min(shards);
        others.push(tokio::spawn(async move {
            table.expire_shards(range, now, ROUND_BUDGET)
        }));
    }
    let mut full = table.expire_shards(0..per_part.min(shards), now, ROUND_BUDGET) >= ROUND_BUDGET;
    for handle in others {
        // A part's task fails only by panicking; its shards are tried again next round.
        full |= handle.await.map_or(true, |ended| ended >= ROUND_BUDGET);
    }
    full
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
