//! Engine tests with a fake command layer (an in-memory map with SET/GET/DEL/ECHO/PING and
//! Redis's error reply for anything else). Expected texts were checked against Redis 7.0.15.

use super::*;
use std::collections::HashMap;
use std::time::Instant;

#[derive(Default)]
struct FakeDb {
    map: HashMap<Bytes, Bytes>,
    calls: Vec<Vec<Bytes>>,
}

impl FakeDb {
    fn call(&mut self, args: Vec<Bytes>) -> Reply {
        self.calls.push(args.clone());
        let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
        match (name.as_str(), args.len()) {
            ("set", 3) => {
                self.map.insert(args[1].clone(), args[2].clone());
                Reply::ok()
            }
            ("get", 2) => self
                .map
                .get(&args[1])
                .map_or(Reply::Nil, |v| Reply::Bulk(v.clone())),
            ("del", 2) => Reply::Int(i64::from(self.map.remove(&args[1]).is_some())),
            ("echo", 2) => Reply::Bulk(args[1].clone()),
            ("ping", 1) => Reply::simple("PONG"),
            ("hello", _) => Reply::map_static(vec![("proto", Reply::Int(2))]),
            ("flag", _) => Reply::Bool(false),
            ("set" | "get" | "del" | "echo", _) => Reply::Error(RespError::fixed(
                "ERR Wrong number of args calling Redis command from script",
            )),
            _ => Reply::Error(RespError::fixed(
                "ERR Unknown Redis command called from script",
            )),
        }
    }
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn engine() -> Engine {
    Engine::new(EngineConfig::default())
}

fn eval_with(engine: &Engine, db: &mut FakeDb, src: &str, keys: &[&str], argv: &[&str]) -> Reply {
    let keys: Vec<Bytes> = keys.iter().map(|k| b(k)).collect();
    let argv: Vec<Bytes> = argv.iter().map(|a| b(a)).collect();
    engine.eval(Script::Source(src.as_bytes()), &keys, &argv, &mut |args| {
        db.call(args)
    })
}

fn eval(src: &str) -> Reply {
    eval_with(&engine(), &mut FakeDb::default(), src, &[], &[])
}

fn err(text: &str) -> Reply {
    Reply::Error(RespError::new(text.to_string()))
}

fn err_at(text: &str, src: &str, line: u32) -> Reply {
    err(&format!(
        "{text} script: {}, on @user_script:{line}.",
        sha1hex(src.as_bytes())
    ))
}

#[test]
fn keys_and_argv_are_one_based_string_tables() {
    let reply = eval_with(
        &engine(),
        &mut FakeDb::default(),
        "return {KEYS[1], ARGV[1], ARGV[2], #KEYS, #ARGV}",
        &["k"],
        &["a", "b"],
    );
    assert_eq!(
        reply,
        Reply::Array(vec![
            Reply::bulk_static("k"),
            Reply::bulk_static("a"),
            Reply::bulk_static("b"),
            Reply::Int(1),
            Reply::Int(2),
        ])
    );
}

#[test]
fn keys_and_argv_reset_per_call() {
    let engine = engine();
    let mut db = FakeDb::default();
    let src = "return #ARGV";
    assert_eq!(
        eval_with(&engine, &mut db, src, &[], &["a", "b"]),
        Reply::Int(2)
    );
    assert_eq!(eval_with(&engine, &mut db, src, &[], &[]), Reply::Int(0));
    // What a script does to KEYS and ARGV does not reach the next run, whether they stay
    // set between runs (small) or are cleared at once (large, or not UTF-8).
    let scribble = "KEYS[3] = 'x' KEYS.extra = 1 setmetatable(ARGV, {__index = function() return 'm' end}) return 1";
    let check = "return {#KEYS, #ARGV, KEYS.extra == nil, KEYS[3] == nil, ARGV[9] == nil, KEYS[1], ARGV[1]}";
    let fresh = |key: &str, arg: &str| {
        Reply::Array(vec![
            Reply::Int(1),
            Reply::Int(1),
            Reply::Int(1),
            Reply::Int(1),
            Reply::Int(1),
            Reply::Bulk(b(key)),
            Reply::Bulk(b(arg)),
        ])
    };
    let many: Vec<String> = (0..100).map(|i| i.to_string()).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    for (keys, argv) in [
        (&["k", "k2"][..], &["a"][..]),
        (&["k"][..], &many[..]),
        (&["\u{fffd}"][..], &["\u{fffd}"][..]),
    ] {
        assert_eq!(
            eval_with(&engine, &mut db, scribble, keys, argv),
            Reply::Int(1)
        );
        assert_eq!(
            eval_with(&engine, &mut db, check, &["k"], &["v"]),
            fresh("k", "v")
        );
    }
    let binary = [Bytes::from_static(b"\xff\x00")];
    assert_eq!(
        engine.eval(
            Script::Source(scribble.as_bytes()),
            &binary,
            &binary,
            &mut |args| db.call(args)
        ),
        Reply::Int(1)
    );
    assert_eq!(
        eval_with(&engine, &mut db, check, &["k"], &["v"]),
        fresh("k", "v")
    );
    assert_eq!(
        engine.eval(
            Script::Source(b"return {KEYS[1], ARGV[1]}"),
            &binary,
            &binary,
            &mut |args| db.call(args)
        ),
        Reply::Array(vec![
            Reply::Bulk(binary[0].clone()),
            Reply::Bulk(binary[0].clone())
        ])
    );
}

#[test]
fn binary_safe_args_and_values() {
    let engine = engine();
    let mut db = FakeDb::default();
    let token: Vec<u8> = (0u8..20).map(|i| i.wrapping_mul(37) ^ 0x80).collect();
    let keys = [Bytes::from_static(b"lock\x00\xff")];
    let argv = [Bytes::from(token.clone())];
    let src = b"redis.call('SET', KEYS[1], ARGV[1]) return redis.call('GET', KEYS[1])";
    let reply = engine.eval(Script::Source(src), &keys, &argv, &mut |a| db.call(a));
    assert_eq!(reply, Reply::Bulk(Bytes::from(token.clone())));
    assert_eq!(db.map.get(&keys[0]), Some(&Bytes::from(token)));
    // A script source with raw bytes in a string literal.
    let src = b"return '\xff\x00\xfe'";
    let reply = engine.eval(Script::Source(src), &[], &[], &mut |a| db.call(a));
    assert_eq!(reply, Reply::Bulk(Bytes::from_static(b"\xff\x00\xfe")));
}

#[test]
fn redlock_release_script() {
    let engine = engine();
    let mut db = FakeDb::default();
    let src = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";
    db.map.insert(b("k"), b("tok"));
    assert_eq!(
        eval_with(&engine, &mut db, src, &["k"], &["other"]),
        Reply::Int(0)
    );
    assert_eq!(
        eval_with(&engine, &mut db, src, &["k"], &["tok"]),
        Reply::Int(1)
    );
    assert!(db.map.is_empty());
    // GET of a missing key is false in Lua.
    assert_eq!(
        eval_with(&engine, &mut db, src, &["k"], &["tok"]),
        Reply::Int(0)
    );
}

#[test]
fn call_results_convert_to_lua() {
    assert_eq!(
        eval("local r = redis.call('set', 'a', 'b') return type(r) .. r.ok"),
        Reply::bulk_static("tableOK")
    );
    assert_eq!(eval("return redis.call('ping')"), Reply::simple("PONG"));
    assert_eq!(
        eval("return tostring(redis.call('get', 'missing'))"),
        Reply::bulk_static("false")
    );
    assert_eq!(
        eval("local m = redis.call('hello') return {m[1], m[2]}"),
        Reply::Array(vec![Reply::bulk_static("proto"), Reply::Int(2)])
    );
    assert_eq!(eval("return redis.call('flag')"), Reply::Int(0));
    assert_eq!(
        eval("redis.setresp(3) return tostring(redis.call('flag'))"),
        Reply::bulk_static("false")
    );
    assert_eq!(
        eval("redis.setresp(3) return redis.call('hello').map.proto"),
        Reply::Int(2)
    );
}

#[test]
fn numbers_become_arguments_like_redis() {
    let engine = engine();
    let mut db = FakeDb::default();
    let reply = eval_with(
        &engine,
        &mut db,
        "return {redis.call('echo', 3), redis.call('echo', 0.1), redis.call('echo', 1e20), redis.call('echo', 30000)}",
        &[],
        &[],
    );
    assert_eq!(
        reply,
        Reply::Array(vec![
            Reply::bulk_static("3"),
            Reply::bulk_static("0.10000000000000001"),
            Reply::bulk_static("1e+20"),
            Reply::bulk_static("30000"),
        ])
    );
}

#[test]
fn return_values_convert_to_replies() {
    assert_eq!(eval("return 3.99"), Reply::Int(3));
    assert_eq!(eval("return -3.99"), Reply::Int(-3));
    assert_eq!(eval("return 1e30"), Reply::Int(i64::MIN));
    assert_eq!(eval("return true"), Reply::Int(1));
    assert_eq!(eval("return false"), Reply::Nil);
    assert_eq!(eval("return nil"), Reply::Nil);
    assert_eq!(eval("return"), Reply::Nil);
    assert_eq!(eval("return {ok='FINE'}"), Reply::simple("FINE"));
    assert_eq!(eval("return {err='E1 bad'}"), err("E1 bad"));
    assert_eq!(
        eval("return {1, 2, nil, 4}"),
        Reply::Array(vec![Reply::Int(1), Reply::Int(2)])
    );
    assert_eq!(
        eval("return {1, {err='inner'}, {ok='fine'}}"),
        Reply::Array(vec![Reply::Int(1), err("inner"), Reply::simple("fine")])
    );
    assert_eq!(eval("return {double=1.5}"), Reply::Double(1.5));
    assert_eq!(eval("redis.setresp(3) return true"), Reply::Bool(true));
}

#[test]
fn error_and_status_reply_helpers() {
    assert_eq!(eval("return redis.error_reply('boom')"), err("ERR boom"));
    assert_eq!(eval("return redis.error_reply('MY boom')"), err("MY boom"));
    assert_eq!(eval("return redis.error_reply('-MY boom')"), err("MY boom"));
    assert_eq!(
        eval("return redis.status_reply('YES')"),
        Reply::simple("YES")
    );
    assert_eq!(
        eval("return redis.error_reply()"),
        err("ERR wrong number or type of arguments")
    );
    assert_eq!(
        eval("return redis.status_reply(1)"),
        err("ERR wrong number or type of arguments")
    );
}

#[test]
fn sha1hex_and_constants() {
    assert_eq!(
        eval("return redis.sha1hex('')"),
        Reply::bulk_static("da39a3ee5e6b4b0d3255bfef95601890afd80709")
    );
    assert_eq!(
        eval("return redis.sha1hex(1)"),
        Reply::bulk_static("356a192b7913b04c54574d18c28d46e6395428ab")
    );
    let src = "return redis.sha1hex()";
    assert_eq!(eval(src), err_at("ERR wrong number of arguments", src, 1));
    assert_eq!(
        eval("return {redis.LOG_DEBUG, redis.LOG_VERBOSE, redis.LOG_NOTICE, redis.LOG_WARNING}"),
        Reply::Array(vec![
            Reply::Int(0),
            Reply::Int(1),
            Reply::Int(2),
            Reply::Int(3)
        ])
    );
    assert_eq!(
        eval("return redis.log(redis.LOG_WARNING, 'hi', 1)"),
        Reply::Nil
    );
    let src = "redis.log(99, 'x')";
    assert_eq!(eval(src), err_at("ERR Invalid debug level.", src, 1));
    let src = "redis.log()";
    assert_eq!(
        eval(src),
        err_at("ERR redis.log() requires two arguments or more.", src, 1)
    );
    let src = "redis.setresp(4)";
    assert_eq!(
        eval(src),
        err_at("ERR RESP version must be 2 or 3.", src, 1)
    );
}

#[test]
fn raised_errors_carry_the_script_location() {
    let src = "error('boom')";
    assert_eq!(eval(src), err_at("ERR user_script:1: boom", src, 1));
    let src = "error({err='MYERR x'})";
    assert_eq!(eval(src), err_at("MYERR x", src, 1));
    let src = "error('x', 0)";
    assert_eq!(eval(src), err_at("ERR x", src, 1));
    let src = "error(nil)";
    assert_eq!(eval(src), err_at("ERR nil", src, 1));
    let src = "error('multi\\nline')";
    assert_eq!(eval(src), err_at("ERR user_script:1: multi line", src, 1));
    let src = "local function f() error('deep') end\nlocal x = 1\nf()";
    assert_eq!(eval(src), err_at("ERR user_script:1: deep", src, 1));
    let src = "local a = nil\nreturn a.b";
    assert_eq!(
        eval(src),
        err_at(
            "ERR user_script:2: attempt to index local 'a' (a nil value)",
            src,
            2
        )
    );
    let src = "error(redis.error_reply('word'))";
    assert_eq!(eval(src), err_at("ERR word", src, 1));
}

#[test]
fn call_raises_and_pcall_returns_errors() {
    let src = "return redis.call('nosuch')";
    assert_eq!(
        eval(src),
        err_at("ERR Unknown Redis command called from script", src, 1)
    );
    assert_eq!(
        eval("return redis.pcall('nosuch')"),
        err("ERR Unknown Redis command called from script")
    );
    assert_eq!(
        eval("local r = redis.pcall('nosuch') return r.err"),
        Reply::bulk_static("ERR Unknown Redis command called from script")
    );
    let src = "return redis.call()";
    assert_eq!(
        eval(src),
        err_at(
            "ERR Please specify at least one argument for this redis lib call",
            src,
            1
        )
    );
    assert_eq!(
        eval("return redis.pcall()"),
        err("ERR Please specify at least one argument for this redis lib call")
    );
    let src = "return redis.call('echo', true)";
    assert_eq!(
        eval(src),
        err_at(
            "ERR Lua redis lib command arguments must be strings or integers",
            src,
            1
        )
    );
    let src = "return redis.call('echo', 'a', nil, 'b')";
    assert_eq!(
        eval(src),
        err_at(
            "ERR Lua redis lib command arguments must be strings or integers",
            src,
            1
        )
    );
    let src = "local x = 1\nreturn redis.call('set')";
    assert_eq!(
        eval(src),
        err_at(
            "ERR Wrong number of args calling Redis command from script",
            src,
            2
        )
    );
}

#[test]
fn lua_pcall_catches_call_errors_as_text() {
    assert_eq!(
        eval("local ok, e = pcall(redis.call, 'nosuch') return {tostring(ok), type(e), e}"),
        Reply::Array(vec![
            Reply::bulk_static("false"),
            Reply::bulk_static("string"),
            Reply::bulk_static("ERR Unknown Redis command called from script"),
        ])
    );
    assert_eq!(
        eval("local ok, e = pcall(function() error('x') end) return e"),
        Reply::bulk_static("user_script:1: x")
    );
    assert_eq!(
        eval("return {pcall(function() return 1, 2 end)}"),
        Reply::Array(vec![Reply::Int(1), Reply::Int(1), Reply::Int(2)])
    );
}

#[test]
fn compile_errors_and_noscript() {
    let engine = engine();
    assert_eq!(
        engine.load(b"return 1 +"),
        Err(RespError::new(
            "ERR Error compiling script (new function): user_script:1: unexpected symbol near '<eof>'"
        ))
    );
    let reply = engine.eval(Script::Source(b"return 1 +"), &[], &[], &mut |_| Reply::Nil);
    assert_eq!(
        reply,
        err("ERR Error compiling script (new function): user_script:1: unexpected symbol near '<eof>'")
    );
    assert!(!engine.exists(sha1hex(b"return 1 +").as_bytes()));
    let reply = engine.eval(Script::Sha(b"abc"), &[], &[], &mut |_| Reply::Nil);
    assert_eq!(reply, Reply::Error(NOSCRIPT));
    assert_eq!(
        NOSCRIPT.text(),
        "NOSCRIPT No matching script. Please use EVAL."
    );
    let reply = engine.eval(
        Script::Sha(sha1hex(b"return 1").as_bytes()),
        &[],
        &[],
        &mut |_| Reply::Nil,
    );
    assert_eq!(reply, Reply::Error(NOSCRIPT));
}

#[test]
fn bytecode_is_refused() {
    let engine = engine();
    assert_eq!(
        engine.load(b"\x1bLua\x51\x00"),
        Err(RespError::new(
            "ERR Error compiling script (new function): user_script:1: unexpected symbol near 'char(27)'"
        ))
    );
    assert_eq!(
        eval("return tostring(loadstring(string.dump(function() end)))"),
        Reply::bulk_static("nil")
    );
    assert_eq!(eval("return loadstring('return 5')()"), Reply::Int(5));
}

#[test]
fn script_load_exists_flush() {
    let engine = engine();
    let sha = engine.load(b"return ARGV[1]").expect("load");
    assert_eq!(sha, sha1hex(b"return ARGV[1]"));
    assert!(
        sha.len() == 40
            && sha
                .bytes()
                .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase())
    );
    assert!(engine.exists(sha.as_bytes()));
    assert!(engine.exists(sha.to_ascii_uppercase().as_bytes()));
    let reply = engine.eval(
        Script::Sha(sha.to_ascii_uppercase().as_bytes()),
        &[],
        &[b("x")],
        &mut |_| Reply::Nil,
    );
    assert_eq!(reply, Reply::bulk_static("x"));
    engine.flush();
    assert!(!engine.exists(sha.as_bytes()));
    let reply = engine.eval(Script::Sha(sha.as_bytes()), &[], &[], &mut |_| Reply::Nil);
    assert_eq!(reply, Reply::Error(NOSCRIPT));
}

