//! Issue 13, against the real binary: never a double grant, never an unsynced
//! acknowledgement. One data directory per server (locked), every reply after the sync
//! that covers it, a failing disk stops the server (`always`) or refuses writes with
//! `-MISCONF` (`everysec`, `no`), the restart delay covers every way to take a lock, a
//! torn tail always recovers, the port opens only once recovery is done, Redis's expiry
//! range, private files.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use baton::persist::{HoldKind, Record, FORMAT_VERSION};
use bytes::Bytes;
use common::{eventually, info_field};

/// A baton process; killed when dropped.
struct Baton {
    child: Child,
    port: u16,
}

impl Baton {
    /// Starts the binary on a free port with `--dir dir`, `args` and `env`.
    fn spawn(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Baton {
        let port = free_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_baton"));
        cmd.args(["--port", &port.to_string(), "--dir"])
            .arg(dir)
            .args(args)
            .args(["--log-level", "warn"])
            .env_remove("BATON_TEST_FAULT")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        Baton {
            child: cmd.spawn().expect("spawn baton"),
            port,
        }
    }

    /// A connection, once the port accepts (panics if the process exits first).
    fn conn(&mut self) -> redis::Connection {
        let client = redis::Client::open(format!("redis://127.0.0.1:{}/", self.port)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(con) = client.get_connection() {
                return con;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("baton exited with {status}: {}", self.stderr());
            }
            assert!(Instant::now() < deadline, "baton never accepted");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// A raw socket, once the port accepts.
    fn raw(&mut self) -> std::net::TcpStream {
        drop(self.conn());
        let stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
    }

    /// Waits for the process to exit by itself.
    fn exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "baton did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// What it wrote on stderr (after it exited).
    fn stderr(&mut self) -> String {
        let mut text = String::new();
        if let Some(mut err) = self.child.stderr.take() {
            let _ = err.read_to_string(&mut text);
        }
        text
    }

    /// SIGTERM, then waits for the exit.
    fn stop(&mut self) -> ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.exit(Duration::from_secs(20))
    }
}

impl Drop for Baton {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Reads until the peer closes (or 10 s pass).
fn read_to_close(stream: &mut std::net::TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    out
}

/// The holders' owners of LOCK.INFO `key`.
fn owners(con: &mut redis::Connection, key: &str) -> Vec<String> {
    let Some(redis::Value::Array(holders)) = info_field(con, "LOCK.INFO", key, "holders") else {
        return Vec::new();
    };
    holders
        .into_iter()
        .filter_map(|h| match h {
            // [owner, <owner>, ...]
            redis::Value::Array(fields) => fields
                .into_iter()
                .nth(1)
                .and_then(|f| redis::from_redis_value::<String>(f).ok()),
            _ => None,
        })
        .collect()
}

fn lock(con: &mut redis::Connection, key: &str, owner: &str) -> redis::RedisResult<Option<i64>> {
    redis::cmd("LOCK")
        .arg(key)
        .arg(owner)
        .arg(60_000)
        .query(con)
}

fn err_text<T: std::fmt::Debug>(result: redis::RedisResult<T>) -> String {
    common::err_of(result)
}

/// The newest log file of `dir`.
fn newest_log(dir: &Path) -> PathBuf {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("log."))
        })
        .collect();
    logs.sort();
    logs.pop().expect("a log file")
}

/// A log file of `records`, as the server writes them.
fn log_file(records: &[Record]) -> Vec<u8> {
    let mut bytes = b"BATONLOG".to_vec();
    bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    for record in records {
        record.encode_frame(&mut bytes);
    }
    bytes
}

fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

// 1. One server per data directory.

