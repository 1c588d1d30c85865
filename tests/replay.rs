//! docs/protocol.md "Durability contract", the table's half: replaying the records a random
//! operation sequence emitted gives the same table.
//!
//! proptest runs random sequences of lock, semaphore, string and keyspace operations
//! (waits, hand-offs, cancelled and abandoned waiters, MLOCK, FLUSHALL, time advancing
//! with `expire`) on a [`LockTable`] whose [`RecordSink`] keeps every record. After every
//! step the records so far are framed as a log file, decoded back (the on-disk path) and
//! replayed into a fresh table at the same `now`; both tables' `dump` must be the same set
//! of records. Tokens are compared apart: the replayed counter must be at or above every
//! token handed out (its exact high-water mark may differ by the reserved block).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use baton::persist::{decode_log_bytes, HoldKind, Record, FORMAT_VERSION};
use baton::table::{
    Blocked, LockTable, Now, RecordSink, SemAcquire, SetExpiry, SetOptions, TableConfig,
};
use bytes::Bytes;
use proptest::prelude::*;

/// Lock keys L0 and L1, semaphore S, string T (any op may name any key: WRONGTYPE is fine).
const KEYS: [&str; 4] = ["L0", "L1", "S", "T"];
const OWNERS: [&str; 3] = ["o0", "o1", "o2"];
const TTLS: [u64; 3] = [20, 50, 100];
const WALL0: u64 = 1_700_000_000_000;

/// The recording sink: every record, in append order.
#[derive(Default)]
struct Recorder(Mutex<Vec<Record>>);

impl RecordSink for Recorder {
    fn append(&self, record: &Record) -> u64 {
        let mut records = self.0.lock().unwrap();
        records.push(record.clone());
        records.len() as u64
    }
}

#[derive(Debug, Clone)]
enum Op {
    Lock {
        key: usize,
        owner: usize,
        kind: u8,
        ttl: usize,
        wait: bool,
    },
    Unlock {
        key: usize,
        owner: usize,
    },
    Refresh {
        key: usize,
        owner: usize,
        ttl: usize,
    },
    Mlock {
        swap: bool,
        owner: usize,
        ttl: usize,
        wait: bool,
    },
    Munlock {
        owner: usize,
    },
    SemCreate {
        capacity: u64,
    },
    SemAcquire {
        owner: usize,
        permits: u64,
        ttl: usize,
        wait: bool,
        create: bool,
    },
    SemRelease {
        owner: usize,
    },
    SemDelete,
    Set {
        key: usize,
        value: u8,
        px: Option<usize>,
    },
    Del {
        key: usize,
    },
    FlushAll,
    /// The waiter's WAIT ran out (or its connection closed and the server noticed).
    Cancel {
        pick: usize,
    },
    /// The waiter's connection is gone unnoticed: a grant to it is undone.
    DropRx {
        pick: usize,
    },
    Advance {
        ms: u64,
    },
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let key = prop_oneof![8 => 0..2usize, 1 => 2..4usize];
    let owner = 0..OWNERS.len();
    let ttl = 0..TTLS.len();
    prop_oneof![
        6 => (key.clone(), owner.clone(), 0..3u8, ttl.clone(), any::<bool>())
            .prop_map(|(key, owner, kind, ttl, wait)| Op::Lock { key, owner, kind, ttl, wait }),
        3 => (0..4usize, owner.clone()).prop_map(|(key, owner)| Op::Unlock { key, owner }),
        2 => (0..4usize, owner.clone(), ttl.clone())
            .prop_map(|(key, owner, ttl)| Op::Refresh { key, owner, ttl }),
        2 => (any::<bool>(), owner.clone(), ttl.clone(), any::<bool>())
            .prop_map(|(swap, owner, ttl, wait)| Op::Mlock { swap, owner, ttl, wait }),
        1 => owner.clone().prop_map(|owner| Op::Munlock { owner }),
        1 => (1..=4u64).prop_map(|capacity| Op::SemCreate { capacity }),
        4 => (owner.clone(), 1..=3u64, ttl.clone(), any::<bool>(), prop::bool::weighted(0.4))
            .prop_map(|(owner, permits, ttl, wait, create)| Op::SemAcquire { owner, permits, ttl, wait, create }),
        2 => owner.clone().prop_map(|owner| Op::SemRelease { owner }),
        1 => Just(Op::SemDelete),
        2 => (prop_oneof![4 => Just(3usize), 1 => 0..3usize], any::<u8>(), prop::option::of(ttl))
            .prop_map(|(key, value, px)| Op::Set { key, value, px }),
        1 => (0..4usize).prop_map(|key| Op::Del { key }),
        1 => Just(Op::FlushAll),
        2 => any::<usize>().prop_map(|pick| Op::Cancel { pick }),
        1 => any::<usize>().prop_map(|pick| Op::DropRx { pick }),
        4 => prop_oneof![Just(1u64), Just(10), Just(20), Just(50), Just(100)]
            .prop_map(|ms| Op::Advance { ms }),
    ]
}

