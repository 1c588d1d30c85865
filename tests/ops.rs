//! Running baton as a service, against the real binary: /metrics changes as commands run,
//! /health and /ready through a restart with a large log, the config file's precedence,
//! and CONFIG SET of a limit.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::eventually;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// The real binary on `port` with `args`, stderr into `log`, no inherited BATON_* setting.
fn spawn(port: u16, args: &[&str], envs: &[(&str, &str)], log: &Path) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_baton"));
    for (key, _) in std::env::vars() {
        if key.starts_with("BATON_") {
            cmd.env_remove(key);
        }
    }
    cmd.args(["--port", &port.to_string()])
        .args(args)
        .envs(envs.iter().copied())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log file"))
        .spawn()
        .expect("spawn baton")
}

/// Stops `child` with SIGTERM (graceful shutdown), or kills it after 10 s.
fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// GET `path` on 127.0.0.1:`port`: (status, body), or None while nothing listens.
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: baton\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n")?.1.to_string();
    Some((status, body))
}

/// The value of the sample `series` (name with labels exactly as rendered) in a scrape;
/// 0 when absent.
fn sample(scrape: &str, series: &str) -> f64 {
    scrape
        .lines()
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok()).flatten()
        })
        .unwrap_or(0.0)
}

fn scrape(port: u16) -> String {
    let (status, body) = get(port, "/metrics").expect("scrape");
    assert_eq!(status, 200, "{body}");
    body
}

fn connect(port: u16) -> redis::Connection {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).expect("client");
    let mut con = None;
    eventually("baton accepts", Duration::from_secs(60), || {
        con = client.get_connection().ok();
        con.is_some()
    });
    con.expect("connection")
}