#[test]
fn a_second_server_on_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = Baton::spawn(dir.path(), &[], &[]);
    let mut con = first.conn();
    assert!(lock(&mut con, "dup", "a").unwrap().is_some());

    let mut second = Baton::spawn(dir.path(), &[], &[]);
    let status = second.exit(Duration::from_secs(20));
    assert!(!status.success(), "the second server must not run");
    let text = second.stderr();
    assert!(
        text.contains(&format!("pid {}", first.child.id())),
        "names the other process: {text}"
    );
    assert!(
        text.contains(&dir.path().display().to_string()),
        "names the directory: {text}"
    );
    let lock_file = std::fs::read_to_string(dir.path().join("LOCK")).unwrap();
    assert_eq!(lock_file.trim(), first.child.id().to_string());

    // The first one still serves, alone.
    assert_eq!(lock(&mut con, "dup", "b").unwrap(), None);
    assert!(first.stop().success());
    // Once it is gone the directory is free again.
    let mut third = Baton::spawn(dir.path(), &[], &[]);
    let mut con = third.conn();
    assert_eq!(owners(&mut con, "dup"), vec!["a".to_string()]);
}

#[test]
fn replay_never_gives_two_exclusive_holders() {
    let dir = tempfile::tempdir().unwrap();
    let deadline_ms = wall_ms() + 600_000;
    let grant = |owner: &'static str, token| Record::Grant {
        key: Bytes::from_static(b"dup"),
        owner: Bytes::from_static(owner.as_bytes()),
        hold: HoldKind::Exclusive,
        token,
        deadline_ms,
    };
    // What two servers sharing a directory used to write.
    let records = [grant("a", 10), grant("b", 11)];
    std::fs::write(
        dir.path().join("log.00000000000000000001"),
        log_file(&records),
    )
    .unwrap();
    let mut baton = Baton::spawn(dir.path(), &[], &[]);
    let mut con = baton.conn();
    assert_eq!(
        owners(&mut con, "dup"),
        vec!["b".to_string()],
        "the later grant wins"
    );
    assert_eq!(lock(&mut con, "dup", "c").unwrap(), None);
}

// 2. and 3. Replies wait for their sync; a failing disk never shows unpersisted state.

#[test]
fn a_protocol_error_after_a_grant_does_not_release_the_unsynced_token() {
    let dir = tempfile::tempdir().unwrap();
    let mut baton = Baton::spawn(
        dir.path(),
        &["--appendfsync", "always"],
        &[("BATON_TEST_FAULT", "fsync-fail-after:0")],
    );
    let mut stream = baton.raw();
    // A grant and a malformed frame in one write: the token must wait for its sync,
    // which fails, so no token ever leaves.
    std::io::Write::write_all(
        &mut stream,
        b"*4\r\n$4\r\nLOCK\r\n$1\r\nk\r\n$1\r\na\r\n$5\r\n60000\r\n*1\r\n$x\r\n",
    )
    .unwrap();
    let got = read_to_close(&mut stream);
    assert!(
        !got.contains(&b':'),
        "a token was sent before its sync: {:?}",
        String::from_utf8_lossy(&got)
    );
    let status = baton.exit(Duration::from_secs(20));
    assert!(!status.success(), "fail-stop under always");
    let text = baton.stderr();
    assert!(
        text.contains("Input/output error"),
        "logs the cause: {text}"
    );
}

#[test]
fn a_protocol_error_after_a_grant_replies_after_the_sync() {
    let dir = tempfile::tempdir().unwrap();
    let mut baton = Baton::spawn(dir.path(), &["--appendfsync", "always"], &[]);
    let mut stream = baton.raw();
    std::io::Write::write_all(
        &mut stream,
        b"*4\r\n$4\r\nLOCK\r\n$1\r\nk\r\n$1\r\na\r\n$5\r\n60000\r\n*1\r\n$x\r\n",
    )
    .unwrap();
    let got = String::from_utf8_lossy(&read_to_close(&mut stream)).into_owned();
    assert!(got.starts_with(':'), "the token: {got}");
    assert!(got.contains("-ERR Protocol error"), "then the error: {got}");
    // The acknowledged hold is on disk: it survives kill -9.
    let _ = baton.child.kill();
    let _ = baton.child.wait();
    let mut again = Baton::spawn(dir.path(), &[], &[]);
    let mut con = again.conn();
    assert_eq!(owners(&mut con, "k"), vec!["a".to_string()]);
}

