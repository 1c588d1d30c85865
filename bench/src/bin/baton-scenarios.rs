//! `baton-scenarios`: the memory, mass-expiry and many-clients scenarios of the benchmark
//! issue, run against baton or a real Redis so that the two can be compared side by side
//! (`benches/scenarios.sh` drives both).
//!
//! Subcommands:
//!
//! - `memory`: loads `--keys` held locks (baton `LOCK lock:<n> <uuid> 600000`, Redis
//!   `SET lock:<n> <uuid> PX 600000`, the owner a 36-byte UUID-shaped string) with heavy
//!   pipelining and reports the server's RSS growth per held lock.
//! - `expiry`: loads `--keys` leases whose deadlines all fall inside one second, then polls
//!   `DBSIZE` every millisecond until it reaches 0 and reports how late that was after the
//!   latest deadline, with PING latency from a separate connection before and during the
//!   expiry window.
//! - `clients`: opens `--connections` connections, `--blocked` of them blocked (baton
//!   `LOCK hot <owner> 60000 WAIT 0` behind a holder, Redis `BLPOP` on an empty list), the
//!   rest idle, and reports PING latency from one more connection and the server's RSS.
//!
//! Requests are RESP2 encoded by hand over tokio `TcpStream`s and replies parsed minimally,
//! by the client in `common/resp_client.rs` (shared with `baton-bench`). Each run prints a
//! human summary and, as its last line, one JSON object.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args as ClapArgs, Parser, Subcommand, ValueEnum};
use hdrhistogram::Histogram;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

#[path = "common/resp_client.rs"]
mod resp_client;

use resp_client::{dial, encode, BoxError, Conn, Reply};

/// Highest latency the histograms track, in nanoseconds (60 s).
const MAX_TRACKED_NS: u64 = 60_000_000_000;

/// Lease of the locks the memory scenario loads (long enough to outlive the run).
const HELD_TTL_MS: u64 = 600_000;

/// The key the blocked clients of the `clients` scenario wait on.
const HOT_KEY: &[u8] = b"hot";

/// The (empty) list Redis's blocked clients `BLPOP` on.
const REDIS_LIST: &[u8] = b"somelist";

/// Which server is on the other end: decides the commands sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Target {
    /// baton: native `LOCK`.
    Baton,
    /// Redis: `SET ... PX` and `BLPOP`.
    Redis,
}

impl Target {
    /// The name as written on the command line.
    fn name(self) -> &'static str {
        match self {
            Target::Baton => "baton",
            Target::Redis => "redis",
        }
    }
}

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "baton-scenarios",
    about = "Memory, mass-expiry and many-clients scenarios against baton or Redis"
)]
struct Cli {
    /// The scenario to run.
    #[command(subcommand)]
    scenario: Scenario,
}

/// The scenarios.
#[derive(Debug, Subcommand)]
enum Scenario {
    /// Bytes of server RSS per held lock.
    Memory(MemoryArgs),
    /// Lateness of a mass expiry and PING latency around it.
    Expiry(ExpiryArgs),
    /// PING latency and RSS with many (blocked and idle) connections.
    Clients(ClientsArgs),
}

/// Options every scenario takes.
#[derive(Debug, Clone, ClapArgs)]
struct Common {
    /// Server host.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Server port.
    #[arg(long)]
    port: u16,
    /// Which server it is.
    #[arg(long, value_enum)]
    target: Target,
    /// PID of the server: RSS is then read from /proc/PID/status (VmRSS) instead of
    /// `INFO memory` (used_memory_rss).
    #[arg(long)]
    server_pid: Option<u32>,
}

