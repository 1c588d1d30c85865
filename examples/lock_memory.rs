//! Resident memory per held lock: builds a `LockTable` with N exclusive holds (16-byte keys,
//! 36-byte owners, 30 s leases) and reads RSS from `/proc/self/statm` before and after.
//!
//! Run: `cargo run --release --example lock_memory [N]` (default 1,000,000). Compare with
//! Redis holding N `SET key value PX ttl` keys (its `used_memory_rss` delta / N).

use std::time::{Duration, Instant};

/// The server's allocator (src/main.rs), so that the figures are the server's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use baton::table::{HoldKind, LockTable, Now, TableConfig};
use bytes::Bytes;

/// Resident set size in bytes (Linux).
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("statm resident field");
    pages * 4096
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let base = Instant::now();
    let now = Now {
        mono: base,
        wall_ms: 1_700_000_000_000,
    };
    // Keys and owners are built one per grant, as the server's decoder hands them over; the
    // inputs are generated lazily so only what the table keeps stays resident.
    let before = rss();
    let table = LockTable::new(
        TableConfig {
            shards: 16,
            max_waiters: 1 << 20,
            origin: base,
            token_seed: 0,
        },
        None,
    );
    for i in 0..n {
        let key = Bytes::from(format!("lock:{i:011}")); // 16 bytes
        let owner = Bytes::from(format!("{:08x}-0000-4000-8000-{:012x}", i, i)); // 36 bytes
        debug_assert_eq!((key.len(), owner.len()), (16, 36));
        let out = table.run(&[&key], now, |tx| {
            tx.lock_acquire(&key, &owner, HoldKind::Exclusive, 30_000, false)
        });
        assert!(out.value.is_ok());
    }
    let after = rss();
    let sizes = baton::table::storage_sizes();
    let sizes: Vec<String> = sizes
        .iter()
        .map(|(name, n)| format!("{name} {n}"))
        .collect();
    println!(
        "size_of: {} (a sole lock's Entry: one block of 26 + key + owner bytes)",
        sizes.join(" ")
    );
    let stats = table.stats();
    assert_eq!(stats.holders, n);
    println!(
        "{n} held locks: RSS {:.1} MiB -> {:.1} MiB, {:.1} bytes per held lock",
        before as f64 / 1048576.0,
        after as f64 / 1048576.0,
        (after - before) as f64 / n as f64
    );
    // Expiry of all of them at once (one unbounded round), for a rough figure.
    let start = Instant::now();
    let ended = table.expire(
        Now {
            mono: base + Duration::from_secs(31),
            wall_ms: now.wall_ms + 31_000,
        },
        usize::MAX,
    );
    println!(
        "expired {ended} in {:.1} ms ({:.0} ns per lease)",
        start.elapsed().as_secs_f64() * 1e3,
        start.elapsed().as_nanos() as f64 / ended.max(1) as f64
    );
}
