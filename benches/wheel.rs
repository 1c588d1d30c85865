//! Criterion benches of `baton::wheel::Wheel` against a `BTreeMap<(Instant, u64), T>`
//! baseline: insert, cancel, reschedule and expire-all at 1k and 1M timers.
//!
//! Deadlines are lease-like: uniform in 1 ms..60 s with sub-ms jitter. Each figure is the
//! time for the whole batch of N operations; criterion also reports elements per second.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use baton::wheel::{TimerId, Wheel};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

/// Small deterministic PRNG (xorshift64*), so both structures see the same deadlines.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn deadlines(base: Instant, n: usize, seed: u64) -> Vec<Instant> {
    let mut rng = Rng(seed);
    (0..n)
        .map(|_| base + Duration::from_micros(1_000 + rng.next() % 60_000_000))
        .collect()
}

fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    let mut rng = Rng(seed);
    let mut v: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        v.swap(i, (rng.next() % (i as u64 + 1)) as usize);
    }
    v
}

fn filled_wheel(base: Instant, ds: &[Instant]) -> (Wheel<u64>, Vec<TimerId>) {
    let mut w = Wheel::with_capacity(base, ds.len());
    let ids = ds
        .iter()
        .enumerate()
        .map(|(i, &d)| w.insert(d, i as u64))
        .collect();
    (w, ids)
}

fn filled_btree(ds: &[Instant]) -> BTreeMap<(Instant, u64), u64> {
    ds.iter()
        .enumerate()
        .map(|(i, &d)| ((d, i as u64), i as u64))
        .collect()
}

/// Runs `op` on a fresh `setup()` per iteration, timing only `op`.
fn timed<S, R>(iters: u64, mut setup: impl FnMut() -> S, mut op: impl FnMut(S) -> R) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let state = setup();
        let start = Instant::now();
        let r = op(state);
        total += start.elapsed();
        drop(black_box(r));
    }
    total
}

fn bench(c: &mut Criterion) {
    for (label, n) in [("1k", 1_000usize), ("1M", 1_000_000)] {
        let base = Instant::now();
        let ds = deadlines(base, n, 0x5eed);
        let later = deadlines(base + Duration::from_secs(30), n, 0xbeef);
        let order = shuffled(n, 0xcafe);
        let end = base + Duration::from_secs(120);

        let mut g = c.benchmark_group(format!("timers_{label}"));
        g.throughput(Throughput::Elements(n as u64));
        if n > 10_000 {
            g.sample_size(10);
        }

        g.bench_function(BenchmarkId::new("insert", "wheel"), |b| {
            b.iter_custom(|iters| {
                timed(
                    iters,
                    || Wheel::with_capacity(base, n),
                    |mut w| {
                        for (i, &d) in ds.iter().enumerate() {
                            w.insert(d, i as u64);
                        }
                        w
                    },
                )
            })
        });
        g.bench_function(BenchmarkId::new("insert", "btree"), |b| {
            b.iter_custom(|iters| {
                timed(iters, BTreeMap::new, |mut m| {
                    for (i, &d) in ds.iter().enumerate() {
                        m.insert((d, i as u64), i as u64);
                    }
                    m
                })
            })
        });

        g.bench_function(BenchmarkId::new("cancel", "wheel"), |b| {
            b.iter_custom(|iters| {
                timed(
                    iters,
                    || filled_wheel(base, &ds),
                    |(mut w, ids)| {
                        for &i in &order {
                            black_box(w.cancel(ids[i]));
                        }
                        w
                    },
                )
            })
        });
        g.bench_function(BenchmarkId::new("cancel", "btree"), |b| {
            b.iter_custom(|iters| {
                timed(
                    iters,
                    || filled_btree(&ds),
                    |mut m| {
                        for &i in &order {
                            black_box(m.remove(&(ds[i], i as u64)));
                        }
                        m
                    },
                )
            })
        });

        g.bench_function(BenchmarkId::new("reschedule", "wheel"), |b| {
            b.iter_custom(|iters| {
                timed(
                    iters,
                    || filled_wheel(base, &ds),
                    |(mut w, ids)| {
                        for &i in &order {
                            black_box(w.reschedule(ids[i], later[i]));
                        }
                        w
                    },
                )
            })
        });
        g.bench_function(BenchmarkId::new("reschedule", "btree"), |b| {
            b.iter_custom(|iters| {
                timed(
                    iters,
                    || filled_btree(&ds),
                    |mut m| {
                        for &i in &order {
                            let key = (ds[i], i as u64);
                            let v = m.remove(&key).expect("present");
                            m.insert((later[i], i as u64), v);
                        }
                        m
                    },
                )
            })
        });

        // Expire-all: every deadline has passed; poll in batches of 1024 until empty.
        g.bench_function(BenchmarkId::new("expire_all", "wheel"), |b| {
            b.iter_custom(|iters| {
                timed(
                    iters,
                    || filled_wheel(base, &ds),
                    |(mut w, _)| {
                        let mut out = Vec::with_capacity(1024);
                        let mut fired = 0;
                        while w.poll(end, 1024, &mut out) > 0 {
                            fired += out.len();
                            out.clear();
                        }
                        assert_eq!(fired, n);
                        w
                    },
                )
            })
        });
        // Stepwise: an expirer that sleeps until each next deadline and polls with a budget
        // (the BTreeMap equivalent is the same pop_first loop as expire_all).
        g.bench_function(BenchmarkId::new("expire_stepwise", "wheel"), |b| {
            b.iter_custom(|iters| {
                timed(
                    iters,
                    || filled_wheel(base, &ds),
                    |(mut w, _)| {
                        let mut out = Vec::with_capacity(1024);
                        let mut fired = 0;
                        while let Some(at) = w.next_deadline() {
                            w.poll(at.min(end), 1024, &mut out);
                            fired += out.len();
                            out.clear();
                        }
                        assert_eq!(fired, n);
                        w
                    },
                )
            })
        });
        g.bench_function(BenchmarkId::new("expire_all", "btree"), |b| {
            b.iter_custom(|iters| {
                timed(
                    iters,
                    || filled_btree(&ds),
                    |mut m| {
                        let mut fired = 0;
                        while let Some(entry) = m.first_entry() {
                            if entry.key().0 > end {
                                break;
                            }
                            black_box(entry.remove());
                            fired += 1;
                        }
                        assert_eq!(fired, n);
                        m
                    },
                )
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