#[test]
fn a_full_disk_under_always_stops_the_server_without_showing_the_hold() {
    let dir = tempfile::tempdir().unwrap();
    let mut baton = Baton::spawn(
        dir.path(),
        &["--appendfsync", "always"],
        &[("BATON_TEST_FAULT", "write-fail-after:0")],
    );
    let mut writer = baton.conn();
    let mut reader = baton.conn();
    assert!(lock(&mut writer, "lk", "a").is_err(), "no acknowledgement");
    // Whoever asks after it gets no answer showing the hold either.
    let seen = redis::cmd("LOCK.INFO")
        .arg("lk")
        .query::<redis::Value>(&mut reader);
    if let Ok(value) = &seen {
        assert!(
            !format!("{value:?}").contains("\"a\""),
            "an unpersisted hold was shown: {value:?}"
        );
    }
    let status = baton.exit(Duration::from_secs(20));
    assert!(!status.success());
    let text = baton.stderr();
    assert!(text.contains("No space left on device"), "{text}");

    let mut again = Baton::spawn(dir.path(), &[], &[]);
    let mut con = again.conn();
    assert!(owners(&mut con, "lk").is_empty());
    assert!(lock(&mut con, "lk", "b").unwrap().is_some());
}

#[test]
fn a_full_disk_under_everysec_refuses_writes_with_misconf_until_it_heals() {
    let dir = tempfile::tempdir().unwrap();
    let mut baton = Baton::spawn(
        dir.path(),
        &["--appendfsync", "everysec"],
        &[("BATON_TEST_FAULT", "write-fail-after:3,heal-after-ms:2500")],
    );
    // Grants until the injected failure: each is acknowledged, or the connection drops.
    let mut acked = Vec::new();
    let mut con = baton.conn();
    for i in 0..100 {
        let key = format!("before{i}");
        match lock(&mut con, &key, "a") {
            Ok(Some(_)) => acked.push(key),
            _ => break,
        }
    }
    assert!(acked.len() < 100, "the write failure came");
    let mut con = baton.conn();
    let misconf = "MISCONF Errors writing to the AOF file: No space left on device";
    eventually("MISCONF", Duration::from_secs(5), || {
        err_text(redis::cmd("PING").query::<String>(&mut con)) == misconf
    });
    assert_eq!(err_text(lock(&mut con, "lk", "b")), misconf);
    assert_eq!(
        err_text(
            redis::cmd("SET")
                .arg("s")
                .arg("v")
                .arg("NX")
                .arg("PX")
                .arg(10_000)
                .query::<Option<String>>(&mut con)
        ),
        misconf
    );
    // Refused means not applied.
    assert!(owners(&mut con, "lk").is_empty());
    assert_eq!(
        redis::cmd("EXISTS")
            .arg("s")
            .query::<i64>(&mut con)
            .unwrap(),
        0
    );
    // Reads still work.
    for key in &acked {
        assert_eq!(owners(&mut con, key), vec!["a".to_string()]);
    }

    // The disk heals: the retry writes what was held back, writes work again.
    eventually("writes work again", Duration::from_secs(10), || {
        matches!(lock(&mut con, "lk", "b"), Ok(Some(_)))
    });
    assert!(baton.stop().success());
    let mut again = Baton::spawn(dir.path(), &[], &[]);
    let mut con = again.conn();
    for key in &acked {
        assert_eq!(owners(&mut con, key), vec!["a".to_string()], "{key}");
    }
    assert_eq!(owners(&mut con, "lk"), vec!["b".to_string()]);
}

// 4. The restart delay covers every way to take a lock.

