//! docs/protocol.md "Durability contract": holds and tokens survive a restart (graceful, and
//! kill -9 of the real binary), expired holds do not come back.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use baton::config::{Config, Switch};
use common::{eventually, info_field, lock, TestServer};

fn persistent(dir: &std::path::Path) -> Config {
    Config {
        persistence: Switch::On,
        dir: dir.to_path_buf(),
        ..Config::ephemeral()
    }
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
    spawn_baton_with(dir, port, &["--appendfsync", fsync])
}

/// The real binary on `port` with data in `dir` and `extra` flags.
fn spawn_baton_with(dir: &std::path::Path, port: u16, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(["--port", &port.to_string(), "--dir"])
        .arg(dir)
        .args(extra)
        .args(["--log-level", "warn"])
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

/// `INFO persistence` as name -> value.
fn persistence_info(con: &mut redis::Connection) -> std::collections::HashMap<String, String> {
    let text: String = redis::cmd("INFO")
        .arg("persistence")
        .query(con)
        .expect("INFO persistence");
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

fn info_u64(info: &std::collections::HashMap<String, String>, field: &str) -> u64 {
    info.get(field)
        .unwrap_or_else(|| panic!("INFO persistence has no {field}: {info:?}"))
        .parse()
        .unwrap_or_else(|_| panic!("{field} is not a number: {info:?}"))
}

fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// `threads` connections LOCK fresh keys `{prefix}{t}:{i}` (owner `o`, 60 s) in a loop;
/// once `min_acked` grants were acknowledged the server is killed with SIGKILL while the
/// load still runs. Returns every acknowledged grant.
fn lock_load_then_kill(
    child: &mut Child,
    port: u16,
    prefix: &str,
    threads: usize,
    min_acked: usize,
) -> Vec<(String, i64)> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let count = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let mut con = connect(port);
            let count = count.clone();
            let prefix = prefix.to_string();
            std::thread::spawn(move || {
                let mut mine = Vec::new();
                for i in 0.. {
                    let key = format!("{prefix}{t}:{i}");
                    match redis::cmd("LOCK")
                        .arg(&key)
                        .arg("o")
                        .arg(60_000)
                        .query::<Option<i64>>(&mut con)
                    {
                        Ok(Some(token)) => {
                            mine.push((key, token));
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(None) => panic!("{key} is fresh, yet not granted"),
                        Err(_) => break, // the server is gone
                    }
                }
                mine
            })
        })
        .collect();
    eventually("load acknowledged", Duration::from_secs(10), || {
        count.load(Ordering::Relaxed) >= min_acked
    });
    child.kill().unwrap();
    child.wait().unwrap();
    handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect()
}

/// Sequential grants of fresh keys `{prefix}{i}` on one connection.
fn lock_batch(con: &mut redis::Connection, prefix: &str, n: usize) -> Vec<(String, i64)> {
    (0..n)
        .map(|i| {
            let key = format!("{prefix}{i}");
            let token = lock(con, &key, "o", 60_000).expect("fresh key granted");
            (key, token)
        })
        .collect()
}

fn max_token(acked: &[(String, i64)]) -> i64 {
    acked.iter().map(|(_, t)| *t).max().expect("some grants")
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn everysec_keeps_synced_grants_and_never_reuses_tokens_after_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = spawn_baton(dir.path(), port, "everysec");
    let mut con = connect(port);
    assert_eq!(
        persistence_info(&mut con)["appendfsync"],
        "everysec",
        "the policy under test"
    );
    let early = lock_batch(&mut con, "early", 40);
    // Wait until a sync covers the first batch: its records are written (durable_lsn), and
    // a sync completed after that was observed. The writer publishes durable_lsn after the
    // batch's own sync (if any), so a later sync (count and time) came after the write.
    let appended = info_u64(&persistence_info(&mut con), "log_appended_lsn");
    let mut written_at = (0, 0);
    eventually("first batch written", Duration::from_secs(5), || {
        let info = persistence_info(&mut con);
        written_at = (wall_ms(), info_u64(&info, "log_syncs"));
        info_u64(&info, "log_durable_lsn") >= appended
    });
    eventually(
        "a sync after the first batch",
        Duration::from_secs(5),
        || {
            let info = persistence_info(&mut con);
            info_u64(&info, "log_syncs") > written_at.1
                && info_u64(&info, "last_sync_unix_ms") > written_at.0
        },
    );
    drop(con);
    let late = lock_load_then_kill(&mut child, port, "late", 4, 200);

    let mut child = spawn_baton(dir.path(), port, "everysec");
    let mut con = connect(port);
    for (key, token) in &early {
        assert_eq!(
            holder_token(&mut con, key),
            Some(*token),
            "{key} was synced before the crash, yet lost"
        );
        assert_eq!(
            lock(&mut con, key, "intruder", 1_000),
            None,
            "{key} granted twice"
        );
    }
    // Nothing is promised about `late` (the last second), except its tokens.
    let high = max_token(&early).max(max_token(&late));
    let next = lock(&mut con, "fresh", "o", 1_000).unwrap();
    assert!(
        next > high,
        "token {next} after the restart is not above {high} acknowledged before"
    );
    kill(&mut child);
}