#[test]
fn eval_caches_the_script() {
    let engine = engine();
    let src = b"return 42";
    let sha = sha1hex(src);
    assert!(!engine.exists(sha.as_bytes()));
    assert_eq!(
        engine.eval(Script::Source(src), &[], &[], &mut |_| Reply::Nil),
        Reply::Int(42)
    );
    assert!(engine.exists(sha.as_bytes()));
    assert_eq!(
        engine.eval(Script::Sha(sha.as_bytes()), &[], &[], &mut |_| Reply::Nil),
        Reply::Int(42)
    );
}

#[test]
fn eval_scripts_are_evicted_oldest_first_but_loaded_ones_stay() {
    let engine = Engine::new(EngineConfig {
        max_eval_scripts: 3,
        ..EngineConfig::default()
    });
    let pinned = engine.load(b"return 0").expect("load");
    let shas: Vec<String> = (1..=5)
        .map(|i| {
            let src = format!("return {i}");
            engine.eval(Script::Source(src.as_bytes()), &[], &[], &mut |_| {
                Reply::Nil
            });
            sha1hex(src.as_bytes())
        })
        .collect();
    assert!(engine.exists(pinned.as_bytes()));
    assert!(!engine.exists(shas[0].as_bytes()));
    assert!(!engine.exists(shas[1].as_bytes()));
    assert!(shas[2..].iter().all(|sha| engine.exists(sha.as_bytes())));
    // This thread still has the evicted scripts compiled; the shared cache decides.
    let evalsha =
        |sha: &str| engine.eval(Script::Sha(sha.as_bytes()), &[], &[], &mut |_| Reply::Nil);
    assert_eq!(evalsha(&shas[0]), Reply::Error(NOSCRIPT));
    assert_eq!(evalsha(&shas[2]), Reply::Int(3));
    // EVAL adds an evicted script back (evicting the oldest, shas[2]), even though this
    // thread had it compiled and had seen it before.
    assert_eq!(
        engine.eval(Script::Source(b"return 1"), &[], &[], &mut |_| Reply::Nil),
        Reply::Int(1)
    );
    assert_eq!(evalsha(&shas[0]), Reply::Int(1));
    assert_eq!(evalsha(&shas[2]), Reply::Error(NOSCRIPT));
    assert_eq!(evalsha(&pinned), Reply::Int(0));
}

