//! docs/protocol.md "Locks", MLOCK / MUNLOCK rules and their fine print, against a real server.

mod common;

use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use common::{err_text, eventually, info_field, int, lock, unlock, waiters, TestServer};
use redis::Value;

const SECOND: Duration = Duration::from_secs(5);

fn mlock_cmd(keys: &[&str], owner: &str, ttl: u64) -> redis::Cmd {
    let mut cmd = redis::cmd("MLOCK");
    cmd.arg(keys.len()).arg(keys).arg(owner).arg(ttl);
    cmd
}

fn mlock(con: &mut redis::Connection, keys: &[&str], owner: &str) -> Option<Vec<i64>> {
    mlock_cmd(keys, owner, 60_000).query(con).expect("MLOCK")
}

fn mlock_wait(
    con: &mut redis::Connection,
    keys: &[&str],
    owner: &str,
    ttl: u64,
    wait: u64,
) -> redis::RedisResult<Option<Vec<i64>>> {
    mlock_cmd(keys, owner, ttl).arg("WAIT").arg(wait).query(con)
}

fn munlock(con: &mut redis::Connection, keys: &[&str], owner: &str) -> i64 {
    redis::cmd("MUNLOCK")
        .arg(keys.len())
        .arg(keys)
        .arg(owner)
        .query(con)
        .expect("MUNLOCK")
}

/// (owner, token, ttl) of each holder of lock `key`.
fn lock_holders(con: &mut redis::Connection, key: &str) -> Vec<(String, i64, i64)> {
    let Some(Value::Array(holders)) = info_field(con, "LOCK.INFO", key, "holders") else {
        return Vec::new();
    };
    holders
        .into_iter()
        .map(|h| {
            let Value::Array(items) = h else {
                panic!("holder: {h:?}")
            };
            let mut owner = String::new();
            let (mut token, mut ttl) = (0, 0);
            let mut it = items.into_iter();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                match redis::from_redis_value::<String>(k).unwrap().as_str() {
                    "owner" => owner = redis::from_redis_value(v).unwrap(),
                    "token" => token = redis::from_redis_value(v).unwrap(),
                    "ttl" => ttl = redis::from_redis_value(v).unwrap(),
                    _ => {}
                }
            }
            (owner, token, ttl)
        })
        .collect()
}

fn packed(args: &[&str]) -> Vec<u8> {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.get_packed_command()
}

/// Reads from `raw` until the bytes end with `suffix` (or the read timeout hits).
fn read_until(raw: &mut common::RawConn, suffix: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while !out.ends_with(suffix) {
        match raw.stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    out
}

#[test]
fn mlock_grants_tokens_in_key_order() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    let tokens = mlock(&mut con, &["c", "a", "b"], "o").expect("granted");
    assert_eq!(tokens.len(), 3);
    assert!(tokens.iter().all(|t| *t > 0));
    let mut distinct = tokens.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "every key has its own token");
    for (key, token) in ["c", "a", "b"].iter().zip(&tokens) {
        let holders = lock_holders(&mut con, key);
        assert_eq!(holders.len(), 1);
        assert_eq!(holders[0].0, "o");
        assert_eq!(holders[0].1, *token, "token of {key} in key order");
        let mode = info_field(&mut con, "LOCK.INFO", key, "mode").unwrap();
        assert_eq!(
            redis::from_redis_value::<String>(mode).unwrap(),
            "exclusive"
        );
    }
    // Others are excluded from each key.
    assert_eq!(lock(&mut con, "a", "x", 1000), None);
    assert_eq!(munlock(&mut con, &["a", "b", "c"], "o"), 3);
    assert!(lock(&mut con, "a", "x", 1000).is_some());
}

