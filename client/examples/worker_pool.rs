//! A semaphore-limited worker pool: twelve jobs, at most three running at once across
//! every process that uses the same semaphore.
//!
//! Run a server (`cargo run --release` at the repository root), then
//! `cargo run -p baton-client --example worker_pool` (`BATON_URL` sets another address).
//! Start it twice at once to see the limit hold across processes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use baton_client::{Client, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let url = std::env::var("BATON_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let client = Client::connect(&url).await?;
    // Created with capacity 3 by the first acquire if it does not exist yet.
    let slots = client.semaphore("examples:worker-pool").capacity(3);
    let running = Arc::new(AtomicUsize::new(0));

    let mut jobs = Vec::new();
    for job in 1..=12 {
        let (slots, running) = (slots.clone(), running.clone());
        jobs.push(tokio::spawn(async move {
            // One permit with a 5 s lease (renewed while the job runs); wait as long as it
            // takes for a free slot.
            let permit = slots
                .acquire(1)
                .ttl(Duration::from_secs(5))
                .wait_forever()
                .await?;
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            println!(
                "job {job:2} runs ({now} running here, token {})",
                permit.token()
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
            running.fetch_sub(1, Ordering::SeqCst);
            permit.unlock().await
        }));
    }
    for job in jobs {
        job.await.expect("job task")?;
    }
    if let Some(info) = slots.info().await? {
        println!(
            "semaphore: capacity {}, used {}, waiters {}",
            info.capacity, info.used, info.waiters
        );
    }
    Ok(())
}