#[test]
fn the_sandbox_hides_os_io_and_friends() {
    for name in [
        "os", "io", "debug", "loadfile", "dofile", "require", "package", "print", "getfenv",
        "setfenv", "newproxy", "module",
    ] {
        let src = format!("return type({name})");
        assert_eq!(
            eval(&src),
            err_at(
                &format!(
                    "ERR user_script:1: Script attempted to access nonexistent global variable '{name}'"
                ),
                &src,
                1
            ),
            "{name}"
        );
    }
    for name in [
        "string",
        "table",
        "math",
        "coroutine",
        "redis",
        "loadstring",
        "pcall",
        "unpack",
    ] {
        let src = format!("return type({name}) ~= nil");
        assert_eq!(eval(&src), Reply::Int(1), "{name}");
    }
    assert_eq!(eval("return ('abc'):upper()"), Reply::bulk_static("ABC"));
    assert_eq!(eval("return _G == _G._G"), Reply::Int(1));
    assert_eq!(
        eval("return string.format('%d', 7)"),
        Reply::bulk_static("7")
    );
}

#[test]
fn globals_and_libraries_are_read_only() {
    for src in [
        "x = 1",
        "string.foo = 1",
        "redis.call = nil",
        "KEYS = {}",
        "_G.y = 2",
    ] {
        assert_eq!(
            eval(src),
            err_at(
                "ERR user_script:1: Attempt to modify a readonly table",
                src,
                1
            ),
            "{src}"
        );
    }
    for src in [
        "rawset(_G, 'z', 1)",
        "setmetatable(_G, nil)",
        "rawset(string, 'x', 1)",
    ] {
        assert_eq!(
            eval(src),
            err_at("ERR Attempt to modify a readonly table", src, 1),
            "{src}"
        );
    }
    let src = "return y";
    assert_eq!(
        eval(src),
        err_at(
            "ERR user_script:1: Script attempted to access nonexistent global variable 'y'",
            src,
            1
        )
    );
    // Locals, KEYS contents and fresh tables are fine.
    assert_eq!(
        eval("local t = {} t.a = 1 KEYS[1] = 'x' return t.a"),
        Reply::Int(1)
    );
    // The VM is unharmed for the next script.
    assert_eq!(
        eval("return type(redis.call)"),
        Reply::bulk_static("function")
    );
}