impl Common {
    /// `host:port`.
    fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// How many leases `memory` and `expiry` load, and over what (options both take).
#[derive(Debug, Clone, Copy, ClapArgs)]
struct LoadArgs {
    /// Locks (leases) to load.
    #[arg(long, default_value_t = 1_000_000)]
    keys: u64,
    /// Loading connections.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Commands per pipelined batch.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
}

/// Options of `memory`.
#[derive(Debug, Clone, ClapArgs)]
struct MemoryArgs {
    /// Server and target.
    #[command(flatten)]
    common: Common,
    /// The load.
    #[command(flatten)]
    load: LoadArgs,
    /// Wait after loading before reading RSS, in ms.
    #[arg(long, default_value_t = 1000)]
    settle_ms: u64,
}

/// Options of `expiry`.
#[derive(Debug, Clone, ClapArgs)]
struct ExpiryArgs {
    /// Server and target.
    #[command(flatten)]
    common: Common,
    /// The load (split into the bulk and the tail below).
    #[command(flatten)]
    load: LoadArgs,
    /// Start of the one-second window the deadlines fall in, in ms after loading starts.
    /// Every lease's ttl is computed at send time so that its deadline is this instant
    /// plus uniform(0..1000) ms; loading must end well before (the idle gap is reported).
    #[arg(long, default_value_t = 15_000)]
    window_at_ms: u64,
    /// Leases (out of `--keys`) that carry the latest deadline, window start + 999 ms; they
    /// are sent last, in one batch on a quiet connection, so that the latest deadline is
    /// known to within that batch's round trip (see `--bulk-spread-ms`).
    #[arg(long, default_value_t = 1000)]
    tail: u64,
    /// Spread of the other leases' deadlines after the window start, in ms: below 999 so
    /// that a bulk lease (granted up to a congested batch's round trip after its send)
    /// cannot end after the tail.
    #[arg(long, default_value_t = 900)]
    bulk_spread_ms: u64,
    /// Give up waiting for DBSIZE 0 this long after the latest deadline, in ms.
    #[arg(long, default_value_t = 30_000)]
    max_wait_ms: u64,
}

/// Options of `clients`.
#[derive(Debug, Clone, ClapArgs)]
struct ClientsArgs {
    /// Server and target.
    #[command(flatten)]
    common: Common,
    /// Connections in all (blocked + idle), besides the holder and the pinger.
    #[arg(long, default_value_t = 10_000)]
    connections: usize,
    /// How many of them are blocked.
    #[arg(long, default_value_t = 5_000)]
    blocked: usize,
    /// Connections opened at once.
    #[arg(long, default_value_t = 200)]
    connect_parallel: usize,
    /// How long the pinger runs, in seconds.
    #[arg(long, default_value_t = 5)]
    duration_secs: u64,
}

// The queries only the scenarios need, beside the shared client.
impl Conn {
    /// `DBSIZE` as a number.
    async fn dbsize(&mut self) -> Result<u64, BoxError> {
        match self.call(&[b"DBSIZE"]).await? {
            Reply::Int(n) => Ok(u64::try_from(n).map_err(|_| "negative DBSIZE")?),
            other => Err(format!("DBSIZE replied {other:?}").into()),
        }
    }

    /// One numeric field of `INFO section` (None when the server does not report it).
    async fn info_field(&mut self, section: &str, field: &str) -> Result<Option<u64>, BoxError> {
        let text = match self.call(&[b"INFO", section.as_bytes()]).await? {
            Reply::Bulk(b) => String::from_utf8_lossy(&b).into_owned(),
            other => return Err(format!("INFO {section} replied {other:?}").into()),
        };
        Ok(text.lines().find_map(|line| {
            let (name, value) = line.split_once(':')?;
            (name == field).then(|| value.trim().parse::<u64>().ok())?
        }))
    }
}

/// Where an RSS figure came from.
#[derive(Debug, Clone, Copy)]
enum RssSource {
    /// `/proc/PID/status` VmRSS.
    Proc,
    /// `INFO memory` used_memory_rss.
    Info,
}

impl RssSource {
    /// Name for the output.
    fn name(self) -> &'static str {
        match self {
            RssSource::Proc => "proc_vmrss",
            RssSource::Info => "info_used_memory_rss",
        }
    }
}

/// VmRSS of a process in bytes, from `/proc/PID/status`.
fn proc_rss(pid: u32) -> Result<u64, BoxError> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .ok_or("no VmRSS in /proc status")?;
    let kb: u64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()?;
    Ok(kb * 1024)
}

/// The server's RSS in bytes: from /proc when its PID is known, else from INFO.
async fn server_rss(conn: &mut Conn, common: &Common) -> Result<(u64, RssSource), BoxError> {
    if let Some(pid) = common.server_pid {
        return Ok((proc_rss(pid)?, RssSource::Proc));
    }
    let rss = conn
        .info_field("memory", "used_memory_rss")
        .await?
        .ok_or("server reports no used_memory_rss")?;
    Ok((rss, RssSource::Info))
}

