//! Issue 18, against the real binary: `--requirepass-file`, the count of failed AUTHs
//! (INFO and /metrics) and the per-connection slowdown after failures.

mod common;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::process::{resp, Baton};

const WRONGPASS: &str = "-WRONGPASS invalid username-password pair or user is disabled.\r\n";

/// A file holding `text`, in a directory that lives as long as the returned guard.
fn password_file(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("password");
    std::fs::write(&path, text).expect("write password file");
    (dir, path)
}

/// One reply line (simple string, error or integer).
fn line(stream: &mut BufReader<TcpStream>) -> String {
    let mut text = String::new();
    stream.read_line(&mut text).expect("reply");
    text
}

/// A connection to `baton` that reads replies line by line.
fn connect(baton: &Baton) -> BufReader<TcpStream> {
    BufReader::new(baton.raw())
}

fn send(stream: &mut BufReader<TcpStream>, args: &[&[u8]]) {
    stream.get_mut().write_all(&resp(args)).expect("send");
}

fn ask(stream: &mut BufReader<TcpStream>, args: &[&[u8]]) -> String {
    send(stream, args);
    line(stream)
}

/// The binary run to its exit with `flags` (and no inherited BATON_* setting).
fn run(flags: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_baton"));
    for (key, _) in std::env::vars() {
        if key.starts_with("BATON_") {
            cmd.env_remove(key);
        }
    }
    cmd.args(["--port", "0", "--persistence", "off"])
        .args(flags)
        .envs(envs.iter().copied())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run baton")
}

/// The lines of stderr that are not log lines.
fn error_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| !l.contains(" INFO "))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_password_file_gives_the_password() {
    let (_dir, path) = password_file("from-a-file\r\nthe second line is ignored\n");
    let baton = Baton::start(&["--requirepass-file", path.to_str().expect("utf-8 path")]);
    let mut con = connect(&baton);
    assert_eq!(
        ask(&mut con, &[b"PING"]),
        "-NOAUTH Authentication required.\r\n"
    );
    assert_eq!(ask(&mut con, &[b"AUTH", b"from-a-file\r"]), WRONGPASS);
    assert_eq!(ask(&mut con, &[b"AUTH", b"from-a-file"]), "+OK\r\n");
    assert_eq!(ask(&mut con, &[b"PING"]), "+PONG\r\n");

    // HELLO ... AUTH checks the same password.
    let mut other = connect(&baton);
    assert_eq!(
        ask(&mut other, &[b"HELLO", b"2", b"AUTH", b"default", b"wrong"]),
        WRONGPASS
    );
    let mut third = connect(&baton);
    send(
        &mut third,
        &[b"HELLO", b"2", b"AUTH", b"default", b"from-a-file"],
    );
    assert_eq!(
        line(&mut third),
        "*14\r\n",
        "HELLO's map, as an array in RESP2"
    );
}

#[test]
fn the_password_file_from_the_config_file() {
    let (dir, path) = password_file("in-config\n");
    let config = dir.path().join("baton.toml");
    std::fs::write(
        &config,
        format!(
            "requirepass-file = {:?}\n",
            path.to_str().expect("utf-8 path")
        ),
    )
    .expect("config file");
    let baton = Baton::start(&["--config", config.to_str().expect("utf-8 path")]);
    let mut con = connect(&baton);
    assert_eq!(ask(&mut con, &[b"AUTH", b"in-config"]), "+OK\r\n");
}

#[test]
fn requirepass_from_the_environment_conflicts_with_the_file() {
    let (_dir, path) = password_file("env-secret\n");
    // With --requirepass given as well (here by the environment), the start fails.
    let out = run(
        &[],
        &[
            ("BATON_REQUIREPASS_FILE", path.to_str().expect("utf-8 path")),
            ("BATON_REQUIREPASS", "other"),
        ],
    );
    assert!(!out.status.success(), "started with both passwords");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot be used with"), "{stderr}");
}

#[test]
fn requirepass_and_requirepass_file_conflict() {
    let (_dir, path) = password_file("a\n");
    let out = run(
        &[
            "--requirepass",
            "b",
            "--requirepass-file",
            path.to_str().expect("utf-8 path"),
        ],
        &[],
    );
    assert!(!out.status.success(), "started with both passwords");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("'--requirepass"), "{stderr}");
    assert!(stderr.contains("cannot be used with"), "{stderr}");
}

