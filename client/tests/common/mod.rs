//! Starts the real baton server binary for the client's tests.
//!
//! The binary is `$BATON_BIN` if set, otherwise the workspace's `target/<profile>/baton`,
//! built first with `cargo build -p baton --bin baton` (once per test process). Each server
//! listens on 127.0.0.1, port 0 (the server picks a free one and logs it); a restart reuses
//! the port the server had.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// The server binary, built once per test process.
pub fn binary() -> &'static PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        if let Some(path) = std::env::var_os("BATON_BIN") {
            return PathBuf::from(path);
        }
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--quiet", "-p", "baton", "--bin", "baton"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build for the server");
        assert!(status.success(), "cargo build -p baton failed");
        // This test runs as target/<profile>/deps/<name>; the server is target/<profile>/baton.
        let exe = std::env::current_exe().expect("test executable path");
        let profile_dir = exe
            .parent()
            .and_then(|deps| deps.parent())
            .expect("target/<profile>/deps");
        profile_dir.join("baton")
    })
}

/// A running baton process; dropping it kills the server.
pub struct Server {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Server {
    /// Starts a server with persistence off on a free port.
    pub fn start() -> Server {
        Server::start_on(0, &[])
    }

    /// Starts a server on `port` (0: a free one) with persistence off and `extra` flags.
    pub fn start_on(port: u16, extra: &[&str]) -> Server {
        let mut child = Command::new(binary())
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--persistence", "off"])
            .args(extra)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start baton");
        let (tx, rx) = std::sync::mpsc::channel();
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { return };
                    if let Some(addr) = ready_addr(&line) {
                        let _ = tx.send(addr);
                    }
                }
            });
        }
        let addr = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("baton logged `baton ready addr=...`");
        Server { child, addr }
    }

    /// The URL for [`baton_client::Client::connect`].
    pub fn url(&self) -> String {
        format!("redis://{}/", self.addr)
    }

    /// A plain redis connection (for an operator's commands such as DEL).
    pub fn admin(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .expect("url")
            .get_connection()
            .expect("connect")
    }

    /// Kills the server and starts a new one (persistence off: it forgets every hold) on
    /// the same port.
    pub fn restart(&mut self) {
        self.stop();
        // The server sets SO_REUSEADDR, so the port is free again at once.
        *self = Server::start_on(self.addr.port(), &[]);
    }

    /// Kills the server (it does not come back until [`Server::restart`]).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The address in a `baton ready addr=127.0.0.1:PORT` log line.
fn ready_addr(line: &str) -> Option<SocketAddr> {
    if !line.contains("baton ready") {
        return None;
    }
    let rest = &line[line.find("addr=")? + "addr=".len()..];
    let end = rest.find(|c: char| c.is_whitespace()).unwrap_or(rest.len());
    rest[..end].parse().ok()
}
