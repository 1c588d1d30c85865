//! docs/protocol.md "Semaphores": every rule, against a real server over a real socket.

mod common;

use common::{err_of, err_text, int};

use std::sync::mpsc;
use std::time::Duration;

use common::{eventually, info_field, TestServer};
use redis::Value;

const SECOND: Duration = Duration::from_secs(5);

type Done = mpsc::Sender<(&'static str, Result<Option<i64>, String>)>;

fn create(con: &mut redis::Connection, key: &str, capacity: i64) {
    let ok: String = redis::cmd("SEM.CREATE")
        .arg(key)
        .arg(capacity)
        .query(con)
        .expect("SEM.CREATE");
    assert_eq!(ok, "OK");
}

fn acquire_cmd(key: &str, owner: &str, ttl: u64, permits: u64) -> redis::Cmd {
    let mut cmd = redis::cmd("SEM.ACQUIRE");
    cmd.arg(key).arg(owner).arg(ttl).arg("PERMITS").arg(permits);
    cmd
}

fn acquire(con: &mut redis::Connection, key: &str, owner: &str, permits: u64) -> Option<i64> {
    acquire_cmd(key, owner, 60_000, permits)
        .query(con)
        .expect("SEM.ACQUIRE")
}

fn release(con: &mut redis::Connection, key: &str, owner: &str) -> i64 {
    redis::cmd("SEM.RELEASE")
        .arg(key)
        .arg(owner)
        .query(con)
        .expect("SEM.RELEASE")
}

fn sem_field(con: &mut redis::Connection, key: &str, field: &str) -> i64 {
    info_field(con, "SEM.INFO", key, field)
        .and_then(|v| redis::from_redis_value::<i64>(v).ok())
        .unwrap_or_else(|| panic!("SEM.INFO {key} has no integer {field}"))
}

/// The holders of SEM.INFO as (owner, permits, token, ttl), sorted by owner.
fn sem_holders(con: &mut redis::Connection, key: &str) -> Vec<(String, i64, i64, i64)> {
    let holders = info_field(con, "SEM.INFO", key, "holders").expect("holders");
    let Value::Array(holders) = holders else {
        panic!("holders is not an array: {holders:?}")
    };
    let mut out: Vec<_> = holders
        .into_iter()
        .map(|h| {
            let items: Vec<Value> = match h {
                Value::Array(items) => items,
                Value::Map(pairs) => pairs.into_iter().flat_map(|(k, v)| [k, v]).collect(),
                other => panic!("holder is not a map: {other:?}"),
            };
            let mut fields = std::collections::HashMap::new();
            let mut it = items.into_iter();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                fields.insert(redis::from_redis_value::<String>(k).unwrap(), v);
            }
            let get_i = |name: &str| redis::from_redis_value::<i64>(fields[name].clone()).unwrap();
            (
                redis::from_redis_value::<String>(fields["owner"].clone()).unwrap(),
                get_i("permits"),
                get_i("token"),
                get_i("ttl"),
            )
        })
        .collect();
    out.sort();
    out
}

/// A blocked SEM.ACQUIRE on its own connection; the outcome arrives on the channel.
fn spawn_acquire(
    server: &TestServer,
    key: &'static str,
    owner: &'static str,
    permits: u64,
    done: Done,
) -> std::thread::JoinHandle<()> {
    let mut con = server.conn();
    std::thread::spawn(move || {
        let result = acquire_cmd(key, owner, 60_000, permits)
            .arg("WAIT")
            .arg(0)
            .query::<Option<i64>>(&mut con)
            .map_err(|e| err_of::<Value>(Err(e)));
        let _ = done.send((owner, result));
    })
}

fn wait_for_waiters(con: &mut redis::Connection, key: &str, n: i64) {
    eventually(&format!("{n} waiters on {key}"), SECOND, || {
        sem_field(con, key, "waiters") == n
    });
}

