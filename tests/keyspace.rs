//! docs/protocol.md "The Redis keyspace, shared by all kinds", over semaphores, locks and
//! strings: EXISTS, TYPE, DEL/UNLINK, PTTL/TTL, (P)EXPIRE/PERSIST, KEYS, SCAN, DBSIZE,
//! FLUSHALL/FLUSHDB.

mod common;

use common::{err_of, int};

use std::sync::mpsc;
use std::time::Duration;

use common::{eventually, info_field, waiters, TestServer};
use redis::Value;

const SECOND: Duration = Duration::from_secs(5);

type Outcome = Result<Value, String>;

fn type_of(con: &mut redis::Connection, key: &str) -> String {
    redis::cmd("TYPE").arg(key).query(con).expect("TYPE")
}

fn sem_waiters(con: &mut redis::Connection, key: &str) -> i64 {
    info_field(con, "SEM.INFO", key, "waiters")
        .and_then(|v| redis::from_redis_value::<i64>(v).ok())
        .unwrap_or(0)
}

/// Runs `cmd` on a new connection in a thread; its outcome arrives on `done`.
fn spawn_blocked(
    server: &TestServer,
    name: &'static str,
    cmd: redis::Cmd,
    done: mpsc::Sender<(&'static str, Outcome)>,
) -> std::thread::JoinHandle<()> {
    let mut con = server.conn();
    std::thread::spawn(move || {
        let result = cmd.query::<Value>(&mut con);
        let outcome = match result {
            Ok(v) => Ok(v),
            Err(e) => Err(err_of::<Value>(Err(e))),
        };
        let _ = done.send((name, outcome));
    })
}

fn sem_acquire_wait(key: &str, owner: &str, permits: u64) -> redis::Cmd {
    let mut cmd = redis::cmd("SEM.ACQUIRE");
    cmd.arg(key)
        .arg(owner)
        .arg(60_000)
        .arg("PERMITS")
        .arg(permits)
        .arg("WAIT")
        .arg(0);
    cmd
}

fn lock_wait(key: &str, owner: &str) -> redis::Cmd {
    let mut cmd = redis::cmd("LOCK");
    cmd.arg(key).arg(owner).arg(60_000).arg("WAIT").arg(0);
    cmd
}

fn create(con: &mut redis::Connection, key: &str, capacity: i64) {
    let _: () = redis::cmd("SEM.CREATE")
        .arg(key)
        .arg(capacity)
        .query(con)
        .expect("SEM.CREATE");
}

fn acquire(con: &mut redis::Connection, key: &str, owner: &str, permits: u64) -> Option<i64> {
    redis::cmd("SEM.ACQUIRE")
        .arg(key)
        .arg(owner)
        .arg(60_000)
        .arg("PERMITS")
        .arg(permits)
        .query(con)
        .expect("SEM.ACQUIRE")
}

fn lock(con: &mut redis::Connection, key: &str, owner: &str) -> Option<i64> {
    redis::cmd("LOCK")
        .arg(key)
        .arg(owner)
        .arg(60_000)
        .query(con)
        .expect("LOCK")
}

#[test]
fn exists_and_type_over_all_kinds() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    create(&mut con, "sem", 2);
    lock(&mut con, "lk", "o").unwrap();
    let _: () = redis::cmd("SET")
        .arg("str")
        .arg("v")
        .query(&mut con)
        .unwrap();
    assert_eq!(type_of(&mut con, "sem"), "semaphore");
    assert_eq!(type_of(&mut con, "lk"), "lock");
    assert_eq!(type_of(&mut con, "str"), "string");
    assert_eq!(type_of(&mut con, "none"), "none");
    let n = int(
        &mut con,
        redis::cmd("EXISTS")
            .arg("sem")
            .arg("lk")
            .arg("str")
            .arg("none")
            .arg("sem"),
    );
    assert_eq!(n, 4, "counts every name given, as Redis");
    assert_eq!(int(&mut con, &mut redis::cmd("DBSIZE")), 3);
}

