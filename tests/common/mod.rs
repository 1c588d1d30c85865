//! One helper that starts a real baton in-process on 127.0.0.1:0, plus small utilities.
#![allow(dead_code)]

pub mod process;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use baton::config::Config;

/// A running server; dropping it shuts the server down.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    /// Starts baton with `config` (its port is ignored: 127.0.0.1:0 is bound).
    pub fn start(config: Config) -> TestServer {
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let config = Arc::new(Config {
                    bind: "127.0.0.1".into(),
                    port: 0,
                    ..config
                });
                let listener = baton::server::bind(&config).await.expect("bind");
                addr_tx
                    .send(listener.local_addr().expect("addr"))
                    .expect("send addr");
                baton::server::run(listener, config, async {
                    let _ = stop_rx.await;
                })
                .await
                .expect("server");
            });
        });
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("server started");
        TestServer {
            addr,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// Starts baton with the test defaults (persistence off).
    pub fn default_config() -> TestServer {
        TestServer::start(Config::ephemeral())
    }

    /// A `redis` client for this server (RESP2).
    pub fn client(&self) -> redis::Client {
        redis::Client::open(format!("redis://{}/", self.addr)).expect("client")
    }

    /// A new RESP2 connection.
    pub fn conn(&self) -> redis::Connection {
        self.client().get_connection().expect("connect")
    }

    /// A new RESP3 connection.
    pub fn conn3(&self) -> redis::Connection {
        redis::Client::open(format!("redis://{}/?protocol=resp3", self.addr))
            .expect("client")
            .get_connection()
            .expect("connect")
    }

    /// A raw TCP connection for byte-level tests.
    pub fn raw(&self) -> RawConn {
        let stream = TcpStream::connect(self.addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        RawConn { stream }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A raw socket speaking bytes.
pub struct RawConn {
    /// The socket.
    pub stream: TcpStream,
}

impl RawConn {
    /// Sends bytes.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    /// Reads until `n` bytes came or the peer closed; returns what came.
    pub fn read_exact_or_eof(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while out.len() < n {
            match self.stream.read(&mut buf) {
                Ok(0) => break,
                Ok(k) => out.extend_from_slice(&buf[..k]),
                Err(_) => break,
            }
        }
        out
    }

    /// Reads until `expected` bytes arrived and checks them.
    pub fn expect(&mut self, expected: &[u8]) {
        let got = self.read_exact_or_eof(expected.len());
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(expected)
        );
    }

    /// Whether the server closed the connection (reads EOF within the timeout).
    pub fn is_closed(&mut self) -> bool {
        let mut buf = [0u8; 64];
        matches!(self.stream.read(&mut buf), Ok(0))
    }
}

/// Polls `check` until it returns true or `within` passes; panics with `what` then.
pub fn eventually(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    panic!("timed out waiting for: {what}");
}

/// The value of `field` in INFO `section` (`blocked_clients` of `clients`, say); panics
/// with the section's text when the field is missing.
pub fn info_value(con: &mut redis::Connection, section: &str, field: &str) -> String {
    let info: String = redis::cmd("INFO").arg(section).query(con).expect("INFO");
    info.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("{field} in INFO {section}: {info}"))
}

/// [`info_value`] of a numeric field.
pub fn info_int(con: &mut redis::Connection, section: &str, field: &str) -> i64 {
    let value = info_value(con, section, field);
    value
        .parse()
        .unwrap_or_else(|_| panic!("{field} is not a number: {value}"))
}

/// The `waiters` count of LOCK.INFO (RESP2 flat array), 0 when the key is free.
pub fn waiters(con: &mut redis::Connection, key: &str) -> i64 {
    info_field(con, "LOCK.INFO", key, "waiters")
        .and_then(|v| redis::from_redis_value::<i64>(v).ok())
        .unwrap_or(0)
}

/// One field of a LOCK.INFO / SEM.INFO reply.
pub fn info_field(
    con: &mut redis::Connection,
    cmd: &str,
    key: &str,
    field: &str,
) -> Option<redis::Value> {
    let value: redis::Value = redis::cmd(cmd).arg(key).query(con).expect(cmd);
    let items = match value {
        redis::Value::Array(items) => items,
        redis::Value::Map(pairs) => pairs.into_iter().flat_map(|(k, v)| [k, v]).collect(),
        _ => return None,
    };
    let mut it = items.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        if redis::from_redis_value::<String>(k).ok().as_deref() == Some(field) {
            return Some(v);
        }
    }
    None
}

/// The text of an error reply (`CODE detail`); panics on a success.
pub fn err_of<T: std::fmt::Debug>(result: redis::RedisResult<T>) -> String {
    match result {
        Err(e) => {
            let code = e.code().unwrap_or("");
            let detail = e.detail().unwrap_or("");
            format!("{code} {detail}").trim().to_string()
        }
        Ok(v) => panic!("expected an error, got {v:?}"),
    }
}

/// Runs `cmd` and returns its error text.
pub fn err_text(con: &mut redis::Connection, cmd: &mut redis::Cmd) -> String {
    err_of(cmd.query::<redis::Value>(con))
}

/// Runs `cmd` and returns its integer reply.
pub fn int(con: &mut redis::Connection, cmd: &mut redis::Cmd) -> i64 {
    cmd.query(con).expect("integer reply")
}

/// `LOCK key owner ttl` without WAIT.
pub fn lock(con: &mut redis::Connection, key: &str, owner: &str, ttl: u64) -> Option<i64> {
    redis::cmd("LOCK")
        .arg(key)
        .arg(owner)
        .arg(ttl)
        .query(con)
        .expect("LOCK")
}

/// `UNLOCK key owner`.
pub fn unlock(con: &mut redis::Connection, key: &str, owner: &str) -> i64 {
    redis::cmd("UNLOCK")
        .arg(key)
        .arg(owner)
        .query(con)
        .expect("UNLOCK")
}