#[test]
fn mlock_is_all_or_nothing_and_its_nil_is_a_nil_array() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    lock(&mut con, "b", "x", 60_000).unwrap();
    assert_eq!(mlock(&mut con, &["a", "b"], "o"), None);
    assert_eq!(
        int(&mut con, redis::cmd("EXISTS").arg("a")),
        0,
        "no partial grant"
    );
    let v: Value = mlock_cmd(&["a", "b"], "o", 1000).query(&mut con).unwrap();
    assert_eq!(v, Value::Nil);

    // RESP2 bytes: `*-1`, not `$-1`.
    let mut raw = server.raw();
    let mut bytes = packed(&["MLOCK", "2", "a", "b", "o", "1000"]);
    bytes.extend(packed(&["PING"]));
    raw.send(&bytes);
    let got = read_until(&mut raw, b"+PONG\r\n");
    assert_eq!(String::from_utf8_lossy(&got), "*-1\r\n+PONG\r\n");

    // Also after a WAIT that times out.
    let mut bytes = packed(&["MLOCK", "2", "a", "b", "o", "1000", "WAIT", "20"]);
    bytes.extend(packed(&["PING"]));
    raw.send(&bytes);
    let got = read_until(&mut raw, b"+PONG\r\n");
    assert_eq!(String::from_utf8_lossy(&got), "*-1\r\n+PONG\r\n");

    // RESP3: `_`.
    let mut raw3 = server.raw();
    let mut bytes = packed(&["HELLO", "3"]);
    bytes.extend(packed(&["MLOCK", "2", "a", "b", "o", "1000"]));
    bytes.extend(packed(&["MLOCK", "2", "a", "b", "o", "1000", "WAIT", "20"]));
    bytes.extend(packed(&["PING"]));
    raw3.send(&bytes);
    let got = read_until(&mut raw3, b"+PONG\r\n");
    assert!(
        got.ends_with(b"_\r\n_\r\n+PONG\r\n"),
        "RESP3 nil: {:?}",
        String::from_utf8_lossy(&got)
    );
    let mut con3 = server.conn3();
    let v: Value = mlock_cmd(&["a", "b"], "o", 1000).query(&mut con3).unwrap();
    assert_eq!(v, Value::Nil);
    assert_eq!(int(&mut con, redis::cmd("EXISTS").arg("a")), 0);
}

#[test]
fn duplicate_keys_and_bad_numkeys_are_errors() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    let err = err_text(&mut con, &mut mlock_cmd(&["a", "b", "a"], "o", 1000));
    assert_eq!(err, "ERR duplicate key in MLOCK");
    let err = err_text(
        &mut con,
        redis::cmd("MUNLOCK").arg(2).arg("a").arg("a").arg("o"),
    );
    assert_eq!(err, "ERR duplicate key in MUNLOCK");
    for bad in ["0", "-1", "3"] {
        let err = err_text(
            &mut con,
            redis::cmd("MLOCK")
                .arg(bad)
                .arg("a")
                .arg("b")
                .arg("o")
                .arg(1000),
        );
        assert_eq!(err, "ERR invalid numkeys", "MLOCK numkeys {bad}");
    }
    for bad in ["0", "-1", "3"] {
        let err = err_text(
            &mut con,
            redis::cmd("MUNLOCK").arg(bad).arg("a").arg("b").arg("o"),
        );
        assert_eq!(err, "ERR invalid numkeys", "MUNLOCK numkeys {bad}");
    }
    let err = err_text(
        &mut con,
        redis::cmd("MLOCK")
            .arg("two")
            .arg("a")
            .arg("b")
            .arg("o")
            .arg(1000),
    );
    assert_eq!(err, "ERR value is not an integer or out of range");
    // numkeys is checked before the keys and the rest.
    let err = err_text(
        &mut con,
        redis::cmd("MLOCK")
            .arg(5)
            .arg("a")
            .arg("b")
            .arg("o")
            .arg("notttl"),
    );
    assert_eq!(err, "ERR invalid numkeys");
    let err = err_text(&mut con, &mut mlock_cmd(&["a", "b"], "o", 0));
    assert_eq!(err, "ERR invalid ttl");
    let err = err_text(&mut con, mlock_cmd(&["a"], "o", 1000).arg("WAIT").arg(-1));
    assert_eq!(err, "ERR invalid wait");
    assert_eq!(
        int(&mut con, &mut redis::cmd("DBSIZE")),
        0,
        "nothing was granted"
    );
    // The connection still works.
    assert!(mlock(&mut con, &["a", "b"], "o").is_some());
}

