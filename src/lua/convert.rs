//! Conversions between Lua values and [`Reply`], following Redis 7's rules exactly.
//!
//! Owns three conversions, each a free function the engine calls:
//! - [`reply_to_lua`]: what `redis.call` / `redis.pcall` hand back to the script. In the
//!   default RESP2 mode a script sees what a RESP2 client would read: integer -> number,
//!   bulk -> string, nil bulk / nil array -> `false`, array (and set) -> 1-based table,
//!   map -> flat table, status -> `{ok=...}`, error -> `{err=...}`, boolean -> 1 / 0,
//!   double -> string. After `redis.setresp(3)` RESP3 shapes keep their type: nil -> `nil`,
//!   boolean -> boolean, double -> `{double=n}`, map -> `{map={k=v}}`, set -> `{set={k=true}}`,
//!   verbatim -> `{verbatim_string={format="txt", string=...}}`.
//! - [`lua_to_reply`]: what the script returns. number -> integer (truncated toward zero;
//!   NaN or out of range gives `i64::MIN` as Redis's C cast does), string -> bulk, `true` ->
//!   `:1` (RESP3 mode: `#t`), `false` -> nil (RESP3 mode: `#f`), nil -> nil, table with a
//!   string `err` -> error, with a string `ok` -> status, `double` (number) -> double,
//!   `big_number` (string) -> bulk, `map` / `set` (table) -> map / set, any other table ->
//!   array of `t[1..n]` stopping at the first nil. `\r` and `\n` in status and error texts
//!   become spaces. Functions, userdata and threads become nil.
//! - [`lua_to_args`]: the arguments of `redis.call`: strings are taken as bytes, numbers are
//!   printed like C's `%.17g` (Redis 7.0: `3` -> `"3"`, `0.1` -> `"0.10000000000000001"`);
//!   anything else is the error "Lua redis lib command arguments must be strings or integers".
//!
//! To extend: a new `Reply` variant needs an arm in both `reply_to_lua` functions; a new
//! table shape returned by scripts goes into `table_to_reply` before the array fallback.

use bytes::Bytes;
use mlua::{Lua, MultiValue, Table, Value};

use crate::error::RespError;
use crate::resp::reply::{format_double, Reply};

/// How deeply nested a returned table may be before the reply carries
/// `ERR reached lua stack limit` in its place (Redis's text; a self-referencing table must
/// not overflow the Rust stack).
pub const MAX_REPLY_DEPTH: usize = 1000;

/// The protocol a script reads replies in, set by `redis.setresp` (2 by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptResp {
    /// RESP2 conversions (the default for every script run).
    Resp2,
    /// RESP3 conversions, after `redis.setresp(3)`.
    Resp3,
}

/// Converts one command reply into the Lua value a script receives.
///
/// # Errors
/// Only Lua allocation failures.
pub fn reply_to_lua(lua: &Lua, reply: &Reply, resp: ScriptResp) -> mlua::Result<Value> {
    Ok(match reply {
        Reply::Simple(text) => status_table(lua, text)?,
        Reply::Error(err) => Value::Table(error_table(lua, err.text().as_bytes())?),
        Reply::Int(n) => Value::Number(*n as f64),
        Reply::Bulk(bytes) => Value::String(lua.create_string(bytes)?),
        Reply::Nil | Reply::NilArray => match resp {
            ScriptResp::Resp2 => Value::Boolean(false),
            ScriptResp::Resp3 => Value::Nil,
        },
        Reply::Array(items) => sequence(lua, items.iter(), resp)?,
        Reply::Set(items) => match resp {
            ScriptResp::Resp2 => sequence(lua, items.iter(), resp)?,
            ScriptResp::Resp3 => {
                let set = lua.create_table()?;
                for item in items {
                    set.raw_set(reply_to_lua(lua, item, resp)?, true)?;
                }
                wrap(lua, "set", Value::Table(set))?
            }
        },
        Reply::Map(pairs) => match resp {
            ScriptResp::Resp2 => sequence(
                lua,
                pairs.iter().flat_map(|(k, v)| [k, v].into_iter()),
                resp,
            )?,
            ScriptResp::Resp3 => {
                let map = lua.create_table()?;
                for (name, value) in pairs {
                    map.raw_set(
                        reply_to_lua(lua, name, resp)?,
                        reply_to_lua(lua, value, resp)?,
                    )?;
                }
                wrap(lua, "map", Value::Table(map))?
            }
        },
        Reply::Bool(b) => match resp {
            ScriptResp::Resp2 => Value::Number(if *b { 1.0 } else { 0.0 }),
            ScriptResp::Resp3 => Value::Boolean(*b),
        },
        Reply::Double(d) => match resp {
            ScriptResp::Resp2 => Value::String(lua.create_string(format_double(*d))?),
            ScriptResp::Resp3 => wrap(lua, "double", Value::Number(*d))?,
        },
        Reply::Verbatim(bytes) => match resp {
            ScriptResp::Resp2 => Value::String(lua.create_string(bytes)?),
            ScriptResp::Resp3 => {
                let inner = lua.create_table()?;
                inner.raw_set("format", "txt")?;
                inner.raw_set("string", lua.create_string(bytes)?)?;
                wrap(lua, "verbatim_string", Value::Table(inner))?
            }
        },
    })
}

