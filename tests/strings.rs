//! docs/protocol.md "Compatibility layer", strings: SET with every option, GET, the
//! compare-and-delete family and the EXPIRE family, with Redis's reply shapes and errors.

mod common;

use common::TestServer;
use redis::Value;

fn q(con: &mut redis::Connection, args: &[&str]) -> redis::RedisResult<Value> {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(con)
}

fn ok(con: &mut redis::Connection, args: &[&str]) -> Value {
    q(con, args).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn err(con: &mut redis::Connection, args: &[&str]) -> String {
    let e = q(con, args).expect_err("an error reply");
    format!("{} {}", e.code().unwrap_or(""), e.detail().unwrap_or(""))
        .trim()
        .to_string()
}

fn int(con: &mut redis::Connection, args: &[&str]) -> i64 {
    match ok(con, args) {
        Value::Int(n) => n,
        other => panic!("{args:?}: {other:?}"),
    }
}

const OK: Value = Value::Okay;

#[test]
fn set_conditions_and_get_option() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    assert_eq!(ok(&mut con, &["SET", "k", "v1", "nx"]), OK);
    assert_eq!(ok(&mut con, &["SET", "k", "v2", "NX"]), Value::Nil);
    assert_eq!(ok(&mut con, &["SET", "k", "v2", "XX"]), OK);
    assert_eq!(ok(&mut con, &["SET", "missing", "v", "XX"]), Value::Nil);
    assert_eq!(
        ok(&mut con, &["SET", "k", "v3", "GET"]),
        Value::BulkString(b"v2".to_vec())
    );
    assert_eq!(ok(&mut con, &["SET", "new", "v", "GET"]), Value::Nil);
    assert_eq!(
        ok(&mut con, &["SET", "k", "v4", "NX", "GET"]),
        Value::BulkString(b"v3".to_vec())
    );
    assert_eq!(
        ok(&mut con, &["GET", "k"]),
        Value::BulkString(b"v3".to_vec()),
        "NX GET did not write"
    );
    assert_eq!(
        err(&mut con, &["SET", "k", "v", "NX", "XX"]),
        "ERR syntax error"
    );
    assert_eq!(
        err(&mut con, &["SET", "k", "v", "BOGUS"]),
        "ERR syntax error"
    );
    assert_eq!(
        err(&mut con, &["SET", "k"]),
        "ERR wrong number of arguments for 'set' command"
    );
}

#[test]
fn set_ifeq_and_ifne_compare_the_value() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    assert_eq!(
        ok(&mut con, &["SET", "k", "a", "IFEQ", "a"]),
        Value::Nil,
        "missing key"
    );
    ok(&mut con, &["SET", "k", "a"]);
    assert_eq!(ok(&mut con, &["SET", "k", "b", "IFEQ", "x"]), Value::Nil);
    assert_eq!(ok(&mut con, &["SET", "k", "b", "IFEQ", "a"]), OK);
    assert_eq!(ok(&mut con, &["SET", "k", "c", "IFNE", "b"]), Value::Nil);
    assert_eq!(ok(&mut con, &["SET", "k", "c", "IFNE", "z"]), OK);
    assert_eq!(
        ok(&mut con, &["GET", "k"]),
        Value::BulkString(b"c".to_vec())
    );
}

#[test]
fn set_expiry_options_in_any_order_and_case() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    ok(&mut con, &["SET", "a", "v", "px", "10000", "nx"]);
    let pttl = int(&mut con, &["PTTL", "a"]);
    assert!(pttl > 9_000 && pttl <= 10_000, "{pttl}");
    ok(&mut con, &["SET", "b", "v", "EX", "100"]);
    assert_eq!(int(&mut con, &["TTL", "b"]), 100);
    ok(&mut con, &["SET", "b", "w", "KEEPTTL"]);
    assert!(int(&mut con, &["TTL", "b"]) > 90, "KEEPTTL kept the expiry");
    ok(&mut con, &["SET", "b", "x"]);
    assert_eq!(
        int(&mut con, &["TTL", "b"]),
        -1,
        "a plain SET clears the expiry"
    );
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    ok(
        &mut con,
        &["SET", "c", "v", "PXAT", &(now_ms + 50_000).to_string()],
    );
    let pttl = int(&mut con, &["PTTL", "c"]);
    assert!(pttl > 40_000 && pttl <= 50_000, "{pttl}");
    ok(
        &mut con,
        &["SET", "d", "v", "EXAT", &(now_ms / 1000 + 100).to_string()],
    );
    assert!(int(&mut con, &["TTL", "d"]) > 90);
    ok(&mut con, &["SET", "e", "v", "PXAT", "1000"]);
    assert_eq!(
        int(&mut con, &["EXISTS", "e"]),
        0,
        "a deadline in the past deletes"
    );
    assert_eq!(
        err(&mut con, &["SET", "k", "v", "PX", "0"]),
        "ERR invalid expire time in 'set' command"
    );
    assert_eq!(
        err(&mut con, &["SET", "k", "v", "EX", "-5"]),
        "ERR invalid expire time in 'set' command"
    );
    assert_eq!(
        err(&mut con, &["SET", "k", "v", "PX", "abc"]),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        err(&mut con, &["SET", "k", "v", "PX", "10", "EX", "10"]),
        "ERR syntax error"
    );
    assert_eq!(
        err(&mut con, &["SET", "k", "v", "KEEPTTL", "PX", "10"]),
        "ERR syntax error"
    );
}

