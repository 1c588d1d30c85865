//! One sandboxed Lua 5.1 VM: what a script can reach, how it runs, how it is stopped.
//!
//! Owns [`Vm`]: a Lua state with only the `base` (minus `print`, `loadfile`, `dofile`,
//! `getfenv`, `setfenv`, `newproxy`), `table`, `string`, `math` and `coroutine` libraries,
//! plus the `redis` table. No `io`, `os`, `debug`, `package`/`require`. `bit`, `cjson`,
//! `struct` and `cmsgpack` (which Redis also embeds) are not provided.
//!
//! Protection, as in Redis 7: the globals table and every library table are read-only
//! proxies (`x = 1`, `string.foo = 1`, `rawset(_G, ...)` and `setmetatable(_G, ...)` fail with
//! "Attempt to modify a readonly table"); reading an undefined global fails with "Script
//! attempted to access nonexistent global variable 'x'". `loadstring`/`load` only accept
//! source text, never bytecode. `pcall` is Redis's version: a caught error table yields its
//! `err` text.
//!
//! Running: [`Vm::run`] sets `KEYS`/`ARGV`, lends the caller's command closure to
//! `redis.call`/`redis.pcall` for the duration of the run (a [`CallSlot`]: both are Rust
//! functions created once per VM), and calls the script through `xpcall` with a message
//! handler that, like Redis's `__redis__err__handler`, turns any error into
//! `{err=..., source=..., line=...}` pointing at the innermost user-script frame.
//! A count hook (every [`HOOK_EVERY`] instructions) checks the deadline; once passed, the
//! script is killed: the hook raises on every call and the `pcall`/`xpcall` wrappers rethrow,
//! so no Lua code can catch the kill. The VM is reusable afterwards.
//!
//! Cost: with a memory limit set, mlua guards every allocating API call with a `pcall` and
//! two fresh C closures (Lua 5.1 has no light C functions), which makes an EVALSHA's setup
//! cost more than a short script. So the Rust-side work of a run (building `KEYS`/`ARGV`,
//! clearing them, converting the result) runs with the limit lifted ([`Vm::unlimited`]):
//! it allocates only what the request and the script's own result hold, and a run whose
//! arguments leave the VM over the limit still fails. A small scalar
//! `redis.call` reply also converts with the limit lifted, while the VM is under it (see
//! `is_small`). Everything else the script does, larger replies included, runs under the
//! limit.
//!
//! To extend: a new `redis.*` function is a Rust closure in `redis_table`; to raise an error
//! table as Redis's `luaError` does, return `fail("ERR ...")`.

use std::cell::{Cell, RefCell};
use std::ptr::NonNull;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mlua::{
    chunk::ChunkMode, Function, HookTriggers, Lua, LuaOptions, LuaString, MultiValue, StdLib,
    Table, Value, VmState,
};

use super::convert::{error_table, lua_to_args, lua_to_reply, reply_to_lua, ScriptResp};
use crate::resp::reply::Reply;

/// The time-limit hook runs every this many VM instructions (a few microseconds of work).
pub(super) const HOOK_EVERY: u32 = 10_000;

/// After a run, `KEYS` and `ARGV` of at most this many strings and bytes stay set until the
/// next run (see [`Vm::run`]).
const KEPT_ARGS: usize = 64;
const KEPT_ARGS_BYTES: usize = 16 * 1024;

/// The chunk name of user scripts; errors read `user_script:LINE: ...` as in Redis.
const USER_CHUNK: &str = "@user_script";
/// The chunk name of the prelude; its frames are skipped when locating an error.
const INTERNAL_CHUNK: &str = "=baton";

/// Per-run state shared by the hook, the handler and the `redis` functions.
struct RunState {
    deadline: Cell<Option<Instant>>,
    limit: Cell<Duration>,
    killed: Cell<bool>,
    resp: Cell<ScriptResp>,
    /// The command closure of the run in progress, for `redis.call` and `redis.pcall`.
    call: CallSlot,
    /// The memory limit in force while the script runs (bytes; 0 = none).
    memory_limit: Cell<usize>,
    /// Set when the server stops: every script is killed at its next check.
    stop: RefCell<Arc<AtomicBool>>,
}

impl RunState {
    /// Whether the run must end now (time limit passed, killed, server stopping); marks
    /// it killed and returns the error that unwinds it, which no `pcall` can catch.
    /// Outside a run (compiling, building `KEYS`) there is nothing to stop.
    fn check(&self) -> mlua::Result<()> {
        let Some(deadline) = self.deadline.get() else {
            return Ok(());
        };
        if self.killed.get() || self.stopping() || Instant::now() >= deadline {
            self.killed.set(true);
            return Err(mlua::Error::runtime("script killed"));
        }
        Ok(())
    }

