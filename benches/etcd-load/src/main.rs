//! `etcd-load`: durable lock cycles against etcd, measured as `baton-bench -w
//! native-cycle -P 1` measures baton, for benches/cluster.sh.
//!
//! Each of `-c` clients has its own gRPC channel (as each baton-bench client has its own
//! TCP connection) and one lease, granted once at start (an etcd session). A cycle takes
//! a lock on a random name among `--keys` and releases it; its latency runs from the
//! acquire's send to the release's reply. `--mode`:
//! - `recipe` (default): etcd's own concurrency recipe (clientv3/concurrency `Mutex`,
//!   the TryLock path): one txn `if create_revision(name/lease) == 0 then put(name/lease,
//!   lease) + get(name prefix, oldest first, limit 1) else get(name/lease) + get(...)`,
//!   granted when the oldest key under the name is ours; released by deleting our key.
//! - `lock-rpc`: the v3lock service (`Lock` with the lease, then `Unlock` of the key).
//!
//! Both are two raft writes per cycle, as baton's LOCK + UNLOCK are two log entries.
//! The last line of output is one JSON object with baton-bench's field names.
//!
//! The `etcd-client` crate (tonic gRPC) is the maintained Rust client of etcd's v3 API;
//! this crate has its own workspace so that its gRPC dependencies stay out of baton's.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use etcd_client::{
    Client, Compare, CompareOp, GetOptions, LockOptions, PutOptions, SortOrder, SortTarget, Txn,
    TxnOp, TxnOpResponse,
};
use hdrhistogram::Histogram;

/// How a cycle locks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// The client-side concurrency recipe (txn create-if-absent, delete).
    Recipe,
    /// The v3lock service (Lock, Unlock).
    LockRpc,
}

#[derive(Parser, Debug, Clone)]
#[command(name = "etcd-load", about = "Lock-cycle load generator for etcd")]
struct Args {
    /// Comma-separated endpoints, e.g. http://127.0.0.1:2379 (each client uses all).
    #[arg(long, default_value = "http://127.0.0.1:2379")]
    endpoints: String,
    /// Concurrent clients.
    #[arg(short, long, default_value_t = 8)]
    connections: usize,
    /// Measured run, seconds.
    #[arg(short, long, default_value_t = 5.0)]
    duration: f64,
    /// Distinct random lock names.
    #[arg(long, default_value_t = 1_000_000)]
    keys: u64,
    /// TTL of each client's lease, seconds.
    #[arg(long, default_value_t = 60)]
    lease_ttl_s: i64,
    /// How a cycle locks.
    #[arg(long, value_enum, default_value_t = Mode::Recipe)]
    mode: Mode,
    /// Free-form label copied into the JSON line.
    #[arg(long, default_value = "")]
    label: String,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Default)]
struct Stats {
    ops: u64,
    errors: u64,
    contended: u64,
}

/// One acquire + release; returns whether the lock was ours (false: someone else held
/// the name, which the recipe would then wait for; counted as contended).
async fn cycle(
    client: &mut Client,
    mode: Mode,
    name: &str,
    lease: i64,
) -> Result<bool, BoxError> {
    match mode {
        Mode::Recipe => {
            let mine = format!("{name}/{lease:x}");
            let owner = GetOptions::new()
                .with_prefix()
                .with_sort(SortTarget::Create, SortOrder::Ascend)
                .with_limit(1);
            let txn = Txn::new()
                .when([Compare::create_revision(
                    mine.clone(),
                    CompareOp::Equal,
                    0,
                )])
                .and_then([
                    TxnOp::put(
                        mine.clone(),
                        "",
                        Some(PutOptions::new().with_lease(lease)),
                    ),
                    TxnOp::get(format!("{name}/"), Some(owner.clone())),
                ])
                .or_else([
                    TxnOp::get(mine.clone(), None),
                    TxnOp::get(format!("{name}/"), Some(owner)),
                ]);
            let resp = client.txn(txn).await?;
            let my_rev = if resp.succeeded() {
                resp.header().map(|h| h.revision()).unwrap_or(0)
            } else {
                match resp.op_responses().first() {
                    Some(TxnOpResponse::Get(g)) => {
                        g.kvs().first().map(|kv| kv.create_revision()).unwrap_or(0)
                    }
                    _ => 0,
                }
            };
            let owner_rev = match resp.op_responses().get(1) {
                Some(TxnOpResponse::Get(g)) => {
                    g.kvs().first().map(|kv| kv.create_revision()).unwrap_or(-1)
                }
                _ => -1,
            };
            client.delete(mine, None).await?;
            Ok(owner_rev == my_rev)
        }
        Mode::LockRpc => {
            let resp = client
                .lock(name, Some(LockOptions::new().with_lease(lease)))
                .await?;
            client.unlock(resp.key().to_vec()).await?;
            Ok(true)
        }
    }
}