#[test]
fn keys_held_exclusively_count_as_granted() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    let ta = lock(&mut con, "a", "o", 1_000).unwrap();
    let tokens = mlock(&mut con, &["a", "b"], "o").expect("granted");
    assert_eq!(tokens[0], ta, "same token for the key already held");
    assert!(tokens[1] > ta);
    let holders = lock_holders(&mut con, "a");
    assert!(holders[0].2 > 1_000, "lease reset: {}", holders[0].2);
    // Repeating the whole MLOCK is idempotent too.
    assert_eq!(mlock(&mut con, &["a", "b"], "o"), Some(tokens.clone()));
    // WLOCK without SHARED is the exclusive mode.
    let tw: i64 = redis::cmd("WLOCK")
        .arg("w")
        .arg("o")
        .arg(1000)
        .query(&mut con)
        .unwrap();
    let t2 = mlock(&mut con, &["w", "a"], "o").expect("granted");
    assert_eq!(t2, vec![tw, ta]);
}

#[test]
fn a_key_held_in_another_mode_is_an_error() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    let _: i64 = redis::cmd("RLOCK")
        .arg("r")
        .arg("o")
        .arg(60_000)
        .query(&mut con)
        .unwrap();
    let _: i64 = redis::cmd("WLOCK")
        .arg("s")
        .arg("o")
        .arg(60_000)
        .arg("SHARED")
        .query(&mut con)
        .unwrap();
    for held in ["r", "s"] {
        for wait in [false, true] {
            let mut cmd = mlock_cmd(&["a", held], "o", 1000);
            if wait {
                cmd.arg("WAIT").arg(10);
            }
            let err = err_text(&mut con, &mut cmd);
            assert_eq!(err, "ERR owner already holds this key in another mode");
        }
    }
    assert_eq!(int(&mut con, redis::cmd("EXISTS").arg("a")), 0);
}

#[test]
fn other_kinds_are_wrongtype() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    let _: () = redis::cmd("SET")
        .arg("str")
        .arg("v")
        .query(&mut con)
        .unwrap();
    let _: () = redis::cmd("SEM.CREATE")
        .arg("sem")
        .arg(2)
        .query(&mut con)
        .unwrap();
    for other in ["str", "sem"] {
        let err = err_text(&mut con, &mut mlock_cmd(&["a", other], "o", 1000));
        assert!(err.starts_with("WRONGTYPE"), "{other}: {err}");
    }
    assert_eq!(int(&mut con, redis::cmd("EXISTS").arg("a")), 0);
}

#[test]
fn mlock_waits_for_a_lock_holder_and_is_granted_on_release() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    lock(&mut con, "b", "x", 60_000).unwrap();
    let mut other = server.conn();
    let t = std::thread::spawn(move || mlock_wait(&mut other, &["a", "b"], "o", 60_000, 0));
    eventually("MLOCK queued on b", SECOND, || waiters(&mut con, "b") == 1);
    // It also queues on the free key a: a has only a waiter, so it exists with mode none.
    assert_eq!(waiters(&mut con, "a"), 1);
    let mode = info_field(&mut con, "LOCK.INFO", "a", "mode").unwrap();
    assert_eq!(redis::from_redis_value::<String>(mode).unwrap(), "none");
    // No barging past it on the free key.
    assert_eq!(lock(&mut con, "a", "y", 1000), None);
    assert_eq!(unlock(&mut con, "b", "x"), 1);
    let tokens = t.join().unwrap().unwrap().expect("granted");
    assert_eq!(lock_holders(&mut con, "a")[0].1, tokens[0]);
    assert_eq!(lock_holders(&mut con, "b")[0].1, tokens[1]);
    assert_eq!(waiters(&mut con, "a"), 0);
}

