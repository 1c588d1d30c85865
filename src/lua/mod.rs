//! The script engine behind `EVAL`, `EVALSHA` and `SCRIPT LOAD|EXISTS|FLUSH`: an embedded
//! Lua 5.1 with Redis 7's `redis` library and conversion rules.
//!
//! API: [`Engine::new`] with an [`EngineConfig`]; [`Engine::load`] (SCRIPT LOAD),
//! [`Engine::exists`] (SCRIPT EXISTS), [`Engine::flush`] (SCRIPT FLUSH), [`Engine::eval`]
//! (EVAL / EVALSHA, given a [`Script`] and a `call` closure that runs one command for
//! `redis.call`), and [`split_keys`] for the command parser's `numkeys` checks.
//! [`convert`] holds the Lua <-> [`Reply`] rules; `sandbox` holds the VM.
//!
//! Threading: an `Engine` is shared by every connection (`Send + Sync`, in an `Arc`); it
//! owns the source cache (sha -> source bytes) under a `parking_lot::RwLock` and the script
//! threads ([`pool`]). The server runs every script on a script thread (see
//! `cmd::Offload`), never on an I/O worker, so a script that runs to its time limit stalls
//! no other connection. A Lua state is neither `Send` nor `Sync`, so each thread that runs
//! scripts has its own VM in a `thread_local!`, with its own cache of compiled functions by
//! sha: a VM needs no lock, and the script threads run scripts on different keys in
//! parallel. Because only the script threads run scripts in the server, the number of VMs
//! is bounded, and [`EngineConfig::memory_limit_bytes`] is split between them so that it
//! holds server-wide. A VM that meets a sha it has not compiled compiles it from the shared
//! source. A sha names its source, so a compiled function is valid for any engine; the
//! per-thread cache is still cleared when the thread switches engines or the engine is
//! flushed (a generation counter), and is bounded at [`MAX_COMPILED_PER_THREAD`] entries.
//!
//! Stopping: the VM checks the deadline on every function call and every
//! `sandbox::HOOK_EVERY` instructions, and the pattern functions (`pattern`) check it
//! inside their matching loops, so no script runs past its limit by more than one C call
//! on data bounded by the memory limit. [`Engine::stop`] (shutdown) kills running scripts
//! the same way.
//!
//! The shared cache still decides which shas exist (an evicted script answers `NOSCRIPT`
//! on every thread), but an EVALSHA does not lock it: the engine counts removals (an
//! epoch, bumped under the write lock by every eviction and flush), and a thread that has
//! seen a sha in the shared cache at the current epoch knows it is still there. A read
//! lock per call would be shared by all workers, so its lock word would move between the
//! cores on every script.
//!
//! Cache bounds: scripts added by `SCRIPT LOAD` stay until `SCRIPT FLUSH`; scripts added only
//! by `EVAL` are evictable, oldest first, beyond [`EngineConfig::max_eval_scripts`] (as
//! Redis 7.4 does, so clients generating distinct scripts cannot grow memory without bound;
//! an evicted sha answers `NOSCRIPT` and clients fall back to `EVAL`).
//!
//! To extend: new `redis.*` functions go in `sandbox.rs`, new reply shapes in `convert.rs`.
//! `eval` never knows about commands: everything a script does to data goes through `call`.

pub mod convert;
mod pattern;
pub mod pool;
mod sandbox;

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use foldhash::fast::RandomState;
use mlua::Function;
use parking_lot::RwLock;

use crate::error::RespError;
use crate::resp::reply::Reply;
use sandbox::Vm;

/// `-NOSCRIPT No matching script. Please use EVAL.`
pub const NOSCRIPT: RespError = RespError::fixed("NOSCRIPT No matching script. Please use EVAL.");
/// The reply when a script is started from inside a script (Redis's text for EVAL in EVAL).
pub const NOT_FROM_SCRIPT: RespError =
    RespError::fixed("ERR This Redis command is not allowed from script");
/// `-ERR Number of keys can't be greater than number of args`.
pub const TOO_MANY_KEYS: RespError =
    RespError::fixed("ERR Number of keys can't be greater than number of args");
/// `-ERR Number of keys can't be negative`.
pub const NEGATIVE_KEYS: RespError = RespError::fixed("ERR Number of keys can't be negative");

/// How many compiled functions one thread's VM keeps before it starts over.
pub const MAX_COMPILED_PER_THREAD: usize = 1000;

