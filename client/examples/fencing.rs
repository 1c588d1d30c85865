//! Fencing: a store that remembers the largest token it accepted refuses a writer whose
//! lease ended, even though that writer still believes it holds the lock.
//!
//! Client A takes the lock, then stalls (a GC pause, a slow disk: simulated by stopping
//! its watchdog and sleeping past the lease). Meanwhile the lease runs out on the server,
//! client B takes the lock with a larger token and writes. When A wakes up and writes with
//! its old token, the store refuses it.
//!
//! Run a server (`cargo run --release` at the repository root), then
//! `cargo run -p baton-client --example fencing` (`BATON_URL` sets another address).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use baton_client::{Client, Error};

/// A toy storage service that checks fencing tokens: a write carries the writer's token
/// and is refused if the key has seen a larger one.
#[derive(Default)]
struct FencedStore {
    /// Per key: the largest token accepted and the value.
    data: Mutex<HashMap<String, (i64, String)>>,
}

impl FencedStore {
    fn write(&self, key: &str, token: i64, value: &str) -> Result<(), String> {
        let mut data = self.data.lock().unwrap_or_else(|e| e.into_inner());
        match data.get(key) {
            Some((seen, _)) if *seen > token => Err(format!(
                "refused: token {token} is older than {seen}, which already wrote"
            )),
            _ => {
                data.insert(key.to_owned(), (token, value.to_owned()));
                Ok(())
            }
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let url = std::env::var("BATON_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let client = Client::connect(&url).await?;
    let store = Arc::new(FencedStore::default());
    let ttl = Duration::from_millis(500);

    // A takes the lock and then stalls without renewing (its watchdog is stopped).
    let mut a = client.lock("examples:fencing", ttl).await?;
    a.stop_watchdog();
    println!("A holds the lock with token {}", a.token());
    tokio::time::sleep(ttl * 3).await;

    // The lease ran out on the server: B gets the lock with a larger token and writes.
    let b = client
        .lock("examples:fencing", ttl)
        .wait(Duration::from_secs(5))
        .await?;
    println!("B holds the lock with token {}", b.token());
    store
        .write("balance", b.token(), "written by B")
        .expect("B's token is the newest");
    println!("B wrote");

    // A wakes up. Its guard knows the lease is gone...
    println!("A's guard says: {:?}", a.ensure_held().err());
    // ...and even a writer that did not check is stopped by the store.
    match store.write("balance", a.token(), "written by A") {
        Ok(()) => println!("A wrote (this must not happen)"),
        Err(refusal) => println!("A's write: {refusal}"),
    }
    b.unlock().await?;
    Ok(())
}
