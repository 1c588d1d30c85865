//! A guarded critical section: only one process at a time runs `work`, and it stops as
//! soon as the lock's lease is lost.
//!
//! Run a server (`cargo run --release` at the repository root), then, in two terminals:
//! `cargo run -p baton-client --example critical_section` (set `BATON_URL` for another
//! address than `redis://127.0.0.1:6379`). The second run waits for the first.

use std::time::Duration;

use baton_client::{Client, Error};

/// Protected work: five steps, each checking the lease before it starts.
async fn work(guard: &baton_client::LockGuard) -> Result<(), Error> {
    for step in 1..=5 {
        guard.ensure_held()?;
        println!("step {step} of 5 (token {})", guard.token());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let url = std::env::var("BATON_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let client = Client::connect(&url).await?;

    // A 2 s lease, renewed every ~0.7 s by the guard's watchdog while the work runs; wait
    // up to 30 s for a previous holder.
    let guard = client
        .lock("examples:critical-section", Duration::from_secs(2))
        .wait(Duration::from_secs(30))
        .await?;
    println!("acquired by {}", guard.owner());

    tokio::select! {
        result = work(&guard) => {
            result?;
            guard.unlock().await?;
            println!("done and released");
        }
        reason = guard.lost() => {
            eprintln!("lease lost ({reason}): the work was abandoned");
        }
    }
    Ok(())
}
