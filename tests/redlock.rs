//! The Rust `redlock` crate (unmodified) against three baton servers.

mod common;

use common::TestServer;

#[test]
fn redlock_crate_locks_across_three_batons() {
    let servers: Vec<TestServer> = (0..3).map(|_| TestServer::default_config()).collect();
    let uris: Vec<String> = servers
        .iter()
        .map(|s| format!("redis://{}/", s.addr))
        .collect();
    let rl = redlock::RedLock::new(uris.clone());
    let lock = rl
        .lock(b"resource", 10_000)
        .expect("no error")
        .expect("granted");
    let mut other = redlock::RedLock::new(uris);
    other.set_retry(1, 10);
    assert!(
        other.lock(b"resource", 10_000).expect("no error").is_none(),
        "held by the first"
    );
    rl.unlock(&lock);
    let again = other.lock(b"resource", 1_000).expect("no error");
    assert!(again.is_some(), "free after unlock");
}