async fn run_client(
    args: Arc<Args>,
    stop: Arc<AtomicBool>,
    measuring: Arc<AtomicBool>,
) -> Result<(Histogram<u64>, Stats), BoxError> {
    let endpoints: Vec<&str> = args.endpoints.split(',').collect();
    let mut client = Client::connect(endpoints, None).await?;
    let lease = client.lease_grant(args.lease_ttl_s, None).await?.id();
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
    let mut stats = Stats::default();
    let mut rng = fastrand::Rng::new();
    while !stop.load(Ordering::Relaxed) {
        let name = format!("bench/{}", rng.u64(0..args.keys.max(1)));
        let start = Instant::now();
        let result = cycle(&mut client, args.mode, &name, lease).await;
        let took = start.elapsed();
        if !measuring.load(Ordering::Relaxed) {
            continue;
        }
        match result {
            Ok(true) => {
                stats.ops += 1;
                hist.record(took.as_nanos().max(1) as u64)?;
            }
            Ok(false) => stats.contended += 1,
            Err(_) => stats.errors += 1,
        }
    }
    let _ = client.lease_revoke(lease).await;
    Ok((hist, stats))
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = Arc::new(Args::parse());
    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..args.connections.max(1) {
        tasks.push(tokio::spawn(run_client(
            Arc::clone(&args),
            Arc::clone(&stop),
            Arc::clone(&measuring),
        )));
    }
    // A short warm-up (connections, leases), then the measured run.
    tokio::time::sleep(Duration::from_millis(500)).await;
    measuring.store(true, Ordering::Relaxed);
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(args.duration)).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
    let mut total = Stats::default();
    for t in tasks {
        let (h, s) = t.await??;
        hist.add(&h)?;
        total.ops += s.ops;
        total.errors += s.errors;
        total.contended += s.contended;
    }
    let ops_s = total.ops as f64 / elapsed;
    let mode = match args.mode {
        Mode::Recipe => "etcd-recipe-cycle",
        Mode::LockRpc => "etcd-lock-rpc-cycle",
    };
    println!(
        "{mode} c={} {:.0} cycles/s p50 {:.0} us p99 {:.0} us",
        args.connections,
        ops_s,
        us(hist.value_at_quantile(0.5)),
        us(hist.value_at_quantile(0.99))
    );
    println!(
        "{{\"label\":\"{}\",\"workload\":\"{mode}\",\"connections\":{},\"duration_s\":{elapsed:.3},\
         \"ops\":{},\"ops_per_sec\":{ops_s:.1},\"p50_us\":{:.1},\"p99_us\":{:.1},\"p999_us\":{:.1},\
         \"max_us\":{:.1},\"errors\":{},\"contended\":{}}}",
        args.label.replace('"', ""),
        args.connections,
        total.ops,
        us(hist.value_at_quantile(0.5)),
        us(hist.value_at_quantile(0.99)),
        us(hist.value_at_quantile(0.999)),
        us(hist.max()),
        total.errors,
        total.contended
    );
    Ok(())
}