fn granted(rx: &mpsc::Receiver<(&'static str, Result<Option<i64>, String>)>) -> &'static str {
    let (who, result) = rx.recv_timeout(SECOND).expect("a waiter answered");
    let token = result.unwrap_or_else(|e| panic!("{who} failed: {e}"));
    assert!(token.is_some_and(|t| t > 0), "{who} got {token:?}");
    who
}

#[test]
fn sem_create_creates_and_resizes() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    create(&mut con, "s", 3);
    assert_eq!(sem_field(&mut con, "s", "capacity"), 3);
    assert_eq!(sem_field(&mut con, "s", "used"), 0);
    assert_eq!(sem_field(&mut con, "s", "waiters"), 0);
    assert!(sem_holders(&mut con, "s").is_empty());
    create(&mut con, "s", 5);
    assert_eq!(sem_field(&mut con, "s", "capacity"), 5);
    create(&mut con, "s", 1);
    assert_eq!(sem_field(&mut con, "s", "capacity"), 1);
    let t: String = redis::cmd("TYPE").arg("s").query(&mut con).unwrap();
    assert_eq!(t, "semaphore");
}

#[test]
fn acquire_counts_permits_and_capacity_creates_only() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    let err = err_text(
        &mut con,
        redis::cmd("SEM.ACQUIRE").arg("s").arg("a").arg(1000),
    );
    assert_eq!(err, "ERR no such semaphore");
    assert_eq!(int(&mut con, redis::cmd("EXISTS").arg("s")), 0);

    // CAPACITY creates the semaphore; PERMITS defaults to 1.
    let t1: i64 = redis::cmd("SEM.ACQUIRE")
        .arg("s")
        .arg("a")
        .arg(60_000)
        .arg("CAPACITY")
        .arg(3)
        .query(&mut con)
        .unwrap();
    assert!(t1 > 0);
    assert_eq!(sem_field(&mut con, "s", "capacity"), 3);
    assert_eq!(sem_field(&mut con, "s", "used"), 1);

    // CAPACITY is ignored on an existing semaphore.
    let t2: i64 = acquire_cmd("s", "b", 60_000, 2)
        .arg("CAPACITY")
        .arg(100)
        .query(&mut con)
        .unwrap();
    assert!(t2 > t1);
    assert_eq!(sem_field(&mut con, "s", "capacity"), 3);
    assert_eq!(sem_field(&mut con, "s", "used"), 3);
    // Full: nil without WAIT; options in any order and case.
    let none: Option<i64> = redis::cmd("SEM.ACQUIRE")
        .arg("s")
        .arg("c")
        .arg(60_000)
        .arg("capacity")
        .arg(10)
        .arg("permits")
        .arg(1)
        .query(&mut con)
        .unwrap();
    assert_eq!(none, None);
    // PERMITS above the capacity is an error at once, also against an existing one.
    let err = err_text(
        &mut con,
        acquire_cmd("s", "c", 60_000, 4).arg("CAPACITY").arg(10),
    );
    assert_eq!(err, "ERR permits exceed capacity");
    assert_eq!(release(&mut con, "s", "b"), 2);
    assert_eq!(release(&mut con, "s", "b"), 0);
    assert_eq!(release(&mut con, "s", "nobody"), 0);
    assert_eq!(release(&mut con, "missing", "a"), 0);
    let t3 = acquire(&mut con, "s", "c", 2).expect("two permits free again");
    assert!(t3 > t2);
}

#[test]
fn capacity_below_permits_creates_nothing() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    let err = err_text(
        &mut con,
        acquire_cmd("s", "a", 1000, 3).arg("CAPACITY").arg(2),
    );
    assert_eq!(err, "ERR permits exceed capacity");
    assert_eq!(int(&mut con, redis::cmd("EXISTS").arg("s")), 0);
    assert_eq!(int(&mut con, &mut redis::cmd("DBSIZE")), 0);
    let info: Value = redis::cmd("SEM.INFO").arg("s").query(&mut con).unwrap();
    assert_eq!(info, Value::Nil);
}