#[test]
fn a_lock_disappears_when_free_and_a_semaphore_stays() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    lock(&mut con, "lk", "o").unwrap();
    create(&mut con, "sem", 1);
    acquire(&mut con, "sem", "o", 1).unwrap();
    let unlocked = int(&mut con, redis::cmd("UNLOCK").arg("lk").arg("o"));
    assert_eq!(unlocked, 1);
    assert_eq!(
        int(&mut con, redis::cmd("SEM.RELEASE").arg("sem").arg("o")),
        1
    );
    assert_eq!(int(&mut con, redis::cmd("EXISTS").arg("lk")), 0);
    assert_eq!(type_of(&mut con, "lk"), "none");
    assert_eq!(int(&mut con, redis::cmd("PTTL").arg("lk")), -2);
    assert_eq!(int(&mut con, redis::cmd("EXISTS").arg("sem")), 1);
    assert_eq!(type_of(&mut con, "sem"), "semaphore");
    assert_eq!(int(&mut con, redis::cmd("PTTL").arg("sem")), -1);
    assert_eq!(int(&mut con, redis::cmd("TTL").arg("sem")), -1);
    assert_eq!(int(&mut con, &mut redis::cmd("DBSIZE")), 1);
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut con).unwrap();
    assert_eq!(keys, ["sem"]);
    // A nil LOCK (key held by nobody but... here: a free key) leaves nothing behind either.
    lock(&mut con, "lk2", "a").unwrap();
    assert_eq!(lock(&mut con, "lk2", "b"), None);
    let _: i64 = redis::cmd("UNLOCK")
        .arg("lk2")
        .arg("a")
        .query(&mut con)
        .unwrap();
    assert_eq!(int(&mut con, &mut redis::cmd("DBSIZE")), 1);
}

#[test]
fn pttl_of_a_lock_is_its_longest_lease_and_minus_one_with_only_waiters() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    let _: i64 = redis::cmd("RLOCK")
        .arg("lk")
        .arg("r1")
        .arg(5_000)
        .query(&mut con)
        .unwrap();
    let _: i64 = redis::cmd("RLOCK")
        .arg("lk")
        .arg("r2")
        .arg(60_000)
        .query(&mut con)
        .unwrap();
    let pttl = int(&mut con, redis::cmd("PTTL").arg("lk"));
    assert!(pttl > 5_000 && pttl <= 60_000, "longest lease: {pttl}");
    // A key with only a waiter: an MLOCK queues on the free key too.
    lock(&mut con, "held", "x").unwrap();
    let mut other = server.conn();
    let t = std::thread::spawn(move || {
        redis::cmd("MLOCK")
            .arg(2)
            .arg("free")
            .arg("held")
            .arg("m")
            .arg(1000)
            .arg("WAIT")
            .arg(0)
            .query::<Value>(&mut other)
    });
    eventually("MLOCK queued", SECOND, || waiters(&mut con, "free") == 1);
    assert_eq!(int(&mut con, redis::cmd("PTTL").arg("free")), -1);
    assert_eq!(int(&mut con, redis::cmd("EXISTS").arg("free")), 1);
    assert_eq!(type_of(&mut con, "free"), "lock");
    let _: i64 = redis::cmd("UNLOCK")
        .arg("held")
        .arg("x")
        .query(&mut con)
        .unwrap();
    assert!(matches!(t.join().unwrap(), Ok(Value::Array(_))));
}

#[test]
fn expire_and_persist_on_locks_and_semaphores_are_wrongtype() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    lock(&mut con, "lk", "o").unwrap();
    create(&mut con, "sem", 1);
    for key in ["lk", "sem"] {
        let cmds: Vec<redis::Cmd> = vec![
            redis::cmd("PEXPIRE").arg(key).arg(100).clone(),
            redis::cmd("EXPIRE").arg(key).arg(1).clone(),
            redis::cmd("PEXPIREAT").arg(key).arg(1).clone(),
            redis::cmd("EXPIREAT").arg(key).arg(1).clone(),
            redis::cmd("PERSIST").arg(key).clone(),
            redis::cmd("GET").arg(key).clone(),
            redis::cmd("SET").arg(key).arg("v").clone(),
            redis::cmd("SET")
                .arg(key)
                .arg("v")
                .arg("NX")
                .arg("GET")
                .clone(),
        ];
        for cmd in cmds {
            let err = err_of(cmd.query::<Value>(&mut con));
            assert_eq!(
                err,
                "WRONGTYPE Operation against a key holding the wrong kind of value",
                "{key}: {:?}",
                String::from_utf8_lossy(&cmd.get_packed_command())
            );
        }
    }
    assert_eq!(type_of(&mut con, "lk"), "lock");
    assert_eq!(type_of(&mut con, "sem"), "semaphore");
    assert_eq!(int(&mut con, redis::cmd("PTTL").arg("sem")), -1);
    assert!(int(&mut con, redis::cmd("PTTL").arg("lk")) > 100);
}