#[test]
fn a_waiting_mlock_leaves_all_queues_on_timeout_and_on_close() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    lock(&mut con, "b", "x", 60_000).unwrap();
    let mut other = server.conn();
    assert_eq!(
        mlock_wait(&mut other, &["a", "b"], "o", 1000, 30).unwrap(),
        None
    );
    assert_eq!(waiters(&mut con, "a"), 0);
    assert_eq!(waiters(&mut con, "b"), 0);
    assert_eq!(int(&mut con, redis::cmd("EXISTS").arg("a")), 0);
    let mut raw = server.raw();
    raw.send(&packed(&[
        "MLOCK", "2", "a", "b", "gone", "60000", "WAIT", "0",
    ]));
    eventually("raw MLOCK queued", SECOND, || waiters(&mut con, "b") == 1);
    drop(raw);
    eventually("raw MLOCK left", SECOND, || {
        waiters(&mut con, "a") == 0 && waiters(&mut con, "b") == 0
    });
    assert_eq!(info_waiters(&mut con), 0);
    unlock(&mut con, "b", "x");
    assert!(
        mlock(&mut con, &["a", "b"], "z").is_some(),
        "not stuck for a gone client"
    );
}

#[test]
fn a_waiting_mlock_does_not_queue_on_keys_it_holds() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    let tb = lock(&mut con, "b", "o", 60_000).unwrap();
    lock(&mut con, "a", "x", 60_000).unwrap();
    let mut other = server.conn();
    // A nil leaves the held key unchanged.
    assert_eq!(
        mlock_wait(&mut other, &["a", "b"], "o", 1000, 20).unwrap(),
        None
    );
    let hb = lock_holders(&mut con, "b");
    assert_eq!(hb.len(), 1);
    assert_eq!(hb[0].1, tb);
    assert!(
        hb[0].2 > 1_000,
        "lease of b not reset by a nil: {}",
        hb[0].2
    );
    let t = std::thread::spawn(move || mlock_wait(&mut other, &["a", "b"], "o", 5_000, 0));
    eventually("MLOCK queued on a", SECOND, || waiters(&mut con, "a") == 1);
    assert_eq!(waiters(&mut con, "b"), 0, "not queued on the key it holds");
    unlock(&mut con, "a", "x");
    let tokens = t.join().unwrap().unwrap().expect("granted");
    assert_eq!(tokens[1], tb, "same token for b");
    let hb = lock_holders(&mut con, "b");
    assert!(
        hb[0].2 <= 5_000,
        "b's lease reset to the MLOCK's ttl: {}",
        hb[0].2
    );
}

#[test]
fn a_held_key_whose_hold_ends_while_waiting_joins_the_queue() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    lock(&mut con, "b", "o", 60_000).unwrap();
    lock(&mut con, "a", "x", 60_000).unwrap();
    let mut other = server.conn();
    let t = std::thread::spawn(move || mlock_wait(&mut other, &["a", "b"], "o", 60_000, 0));
    eventually("MLOCK queued on a", SECOND, || waiters(&mut con, "a") == 1);
    // Not a waiter of b while o holds it.
    assert_eq!(waiters(&mut con, "b"), 0);
    // o's own hold on b ends: the MLOCK joins b's queue at once, so y cannot barge in.
    assert_eq!(unlock(&mut con, "b", "o"), 1);
    assert_eq!(waiters(&mut con, "b"), 1);
    assert_eq!(
        lock(&mut con, "b", "y", 60_000),
        None,
        "y barged past the MLOCK"
    );
    assert!(!t.is_finished());
    assert_eq!(unlock(&mut con, "a", "x"), 1);
    let tokens = t.join().unwrap().unwrap().expect("granted");
    assert_eq!(lock_holders(&mut con, "a")[0].1, tokens[0]);
    assert_eq!(lock_holders(&mut con, "b")[0].1, tokens[1]);
}