#[test]
fn invalid_capacity_and_permits() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    for bad in ["0", "-1"] {
        let err = err_text(&mut con, redis::cmd("SEM.CREATE").arg("s").arg(bad));
        assert_eq!(err, "ERR invalid capacity", "capacity {bad}");
    }
    let err = err_text(&mut con, redis::cmd("SEM.CREATE").arg("s").arg("x"));
    assert_eq!(err, "ERR value is not an integer or out of range");
    assert_eq!(int(&mut con, redis::cmd("EXISTS").arg("s")), 0);
    create(&mut con, "s", 2);
    for bad in ["0", "-3"] {
        let err = err_text(
            &mut con,
            redis::cmd("SEM.ACQUIRE")
                .arg("s")
                .arg("a")
                .arg(1000)
                .arg("PERMITS")
                .arg(bad),
        );
        assert_eq!(err, "ERR invalid permits", "permits {bad}");
        let err = err_text(
            &mut con,
            redis::cmd("SEM.ACQUIRE")
                .arg("new")
                .arg("a")
                .arg(1000)
                .arg("CAPACITY")
                .arg(bad),
        );
        assert_eq!(err, "ERR invalid capacity", "capacity {bad}");
    }
    let err = err_text(
        &mut con,
        redis::cmd("SEM.ACQUIRE")
            .arg("s")
            .arg("a")
            .arg(1000)
            .arg("PERMITS")
            .arg("many"),
    );
    assert_eq!(err, "ERR value is not an integer or out of range");
    let err = err_text(
        &mut con,
        redis::cmd("SEM.ACQUIRE")
            .arg("s")
            .arg("a")
            .arg(1000)
            .arg("PERMITS"),
    );
    assert_eq!(err, "ERR syntax error");
    assert_eq!(int(&mut con, redis::cmd("EXISTS").arg("new")), 0);
    assert_eq!(sem_field(&mut con, "s", "used"), 0, "nothing was granted");
    // The connection still works.
    assert!(acquire(&mut con, "s", "a", 1).is_some());
}

#[test]
fn checks_run_in_the_documented_order() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    let _: Option<i64> = redis::cmd("LOCK")
        .arg("lk")
        .arg("x")
        .arg(60_000)
        .query(&mut con)
        .unwrap();
    // Arguments before kind.
    let err = err_text(&mut con, &mut acquire_cmd("lk", "a", 1000, 0));
    assert_eq!(err, "ERR invalid permits");
    // Kind before existence (a lock is not a missing semaphore).
    let err = err_text(
        &mut con,
        redis::cmd("SEM.ACQUIRE").arg("lk").arg("a").arg(1000),
    );
    assert!(err.starts_with("WRONGTYPE"), "{err}");
    // Existence before permits against capacity.
    let err = err_text(&mut con, &mut acquire_cmd("nosem", "a", 1000, 99));
    assert_eq!(err, "ERR no such semaphore");
    // Permits against capacity before the owner's existing hold.
    create(&mut con, "s", 2);
    acquire(&mut con, "s", "a", 1).unwrap();
    let err = err_text(&mut con, &mut acquire_cmd("s", "a", 1000, 3));
    assert_eq!(err, "ERR permits exceed capacity");
    let err = err_text(&mut con, &mut acquire_cmd("s", "a", 1000, 2));
    assert_eq!(err, "ERR owner already holds other permits");
}

#[test]
fn repeated_acquire_is_idempotent_and_other_permits_are_an_error() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    create(&mut con, "s", 3);
    let t: i64 = acquire_cmd("s", "a", 1_000, 2).query(&mut con).unwrap();
    let again: i64 = acquire_cmd("s", "a", 60_000, 2).query(&mut con).unwrap();
    assert_eq!(again, t, "same token back");
    let holders = sem_holders(&mut con, "s");
    assert_eq!(holders.len(), 1);
    assert_eq!(holders[0].0, "a");
    assert_eq!(holders[0].1, 2);
    assert_eq!(holders[0].2, t);
    assert!(holders[0].3 > 1_000, "lease reset: {}", holders[0].3);
    assert_eq!(sem_field(&mut con, "s", "used"), 2, "not counted twice");
    let err = err_text(&mut con, &mut acquire_cmd("s", "a", 1000, 1));
    assert_eq!(err, "ERR owner already holds other permits");
    // Idempotent even when the semaphore is full for others.
    acquire(&mut con, "s", "b", 1).unwrap();
    assert_eq!(acquire(&mut con, "s", "a", 2), Some(t));
}