#[test]
fn metrics_change_as_commands_run() {
    let dir = tempfile::tempdir().expect("dir");
    let (port, http) = (free_port(), free_port());
    let data = dir.path().join("data");
    let child = spawn(
        port,
        &[
            "--http-port",
            &http.to_string(),
            "--dir",
            data.to_str().expect("utf-8 path"),
        ],
        &[],
        &dir.path().join("stderr"),
    );
    let mut a = connect(port);
    let mut b = connect(port);
    let before = scrape(http);

    // A grant, a queued request handed the lock at UNLOCK, an error, a lease that runs out.
    assert!(common::lock(&mut a, "k", "a", 60_000).is_some());
    let waiter = std::thread::spawn(move || {
        let token: Option<i64> = redis::cmd("LOCK")
            .arg("k")
            .arg("b")
            .arg(60_000)
            .arg("WAIT")
            .arg(10_000)
            .query(&mut b)
            .expect("LOCK WAIT");
        (token, b)
    });
    eventually("b queues", Duration::from_secs(10), || {
        sample(&scrape(http), "baton_waiters") == 1.0
    });
    assert_eq!(common::unlock(&mut a, "k", "a"), 1);
    let (token, _b) = waiter.join().expect("waiter");
    assert!(token.is_some(), "b got the lock");
    let _: redis::RedisResult<i64> = redis::cmd("LOCK").arg("k").query(&mut a);
    assert!(common::lock(&mut a, "short", "a", 50).is_some());

    eventually("the short lease runs out", Duration::from_secs(10), || {
        sample(&scrape(http), "baton_leases_expired_total")
            > sample(&before, "baton_leases_expired_total")
    });
    let after = scrape(http);
    let delta = |series: &str| sample(&after, series) - sample(&before, series);
    assert_eq!(
        delta(r#"baton_commands_total{command="lock",result="ok"}"#),
        2.0
    );
    assert_eq!(
        delta(r#"baton_commands_total{command="lock",result="blocked"}"#),
        1.0
    );
    assert_eq!(
        delta(r#"baton_commands_total{command="lock",result="error"}"#),
        1.0
    );
    assert_eq!(
        delta(r#"baton_commands_total{command="unlock",result="ok"}"#),
        1.0
    );
    assert_eq!(delta(r#"baton_grants_total{kind="exclusive"}"#), 3.0);
    assert_eq!(delta("baton_leases_expired_total"), 1.0);
    assert_eq!(delta("baton_handoff_wait_seconds_count"), 1.0);
    assert!(delta(r#"baton_command_duration_seconds_count{command="lock"}"#) >= 3.0);
    // Grant, release, grant, grant, release (expiry): each one record, each one fsync'd.
    assert!(delta("baton_log_appends_total") >= 5.0, "{after}");
    assert!(delta("baton_log_fsync_duration_seconds_count") >= 1.0);
    assert_eq!(sample(&after, r#"baton_held{kind="exclusive"}"#), 1.0);
    assert_eq!(sample(&after, "baton_waiters"), 0.0);
    assert!(sample(&after, "baton_connections_total") >= 2.0);
    assert!(sample(&after, "baton_resident_memory_bytes") > 1e6);
    assert_eq!(sample(&after, "baton_ready"), 1.0);
    // Every name carries the prefix, with a help text.
    for line in after.lines().filter(|l| !l.is_empty()) {
        let name = line
            .trim_start_matches("# HELP ")
            .trim_start_matches("# TYPE ");
        assert!(name.starts_with("baton_"), "unprefixed: {line}");
    }
    assert!(after.contains("# HELP baton_grants_total "));

    // INFO shows the same counts.
    let info: String = redis::cmd("INFO").arg("stats").query(&mut a).expect("INFO");
    let grants = sample(&after, r#"baton_grants_total{kind="exclusive"}"#);
    assert!(
        info.contains(&format!("grants_exclusive:{grants}\r\n")),
        "{info}"
    );
    let info: String = redis::cmd("INFO")
        .arg("keyspace")
        .query(&mut a)
        .expect("INFO");
    assert!(info.contains("db0:keys=1,expires=1,avg_ttl="), "{info}");
    assert!(!info.contains("avg_ttl=0\r\n"), "{info}");

    // CONFIG RESETSTAT zeroes INFO commandstats; the Prometheus counters go on.
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut a)
        .expect("INFO");
    assert!(info.contains("cmdstat_lock:calls="), "{info}");
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query(&mut a)
        .expect("RESETSTAT");
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut a)
        .expect("INFO");
    assert!(!info.contains("cmdstat_lock:"), "{info}");
    let lock_ok = r#"baton_commands_total{command="lock",result="ok"}"#;
    assert_eq!(sample(&scrape(http), lock_ok), sample(&after, lock_ok));
    stop(child);
}

/// Pipelines `n` SETs on one raw connection and reads every reply.
fn fill(port: u16, n: usize) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let reader = stream.try_clone().expect("clone");
    let replies = std::thread::spawn(move || {
        let mut reader = BufReader::new(reader);
        let mut line = String::new();
        for _ in 0..n {
            line.clear();
            reader.read_line(&mut line).expect("reply");
            assert_eq!(line, "+OK\r\n");
        }
    });
    let mut batch = Vec::new();
    for i in 0..n {
        let key = format!("key:{i:08}");
        let value = "v".repeat(64);
        write!(
            batch,
            "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n${}\r\n{value}\r\n",
            key.len(),
            value.len()
        )
        .expect("encode");
        if batch.len() > 1 << 20 {
            stream.write_all(&batch).expect("send");
            batch.clear();
        }
    }
    stream.write_all(&batch).expect("send");
    replies.join().expect("replies");
}

#[test]
fn health_and_ready_through_a_restart_with_a_large_log() {
    // Replaying 20k records takes over a second in a debug build (about 80 µs each here),
    // far longer than the 2 ms between probes.
    const KEYS: usize = 20_000;
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let (port, http) = (free_port(), free_port());
    let args = [
        "--http-port",
        &http.to_string(),
        "--dir",
        data.to_str().expect("utf-8 path"),
        "--appendfsync",
        "no",
    ]
    .map(String::from);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let child = spawn(port, &args, &[], &dir.path().join("first"));
    let mut con = connect(port);
    assert_eq!(get(http, "/ready"), Some((200, "ready\n".into())));
    fill(port, KEYS);
    drop(con);
    stop(child);

    // Restarted on the same log: alive at once, ready only once every record is replayed.
    let child = spawn(port, &args, &[], &dir.path().join("second"));
    let started = Instant::now();
    let mut health = None;
    while health.is_none() && started.elapsed() < Duration::from_secs(30) {
        health = get(http, "/health");
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(health, Some((200, "ok\n".into())));
    assert_eq!(
        get(http, "/ready"),
        Some((503, "recovering\n".into())),
        "ready before replaying {KEYS} records"
    );
    assert_eq!(get(http, "/health").map(|r| r.0), Some(200));
    eventually("ready after recovery", Duration::from_secs(120), || {
        get(http, "/ready") == Some((200, "ready\n".into()))
    });
    con = connect(port);
    let keys: usize = redis::cmd("DBSIZE").query(&mut con).expect("DBSIZE");
    assert_eq!(keys, KEYS, "ready means every record is back");
    assert_eq!(get(http, "/nothing").map(|r| r.0), Some(404));
    stop(child);
}

#[test]
fn settings_come_from_flag_then_env_then_file_then_default() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("baton.toml");
    std::fs::write(
        &file,
        "max-clients = 7\nmax-waiters = 11\nmax_key_bytes = 100\nrequirepass = \"hunter2\"\n\
         persistence = \"off\"\n",
    )
    .expect("config file");
    let port = free_port();
    let log = dir.path().join("stderr");
    let child = spawn(
        port,
        &[
            "--config",
            file.to_str().expect("utf-8 path"),
            "--max-key-bytes",
            "300",
        ],
        &[("BATON_MAX_WAITERS", "22"), ("BATON_MAX_KEY_BYTES", "200")],
        &log,
    );
    let client =
        redis::Client::open(format!("redis://:hunter2@127.0.0.1:{port}/")).expect("client");
    let mut con = None;
    eventually("baton accepts", Duration::from_secs(60), || {
        con = client.get_connection().ok();
        con.is_some()
    });
    let mut con = con.expect("connection");
    let get = |con: &mut redis::Connection, name: &str| -> String {
        let pairs: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg(name)
            .query(con)
            .expect("CONFIG GET");
        pairs.get(1).cloned().unwrap_or_default()
    };
    assert_eq!(get(&mut con, "max-clients"), "7", "file over default");
    assert_eq!(get(&mut con, "max-waiters"), "22", "env over file");
    assert_eq!(
        get(&mut con, "max-key-bytes"),
        "300",
        "flag over env and file"
    );
    assert_eq!(get(&mut con, "max-ttl-ms"), "86400000", "default");
    assert_eq!(get(&mut con, "persistence"), "off");
    stop(child);
    let printed = std::fs::read_to_string(&log).expect("stderr");
    for part in [
        "max-clients=7 (file)",
        "max-waiters=22 (env)",
        "max-key-bytes=300 (flag)",
        "max-ttl-ms=86400000 (default)",
        "requirepass=*** (file)",
    ] {
        assert!(printed.contains(part), "{part} not in: {printed}");
    }
    assert!(!printed.contains("hunter2"), "secret printed: {printed}");
    assert!(
        !printed.contains('\u{1b}'),
        "colour codes when not on a terminal"
    );

    // An unknown key stops the start with its name.
    std::fs::write(&file, "max-clients = 7\nmax-client = 8\n").expect("config file");
    let out = Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(["--config", file.to_str().expect("utf-8 path")])
        .output()
        .expect("run baton");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown key `max-client`"), "{err}");
}

#[test]
fn config_set_of_a_limit_takes_effect() {
    let dir = tempfile::tempdir().expect("dir");
    let (port, http) = (free_port(), free_port());
    let child = spawn(
        port,
        &["--persistence", "off", "--http-port", &http.to_string()],
        &[],
        &dir.path().join("stderr"),
    );
    let mut a = connect(port);
    let _b = connect(port);
    let ok: String = redis::cmd("CONFIG")
        .arg("SET")
        .arg("max-clients")
        .arg(2)
        .query(&mut a)
        .expect("CONFIG SET");
    assert_eq!(ok, "OK");
    // A third connection is refused with Redis's text and closed.
    let mut third = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    third
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut refused = String::new();
    let _ = third.read_to_string(&mut refused);
    assert_eq!(refused, "-ERR max clients reached\r\n");
    assert_eq!(
        sample(&scrape(http), "baton_connections_rejected_total"),
        1.0
    );
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxclients")
        .arg(10)
        .query(&mut a)
        .expect("CONFIG SET");
    let mut c = connect(port);
    let pong: String = redis::cmd("PING").query(&mut c).expect("PING");
    assert_eq!(pong, "PONG");

    // max-waiters: the second queued request is refused.
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("max-waiters")
        .arg(1)
        .query(&mut a)
        .expect("CONFIG SET");
    assert!(common::lock(&mut a, "k", "a", 60_000).is_some());
    let mut w = connect(port);
    std::thread::spawn(move || {
        let _: redis::RedisResult<Option<i64>> = redis::cmd("LOCK")
            .arg("k")
            .arg("w")
            .arg(60_000)
            .arg("WAIT")
            .arg(10_000)
            .query(&mut w);
    });
    eventually("one waiter", Duration::from_secs(10), || {
        common::waiters(&mut a, "k") == 1
    });
    let err = common::err_text(
        &mut c,
        redis::cmd("LOCK")
            .arg("k")
            .arg("c")
            .arg(60_000)
            .arg("WAIT")
            .arg(10_000),
    );
    assert_eq!(err, "ERR max waiters reached");

    // Redis's texts for what cannot be set.
    let err = common::err_text(&mut a, redis::cmd("CONFIG").arg("SET").arg("port").arg(1));
    assert_eq!(
        err,
        "ERR CONFIG SET failed (possibly related to argument 'port') - can't set immutable config"
    );
    let err = common::err_text(&mut a, redis::cmd("CONFIG").arg("SET").arg("nope").arg(1));
    assert_eq!(
        err,
        "ERR Unknown option or number of arguments for CONFIG SET - 'nope'"
    );
    stop(child);
}

#[test]
fn a_busy_port_is_named_with_the_flag_to_change_it() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = busy.local_addr().expect("addr").port().to_string();
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_baton"))
            .args(args)
            .args(["--persistence", "off", "--log-level", "warn"])
            .output()
            .expect("run baton");
        assert_eq!(out.status.code(), Some(1));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = run(&["--port", &port]);
    assert!(
        err.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{err}"
    );
    assert!(err.contains("another port with --port"), "{err}");
    let free = free_port().to_string();
    let err = run(&["--port", &free, "--http-port", &port]);
    assert!(
        err.contains(&format!(
            "cannot listen for HTTP (/metrics, /health, /ready) on 127.0.0.1:{port}"
        )),
        "{err}"
    );
    assert!(err.contains("another port with --http-port"), "{err}");
}

#[test]
fn not_ready_while_the_restart_delay_refuses_grants() {
    let dir = tempfile::tempdir().expect("dir");
    let (port, http) = (free_port(), free_port());
    let child = spawn(
        port,
        &[
            "--persistence",
            "off",
            "--restart-delay-ms",
            "1500",
            "--http-port",
            &http.to_string(),
        ],
        &[],
        &dir.path().join("stderr"),
    );
    let mut con = connect(port);
    assert_eq!(get(http, "/ready"), Some((503, "restart delay\n".into())));
    // The refused grant counts as a rejected call, as Redis counts its refusals.
    let err = common::err_text(&mut con, redis::cmd("LOCK").arg("k").arg("a").arg(1000));
    assert!(err.starts_with("TRYAGAIN restart delay"), "{err}");
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut con)
        .expect("INFO");
    assert!(
        info.contains("cmdstat_lock:calls=0,") && info.contains("rejected_calls=1,failed_calls=0"),
        "{info}"
    );
    assert_eq!(
        sample(
            &scrape(http),
            r#"baton_commands_total{command="lock",result="error"}"#
        ),
        1.0
    );
    eventually("ready after the delay", Duration::from_secs(20), || {
        get(http, "/ready") == Some((200, "ready\n".into()))
    });
    stop(child);
}