struct Harness {
    base: Instant,
    ms: u64,
    shards: usize,
    sink: Arc<Recorder>,
    table: LockTable,
    waiters: Vec<Blocked>,
    /// Receivers dropped by DropRx: their waiters stay queued until a grant fails.
    dropped: Vec<Arc<baton::table::Waiter>>,
}

impl Harness {
    fn new(shards: usize) -> Self {
        let base = Instant::now();
        let sink = Arc::new(Recorder::default());
        let table = LockTable::new(
            config(base, shards, 1_000),
            Some(sink.clone() as Arc<dyn RecordSink>),
        );
        Harness {
            base,
            ms: 0,
            shards,
            sink,
            table,
            waiters: Vec::new(),
            dropped: Vec::new(),
        }
    }

    fn now(&self) -> Now {
        Now {
            mono: self.base + Duration::from_millis(self.ms),
            wall_ms: WALL0 + self.ms,
        }
    }

    fn keep(&mut self, outcome: Result<baton::table::Outcome, baton::error::RespError>) {
        if let Ok(baton::table::Outcome::Blocked(b)) = outcome {
            self.waiters.push(b);
        }
    }

    fn apply(&mut self, op: &Op) {
        let now = self.now();
        let key = |i: usize| Bytes::from_static(KEYS[i].as_bytes());
        let owner = |i: usize| Bytes::from_static(OWNERS[i].as_bytes());
        match op {
            Op::Lock {
                key: k,
                owner: o,
                kind,
                ttl,
                wait,
            } => {
                let kind =
                    [HoldKind::Exclusive, HoldKind::Read, HoldKind::SharedWrite][*kind as usize];
                let (k, o) = (key(*k), owner(*o));
                let out = self
                    .table
                    .run(&[&k], now, |tx| {
                        tx.lock_acquire(&k, &o, kind, TTLS[*ttl], *wait)
                    })
                    .value;
                self.keep(out);
            }
            Op::Unlock { key: k, owner: o } => {
                let (k, o) = (key(*k), owner(*o));
                let _ = self.table.run(&[&k], now, |tx| tx.unlock(&k, &o));
            }
            Op::Refresh {
                key: k,
                owner: o,
                ttl,
            } => {
                let (k, o) = (key(*k), owner(*o));
                let _ = self
                    .table
                    .run(&[&k], now, |tx| tx.refresh(&k, &o, TTLS[*ttl]));
            }
            Op::Mlock {
                swap,
                owner: o,
                ttl,
                wait,
            } => {
                let mut keys = vec![key(0), key(1)];
                if *swap {
                    keys.reverse();
                }
                let o = owner(*o);
                let refs: Vec<&[u8]> = keys.iter().map(|k| k.as_ref()).collect();
                let out = self
                    .table
                    .run(&refs, now, |tx| tx.mlock(&keys, &o, TTLS[*ttl], *wait))
                    .value;
                self.keep(out);
            }
            Op::Munlock { owner: o } => {
                let keys = vec![key(0), key(1)];
                let o = owner(*o);
                let refs: Vec<&[u8]> = keys.iter().map(|k| k.as_ref()).collect();
                let _ = self.table.run(&refs, now, |tx| tx.munlock(&keys, &o));
            }
            Op::SemCreate { capacity } => {
                let k = key(2);
                let _ = self
                    .table
                    .run(&[&k], now, |tx| tx.sem_create(&k, *capacity));
            }
            Op::SemAcquire {
                owner: o,
                permits,
                ttl,
                wait,
                create,
            } => {
                let (k, o) = (key(2), owner(*o));
                let req = SemAcquire {
                    permits: *permits,
                    create_capacity: create.then_some(3),
                    ttl_ms: TTLS[*ttl],
                    wait: *wait,
                };
                let out = self
                    .table
                    .run(&[&k], now, |tx| tx.sem_acquire(&k, &o, &req))
                    .value;
                self.keep(out);
            }
            Op::SemRelease { owner: o } => {
                let (k, o) = (key(2), owner(*o));
                let _ = self.table.run(&[&k], now, |tx| tx.sem_release(&k, &o));
            }
            Op::SemDelete => {
                let k = key(2);
                let _ = self.table.run(&[&k], now, |tx| tx.sem_delete(&k));
            }
            Op::Set { key: k, value, px } => {
                let k = key(*k);
                let opts = SetOptions {
                    expiry: match px {
                        Some(t) => {
                            let (mono, wall) = now.deadline(TTLS[*t]);
                            SetExpiry::At(mono, wall)
                        }
                        None => SetExpiry::Never,
                    },
                    ..SetOptions::default()
                };
                let v = Bytes::from(vec![*value]);
                let _ = self.table.run(&[&k], now, |tx| tx.set(&k, v, &opts));
            }
            Op::Del { key: k } => {
                let k = key(*k);
                let _ = self.table.run(&[&k], now, |tx| tx.del(&k));
            }
            Op::FlushAll => {
                self.table.run_all(now, |tx| tx.flush());
            }
            Op::Cancel { pick } => {
                if !self.waiters.is_empty() {
                    let b = self.waiters.remove(pick % self.waiters.len());
                    self.table.cancel(&b.waiter, now);
                }
            }
            Op::DropRx { pick } => {
                if !self.waiters.is_empty() {
                    let b = self.waiters.remove(pick % self.waiters.len());
                    self.dropped.push(b.waiter);
                }
            }
            Op::Advance { ms } => {
                self.ms += ms;
                self.table.expire(self.now(), usize::MAX);
            }
        }
    }