/// A random 36-byte owner in the shape of a UUID (8-4-4-4-12 lowercase hex).
fn owner_uuid(rng: &mut fastrand::Rng) -> [u8; 36] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [b'-'; 36];
    for (i, b) in out.iter_mut().enumerate() {
        if !matches!(i, 8 | 13 | 18 | 23) {
            *b = HEX[rng.usize(..16)];
        }
    }
    out
}

/// What a load reports.
#[derive(Debug, Default, Clone)]
struct LoadStats {
    /// Commands granted (`:token` from baton, `+OK` from Redis).
    ok: u64,
    /// Commands refused (error or nil).
    failed: u64,
    /// The first refusal, for the summary.
    first_failure: Option<String>,
    /// Latest `send time + ttl` over all commands, ns after the origin (the earliest the
    /// latest deadline can be: the grant comes after the send).
    latest_deadline_send_ns: u64,
    /// Latest `reply time + ttl` over all commands, ns after the origin (the latest the
    /// latest deadline can be: the grant comes before its reply).
    latest_deadline_reply_ns: u64,
}

impl LoadStats {
    /// Folds another connection's figures into these.
    fn merge(&mut self, other: LoadStats) {
        self.ok += other.ok;
        self.failed += other.failed;
        if self.first_failure.is_none() {
            self.first_failure = other.first_failure;
        }
        self.latest_deadline_send_ns = self
            .latest_deadline_send_ns
            .max(other.latest_deadline_send_ns);
        self.latest_deadline_reply_ns = self
            .latest_deadline_reply_ns
            .max(other.latest_deadline_reply_ns);
    }
}

/// How each loaded lease's ttl is chosen: from the send instant (ns after the origin).
#[derive(Debug, Clone, Copy)]
enum TtlPlan {
    /// The same ttl for every lease.
    Fixed(u64),
    /// Deadline at `window_ns` after the origin plus uniform(0..spread_ms) ms.
    Window {
        /// Window start, ns after the origin.
        window_ns: u64,
        /// Width of the uniform spread, ms.
        spread_ms: u64,
    },
}

impl TtlPlan {
    /// The ttl in ms for a command encoded at `now_ns`.
    fn ttl_ms(self, now_ns: u64, rng: &mut fastrand::Rng) -> u64 {
        match self {
            TtlPlan::Fixed(ms) => ms,
            TtlPlan::Window {
                window_ns,
                spread_ms,
            } => {
                let base = window_ns.saturating_sub(now_ns) / 1_000_000;
                (base + rng.u64(0..spread_ms.max(1))).max(1)
            }
        }
    }
}

/// Loads keys `lock:<first..end>` on one connection in pipelined batches.
async fn load_range(
    addr: String,
    target: Target,
    range: std::ops::Range<u64>,
    batch: usize,
    plan: TtlPlan,
    origin: Instant,
    seed: u64,
) -> Result<LoadStats, BoxError> {
    let mut conn = Conn::connect(&addr).await?;
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut stats = LoadStats::default();
    let mut key = String::with_capacity(32);
    let mut next = range.start;
    while next < range.end {
        let end = range.end.min(next + batch as u64);
        let sent_ns = origin.elapsed().as_nanos() as u64;
        let mut max_ttl = 0u64;
        for n in next..end {
            key.clear();
            let _ = write!(key, "lock:{n}");
            let owner = owner_uuid(&mut rng);
            let ttl = plan.ttl_ms(sent_ns, &mut rng);
            max_ttl = max_ttl.max(ttl);
            let ttl = itoa::Buffer::new().format(ttl).to_owned();
            match target {
                Target::Baton => conn.push(&[b"LOCK", key.as_bytes(), &owner, ttl.as_bytes()]),
                Target::Redis => {
                    conn.push(&[b"SET", key.as_bytes(), &owner, b"PX", ttl.as_bytes()])
                }
            }
        }
        conn.flush().await?;
        for _ in next..end {
            match conn.read().await? {
                Reply::Int(_) | Reply::Status(_) => stats.ok += 1,
                other => {
                    stats.failed += 1;
                    if stats.first_failure.is_none() {
                        stats.first_failure = Some(format!("{other:?}"));
                    }
                }
            }
        }
        let reply_ns = origin.elapsed().as_nanos() as u64;
        let ttl_ns = max_ttl * 1_000_000;
        stats.latest_deadline_send_ns = stats.latest_deadline_send_ns.max(sent_ns + ttl_ns);
        stats.latest_deadline_reply_ns = stats.latest_deadline_reply_ns.max(reply_ns + ttl_ns);
        next = end;
    }
    Ok(stats)
}

