//! docs/protocol.md "Locks": every rule, against a real server over a real socket.

mod common;

use common::err_text;

use std::sync::mpsc;
use std::time::Duration;

use common::{eventually, info_field, unlock, waiters, TestServer};
use redis::Value;

const SECOND: Duration = Duration::from_secs(5);

fn lock(con: &mut redis::Connection, cmd: &str, key: &str, owner: &str, ttl: u64) -> Option<i64> {
    redis::cmd(cmd)
        .arg(key)
        .arg(owner)
        .arg(ttl)
        .query(con)
        .expect(cmd)
}

fn lock_wait(
    con: &mut redis::Connection,
    cmd: &str,
    key: &str,
    owner: &str,
    ttl: u64,
    wait: u64,
) -> Option<i64> {
    redis::cmd(cmd)
        .arg(key)
        .arg(owner)
        .arg(ttl)
        .arg("WAIT")
        .arg(wait)
        .query(con)
        .expect(cmd)
}

/// Spawns a blocked acquire on its own connection; the token arrives on the channel.
fn spawn_waiter(
    server: &TestServer,
    cmd: &'static str,
    key: &'static str,
    owner: &'static str,
    wait: u64,
    done: mpsc::Sender<(&'static str, Option<i64>)>,
) -> std::thread::JoinHandle<()> {
    let mut con = server.conn();
    std::thread::spawn(move || {
        let token = lock_wait(&mut con, cmd, key, owner, 10_000, wait);
        let _ = done.send((owner, token));
    })
}

#[test]
fn lock_grants_a_token_and_excludes_others() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    let t1 = lock(&mut con, "LOCK", "k", "a", 10_000).expect("granted");
    assert!(t1 > 0);
    assert_eq!(lock(&mut con, "LOCK", "k", "b", 10_000), None);
    assert_eq!(unlock(&mut con, "k", "b"), 0, "only the holder releases");
    assert_eq!(unlock(&mut con, "k", "a"), 1);
    assert_eq!(unlock(&mut con, "k", "a"), 0);
    let t2 = lock(&mut con, "LOCK", "k", "b", 10_000).expect("free again");
    assert!(t2 > t1, "tokens rise over the key's whole life");
}

#[test]
fn repeated_grant_is_idempotent_and_modes_do_not_mix() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    let t = lock(&mut con, "LOCK", "k", "a", 1_000).expect("granted");
    assert_eq!(
        lock(&mut con, "LOCK", "k", "a", 60_000),
        Some(t),
        "same token back"
    );
    let pttl: i64 = redis::cmd("PTTL").arg("k").query(&mut con).unwrap();
    assert!(pttl > 1_000, "lease reset to the new ttl: {pttl}");
    let err = err_text(&mut con, redis::cmd("RLOCK").arg("k").arg("a").arg(1000));
    assert_eq!(err, "ERR owner already holds this key in another mode");
    // Same for readers.
    let r = lock(&mut con, "RLOCK", "r", "a", 1_000).unwrap();
    assert_eq!(lock(&mut con, "RLOCK", "r", "a", 1_000), Some(r));
    let err = err_text(&mut con, redis::cmd("LOCK").arg("r").arg("a").arg(1000));
    assert_eq!(err, "ERR owner already holds this key in another mode");
}

#[test]
fn readers_share_with_distinct_tokens_and_exclude_writers() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    let r1 = lock(&mut con, "RLOCK", "k", "r1", 10_000).unwrap();
    let r2 = lock(&mut con, "RLOCK", "k", "r2", 10_000).unwrap();
    assert!(r2 > r1);
    assert_eq!(lock(&mut con, "LOCK", "k", "w", 10_000), None);
    assert_eq!(lock(&mut con, "WLOCK", "k", "w", 10_000), None);
    let mode = info_field(&mut con, "LOCK.INFO", "k", "mode").unwrap();
    assert_eq!(redis::from_redis_value::<String>(mode).unwrap(), "read");
}

