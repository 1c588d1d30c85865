//! `baton-bench`: a load generator for lock workloads.
//!
//! `redis-benchmark` can neither run acquire/release cycles nor blocking waits, so this
//! tool speaks RESP2 by hand over a tokio `TcpStream` (the minimal client in
//! `common/resp_client.rs`, shared with `baton-scenarios`) and drives one of these
//! workloads (`--workload`):
//!
//! - `ping`: `PING`, optionally pipelined (`-P`).
//! - `native-cycle`: `LOCK key owner ttl` on a random key, then `UNLOCK key owner`.
//! - `redlock-cycle`: `SET key token NX PX ttl`, then the standard compare-and-delete
//!   release script by `EVALSHA` (loaded once with `SCRIPT LOAD`). With
//!   `--release auto` (the default) a server without scripting falls back to the native
//!   compare-and-delete `DELIFEQ key token`; the JSON says which one ran.
//! - `hot-key-native`: every client on one key with `LOCK ... WAIT`, then `UNLOCK`. The
//!   latency reported is the hand-off: from one client sending its `UNLOCK` to the next
//!   client's grant reply, measured across clients on one shared monotonic clock.
//! - `hot-key-retry`: the Redis way: `SET NX PX`, polling every `--retry-ms` while the key
//!   is taken, released by the same compare-and-delete as `redlock-cycle`; hand-off
//!   latency as above.
//!
//! The run lasts `--duration` seconds on `-c` connections. The last line of the output is
//! one JSON object (ops/s, p50/p99/p99.9/max in µs, and with `--server-pid` the server's
//! CPU time per request read from `/proc/PID/stat`). A progress line is drawn only when
//! stdout is a terminal.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;

#[path = "common/resp_client.rs"]
mod resp_client;

use resp_client::{BoxError, Conn, Reply};

/// The standard Redlock release script (compare-and-delete), as the Redis docs give it.
const RELEASE_SCRIPT: &str = "if redis.call(\"get\",KEYS[1]) == ARGV[1] then\n    return redis.call(\"del\",KEYS[1])\nelse\n    return 0\nend";

/// The key every client of a hot-key workload fights over.
const HOT_KEY: &str = "bench:hot";

/// Highest latency the histograms track, in nanoseconds (60 s).
const MAX_TRACKED_NS: u64 = 60_000_000_000;

/// The workloads `--workload` can pick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Workload {
    /// PING round trips.
    Ping,
    /// LOCK + UNLOCK on random keys (baton's native commands).
    NativeCycle,
    /// SET NX PX + EVALSHA release on random keys (Redlock on one node).
    RedlockCycle,
    /// All clients on one key with LOCK ... WAIT, then UNLOCK.
    HotKeyNative,
    /// All clients on one key with SET NX PX and client-side retry polling.
    HotKeyRetry,
}

impl Workload {
    /// The name as written on the command line.
    fn name(self) -> &'static str {
        match self {
            Workload::Ping => "ping",
            Workload::NativeCycle => "native-cycle",
            Workload::RedlockCycle => "redlock-cycle",
            Workload::HotKeyNative => "hot-key-native",
            Workload::HotKeyRetry => "hot-key-retry",
        }
    }

    /// Whether the workload fights over one key (latency = hand-off).
    fn is_hot(self) -> bool {
        matches!(self, Workload::HotKeyNative | Workload::HotKeyRetry)
    }

    /// Whether the workload needs a compare-and-delete release.
    fn needs_release_script(self) -> bool {
        matches!(self, Workload::RedlockCycle | Workload::HotKeyRetry)
    }
}

/// How Redis-style workloads release a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ReleaseMode {
    /// EVALSHA when SCRIPT LOAD works, else DELIFEQ.
    Auto,
    /// Always EVALSHA of the loaded script (fail if SCRIPT LOAD fails).
    Evalsha,
    /// The native compare-and-delete `DELIFEQ key value`.
    Delifeq,
}