/// Loads `shape.keys` leases, keys `lock:<first_key>` onwards, spread over
/// `shape.connections` connections in batches of `shape.batch`; returns the merged figures.
async fn load(
    common: &Common,
    first_key: u64,
    shape: LoadArgs,
    plan: TtlPlan,
    origin: Instant,
) -> Result<LoadStats, BoxError> {
    let keys = shape.keys;
    let connections = shape.connections.max(1) as u64;
    let batch = shape.batch.max(1);
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..connections {
        let range = first_key + keys * c / connections..first_key + keys * (c + 1) / connections;
        tasks.spawn(load_range(
            common.addr(),
            common.target,
            range,
            batch,
            plan,
            origin,
            0x5eed + c,
        ));
    }
    let mut total = LoadStats::default();
    while let Some(done) = tasks.join_next().await {
        total.merge(done??);
    }
    Ok(total)
}

/// A latency histogram in nanoseconds.
fn histogram() -> Result<Histogram<u64>, BoxError> {
    Ok(Histogram::new_with_bounds(1, MAX_TRACKED_NS, 3)?)
}

/// Nanoseconds as milliseconds with three decimals.
fn ms(ns: u64) -> f64 {
    ms_signed(i128::from(ns))
}

/// Signed nanoseconds as milliseconds with three decimals.
fn ms_signed(ns: i128) -> f64 {
    (ns as f64 / 1_000.0).round() / 1_000.0
}

/// `"name":{"count":..,"p50_ms":..,"p99_ms":..,"max_ms":..}` for a histogram.
fn hist_json(name: &str, h: &Histogram<u64>) -> String {
    format!(
        "\"{name}\":{{\"count\":{},\"p50_ms\":{},\"p99_ms\":{},\"max_ms\":{}}}",
        h.len(),
        ms(h.value_at_quantile(0.5)),
        ms(h.value_at_quantile(0.99)),
        ms(h.max())
    )
}

/// One summary line for a histogram.
fn hist_line(name: &str, h: &Histogram<u64>) -> String {
    format!(
        "{name}: {} pings, p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        h.len(),
        ms(h.value_at_quantile(0.5)),
        ms(h.value_at_quantile(0.99)),
        ms(h.max())
    )
}

/// Fails unless the server answers PING.
async fn expect_pong(conn: &mut Conn) -> Result<(), BoxError> {
    match conn.call(&[b"PING"]).await? {
        Reply::Status(s) if s == b"PONG" => Ok(()),
        other => Err(format!("PING replied {other:?}").into()),
    }
}

