//! What a person sees when the real binary starts: a failed start is one readable line that
//! says what to do, and log lines written to a pipe or file carry no colour codes.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

/// A port is taken: the error names it and points at `--port`, in one plain line (after
/// the log line of the configuration).
#[test]
fn busy_port_names_the_port_and_the_flag() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(["--port", &port.to_string(), "--persistence", "off", "--dir"])
        .arg(dir.path())
        .stdin(Stdio::null())
        .output()
        .expect("run baton");
    assert!(!out.status.success(), "baton started on a busy port");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Besides the log line of the configuration printed at start, one line: the error.
    let (logs, errors): (Vec<&str>, Vec<&str>) =
        stderr.lines().partition(|l| l.contains(" INFO baton"));
    assert_eq!(errors.len(), 1, "one error line, got: {stderr}");
    assert!(logs.iter().all(|l| l.contains("configuration")), "{stderr}");
    let line = errors[0];
    assert!(
        line.starts_with("baton: cannot listen on 127.0.0.1:"),
        "{line}"
    );
    assert!(line.contains(&format!("port {port}")), "{line}");
    assert!(line.contains("--port"), "{line}");
    assert!(!line.contains("Bind {") && !line.contains("Os {"), "{line}");
    assert!(!line.contains('\x1b'), "colour codes: {line:?}");
}

/// stderr is a pipe here: the log lines must be plain text.
#[test]
fn log_lines_to_a_pipe_have_no_colour_codes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(["--port", "0", "--log-level", "info", "--dir"])
        .arg(dir.path())
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn baton");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let ready = line.contains("baton ready");
            lines.push(line);
            if ready {
                break;
            }
        }
        let _ = tx.send(lines);
    });
    let lines = rx.recv_timeout(Duration::from_secs(30));
    let _ = child.kill();
    let _ = child.wait();
    let lines = lines.expect("baton logged 'baton ready'");
    assert!(lines.iter().any(|l| l.contains("baton ready")), "{lines:?}");
    for line in &lines {
        assert!(!line.contains('\x1b'), "colour codes in {line:?}");
    }
}