    /// The error text of a killed script.
    fn killed_text(&self) -> String {
        if self.stopping() {
            return "ERR Script killed: the server is shutting down".to_string();
        }
        format!(
            "ERR Script killed: exceeded the time limit of {} ms",
            self.limit.get().as_millis()
        )
    }

    fn stopping(&self) -> bool {
        self.stop.borrow().load(Ordering::Relaxed)
    }

    /// The bytes the VM may still allocate under its limit (None without one).
    fn room(&self, lua: &Lua) -> Option<usize> {
        match self.memory_limit.get() {
            0 => None,
            limit => Some(limit.saturating_sub(lua.used_memory())),
        }
    }

    /// Whether the VM uses less memory than its limit (always, without one).
    fn under_limit(&self, lua: &Lua) -> bool {
        let limit = self.memory_limit.get();
        limit == 0 || lua.used_memory() < limit
    }

    /// Runs `f` with the memory limit lifted, so that mlua calls the Lua API directly
    /// instead of through a protected call (see the module header). Only for Rust code
    /// whose allocations are small or bounded by the request. Without a limit only the
    /// system allocator can fail, which aborts the process with or without Lua: this is the
    /// mode mlua runs in when the limit is configured as 0.
    fn unlimited<R>(&self, lua: &Lua, f: impl FnOnce() -> R) -> R {
        /// Puts the limit back when `f` ends, normally or by unwinding.
        struct Restore<'l>(&'l Lua, usize);
        impl Drop for Restore<'_> {
            fn drop(&mut self) {
                let _ = self.0.set_memory_limit(self.1);
            }
        }

        let limit = self.memory_limit.get();
        if limit == 0 {
            return f();
        }
        let _ = lua.set_memory_limit(0);
        let _restore = Restore(lua, limit);
        f()
    }
}

/// The command closure a script's `redis.call` runs, as `Engine::eval` receives it.
type CallFn<'c> = dyn FnMut(Vec<Bytes>) -> Reply + 'c;

/// Where the `redis.call`/`redis.pcall` functions, created once per VM, find the command
/// closure of the run in progress.
///
/// The closure borrows the caller's lock-table section, so it lives for one [`Vm::run`]
/// only, while the Lua functions live as long as the VM. Binding fresh functions per run
/// (an mlua scope) is safe but costs a large share of an EVALSHA; the slot instead holds a
/// lifetime-erased pointer to the closure, and only [`lend`](Self::lend) and
/// [`with`](Self::with) touch it. Why that is sound:
/// - The slot is non-empty only inside `lend`, which stores a pointer made from the `&mut`
///   it was given and empties the slot again before it returns or unwinds (the `Clear`
///   guard); the borrow outlives the call to `lend`, so a stored pointer always points to
///   a live closure, and the caller cannot touch the closure while it is lent.
/// - `with` takes the pointer out of the slot before it turns it back into a `&mut` and
///   puts it back afterwards, so at most one `&mut` to the closure exists at any time: a
///   `redis.call` reached from inside the closure finds the slot empty.
/// - `Cell` makes the slot `!Sync`, and it lives in the VM's `Rc<RunState>`: only the
///   thread that owns the VM ever reads it.
struct CallSlot(Cell<Option<NonNull<CallFn<'static>>>>);

impl CallSlot {
    /// Runs `f` with `call` reachable through [`with`](Self::with).
    fn lend<R>(&self, call: &mut CallFn<'_>, f: impl FnOnce() -> R) -> R {
        /// Empties the slot when `lend` ends, normally or by unwinding.
        struct Clear<'s>(&'s CallSlot);
        impl Drop for Clear<'_> {
            fn drop(&mut self) {
                self.0 .0.set(None);
            }
        }

        let ptr: NonNull<CallFn<'_>> = NonNull::from(call);
        // SAFETY: only the trait object's lifetime bound changes ('_ to 'static), not the
        // layout of the pointer. The erased pointer is dereferenced only by `with`, and only
        // while this call to `lend` runs (see the type's doc), during which `call` is
        // borrowed and alive.
        let ptr: NonNull<CallFn<'static>> = unsafe { std::mem::transmute(ptr) };
        let previous = self.0.replace(Some(ptr));
        debug_assert!(previous.is_none(), "a run lent its closure twice");
        let _clear = Clear(self);
        f()
    }

    /// Runs `f` with the lent closure, or with None outside a run and while the closure is
    /// already running.
    fn with<R>(&self, f: impl FnOnce(Option<&mut CallFn<'_>>) -> R) -> R {
        struct PutBack<'s>(&'s CallSlot, Option<NonNull<CallFn<'static>>>);
        impl Drop for PutBack<'_> {
            fn drop(&mut self) {
                self.0 .0.set(self.1.take());
            }
        }

        let Some(mut ptr) = self.0.take() else {
            return f(None);
        };
        let put_back = PutBack(self, Some(ptr));
        // SAFETY: the slot held `ptr`, so the `lend` that stored it is still running and the
        // closure is alive; `ptr` was taken out of the slot, so no other `&mut` to the
        // closure exists until `put_back` returns it (after this `&mut` is gone).
        let out = f(Some(unsafe { ptr.as_mut() }));
        drop(put_back);
        out
    }
}