#[test]
fn kinds_do_not_mix() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    let _: Option<i64> = redis::cmd("LOCK")
        .arg("lk")
        .arg("x")
        .arg(60_000)
        .query(&mut con)
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("str")
        .arg("v")
        .query(&mut con)
        .unwrap();
    create(&mut con, "s", 2);
    acquire(&mut con, "s", "x", 1).unwrap();
    let wrongtype: Vec<redis::Cmd> = vec![
        redis::cmd("SEM.RELEASE").arg("lk").arg("x").clone(),
        redis::cmd("SEM.CREATE").arg("lk").arg(3).clone(),
        redis::cmd("SEM.INFO").arg("lk").clone(),
        redis::cmd("SEM.DELETE").arg("lk").clone(),
        acquire_cmd("lk", "y", 1000, 1)
            .arg("CAPACITY")
            .arg(5)
            .clone(),
        redis::cmd("SEM.RELEASE").arg("str").arg("x").clone(),
        redis::cmd("SEM.CREATE").arg("str").arg(3).clone(),
        redis::cmd("SEM.INFO").arg("str").clone(),
        redis::cmd("SEM.DELETE").arg("str").clone(),
        acquire_cmd("str", "y", 1000, 1)
            .arg("CAPACITY")
            .arg(5)
            .clone(),
        redis::cmd("LOCK").arg("s").arg("y").arg(1000).clone(),
        redis::cmd("RLOCK").arg("s").arg("y").arg(1000).clone(),
        redis::cmd("WLOCK").arg("s").arg("y").arg(1000).clone(),
        redis::cmd("LOCK.INFO").arg("s").clone(),
        redis::cmd("MLOCK")
            .arg(2)
            .arg("free")
            .arg("s")
            .arg("y")
            .arg(1000)
            .clone(),
        redis::cmd("GET").arg("s").clone(),
        redis::cmd("SET").arg("s").arg("v").clone(),
        redis::cmd("REFRESH").arg("str").arg("x").arg(1000).clone(),
        redis::cmd("UNLOCK").arg("str").arg("x").clone(),
    ];
    for mut cmd in wrongtype {
        let err = err_text(&mut con, &mut cmd);
        assert_eq!(
            err,
            "WRONGTYPE Operation against a key holding the wrong kind of value",
            "{:?}",
            String::from_utf8_lossy(&cmd.get_packed_command())
        );
    }
    // Nothing changed.
    assert_eq!(sem_field(&mut con, "s", "used"), 1);
    assert_eq!(sem_field(&mut con, "s", "capacity"), 2);
    assert_eq!(int(&mut con, redis::cmd("EXISTS").arg("free")), 0);
    let t: String = redis::cmd("TYPE").arg("lk").query(&mut con).unwrap();
    assert_eq!(t, "lock");
    let v: String = redis::cmd("GET").arg("str").query(&mut con).unwrap();
    assert_eq!(v, "v");
    // SET NX over a semaphore only answers nil.
    let nx: Option<String> = redis::cmd("SET")
        .arg("s")
        .arg("v")
        .arg("NX")
        .query(&mut con)
        .unwrap();
    assert_eq!(nx, None);
    assert_eq!(sem_field(&mut con, "s", "used"), 1);
}