/// Command-line flags (a flag given twice: the last one wins).
#[derive(Debug, Parser)]
#[command(
    name = "baton-bench",
    about = "Load generator for lock workloads (RESP)",
    args_override_self = true
)]
struct Args {
    /// Server host.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Server port.
    #[arg(short, long, default_value_t = 7000)]
    port: u16,
    /// Workload to run.
    #[arg(short, long, value_enum, default_value_t = Workload::Ping)]
    workload: Workload,
    /// Connections (default 50; 64 for the hot-key workloads).
    #[arg(short, long)]
    connections: Option<usize>,
    /// Requests (or acquire/release cycles) in flight per connection and batch.
    /// Ignored by the hot-key workloads, where each client holds one lock at a time.
    #[arg(short = 'P', long, default_value_t = 1)]
    pipeline: usize,
    /// Length of the measured run in seconds.
    #[arg(short, long, default_value_t = 5.0)]
    duration: f64,
    /// Lease of every grant in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    ttl_ms: u64,
    /// Number of distinct random keys of the cycle workloads.
    #[arg(long, default_value_t = 1_000_000)]
    keys: u64,
    /// Poll interval of hot-key-retry in milliseconds.
    #[arg(long, default_value_t = 10)]
    retry_ms: u64,
    /// WAIT of hot-key-native in milliseconds (a nil after it is counted and retried).
    #[arg(long, default_value_t = 5_000)]
    wait_ms: u64,
    /// Time a hot-key client holds the lock before releasing, in microseconds.
    #[arg(long, default_value_t = 0)]
    hold_us: u64,
    /// Release used by redlock-cycle and hot-key-retry.
    #[arg(long, value_enum, default_value_t = ReleaseMode::Auto)]
    release: ReleaseMode,
    /// PID of the server process: report its CPU time (user+sys) per request.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Free-form label copied into the JSON line (e.g. "baton" or "redis").
    #[arg(long, default_value = "")]
    label: String,
    /// Runtime worker threads (0 = one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

/// The compare-and-delete a Redis-style client releases with.
#[derive(Debug, Clone)]
enum Release {
    /// `EVALSHA sha 1 key token`.
    EvalSha(String),
    /// `DELIFEQ key token`.
    DelIfEq,
}

impl Release {
    /// Name for the report.
    fn name(&self) -> &'static str {
        match self {
            Release::EvalSha(_) => "evalsha",
            Release::DelIfEq => "delifeq",
        }
    }

    /// Encodes the release of `key` held with `token`.
    fn push(&self, conn: &mut Conn, key: &[u8], token: &[u8]) {
        match self {
            Release::EvalSha(sha) => conn.push(&[b"EVALSHA", sha.as_bytes(), b"1", key, token]),
            Release::DelIfEq => conn.push(&[b"DELIFEQ", key, token]),
        }
    }

    /// Picks the release: loads the script with SCRIPT LOAD, or falls back to DELIFEQ.
    async fn setup(conn: &mut Conn, mode: ReleaseMode) -> Result<Self, BoxError> {
        if mode != ReleaseMode::Delifeq {
            match conn
                .call(&[b"SCRIPT", b"LOAD", RELEASE_SCRIPT.as_bytes()])
                .await?
            {
                Reply::Bulk(sha) => return Ok(Release::EvalSha(String::from_utf8(sha)?)),
                other if mode == ReleaseMode::Evalsha => {
                    return Err(format!("SCRIPT LOAD failed: {other:?}").into())
                }
                _ => {}
            }
        }
        match conn.call(&[b"DELIFEQ", b"bench:probe", b"-"]).await? {
            Reply::Int(_) => Ok(Release::DelIfEq),
            other => Err(format!("server has neither EVALSHA nor DELIFEQ: {other:?}").into()),
        }
    }
}

/// State of the hand-off between two consecutive holders of the hot key.
///
/// Grants are numbered in the order their replies arrive (the lock makes them
/// sequential). Grant `g` pairs with the release of grant `g - 1`, timed from the moment
/// the releasing client sent it: the same start for both servers, and one that the order
/// in which a server writes the two replies (grant, release `1`) cannot move.
#[derive(Debug, Default)]
struct Handoff {
    /// Number the next grant gets.
    next_gen: u64,
    /// Release sent and not yet paired: (grant number it ends, when, which client).
    release: Option<(u64, Instant, usize)>,
}

/// State shared by all clients of a run.
struct Shared {
    /// Completed operations, for the progress line.
    ops: AtomicU64,
    /// Set when the run's time is up.
    stop: AtomicBool,
    /// Hot-key hand-off pairing.
    handoff: Mutex<Handoff>,
}

/// What one client measured.
struct Stats {
    /// Latency (ns): per op, or per hand-off for the hot-key workloads.
    hist: Histogram<u64>,
    /// Completed operations (PINGs, cycles, or grants).
    ops: u64,
    /// Requests sent.
    requests: u64,
    /// Error replies.
    errors: u64,
    /// Acquires that found the key taken (nil replies, including WAIT timeouts).
    contended: u64,
    /// Grants that went back to the client that had just released (barging; not a
    /// hand-off, so no latency is recorded for them).
    self_regrants: u64,
}