#[test]
fn shared_writers_coexist_and_exclude_readers_and_exclusive_writers() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    let w = |con: &mut redis::Connection, owner: &str| -> Option<i64> {
        redis::cmd("WLOCK")
            .arg("k")
            .arg(owner)
            .arg(10_000)
            .arg("SHARED")
            .query(con)
            .unwrap()
    };
    assert!(w(&mut con, "s1").is_some());
    assert!(w(&mut con, "s2").is_some());
    assert_eq!(lock(&mut con, "RLOCK", "k", "r", 10_000), None);
    assert_eq!(lock(&mut con, "LOCK", "k", "x", 10_000), None);
    let mode = info_field(&mut con, "LOCK.INFO", "k", "mode").unwrap();
    assert_eq!(
        redis::from_redis_value::<String>(mode).unwrap(),
        "shared-write"
    );
    // An exclusive WLOCK (no SHARED) excludes shared writers.
    assert!(lock(&mut con, "WLOCK", "x", "e", 10_000).is_some());
    assert_eq!(w_key(&mut con, "x", "s1"), None);
}

fn w_key(con: &mut redis::Connection, key: &str, owner: &str) -> Option<i64> {
    redis::cmd("WLOCK")
        .arg(key)
        .arg(owner)
        .arg(10_000)
        .arg("SHARED")
        .query(con)
        .unwrap()
}

#[test]
fn waiters_are_served_first_come_first_served() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    lock(&mut con, "LOCK", "k", "holder", 10_000).unwrap();
    let (tx, rx) = mpsc::channel();
    let mut threads = Vec::new();
    for (i, owner) in ["w1", "w2", "w3", "w4"].into_iter().enumerate() {
        threads.push(spawn_waiter(&server, "LOCK", "k", owner, 0, tx.clone()));
        eventually("waiter queued", SECOND, || {
            waiters(&mut con, "k") == i as i64 + 1
        });
    }
    let mut order = Vec::new();
    let mut owner = "holder";
    let mut last = 0;
    for _ in 0..4 {
        assert_eq!(unlock(&mut con, "k", owner), 1);
        let (next, token) = rx.recv_timeout(SECOND).expect("hand-off");
        let token = token.expect("granted");
        assert!(token > last);
        last = token;
        order.push(next);
        owner = next;
    }
    assert_eq!(order, ["w1", "w2", "w3", "w4"]);
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn a_new_request_never_barges_past_queued_waiters() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    lock(&mut con, "RLOCK", "k", "r1", 10_000).unwrap();
    let (tx, rx) = mpsc::channel();
    let t = spawn_waiter(&server, "LOCK", "k", "writer", 0, tx);
    eventually("writer queued", SECOND, || waiters(&mut con, "k") == 1);
    // A reader would fit beside r1, but a writer waits: no barging, even without WAIT.
    assert_eq!(lock(&mut con, "RLOCK", "k", "r2", 10_000), None);
    unlock(&mut con, "k", "r1");
    let (who, token) = rx.recv_timeout(SECOND).unwrap();
    assert_eq!(who, "writer");
    assert!(token.is_some());
    t.join().unwrap();
}

#[test]
fn readers_at_the_head_are_granted_together_and_a_writer_stops_later_readers() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    lock(&mut con, "LOCK", "k", "w0", 10_000).unwrap();
    let (tx, rx) = mpsc::channel();
    let mut threads = Vec::new();
    threads.push(spawn_waiter(&server, "RLOCK", "k", "r1", 0, tx.clone()));
    eventually("r1 queued", SECOND, || waiters(&mut con, "k") == 1);
    threads.push(spawn_waiter(&server, "RLOCK", "k", "r2", 0, tx.clone()));
    eventually("r2 queued", SECOND, || waiters(&mut con, "k") == 2);
    threads.push(spawn_waiter(&server, "LOCK", "k", "w1", 0, tx.clone()));
    eventually("w1 queued", SECOND, || waiters(&mut con, "k") == 3);
    threads.push(spawn_waiter(&server, "RLOCK", "k", "r3", 0, tx.clone()));
    eventually("r3 queued", SECOND, || waiters(&mut con, "k") == 4);
    unlock(&mut con, "k", "w0");
    let mut batch = vec![
        rx.recv_timeout(SECOND).unwrap().0,
        rx.recv_timeout(SECOND).unwrap().0,
    ];
    batch.sort();
    assert_eq!(batch, ["r1", "r2"]);
    assert!(
        rx.recv_timeout(Duration::from_millis(100)).is_err(),
        "w1 waits for both readers"
    );
    assert_eq!(waiters(&mut con, "k"), 2);
    unlock(&mut con, "k", "r1");
    assert!(
        rx.recv_timeout(Duration::from_millis(50)).is_err(),
        "r2 still holds"
    );
    unlock(&mut con, "k", "r2");
    assert_eq!(rx.recv_timeout(SECOND).unwrap().0, "w1");
    unlock(&mut con, "k", "w1");
    assert_eq!(rx.recv_timeout(SECOND).unwrap().0, "r3");
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn expiry_hands_the_key_to_the_next_waiter() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    let t1 = lock(&mut con, "LOCK", "k", "a", 150).unwrap();
    let mut other = server.conn();
    let t2 = lock_wait(&mut other, "LOCK", "k", "b", 10_000, 5_000).expect("granted after expiry");
    assert!(t2 > t1);
    assert_eq!(unlock(&mut con, "k", "a"), 0, "a's lease is gone");
    assert_eq!(
        redis::cmd("REFRESH")
            .arg("k")
            .arg("a")
            .arg(100)
            .query::<i64>(&mut con)
            .unwrap(),
        0
    );
}

