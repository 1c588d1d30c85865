//! docs/protocol.md "Compatibility layer", scripts: Redis's Lua <-> RESP conversion rules and
//! error texts, atomicity under concurrent clients, a runaway script stopped.

mod common;

use baton::config::Config;
use common::TestServer;
use redis::Value;

fn eval(
    con: &mut redis::Connection,
    script: &str,
    keys: &[&str],
    args: &[&str],
) -> redis::RedisResult<Value> {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(script).arg(keys.len());
    for k in keys {
        cmd.arg(*k);
    }
    for a in args {
        cmd.arg(*a);
    }
    cmd.query(con)
}

fn err(result: redis::RedisResult<Value>) -> String {
    let e = result.expect_err("an error reply");
    format!("{} {}", e.code().unwrap_or(""), e.detail().unwrap_or(""))
        .trim()
        .to_string()
}

#[test]
fn lua_values_convert_as_in_redis() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    assert_eq!(
        eval(&mut con, "return 3.99", &[], &[]).unwrap(),
        Value::Int(3)
    );
    assert_eq!(
        eval(&mut con, "return -3.99", &[], &[]).unwrap(),
        Value::Int(-3)
    );
    assert_eq!(
        eval(&mut con, "return 'x'", &[], &[]).unwrap(),
        Value::BulkString(b"x".to_vec())
    );
    assert_eq!(
        eval(&mut con, "return true", &[], &[]).unwrap(),
        Value::Int(1)
    );
    assert_eq!(
        eval(&mut con, "return false", &[], &[]).unwrap(),
        Value::Nil
    );
    assert_eq!(eval(&mut con, "return nil", &[], &[]).unwrap(), Value::Nil);
    assert_eq!(
        eval(&mut con, "return {1, 'a', {2}, nil, 5}", &[], &[]).unwrap(),
        Value::Array(vec![
            Value::Int(1),
            Value::BulkString(b"a".to_vec()),
            Value::Array(vec![Value::Int(2)])
        ])
    );
    assert_eq!(
        eval(&mut con, "return {ok='FINE'}", &[], &[]).unwrap(),
        Value::SimpleString("FINE".into())
    );
    assert_eq!(
        eval(&mut con, "return redis.status_reply('DONE')", &[], &[]).unwrap(),
        Value::SimpleString("DONE".into())
    );
    assert_eq!(
        err(eval(&mut con, "return {err='MYERR boom'}", &[], &[])),
        "MYERR boom"
    );
    assert_eq!(
        err(eval(&mut con, "return redis.error_reply('bad')", &[], &[])),
        "ERR bad"
    );
    // RESP -> Lua: a missing key is false, an integer a number, a status a table.
    assert_eq!(
        eval(
            &mut con,
            "return redis.call('GET', KEYS[1]) == false",
            &["nokey"],
            &[]
        )
        .unwrap(),
        Value::Int(1)
    );
    assert_eq!(
        eval(
            &mut con,
            "return type(redis.call('SET', KEYS[1], 'v'))",
            &["k"],
            &[]
        )
        .unwrap(),
        Value::BulkString(b"table".to_vec())
    );
    assert_eq!(
        eval(&mut con, "return redis.call('PTTL', KEYS[1])", &["k"], &[]).unwrap(),
        Value::Int(-1)
    );
    assert_eq!(
        eval(&mut con, "return redis.sha1hex('')", &[], &[]).unwrap(),
        Value::BulkString(b"da39a3ee5e6b4b0d3255bfef95601890afd80709".to_vec())
    );
    assert_eq!(
        eval(
            &mut con,
            "return {KEYS[1], ARGV[1], #KEYS, #ARGV}",
            &["a"],
            &["b", "c"]
        )
        .unwrap(),
        Value::Array(vec![
            Value::BulkString(b"a".to_vec()),
            Value::BulkString(b"b".to_vec()),
            Value::Int(1),
            Value::Int(2)
        ])
    );
}