/// The `memory` scenario.
async fn run_memory(args: MemoryArgs) -> Result<(), BoxError> {
    let common = &args.common;
    let mut ctl = Conn::connect(&common.addr()).await?;
    expect_pong(&mut ctl).await?;
    let keys_before = ctl.dbsize().await?;
    let (rss_before, source) = server_rss(&mut ctl, common).await?;
    let used_before = ctl.info_field("memory", "used_memory").await?;
    let origin = Instant::now();
    let stats = load(common, 0, args.load, TtlPlan::Fixed(HELD_TTL_MS), origin).await?;
    let load_secs = origin.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(args.settle_ms)).await;
    let keys_after = ctl.dbsize().await?;
    let (rss_after, _) = server_rss(&mut ctl, common).await?;
    let used_after = ctl.info_field("memory", "used_memory").await?;
    let held = keys_after.saturating_sub(keys_before);
    let per_lock = if held > 0 {
        (rss_after as f64 - rss_before as f64) / held as f64
    } else {
        0.0
    };
    let used_per_lock = match (used_before, used_after) {
        (Some(b), Some(a)) if held > 0 => Some((a as f64 - b as f64) / held as f64),
        _ => None,
    };
    println!(
        "memory/{}: {} locks loaded in {:.2} s ({:.0}/s), {} refused{}",
        common.target.name(),
        stats.ok,
        load_secs,
        stats.ok as f64 / load_secs.max(1e-9),
        stats.failed,
        stats
            .first_failure
            .as_deref()
            .map(|f| format!(" (first: {f})"))
            .unwrap_or_default()
    );
    println!(
        "  held (DBSIZE) {held}; RSS {} -> {} bytes ({}): {:.1} bytes per held lock",
        rss_before,
        rss_after,
        source.name(),
        per_lock
    );
    if let Some(u) = used_per_lock {
        println!("  INFO used_memory (Redis: allocator view; baton reports RSS there): {u:.1} bytes per held lock");
    }
    println!(
        "{{\"scenario\":\"memory\",\"target\":\"{}\",\"keys\":{},\"loaded\":{},\"failed\":{},\"held\":{},\"load_secs\":{:.3},\"rss_source\":\"{}\",\"rss_before\":{},\"rss_after\":{},\"bytes_per_lock\":{:.1},\"used_memory_bytes_per_lock\":{}}}",
        common.target.name(),
        args.load.keys,
        stats.ok,
        stats.failed,
        held,
        load_secs,
        source.name(),
        rss_before,
        rss_after,
        per_lock,
        used_per_lock.map_or("null".to_string(), |u| format!("{u:.1}"))
    );
    Ok(())
}

/// Sequential PINGs until `stop`; each round trip goes to `before` when sent before
/// `window_ns` (ns after `origin`), else to `during`.
async fn pinger(
    mut conn: Conn,
    origin: Instant,
    window_ns: u64,
    stop: Arc<AtomicBool>,
) -> Result<(Histogram<u64>, Histogram<u64>), BoxError> {
    let mut before = histogram()?;
    let mut during = histogram()?;
    while !stop.load(Ordering::Relaxed) {
        let sent = Instant::now();
        expect_pong(&mut conn).await?;
        let rtt = sent.elapsed().as_nanos() as u64;
        let at = sent.duration_since(origin).as_nanos() as u64;
        let h = if at < window_ns {
            &mut before
        } else {
            &mut during
        };
        h.saturating_record(rtt.max(1));
    }
    Ok((before, during))
}