#[test]
fn appendfsync_no_restarts_and_never_reuses_tokens_after_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = spawn_baton(dir.path(), port, "no");
    let acked = lock_load_then_kill(&mut child, port, "k", 4, 200);

    let mut child = spawn_baton(dir.path(), port, "no");
    let mut con = connect(port);
    assert_eq!(
        redis::cmd("PING").query::<String>(&mut con).unwrap(),
        "PONG"
    );
    let high = max_token(&acked);
    let next = lock(&mut con, "fresh", "o", 1_000).expect("serves grants");
    assert!(next > high, "token {next} not above {high}");
    let unlocked: i64 = redis::cmd("UNLOCK")
        .arg("fresh")
        .arg("o")
        .query(&mut con)
        .unwrap();
    assert_eq!(unlocked, 1);
    kill(&mut child);
}

#[test]
fn persistence_off_forgets_holds_keeps_tokens_rising_and_delays_grants() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let off = ["--persistence", "off"];
    let mut child = spawn_baton_with(dir.path(), port, &off);
    let acked = lock_load_then_kill(&mut child, port, "k", 4, 200);

    const DELAY_MS: u64 = 300;
    let started = std::time::Instant::now();
    let mut child = spawn_baton_with(
        dir.path(),
        port,
        &[
            "--persistence",
            "off",
            "--restart-delay-ms",
            &DELAY_MS.to_string(),
        ],
    );
    let mut con = connect(port);
    let first = redis::cmd("LOCK")
        .arg("fresh")
        .arg("o")
        .arg(1_000)
        .query::<Option<i64>>(&mut con);
    let answered = started.elapsed();
    assert!(
        answered < Duration::from_millis(DELAY_MS),
        "too slow to see the delay: first answer {answered:?} after spawn"
    );
    let err = first.expect_err("a grant right after the start is refused");
    assert_eq!(err.code(), Some("TRYAGAIN"), "{err}");
    // Holds are forgotten (EXISTS is no grant, so it answers during the delay).
    let (key, _) = &acked[0];
    let exists: i64 = redis::cmd("EXISTS").arg(key).query(&mut con).unwrap();
    assert_eq!(exists, 0, "{key} came back with persistence off");

    let mut granted = None;
    eventually("grants after the delay", Duration::from_secs(5), || {
        granted = lock_or_tryagain(&mut con, key, "intruder", 1_000);
        granted.is_some()
    });
    assert!(
        started.elapsed() >= Duration::from_millis(DELAY_MS),
        "granted before the delay ran out"
    );
    let high = max_token(&acked);
    let next = granted.unwrap();
    assert!(
        next > high,
        "token {next} not above {high} (wall-clock seed)"
    );
    kill(&mut child);
}

/// LOCK that maps `-TRYAGAIN` to None and panics on any other error.
fn lock_or_tryagain(con: &mut redis::Connection, key: &str, owner: &str, ttl: u64) -> Option<i64> {
    match redis::cmd("LOCK")
        .arg(key)
        .arg(owner)
        .arg(ttl)
        .query::<Option<i64>>(con)
    {
        Ok(Some(t)) => Some(t),
        Ok(None) => panic!("{key} should be free"),
        Err(e) if e.code() == Some("TRYAGAIN") => None,
        Err(e) => panic!("unexpected error {e}"),
    }
}

/// What one connection of the mixed load got acknowledged.
#[derive(Default)]
struct Mixed {
    /// LOCK key owner 60 s.
    exclusive: Vec<(String, String, i64)>,
    /// RLOCK key owner 60 s.
    read: Vec<(String, String, i64)>,
    /// SEM.ACQUIRE sem owner 60 s (1 permit).
    permits: Vec<(String, i64)>,
    /// Exclusive keys whose REFRESH to 120 s was acknowledged.
    refreshed: std::collections::HashSet<String>,
    /// Exclusive keys whose REFRESH was sent but not answered.
    refresh_in_flight: Option<String>,
}