#[test]
fn del_on_a_semaphore_is_sem_delete() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    for cmd_name in ["DEL", "UNLINK"] {
        create(&mut con, "s", 1);
        acquire(&mut con, "s", "h", 1).unwrap();
        let (tx, rx) = mpsc::channel();
        let w = spawn_blocked(&server, "w", sem_acquire_wait("s", "w", 1), tx);
        eventually("waiter queued", SECOND, || sem_waiters(&mut con, "s") == 1);
        assert_eq!(
            int(&mut con, redis::cmd(cmd_name).arg("s")),
            1,
            "{cmd_name}"
        );
        let (_, outcome) = rx.recv_timeout(SECOND).unwrap();
        assert_eq!(
            outcome,
            Err("ERR semaphore deleted".to_string()),
            "{cmd_name}"
        );
        assert_eq!(int(&mut con, redis::cmd("EXISTS").arg("s")), 0);
        assert_eq!(
            int(&mut con, redis::cmd("REFRESH").arg("s").arg("h").arg(1000)),
            0,
            "the holder lost its lease"
        );
        assert_eq!(int(&mut con, redis::cmd(cmd_name).arg("s")), 0);
        w.join().unwrap();
    }
    // DEL of several keys of different kinds counts each.
    create(&mut con, "s", 1);
    lock(&mut con, "lk", "o").unwrap();
    let _: () = redis::cmd("SET")
        .arg("str")
        .arg("v")
        .query(&mut con)
        .unwrap();
    let n = int(
        &mut con,
        redis::cmd("DEL").arg("s").arg("lk").arg("str").arg("none"),
    );
    assert_eq!(n, 3);
    assert_eq!(int(&mut con, &mut redis::cmd("DBSIZE")), 0);
}

#[test]
fn scan_and_keys_see_semaphores() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    for i in 0..20 {
        create(&mut con, &format!("sem:{i}"), 1);
        lock(&mut con, &format!("lock:{i}"), "o").unwrap();
    }
    let _: () = redis::cmd("SET")
        .arg("str:0")
        .arg("v")
        .query(&mut con)
        .unwrap();
    assert_eq!(int(&mut con, &mut redis::cmd("DBSIZE")), 41);
    let scan = |con: &mut redis::Connection, extra: &[&str]| -> Vec<String> {
        let mut cursor = "0".to_string();
        let mut out = Vec::new();
        loop {
            let (next, keys): (String, Vec<String>) = redis::cmd("SCAN")
                .arg(&cursor)
                .arg(extra)
                .arg("COUNT")
                .arg(7)
                .query(con)
                .unwrap();
            out.extend(keys);
            if next == "0" {
                break;
            }
            cursor = next;
        }
        out.sort();
        out.dedup();
        out
    };
    let sems = scan(&mut con, &["TYPE", "semaphore"]);
    assert_eq!(sems.len(), 20);
    assert!(sems.iter().all(|k| k.starts_with("sem:")));
    let locks = scan(&mut con, &["TYPE", "lock"]);
    assert_eq!(locks.len(), 20);
    assert!(locks.iter().all(|k| k.starts_with("lock:")));
    let matched = scan(&mut con, &["MATCH", "sem:1*"]);
    assert_eq!(matched.len(), 11, "sem:1 and sem:10..19: {matched:?}");
    assert_eq!(scan(&mut con, &[]).len(), 41);
    let mut keys: Vec<String> = redis::cmd("KEYS").arg("sem:*").query(&mut con).unwrap();
    keys.sort();
    assert_eq!(keys, sems);
}