#[test]
fn the_restart_delay_refuses_set_nx_px_and_grants_inside_scripts() {
    let dir = tempfile::tempdir().unwrap();
    let mut baton = Baton::spawn(
        dir.path(),
        &["--persistence", "off", "--restart-delay-ms", "600000"],
        &[],
    );
    let mut con = baton.conn();
    let tryagain = "TRYAGAIN restart delay: grants are refused until the leases of before \
                    the restart have run out";
    assert_eq!(err_text(lock(&mut con, "k", "a")), tryagain);
    let set = redis::cmd("SET")
        .arg("r")
        .arg("v")
        .arg("NX")
        .arg("PX")
        .arg(10_000)
        .query::<Option<String>>(&mut con);
    assert_eq!(err_text(set), tryagain);
    let pexpire = redis::cmd("PEXPIRE")
        .arg("r")
        .arg(10_000)
        .query::<i64>(&mut con);
    assert_eq!(err_text(pexpire), tryagain);
    for script in [
        "return redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])",
        "return redis.call('LOCK', KEYS[1], ARGV[1], ARGV[2])",
    ] {
        let text = err_text(
            redis::cmd("EVAL")
                .arg(script)
                .arg(1)
                .arg("r")
                .arg("v")
                .arg(10_000)
                .query::<redis::Value>(&mut con),
        );
        assert!(text.contains("TRYAGAIN restart delay"), "{script}: {text}");
    }
    assert_eq!(
        redis::cmd("EXISTS")
            .arg("r")
            .query::<i64>(&mut con)
            .unwrap(),
        0
    );
    // A string without expiry is no lock.
    let plain: String = redis::cmd("SET").arg("p").arg("v").query(&mut con).unwrap();
    assert_eq!(plain, "OK");
}

// 5. A torn tail always recovers, in linear time.

#[test]
fn a_torn_tail_after_a_value_that_embeds_a_frame_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let mut baton = Baton::spawn(dir.path(), &["--appendfsync", "always"], &[]);
    let mut con = baton.conn();
    assert!(lock(&mut con, "kept", "a").unwrap().is_some());
    // A value holding a complete, valid frame, with more bytes after it.
    let mut value = vec![b'x'; 100];
    Record::Grant {
        key: Bytes::from_static(b"fake"),
        owner: Bytes::from_static(b"mallory"),
        hold: HoldKind::Exclusive,
        token: 1,
        deadline_ms: wall_ms() + 600_000,
    }
    .encode_frame(&mut value);
    value.extend_from_slice(&[b'y'; 1000]);
    let _: String = redis::cmd("SET")
        .arg("v")
        .arg(&value)
        .query(&mut con)
        .unwrap();
    let _ = baton.child.kill();
    let _ = baton.child.wait();

    // A crash cut the last write after the embedded frame.
    let log = newest_log(dir.path());
    let len = std::fs::metadata(&log).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(&log).unwrap();
    file.set_len(len - 500).unwrap();
    drop(file);

    let mut again = Baton::spawn(dir.path(), &[], &[]);
    let mut con = again.conn();
    assert_eq!(owners(&mut con, "kept"), vec!["a".to_string()]);
    assert_eq!(
        redis::cmd("EXISTS")
            .arg("v")
            .arg("fake")
            .query::<i64>(&mut con)
            .unwrap(),
        0
    );
}

// 6. The port opens once recovery is done.

#[test]
fn the_port_opens_only_after_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let n = 200_000u64;
    let records: Vec<Record> = (0..n)
        .map(|i| Record::StrSet {
            key: Bytes::from(format!("key:{i}")),
            value: Bytes::from_static(b"value"),
            deadline_ms: None,
        })
        .collect();
    std::fs::write(
        dir.path().join("log.00000000000000000001"),
        log_file(&records),
    )
    .unwrap();
    let mut baton = Baton::spawn(dir.path(), &[], &[]);
    let mut con = baton.conn();
    con.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    // The first connection accepted is served at once, with everything loaded.
    let started = Instant::now();
    let pong: String = redis::cmd("PING").query(&mut con).unwrap();
    assert_eq!(pong, "PONG");
    assert!(started.elapsed() < Duration::from_secs(2));
    let size: u64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(size, n);
}