#[test]
fn a_missing_or_empty_password_file_stops_the_start_naming_it() {
    let (dir, empty) = password_file("\nsecond\n");
    let missing = dir.path().join("no-such-file");
    for path in [missing, empty] {
        let shown = path.to_str().expect("utf-8 path");
        let out = run(&["--requirepass-file", shown], &[]);
        assert!(!out.status.success(), "started without a password: {shown}");
        let errors = error_lines(&out);
        assert_eq!(errors.len(), 1, "one error line: {errors:?}");
        assert!(
            errors[0].starts_with(&format!("baton: cannot use --requirepass-file {shown}: ")),
            "{errors:?}"
        );
    }
}

/// `name:value` of INFO's text.
fn info_field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .and_then(|v| v.trim().parse().ok())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Kills the child when dropped.
struct Stop(std::process::Child);

impl Drop for Stop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn scrape(port: u16) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect http");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: baton\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    response
}

#[test]
fn failed_auths_are_counted_in_info_and_metrics() {
    // Both ports chosen here: Baton::start reads its port from the "ready" log line,
    // which the HTTP listener's line (naming /ready) would confuse.
    let (port, http) = (free_port(), free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(["--bind", "127.0.0.1", "--persistence", "off"])
        .args(["--requirepass", "s3cret"])
        .args([
            "--port",
            &port.to_string(),
            "--http-port",
            &http.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn baton");
    let _stop = Stop(child);
    let started = Instant::now();
    let stream = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(stream) => break stream,
            Err(e) if started.elapsed() > Duration::from_secs(30) => panic!("no baton: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    let raw = || {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        BufReader::new(stream)
    };
    drop(stream);
    let mut admin = raw();
    assert_eq!(ask(&mut admin, &[b"AUTH", b"s3cret"]), "+OK\r\n");
    let info = |con: &mut BufReader<TcpStream>| -> Option<u64> {
        send(con, &[b"INFO", b"stats"]);
        let header = line(con);
        let len: usize = header
            .trim_end()
            .strip_prefix('$')
            .and_then(|n| n.parse().ok())
            .expect("bulk reply");
        let mut body = vec![0; len + 2];
        con.read_exact(&mut body).expect("INFO body");
        info_field(&String::from_utf8_lossy(&body), "acl_access_denied_auth")
    };
    assert_eq!(info(&mut admin), Some(0));

    let mut a = raw();
    assert_eq!(ask(&mut a, &[b"AUTH", b"guess"]), WRONGPASS);
    let mut b = raw();
    assert_eq!(
        ask(&mut b, &[b"HELLO", b"3", b"AUTH", b"default", b"guess"]),
        WRONGPASS
    );
    assert_eq!(ask(&mut b, &[b"AUTH", b"nobody", b"s3cret"]), WRONGPASS);
    // A success is not a failure.
    assert_eq!(ask(&mut b, &[b"AUTH", b"s3cret"]), "+OK\r\n");
    assert_eq!(info(&mut admin), Some(3));

    let metrics = scrape(http);
    assert!(
        metrics
            .lines()
            .any(|l| l.trim() == "baton_auth_failures_total 3"),
        "{metrics}"
    );
}

#[test]
fn failures_slow_down_their_connection_only() {
    let baton = Baton::start(&["--requirepass", "s3cret"]);
    let mut hammer = connect(&baton);
    let started = Instant::now();
    for _ in 0..5 {
        assert_eq!(ask(&mut hammer, &[b"AUTH", b"guess"]), WRONGPASS);
    }
    // The replies after 0, 1, 2, 3 and 4 failures waited 0 + 100 + 200 + 400 + 800 ms.
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1500),
        "5 failures in {took:?}"
    );

    // The sixth attempt waits 1.6 s; meanwhile another client is served.
    send(&mut hammer, &[b"AUTH", b"guess"]);
    let mut other = connect(&baton);
    assert_eq!(ask(&mut other, &[b"AUTH", b"s3cret"]), "+OK\r\n");
    assert_eq!(ask(&mut other, &[b"PING"]), "+PONG\r\n");
    hammer.get_mut().set_nonblocking(true).expect("nonblocking");
    let mut byte = [0u8; 1];
    match hammer.get_mut().read(&mut byte) {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        other => panic!("the slowed-down reply came before another client's PING: {other:?}"),
    }
    hammer.get_mut().set_nonblocking(false).expect("blocking");
    assert_eq!(line(&mut hammer), WRONGPASS);

    // The right password still works on the slowed connection, and clears its count.
    assert_eq!(ask(&mut hammer, &[b"AUTH", b"s3cret"]), "+OK\r\n");
    let started = Instant::now();
    assert_eq!(ask(&mut hammer, &[b"AUTH", b"guess"]), WRONGPASS);
    assert_eq!(ask(&mut hammer, &[b"PING"]), "+PONG\r\n");
    assert!(
        started.elapsed() < Duration::from_millis(1600),
        "the count was not cleared by the success"
    );
}