/// A sandboxed Lua VM (one per OS thread; see the module header of `lua`).
pub(super) struct Vm {
    lua: Lua,
    /// The real globals table behind the read-only `_G` proxy (KEYS and ARGV live here).
    env: Table,
    /// The interned names `KEYS` and `ARGV`, so a run does not hash them again.
    keys_name: LuaString,
    argv_name: LuaString,
    xpcall: Function,
    handler: Function,
    state: Rc<RunState>,
}

impl Vm {
    /// Builds the sandbox.
    pub(super) fn new(memory_limit_bytes: usize) -> mlua::Result<Vm> {
        let lua = Lua::new_with(
            StdLib::TABLE | StdLib::STRING | StdLib::MATH,
            LuaOptions::default(),
        )?;
        let state = Rc::new(RunState {
            deadline: Cell::new(None),
            limit: Cell::new(Duration::ZERO),
            killed: Cell::new(false),
            resp: Cell::new(ScriptResp::Resp2),
            call: CallSlot(Cell::new(None)),
            memory_limit: Cell::new(memory_limit_bytes),
            stop: RefCell::new(Arc::new(AtomicBool::new(false))),
        });
        let env = lua.globals();
        bounded_functions(&lua, &env, &state)?;
        let xpcall: Function = env.get("xpcall")?;
        let redis = redis_table(&lua, &state)?;
        env.raw_set("redis", redis)?;
        let killed = {
            let state = state.clone();
            lua.create_function(move |_, ()| Ok(state.killed.get()))?
        };
        let errtext = lua.create_function(|_, raised: Value| {
            Ok(match raised {
                Value::Error(err) => Some(match err.downcast_ref::<Raised>() {
                    Some(Raised(text)) => text.clone(),
                    None => root_message(&err),
                }),
                _ => None,
            })
        })?;
        let proxy: Table =
            lua.load(PRELUDE)
                .set_name(INTERNAL_CHUNK)
                .call((env.clone(), killed, errtext))?;
        lua.set_globals(proxy)?;
        let handler = error_handler(&lua, &state)?;
        {
            let state = state.clone();
            // On every call too: a C function runs without the count hook, so one call
            // that works through a large string or table is checked before the next.
            lua.set_global_hook(
                HookTriggers::new()
                    .on_calls()
                    .every_nth_instruction(HOOK_EVERY),
                move |_, _| state.check().map(|()| VmState::Continue),
            )?;
        }
        lua.set_memory_limit(memory_limit_bytes)?;
        let keys_name = lua.create_string("KEYS")?;
        let argv_name = lua.create_string("ARGV")?;
        Ok(Vm {
            lua,
            env,
            keys_name,
            argv_name,
            xpcall,
            handler,
            state,
        })
    }

    /// Makes `stop` the flag that kills this VM's scripts (the engine's, set at shutdown).
    pub(super) fn set_stop(&self, stop: Arc<AtomicBool>) {
        *self.state.stop.borrow_mut() = stop;
    }

    /// Sets the VM's memory limit (bytes; 0 = none).
    pub(super) fn set_memory_limit(&self, bytes: usize) {
        self.state.memory_limit.set(bytes);
        let _ = self.lua.set_memory_limit(bytes);
    }

    fn unlimited<R>(&self, f: impl FnOnce() -> R) -> R {
        self.state.unlimited(&self.lua, f)
    }