#[test]
fn runaway_scripts_are_killed_and_the_vm_survives() {
    let engine = Engine::new(EngineConfig {
        time_limit: Duration::from_millis(50),
        ..EngineConfig::default()
    });
    let mut db = FakeDb::default();
    for src in [
        "while true do end",
        "while true do pcall(function() while true do end end) end",
        "while true do xpcall(function() while true do end end, function(e) return e end) end",
        "while true do coroutine.resume(coroutine.create(function() while true do end end)) end",
    ] {
        let reply = eval_with(&engine, &mut db, src, &[], &[]);
        let Reply::Error(e) = &reply else {
            panic!("{src}: {reply:?}")
        };
        assert!(
            e.text()
                .starts_with("ERR Script killed: exceeded the time limit of 50 ms script: "),
            "{src}: {}",
            e.text()
        );
        assert_eq!(
            eval_with(&engine, &mut db, "return redis.call('ping')", &[], &[]),
            Reply::simple("PONG")
        );
    }
}

#[test]
fn nested_eval_is_refused() {
    let engine = Arc::new(engine());
    let inner = engine.clone();
    let reply = engine.eval(
        Script::Source(b"return redis.pcall('eval')"),
        &[],
        &[],
        &mut |_| inner.eval(Script::Source(b"return 1"), &[], &[], &mut |_| Reply::Nil),
    );
    assert_eq!(reply, Reply::Error(NOT_FROM_SCRIPT));
}