#[test]
fn fifo_with_mixed_sizes_holds_back_smaller_requests() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    create(&mut con, "s", 3);
    acquire(&mut con, "s", "h", 2).unwrap();
    let (tx, rx) = mpsc::channel();
    let big = spawn_acquire(&server, "s", "big", 3, tx.clone());
    wait_for_waiters(&mut con, "s", 1);
    let small = spawn_acquire(&server, "s", "small", 1, tx.clone());
    wait_for_waiters(&mut con, "s", 2);
    // One permit is free, but the head needs three: no barging, with or without WAIT.
    assert_eq!(acquire(&mut con, "s", "other", 1), None);
    assert_eq!(sem_field(&mut con, "s", "used"), 2);
    assert!(rx.try_recv().is_err(), "small must not pass big");
    assert_eq!(release(&mut con, "s", "h"), 2);
    assert_eq!(granted(&rx), "big");
    assert_eq!(sem_field(&mut con, "s", "used"), 3);
    assert_eq!(sem_field(&mut con, "s", "waiters"), 1);
    assert_eq!(release(&mut con, "s", "big"), 3);
    assert_eq!(granted(&rx), "small");
    assert_eq!(sem_field(&mut con, "s", "used"), 1);
    big.join().unwrap();
    small.join().unwrap();
}

#[test]
fn several_small_waiters_are_granted_together_when_they_fit() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    create(&mut con, "s", 3);
    acquire(&mut con, "s", "h", 3).unwrap();
    let (tx, rx) = mpsc::channel();
    let mut threads = Vec::new();
    for (i, owner) in ["w1", "w2", "w3", "w4"].into_iter().enumerate() {
        threads.push(spawn_acquire(&server, "s", owner, 1, tx.clone()));
        wait_for_waiters(&mut con, "s", i as i64 + 1);
    }
    release(&mut con, "s", "h");
    let mut got = vec![granted(&rx), granted(&rx), granted(&rx)];
    got.sort();
    assert_eq!(got, ["w1", "w2", "w3"], "first come first served");
    assert_eq!(sem_field(&mut con, "s", "waiters"), 1);
    release(&mut con, "s", "w2");
    assert_eq!(granted(&rx), "w4");
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn growing_grants_waiters_at_once() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    create(&mut con, "s", 2);
    acquire(&mut con, "s", "h", 2).unwrap();
    let (tx, rx) = mpsc::channel();
    let w1 = spawn_acquire(&server, "s", "w1", 2, tx.clone());
    wait_for_waiters(&mut con, "s", 1);
    let w2 = spawn_acquire(&server, "s", "w2", 1, tx.clone());
    wait_for_waiters(&mut con, "s", 2);
    create(&mut con, "s", 5);
    let mut got = vec![granted(&rx), granted(&rx)];
    got.sort();
    assert_eq!(got, ["w1", "w2"]);
    assert_eq!(sem_field(&mut con, "s", "used"), 5);
    assert_eq!(sem_field(&mut con, "s", "waiters"), 0);
    w1.join().unwrap();
    w2.join().unwrap();
}

#[test]
fn shrinking_revokes_no_holder_and_new_grants_wait_until_used_is_below_capacity() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    create(&mut con, "s", 3);
    for owner in ["a", "b", "c"] {
        acquire(&mut con, "s", owner, 1).unwrap();
    }
    create(&mut con, "s", 1);
    assert_eq!(sem_field(&mut con, "s", "used"), 3, "nobody revoked");
    assert_eq!(sem_holders(&mut con, "s").len(), 3);
    let refreshed = int(
        &mut con,
        redis::cmd("REFRESH").arg("s").arg("a").arg(60_000),
    );
    assert_eq!(refreshed, 1, "holders keep their leases");
    assert_eq!(acquire(&mut con, "s", "d", 1), None);
    let (tx, rx) = mpsc::channel();
    let d = spawn_acquire(&server, "s", "d", 1, tx);
    wait_for_waiters(&mut con, "s", 1);
    release(&mut con, "s", "a");
    release(&mut con, "s", "b");
    assert_eq!(sem_field(&mut con, "s", "used"), 1);
    assert_eq!(
        sem_field(&mut con, "s", "waiters"),
        1,
        "used 1 of 1: still full"
    );
    assert!(rx.try_recv().is_err());
    release(&mut con, "s", "c");
    assert_eq!(granted(&rx), "d");
    d.join().unwrap();
}