#[test]
fn appendfsync_always_keeps_every_kind_of_hold_and_refresh_after_kill_9() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = spawn_baton(dir.path(), port, "always");
    let count = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let mut con = connect(port);
            let count = count.clone();
            std::thread::spawn(move || {
                let mut m = Mixed::default();
                let owner = format!("o{t}");
                for i in 0.. {
                    let ok = match i % 4 {
                        0 => {
                            let key = format!("x{t}:{i}");
                            redis::cmd("LOCK")
                                .arg(&key)
                                .arg(&owner)
                                .arg(60_000)
                                .query::<Option<i64>>(&mut con)
                                .map(|t| m.exclusive.push((key, owner.clone(), t.unwrap())))
                        }
                        1 => {
                            let key = format!("r{t}:{i}");
                            redis::cmd("RLOCK")
                                .arg(&key)
                                .arg(&owner)
                                .arg(60_000)
                                .query::<Option<i64>>(&mut con)
                                .map(|t| m.read.push((key, owner.clone(), t.unwrap())))
                        }
                        2 => {
                            let sem_owner = format!("s{t}:{i}");
                            redis::cmd("SEM.ACQUIRE")
                                .arg("sem")
                                .arg(&sem_owner)
                                .arg(60_000)
                                .arg("CAPACITY")
                                .arg(1_000_000)
                                .query::<Option<i64>>(&mut con)
                                .map(|t| m.permits.push((sem_owner, t.unwrap())))
                        }
                        _ => {
                            let key = format!("x{t}:{}", i - 3);
                            m.refresh_in_flight = Some(key.clone());
                            redis::cmd("REFRESH")
                                .arg(&key)
                                .arg(&owner)
                                .arg(120_000)
                                .query::<i64>(&mut con)
                                .map(|r| {
                                    assert_eq!(r, 1, "{key} refreshed while held");
                                    m.refresh_in_flight = None;
                                    m.refreshed.insert(key);
                                })
                        }
                    };
                    if ok.is_err() {
                        break; // the server is gone
                    }
                    count.fetch_add(1, Ordering::Relaxed);
                }
                m
            })
        })
        .collect();
    eventually("load acknowledged", Duration::from_secs(10), || {
        count.load(Ordering::Relaxed) >= 300
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let acked: Vec<Mixed> = handles.into_iter().map(|h| h.join().unwrap()).collect();

    let mut child = spawn_baton(dir.path(), port, "always");
    let mut con = connect(port);
    let mut high = 0;
    let mut refreshed = 0;
    for m in &acked {
        for (key, _, token) in &m.exclusive {
            high = high.max(*token);
            assert_eq!(holder_token(&mut con, key), Some(*token), "{key} lost");
            assert_eq!(
                lock(&mut con, key, "intruder", 1_000),
                None,
                "{key} granted twice"
            );
            let pttl: i64 = redis::cmd("PTTL").arg(key).query(&mut con).unwrap();
            if m.refreshed.contains(key) {
                refreshed += 1;
                assert!(
                    (100_000..=120_000).contains(&pttl),
                    "{key}: refreshed to 120 s, yet PTTL {pttl}"
                );
            } else if m.refresh_in_flight.as_deref() != Some(key.as_str()) {
                assert!(
                    (40_000..=60_000).contains(&pttl),
                    "{key}: granted for 60 s, never refreshed, yet PTTL {pttl}"
                );
            }
        }
        for (key, owner, token) in &m.read {
            high = high.max(*token);
            let again: Option<i64> = redis::cmd("RLOCK")
                .arg(key)
                .arg(owner)
                .arg(60_000)
                .query(&mut con)
                .unwrap();
            assert_eq!(
                again,
                Some(*token),
                "{key}: the read hold is not back as it was"
            );
            assert_eq!(
                lock(&mut con, key, "intruder", 1_000),
                None,
                "{key}: writer admitted"
            );
        }
        for (owner, token) in &m.permits {
            high = high.max(*token);
            let again: Option<i64> = redis::cmd("SEM.ACQUIRE")
                .arg("sem")
                .arg(owner)
                .arg(60_000)
                .query(&mut con)
                .unwrap();
            assert_eq!(
                again,
                Some(*token),
                "{owner}'s permit is not back as it was"
            );
        }
    }
    assert!(refreshed > 0, "the load acknowledged no REFRESH");
    let permits: usize = acked.iter().map(|m| m.permits.len()).sum();
    let used = info_field(&mut con, "SEM.INFO", "sem", "used")
        .and_then(|v| redis::from_redis_value::<i64>(v).ok())
        .expect("semaphore back") as usize;
    // An unanswered SEM.ACQUIRE per connection may or may not have made it to disk.
    assert!(
        (permits..=permits + acked.len()).contains(&used),
        "{used} permits used, {permits} acknowledged"
    );
    let next = lock(&mut con, "fresh", "o", 1_000).unwrap();
    assert!(next > high, "token {next} not above {high}");
    kill(&mut child);
}

#[test]
fn a_lease_that_ran_out_while_the_server_was_down_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = spawn_baton(dir.path(), port, "always");
    let mut con = connect(port);
    let asked_short = std::time::Instant::now();
    assert!(lock(&mut con, "short", "a", 300).is_some());
    let asked_mid = std::time::Instant::now();
    assert!(lock(&mut con, "mid", "a", 3_000).is_some());
    let long = lock(&mut con, "long", "a", 60_000).unwrap();
    // Granted for 300 ms, refreshed to 60 s: the grant's own deadline passes while down,
    // the refreshed one does not (replay used to drop the grant and ignore the refresh).
    let kept = lock(&mut con, "refreshed", "a", 300).unwrap();
    let refreshed: i64 = redis::cmd("REFRESH")
        .arg("refreshed")
        .arg("a")
        .arg(60_000)
        .query(&mut con)
        .unwrap();
    assert_eq!(refreshed, 1);
    kill(&mut child);
    // Real time must pass for the lease to run out: measured from before the request.
    let wait = Duration::from_millis(350).saturating_sub(asked_short.elapsed());
    std::thread::sleep(wait);
    assert!(asked_short.elapsed() >= Duration::from_millis(350));

    let mut child = spawn_baton(dir.path(), port, "always");
    let mut con = connect(port);
    let exists: i64 = redis::cmd("EXISTS").arg("short").query(&mut con).unwrap();
    assert_eq!(exists, 0, "a 300 ms lease came back after 350 ms");
    let down = asked_mid.elapsed().as_millis() as i64;
    let pttl: i64 = redis::cmd("PTTL").arg("mid").query(&mut con).unwrap();
    assert!(down < 3_000, "restart too slow for this test ({down} ms)");
    // The remaining part only (a few ms of slack for wall-clock ms rounding).
    assert!(
        pttl > 0 && pttl <= 3_000 - down + 5,
        "PTTL {pttl} after {down} ms of a 3 s lease"
    );
    assert_eq!(holder_token(&mut con, "long"), Some(long));
    assert_eq!(
        holder_token(&mut con, "refreshed"),
        Some(kept),
        "a hold refreshed past its first lease was lost"
    );
    kill(&mut child);
}