    /// Compiles a script body (source text only) into a function.
    ///
    /// # Errors
    /// Lua's compile message, e.g. `user_script:1: unexpected symbol near '<eof>'`.
    pub(super) fn compile(&self, body: &[u8]) -> Result<Function, String> {
        if body.first() == Some(&0x1b) {
            // Redis's Lua refuses bytecode by parsing it as text; this is its message.
            return Err("user_script:1: unexpected symbol near 'char(27)'".to_string());
        }
        self.lua
            .load(body)
            .set_name(USER_CHUNK)
            .set_mode(ChunkMode::Text)
            .into_function()
            .map_err(|err| match err {
                mlua::Error::SyntaxError { message, .. } => message,
                other => root_message(&other),
            })
    }

    /// Runs a compiled script and converts its result (or error) into a reply.
    pub(super) fn run(
        &self,
        sha: &str,
        func: &Function,
        keys: &[Bytes],
        argv: &[Bytes],
        call: &mut CallFn<'_>,
        time_limit: Duration,
    ) -> Reply {
        let state = &self.state;
        state.killed.set(false);
        state.resp.set(ScriptResp::Resp2);
        state.limit.set(time_limit);
        let setup = self.unlimited(|| {
            self.env.raw_set(&self.keys_name, self.sequence(keys)?)?;
            self.env.raw_set(&self.argv_name, self.sequence(argv)?)
        });
        // Arguments that do not fit fail the run as they did when built under the limit, and
        // are collected at once so that the VM is usable again.
        let setup = setup.and_then(|()| {
            if state.under_limit(&self.lua) {
                return Ok(());
            }
            self.unlimited(|| {
                let _ = self.env.raw_set(&self.keys_name, Value::Nil);
                let _ = self.env.raw_set(&self.argv_name, Value::Nil);
                let _ = self.lua.gc_collect();
            });
            Err(mlua::Error::MemoryError("not enough memory".into()))
        });
        let out = setup.and_then(|()| {
            state.deadline.set(Instant::now().checked_add(time_limit));
            // Only the first returned value counts, as in Redis.
            let out = state.call.lend(call, || {
                self.xpcall.call::<(Value, Value)>((func, &self.handler))
            });
            state.deadline.set(None);
            out
        });
        self.unlimited(|| {
            // Small KEYS and ARGV stay until the next run replaces them (no script can see
            // them in between): clearing them costs two table sets per run. Large ones are
            // let go at once, so a big request's strings do not outlive it.
            let bytes: usize = keys.iter().chain(argv).map(Bytes::len).sum();
            if bytes > KEPT_ARGS_BYTES || keys.len() + argv.len() > KEPT_ARGS {
                let _ = self.env.raw_set(&self.keys_name, Value::Nil);
                let _ = self.env.raw_set(&self.argv_name, Value::Nil);
            }
            match out {
                Ok(out) => self.finish(sha, out),
                // Killed before the handler was in place (the server stopping).
                Err(_) if state.killed.get() => {
                    Reply::Error(crate::error::RespError::new(state.killed_text()))
                }
                Err(err) => failure(sha, &root_message(&err)),
            }
        })
    }

    /// `KEYS` or `ARGV`: a fresh table of the strings `items`.
    fn sequence(&self, items: &[Bytes]) -> mlua::Result<Table> {
        // mlua pushes a `&str` onto the Lua stack directly, but any other string through a
        // handle in its reference thread, which costs more than the table; keys and tokens
        // are nearly always UTF-8.
        let texts: Option<smallvec::SmallVec<[&str; 4]>> = items
            .iter()
            .map(|item| std::str::from_utf8(item).ok())
            .collect();
        if let Some(texts) = texts {
            return self.lua.create_sequence_from(texts);
        }
        let table = self.lua.create_table_with_capacity(items.len(), 0)?;
        for (i, item) in items.iter().enumerate() {
            table.raw_set(i + 1, self.lua.create_string(item)?)?;
        }
        Ok(table)
    }

    /// `xpcall`'s first two results: `true, value` or `false, error`.
    fn finish(&self, sha: &str, (ok, value): (Value, Value)) -> Reply {
        if matches!(ok, Value::Boolean(true)) {
            return lua_to_reply(&value, self.state.resp.get());
        }
        match value {
            Value::Table(err) => {
                let text = match err.raw_get::<Value>("err") {
                    Ok(Value::String(s)) => s.to_string_lossy(),
                    _ => "ERR unknown error".to_string(),
                };
                let source = err.raw_get::<Option<String>>("source").ok().flatten();
                let line = err.raw_get::<Option<i64>>("line").ok().flatten();
                let text = match (source, line) {
                    (Some(source), Some(line)) if line > 0 => {
                        format!("{text} script: {sha}, on {source}:{line}.")
                    }
                    _ => text,
                };
                Reply::Error(crate::error::RespError::new(one_line(text)))
            }
            // Errors that bypass the handler, such as Lua's "not enough memory".
            other => failure(sha, &other.to_string().unwrap_or_default()),
        }
    }
}