#[test]
fn shrinking_below_a_waiters_request_fails_it_and_others_keep_their_place() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    create(&mut con, "s", 4);
    acquire(&mut con, "s", "h", 4).unwrap();
    let (tx, rx) = mpsc::channel();
    let w1 = spawn_acquire(&server, "s", "w1", 1, tx.clone());
    wait_for_waiters(&mut con, "s", 1);
    let big = spawn_acquire(&server, "s", "big", 3, tx.clone());
    wait_for_waiters(&mut con, "s", 2);
    let w2 = spawn_acquire(&server, "s", "w2", 2, tx.clone());
    wait_for_waiters(&mut con, "s", 3);
    create(&mut con, "s", 2);
    let (who, result) = rx.recv_timeout(SECOND).unwrap();
    assert_eq!(who, "big");
    assert_eq!(result, Err("ERR permits exceed capacity".to_string()));
    assert_eq!(sem_field(&mut con, "s", "waiters"), 2);
    assert_eq!(
        sem_field(&mut con, "s", "used"),
        4,
        "the holder keeps its permits"
    );
    release(&mut con, "s", "h");
    // w1 (1) is granted first; w2 (2) then does not fit (1 + 2 > 2) and keeps waiting.
    assert_eq!(granted(&rx), "w1");
    assert_eq!(sem_field(&mut con, "s", "waiters"), 1);
    release(&mut con, "s", "w1");
    assert_eq!(granted(&rx), "w2");
    for t in [w1, big, w2] {
        t.join().unwrap();
    }
}

#[test]
fn sem_delete_fails_waiters_and_ends_holds() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    create(&mut con, "s", 2);
    acquire(&mut con, "s", "h", 2).unwrap();
    let (tx, rx) = mpsc::channel();
    let w1 = spawn_acquire(&server, "s", "w1", 1, tx.clone());
    wait_for_waiters(&mut con, "s", 1);
    let w2 = spawn_acquire(&server, "s", "w2", 2, tx.clone());
    wait_for_waiters(&mut con, "s", 2);
    assert_eq!(int(&mut con, redis::cmd("SEM.DELETE").arg("s")), 1);
    let mut got = Vec::new();
    for _ in 0..2 {
        let (who, result) = rx.recv_timeout(SECOND).unwrap();
        assert_eq!(result, Err("ERR semaphore deleted".to_string()), "{who}");
        got.push(who);
    }
    got.sort();
    assert_eq!(got, ["w1", "w2"]);
    assert_eq!(int(&mut con, redis::cmd("SEM.DELETE").arg("s")), 0);
    assert_eq!(int(&mut con, redis::cmd("EXISTS").arg("s")), 0);
    let info: Value = redis::cmd("SEM.INFO").arg("s").query(&mut con).unwrap();
    assert_eq!(info, Value::Nil);
    // The holder's lease is gone.
    let refreshed = int(&mut con, redis::cmd("REFRESH").arg("s").arg("h").arg(1000));
    assert_eq!(refreshed, 0);
    assert_eq!(release(&mut con, "s", "h"), 0);
    // A new semaphore under the same key starts empty, tokens keep rising.
    create(&mut con, "s", 1);
    assert_eq!(sem_field(&mut con, "s", "used"), 0);
    assert!(acquire(&mut con, "s", "h", 1).is_some());
    w1.join().unwrap();
    w2.join().unwrap();
}