/// The `expiry` scenario.
async fn run_expiry(args: ExpiryArgs) -> Result<(), BoxError> {
    let common = &args.common;
    let mut poll = Conn::connect(&common.addr()).await?;
    expect_pong(&mut poll).await?;
    let keys_before = poll.dbsize().await?;
    if keys_before != 0 {
        return Err(format!("server not empty: DBSIZE {keys_before}").into());
    }
    let origin = Instant::now();
    let window_ns = args.window_at_ms * 1_000_000;
    let tail = args.tail.min(args.load.keys);
    let bulk = args.load.keys - tail;
    let mut stats = load(
        common,
        0,
        LoadArgs {
            keys: bulk,
            ..args.load
        },
        TtlPlan::Window {
            window_ns,
            spread_ms: args.bulk_spread_ms.min(999),
        },
        origin,
    )
    .await?;
    if tail > 0 {
        let tail_stats = load(
            common,
            bulk,
            LoadArgs {
                keys: tail,
                connections: 1,
                batch: tail as usize,
            },
            TtlPlan::Window {
                window_ns: window_ns + 999_000_000,
                spread_ms: 1,
            },
            origin,
        )
        .await?;
        stats.merge(tail_stats);
    }
    let loaded_ns = origin.elapsed().as_nanos() as u64;
    if loaded_ns >= window_ns {
        return Err(format!(
            "loading took {:.0} ms, past the window start at {} ms: raise --window-at-ms",
            ms(loaded_ns),
            args.window_at_ms
        )
        .into());
    }
    let mut ping_conn = Conn::connect(&common.addr()).await?;
    expect_pong(&mut ping_conn).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let pings = tokio::spawn(pinger(ping_conn, origin, window_ns, stop.clone()));

    let give_up_ns = stats.latest_deadline_reply_ns + args.max_wait_ms * 1_000_000;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut polls = 0u64;
    let mut prev_sent_ns = 0u64;
    let mut zero: Option<(u64, u64)> = None;
    let mut left;
    let mut peak_keys = 0u64;
    loop {
        tick.tick().await;
        let sent_ns = origin.elapsed().as_nanos() as u64;
        left = poll.dbsize().await?;
        let reply_ns = origin.elapsed().as_nanos() as u64;
        polls += 1;
        peak_keys = peak_keys.max(left);
        if left == 0 {
            zero = Some((prev_sent_ns, reply_ns));
            break;
        }
        if reply_ns > give_up_ns {
            break;
        }
        prev_sent_ns = sent_ns;
    }
    stop.store(true, Ordering::Relaxed);
    let (before, during) = pings.await??;

    let target = common.target.name();
    println!(
        "expiry/{target}: {} leases loaded in {:.0} ms, {} refused; window starts {:.0} ms after loading ended",
        stats.ok,
        ms(loaded_ns),
        stats.failed,
        ms(window_ns - loaded_ns)
    );
    println!(
        "  latest deadline between {:.3} and {:.3} ms after the start (send / reply bound)",
        ms(stats.latest_deadline_send_ns),
        ms(stats.latest_deadline_reply_ns)
    );
    let (late_json, late_upper_json, late_lower_json) = match zero {
        Some((prev_sent, zero_ns)) => {
            let late = zero_ns as i128 - stats.latest_deadline_reply_ns as i128;
            let upper = zero_ns as i128 - stats.latest_deadline_send_ns as i128;
            let lower = prev_sent as i128 - stats.latest_deadline_reply_ns as i128;
            println!(
                "  DBSIZE 0 at {:.3} ms: {:.3} ms after the latest deadline (bounds {:.3} .. {:.3} ms), {polls} polls",
                ms(zero_ns),
                ms_signed(late),
                ms_signed(lower),
                ms_signed(upper)
            );
            (
                format!("{}", ms_signed(late)),
                format!("{}", ms_signed(upper)),
                format!("{}", ms_signed(lower)),
            )
        }
        None => {
            println!(
                "  DBSIZE still {left} {} ms after the latest deadline: gave up",
                args.max_wait_ms
            );
            ("null".into(), "null".into(), "null".into())
        }
    };
    println!("  {}", hist_line("PING before the window", &before));
    println!("  {}", hist_line("PING during the expiry", &during));
    println!(
        "{{\"scenario\":\"expiry\",\"target\":\"{target}\",\"keys\":{},\"loaded\":{},\"failed\":{},\"peak_dbsize\":{peak_keys},\"load_ms\":{},\"idle_before_window_ms\":{},\"lateness_ms\":{late_json},\"lateness_upper_ms\":{late_upper_json},\"lateness_lower_ms\":{late_lower_json},\"left_at_give_up\":{},\"polls\":{polls},{},{}}}",
        args.load.keys,
        stats.ok,
        stats.failed,
        ms(loaded_ns),
        ms(window_ns - loaded_ns),
        if zero.is_some() { 0 } else { left },
        hist_json("ping_before", &before),
        hist_json("ping_during", &during),
    );
    Ok(())
}

/// Opens one connection of the `clients` scenario: a blocked one sends its blocking
/// command (and gets no reply), an idle one answers a PING (so the server took it).
async fn open_client(
    addr: String,
    target: Target,
    blocked: Option<usize>,
) -> Result<TcpStream, BoxError> {
    match blocked {
        Some(i) => {
            let mut stream = dial(&addr).await?;
            let mut out = Vec::with_capacity(96);
            match target {
                Target::Baton => {
                    let owner = format!("waiter-{i}");
                    encode(
                        &mut out,
                        &[b"LOCK", HOT_KEY, owner.as_bytes(), b"60000", b"WAIT", b"0"],
                    );
                }
                Target::Redis => encode(&mut out, &[b"BLPOP", REDIS_LIST, b"0"]),
            }
            stream.write_all(&out).await?;
            Ok(stream)
        }
        None => {
            let mut conn = Conn::connect(&addr).await?;
            expect_pong(&mut conn).await?;
            let stream = conn.into_stream().map_err(|e| format!("reunite: {e}"))?;
            Ok(stream)
        }
    }
}