#[test]
fn shebang_lines() {
    let src = "#!lua\nerror('x')";
    assert_eq!(eval(src), err_at("ERR user_script:2: x", src, 2));
    assert_eq!(eval("#!lua flags=no-writes\nreturn 1"), Reply::Int(1));
    assert_eq!(
        eval("#!lua flags=bogus\nreturn 1"),
        err("ERR Unexpected flag in script shebang: bogus")
    );
    assert_eq!(
        eval("#!perl\nreturn 1"),
        err("ERR Unexpected engine in script shebang: #!perl")
    );
}

#[test]
fn memory_limit_fails_the_script_not_the_server() {
    let engine = Engine::new(EngineConfig {
        memory_limit_bytes: 8 << 20,
        ..EngineConfig::default()
    });
    let mut db = FakeDb::default();
    let reply = eval_with(
        &engine,
        &mut db,
        "return #string.rep('x', 64 * 1024 * 1024)",
        &[],
        &[],
    );
    assert!(reply.is_error(), "{reply:?}");
    assert_eq!(
        eval_with(&engine, &mut db, "return 1", &[], &[]),
        Reply::Int(1)
    );
}

#[test]
fn small_replies_cannot_add_up_past_the_memory_limit() {
    // Small replies convert with the limit lifted while the VM is under it; a script that
    // keeps many of them must still stop near the limit, not at its next table growth.
    let limit = (8 << 20) + (512 << 10);
    let engine = Engine::new(EngineConfig {
        memory_limit_bytes: limit,
        ..EngineConfig::default()
    });
    let mut db = FakeDb::default();
    let n = 4000;
    let keys: Vec<Bytes> = (0..n).map(|i| b(&format!("k{i}"))).collect();
    for (i, key) in keys.iter().enumerate() {
        db.map
            .insert(key.clone(), Bytes::from(format!("{i:04000}")));
    }
    let src = "local t = {} for i = 1, #KEYS do t[i] = redis.call('get', KEYS[i]) end return #t";
    let reply = engine.eval(Script::Source(src.as_bytes()), &keys, &[], &mut |args| {
        db.call(args)
    });
    assert!(
        matches!(&reply, Reply::Error(e) if e.text().ends_with("not enough memory")),
        "{reply:?}"
    );
    // Every GET but the last (whose reply did not fit) was kept.
    let kept = db.calls.len() - 1;
    assert!(kept * 4000 <= limit, "{kept} replies of 4000 bytes kept");
}