// 7. Redis's expiry range for the compatibility layer.

#[test]
fn compatibility_expiries_take_redis_range() {
    let dir = tempfile::tempdir().unwrap();
    let mut baton = Baton::spawn(dir.path(), &["--max-ttl-ms", "1000"], &[]);
    let mut con = baton.conn();
    // node-redlock's own test duration: Math.floor(Number.MAX_SAFE_INTEGER / 10).
    let long: i64 = 900_719_925_474_099;
    let ok: String = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .arg("NX")
        .arg("PX")
        .arg(long)
        .query(&mut con)
        .unwrap();
    assert_eq!(ok, "OK");
    let pttl: i64 = redis::cmd("PTTL").arg("k").query(&mut con).unwrap();
    assert!(pttl > long - 10_000 && pttl <= long, "PTTL {pttl}");

    // node-redlock's acquire script.
    let acquire = r#"
        for i, key in ipairs(KEYS) do
          if redis.call("exists", key) == 1 then
            return 0
          end
        end
        for i, key in ipairs(KEYS) do
          redis.call("set", key, ARGV[1], "PX", ARGV[2])
        end
        return #KEYS
    "#;
    let got: i64 = redis::cmd("EVAL")
        .arg(acquire)
        .arg(2)
        .arg("r1")
        .arg("r2")
        .arg("value")
        .arg(long)
        .query(&mut con)
        .unwrap();
    assert_eq!(got, 2);
    let pttl: i64 = redis::cmd("PTTL").arg("r2").query(&mut con).unwrap();
    assert!(pttl > long - 10_000 && pttl <= long, "PTTL {pttl}");

    // Past a signed 64-bit ms: Redis's errors.
    let max = i64::MAX.to_string();
    let set = redis::cmd("SET")
        .arg("o")
        .arg("v")
        .arg("PX")
        .arg(&max)
        .query::<String>(&mut con);
    assert_eq!(err_text(set), "ERR invalid expire time in 'set' command");
    let ex = redis::cmd("SET")
        .arg("o")
        .arg("v")
        .arg("EX")
        .arg(i64::MAX / 999)
        .query::<String>(&mut con);
    assert_eq!(err_text(ex), "ERR invalid expire time in 'set' command");
    let expire = redis::cmd("EXPIRE")
        .arg("k")
        .arg(&max)
        .query::<i64>(&mut con);
    assert_eq!(
        err_text(expire),
        "ERR invalid expire time in 'expire' command"
    );
    let pexpire = redis::cmd("PEXPIRE")
        .arg("k")
        .arg(&max)
        .query::<i64>(&mut con);
    assert_eq!(
        err_text(pexpire),
        "ERR invalid expire time in 'pexpire' command"
    );
    // An absolute time up to i64::MAX ms is fine.
    let at: i64 = redis::cmd("PEXPIREAT")
        .arg("k")
        .arg(&max)
        .query(&mut con)
        .unwrap();
    assert_eq!(at, 1);
    // --max-ttl-ms still bounds native leases.
    assert_eq!(
        err_text(
            redis::cmd("LOCK")
                .arg("l")
                .arg("o")
                .arg(2000)
                .query::<i64>(&mut con)
        ),
        "ERR invalid ttl"
    );
    // Long expiries survive a restart.
    assert!(baton.stop().success());
    let mut again = Baton::spawn(dir.path(), &[], &[]);
    let mut con = again.conn();
    let pttl: i64 = redis::cmd("PTTL").arg("r1").query(&mut con).unwrap();
    assert!(pttl > long - 60_000 && pttl <= long, "PTTL {pttl}");
}

// 8. Private files.

#[test]
fn data_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("data");
    let mut baton = Baton::spawn(&dir, &[], &[]);
    let mut con = baton.conn();
    assert!(lock(&mut con, "k", "a").unwrap().is_some());
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700, "the directory");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
    }
}
