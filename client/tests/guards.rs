//! baton-client against a real baton server (the binary, over TCP): guards, the
//! watchdog, lost leases, waits, tokens, mutual exclusion, rw locks, semaphores, MLOCK,
//! retries and the blocking facade.
//!
//! These tests wait in real time where the server's clock decides (leases running out);
//! the leases are short (a few hundred ms) to keep that brief.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use baton_client::{Client, Error, LeaseState, LockMode, LostReason};
use common::Server;

const MS: Duration = Duration::from_millis(1);

async fn client(server: &Server) -> Client {
    Client::connect(&server.url()).await.expect("connect")
}

/// Polls `check` every 10 ms until it holds or `within` passes.
async fn eventually<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < end, "not within {within:?}: {what}");
        tokio::time::sleep(10 * MS).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_guard_releases_the_lock() {
    let server = Server::start();
    let client = client(&server).await;
    let guard = client.lock("k", 10_000 * MS).await.expect("granted");
    assert!(matches!(
        client.lock("k", 10_000 * MS).await,
        Err(Error::NotGranted)
    ));
    drop(guard);
    eventually("the key is free", Duration::from_secs(5), || async {
        client.lock_info("k").await.expect("info").is_none()
    })
    .await;
    let again = client
        .lock("k", 10_000 * MS)
        .await
        .expect("granted after drop");
    again.unlock().await.expect("unlock");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlock_reports_the_release_and_frees_the_key() {
    let server = Server::start();
    let client = client(&server).await;
    let guard = client.lock("k", 10_000 * MS).await.expect("granted");
    guard.unlock().await.expect("released");
    assert_eq!(client.lock_info("k").await.expect("info"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watchdog_keeps_a_lock_well_past_its_ttl() {
    let server = Server::start();
    let client = client(&server).await;
    let guard = client.lock("k", 300 * MS).await.expect("granted");
    // Five leases long.
    tokio::time::sleep(1500 * MS).await;
    guard.ensure_held().expect("still held");
    let info = client.lock_info("k").await.expect("info").expect("held");
    assert_eq!(info.holders.len(), 1);
    assert_eq!(info.holders[0].token, guard.token());
    assert_eq!(info.holders[0].owner, guard.owner().as_bytes());
    assert!(matches!(
        client.lock("k", 300 * MS).await,
        Err(Error::NotGranted)
    ));
    guard.unlock().await.expect("unlock");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_watchdog_lets_the_lease_expire() {
    let server = Server::start();
    let client = client(&server).await;
    let mut guard = client.lock("k", 300 * MS).await.expect("granted");
    guard.stop_watchdog();
    let reason = tokio::time::timeout(Duration::from_secs(3), guard.lost())
        .await
        .expect("reported lost");
    assert_eq!(reason, LostReason::Expired);
    assert!(matches!(
        guard.ensure_held(),
        Err(Error::LeaseLost(LostReason::Expired))
    ));
    // The server let it go too: another owner gets it (waiting for the server's expiry).
    let next = client
        .lock("k", 1000 * MS)
        .wait(Duration::from_secs(3))
        .await
        .expect("granted after expiry");
    assert!(next.token() > guard.token());
    assert!(matches!(
        guard.unlock().await,
        Err(Error::LeaseLost(LostReason::Expired))
    ));
    next.unlock().await.expect("unlock");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_without_watchdog_is_renewed_by_hand() {
    let server = Server::start();
    let client = client(&server).await;
    let guard = client
        .lock("k", 400 * MS)
        .watchdog(false)
        .await
        .expect("granted");
    for _ in 0..4 {
        tokio::time::sleep(200 * MS).await;
        guard.refresh().await.expect("renewed");
    }
    guard
        .ensure_held()
        .expect("held after 800 ms of a 400 ms lease");
    guard.unlock().await.expect("unlock");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_deleted_by_an_operator_is_reported_lost() {
    let server = Server::start();
    let client = client(&server).await;
    let guard = client.lock("k", 600 * MS).await.expect("granted");
    let mut watch = guard.watch();
    let _: i64 = redis::cmd("DEL")
        .arg("k")
        .query(&mut server.admin())
        .expect("DEL");
    let reason = tokio::time::timeout(Duration::from_secs(3), guard.lost())
        .await
        .expect("reported lost");
    assert_eq!(reason, LostReason::NotHeld);
    assert_eq!(
        *watch.borrow_and_update(),
        LeaseState::Lost(LostReason::NotHeld)
    );
    assert!(matches!(
        guard.ensure_held(),
        Err(Error::LeaseLost(LostReason::NotHeld))
    ));
    assert!(matches!(
        guard.refresh().await,
        Err(Error::LeaseLost(LostReason::NotHeld))
    ));
    // Never re-acquired behind the holder's back: the key stays free.
    tokio::time::sleep(400 * MS).await;
    assert_eq!(client.lock_info("k").await.expect("info"), None);
    assert!(matches!(
        guard.unlock().await,
        Err(Error::LeaseLost(LostReason::NotHeld))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_forgotten_by_a_restart_is_reported_lost() {
    let mut server = Server::start();
    let client = client(&server).await;
    let guard = client.lock("k", 1000 * MS).await.expect("granted");
    let token = guard.token();
    server.restart();
    let reason = tokio::time::timeout(Duration::from_secs(5), guard.lost())
        .await
        .expect("reported lost");
    assert_eq!(reason, LostReason::NotHeld);
    // The client reconnected by itself; tokens did not go back across the restart.
    let next = client.lock("k", 1000 * MS).await.expect("granted");
    assert!(next.token() > token);
    next.unlock().await.expect("unlock");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_ends_with_the_timeout_or_the_grant() {
    let server = Server::start();
    let client = client(&server).await;
    let holder = client.lock("k", 10_000 * MS).await.expect("granted");

    let start = Instant::now();
    let result = client.lock("k", 1000 * MS).wait(300 * MS).await;
    assert!(matches!(result, Err(Error::NotGranted)), "{result:?}");
    assert!(start.elapsed() >= 300 * MS);
    assert!(start.elapsed() < Duration::from_secs(3));

    let waiter = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .lock("k", 1000 * MS)
                .wait(Duration::from_secs(10))
                .await
        }
    });
    eventually("the waiter queued", Duration::from_secs(3), || async {
        client
            .lock_info("k")
            .await
            .expect("info")
            .is_some_and(|info| info.waiters == 1)
    })
    .await;
    holder.unlock().await.expect("unlock");
    let granted = waiter.await.expect("task").expect("granted after release");
    granted.unlock().await.expect("unlock");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_after_a_wait_longer_than_its_ttl_is_held() {
    let server = Server::start();
    let client = client(&server).await;
    let holder = client.lock("k", 5000 * MS).await.expect("granted");
    let waiter = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .lock("k", 200 * MS)
                .wait(Duration::from_secs(10))
                .await
        }
    });
    // The waiter waits four of its leases before the grant.
    tokio::time::sleep(800 * MS).await;
    holder.unlock().await.expect("unlock");
    let guard = waiter.await.expect("task").expect("granted");
    guard.ensure_held().expect("held right after the grant");
    tokio::time::sleep(600 * MS).await;
    guard.ensure_held().expect("held three leases later");
    guard.unlock().await.expect("unlock");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_wait_leaves_the_queue() {
    let server = Server::start();
    let client = client(&server).await;
    let holder = client.lock("k", 10_000 * MS).await.expect("granted");
    let waiter = tokio::spawn({
        let client = client.clone();
        async move { client.lock("k", 1000 * MS).wait_forever().await }
    });
    eventually("the waiter queued", Duration::from_secs(3), || async {
        client
            .lock_info("k")
            .await
            .expect("info")
            .is_some_and(|info| info.waiters == 1)
    })
    .await;
    waiter.abort();
    eventually("the waiter left", Duration::from_secs(3), || async {
        client
            .lock_info("k")
            .await
            .expect("info")
            .is_some_and(|info| info.waiters == 0)
    })
    .await;
    holder.unlock().await.expect("unlock");
    eventually("the key is free", Duration::from_secs(3), || async {
        client.lock_info("k").await.expect("info").is_none()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_increase() {
    let server = Server::start();
    let client = client(&server).await;
    let mut last = 0;
    for _ in 0..5 {
        let guard = client.lock("k", 1000 * MS).await.expect("granted");
        assert!(guard.token() > last);
        last = guard.token();
        guard.unlock().await.expect("unlock");
    }
    let read = client.read_lock("k", 1000 * MS).await.expect("granted");
    assert!(read.token() > last);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_guards_never_overlap() {
    let server = Server::start();
    let client = client(&server).await;
    let inside = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (client, inside, done) = (client.clone(), inside.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let mut last_token = 0;
            for _ in 0..10 {
                let guard = client
                    .lock("counter", 5000 * MS)
                    .wait_forever()
                    .await
                    .expect("granted");
                assert!(guard.token() > last_token);
                last_token = guard.token();
                assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders");
                tokio::task::yield_now().await;
                tokio::time::sleep(MS).await;
                assert_eq!(inside.fetch_sub(1, Ordering::SeqCst), 1, "two holders");
                done.fetch_add(1, Ordering::SeqCst);
                guard.unlock().await.expect("unlock");
            }
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    assert_eq!(done.load(Ordering::SeqCst), 160);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_write_and_shared_write_locks() {
    let server = Server::start();
    let client = client(&server).await;
    let r1 = client.read_lock("rw", 5000 * MS).await.expect("reader 1");
    let r2 = client.read_lock("rw", 5000 * MS).await.expect("reader 2");
    assert_ne!(r1.token(), r2.token());
    assert!(matches!(
        client.write_lock("rw", 5000 * MS).await,
        Err(Error::NotGranted)
    ));
    let info = client.lock_info("rw").await.expect("info").expect("held");
    assert_eq!(info.mode, LockMode::Read);
    assert_eq!(info.holders.len(), 2);
    r1.unlock().await.expect("unlock");
    r2.unlock().await.expect("unlock");

    let w1 = client.shared_write_lock("rw", 5000 * MS).await.expect("w1");
    let w2 = client.shared_write_lock("rw", 5000 * MS).await.expect("w2");
    assert!(matches!(
        client.read_lock("rw", 5000 * MS).await,
        Err(Error::NotGranted)
    ));
    let info = client.lock_info("rw").await.expect("info").expect("held");
    assert_eq!(info.mode, LockMode::SharedWrite);
    drop((w1, w2));

    let w = client
        .write_lock("rw", 5000 * MS)
        .wait(Duration::from_secs(5))
        .await
        .expect("exclusive writer after the shared ones");
    let info = client.lock_info("rw").await.expect("info").expect("held");
    assert_eq!(info.mode, LockMode::Exclusive);
    w.unlock().await.expect("unlock");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn semaphore_permits() {
    let server = Server::start();
    let client = client(&server).await;
    let pool = client.semaphore("pool").capacity(3);
    let a = pool.acquire(2).await.expect("2 of 3");
    let b = pool.acquire(1).await.expect("1 of 3");
    assert!(matches!(pool.acquire(1).await, Err(Error::NotGranted)));
    let info = pool.info().await.expect("info").expect("exists");
    assert_eq!((info.capacity, info.used), (3, 3));
    assert_eq!(info.holders.len(), 2);
    a.unlock().await.expect("release");
    let c = pool
        .acquire(2)
        .wait(Duration::from_secs(2))
        .await
        .expect("2 free again");
    drop((b, c));
    assert!(pool.delete().await.expect("delete"));
    assert_eq!(pool.info().await.expect("info"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_semaphore_is_a_lost_lease() {
    let server = Server::start();
    let client = client(&server).await;
    let pool = client.semaphore("pool").capacity(1);
    let permit = pool.acquire(1).ttl(600 * MS).await.expect("granted");
    assert!(pool.delete().await.expect("delete"));
    let reason = tokio::time::timeout(Duration::from_secs(3), permit.lost())
        .await
        .expect("reported lost");
    assert_eq!(reason, LostReason::NotHeld);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_many_takes_all_keys_with_a_token_each() {
    let server = Server::start();
    let client = client(&server).await;
    let guard = client
        .lock_many(["a", "b", "c"], 5000 * MS)
        .await
        .expect("granted");
    assert_eq!(guard.tokens().len(), 3);
    assert_eq!(guard.keys().len(), 3);
    for key in ["a", "b", "c"] {
        assert!(matches!(
            client.lock(key, 1000 * MS).await,
            Err(Error::NotGranted)
        ));
    }
    assert!(matches!(
        client.lock_many(["c", "d"], 1000 * MS).await,
        Err(Error::NotGranted)
    ));
    guard.unlock().await.expect("all released");
    for key in ["a", "b", "c"] {
        assert_eq!(client.lock_info(key).await.expect("info"), None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_grant_by_the_same_owner_gets_the_same_token() {
    let server = Server::start();
    let client = client(&server).await;
    let owner = baton_client::new_owner_id();
    let first = client
        .lock("k", 5000 * MS)
        .owner(owner.clone())
        .watchdog(false)
        .await
        .expect("granted");
    // What a retry after a lost reply sends: the same request, the same owner.
    let retried = client
        .lock("k", 5000 * MS)
        .owner(owner)
        .watchdog(false)
        .await
        .expect("idempotent");
    assert_eq!(first.token(), retried.token());
    // Both guards name one hold: dropping `retried` would release it under `first`.
    std::mem::forget(retried);
    first.unlock().await.expect("unlock");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tryagain_during_the_restart_delay_is_retried() {
    let server = Server::start_on(0, &["--restart-delay-ms", "700"]);
    let client = Client::builder()
        .node(server.url())
        .build()
        .await
        .expect("connect");
    let refused: redis::RedisResult<Option<i64>> = redis::cmd("LOCK")
        .arg("other")
        .arg("o")
        .arg(1000)
        .query(&mut server.admin());
    let refused = refused.expect_err("refused during the delay");
    assert_eq!(refused.code(), Some("TRYAGAIN"), "{refused}");
    let start = Instant::now();
    let guard = client
        .lock("k", 1000 * MS)
        .await
        .expect("granted after the delay");
    assert!(start.elapsed() < Duration::from_secs(5));
    guard.unlock().await.expect("unlock");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_node_is_skipped() {
    let server = Server::start();
    // A port that was free a moment ago: nothing listens there.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port");
    let client = Client::builder()
        .node(format!("redis://{dead}/"))
        .node(server.url())
        .build()
        .await
        .expect("connects through the live node");
    let guard = client.lock("k", 1000 * MS).await.expect("granted");
    guard.unlock().await.expect("unlock");
}

#[test]
fn the_blocking_facade() {
    let server = Server::start();
    let client = baton_client::blocking::Client::connect(&server.url()).expect("connect");
    let guard = client.lock("k", 300 * MS).acquire().expect("granted");
    assert!(matches!(
        client.lock("k", 300 * MS).wait(100 * MS).acquire(),
        Err(Error::NotGranted)
    ));
    // The watchdog runs on the client's own runtime while this thread sleeps.
    std::thread::sleep(900 * MS);
    guard.ensure_held().expect("held");
    let token = guard.token();
    drop(guard);
    let next = client
        .lock("k", 300 * MS)
        .wait(Duration::from_secs(2))
        .acquire()
        .expect("granted after drop");
    assert!(next.token() > token);
    assert_eq!(next.wait_lost(10 * MS), None);
    next.unlock().expect("unlock");
    assert_eq!(client.lock_info("k").expect("info"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resp3_replies_parse_too() {
    let server = Server::start();
    let client = Client::connect(&format!("{}?protocol=resp3", server.url()))
        .await
        .expect("connect with HELLO 3");
    let guard = client
        .lock_many(["a", "b"], 5000 * MS)
        .await
        .expect("granted");
    assert!(matches!(
        client.lock_many(["b", "c"], 5000 * MS).await,
        Err(Error::NotGranted)
    ));
    let info = client.lock_info("a").await.expect("info").expect("held");
    assert_eq!(info.mode, LockMode::Exclusive);
    assert_eq!(info.holders[0].token, guard.tokens()[0]);
    let pool = client.semaphore("s").capacity(2);
    let permit = pool.acquire(1).await.expect("granted");
    let sem = pool.info().await.expect("info").expect("exists");
    assert_eq!((sem.capacity, sem.used), (2, 1));
    permit.unlock().await.expect("release");
    guard.unlock().await.expect("unlock");
}