#[test]
fn refresh_and_unlock_work_on_semaphore_holds() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    create(&mut con, "s", 2);
    let t: i64 = acquire_cmd("s", "a", 1_000, 2).query(&mut con).unwrap();
    let refresh = |con: &mut redis::Connection, owner: &str| {
        int(con, redis::cmd("REFRESH").arg("s").arg(owner).arg(60_000))
    };
    assert_eq!(refresh(&mut con, "a"), 1);
    let holders = sem_holders(&mut con, "s");
    assert_eq!(holders[0].2, t, "REFRESH keeps the token");
    assert!(holders[0].3 > 1_000, "lease renewed: {}", holders[0].3);
    assert_eq!(refresh(&mut con, "nobody"), 0);
    let (tx, rx) = mpsc::channel();
    let w = spawn_acquire(&server, "s", "w", 2, tx);
    wait_for_waiters(&mut con, "s", 1);
    let unlock = |con: &mut redis::Connection, owner: &str| {
        int(con, redis::cmd("UNLOCK").arg("s").arg(owner))
    };
    assert_eq!(unlock(&mut con, "nobody"), 0);
    assert_eq!(unlock(&mut con, "a"), 1, "all of a's permits released");
    assert_eq!(granted(&rx), "w");
    assert_eq!(unlock(&mut con, "a"), 0);
    assert_eq!(sem_field(&mut con, "s", "used"), 2);
    w.join().unwrap();
}

#[test]
fn an_expired_lease_frees_its_permits_for_the_next_waiter() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    create(&mut con, "s", 1);
    let t1: i64 = acquire_cmd("s", "a", 100, 1).query(&mut con).unwrap();
    let mut other = server.conn();
    let t2: Option<i64> = acquire_cmd("s", "b", 60_000, 1)
        .arg("WAIT")
        .arg(5_000)
        .query(&mut other)
        .unwrap();
    assert!(t2.expect("granted after expiry") > t1);
    assert_eq!(release(&mut con, "s", "a"), 0, "a's lease is gone");
    assert_eq!(int(&mut con, redis::cmd("EXISTS").arg("s")), 1);
}

#[test]
fn wait_times_out_with_nil_and_leaves_the_queue() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    create(&mut con, "s", 1);
    acquire(&mut con, "s", "a", 1).unwrap();
    let mut other = server.conn();
    let none: Option<i64> = acquire_cmd("s", "b", 1000, 1)
        .arg("WAIT")
        .arg(50)
        .query(&mut other)
        .unwrap();
    assert_eq!(none, None);
    assert_eq!(sem_field(&mut con, "s", "waiters"), 0);
    release(&mut con, "s", "a");
    assert_eq!(
        sem_field(&mut con, "s", "used"),
        0,
        "b was not granted late"
    );
}

#[test]
fn a_waiter_whose_connection_closes_leaves_the_queue() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    create(&mut con, "s", 1);
    acquire(&mut con, "s", "a", 1).unwrap();
    let mut raw = server.raw();
    raw.send(
        &redis::cmd("SEM.ACQUIRE")
            .arg("s")
            .arg("gone")
            .arg(60_000)
            .arg("WAIT")
            .arg(0)
            .get_packed_command(),
    );
    wait_for_waiters(&mut con, "s", 1);
    drop(raw);
    wait_for_waiters(&mut con, "s", 0);
    release(&mut con, "s", "a");
    assert!(
        acquire(&mut con, "s", "c", 1).is_some(),
        "not stuck for a gone client"
    );
}