impl Stats {
    /// Empty statistics.
    fn new() -> Result<Self, BoxError> {
        Ok(Stats {
            hist: Histogram::new_with_bounds(1, MAX_TRACKED_NS, 3)?,
            ops: 0,
            requests: 0,
            errors: 0,
            contended: 0,
            self_regrants: 0,
        })
    }

    /// Records one latency, saturating at the tracked maximum.
    fn record(&mut self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.hist.saturating_record(ns.clamp(1, MAX_TRACKED_NS));
    }

    /// Adds another client's numbers.
    fn merge(&mut self, other: &Stats) -> Result<(), BoxError> {
        self.hist.add(&other.hist)?;
        self.ops += other.ops;
        self.requests += other.requests;
        self.errors += other.errors;
        self.contended += other.contended;
        self.self_regrants += other.self_regrants;
        Ok(())
    }
}

/// Everything a client task needs.
struct Ctx {
    /// Flags.
    args: Args,
    /// Release of the Redis-style workloads, when needed.
    release: Option<Release>,
    /// Run-wide shared state.
    shared: Shared,
}

impl Ctx {
    /// Whether the run's time is up.
    fn stopped(&self) -> bool {
        self.shared.stop.load(Ordering::Relaxed)
    }

    /// Counts completed ops for the progress line.
    fn progress(&self, n: u64) {
        self.shared.ops.fetch_add(n, Ordering::Relaxed);
    }

    /// The hot key's hand-off state, locked. A client that panicked while holding it
    /// leaves at most one pairing wrong, so the poison is ignored.
    fn handoff(&self) -> MutexGuard<'_, Handoff> {
        self.shared
            .handoff
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The release to use (set up before the run for the workloads that need it).
    fn release(&self) -> Result<&Release, BoxError> {
        self.release
            .as_ref()
            .ok_or_else(|| BoxError::from("release not set up"))
    }
}

/// Writes a random key of the keyspace into `buf`.
fn random_key(buf: &mut String, keys: u64) {
    buf.clear();
    let _ = write!(buf, "bench:{}", fastrand::u64(0..keys.max(1)));
}