#[test]
fn opposite_orders_never_deadlock_or_overlap() {
    let server = TestServer::default_config();
    let inside = Arc::new(AtomicUsize::new(0));
    let rounds = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let orders: [(&'static str, &'static [&'static str]); 3] = [
        ("c1", &["a", "b"]),
        ("c2", &["b", "a"]),
        ("c3", &["b", "x", "a"]),
    ];
    let mut threads = Vec::new();
    for (owner, keys) in orders {
        let mut con = server.conn();
        let inside = inside.clone();
        let rounds = rounds.clone();
        threads.push(std::thread::spawn(move || {
            let mut last = vec![0i64; keys.len()];
            let mut done = 0;
            while done < 2_000 && started.elapsed() < Duration::from_secs(3) {
                // A long WAIT (not 0): a deadlock fails the test instead of hanging it.
                let tokens = mlock_wait(&mut con, keys, owner, 10_000, 10_000)
                    .expect("MLOCK")
                    .unwrap_or_else(|| panic!("{owner}: not granted within 10 s (deadlock?)"));
                assert_eq!(
                    inside.fetch_add(1, Ordering::SeqCst),
                    0,
                    "{owner} overlaps another holder"
                );
                for (i, t) in tokens.iter().enumerate() {
                    assert!(*t > last[i], "tokens rise per key");
                    last[i] = *t;
                }
                std::thread::yield_now();
                assert_eq!(inside.fetch_sub(1, Ordering::SeqCst), 1);
                assert_eq!(munlock(&mut con, keys, owner), keys.len() as i64);
                done += 1;
            }
            rounds.fetch_add(done, Ordering::SeqCst);
        }));
    }
    for t in threads {
        t.join().expect("no panic in a client");
    }
    assert!(
        rounds.load(Ordering::SeqCst) >= 3,
        "the loops made progress"
    );
    let mut con = server.conn();
    assert_eq!(int(&mut con, &mut redis::cmd("DBSIZE")), 0, "all released");
    assert_eq!(
        info_waiters(&mut con),
        0,
        "every MLOCK left the waiter count once"
    );
}

/// `waiters` of `INFO locks`: the server-wide count of blocked requests.
fn info_waiters(con: &mut redis::Connection) -> i64 {
    common::info_int(con, "locks", "waiters")
}

#[test]
fn each_key_of_a_grant_has_its_own_lease() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    let tokens = mlock_cmd(&["a", "b"], "o", 200)
        .query::<Option<Vec<i64>>>(&mut con)
        .unwrap()
        .expect("granted");
    assert_eq!(
        int(
            &mut con,
            redis::cmd("REFRESH").arg("a").arg("o").arg(60_000)
        ),
        1
    );
    eventually("b's lease ended", SECOND, || {
        int(&mut con, redis::cmd("EXISTS").arg("b")) == 0
    });
    let ha = lock_holders(&mut con, "a");
    assert_eq!(ha.len(), 1, "a is still held");
    assert_eq!(ha[0].1, tokens[0]);
    assert!(lock(&mut con, "b", "x", 1000).is_some());
    assert_eq!(
        munlock(&mut con, &["a", "b"], "o"),
        1,
        "only a was still held"
    );
}

#[test]
fn munlock_counts_what_it_released() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    mlock(&mut con, &["a", "b"], "o").unwrap();
    lock(&mut con, "c", "other", 60_000).unwrap();
    assert_eq!(munlock(&mut con, &["a", "c", "nothing", "b"], "o"), 2);
    assert_eq!(int(&mut con, redis::cmd("EXISTS").arg("a").arg("b")), 0);
    assert_eq!(int(&mut con, redis::cmd("EXISTS").arg("c")), 1, "not o's");
    assert_eq!(munlock(&mut con, &["a", "b"], "o"), 0);
    // A reader hold is released too (each key as UNLOCK).
    let _: i64 = redis::cmd("RLOCK")
        .arg("r")
        .arg("o")
        .arg(60_000)
        .query(&mut con)
        .unwrap();
    assert_eq!(munlock(&mut con, &["r"], "o"), 1);
}

#[test]
fn munlock_on_a_string_key_releases_nothing() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    mlock(&mut con, &["a", "b"], "o").unwrap();
    let _: () = redis::cmd("SET")
        .arg("str")
        .arg("v")
        .query(&mut con)
        .unwrap();
    let err = err_text(
        &mut con,
        redis::cmd("MUNLOCK")
            .arg(3)
            .arg("a")
            .arg("str")
            .arg("b")
            .arg("o"),
    );
    assert!(err.starts_with("WRONGTYPE"), "{err}");
    assert_eq!(lock_holders(&mut con, "a").len(), 1, "a still held");
    assert_eq!(lock_holders(&mut con, "b").len(), 1, "b still held");
    let v: String = redis::cmd("GET").arg("str").query(&mut con).unwrap();
    assert_eq!(v, "v");
}