/// Redis's text for an error that is not an error table.
fn failure(sha: &str, message: &str) -> Reply {
    Reply::Error(crate::error::RespError::new(one_line(format!(
        "ERR Error running script {sha}, {message}"
    ))))
}

fn one_line(text: String) -> String {
    text.replace(['\r', '\n'], " ")
}

/// The innermost message of an mlua error (callback wrappers add tracebacks we do not want).
fn root_message(err: &mlua::Error) -> String {
    match err {
        mlua::Error::CallbackError { cause, .. } => root_message(cause),
        mlua::Error::RuntimeError(msg) | mlua::Error::MemoryError(msg) => msg.clone(),
        mlua::Error::SyntaxError { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

/// An error table raised from Rust (`redis.call` failures and the `redis.*` argument
/// checks): mlua raises it as userdata; the handler and the `pcall` wrapper read its text.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Raised(String);

fn raise(text: String) -> mlua::Error {
    mlua::Error::external(Raised(text))
}

/// Runs one `redis.call`/`redis.pcall`: the converted reply, or the error reply's text.
fn invoke(lua: &Lua, state: &RunState, args: MultiValue) -> mlua::Result<Result<Value, String>> {
    let args = match lua_to_args(args) {
        Ok(args) => args,
        Err(err) => return Ok(Err(err.text().to_owned())),
    };
    let reply = state.call.with(|call| match call {
        Some(call) => call(args),
        None => Reply::Error(super::NOT_FROM_SCRIPT),
    });
    let resp = state.resp.get();
    match reply {
        Reply::Error(err) => Ok(Err(err.text().to_owned())),
        reply if is_small(&reply) && state.under_limit(lua) => {
            Ok(Ok(state.unlimited(lua, || reply_to_lua(lua, &reply, resp))?))
        }
        reply => Ok(Ok(reply_to_lua(lua, &reply, resp)?)),
    }
}

/// The largest string reply `redis.call` hands over with the memory limit lifted.
const SMALL_REPLY_BYTES: usize = 4096;

/// Whether `reply` is a scalar whose Lua form allocates at most one string of up to
/// [`SMALL_REPLY_BYTES`] and one or two small tables (`{ok=...}`, RESP3's `{double=...}`).
/// Such a reply (GET's, DEL's, SET's) converts with the limit lifted while the VM is under
/// the limit: under it, the protected conversion costs more than the command. So the limit
/// is overshot by one small reply at most (a script storing many replies cannot add up
/// more: once over, the next reply converts under the limit and fails).
fn is_small(reply: &Reply) -> bool {
    match reply {
        Reply::Simple(bytes) | Reply::Bulk(bytes) | Reply::Verbatim(bytes) => {
            bytes.len() <= SMALL_REPLY_BYTES
        }
        Reply::Int(_) | Reply::Nil | Reply::NilArray | Reply::Bool(_) | Reply::Double(_) => true,
        Reply::Error(_) | Reply::Array(_) | Reply::Map(_) | Reply::Set(_) => false,
    }
}

/// The message handler: builds `{err, source, line}` from whatever was raised.
fn error_handler(lua: &Lua, state: &Rc<RunState>) -> mlua::Result<Function> {
    let state = state.clone();
    lua.create_function(move |lua, raised: Value| {
        let text: Vec<u8> = if state.killed.get() {
            state.killed_text().into_bytes()
        } else {
            match &raised {
                Value::Table(t) => match t.raw_get::<Value>("err") {
                    Ok(Value::String(s)) => s.as_bytes().to_vec(),
                    Ok(v @ (Value::Integer(_) | Value::Number(_))) => {
                        v.to_string().unwrap_or_default().into_bytes()
                    }
                    _ => b"ERR unknown error".to_vec(),
                },
                Value::String(s) => [b"ERR ", &s.as_bytes()[..]].concat(),
                Value::Error(err) => match err.downcast_ref::<Raised>() {
                    Some(Raised(text)) => text.clone().into_bytes(),
                    None => format!("ERR {}", root_message(err)).into_bytes(),
                },
                other => format!("ERR {}", other.to_string().unwrap_or_default()).into_bytes(),
            }
        };
        let out = error_table(lua, &text)?;
        if let Some((source, line)) = locate(lua) {
            out.raw_set("source", source)?;
            out.raw_set("line", line)?;
        }
        Ok(out)
    })
}

/// The innermost frame that belongs to a script (not C, not the prelude), as Redis's handler
/// reports it: `(source, current line)`.
fn locate(lua: &Lua) -> Option<(String, usize)> {
    for level in 1..200 {
        let frame = lua.inspect_stack(level, |debug| {
            let source = debug.source();
            // Redis skips the C function that raised; we also skip the prelude's frames and
            // the "(tail call)" markers they leave.
            let internal = matches!(source.what, "C" | "tail")
                || source.source.as_deref() == Some(INTERNAL_CHUNK);
            (
                internal,
                source.source.map(|s| s.into_owned()),
                debug.current_line(),
            )
        })?;
        match frame {
            (true, _, _) => continue,
            (false, Some(source), Some(line)) => return Some((source, line)),
            (false, _, _) => return None,
        }
    }
    None
}

/// Replaces the C library functions whose running time or memory a script controls
/// without executing Lua instructions: the pattern functions (see `pattern`) and
/// `string.rep` (a huge count of an empty string loops for hours; of a long one, it
/// allocates past the limit before Lua notices). `table.sort` and `loadstring` are
/// bounded in the prelude.
fn bounded_functions(lua: &Lua, env: &Table, state: &Rc<RunState>) -> mlua::Result<()> {
    let string: Table = env.raw_get("string")?;
    let guard: super::pattern::Guard = {
        let state = state.clone();
        Rc::new(move || state.check())
    };
    let room: super::pattern::Room = {
        let state = state.clone();
        Rc::new(move |lua| state.room(lua))
    };
    super::pattern::install(lua, &string, guard, room.clone())?;
    string.raw_set(
        "rep",
        lua.create_function(move |lua, args: MultiValue| {
            let text = match args.front() {
                Some(v @ (Value::String(_) | Value::Integer(_) | Value::Number(_))) => {
                    lua.coerce_string(v.clone())?
                }
                _ => None,
            };
            let count = match args.get(1) {
                Some(Value::Integer(n)) => Some(*n),
                Some(Value::Number(n)) => Some(*n as i64),
                Some(v @ Value::String(_)) => lua.coerce_integer(v.clone())?,
                _ => None,
            };
            let (Some(text), Some(count)) = (text, count) else {
                return Err(mlua::Error::runtime(
                    "bad argument to 'rep' (string and number expected)",
                ));
            };
            let text = text.as_bytes();
            let count = usize::try_from(count).unwrap_or(0);
            if text.is_empty() || count == 0 {
                return lua.create_string("");
            }
            let fits = text.len().checked_mul(count).filter(|total| {
                room(lua).is_none_or(|left| *total <= left) && *total <= isize::MAX as usize
            });
            if fits.is_none() {
                return Err(mlua::Error::MemoryError("not enough memory".into()));
            }
            lua.create_string(text.repeat(count))
        })?,
    )?;
    Ok(())
}

/// Raises `text` as an error table from a `redis.*` function.
fn fail(text: &str) -> mlua::Result<Value> {
    Err(raise(text.to_owned()))
}

fn number(value: Option<&Value>) -> Option<f64> {
    match value {
        Some(Value::Integer(n)) => Some(*n as f64),
        Some(Value::Number(n)) => Some(*n),
        _ => None,
    }
}

/// The `redis` table; `call` and `pcall` run the closure [`Vm::run`] lends them.
fn redis_table(lua: &Lua, state: &Rc<RunState>) -> mlua::Result<Table> {
    let redis = lua.create_table()?;
    // Rust functions, not Lua wrappers: `return redis.call(...)` must not be a Lua tail
    // call, or the user frame (and the error's line) would be gone.
    {
        let state = state.clone();
        redis.raw_set(
            "call",
            lua.create_function(move |lua, args: MultiValue| {
                invoke(lua, &state, args)?.map_err(raise)
            })?,
        )?;
    }
    {
        let state = state.clone();
        redis.raw_set(
            "pcall",
            lua.create_function(
                move |lua, args: MultiValue| match invoke(lua, &state, args)? {
                    Ok(value) => Ok(value),
                    Err(text) => Ok(Value::Table(error_table(lua, text.as_bytes())?)),
                },
            )?,
        )?;
    }
    for (name, value) in [
        ("LOG_DEBUG", 0),
        ("LOG_VERBOSE", 1),
        ("LOG_NOTICE", 2),
        ("LOG_WARNING", 3),
        ("REPL_NONE", 0),
        ("REPL_AOF", 1),
        ("REPL_SLAVE", 2),
        ("REPL_REPLICA", 2),
        ("REPL_ALL", 3),
        ("REDIS_VERSION_NUM", 0x07_02_00),
    ] {
        redis.raw_set(name, value)?;
    }
    redis.raw_set("REDIS_VERSION", "7.2.0")?;

    redis.raw_set(
        "sha1hex",
        lua.create_function(|lua, args: MultiValue| {
            if args.len() != 1 {
                return fail("ERR wrong number of arguments");
            }
            let bytes = match lua.coerce_string(args[0].clone()) {
                Ok(Some(s)) => s.as_bytes().to_vec(),
                _ => Vec::new(),
            };
            Ok(Value::String(lua.create_string(super::sha1hex(&bytes))?))
        })?,
    )?;
    let reply_helper = |field: &'static str| {
        lua.create_function(move |lua, args: MultiValue| {
            let text = match (args.len(), args.front()) {
                (1, Some(Value::String(s))) => s.as_bytes().to_vec(),
                _ => return error_table(lua, b"ERR wrong number or type of arguments"),
            };
            let out = lua.create_table()?;
            if field == "err" {
                out.raw_set("err", lua.create_string(error_reply_text(&text))?)?;
            } else {
                out.raw_set("ok", lua.create_string(&text)?)?;
            }
            Ok(out)
        })
    };
    redis.raw_set("error_reply", reply_helper("err")?)?;
    redis.raw_set("status_reply", reply_helper("ok")?)?;
    redis.raw_set(
        "log",
        lua.create_function(|lua, args: MultiValue| {
            if args.len() < 2 {
                return fail("ERR redis.log() requires two arguments or more.");
            }
            let Some(level) = number(args.front()) else {
                return fail("ERR First argument must be a number");
            };
            if !(0.0..=3.0).contains(&level) {
                return fail("ERR Invalid debug level.");
            }
            let parts: Vec<String> = args
                .iter()
                .skip(1)
                .filter_map(|v| lua.coerce_string(v.clone()).ok().flatten())
                .map(|s| s.to_string_lossy())
                .collect();
            let message = parts.join(" ");
            match level as u8 {
                0 => tracing::debug!(target: "baton::script", "{message}"),
                1 => tracing::info!(target: "baton::script", "{message}"),
                2 => tracing::info!(target: "baton::script", "{message}"),
                _ => tracing::warn!(target: "baton::script", "{message}"),
            }
            Ok(Value::Nil)
        })?,
    )?;
    {
        let state = state.clone();
        redis.raw_set(
            "setresp",
            lua.create_function(move |_, args: MultiValue| {
                if args.len() != 1 {
                    return fail("ERR redis.setresp() requires one argument.");
                }
                // Redis reads the version as a C int (2.5 counts as 2).
                match number(args.front()).map(|n| n as i64) {
                    Some(2) => state.resp.set(ScriptResp::Resp2),
                    Some(3) => state.resp.set(ScriptResp::Resp3),
                    _ => return fail("ERR RESP version must be 2 or 3."),
                }
                Ok(Value::Nil)
            })?,
        )?;
    }
    redis.raw_set(
        "set_repl",
        lua.create_function(|_, args: MultiValue| {
            if args.len() != 1 {
                return fail("ERR redis.set_repl() requires one argument.");
            }
            match number(args.front()) {
                Some(n) if (0.0..=3.0).contains(&n) && n.fract() == 0.0 => Ok(Value::Nil),
                _ => fail(
                    "ERR Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE.",
                ),
            }
        })?,
    )?;
    redis.raw_set("replicate_commands", lua.create_function(|_, ()| Ok(true))?)?;
    redis.raw_set("breakpoint", lua.create_function(|_, ()| Ok(false))?)?;
    redis.raw_set("debug", lua.create_function(|_, ()| Ok(()))?)?;
    Ok(redis)
}

/// `redis.error_reply(s)`'s text, Redis 7's `luaPushErrorBuff`: `"-CODE msg"` or `"CODE msg"`
/// keeps its code; a text without a space gets `ERR` (`"boom"` -> `"ERR boom"`); trailing
/// `\r\n` is trimmed.
fn error_reply_text(text: &[u8]) -> Vec<u8> {
    let text = text.strip_prefix(b"-").unwrap_or(text);
    let (code, msg): (&[u8], &[u8]) = match text.iter().position(|&b| b == b' ') {
        Some(space) => (&text[..space], &text[space + 1..]),
        None => (b"ERR", text),
    };
    let start = msg
        .iter()
        .position(|b| !matches!(b, b'\r' | b'\n'))
        .unwrap_or(msg.len());
    let end = msg
        .iter()
        .rposition(|b| !matches!(b, b'\r' | b'\n'))
        .map_or(start, |i| i + 1);
    [code, b" ", &msg[start..end.max(start)]].concat()
}

/// Lua code run once per VM, with the real globals, `killed()` and `errtext(e)`; returns
/// the read-only `_G` proxy.
const PRELUDE: &str = r#"
local env, killed, errtext = ...
local error, type, rawget, rawset, setmetatable, getmetatable, tostring, ipairs =
      error, type, rawget, rawset, setmetatable, getmetatable, tostring, ipairs
local pcall, xpcall, loadstring = pcall, xpcall, loadstring
local byte, concat, sort = string.byte, table.concat, table.sort

local readonly = setmetatable({}, {__mode = "k"})
local function deny() error("Attempt to modify a readonly table", 2) end
local function protect(t)
  local proxy = setmetatable({}, {__index = t, __newindex = deny, __metatable = false})
  readonly[proxy] = true
  return proxy
end

-- Redis 7's pcall: a caught error table yields its err text. A killed script is rethrown.
local function caught(ok, ...)
  if ok then return ok, ... end
  local e = ...
  if killed() then error(e, 0) end
  if type(e) == "table" then
    local text = rawget(e, "err")
    if type(text) == "string" or type(text) == "number" then e = text end
  elseif type(e) == "userdata" then
    e = errtext(e) or e
  end
  return false, e
end
env.pcall = function(...) return caught(pcall(...)) end
local function xcaught(ok, ...)
  if not ok and killed() then error((...), 0) end
  return ok, ...
end
env.xpcall = function(f, h) return xcaught(xpcall(f, h)) end

env.rawset = function(t, k, v)
  if readonly[t] then error("Attempt to modify a readonly table", 0) end
  return rawset(t, k, v)
end
env.setmetatable = function(t, mt)
  if readonly[t] then error("Attempt to modify a readonly table", 0) end
  return setmetatable(t, mt)
end

-- Bytecode can break any sandbox: compile source text only. The compiler runs without
-- the time-limit hook, so a chunk may be no longer than an EVAL body by default.
local function text_only(chunk, name)
  if type(chunk) == "string" and byte(chunk, 1) == 27 then
    return nil, "binary chunks are not allowed"
  end
  if type(chunk) == "string" and #chunk > 8388608 then
    return nil, "chunk too large"
  end
  return loadstring(chunk, name)
end

-- table.sort without a comparator compares in C, where the time-limit hook never runs: a
-- Lua comparator makes every comparison a call, which the hook checks. Values that do not
-- compare fail with Lua's own message, without this chunk's position.
local function less(a, b)
  local ta, tb = type(a), type(b)
  if ta == tb then
    if ta == "number" or ta == "string" or ta == "table" or ta == "userdata" then
      return a < b
    end
    error("attempt to compare two " .. ta .. " values", 0)
  end
  error("attempt to compare " .. ta .. " with " .. tb, 0)
end
env.table.sort = function(t, cmp) return sort(t, cmp or less) end
env.loadstring = text_only
env.load = function(reader, name)
  if type(reader) == "string" then return text_only(reader, name) end
  local parts = {}
  while true do
    local piece = reader()
    if piece == nil or piece == "" then break end
    if type(piece) ~= "string" then return nil, "reader function must return a string" end
    parts[#parts + 1] = piece
  end
  return text_only(concat(parts), name or "=(load)")
end

for _, name in ipairs({"print", "loadfile", "dofile", "getfenv", "setfenv", "newproxy",
                       "module", "require", "package", "io", "os", "debug"}) do
  env[name] = nil
end

for _, name in ipairs({"string", "table", "math", "coroutine", "redis"}) do
  local lib = rawget(env, name)
  if lib then env[name] = protect(lib) end
end
local smt = getmetatable("")
smt.__index = env.string
smt.__metatable = false

local g = protect(env)
env._G = g
setmetatable(env, {
  __index = function(_, name)
    error("Script attempted to access nonexistent global variable '" .. tostring(name) .. "'", 2)
  end,
  __newindex = deny,
  __metatable = false,
})
return g
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_reply_text_follows_redis() {
        assert_eq!(error_reply_text(b"boom"), b"ERR boom");
        assert_eq!(error_reply_text(b"MY boom"), b"MY boom");
        assert_eq!(error_reply_text(b"-MY boom\r\n"), b"MY boom");
        assert_eq!(error_reply_text(b"-"), b"ERR ");
    }
}