#[test]
fn sem_info_fields_in_resp2_and_resp3() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    let none: Value = redis::cmd("SEM.INFO").arg("s").query(&mut con).unwrap();
    assert_eq!(none, Value::Nil);
    create(&mut con, "s", 5);
    let ta = acquire(&mut con, "s", "a", 2).unwrap();
    let tb = acquire(&mut con, "s", "b", 3).unwrap();
    let mut raw_waiter = server.conn();
    let waiter = std::thread::spawn(move || {
        let _ = acquire_cmd("s", "w", 1000, 1)
            .arg("WAIT")
            .arg(0)
            .query::<Option<i64>>(&mut raw_waiter);
    });
    wait_for_waiters(&mut con, "s", 1);

    // RESP2: a flat array of name, value pairs, holders as flat arrays.
    let v: Value = redis::cmd("SEM.INFO").arg("s").query(&mut con).unwrap();
    let Value::Array(items) = v else {
        panic!("RESP2 SEM.INFO is a flat array: {v:?}")
    };
    let names: Vec<String> = items
        .iter()
        .step_by(2)
        .map(|k| redis::from_redis_value::<String>(k.clone()).unwrap())
        .collect();
    for field in ["capacity", "used", "holders", "waiters"] {
        assert!(names.iter().any(|n| n == field), "{field} in {names:?}");
    }
    assert_eq!(sem_field(&mut con, "s", "capacity"), 5);
    assert_eq!(sem_field(&mut con, "s", "used"), 5);
    let holders = sem_holders(&mut con, "s");
    assert_eq!(holders.len(), 2);
    assert_eq!(
        (holders[0].0.as_str(), holders[0].1, holders[0].2),
        ("a", 2, ta)
    );
    assert_eq!(
        (holders[1].0.as_str(), holders[1].1, holders[1].2),
        ("b", 3, tb)
    );
    for h in &holders {
        assert!(h.3 > 0 && h.3 <= 60_000, "ttl = ms left: {}", h.3);
    }
    if let Some(Value::Array(hs)) = info_field(&mut con, "SEM.INFO", "s", "holders") {
        assert!(
            matches!(&hs[0], Value::Array(_)),
            "RESP2 holder: {:?}",
            hs[0]
        );
    }

    // RESP3: maps.
    let mut con3 = server.conn3();
    let v: Value = redis::cmd("SEM.INFO").arg("s").query(&mut con3).unwrap();
    let Value::Map(pairs) = v else {
        panic!("RESP3 SEM.INFO is a map: {v:?}")
    };
    let mut seen = Vec::new();
    for (k, v) in pairs {
        let k = redis::from_redis_value::<String>(k).unwrap();
        match k.as_str() {
            "capacity" => assert_eq!(v, Value::Int(5)),
            "used" => assert_eq!(v, Value::Int(5)),
            "waiters" => assert_eq!(v, Value::Int(1)),
            "holders" => {
                let Value::Array(hs) = v else {
                    panic!("holders: {v:?}")
                };
                assert_eq!(hs.len(), 2);
                for h in hs {
                    let Value::Map(fields) = h else {
                        panic!("RESP3 holder is a map: {h:?}")
                    };
                    let names: Vec<String> = fields
                        .into_iter()
                        .map(|(k, _)| redis::from_redis_value::<String>(k).unwrap())
                        .collect();
                    for f in ["owner", "permits", "token", "ttl"] {
                        assert!(names.iter().any(|n| n == f), "{f} in {names:?}");
                    }
                }
            }
            _ => {}
        }
        seen.push(k);
    }
    seen.sort();
    assert_eq!(seen, ["capacity", "holders", "used", "waiters"]);
    let none: Value = redis::cmd("SEM.INFO").arg("nope").query(&mut con3).unwrap();
    assert_eq!(none, Value::Nil);
    assert_eq!(int(&mut con, redis::cmd("SEM.DELETE").arg("s")), 1);
    waiter.join().unwrap();
}

#[test]
fn a_semaphore_lives_until_deleted() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    create(&mut con, "s", 1);
    assert_eq!(int(&mut con, redis::cmd("EXISTS").arg("s")), 1);
    acquire(&mut con, "s", "a", 1).unwrap();
    release(&mut con, "s", "a");
    assert_eq!(
        int(&mut con, redis::cmd("EXISTS").arg("s")),
        1,
        "no holders, still there"
    );
    assert_eq!(int(&mut con, redis::cmd("PTTL").arg("s")), -1);
    assert_eq!(int(&mut con, redis::cmd("TTL").arg("s")), -1);
    assert_eq!(int(&mut con, &mut redis::cmd("DBSIZE")), 1);
    // An expired lease does not remove it either.
    let _: i64 = acquire_cmd("s", "b", 20, 1).query(&mut con).unwrap();
    eventually("lease ended", SECOND, || {
        sem_field(&mut con, "s", "used") == 0
    });
    assert_eq!(int(&mut con, redis::cmd("EXISTS").arg("s")), 1);
    assert_eq!(sem_field(&mut con, "s", "capacity"), 1);
}