#[test]
fn arguments_over_the_memory_limit_fail_the_run() {
    let engine = Engine::new(EngineConfig {
        memory_limit_bytes: 4 << 20,
        ..EngineConfig::default()
    });
    let big = [Bytes::from(vec![b'x'; 5 << 20])];
    let reply = engine.eval(Script::Source(b"return 1"), &[], &big, &mut |_| Reply::Nil);
    assert_eq!(
        reply,
        Reply::Error(RespError::new(format!(
            "ERR Error running script {}, not enough memory",
            sha1hex(b"return 1")
        )))
    );
    assert_eq!(
        engine.eval(Script::Source(b"return #ARGV"), &[], &[], &mut |_| {
            Reply::Nil
        }),
        Reply::Int(0)
    );
}

#[test]
fn split_keys_checks_numkeys() {
    let args = [b("1"), b("k"), b("a")];
    let (keys, argv) = split_keys(&args).expect("split");
    assert_eq!(keys, &[b("k")]);
    assert_eq!(argv, &[b("a")]);
    assert_eq!(split_keys(&[b("-1")]), Err(NEGATIVE_KEYS));
    assert_eq!(split_keys(&[b("2"), b("a")]), Err(TOO_MANY_KEYS));
    for bad in ["x", "+0", "01", " 1", "", "-"] {
        assert_eq!(
            split_keys(&[b(bad)]),
            Err(RespError::NOT_INTEGER),
            "{bad:?}"
        );
    }
    assert_eq!(
        split_keys(&[b("0")]).map(|(k, a)| (k.len(), a.len())),
        Ok((0, 0))
    );
}