#[test]
fn munlock_on_a_semaphore_releases_all_permits_and_counts_one() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    let _: () = redis::cmd("SEM.CREATE")
        .arg("s")
        .arg(5)
        .query(&mut con)
        .unwrap();
    let _: i64 = redis::cmd("SEM.ACQUIRE")
        .arg("s")
        .arg("o")
        .arg(60_000)
        .arg("PERMITS")
        .arg(3)
        .query(&mut con)
        .unwrap();
    lock(&mut con, "a", "o", 60_000).unwrap();
    // A waiter on the semaphore is served when the permits come back.
    let mut other = server.conn();
    let t = std::thread::spawn(move || {
        redis::cmd("SEM.ACQUIRE")
            .arg("s")
            .arg("w")
            .arg(60_000)
            .arg("PERMITS")
            .arg(4)
            .arg("WAIT")
            .arg(0)
            .query::<Option<i64>>(&mut other)
    });
    eventually("semaphore waiter queued", SECOND, || {
        info_field(&mut con, "SEM.INFO", "s", "waiters") == Some(Value::Int(1))
    });
    assert_eq!(munlock(&mut con, &["s", "a"], "o"), 2);
    assert!(t.join().unwrap().unwrap().is_some());
    let used = info_field(&mut con, "SEM.INFO", "s", "used").unwrap();
    assert_eq!(used, Value::Int(4), "o's 3 permits gone, w's 4 granted");
    assert_eq!(munlock(&mut con, &["s"], "o"), 0);
}

#[test]
fn a_waiting_mlock_is_not_starved_by_single_key_locks() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    lock(&mut con, "a", "x", 60_000).unwrap();
    let mut mcon = server.conn();
    let m = std::thread::spawn(move || {
        let tokens = mlock_wait(&mut mcon, &["a", "b"], "m", 60_000, 0);
        (mcon, tokens)
    });
    eventually("MLOCK queued", SECOND, || waiters(&mut con, "b") == 1);
    // A stream of single-key requests on b: without WAIT they get nil (no barging), with
    // WAIT they queue behind the MLOCK.
    for i in 0..50 {
        assert_eq!(lock(&mut con, "b", &format!("s{i}"), 1000), None);
    }
    let (tx, rx) = mpsc::channel();
    let mut singles = Vec::new();
    for i in 0..3 {
        let mut c = server.conn();
        let tx = tx.clone();
        singles.push(std::thread::spawn(move || {
            let owner = format!("w{i}");
            let t: Option<i64> = redis::cmd("LOCK")
                .arg("b")
                .arg(&owner)
                .arg(60_000)
                .arg("WAIT")
                .arg(0)
                .query(&mut c)
                .unwrap();
            tx.send((owner.clone(), t)).unwrap();
            let _: i64 = redis::cmd("UNLOCK")
                .arg("b")
                .arg(&owner)
                .query(&mut c)
                .unwrap();
        }));
        eventually("single queued", SECOND, || waiters(&mut con, "b") == i + 2);
    }
    assert!(rx.try_recv().is_err(), "nobody passed the MLOCK on b");
    assert_eq!(unlock(&mut con, "a", "x"), 1);
    let (mut mcon, tokens) = m.join().unwrap();
    let tokens = tokens.unwrap().expect("the MLOCK is granted first");
    assert!(rx.try_recv().is_err(), "b still held by the MLOCK");
    assert_eq!(munlock(&mut mcon, &["a", "b"], "m"), 2);
    let mut last = tokens[1];
    for i in 0..3 {
        let (owner, t) = rx.recv_timeout(SECOND).unwrap();
        assert_eq!(owner, format!("w{i}"), "FIFO on b");
        let t = t.unwrap();
        assert!(t > last);
        last = t;
    }
    for s in singles {
        s.join().unwrap();
    }
}