#[test]
fn del_force_releases_and_serves_the_queue() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    lock(&mut con, "LOCK", "k", "a", 60_000).unwrap();
    let (tx, rx) = mpsc::channel();
    let t = spawn_waiter(&server, "LOCK", "k", "b", 0, tx);
    eventually("b queued", SECOND, || waiters(&mut con, "k") == 1);
    let deleted: i64 = redis::cmd("DEL").arg("k").query(&mut con).unwrap();
    assert_eq!(deleted, 1);
    assert_eq!(rx.recv_timeout(SECOND).unwrap().0, "b");
    assert_eq!(unlock(&mut con, "k", "a"), 0);
    t.join().unwrap();
}

#[test]
fn wait_times_out_with_nil_and_leaves_the_queue() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    lock(&mut con, "LOCK", "k", "a", 60_000).unwrap();
    let mut other = server.conn();
    assert_eq!(lock_wait(&mut other, "LOCK", "k", "b", 1_000, 50), None);
    assert_eq!(waiters(&mut con, "k"), 0);
    // The connection still works after the timeout.
    let pong: String = redis::cmd("PING").query(&mut other).unwrap();
    assert_eq!(pong, "PONG");
}

#[test]
fn wait_zero_waits_until_granted() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    lock(&mut con, "LOCK", "k", "a", 300).unwrap();
    let mut other = server.conn();
    assert!(lock_wait(&mut other, "LOCK", "k", "b", 1_000, 0).is_some());
}

#[test]
fn a_waiter_whose_connection_closes_leaves_the_queue() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    lock(&mut con, "LOCK", "k", "a", 60_000).unwrap();
    let mut raw = server.raw();
    raw.send(
        b"*6\r\n$4\r\nLOCK\r\n$1\r\nk\r\n$4\r\ngone\r\n$5\r\n60000\r\n$4\r\nWAIT\r\n$1\r\n0\r\n",
    );
    eventually("raw client queued", SECOND, || waiters(&mut con, "k") == 1);
    drop(raw);
    eventually("raw client left", SECOND, || waiters(&mut con, "k") == 0);
    unlock(&mut con, "k", "a");
    assert!(
        lock(&mut con, "LOCK", "k", "c", 1_000).is_some(),
        "not stuck for a gone client"
    );
}

#[test]
fn lock_info_shows_holders_and_waiters_in_both_protocols() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    let none: Value = redis::cmd("LOCK.INFO").arg("k").query(&mut con).unwrap();
    assert_eq!(none, Value::Nil);
    let token = lock(&mut con, "LOCK", "k", "a", 10_000).unwrap();
    let v: Value = redis::cmd("LOCK.INFO").arg("k").query(&mut con).unwrap();
    let Value::Array(items) = v else {
        panic!("RESP2 flat array: {v:?}")
    };
    assert_eq!(items.len(), 6);
    let holders = info_field(&mut con, "LOCK.INFO", "k", "holders").unwrap();
    let Value::Array(holders) = holders else {
        panic!()
    };
    let Value::Array(h) = &holders[0] else {
        panic!()
    };
    assert_eq!(h[0], Value::BulkString(b"owner".to_vec()));
    assert_eq!(h[1], Value::BulkString(b"a".to_vec()));
    assert_eq!(h[5], Value::Int(token));
    let mut con3 = server.conn3();
    let v3: Value = redis::cmd("LOCK.INFO").arg("k").query(&mut con3).unwrap();
    assert!(matches!(v3, Value::Map(_)), "RESP3 map: {v3:?}");
    let nil3: Value = redis::cmd("LOCK")
        .arg("k")
        .arg("b")
        .arg(100)
        .query(&mut con3)
        .unwrap();
    assert_eq!(nil3, Value::Nil);
}

