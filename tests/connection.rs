//! Connection and server commands that clients send on their own: HELLO, AUTH, CLIENT,
//! SELECT, INFO, CONFIG GET, COMMAND, TIME, RESET, QUIT.

mod common;

use baton::config::Config;
use common::TestServer;
use redis::Value;

fn q(con: &mut redis::Connection, args: &[&str]) -> redis::RedisResult<Value> {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(con)
}

fn err(con: &mut redis::Connection, args: &[&str]) -> String {
    let e = q(con, args).expect_err("an error reply");
    format!("{} {}", e.code().unwrap_or(""), e.detail().unwrap_or(""))
        .trim()
        .to_string()
}

fn text(v: Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(&b).into_owned(),
        Value::VerbatimString { text, .. } => text,
        Value::SimpleString(s) => s,
        other => panic!("not text: {other:?}"),
    }
}

#[test]
fn hello_3_answers_the_server_map() {
    let server = TestServer::default_config();
    let mut raw = server.raw();
    raw.send(b"HELLO 3\r\n");
    let got = String::from_utf8_lossy(&raw.read_exact_or_eof(120)).into_owned();
    assert!(got.starts_with("%7\r\n"), "{got}");
    for field in [
        "server",
        "baton",
        "version",
        "proto",
        ":3",
        "id",
        "mode",
        "standalone",
        "role",
        "master",
        "modules",
    ] {
        assert!(got.contains(field), "{field} in {got}");
    }
    raw.send(b"HELLO 4\r\n");
    let got = raw.read_exact_or_eof(10);
    assert!(
        got.starts_with(b"-NOPROTO"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    // RESP3 nil after HELLO 3.
    raw.send(b"GET missing\r\n");
    raw.expect(b"_\r\n");
}

#[test]
fn auth_is_required_when_a_password_is_set() {
    let server = TestServer::start(Config {
        requirepass: Some("secret".into()),
        ..Config::ephemeral()
    });
    let mut raw = server.raw();
    raw.send(b"PING\r\n");
    raw.expect(b"-NOAUTH Authentication required.\r\n");
    raw.send(b"AUTH wrong\r\n");
    raw.expect(b"-WRONGPASS invalid username-password pair or user is disabled.\r\n");
    raw.send(b"AUTH secret\r\nPING\r\n");
    raw.expect(b"+OK\r\n+PONG\r\n");
    let mut raw = server.raw();
    raw.send(b"HELLO 3 AUTH default secret SETNAME app\r\nCLIENT GETNAME\r\n");
    let got = String::from_utf8_lossy(&raw.read_exact_or_eof(140)).into_owned();
    assert!(got.starts_with("%7"), "{got}");
    assert!(got.ends_with("$3\r\napp\r\n"), "{got}");
    let client = redis::Client::open(format!("redis://:secret@{}/", server.addr)).unwrap();
    let mut con = client.get_connection().unwrap();
    let pong: String = redis::cmd("PING").query(&mut con).unwrap();
    assert_eq!(pong, "PONG");
}

#[test]
fn client_subcommands() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    assert_eq!(q(&mut con, &["CLIENT", "GETNAME"]).unwrap(), Value::Nil);
    assert_eq!(
        q(&mut con, &["CLIENT", "SETNAME", "worker-1"]).unwrap(),
        Value::Okay
    );
    assert_eq!(
        text(q(&mut con, &["CLIENT", "GETNAME"]).unwrap()),
        "worker-1"
    );
    assert_eq!(
        err(&mut con, &["CLIENT", "SETNAME", "has space"]),
        "ERR Client names cannot contain spaces, newlines or special characters."
    );
    let Value::Int(id) = q(&mut con, &["CLIENT", "ID"]).unwrap() else {
        panic!()
    };
    assert!(id > 0);
    assert_eq!(
        q(&mut con, &["CLIENT", "SETINFO", "LIB-NAME", "mylib"]).unwrap(),
        Value::Okay
    );
    assert_eq!(
        q(&mut con, &["CLIENT", "SETINFO", "lib-ver", "1.2"]).unwrap(),
        Value::Okay
    );
    let info = text(q(&mut con, &["CLIENT", "INFO"]).unwrap());
    assert!(
        info.contains(&format!("id={id} "))
            && info.contains("name=worker-1")
            && info.contains("lib-name=mylib"),
        "{info}"
    );
    let list = text(q(&mut con, &["CLIENT", "LIST"]).unwrap());
    assert!(list.contains("name=worker-1"), "{list}");
    let maint = err(
        &mut con,
        &[
            "CLIENT",
            "MAINT_NOTIFICATIONS",
            "ON",
            "moving-endpoint-type",
            "internal-fqdn",
        ],
    );
    assert_eq!(
        maint,
        "ERR unknown subcommand 'MAINT_NOTIFICATIONS'. Try CLIENT HELP."
    );
    let pong: String = redis::cmd("PING").query(&mut con).unwrap();
    assert_eq!(pong, "PONG", "the connection stays open");
}

#[test]
fn server_commands_answer_what_clients_parse() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    let info = text(q(&mut con, &["INFO"]).unwrap());
    for line in [
        "redis_version:7.2.0",
        "baton_version:",
        "redis_mode:standalone",
        "loading:0",
        "role:master",
        "process_id:",
        "tcp_port:",
        "uptime_in_seconds:",
        "connected_clients:",
    ] {
        assert!(info.contains(line), "{line}");
    }
    let persistence = text(q(&mut con, &["INFO", "persistence"]).unwrap());
    assert!(
        persistence.contains("loading:0") && !persistence.contains("redis_version"),
        "{persistence}"
    );
    let cfg = q(&mut con, &["CONFIG", "GET", "save"]).unwrap();
    assert_eq!(
        cfg,
        Value::Array(vec![
            Value::BulkString(b"save".to_vec()),
            Value::BulkString(Vec::new())
        ])
    );
    let cfg = q(&mut con, &["CONFIG", "GET", "appendonly"]).unwrap();
    assert_eq!(
        cfg,
        Value::Array(vec![
            Value::BulkString(b"appendonly".to_vec()),
            Value::BulkString(b"no".to_vec())
        ])
    );
    assert_eq!(
        q(&mut con, &["CONFIG", "GET", "nothing-like-this"]).unwrap(),
        Value::Array(vec![])
    );
    let Value::Array(time) = q(&mut con, &["TIME"]).unwrap() else {
        panic!()
    };
    assert_eq!(time.len(), 2);
    let Value::Int(count) = q(&mut con, &["COMMAND", "COUNT"]).unwrap() else {
        panic!()
    };
    assert!(count > 40);
    let Value::Array(infos) = q(&mut con, &["COMMAND", "INFO", "lock", "nosuch"]).unwrap() else {
        panic!()
    };
    assert_eq!(infos[1], Value::Nil);
    let Value::Array(lock) = &infos[0] else {
        panic!()
    };
    assert_eq!(lock[0], Value::BulkString(b"lock".to_vec()));
    assert_eq!(lock[1], Value::Int(-4));
    let docs = q(&mut con, &["COMMAND", "DOCS", "mlock"]).unwrap();
    let flat = format!("{docs:?}");
    assert!(
        flat.contains("summary") && flat.contains("numkeys") && flat.contains("WAIT"),
        "{flat}"
    );
    assert_eq!(q(&mut con, &["SELECT", "0"]).unwrap(), Value::Okay);
    assert_eq!(
        err(&mut con, &["SELECT", "1"]),
        "ERR DB index is out of range"
    );
    assert_eq!(text(q(&mut con, &["ECHO", "hi"]).unwrap()), "hi");
    assert_eq!(text(q(&mut con, &["PING", "msg"]).unwrap()), "msg");
}

#[test]
fn reset_and_quit() {
    let server = TestServer::default_config();
    let mut raw = server.raw();
    raw.send(b"HELLO 3\r\n");
    let _ = raw.read_exact_or_eof(100);
    raw.send(b"RESET\r\nGET missing\r\n");
    raw.expect(b"+RESET\r\n$-1\r\n");
    raw.send(b"QUIT\r\n");
    raw.expect(b"+OK\r\n");
    assert!(raw.is_closed());
}