/// Writes a fresh random token into `buf` (what a Redlock client stores as the value).
fn random_token(buf: &mut String) {
    buf.clear();
    let _ = write!(buf, "{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
}

/// `ping`: batches of `-P` PINGs; latency from batch send to each reply.
async fn run_ping(ctx: &Ctx, conn: &mut Conn, stats: &mut Stats) -> Result<(), BoxError> {
    let p = ctx.args.pipeline.max(1);
    while !ctx.stopped() {
        for _ in 0..p {
            conn.push(&[b"PING"]);
        }
        let start = Instant::now();
        conn.flush().await?;
        for _ in 0..p {
            match conn.read().await? {
                Reply::Status(s) if s == b"PONG" => {
                    stats.record(start.elapsed());
                    stats.ops += 1;
                }
                Reply::Error(_) => stats.errors += 1,
                other => return Err(format!("unexpected PING reply {other:?}").into()),
            }
        }
        stats.requests += p as u64;
        ctx.progress(p as u64);
    }
    Ok(())
}

/// `native-cycle` and `redlock-cycle`: a batch of `-P` acquires on random keys, then one
/// batch releasing the granted ones. A cycle's latency runs from the acquire batch's send
/// to its release reply.
async fn run_cycle(
    ctx: &Ctx,
    conn: &mut Conn,
    stats: &mut Stats,
    owner: &str,
) -> Result<(), BoxError> {
    let p = ctx.args.pipeline.max(1);
    let native = ctx.args.workload == Workload::NativeCycle;
    let release = if native { None } else { Some(ctx.release()?) };
    let ttl = ctx.args.ttl_ms.to_string();
    let mut keys = vec![String::new(); p];
    let mut tokens = vec![String::new(); p];
    let mut granted = vec![false; p];
    while !ctx.stopped() {
        for i in 0..p {
            random_key(&mut keys[i], ctx.args.keys);
            if native {
                conn.push(&[
                    b"LOCK",
                    keys[i].as_bytes(),
                    owner.as_bytes(),
                    ttl.as_bytes(),
                ]);
            } else {
                random_token(&mut tokens[i]);
                conn.push(&[
                    b"SET",
                    keys[i].as_bytes(),
                    tokens[i].as_bytes(),
                    b"NX",
                    b"PX",
                    ttl.as_bytes(),
                ]);
            }
        }
        let start = Instant::now();
        conn.flush().await?;
        stats.requests += p as u64;
        let mut n_granted = 0u64;
        for g in granted.iter_mut() {
            *g = match conn.read().await? {
                Reply::Int(_) | Reply::Status(_) => true,
                Reply::Nil => {
                    stats.contended += 1;
                    false
                }
                Reply::Error(e) => {
                    // An error before any success means the server lacks the command:
                    // fail instead of spinning on errors for the whole run.
                    if stats.ops == 0 {
                        return Err(format!("acquire failed: {e}").into());
                    }
                    stats.errors += 1;
                    false
                }
                other => return Err(format!("unexpected acquire reply {other:?}").into()),
            };
            n_granted += u64::from(*g);
        }
        for i in (0..p).filter(|&i| granted[i]) {
            match release {
                None => conn.push(&[b"UNLOCK", keys[i].as_bytes(), owner.as_bytes()]),
                Some(r) => r.push(conn, keys[i].as_bytes(), tokens[i].as_bytes()),
            }
        }
        if n_granted > 0 {
            conn.flush().await?;
            stats.requests += n_granted;
            for _ in 0..n_granted {
                match conn.read().await? {
                    Reply::Int(_) => {
                        stats.record(start.elapsed());
                        stats.ops += 1;
                    }
                    Reply::Error(e) => {
                        stats.errors += 1;
                        if e.starts_with("NOSCRIPT") {
                            return Err(format!("release failed: {e}").into());
                        }
                    }
                    other => return Err(format!("unexpected release reply {other:?}").into()),
                }
            }
        }
        ctx.progress(n_granted);
    }
    Ok(())
}

/// Notes a grant reply of the hot key; records the hand-off from the previous holder's
/// release (unless client `me` itself released last: that is a re-grant, not a hand-off).
/// Returns this grant's number.
fn on_grant(ctx: &Ctx, stats: &mut Stats, me: usize) -> u64 {
    let now = Instant::now();
    let mut h = ctx.handoff();
    let gen = h.next_gen;
    h.next_gen += 1;
    match h.release.take() {
        Some((prev, _, who)) if prev + 1 == gen && who == me => stats.self_regrants += 1,
        Some((prev, at, _)) if prev + 1 == gen => stats.record(now.saturating_duration_since(at)),
        _ => {}
    }
    gen
}

/// Notes that client `me` is about to send the release ending grant `gen`.
fn on_release_sent(ctx: &Ctx, gen: u64, me: usize) {
    ctx.handoff().release = Some((gen, Instant::now(), me));
}

/// `hot-key-native` and `hot-key-retry`: every client loops acquire (blocking WAIT, or
/// SET NX polling), optional hold, release, on one key.
async fn run_hot(
    ctx: &Ctx,
    conn: &mut Conn,
    stats: &mut Stats,
    owner: &str,
    me: usize,
) -> Result<(), BoxError> {
    let native = ctx.args.workload == Workload::HotKeyNative;
    let release = if native { None } else { Some(ctx.release()?) };
    let ttl = ctx.args.ttl_ms.to_string();
    let wait = ctx.args.wait_ms.to_string();
    let retry = Duration::from_millis(ctx.args.retry_ms.max(1));
    let hold = Duration::from_micros(ctx.args.hold_us);
    let key = HOT_KEY.as_bytes();
    let mut token = String::new();
    while !ctx.stopped() {
        let reply = if native {
            conn.call(&[
                b"LOCK",
                key,
                owner.as_bytes(),
                ttl.as_bytes(),
                b"WAIT",
                wait.as_bytes(),
            ])
            .await?
        } else {
            random_token(&mut token);
            conn.call(&[b"SET", key, token.as_bytes(), b"NX", b"PX", ttl.as_bytes()])
                .await?
        };
        stats.requests += 1;
        match reply {
            Reply::Int(_) | Reply::Status(_) => {}
            Reply::Nil => {
                stats.contended += 1;
                if !native {
                    tokio::time::sleep(retry).await;
                }
                continue;
            }
            Reply::Error(e) => {
                stats.errors += 1;
                if stats.errors == 1 {
                    eprintln!("baton-bench: acquire error: {e}");
                }
                tokio::time::sleep(retry).await;
                continue;
            }
            other => return Err(format!("unexpected acquire reply {other:?}").into()),
        }
        let gen = on_grant(ctx, stats, me);
        stats.ops += 1;
        ctx.progress(1);
        if !hold.is_zero() {
            tokio::time::sleep(hold).await;
        }
        on_release_sent(ctx, gen, me);
        match release {
            None => conn.push(&[b"UNLOCK", key, owner.as_bytes()]),
            Some(r) => r.push(conn, key, token.as_bytes()),
        }
        conn.flush().await?;
        stats.requests += 1;
        match conn.read().await? {
            Reply::Int(1) => {}
            Reply::Int(_) => stats.contended += 1,
            Reply::Error(_) => stats.errors += 1,
            other => return Err(format!("unexpected release reply {other:?}").into()),
        }
    }
    Ok(())
}

/// Runs one client until the stop flag, returning what it measured.
async fn client(ctx: Arc<Ctx>, mut conn: Conn, idx: usize) -> Result<Stats, BoxError> {
    let mut stats = Stats::new()?;
    let owner = format!("bench-{}-{idx}", std::process::id());
    match ctx.args.workload {
        Workload::Ping => run_ping(&ctx, &mut conn, &mut stats).await?,
        Workload::NativeCycle | Workload::RedlockCycle => {
            run_cycle(&ctx, &mut conn, &mut stats, &owner).await?
        }
        Workload::HotKeyNative | Workload::HotKeyRetry => {
            run_hot(&ctx, &mut conn, &mut stats, &owner, idx).await?
        }
    }
    Ok(stats)
}

/// CPU time (user + sys) of a process in clock ticks, from `/proc/PID/stat`.
fn proc_cpu_ticks(pid: u32) -> Result<u64, BoxError> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) is in parentheses and may hold spaces: skip past it.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or("unreadable /proc stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ")" the fields start at 3 (state); utime is field 14, stime field 15.
    let get = |n: usize| -> Result<u64, BoxError> {
        Ok(fields
            .get(n - 3)
            .ok_or("short /proc stat")?
            .parse::<u64>()?)
    };
    Ok(get(14)? + get(15)?)
}