#[test]
fn bad_arguments_get_errors_and_the_connection_stays_open() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["LOCK", "k", "o"],
            "ERR wrong number of arguments for 'lock' command",
        ),
        (
            vec!["LOCK", "k", "o", "abc"],
            "ERR value is not an integer or out of range",
        ),
        (vec!["LOCK", "k", "o", "0"], "ERR invalid ttl"),
        (vec!["LOCK", "k", "o", "86400001"], "ERR invalid ttl"),
        (vec!["LOCK", "", "o", "10"], "ERR invalid key"),
        (vec!["LOCK", "k", "", "10"], "ERR invalid owner"),
        (
            vec!["LOCK", "k", "o", "10", "WAIT", "-1"],
            "ERR invalid wait",
        ),
        (vec!["LOCK", "k", "o", "10", "WAIT"], "ERR syntax error"),
        (vec!["LOCK", "k", "o", "10", "BOGUS"], "ERR syntax error"),
        (
            vec!["LOCK", "k", "o", "10", "BOGUS", "WAIT", "x"],
            "ERR value is not an integer or out of range",
        ),
        (vec!["RLOCK", "k", "o", "10", "SHARED"], "ERR syntax error"),
        (
            vec!["REFRESH", "k", "o"],
            "ERR wrong number of arguments for 'refresh' command",
        ),
    ];
    for (args, want) in cases {
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        assert_eq!(err_text(&mut con, &mut cmd), want, "{args:?}");
    }
    let long_key = "k".repeat(1025);
    assert_eq!(
        err_text(&mut con, redis::cmd("LOCK").arg(&long_key).arg("o").arg(10)),
        "ERR invalid key"
    );
    let long_owner = "o".repeat(257);
    assert_eq!(
        err_text(
            &mut con,
            redis::cmd("LOCK").arg("k").arg(&long_owner).arg(10)
        ),
        "ERR invalid owner"
    );
    let unknown = err_text(&mut con, redis::cmd("NOPE").arg("x"));
    assert_eq!(
        unknown,
        "ERR unknown command 'NOPE', with args beginning with: 'x'"
    );
    let pong: String = redis::cmd("PING").query(&mut con).unwrap();
    assert_eq!(pong, "PONG");
}

#[test]
fn locks_and_strings_do_not_mix() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    lock(&mut con, "LOCK", "l", "a", 10_000).unwrap();
    let wrongtype = "WRONGTYPE Operation against a key holding the wrong kind of value";
    assert_eq!(
        err_text(&mut con, redis::cmd("SET").arg("l").arg("v")),
        wrongtype
    );
    assert_eq!(err_text(&mut con, redis::cmd("GET").arg("l")), wrongtype);
    assert_eq!(
        err_text(&mut con, redis::cmd("PEXPIRE").arg("l").arg(10)),
        wrongtype
    );
    let nx: Option<String> = redis::cmd("SET")
        .arg("l")
        .arg("v")
        .arg("NX")
        .query(&mut con)
        .unwrap();
    assert_eq!(nx, None);
    let _: () = redis::cmd("SET").arg("s").arg("v").query(&mut con).unwrap();
    assert_eq!(
        err_text(&mut con, redis::cmd("LOCK").arg("s").arg("a").arg(10)),
        wrongtype
    );
    assert_eq!(
        err_text(&mut con, redis::cmd("UNLOCK").arg("s").arg("a")),
        wrongtype
    );
    assert_eq!(
        err_text(&mut con, redis::cmd("REFRESH").arg("s").arg("a").arg(10)),
        wrongtype
    );
}