#[test]
fn script_errors_read_as_redis_words_them() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    let _: () = redis::cmd("SET").arg("s").arg("v").query(&mut con).unwrap();
    let _: Option<i64> = redis::cmd("LOCK")
        .arg("l")
        .arg("o")
        .arg(10_000)
        .query(&mut con)
        .unwrap();
    let call_err = err(eval(
        &mut con,
        "return redis.call('GET', KEYS[1])",
        &["l"],
        &[],
    ));
    assert!(
        call_err.starts_with(
            "WRONGTYPE Operation against a key holding the wrong kind of value script: "
        ),
        "{call_err}"
    );
    let pcall = eval(
        &mut con,
        "local r = redis.pcall('GET', KEYS[1]); return r['err']",
        &["l"],
        &[],
    )
    .unwrap();
    assert_eq!(
        pcall,
        Value::BulkString(
            b"WRONGTYPE Operation against a key holding the wrong kind of value".to_vec()
        )
    );
    let boom = err(eval(&mut con, "error('boom')", &[], &[]));
    assert!(
        boom.starts_with("ERR user_script:1: boom script: "),
        "{boom}"
    );
    let noscript = err(redis::cmd("EVALSHA")
        .arg("0000000000000000000000000000000000000000")
        .arg(0)
        .query(&mut con));
    assert_eq!(noscript, "NOSCRIPT No matching script. Please use EVAL.");
    let too_many = err(redis::cmd("EVAL")
        .arg("return 1")
        .arg(3)
        .arg("a")
        .query(&mut con));
    assert_eq!(
        too_many,
        "ERR Number of keys can't be greater than number of args"
    );
    let neg = err(redis::cmd("EVAL").arg("return 1").arg(-1).query(&mut con));
    assert_eq!(neg, "ERR Number of keys can't be negative");
    let compile = err(eval(&mut con, "return +", &[], &[]));
    assert!(
        compile.starts_with("ERR Error compiling script"),
        "{compile}"
    );
    let os = err(eval(&mut con, "return os.time()", &[], &[]));
    assert!(os.contains("nonexistent global variable 'os'"), "{os}");
    // SCRIPT LOAD / EXISTS / FLUSH, and EVALSHA of a loaded script.
    let sha: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg("return ARGV[1]")
        .query(&mut con)
        .unwrap();
    let v: String = redis::cmd("EVALSHA")
        .arg(&sha)
        .arg(0)
        .arg("hi")
        .query(&mut con)
        .unwrap();
    assert_eq!(v, "hi");
    let exists: Vec<i64> = redis::cmd("SCRIPT")
        .arg("EXISTS")
        .arg(&sha)
        .arg("ff")
        .query(&mut con)
        .unwrap();
    assert_eq!(exists, [1, 0]);
    let _: () = redis::cmd("SCRIPT").arg("FLUSH").query(&mut con).unwrap();
    let exists: Vec<i64> = redis::cmd("SCRIPT")
        .arg("EXISTS")
        .arg(&sha)
        .query(&mut con)
        .unwrap();
    assert_eq!(exists, [0]);
}

#[test]
fn the_release_script_is_a_compare_and_delete() {
    let server = TestServer::default_config();
    let mut con = server.conn();
    let release = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";
    let token = [
        0u8, 255, 13, 10, 7, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
    ];
    let ok: Option<String> = redis::cmd("SET")
        .arg("r")
        .arg(&token[..])
        .arg("NX")
        .arg("PX")
        .arg(10_000)
        .query(&mut con)
        .unwrap();
    assert_eq!(ok.as_deref(), Some("OK"));
    let wrong: i64 = redis::cmd("EVAL")
        .arg(release)
        .arg(1)
        .arg("r")
        .arg("other")
        .query(&mut con)
        .unwrap();
    assert_eq!(wrong, 0);
    let right: i64 = redis::cmd("EVAL")
        .arg(release)
        .arg(1)
        .arg("r")
        .arg(&token[..])
        .query(&mut con)
        .unwrap();
    assert_eq!(right, 1);
    assert_eq!(
        redis::cmd("EXISTS")
            .arg("r")
            .query::<i64>(&mut con)
            .unwrap(),
        0
    );
}

#[test]
fn scripts_are_atomic_over_their_keys_under_concurrent_clients() {
    let server = TestServer::default_config();
    // A non-atomic read-modify-write would lose increments between GET and SET.
    let incr = "local v = tonumber(redis.call('GET', KEYS[1]) or '0'); redis.call('SET', KEYS[1], tostring(v + 1)); return v + 1";
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let mut con = server.conn();
            std::thread::spawn(move || {
                for _ in 0..200 {
                    let _: i64 = redis::cmd("EVAL")
                        .arg(incr)
                        .arg(1)
                        .arg("counter")
                        .query(&mut con)
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut con = server.conn();
    let v: String = redis::cmd("GET").arg("counter").query(&mut con).unwrap();
    assert_eq!(v, "800");
}

#[test]
fn a_runaway_script_is_stopped_and_the_server_keeps_serving() {
    let server = TestServer::start(Config {
        lua_time_limit_ms: 100,
        ..Config::ephemeral()
    });
    let mut con = server.conn();
    let mut other = server.conn();
    let stopper =
        std::thread::spawn(move || err(eval(&mut con, "while true do end", &["spin"], &[])));
    // Other keys keep working while the script spins.
    let pong: String = redis::cmd("PING").query(&mut other).unwrap();
    assert_eq!(pong, "PONG");
    let text = stopper.join().unwrap();
    assert!(
        text.starts_with("ERR Script killed: exceeded the time limit of 100 ms"),
        "{text}"
    );
    let _: Option<i64> = redis::cmd("LOCK")
        .arg("spin")
        .arg("o")
        .arg(1_000)
        .query(&mut other)
        .unwrap();
}