#[test]
fn engine_is_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Engine>();
    let engine = Arc::new(engine());
    let sha = engine.load(b"return ARGV[1] .. '!'").expect("load");
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let engine = engine.clone();
            let sha = sha.clone();
            std::thread::spawn(move || {
                let arg = [b(&i.to_string())];
                engine.eval(Script::Sha(sha.as_bytes()), &[], &arg, &mut |_| Reply::Nil)
            })
        })
        .collect();
    for (i, handle) in handles.into_iter().enumerate() {
        assert_eq!(
            handle.join().expect("thread"),
            Reply::Bulk(Bytes::from(format!("{i}!")))
        );
    }
}

/// Cost of one EVALSHA of the Redlock release script with a trivial `call` (run by name:
/// `cargo test --release --lib lua::tests::eval_cost -- --ignored --nocapture`).
#[test]
#[ignore]
fn eval_cost() {
    let engine = engine();
    let src = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";
    let sha = engine.load(src.as_bytes()).unwrap();
    let keys = [b("k")];
    let argv = [b("v")];
    let n = 200_000;
    let start = std::time::Instant::now();
    for _ in 0..n {
        let mut call = |args: Vec<Bytes>| {
            if args[0].eq_ignore_ascii_case(b"get") {
                Reply::Bulk(b("v"))
            } else {
                Reply::Int(1)
            }
        };
        let r = engine.eval(Script::Sha(sha.as_bytes()), &keys, &argv, &mut call);
        assert_eq!(r, Reply::Int(1));
    }
    println!("eval: {:?} per call", start.elapsed() / n);
}

/// Like [`eval_cost`], with a fresh key and token per call as under load (every string is
/// new to the VM, so interning and the collector do their real work).
#[test]
#[ignore]
fn eval_cost_fresh_keys() {
    let engine = engine();
    let src = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";
    let sha = engine.load(src.as_bytes()).unwrap();
    let n = 200_000;
    let names: Vec<(Bytes, Bytes)> = (0..n)
        .map(|i| {
            (
                b(&format!("key:{}", i * 7919 % 1_000_003)),
                b(&format!("token-{i:016x}")),
            )
        })
        .collect();
    let start = std::time::Instant::now();
    for (key, token) in &names {
        let mut call = |args: Vec<Bytes>| {
            if args[0].eq_ignore_ascii_case(b"get") {
                Reply::Bulk(token.clone())
            } else {
                Reply::Int(1)
            }
        };
        let r = engine.eval(
            Script::Sha(sha.as_bytes()),
            std::slice::from_ref(key),
            std::slice::from_ref(token),
            &mut call,
        );
        assert_eq!(r, Reply::Int(1));
    }
    println!("eval with fresh keys: {:?} per call", start.elapsed() / n);
}

fn bulk(s: &str) -> Reply {
    Reply::Bulk(b(s))
}