#[test]
fn values_are_binary_safe() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    let value: Vec<u8> = (0..=255u8).rev().chain(0..20).collect();
    let r: Value = redis::cmd("SET")
        .arg("bin")
        .arg(&value[..])
        .query(&mut con)
        .unwrap();
    assert_eq!(r, OK);
    let back: Vec<u8> = redis::cmd("GET").arg("bin").query(&mut con).unwrap();
    assert_eq!(back, value);
}

#[test]
fn compare_and_delete() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    ok(&mut con, &["SET", "k", "tok"]);
    assert_eq!(int(&mut con, &["DELIFEQ", "k", "other"]), 0);
    assert_eq!(int(&mut con, &["DELIFEQ", "k", "tok"]), 1);
    assert_eq!(int(&mut con, &["DELIFEQ", "k", "tok"]), 0);
    ok(&mut con, &["SET", "k", "tok"]);
    assert_eq!(int(&mut con, &["DELEX", "k", "IFNE", "tok"]), 0);
    assert_eq!(int(&mut con, &["DELEX", "k", "IFEQ", "x"]), 0);
    assert_eq!(int(&mut con, &["DELEX", "k", "IFEQ", "tok"]), 1);
    ok(&mut con, &["SET", "k", "tok"]);
    assert_eq!(int(&mut con, &["DELEX", "k"]), 1);
    assert_eq!(int(&mut con, &["DEL", "k", "k"]), 0);
    ok(&mut con, &["SET", "u", "1"]);
    assert_eq!(int(&mut con, &["UNLINK", "u", "nope"]), 1);
}

#[test]
fn expire_family_with_conditions() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    assert_eq!(int(&mut con, &["PEXPIRE", "missing", "100"]), 0);
    ok(&mut con, &["SET", "k", "v"]);
    assert_eq!(
        int(&mut con, &["PEXPIRE", "k", "100000", "XX"]),
        0,
        "no expiry yet"
    );
    assert_eq!(int(&mut con, &["PEXPIRE", "k", "100000", "NX"]), 1);
    assert_eq!(int(&mut con, &["PEXPIRE", "k", "200000", "NX"]), 0);
    assert_eq!(int(&mut con, &["PEXPIRE", "k", "50000", "GT"]), 0);
    assert_eq!(int(&mut con, &["PEXPIRE", "k", "300000", "GT"]), 1);
    assert_eq!(int(&mut con, &["EXPIRE", "k", "10", "LT"]), 1);
    assert_eq!(int(&mut con, &["TTL", "k"]), 10);
    assert_eq!(int(&mut con, &["PERSIST", "k"]), 1);
    assert_eq!(int(&mut con, &["PERSIST", "k"]), 0);
    assert_eq!(int(&mut con, &["PTTL", "k"]), -1);
    assert_eq!(
        int(&mut con, &["EXPIRE", "k", "100", "LT"]),
        1,
        "no expiry counts as infinite"
    );
    assert_eq!(int(&mut con, &["PEXPIREAT", "k", "1000"]), 1);
    assert_eq!(
        int(&mut con, &["EXISTS", "k"]),
        0,
        "a past deadline deletes"
    );
    ok(&mut con, &["SET", "k", "v"]);
    assert_eq!(int(&mut con, &["EXPIRE", "k", "-1"]), 1);
    assert_eq!(int(&mut con, &["EXISTS", "k"]), 0);
    assert_eq!(
        err(&mut con, &["EXPIRE", "k", "10", "NX", "XX"]),
        "ERR NX and XX, GT or LT options at the same time are not compatible"
    );
    assert_eq!(
        err(&mut con, &["EXPIRE", "k", "10", "GT", "LT"]),
        "ERR GT and LT options at the same time are not compatible"
    );
    assert_eq!(
        err(&mut con, &["EXPIRE", "k", "ten"]),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(int(&mut con, &["PTTL", "k"]), -2);
}

#[test]
fn an_equal_deadline_is_neither_greater_nor_less() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    ok(&mut con, &["SET", "k", "v"]);
    let at = "99999999999999";
    assert_eq!(int(&mut con, &["PEXPIREAT", "k", at]), 1);
    assert_eq!(int(&mut con, &["PEXPIREAT", "k", at, "GT"]), 0);
    assert_eq!(int(&mut con, &["PEXPIREAT", "k", at, "LT"]), 0);
    assert!(int(&mut con, &["PTTL", "k"]) > 0);
}

#[test]
fn a_string_expires_on_its_own() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    ok(&mut con, &["SET", "k", "v", "PX", "50"]);
    common::eventually("string expired", std::time::Duration::from_secs(5), || {
        int(&mut con, &["EXISTS", "k"]) == 0
    });
    assert_eq!(ok(&mut con, &["GET", "k"]), Value::Nil);
    assert_eq!(
        ok(&mut con, &["TYPE", "k"]),
        Value::SimpleString("none".into())
    );
}