    /// Replays the records so far (through the log file format) into a fresh table at the
    /// same `now` and compares the two tables.
    fn check_replay(&self) -> Result<(), TestCaseError> {
        let now = self.now();
        // Leases due at `now` are gone on both sides: replay drops them, expire ends them.
        self.table.expire(now, usize::MAX);
        let records = self.sink.0.lock().unwrap().clone();

        // The on-disk path: a log file of framed records, decoded back.
        let mut file = b"BATONLOG".to_vec();
        file.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        for r in &records {
            r.encode_frame(&mut file);
        }
        let (decoded, valid) = decode_log_bytes(&file).expect("a log we wrote decodes");
        prop_assert_eq!(valid, file.len(), "the whole file is valid");
        prop_assert_eq!(&decoded, &records);

        let fresh = LockTable::new(config(self.base, self.shards, 1_000), None);
        for r in &decoded {
            fresh.replay(r, now);
        }
        let (orig_state, orig_hw) = dump_set(&self.table, now);
        let (replayed_state, _) = dump_set(&fresh, now);
        prop_assert_eq!(
            &replayed_state,
            &orig_state,
            "replayed table differs from the live one (left: replayed)"
        );
        let max_token = records.iter().filter_map(Record::token).max().unwrap_or(0);
        prop_assert!(orig_hw >= max_token);
        prop_assert!(
            fresh.last_token() >= self.table.last_token(),
            "replayed counter {} below the last token {}",
            fresh.last_token(),
            self.table.last_token()
        );
        Ok(())
    }
}

fn config(origin: Instant, shards: usize, token_seed: i64) -> TableConfig {
    TableConfig {
        shards,
        max_waiters: 1_000,
        origin,
        token_seed,
    }
}

/// The table's dump as a sorted list of debug strings, without the token high-water mark
/// (returned apart).
fn dump_set(table: &LockTable, now: Now) -> (Vec<String>, i64) {
    let mut out = Vec::new();
    let mut hw = 0;
    table.dump(now, &mut |r| match r {
        Record::TokenHighWater { upto } => hw = hw.max(upto),
        other => out.push(format!("{other:?}")),
    });
    out.sort();
    (out, hw)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn replaying_the_log_gives_the_same_table(
        ops in prop::collection::vec(op_strategy(), 1..60),
        many_shards in any::<bool>(),
    ) {
        let mut h = Harness::new(if many_shards { 8 } else { 1 });
        for op in &ops {
            h.apply(op);
            h.check_replay()?;
        }
    }
}

/// The property's check itself can fail: a hold the log does not know about shows up.
#[test]
fn a_missing_record_is_noticed() {
    let h = Harness::new(1);
    let now = h.now();
    let k = Bytes::from_static(b"L0");
    let o = Bytes::from_static(b"o0");
    let _ = h.table.run(&[&k], now, |tx| {
        tx.lock_acquire(&k, &o, HoldKind::Exclusive, 50, false)
    });
    h.check_replay().expect("complete log replays");
    // Lose the grant record: the replayed table misses the hold.
    h.sink
        .0
        .lock()
        .unwrap()
        .retain(|r| !matches!(r, Record::Grant { .. }));
    assert!(h.check_replay().is_err());
}
