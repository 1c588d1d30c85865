//! Criterion benches of the lock table (docs/style.md habit 10): one op or cycle per iteration,
//! setup outside the measured loop, lease counts at 1k and 1M.

use std::hint::black_box;
use std::time::{Duration, Instant};

use baton::table::{HoldKind, LockTable, Now, Outcome, SemAcquire, TableConfig};
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, SamplingMode};

fn table(base: Instant) -> LockTable {
    LockTable::new(
        TableConfig {
            shards: 16,
            max_waiters: 1 << 20,
            origin: base,
            token_seed: 0,
        },
        None,
    )
}

fn at(base: Instant, ms: u64) -> Now {
    Now {
        mono: base + Duration::from_millis(ms),
        wall_ms: 1_700_000_000_000 + ms,
    }
}

fn keys(prefix: &str, n: usize) -> Vec<Bytes> {
    (0..n)
        .map(|i| Bytes::from(format!("{prefix}{i}")))
        .collect()
}

fn lock(t: &LockTable, now: Now, key: &Bytes, owner: &Bytes, wait: bool) -> Outcome {
    t.run(&[key], now, |tx| {
        tx.lock_acquire(key, owner, HoldKind::Exclusive, 30_000, wait)
    })
    .value
    .unwrap()
}

fn unlock(t: &LockTable, now: Now, key: &Bytes, owner: &Bytes) {
    t.run(&[key], now, |tx| tx.unlock(key, owner))
        .value
        .unwrap();
}

fn uncontended(c: &mut Criterion) {
    let base = Instant::now();
    let t = table(base);
    let ks = keys("k", 4096);
    let owner = Bytes::from_static(b"owner");
    let mut i = 0usize;
    c.bench_function("lock_unlock_uncontended", |b| {
        b.iter(|| {
            // A cheap pseudo-random walk over the keys.
            i = i
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let key = &ks[(i >> 33) % ks.len()];
            black_box(lock(&t, at(base, 0), key, &owner, false));
            unlock(&t, at(base, 0), key, &owner);
        })
    });
}

fn handoff(c: &mut Criterion) {
    let base = Instant::now();
    let t = table(base);
    let key = Bytes::from_static(b"hot");
    let (a, b_) = (Bytes::from_static(b"a"), Bytes::from_static(b"b"));
    let now = at(base, 0);
    c.bench_function("handoff_unlock_grant", |b| {
        b.iter_batched(
            || {
                lock(&t, now, &key, &a, false);
                match lock(&t, now, &key, &b_, true) {
                    Outcome::Blocked(w) => w,
                    other => panic!("expected a wait, got {other:?}"),
                }
            },
            |mut w| {
                unlock(&t, now, &key, &a);
                let granted = w.rx.try_recv().expect("granted");
                black_box(granted);
                // Teardown inside the loop is one map lookup; keep the key free again.
                unlock(&t, now, &key, &b_);
            },
            BatchSize::SmallInput,
        )
    });
}

fn leases(c: &mut Criterion) {
    let mut group = c.benchmark_group("leases");
    group.sample_size(10);
    // Flat: each 1M expiry sample rebuilds the table, so keep iterations per sample low.
    group.sampling_mode(SamplingMode::Flat);
    for n in [1_000usize, 1_000_000] {
        let base = Instant::now();
        let t = table(base);
        let owner = Bytes::from_static(b"o");
        let now = at(base, 0);
        for key in keys("live", n) {
            lock(&t, now, &key, &owner, false);
        }
        let extra = keys("extra", 1024);
        let mut i = 0usize;
        group.bench_with_input(
            BenchmarkId::new("acquire_release_with_live", n),
            &n,
            |b, _| {
                b.iter(|| {
                    i = (i + 1) % extra.len();
                    black_box(lock(&t, now, &extra[i], &owner, false));
                    unlock(&t, now, &extra[i], &owner);
                })
            },
        );
        drop(t);
        group.bench_with_input(BenchmarkId::new("expire_all", n), &n, |b, &n| {
            b.iter_batched(
                || {
                    let t = table(base);
                    for key in keys("live", n) {
                        lock(&t, now, &key, &owner, false);
                    }
                    t
                },
                |t| {
                    let ended = t.expire(at(base, 30_000), usize::MAX);
                    assert_eq!(ended, n);
                    t
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

fn semaphore(c: &mut Criterion) {
    let base = Instant::now();
    let t = table(base);
    let key = Bytes::from_static(b"sem");
    let owner = Bytes::from_static(b"o");
    let now = at(base, 0);
    t.run(&[&key], now, |tx| tx.sem_create(&key, 10))
        .value
        .unwrap();
    let req = SemAcquire {
        permits: 2,
        create_capacity: None,
        ttl_ms: 30_000,
        wait: false,
    };
    c.bench_function("sem_acquire_release", |b| {
        b.iter(|| {
            black_box(
                t.run(&[&key], now, |tx| tx.sem_acquire(&key, &owner, &req))
                    .value
                    .unwrap(),
            );
            t.run(&[&key], now, |tx| tx.sem_release(&key, &owner))
                .value
                .unwrap();
        })
    });
}

fn mlock(c: &mut Criterion) {
    let mut group = c.benchmark_group("mlock_munlock");
    for n in [1usize, 4, 16] {
        let base = Instant::now();
        let t = table(base);
        let ks = keys("m", n);
        let refs: Vec<&[u8]> = ks.iter().map(|k| k.as_ref()).collect();
        let owner = Bytes::from_static(b"o");
        let now = at(base, 0);
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                black_box(
                    t.run(&refs, now, |tx| tx.mlock(&ks, &owner, 30_000, false))
                        .value
                        .unwrap(),
                );
                t.run(&refs, now, |tx| tx.munlock(&ks, &owner))
                    .value
                    .unwrap();
            })
        });
    }
    group.finish();
}

criterion_group!(benches, uncontended, handoff, leases, semaphore, mlock);
criterion_main!(benches);