/// The files of a data directory: (name, path).
fn data_files(dir: &std::path::Path) -> Vec<(String, std::path::PathBuf)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    files.sort();
    files
}

#[test]
fn sigterm_exits_0_and_every_cut_of_the_last_record_recovers_the_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = spawn_baton(dir.path(), port, "always");
    let mut con = connect(port);
    let tokens: Vec<i64> = (0..4)
        .map(|i| lock(&mut con, &format!("k{i}"), &format!("o{i}"), 60_000).unwrap())
        .collect();
    drop(con);
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert_eq!(
        exit.code(),
        Some(0),
        "SIGTERM must end baton cleanly: {exit:?}"
    );

    let files = data_files(dir.path());
    let logs: Vec<_> = files
        .iter()
        .filter(|(n, _)| n.starts_with("log."))
        .collect();
    assert_eq!(logs.len(), 1, "one log expected: {files:?}");
    let (log_name, log_path) = logs[0];
    let bytes = std::fs::read(log_path).unwrap();
    let (records, valid) = baton::persist::decode_log_bytes(&bytes).unwrap();
    assert_eq!(valid, bytes.len(), "a clean shutdown leaves no torn tail");
    assert!(
        matches!(records.last(), Some(baton::persist::Record::Grant { key, .. }) if key.as_ref() == b"k3"),
        "the last record is the last grant: {records:?}"
    );
    // Where the last frame starts: walk the frames.
    let mut at = baton::persist::HEADER_LEN;
    let mut last_start = at;
    while at < bytes.len() {
        last_start = at;
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        at += 8 + len;
    }
    assert_eq!(at, bytes.len());

    for cut in last_start..=bytes.len() {
        let copy = tempfile::tempdir().unwrap();
        for (name, path) in &files {
            std::fs::copy(path, copy.path().join(name)).unwrap();
        }
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(copy.path().join(log_name))
            .unwrap();
        f.set_len(cut as u64).unwrap();
        drop(f);
        let server = TestServer::start(persistent(copy.path()));
        let mut con = server.conn();
        for (i, token) in tokens.iter().enumerate().take(3) {
            assert_eq!(
                holder_token(&mut con, &format!("k{i}")),
                Some(*token),
                "cut at {cut}: k{i} of the complete prefix lost"
            );
        }
        let expect_last = (cut == bytes.len()).then_some(tokens[3]);
        assert_eq!(
            holder_token(&mut con, "k3"),
            expect_last,
            "cut at {cut} of {}: the last grant",
            bytes.len()
        );
        let next = lock(&mut con, "fresh", "o", 1_000).unwrap();
        assert!(next > tokens[3], "cut at {cut}: token {next} reused");
    }
}
