//! Issue 18, against the real binary: protected mode, the idle timeout and CLIENT KILL.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

mod common;
use common::process::Baton;

/// A connection to `baton` at `ip` (loopback, or this machine's outside address).
fn raw(baton: &Baton, ip: IpAddr) -> TcpStream {
    let stream = TcpStream::connect(SocketAddr::new(ip, baton.addr.port())).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream
}

const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

/// This machine's address on its default route, if it has one that is not loopback.
fn outside_ip() -> Option<IpAddr> {
    let socket = UdpSocket::bind("0.0.0.0:0").ok()?;
    // No packet is sent: connecting a UDP socket only picks the route and source address.
    socket.connect("192.0.2.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

/// Sends `request` and reads until the server closes (or 10 s pass).
fn exchange(stream: &mut TcpStream, request: &[u8]) -> String {
    let _ = stream.write_all(request);
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads one reply line (up to CRLF).
fn line(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut byte = [0u8; 1];
    while !out.ends_with(b"\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => out.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether the server closed `stream` (EOF or reset) within its read timeout.
fn closed(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    matches!(stream.read(&mut buf), Ok(0) | Err(_)) && {
        // An Err may be the timeout: tell it from a reset.
        !matches!(
            stream.read(&mut buf).map_err(|e| e.kind()),
            Err(std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
        )
    }
}

const PING: &[u8] = b"*1\r\n$4\r\nPING\r\n";

#[test]
fn protected_mode_serves_only_loopback_without_a_password() {
    let Some(outside) = outside_ip() else {
        eprintln!("skipped: this machine has no non-loopback address to connect from");
        return;
    };
    let baton = Baton::start(&["--bind", "0.0.0.0"]);
    let mut from_outside = raw(&baton, outside);
    let reply = exchange(&mut from_outside, PING);
    assert!(
        reply.starts_with("-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user."),
        "{reply}"
    );
    assert!(reply.contains("'--protected-mode no'"), "{reply}");
    assert!(reply.ends_with("from the outside.\r\n"), "{reply}");
    // Loopback is served.
    let mut local = raw(&baton, LOOPBACK);
    local.write_all(PING).expect("ping");
    assert_eq!(line(&mut local), "+PONG\r\n");

    // A password lifts protected mode: the outside client is asked to authenticate.
    let with_pass = Baton::start(&["--bind", "0.0.0.0", "--requirepass", "s3cret"]);
    let mut from_outside = raw(&with_pass, outside);
    from_outside.write_all(PING).expect("ping");
    assert_eq!(
        line(&mut from_outside),
        "-NOAUTH Authentication required.\r\n"
    );

    // So does --protected-mode no.
    let open = Baton::start(&["--bind", "0.0.0.0", "--protected-mode", "no"]);
    let mut from_outside = raw(&open, outside);
    from_outside.write_all(PING).expect("ping");
    assert_eq!(line(&mut from_outside), "+PONG\r\n");
}

#[test]
fn idle_clients_are_closed_after_the_timeout_but_blocked_ones_wait() {
    let baton = Baton::start(&["--bind", "127.0.0.1", "--timeout", "1"]);
    let mut idle = raw(&baton, LOOPBACK);
    idle.write_all(PING).expect("ping");
    assert_eq!(line(&mut idle), "+PONG\r\n");
    let since = Instant::now();
    assert!(closed(&mut idle), "an idle client stayed open");
    let took = since.elapsed();
    assert!(took >= Duration::from_millis(900), "closed after {took:?}");

    // A client blocked in WAIT longer than the timeout is not idle: it gets its grant.
    let mut holder = baton.conn();
    let _: i64 = redis::cmd("LOCK")
        .arg("k")
        .arg("a")
        .arg(30_000)
        .query(&mut holder)
        .expect("LOCK");
    let mut waiter = raw(&baton, LOOPBACK);
    waiter
        .write_all(
            b"*6\r\n$4\r\nLOCK\r\n$1\r\nk\r\n$1\r\nb\r\n$5\r\n30000\r\n$4\r\nWAIT\r\n$1\r\n0\r\n",
        )
        .expect("LOCK WAIT");
    std::thread::sleep(Duration::from_millis(2500));
    // The holder idled too and was closed: release from a new connection.
    let mut holder = baton.conn();
    let _: i64 = redis::cmd("UNLOCK")
        .arg("k")
        .arg("a")
        .query(&mut holder)
        .expect("UNLOCK");
    let grant = line(&mut waiter);
    assert!(grant.starts_with(':'), "the blocked client got {grant:?}");
}

#[test]
fn client_kill_by_id_addr_and_filters() {
    let baton = Baton::start(&["--bind", "127.0.0.1"]);
    let mut admin = baton.conn();
    let mut victim = raw(&baton, LOOPBACK);
    victim
        .write_all(b"*2\r\n$6\r\nCLIENT\r\n$2\r\nID\r\n")
        .expect("CLIENT ID");
    let id: u64 = line(&mut victim)
        .trim_start_matches(':')
        .trim()
        .parse()
        .expect("id");
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(id)
        .query(&mut admin)
        .expect("CLIENT KILL ID");
    assert_eq!(killed, 1);
    assert!(closed(&mut victim), "the killed client stayed open");
    let again: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(id)
        .query(&mut admin)
        .expect("CLIENT KILL ID");
    assert_eq!(again, 0);

    // The old form, by address.
    let mut victim = raw(&baton, LOOPBACK);
    victim.write_all(PING).expect("ping");
    assert_eq!(line(&mut victim), "+PONG\r\n");
    let addr = victim.local_addr().expect("addr").to_string();
    let ok: String = redis::cmd("CLIENT")
        .arg("KILL")
        .arg(&addr)
        .query(&mut admin)
        .expect("CLIENT KILL addr");
    assert_eq!(ok, "OK");
    assert!(closed(&mut victim));
    let err = redis::cmd("CLIENT")
        .arg("KILL")
        .arg(&addr)
        .query::<String>(&mut admin)
        .expect_err("gone");
    assert!(err.to_string().contains("No such client"), "{err}");

    // Filters combine; SKIPME yes (the default) spares the caller.
    let mut other = raw(&baton, LOOPBACK);
    other.write_all(PING).expect("ping");
    assert_eq!(line(&mut other), "+PONG\r\n");
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("USER")
        .arg("default")
        .query(&mut admin)
        .expect("CLIENT KILL USER");
    assert_eq!(killed, 1);
    assert!(closed(&mut other));
    let pong: String = redis::cmd("PING").query(&mut admin).expect("PING");
    assert_eq!(pong, "PONG");

    // Errors, in Redis's words.
    for (args, text) in [
        (
            vec!["KILL", "ID", "0"],
            "client-id should be greater than 0",
        ),
        (
            vec!["KILL", "ID", "x"],
            "client-id should be greater than 0",
        ),
        (vec!["KILL", "TYPE", "weird"], "Unknown client type 'weird'"),
        (vec!["KILL", "USER", "nobody"], "No such user 'nobody'"),
        (vec!["KILL", "ID", "1", "SKIPME"], "syntax error"),
        (vec!["KILL", "COLOUR", "red"], "syntax error"),
        (
            vec!["KILL"],
            "wrong number of arguments for 'client|kill' command",
        ),
    ] {
        let err = redis::cmd("CLIENT")
            .arg(&args)
            .query::<redis::Value>(&mut admin)
            .expect_err("error");
        assert!(err.to_string().contains(text), "{args:?}: {err}");
    }

    // SKIPME no: the caller is closed too, after its reply.
    let mut me = raw(&baton, LOOPBACK);
    me.write_all(b"*4\r\n$6\r\nCLIENT\r\n$4\r\nKILL\r\n$6\r\nSKIPME\r\n$2\r\nno\r\n")
        .expect("CLIENT KILL SKIPME no");
    let reply = line(&mut me);
    assert!(reply.starts_with(':'), "{reply}");
    assert!(closed(&mut me));
}

#[test]
fn a_killed_waiter_leaves_the_queue() {
    let baton = Baton::start(&["--bind", "127.0.0.1"]);
    let mut holder = baton.conn();
    let _: i64 = redis::cmd("LOCK")
        .arg("k")
        .arg("a")
        .arg(30_000)
        .query(&mut holder)
        .expect("LOCK");
    let lock_wait = |owner: &str| {
        format!("*6\r\n$4\r\nLOCK\r\n$1\r\nk\r\n$1\r\n{owner}\r\n$5\r\n30000\r\n$4\r\nWAIT\r\n$1\r\n0\r\n")
    };
    let mut first = raw(&baton, LOOPBACK);
    first
        .write_all(lock_wait("b").as_bytes())
        .expect("first waits");
    let mut second = raw(&baton, LOOPBACK);
    second
        .write_all(lock_wait("c").as_bytes())
        .expect("second waits");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let info: redis::Value = redis::cmd("LOCK.INFO")
            .arg("k")
            .query(&mut holder)
            .expect("LOCK.INFO");
        if format!("{info:?}").contains("\"c\"") || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let addr = first.local_addr().expect("addr").to_string();
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ADDR")
        .arg(&addr)
        .query(&mut holder)
        .expect("CLIENT KILL ADDR");
    assert_eq!(killed, 1);
    assert!(closed(&mut first));
    let _: i64 = redis::cmd("UNLOCK")
        .arg("k")
        .arg("a")
        .query(&mut holder)
        .expect("UNLOCK");
    let grant = line(&mut second);
    assert!(grant.starts_with(':'), "the second waiter got {grant:?}");
    let owner: redis::Value = redis::cmd("LOCK.INFO")
        .arg("k")
        .query(&mut holder)
        .expect("LOCK.INFO");
    let shown = format!("{owner:?}");
    assert!(
        shown.contains("\"c\"") && !shown.contains("\"b\""),
        "{shown}"
    );
}