#[test]
fn keyspace_commands_see_locks() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    assert_eq!(
        redis::cmd("PTTL").arg("l").query::<i64>(&mut con).unwrap(),
        -2
    );
    assert_eq!(
        redis::cmd("TYPE")
            .arg("l")
            .query::<String>(&mut con)
            .unwrap(),
        "none"
    );
    lock(&mut con, "LOCK", "lock:1", "a", 10_000).unwrap();
    lock(&mut con, "RLOCK", "lock:2", "a", 20_000).unwrap();
    lock(&mut con, "RLOCK", "lock:2", "b", 5_000).unwrap();
    assert_eq!(
        redis::cmd("TYPE")
            .arg("lock:1")
            .query::<String>(&mut con)
            .unwrap(),
        "lock"
    );
    assert_eq!(
        redis::cmd("EXISTS")
            .arg("lock:1")
            .arg("lock:2")
            .arg("x")
            .query::<i64>(&mut con)
            .unwrap(),
        2
    );
    assert_eq!(redis::cmd("DBSIZE").query::<i64>(&mut con).unwrap(), 2);
    let pttl: i64 = redis::cmd("PTTL").arg("lock:2").query(&mut con).unwrap();
    assert!(pttl > 5_000 && pttl <= 20_000, "longest lease: {pttl}");
    let ttl: i64 = redis::cmd("TTL").arg("lock:2").query(&mut con).unwrap();
    assert_eq!(ttl, 20);
    let mut keys: Vec<String> = redis::cmd("KEYS").arg("lock:*").query(&mut con).unwrap();
    keys.sort();
    assert_eq!(keys, ["lock:1", "lock:2"]);
    let mut cursor = "0".to_string();
    let mut scanned = Vec::new();
    loop {
        let (next, batch): (String, Vec<String>) = redis::cmd("SCAN")
            .arg(&cursor)
            .arg("MATCH")
            .arg("lock:*")
            .query(&mut con)
            .unwrap();
        scanned.extend(batch);
        if next == "0" {
            break;
        }
        cursor = next;
    }
    scanned.sort();
    assert_eq!(scanned, ["lock:1", "lock:2"]);
    unlock(&mut con, "lock:1", "a");
    assert_eq!(
        redis::cmd("EXISTS")
            .arg("lock:1")
            .query::<i64>(&mut con)
            .unwrap(),
        0,
        "a free lock is gone"
    );
}

#[test]
fn pipelined_commands_answer_in_order() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    let mut pipe = redis::pipe();
    for i in 0..100 {
        pipe.cmd("LOCK").arg(format!("p{i}")).arg("o").arg(10_000);
        pipe.cmd("UNLOCK").arg(format!("p{i}")).arg("o");
    }
    let replies: Vec<Value> = pipe.query(&mut con).unwrap();
    assert_eq!(replies.len(), 200);
    let mut last = 0;
    for pair in replies.chunks(2) {
        let Value::Int(token) = pair[0] else {
            panic!("{pair:?}")
        };
        assert!(token > last);
        last = token;
        assert_eq!(pair[1], Value::Int(1));
    }
}

#[test]
fn malformed_frames_close_the_connection_but_not_the_server() {
    let server = TestServer::default_config();
    let mut raw = server.raw();
    raw.send(b"*1\r\n$99999999999\r\n");
    raw.expect(b"-ERR Protocol error: invalid bulk length\r\n");
    assert!(raw.is_closed());
    let mut raw = server.raw();
    raw.send(b"*2\r\n+PING\r\n");
    let got = raw.read_exact_or_eof(1024);
    assert!(
        got.starts_with(b"-ERR Protocol error: "),
        "{}",
        String::from_utf8_lossy(&got)
    );
    let mut con = server.conn();
    let pong: String = redis::cmd("PING").query(&mut con).unwrap();
    assert_eq!(pong, "PONG");
}

#[test]
fn inline_commands_work() {
    let server = TestServer::default_config();
    let mut raw = server.raw();
    raw.send(b"PING\r\n");
    raw.expect(b"+PONG\r\n");
    raw.send(b"LOCK \"in line\" owner 1000\r\n");
    let got = raw.read_exact_or_eof(3);
    assert!(got.starts_with(b":"), "{}", String::from_utf8_lossy(&got));
}