#[test]
fn flushall_fails_every_waiter_and_empties_the_keyspace() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    let (tx, rx) = mpsc::channel();
    let mut threads = Vec::new();
    let mut names = Vec::new();
    // Semaphore waiters.
    create(&mut con, "s", 2);
    acquire(&mut con, "s", "h", 2).unwrap();
    threads.push(spawn_blocked(
        &server,
        "sem1",
        sem_acquire_wait("s", "w1", 1),
        tx.clone(),
    ));
    eventually("sem1 queued", SECOND, || sem_waiters(&mut con, "s") == 1);
    threads.push(spawn_blocked(
        &server,
        "sem2",
        sem_acquire_wait("s", "w2", 2),
        tx.clone(),
    ));
    eventually("sem2 queued", SECOND, || sem_waiters(&mut con, "s") == 2);
    names.extend(["sem1", "sem2"]);
    // Lock waiters.
    lock(&mut con, "lk", "h").unwrap();
    threads.push(spawn_blocked(
        &server,
        "lock1",
        lock_wait("lk", "w1"),
        tx.clone(),
    ));
    eventually("lock1 queued", SECOND, || waiters(&mut con, "lk") == 1);
    threads.push(spawn_blocked(
        &server,
        "lock2",
        lock_wait("lk", "w2"),
        tx.clone(),
    ));
    eventually("lock2 queued", SECOND, || waiters(&mut con, "lk") == 2);
    names.extend(["lock1", "lock2"]);
    // MLOCK waiters, and single-key waiters queued behind an MLOCK on a key nobody holds.
    // Whatever order FLUSHALL visits the keys in, none of them may be granted.
    const PAIRS: [(&str, &str, &str, &str); 6] = [
        ("h0", "f0", "m0", "l0"),
        ("h1", "f1", "m1", "l1"),
        ("h2", "f2", "m2", "l2"),
        ("h3", "f3", "m3", "l3"),
        ("h4", "f4", "m4", "l4"),
        ("h5", "f5", "m5", "l5"),
    ];
    for (held, free, m, l) in PAIRS {
        lock(&mut con, held, "h").unwrap();
        let mut mcmd = redis::cmd("MLOCK");
        mcmd.arg(2)
            .arg(held)
            .arg(free)
            .arg(m)
            .arg(60_000)
            .arg("WAIT")
            .arg(0);
        threads.push(spawn_blocked(&server, m, mcmd, tx.clone()));
        eventually("MLOCK queued", SECOND, || waiters(&mut con, free) == 1);
        threads.push(spawn_blocked(&server, l, lock_wait(free, l), tx.clone()));
        eventually("LOCK queued behind it", SECOND, || {
            waiters(&mut con, free) == 2
        });
        names.extend([m, l]);
    }
    let _: () = redis::cmd("SET")
        .arg("str")
        .arg("v")
        .query(&mut con)
        .unwrap();

    let ok: String = redis::cmd("FLUSHALL").query(&mut con).unwrap();
    assert_eq!(ok, "OK");
    assert_eq!(int(&mut con, &mut redis::cmd("DBSIZE")), 0, "right after");
    let mut got = Vec::new();
    for _ in 0..names.len() {
        let (who, outcome) = rx.recv_timeout(SECOND).expect("every waiter answered");
        assert_eq!(outcome, Err("ERR keyspace flushed".to_string()), "{who}");
        got.push(who);
    }
    got.sort();
    names.sort();
    assert_eq!(got, names);
    assert_eq!(int(&mut con, &mut redis::cmd("DBSIZE")), 0);
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut con).unwrap();
    assert!(keys.is_empty(), "{keys:?}");
    // Holders lost their leases.
    assert_eq!(
        int(&mut con, redis::cmd("REFRESH").arg("lk").arg("h").arg(1000)),
        0
    );
    assert_eq!(
        int(&mut con, redis::cmd("SEM.RELEASE").arg("s").arg("h")),
        0
    );
    for t in threads {
        t.join().unwrap();
    }
    // Each failed waiter left the waiter count once (an MLOCK sat in two queues).
    assert_eq!(info_locks_field(&mut con, "waiters"), "0");
    // And new requests can still wait.
    lock(&mut con, "k", "h").unwrap();
    let mut other = server.conn();
    let none: Option<i64> = redis::cmd("LOCK")
        .arg("k")
        .arg("w")
        .arg(1000)
        .arg("WAIT")
        .arg(20)
        .query(&mut other)
        .expect("still allowed to wait");
    assert_eq!(none, None);
}

/// One line of `INFO locks`.
fn info_locks_field(con: &mut redis::Connection, field: &str) -> String {
    common::info_value(con, "locks", field)
}

#[test]
fn flushdb_with_async_or_sync_also_fails_waiters() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    for variant in [
        &["FLUSHDB"][..],
        &["FLUSHDB", "ASYNC"],
        &["FLUSHALL", "SYNC"],
    ] {
        create(&mut con, "s", 1);
        acquire(&mut con, "s", "h", 1).unwrap();
        let (tx, rx) = mpsc::channel();
        let t = spawn_blocked(&server, "w", sem_acquire_wait("s", "w", 1), tx);
        eventually("waiter queued", SECOND, || sem_waiters(&mut con, "s") == 1);
        let mut cmd = redis::cmd(variant[0]);
        cmd.arg(&variant[1..]);
        let ok: String = cmd.query(&mut con).unwrap();
        assert_eq!(ok, "OK");
        assert_eq!(int(&mut con, &mut redis::cmd("DBSIZE")), 0, "{variant:?}");
        let (_, outcome) = rx.recv_timeout(SECOND).unwrap();
        assert_eq!(
            outcome,
            Err("ERR keyspace flushed".to_string()),
            "{variant:?}"
        );
        t.join().unwrap();
    }
}