/// `{err = text}`, the Lua shape of an error reply.
///
/// # Errors
/// Only Lua allocation failures.
pub fn error_table(lua: &Lua, text: &[u8]) -> mlua::Result<Table> {
    let table = lua.create_table()?;
    table.raw_set("err", lua.create_string(text)?)?;
    Ok(table)
}

fn status_table(lua: &Lua, text: &[u8]) -> mlua::Result<Value> {
    let table = lua.create_table()?;
    table.raw_set("ok", lua.create_string(text)?)?;
    Ok(Value::Table(table))
}

fn wrap(lua: &Lua, field: &str, value: Value) -> mlua::Result<Value> {
    let table = lua.create_table()?;
    table.raw_set(field, value)?;
    Ok(Value::Table(table))
}

fn sequence<'r>(
    lua: &Lua,
    items: impl Iterator<Item = &'r Reply>,
    resp: ScriptResp,
) -> mlua::Result<Value> {
    let table = lua.create_table()?;
    for (i, item) in items.enumerate() {
        table.raw_set(i + 1, reply_to_lua(lua, item, resp)?)?;
    }
    Ok(Value::Table(table))
}

/// Converts a script's return value (or a nested element of it) into a reply.
pub fn lua_to_reply(value: &Value, resp: ScriptResp) -> Reply {
    to_reply(value, resp, 0)
}

fn to_reply(value: &Value, resp: ScriptResp, depth: usize) -> Reply {
    match value {
        Value::Integer(n) => Reply::Int(*n),
        Value::Number(n) => Reply::Int(truncate(*n)),
        Value::String(s) => Reply::Bulk(Bytes::copy_from_slice(&s.as_bytes())),
        Value::Boolean(b) => match resp {
            ScriptResp::Resp2 if *b => Reply::Int(1),
            ScriptResp::Resp2 => Reply::Nil,
            ScriptResp::Resp3 => Reply::Bool(*b),
        },
        Value::Table(table) if depth >= MAX_REPLY_DEPTH => {
            let _ = table;
            Reply::Error(RespError::fixed("ERR reached lua stack limit"))
        }
        Value::Table(table) => table_to_reply(table, resp, depth),
        _ => Reply::Nil,
    }
}

/// Redis converts with a C cast `(long long)n`; on x86-64 NaN and out-of-range values give
/// `i64::MIN` (checked against Redis 7.0: `return 1e30` -> `:-9223372036854775808`).
fn truncate(n: f64) -> i64 {
    const LIMIT: f64 = 9_223_372_036_854_775_808.0; // 2^63
    if n.is_nan() || !(-LIMIT..LIMIT).contains(&n) {
        i64::MIN
    } else {
        n as i64
    }
}

