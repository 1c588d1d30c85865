//! PROTOCOL.md "Durability contract": holds and tokens survive a restart (graceful, and
//! kill -9 of the real binary), expired holds do not come back.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use baton::config::{Config, Switch};
use common::{eventually, info_field, TestServer};

fn persistent(dir: &std::path::Path) -> Config {
    Config {
        persistence: Switch::On,
        dir: dir.to_path_buf(),
        ..Config::ephemeral()
    }
}

fn lock(con: &mut redis::Connection, key: &str, owner: &str, ttl: u64) -> Option<i64> {
    redis::cmd("LOCK")
        .arg(key)
        .arg(owner)
        .arg(ttl)
        .query(con)
        .expect("lock")
}

fn holder_token(con: &mut redis::Connection, key: &str) -> Option<i64> {
    let holders = info_field(con, "LOCK.INFO", key, "holders")?;
    let redis::Value::Array(holders) = holders else {
        return None;
    };
    let redis::Value::Array(h) = holders.first()? else {
        return None;
    };
    match h.get(5)? {
        redis::Value::Int(t) => Some(*t),
        _ => None,
    }
}

#[test]
fn holds_and_tokens_survive_a_graceful_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (t1, short) = {
        let server = TestServer::start(persistent(dir.path()));
        let mut con = server.conn();
        let t1 = lock(&mut con, "k", "a", 60_000).unwrap();
        let short = lock(&mut con, "short", "a", 1).unwrap();
        let s: i64 = redis::cmd("SEM.CREATE")
            .arg("s")
            .arg(3)
            .query(&mut con)
            .map(|_: String| 1)
            .unwrap();
        assert_eq!(s, 1);
        (t1, short)
    };
    let server = TestServer::start(persistent(dir.path()));
    let mut con = server.conn();
    assert_eq!(
        holder_token(&mut con, "k"),
        Some(t1),
        "the hold is back with its token"
    );
    let pttl: i64 = redis::cmd("PTTL").arg("k").query(&mut con).unwrap();
    assert!(pttl > 0 && pttl <= 60_000);
    assert_eq!(lock(&mut con, "k", "b", 1_000), None, "still held");
    eventually("short lease gone", Duration::from_secs(5), || {
        redis::cmd("EXISTS")
            .arg("short")
            .query::<i64>(&mut con)
            .unwrap()
            == 0
    });
    let t2 = lock(&mut con, "other", "b", 1_000).unwrap();
    assert!(
        t2 > t1 && t2 > short,
        "tokens keep rising across the restart"
    );
    assert_eq!(
        redis::cmd("TYPE")
            .arg("s")
            .query::<String>(&mut con)
            .unwrap(),
        "semaphore"
    );
}

fn spawn_baton(dir: &std::path::Path, port: u16, fsync: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(["--port", &port.to_string(), "--dir"])
        .arg(dir)
        .args(["--appendfsync", fsync, "--log-level", "warn"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn baton")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn connect(port: u16) -> redis::Connection {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
    let mut con = None;
    eventually("baton accepts", Duration::from_secs(20), || {
        con = client.get_connection().ok();
        con.is_some()
    });
    con.unwrap()
}

#[test]
fn every_acknowledged_grant_survives_kill_9_with_appendfsync_always() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = spawn_baton(dir.path(), port, "always");
    // Concurrent load from several connections; remember every acknowledged grant.
    let mut acked = Vec::new();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let mut con = connect(port);
            std::thread::spawn(move || {
                let mut mine = Vec::new();
                for i in 0..50 {
                    let key = format!("k{t}:{i}");
                    if let Ok(Some(token)) = redis::cmd("LOCK")
                        .arg(&key)
                        .arg("o")
                        .arg(60_000)
                        .query::<Option<i64>>(&mut con)
                    {
                        mine.push((key, token));
                    }
                }
                mine
            })
        })
        .collect();
    for t in threads {
        acked.extend(t.join().unwrap());
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let max_token = acked.iter().map(|(_, t)| *t).max().unwrap();
    let mut child = spawn_baton(dir.path(), port, "always");
    let mut con = connect(port);
    for (key, token) in &acked {
        assert_eq!(
            holder_token(&mut con, key),
            Some(*token),
            "{key} lost its hold"
        );
        assert_eq!(
            lock(&mut con, key, "intruder", 1_000),
            None,
            "{key} granted twice"
        );
    }
    let next = lock(&mut con, "fresh", "o", 1_000).unwrap();
    assert!(next > max_token, "no token handed out twice");
    child.kill().unwrap();
    child.wait().unwrap();
}