#[test]
fn pattern_functions_keep_lua_5_1_results() {
    let cases: &[(&str, Reply)] = &[
        ("return {string.find('hello world', 'o w')}", Reply::Array(vec![Reply::Int(5), Reply::Int(7)])),
        ("return {string.find('a.b', '.', 1, true)}", Reply::Array(vec![Reply::Int(2), Reply::Int(2)])),
        ("return {string.find('abc', 'b', -1)}", Reply::Array(vec![])),
        ("return {string.find('abc', '', 10)}", Reply::Array(vec![Reply::Int(4), Reply::Int(3)])),
        ("return {string.find('key=val', '(%w+)=(%w+)')}", Reply::Array(vec![Reply::Int(1), Reply::Int(7), bulk("key"), bulk("val")])),
        ("return string.match('  trim  ', '^%s*(.-)%s*$')", bulk("trim")),
        ("return string.match('x = 12', '()=()')", Reply::Int(3)),
        ("return ('lock:42'):match('%d+')", bulk("42")),
        ("local t = {} for w in string.gmatch('one two  three', '%a+') do t[#t+1] = w end return t",
            Reply::Array(vec![bulk("one"), bulk("two"), bulk("three")])),
        ("local t = {} for k, v in string.gmatch('a=1, b=2', '(%w+)=(%w+)') do t[#t+1] = k .. v end return t",
            Reply::Array(vec![bulk("a1"), bulk("b2")])),
        ("return {string.gsub('hello world', 'o', '0')}", Reply::Array(vec![bulk("hell0 w0rld"), Reply::Int(2)])),
        ("return {string.gsub('hello world', '(%w+)', '<%1>')}", Reply::Array(vec![bulk("<hello> <world>"), Reply::Int(2)])),
        ("return {string.gsub('abc', '', '-')}", Reply::Array(vec![bulk("-a-b-c-"), Reply::Int(4)])),
        ("return {string.gsub('abc', '%w', '%0%0', 2)}", Reply::Array(vec![bulk("aabbc"), Reply::Int(2)])),
        ("return (string.gsub('$x $y', '%$(%w+)', {x = 'X'}))", bulk("X $y")),
        ("return (string.gsub('a b', '%w', function(c) return c:upper() end))", bulk("A B")),
        ("return (string.gsub('50%', '%%', '%%%%'))", bulk("50%%")),
        ("return (string.gsub('f(a(b)c)', '%b()', ''))", bulk("f")),
        ("return (string.gsub('THE (quick) fox', '%f[%a]%a+', 'W'))", bulk("W (W) W")),
        ("return string.rep('ab', 3)", bulk("ababab")),
        ("return string.rep('ab', 0)", bulk("")),
        ("local t = {3, 1, 2} table.sort(t) return t", Reply::Array(vec![Reply::Int(1), Reply::Int(2), Reply::Int(3)])),
        ("local t = {'b', 'a'} table.sort(t, function(a, b) return a > b end) return t", Reply::Array(vec![bulk("b"), bulk("a")])),
    ];
    for (src, want) in cases {
        assert_eq!(&eval(src), want, "{src}");
    }
    for (src, text) in [
        (
            "return string.find('a', '%')",
            "malformed pattern (ends with '%')",
        ),
        (
            "return string.find('a', '[a')",
            "malformed pattern (missing ']')",
        ),
        ("return string.find('a', '(a')", "unfinished capture"),
        ("return string.match('a', 'a)')", "invalid pattern capture"),
        (
            "return string.gsub('a', 'a', '%2')",
            "invalid capture index",
        ),
        (
            "return string.find('a', string.rep('a-', 300))",
            "pattern too complex",
        ),
        (
            "local t = {1, 'x'} table.sort(t) return t",
            "attempt to compare",
        ),
    ] {
        let reply = eval(src);
        let Reply::Error(e) = &reply else {
            panic!("{src}: {reply:?}")
        };
        assert!(e.text().contains(text), "{src}: {}", e.text());
    }
}

#[test]
fn c_functions_cannot_outrun_the_time_limit() {
    let engine = Engine::new(EngineConfig {
        time_limit: Duration::from_millis(100),
        ..EngineConfig::default()
    });
    let mut db = FakeDb::default();
    for src in [
        "return string.find(string.rep('a', 5000), '.-.-.-.-b')",
        "return string.match(string.rep('a', 5000), '.-.-.-.-b')",
        "for _ in string.gmatch(string.rep('a', 5000), '.-.-.-.-b') do end",
        "return string.gsub(string.rep('a', 5000), '.-.-.-.-b', '')",
        "return pcall(string.find, string.rep('a', 5000), '.-.-.-.-b')",
        "return #string.rep('', 1e15)",
        "local t = {} for i = 1, 200000 do t[i] = (i * 7919) % 200000 end while true do table.sort(t) end",
    ] {
        let started = Instant::now();
        let reply = eval_with(&engine, &mut db, src, &[], &[]);
        let took = started.elapsed();
        if src.contains("rep('', 1e15)") {
            assert_eq!(reply, Reply::Int(0), "{src}");
        } else {
            let Reply::Error(e) = &reply else {
                panic!("{src}: {reply:?}")
            };
            assert!(e.text().starts_with("ERR Script killed"), "{src}: {}", e.text());
        }
        assert!(took < Duration::from_secs(2), "{src} took {took:?}");
    }
}

#[test]
fn a_stopped_engine_kills_scripts_at_once() {
    let engine = Engine::new(EngineConfig::default());
    engine.stop();
    let started = Instant::now();
    let reply = eval_with(
        &engine,
        &mut FakeDb::default(),
        "while true do end",
        &[],
        &[],
    );
    let Reply::Error(e) = &reply else {
        panic!("{reply:?}")
    };
    assert!(
        e.text()
            .starts_with("ERR Script killed: the server is shutting down"),
        "{}",
        e.text()
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn the_memory_limit_is_shared_by_the_script_threads() {
    let engine = Engine::new(EngineConfig {
        memory_limit_bytes: 64 << 20,
        threads: 4,
        ..EngineConfig::default()
    });
    let mut db = FakeDb::default();
    // 32 MiB is over one VM's share (16 MiB) although under the total.
    let reply = eval_with(
        &engine,
        &mut db,
        "return #string.rep('x', 32 * 1024 * 1024)",
        &[],
        &[],
    );
    assert!(reply.is_error(), "{reply:?}");
    let reply = eval_with(
        &engine,
        &mut db,
        "return #string.rep('x', 1024 * 1024)",
        &[],
        &[],
    );
    assert_eq!(reply, Reply::Int(1 << 20));
}