fn string_field(table: &Table, name: &str) -> Option<Vec<u8>> {
    match table.raw_get::<Value>(name) {
        Ok(Value::String(s)) => Some(s.as_bytes().to_vec()),
        _ => None,
    }
}

fn one_line(mut text: Vec<u8>) -> Vec<u8> {
    for b in &mut text {
        if *b == b'\r' || *b == b'\n' {
            *b = b' ';
        }
    }
    text
}

fn table_to_reply(table: &Table, resp: ScriptResp, depth: usize) -> Reply {
    if let Some(err) = string_field(table, "err") {
        let text = String::from_utf8_lossy(&one_line(err)).into_owned();
        return Reply::Error(RespError::new(text));
    }
    if let Some(ok) = string_field(table, "ok") {
        return Reply::Simple(Bytes::from(one_line(ok)));
    }
    match table.raw_get::<Value>("double") {
        Ok(Value::Number(d)) => return Reply::Double(d),
        Ok(Value::Integer(d)) => return Reply::Double(d as f64),
        _ => {}
    }
    if let Some(big) = string_field(table, "big_number") {
        return Reply::Bulk(Bytes::from(one_line(big)));
    }
    if let Ok(Value::Table(map)) = table.raw_get::<Value>("map") {
        let pairs = map
            .pairs::<Value, Value>()
            .filter_map(Result::ok)
            .map(|(k, v)| (to_reply(&k, resp, depth + 1), to_reply(&v, resp, depth + 1)))
            .collect();
        return Reply::Map(pairs);
    }
    if let Ok(Value::Table(set)) = table.raw_get::<Value>("set") {
        let items = set
            .pairs::<Value, Value>()
            .filter_map(Result::ok)
            .map(|(k, _)| to_reply(&k, resp, depth + 1))
            .collect();
        return Reply::Set(items);
    }
    let mut items = Vec::new();
    for i in 1.. {
        match table.raw_get::<Value>(i) {
            Ok(Value::Nil) | Err(_) => break,
            Ok(item) => items.push(to_reply(&item, resp, depth + 1)),
        }
    }
    Reply::Array(items)
}

/// The error text of a `redis.call` argument that is neither a string nor a number.
pub const BAD_ARGUMENT: &str = "ERR Lua redis lib command arguments must be strings or integers";
/// The error text of a `redis.call` without arguments.
pub const NO_ARGUMENTS: &str = "ERR Please specify at least one argument for this redis lib call";

/// Converts `redis.call` arguments into a command's argument vector.
///
/// # Errors
/// [`NO_ARGUMENTS`] or [`BAD_ARGUMENT`], with Redis's texts.
pub fn lua_to_args(args: MultiValue) -> Result<Vec<Bytes>, RespError> {
    if args.is_empty() {
        return Err(RespError::fixed(NO_ARGUMENTS));
    }
    args.iter()
        .map(|arg| match arg {
            Value::String(s) => Ok(Bytes::copy_from_slice(&s.as_bytes())),
            // mlua hands integral doubles over as integers; %.17g prints those below 1e17
            // as plain digits and larger ones in exponent form.
            Value::Integer(n) if n.unsigned_abs() < 100_000_000_000_000_000 => {
                Ok(Bytes::from(itoa::Buffer::new().format(*n).to_owned()))
            }
            Value::Integer(n) => Ok(Bytes::from(format_g17(*n as f64))),
            Value::Number(n) => Ok(Bytes::from(format_g17(*n))),
            _ => Err(RespError::fixed(BAD_ARGUMENT)),
        })
        .collect()
}

/// C's `printf("%.17g", n)`, which Redis 7.0 uses for numeric `redis.call` arguments.
pub fn format_g17(n: f64) -> String {
    if n.is_nan() {
        return if n.is_sign_negative() { "-nan" } else { "nan" }.to_string();
    }
    if n.is_infinite() {
        return if n > 0.0 { "inf" } else { "-inf" }.to_string();
    }
    if n == 0.0 {
        return if n.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    // 17 significant digits in scientific form, then %g's choice of notation.
    let sci = format!("{n:.16e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..17).contains(&exp) {
        let mantissa = strip_zeros(mantissa);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.unsigned_abs())
    } else {
        let decimals = usize::try_from(16 - exp).unwrap_or(0);
        strip_zeros(&format!("{n:.decimals$}")).to_string()
    }
}