/// Limits of the script engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// A script running longer than this is killed with an error reply (default 5 s).
    pub time_limit: Duration,
    /// Memory all Lua VMs together may allocate: each of the [`threads`](Self::threads)
    /// VMs gets an equal share, and a script past its VM's share fails with
    /// `not enough memory` (default 256 MiB; 0 = unlimited).
    pub memory_limit_bytes: usize,
    /// Script threads (see [`pool`]); at least 1.
    pub threads: usize,
    /// How many scripts added only by `EVAL` stay cached (default 500, as Redis 7.4).
    pub max_eval_scripts: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            time_limit: Duration::from_secs(5),
            memory_limit_bytes: 256 << 20,
            threads: 2,
            max_eval_scripts: 500,
        }
    }
}

/// Which script `eval` runs.
#[derive(Debug, Clone, Copy)]
pub enum Script<'a> {
    /// `EVAL`: the source (cached as a side effect, as Redis does).
    Source(&'a [u8]),
    /// `EVALSHA`: a sha1 in hex, either case.
    Sha(&'a [u8]),
}

/// The server's script engine: a script cache shared by all connections.
#[derive(Debug)]
pub struct Engine {
    id: u64,
    config: EngineConfig,
    cache: RwLock<SourceCache>,
    /// Bumped (under the write lock) whenever a script leaves `cache`.
    removals: AtomicU64,
    /// Bumped (under the write lock) by every SCRIPT FLUSH.
    generation: AtomicU64,
    /// Set by [`stop`](Self::stop): every running and later script is killed.
    stop: Arc<AtomicBool>,
    /// The script threads.
    pool: pool::Pool,
}

#[derive(Debug, Default)]
struct SourceCache {
    scripts: HashMap<Sha, Cached, RandomState>,
    /// Shas added by EVAL, oldest first (entries may be stale: check `evictable`).
    eval_order: VecDeque<Sha>,
    eval_count: usize,
}

#[derive(Debug)]
struct Cached {
    source: Arc<[u8]>,
    evictable: bool,
}

static NEXT_ENGINE_ID: AtomicU64 = AtomicU64::new(1);

/// One thread's VM and the functions it has compiled.
struct ThreadVm {
    vm: Vm,
    engine: u64,
    generation: u64,
    functions: HashMap<Sha, Compiled, RandomState>,
}

/// A compiled script and the removal epoch at which its sha was last seen in the shared
/// cache: while the engine's epoch is the same, the sha is still there.
struct Compiled {
    func: Function,
    seen: u64,
}

/// A script's sha1 as 40 lower-case hex digits, kept on the stack: EVALSHA looks it up in
/// two caches per call, and a `String` per lookup would allocate on every call.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Sha([u8; 40]);

impl Sha {
    /// The sha1 of `bytes`.
    fn of(bytes: &[u8]) -> Sha {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 40];
        for (pair, byte) in out
            .chunks_exact_mut(2)
            .zip(sha1_smol::Sha1::from(bytes).digest().bytes())
        {
            pair[0] = HEX[usize::from(byte >> 4)];
            pair[1] = HEX[usize::from(byte & 0xf)];
        }
        Sha(out)
    }

    /// A client's sha (either case); None unless it is 40 hex digits.
    fn parse(text: &[u8]) -> Option<Sha> {
        let mut out: [u8; 40] = text.try_into().ok()?;
        if !out.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        out.make_ascii_lowercase();
        Some(Sha(out))
    }

    fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever stored.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl std::fmt::Debug for Sha {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

thread_local! {
    static VM: RefCell<Option<ThreadVm>> = const { RefCell::new(None) };
}

impl Engine {
    /// An engine with an empty script cache.
    pub fn new(config: EngineConfig) -> Self {
        Engine {
            id: NEXT_ENGINE_ID.fetch_add(1, Ordering::Relaxed),
            cache: RwLock::new(SourceCache::default()),
            removals: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            stop: Arc::new(AtomicBool::new(false)),
            pool: pool::Pool::new(config.threads),
            config,
        }
    }

    /// Kills every running script at its next check (at most one C call away) and every
    /// later one at its start: the server is stopping.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Runs `job` on a script thread; false if none could be started.
    pub fn offload(&self, job: pool::Job) -> bool {
        self.pool.submit(job)
    }

    /// The memory limit of one VM: an equal share of the server-wide limit.
    fn vm_memory_limit(&self) -> usize {
        match self.config.memory_limit_bytes {
            0 => 0,
            total => (total / self.pool.threads()).max(1),
        }
    }

    /// SCRIPT LOAD: compiles and caches `source`, returning its lower-case hex sha1.
    ///
    /// # Errors
    /// `ERR Error compiling script (new function): user_script:1: ...`, or a shebang error.
    pub fn load(&self, source: &[u8]) -> Result<String, RespError> {
        let sha = Sha::of(source);
        let epoch = self.removals.load(Ordering::Acquire);
        self.with_vm(|tvm| compile(tvm, sha, source, epoch))??;
        self.remember(sha, source, false);
        Ok(sha.as_str().to_owned())
    }

    /// SCRIPT EXISTS for one sha (either case).
    pub fn exists(&self, sha: &[u8]) -> bool {
        Sha::parse(sha).is_some_and(|sha| self.cache.read().scripts.contains_key(&sha))
    }

    /// SCRIPT FLUSH: forgets every script (each thread drops its compiled functions lazily).
    pub fn flush(&self) {
        let mut cache = self.cache.write();
        *cache = SourceCache::default();
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.removals.fetch_add(1, Ordering::AcqRel);
    }

    /// EVAL / EVALSHA. `call` runs one command (`args[0]` is its name) in the caller's
    /// context and returns its reply; it serves `redis.call` and `redis.pcall`.
    pub fn eval(
        &self,
        script: Script<'_>,
        keys: &[Bytes],
        argv: &[Bytes],
        call: &mut dyn FnMut(Vec<Bytes>) -> Reply,
    ) -> Reply {
        let outcome = self.with_vm(|tvm| {
            // Loaded before the shared cache is consulted: a removal after this load makes
            // the next call check again.
            let epoch = self.removals.load(Ordering::Acquire);
            let sha = match script {
                Script::Source(source) => {
                    let sha = Sha::of(source);
                    if tvm.functions.get(&sha).is_none_or(|c| c.seen != epoch) {
                        compile(tvm, sha, source, epoch)?;
                        self.remember(sha, source, true);
                    }
                    sha
                }
                Script::Sha(sha) => {
                    let sha = Sha::parse(sha).ok_or(NOSCRIPT)?;
                    match tvm.functions.get_mut(&sha) {
                        Some(compiled) if compiled.seen == epoch => {}
                        Some(compiled) => {
                            if !self.cache.read().scripts.contains_key(&sha) {
                                return Err(NOSCRIPT);
                            }
                            compiled.seen = epoch;
                        }
                        None => {
                            // The source is copied only when this thread must compile.
                            let source = self.source(sha).ok_or(NOSCRIPT)?;
                            compile(tvm, sha, &source, epoch)?;
                        }
                    }
                    sha
                }
            };
            let compiled = tvm.functions.get(&sha).ok_or(NOSCRIPT)?;
            Ok::<_, RespError>(tvm.vm.run(
                sha.as_str(),
                &compiled.func,
                keys,
                argv,
                call,
                self.config.time_limit,
            ))
        });
        match outcome {
            Ok(Ok(reply)) => reply,
            Ok(Err(err)) | Err(err) => Reply::Error(err),
        }
    }

    fn source(&self, sha: Sha) -> Option<Arc<[u8]>> {
        self.cache
            .read()
            .scripts
            .get(&sha)
            .map(|c| c.source.clone())
    }

    /// Adds a script to the shared cache; a `SCRIPT LOAD` pins one that `EVAL` added.
    fn remember(&self, sha: Sha, source: &[u8], evictable: bool) {
        if let Some(cached) = self.cache.read().scripts.get(&sha) {
            if evictable || !cached.evictable {
                return;
            }
        }
        let mut cache = self.cache.write();
        let cache = &mut *cache;
        match cache.scripts.get_mut(&sha) {
            Some(cached) => {
                if !evictable && cached.evictable {
                    cached.evictable = false;
                    cache.eval_count -= 1;
                }
            }
            None => {
                cache.scripts.insert(
                    sha,
                    Cached {
                        source: source.into(),
                        evictable,
                    },
                );
                if evictable {
                    cache.eval_order.push_back(sha);
                    cache.eval_count += 1;
                }
            }
        }
        while cache.eval_count > self.config.max_eval_scripts {
            let Some(oldest) = cache.eval_order.pop_front() else {
                break;
            };
            if cache.scripts.get(&oldest).is_some_and(|c| c.evictable) {
                cache.scripts.remove(&oldest);
                cache.eval_count -= 1;
                self.removals.fetch_add(1, Ordering::AcqRel);
            }
        }
        // Stale queue entries (pinned or flushed shas) must not pile up.
        if cache.eval_order.len() > 2 * self.config.max_eval_scripts + 16 {
            let scripts = &cache.scripts;
            cache
                .eval_order
                .retain(|sha| scripts.get(sha).is_some_and(|c| c.evictable));
        }
    }

    /// Runs `f` with this thread's VM, creating it on first use.
    fn with_vm<R>(&self, f: impl FnOnce(&mut ThreadVm) -> R) -> Result<R, RespError> {
        let generation = self.generation.load(Ordering::Acquire);
        VM.try_with(|cell| {
            // Already borrowed: a script's command tried to start a script.
            let Ok(mut slot) = cell.try_borrow_mut() else {
                return Err(NOT_FROM_SCRIPT);
            };
            if slot.is_none() {
                let vm = Vm::new(self.vm_memory_limit()).map_err(|err| {
                    RespError::new(format!("ERR cannot create the Lua VM: {err}"))
                })?;
                vm.set_stop(self.stop.clone());
                *slot = Some(ThreadVm {
                    vm,
                    engine: self.id,
                    generation,
                    functions: HashMap::default(),
                });
            }
            let Some(tvm) = slot.as_mut() else {
                return Err(RespError::fixed("ERR cannot create the Lua VM"));
            };
            if tvm.engine != self.id || tvm.generation != generation {
                tvm.functions.clear();
                tvm.vm.set_memory_limit(self.vm_memory_limit());
                tvm.vm.set_stop(self.stop.clone());
                tvm.engine = self.id;
                tvm.generation = generation;
            }
            Ok(f(tvm))
        })
        .map_err(|_| RespError::fixed("ERR the Lua VM of this thread is gone"))?
    }
}

/// Makes sure this thread's cache holds the compiled function for `sha`, marked as seen
/// in the shared cache at `epoch` (the caller makes sure it is there).
fn compile(tvm: &mut ThreadVm, sha: Sha, source: &[u8], epoch: u64) -> Result<(), RespError> {
    if let Some(compiled) = tvm.functions.get_mut(&sha) {
        compiled.seen = epoch;
        return Ok(());
    }
    let body = strip_shebang(source)?;
    let func = tvm.vm.compile(body).map_err(|msg| {
        RespError::new(
            format!("ERR Error compiling script (new function): {msg}").replace(['\r', '\n'], " "),
        )
    })?;
    if tvm.functions.len() >= MAX_COMPILED_PER_THREAD {
        tvm.functions.clear();
    }
    tvm.functions.insert(sha, Compiled { func, seen: epoch });
    Ok(())
}

/// Redis 7's `#!lua [flags=a,b]` first line: checked, then left out of the compiled body
/// (its newline stays, so line numbers do not move). Flags are accepted but not enforced.
fn strip_shebang(source: &[u8]) -> Result<&[u8], RespError> {
    if !source.starts_with(b"#!") {
        return Ok(source);
    }
    let end = source
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(source.len());
    let line = String::from_utf8_lossy(&source[..end]);
    let mut parts = line.split_ascii_whitespace();
    let engine = parts.next().unwrap_or("");
    if engine != "#!lua" {
        return Err(RespError::new(format!(
            "ERR Unexpected engine in script shebang: {engine}"
        )));
    }
    for part in parts {
        let Some(flags) = part.strip_prefix("flags=") else {
            return Err(RespError::new(format!(
                "ERR Unknown lua shebang option: {part}"
            )));
        };
        for flag in flags.split(',').filter(|f| !f.is_empty()) {
            if !matches!(
                flag,
                "no-writes" | "allow-oom" | "allow-stale" | "no-cluster" | "allow-cross-slot-keys"
            ) {
                return Err(RespError::new(format!(
                    "ERR Unexpected flag in script shebang: {flag}"
                )));
            }
        }
    }
    Ok(&source[end..])
}

/// The lower-case hex sha1 of `bytes`.
pub fn sha1hex(bytes: &[u8]) -> String {
    Sha::of(bytes).as_str().to_owned()
}

/// Splits EVAL's arguments after the script (`numkeys key... arg...`) into keys and argv.
///
/// # Errors
/// `ERR value is not an integer or out of range` (also for an empty `args`),
/// [`NEGATIVE_KEYS`], [`TOO_MANY_KEYS`].
pub fn split_keys(args: &[Bytes]) -> Result<(&[Bytes], &[Bytes]), RespError> {
    let (numkeys, rest) = args.split_first().ok_or(RespError::NOT_INTEGER)?;
    // Redis's string2ll: no '+', no leading zeros, no spaces.
    let digits = numkeys.strip_prefix(b"-").unwrap_or(numkeys);
    let canonical = &numkeys[..] == b"0"
        || (digits.first().is_some_and(|d| (b'1'..=b'9').contains(d))
            && digits.iter().all(u8::is_ascii_digit));
    let numkeys: i64 = std::str::from_utf8(numkeys)
        .ok()
        .filter(|_| canonical)
        .and_then(|s| s.parse().ok())
        .ok_or(RespError::NOT_INTEGER)?;
    if numkeys < 0 {
        return Err(NEGATIVE_KEYS);
    }
    let numkeys = usize::try_from(numkeys).map_err(|_| TOO_MANY_KEYS)?;
    if numkeys > rest.len() {
        return Err(TOO_MANY_KEYS);
    }
    Ok(rest.split_at(numkeys))
}

#[cfg(test)]
mod tests;