/// Clock ticks per second (`getconf CLK_TCK`, 100 when that fails).
fn clock_ticks() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<u64>().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

/// Draws the progress line until the stop flag (only called when stdout is a terminal).
async fn progress_line(ctx: Arc<Ctx>, start: Instant) {
    let mut last = 0u64;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    while !ctx.stopped() {
        tick.tick().await;
        let ops = ctx.shared.ops.load(Ordering::Relaxed);
        print!(
            "\r{} {:>5.1}s  {:>10} ops  {:>10.0} ops/s   ",
            ctx.args.workload.name(),
            start.elapsed().as_secs_f64(),
            ops,
            (ops - last) as f64
        );
        let _ = std::io::stdout().flush();
        last = ops;
    }
    println!();
}

/// Formats a nanosecond value as microseconds with one decimal.
fn us(ns: u64) -> f64 {
    (ns as f64 / 100.0).round() / 10.0
}

/// Escapes a string for the JSON line.
fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Sets up, runs the clients for the duration, and prints the summary and JSON line.
async fn run(args: Args) -> Result<(), BoxError> {
    let addr = format!("{}:{}", args.host, args.port);
    let n = args
        .connections
        .unwrap_or(if args.workload.is_hot() { 64 } else { 50 })
        .max(1);
    if !(args.duration > 0.0 && args.duration.is_finite()) {
        return Err("--duration must be a positive number of seconds".into());
    }
    let mut setup = Conn::connect(&addr).await?;
    let release = if args.workload.needs_release_script() {
        Some(Release::setup(&mut setup, args.release).await?)
    } else {
        None
    };
    if args.workload.is_hot() {
        // Start from a free hot key (a run cut short may have left a hold behind).
        setup.call(&[b"DEL", HOT_KEY.as_bytes()]).await?;
    }
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        conns.push(Conn::connect(&addr).await?);
    }
    let workload = args.workload;
    let pipeline = if workload.is_hot() {
        1
    } else {
        args.pipeline.max(1)
    };
    let duration = Duration::from_secs_f64(args.duration);
    let server_pid = args.server_pid;
    let ctx = Arc::new(Ctx {
        args,
        release,
        shared: Shared {
            ops: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            handoff: Mutex::new(Handoff::default()),
        },
    });
    let cpu_before = server_pid.map(proc_cpu_ticks).transpose()?;
    let start = Instant::now();
    let tasks: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(i, c)| tokio::spawn(client(Arc::clone(&ctx), c, i)))
        .collect();
    let progress = std::io::stdout()
        .is_terminal()
        .then(|| tokio::spawn(progress_line(Arc::clone(&ctx), start)));
    tokio::time::sleep(duration).await;
    ctx.shared.stop.store(true, Ordering::Relaxed);
    // Clients finish the batch (or hold) they are in; a client stuck past this grace
    // period (e.g. a WAIT that nobody will end) is abandoned.
    let grace = Duration::from_secs(5) + Duration::from_millis(ctx.args.wait_ms);
    let mut total = Stats::new()?;
    let mut failed = 0usize;
    let mut abandoned = 0usize;
    let give_up = tokio::time::Instant::now() + grace;
    for task in tasks {
        let abort = task.abort_handle();
        match tokio::time::timeout_at(give_up, task).await {
            Ok(Ok(Ok(stats))) => total.merge(&stats)?,
            Ok(Ok(Err(e))) => {
                failed += 1;
                if failed == 1 {
                    eprintln!("baton-bench: client failed: {e}");
                }
            }
            Ok(Err(e)) => return Err(format!("client task panicked: {e}").into()),
            Err(_) => {
                abort.abort();
                abandoned += 1;
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu_after = server_pid.map(proc_cpu_ticks).transpose()?;
    if let Some(p) = progress {
        let _ = p.await;
    }
    let cpu_us_per_req = match (cpu_before, cpu_after) {
        (Some(b), Some(a)) if total.requests > 0 => {
            let ticks = a.saturating_sub(b) as f64;
            Some(ticks * 1e6 / clock_ticks() as f64 / total.requests as f64)
        }
        _ => None,
    };
    let h = &total.hist;
    let (p50, p99, p999, max) = if h.is_empty() {
        (0, 0, 0, 0)
    } else {
        (
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.99),
            h.value_at_quantile(0.999),
            h.max(),
        )
    };
    let ops_s = total.ops as f64 / elapsed;
    let req_s = total.requests as f64 / elapsed;
    let latency = if workload.is_hot() { "handoff" } else { "op" };
    let release_name = ctx.release.as_ref().map_or("none", Release::name);
    println!(
        "{} on {addr}: {n} connections, P={pipeline}, {elapsed:.2}s",
        workload.name()
    );
    println!(
        "  {} ops ({ops_s:.0}/s), {} requests ({req_s:.0}/s), {} errors, {} contended",
        total.ops, total.requests, total.errors, total.contended
    );
    println!(
        "  {latency} latency us: p50 {} p99 {} p99.9 {} max {}",
        us(p50),
        us(p99),
        us(p999),
        us(max)
    );
    if workload.is_hot() {
        println!(
            "  hand-offs: {} re-grants to the releasing client (not counted)",
            total.self_regrants
        );
    }
    if let Some(c) = cpu_us_per_req {
        println!("  server CPU per request: {c:.2} us");
    }
    let mut json = String::new();
    let _ = write!(
        json,
        "{{\"workload\":{},\"label\":{},\"connections\":{n},\"pipeline\":{pipeline},\
         \"duration_s\":{elapsed:.3},\"ops\":{},\"requests\":{},\"ops_per_sec\":{ops_s:.1},\
         \"requests_per_sec\":{req_s:.1},\"latency\":\"{latency}\",\"p50_us\":{},\"p99_us\":{},\
         \"p999_us\":{},\"max_us\":{},\"errors\":{},\"contended\":{},\"self_regrants\":{},\"handoffs_per_sec\":{:.1},\
         \"release\":\"{release_name}\",\"failed_connections\":{failed},\"abandoned_connections\":{abandoned},\
         \"server_cpu_us_per_request\":{}}}",
        json_str(workload.name()),
        json_str(&ctx.args.label),
        total.ops,
        total.requests,
        us(p50),
        us(p99),
        us(p999),
        us(max),
        total.errors,
        total.contended,
        total.self_regrants,
        total.ops.saturating_sub(total.self_regrants) as f64 / elapsed,
        cpu_us_per_req.map_or_else(|| "null".to_string(), |c| format!("{c:.3}")),
    );
    println!("{json}");
    if failed > 0 {
        return Err(format!("{failed} of {n} connections failed").into());
    }
    Ok(())
}

fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if args.threads > 0 {
        rt.worker_threads(args.threads);
    }
    rt.enable_all().build()?.block_on(run(args))
}