fn strip_zeros(text: &str) -> &str {
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &'static str) -> Reply {
        Reply::bulk_static(s)
    }

    #[test]
    fn g17_matches_c() {
        assert_eq!(format_g17(3.0), "3");
        assert_eq!(format_g17(0.1), "0.10000000000000001");
        assert_eq!(format_g17(1e20), "1e+20");
        assert_eq!(format_g17(-0.0), "-0");
        assert_eq!(format_g17(f64::INFINITY), "inf");
        assert_eq!(format_g17(1.5), "1.5");
        assert_eq!(format_g17(9007199254740993.0), "9007199254740992");
        assert_eq!(format_g17(1e-5), "1.0000000000000001e-05");
        assert_eq!(format_g17(123456.789), "123456.789");
    }

    #[test]
    fn truncation_matches_the_c_cast() {
        assert_eq!(truncate(3.99), 3);
        assert_eq!(truncate(-3.99), -3);
        assert_eq!(truncate(1e30), i64::MIN);
        assert_eq!(truncate(-1e30), i64::MIN);
        assert_eq!(truncate(f64::NAN), i64::MIN);
        assert_eq!(truncate(4611686018427387904.0), 1 << 62);
    }

    #[test]
    fn resp2_replies_become_lua_values() {
        let lua = Lua::new();
        let resp = ScriptResp::Resp2;
        let check = |reply: Reply, code: &str| {
            let value = reply_to_lua(&lua, &reply, resp).expect("convert");
            lua.globals().set("v", value).expect("set");
            let ok: bool = lua.load(code).eval().expect("eval");
            assert!(ok, "{reply:?}: {code}");
        };
        check(Reply::Int(7), "return v == 7");
        check(bulk("a\0b"), "return v == 'a\\0b'");
        check(Reply::Nil, "return v == false");
        check(Reply::NilArray, "return v == false");
        check(Reply::ok(), "return v.ok == 'OK'");
        check(
            Reply::Error(RespError::SYNTAX),
            "return v.err == 'ERR syntax error'",
        );
        check(
            Reply::Array(vec![Reply::Int(1), Reply::Nil, bulk("x")]),
            "return #v == 3 and v[1] == 1 and v[2] == false and v[3] == 'x'",
        );
        check(
            Reply::map_static(vec![("a", Reply::Int(1))]),
            "return v[1] == 'a' and v[2] == 1",
        );
        check(Reply::Set(vec![bulk("m")]), "return v[1] == 'm'");
        check(Reply::Bool(true), "return v == 1");
        check(Reply::Bool(false), "return v == 0");
        check(Reply::Double(1.5), "return v == '1.5'");
        check(
            Reply::Verbatim(Bytes::from_static(b"txt")),
            "return v == 'txt'",
        );
    }

    #[test]
    fn resp3_replies_keep_their_types() {
        let lua = Lua::new();
        let resp = ScriptResp::Resp3;
        let check = |reply: Reply, code: &str| {
            let value = reply_to_lua(&lua, &reply, resp).expect("convert");
            lua.globals().set("v", value).expect("set");
            let ok: bool = lua.load(code).eval().expect("eval");
            assert!(ok, "{reply:?}: {code}");
        };
        check(Reply::Nil, "return v == nil");
        check(Reply::Bool(false), "return v == false");
        check(Reply::Double(2.5), "return v.double == 2.5");
        check(
            Reply::map_static(vec![("a", Reply::Int(1))]),
            "return v.map.a == 1",
        );
        check(Reply::Set(vec![bulk("m")]), "return v.set.m == true");
        check(
            Reply::Verbatim(Bytes::from_static(b"hi")),
            "return v.verbatim_string.format == 'txt' and v.verbatim_string.string == 'hi'",
        );
    }

    #[test]
    fn lua_values_become_replies() {
        let lua = Lua::new();
        let conv = |code: &str, resp| {
            let value: Value = lua.load(code).eval().expect("eval");
            lua_to_reply(&value, resp)
        };
        let r2 = ScriptResp::Resp2;
        assert_eq!(conv("return 3.99", r2), Reply::Int(3));
        assert_eq!(conv("return -3.99", r2), Reply::Int(-3));
        assert_eq!(conv("return 'x'", r2), bulk("x"));
        assert_eq!(conv("return true", r2), Reply::Int(1));
        assert_eq!(conv("return false", r2), Reply::Nil);
        assert_eq!(conv("return nil", r2), Reply::Nil);
        assert_eq!(conv("return function() end", r2), Reply::Nil);
        assert_eq!(conv("return {ok='FINE'}", r2), Reply::simple("FINE"));
        assert_eq!(conv("return {ok='a\\nb'}", r2), Reply::simple("a b"));
        assert_eq!(
            conv("return {err='E1 bad\\r\\n'}", r2),
            Reply::Error(RespError::new("E1 bad  "))
        );
        assert_eq!(
            conv("return {ok='x', err='y'}", r2),
            Reply::Error(RespError::new("y"))
        );
        assert_eq!(conv("return {err=1}", r2), Reply::Array(vec![]));
        assert_eq!(conv("return {a=1}", r2), Reply::Array(vec![]));
        assert_eq!(
            conv("return {1, 2, nil, 4}", r2),
            Reply::Array(vec![Reply::Int(1), Reply::Int(2)])
        );
        assert_eq!(
            conv("return {1, {2, {'x'}}, true, false}", r2),
            Reply::Array(vec![
                Reply::Int(1),
                Reply::Array(vec![Reply::Int(2), Reply::Array(vec![bulk("x")])]),
                Reply::Int(1),
                Reply::Nil,
            ])
        );
        assert_eq!(conv("return {double=1.5}", r2), Reply::Double(1.5));
        assert_eq!(conv("return {big_number='123'}", r2), bulk("123"));
        assert_eq!(
            conv("return {map={a=1}}", r2),
            Reply::Map(vec![(bulk("a"), Reply::Int(1))])
        );
        assert_eq!(
            conv("return {set={a=true}}", r2),
            Reply::Set(vec![bulk("a")])
        );
        let r3 = ScriptResp::Resp3;
        assert_eq!(conv("return true", r3), Reply::Bool(true));
        assert_eq!(conv("return false", r3), Reply::Bool(false));
    }

    #[test]
    fn self_referencing_table_hits_the_depth_limit() {
        let lua = Lua::new();
        let value: Value = lua
            .load("local t = {} t[1] = t return t")
            .eval()
            .expect("eval");
        let mut reply = lua_to_reply(&value, ScriptResp::Resp2);
        let mut depth = 0;
        while let Reply::Array(mut items) = reply {
            depth += 1;
            reply = items.pop().expect("one element");
        }
        assert_eq!(depth, MAX_REPLY_DEPTH);
        assert_eq!(
            reply,
            Reply::Error(RespError::fixed("ERR reached lua stack limit"))
        );
    }

    #[test]
    fn arguments_are_strings_or_numbers() {
        let lua = Lua::new();
        let args = |code: &str| {
            let values: MultiValue = lua.load(code).eval().expect("eval");
            lua_to_args(values)
        };
        assert_eq!(
            args("return 'SET', 'k', 3, 0.5").expect("args"),
            vec![
                Bytes::from_static(b"SET"),
                Bytes::from_static(b"k"),
                Bytes::from_static(b"3"),
                Bytes::from_static(b"0.5"),
            ]
        );
        assert_eq!(args("return"), Err(RespError::fixed(NO_ARGUMENTS)));
        assert_eq!(
            args("return 'a', true"),
            Err(RespError::fixed(BAD_ARGUMENT))
        );
        assert_eq!(
            args("return 'a', nil, 'b'"),
            Err(RespError::fixed(BAD_ARGUMENT))
        );
    }
}