/// The `clients` scenario.
async fn run_clients(args: ClientsArgs) -> Result<(), BoxError> {
    let common = &args.common;
    let target = common.target;
    let blocked = args.blocked.min(args.connections);
    let mut ctl = Conn::connect(&common.addr()).await?;
    expect_pong(&mut ctl).await?;
    let (rss_before, source) = server_rss(&mut ctl, common).await?;
    match target {
        Target::Baton => match ctl.call(&[b"LOCK", HOT_KEY, b"holder", b"600000"]).await? {
            Reply::Int(_) => {}
            other => return Err(format!("holder's LOCK replied {other:?}").into()),
        },
        Target::Redis => {
            ctl.call(&[b"DEL", REDIS_LIST]).await?;
        }
    }

    let started = Instant::now();
    let mut streams = Vec::with_capacity(args.connections);
    let parallel = args.connect_parallel.max(1);
    let mut next = 0usize;
    while next < args.connections {
        let end = args.connections.min(next + parallel);
        let mut tasks = tokio::task::JoinSet::new();
        for i in next..end {
            tasks.spawn(open_client(
                common.addr(),
                target,
                (i < blocked).then_some(i),
            ));
        }
        while let Some(done) = tasks.join_next().await {
            streams.push(done??);
        }
        next = end;
    }
    let open_secs = started.elapsed().as_secs_f64();

    // Every blocked request must have reached the server's wait queue.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut blocked_seen;
    loop {
        blocked_seen = ctl
            .info_field("clients", "blocked_clients")
            .await?
            .unwrap_or(0);
        if blocked_seen >= blocked as u64 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let connected = ctl.info_field("clients", "connected_clients").await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (rss_loaded, _) = server_rss(&mut ctl, common).await?;

    let mut ping_conn = Conn::connect(&common.addr()).await?;
    let mut pings = histogram()?;
    let until = Instant::now() + Duration::from_secs(args.duration_secs);
    while Instant::now() < until {
        let sent = Instant::now();
        expect_pong(&mut ping_conn).await?;
        pings.saturating_record((sent.elapsed().as_nanos() as u64).max(1));
    }
    let (rss_end, _) = server_rss(&mut ctl, common).await?;

    // A blocked client that got any reply (an error, a grant) is no longer blocked.
    let mut answered = 0usize;
    let mut buf = [0u8; 256];
    for s in streams.iter().take(blocked) {
        match s.try_read(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            _ => answered += 1,
        }
    }
    let per_conn = (rss_loaded as f64 - rss_before as f64) / args.connections.max(1) as f64;
    let connected_txt = connected.map_or("null".to_string(), |c| c.to_string());
    println!(
        "clients/{}: {} connections opened in {:.2} s ({} blocked, {} idle); server reports {} connected, {} blocked; {} blocked clients got a reply",
        target.name(),
        streams.len(),
        open_secs,
        blocked,
        args.connections - blocked,
        connected_txt,
        blocked_seen,
        answered
    );
    println!(
        "  RSS ({}) {} -> {} bytes with the connections ({:.0} bytes per connection), {} at the end",
        source.name(),
        rss_before,
        rss_loaded,
        per_conn,
        rss_end
    );
    println!("  {}", hist_line("PING", &pings));
    println!(
        "{{\"scenario\":\"clients\",\"target\":\"{}\",\"connections\":{},\"blocked\":{},\"connected_clients\":{},\"blocked_clients\":{},\"blocked_answered\":{},\"open_secs\":{:.3},\"rss_source\":\"{}\",\"rss_before\":{},\"rss_loaded\":{},\"rss_end\":{},\"bytes_per_conn\":{:.0},{}}}",
        target.name(),
        streams.len(),
        blocked,
        connected_txt,
        blocked_seen,
        answered,
        open_secs,
        source.name(),
        rss_before,
        rss_loaded,
        rss_end,
        per_conn,
        hist_json("ping", &pings),
    );
    drop(streams);
    Ok(())
}

/// Parses the command line and runs the scenario.
#[tokio::main]
async fn main() -> Result<(), BoxError> {
    match Cli::parse().scenario {
        Scenario::Memory(a) => run_memory(a).await,
        Scenario::Expiry(a) => run_expiry(a).await,
        Scenario::Clients(a) => run_clients(a).await,
    }
}
