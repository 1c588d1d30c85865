//! Unit tests of the table state machine with an injected clock: no sockets, no sleeping.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::HoldKind;
use super::*;
use crate::error::RespError;

pub(crate) struct Clock {
    pub(crate) base: Instant,
    pub(crate) ms: u64,
}

impl Clock {
    pub(crate) fn new() -> Self {
        Clock {
            base: Instant::now(),
            ms: 0,
        }
    }
    pub(crate) fn now(&self) -> Now {
        Now {
            mono: self.base + Duration::from_millis(self.ms),
            wall_ms: 1_700_000_000_000 + self.ms,
        }
    }
}

pub(crate) fn table(clock: &Clock) -> LockTable {
    LockTable::new(
        TableConfig {
            shards: 4,
            max_waiters: 100,
            origin: clock.base,
            token_seed: 0,
        },
        None,
    )
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn acquire(
    t: &LockTable,
    now: Now,
    key: &str,
    owner: &str,
    kind: HoldKind,
    ttl: u64,
    wait: bool,
) -> Result<Outcome, RespError> {
    let (k, o) = (b(key), b(owner));
    t.run(&[&k], now, |tx| tx.lock_acquire(&k, &o, kind, ttl, wait))
        .value
}

fn token(o: Result<Outcome, RespError>) -> Option<i64> {
    match o {
        Ok(Outcome::Reply(Reply::Int(t))) => Some(t),
        Ok(Outcome::Reply(Reply::Nil)) => None,
        other => panic!("unexpected {other:?}"),
    }
}

fn blocked(o: Result<Outcome, RespError>) -> Blocked {
    match o {
        Ok(Outcome::Blocked(b)) => b,
        other => panic!("expected a wait, got {other:?}"),
    }
}

fn granted(b: &mut Blocked) -> Option<i64> {
    match b.rx.try_recv() {
        Ok(WaitResult::Granted {
            reply: Reply::Int(t),
            ..
        }) => Some(t),
        Ok(other) => panic!("unexpected {other:?}"),
        Err(_) => None,
    }
}

#[test]
fn lease_never_ends_before_its_deadline_and_ends_at_it() {
    let mut clock = Clock::new();
    let t = table(&clock);
    token(acquire(
        &t,
        clock.now(),
        "k",
        "a",
        HoldKind::Exclusive,
        100,
        false,
    ))
    .unwrap();
    clock.ms = 99;
    assert_eq!(t.expire(clock.now(), 100), 0);
    assert!(token(acquire(
        &t,
        clock.now(),
        "k",
        "b",
        HoldKind::Exclusive,
        100,
        false
    ))
    .is_none());
    clock.ms = 100;
    assert_eq!(t.expire(clock.now(), 100), 1);
    assert!(token(acquire(
        &t,
        clock.now(),
        "k",
        "b",
        HoldKind::Exclusive,
        100,
        false
    ))
    .is_some());
}

#[test]
fn next_deadline_follows_the_earliest_lease() {
    let clock = Clock::new();
    let t = table(&clock);
    assert_eq!(t.next_deadline(), None);
    token(acquire(
        &t,
        clock.now(),
        "a",
        "o",
        HoldKind::Exclusive,
        500,
        false,
    ));
    token(acquire(
        &t,
        clock.now(),
        "b",
        "o",
        HoldKind::Exclusive,
        200,
        false,
    ));
    let next = t.next_deadline().unwrap();
    assert!(next <= clock.base + Duration::from_millis(200));
}

#[test]
fn refresh_moves_the_deadline() {
    let mut clock = Clock::new();
    let t = table(&clock);
    token(acquire(
        &t,
        clock.now(),
        "k",
        "a",
        HoldKind::Exclusive,
        100,
        false,
    ));
    clock.ms = 90;
    let k = b("k");
    let r = t
        .run(&[&k], clock.now(), |tx| tx.refresh(&k, b"a", 100))
        .value
        .unwrap();
    assert_eq!(r, Reply::Int(1));
    clock.ms = 150;
    assert_eq!(t.expire(clock.now(), 100), 0);
    clock.ms = 190;
    assert_eq!(t.expire(clock.now(), 100), 1);
    let r = t
        .run(&[&k], clock.now(), |tx| tx.refresh(&k, b"a", 100))
        .value
        .unwrap();
    assert_eq!(r, Reply::Int(0));
}

#[test]
fn a_waiters_lease_starts_at_its_grant() {
    let mut clock = Clock::new();
    let t = table(&clock);
    token(acquire(
        &t,
        clock.now(),
        "k",
        "a",
        HoldKind::Exclusive,
        100,
        false,
    ));
    let mut w = blocked(acquire(
        &t,
        clock.now(),
        "k",
        "b",
        HoldKind::Exclusive,
        100,
        true,
    ));
    clock.ms = 100;
    t.expire(clock.now(), 100);
    assert!(granted(&mut w).is_some());
    clock.ms = 199;
    assert_eq!(
        t.expire(clock.now(), 100),
        0,
        "b's lease runs from its grant at 100"
    );
    clock.ms = 200;
    assert_eq!(t.expire(clock.now(), 100), 1);
}

#[test]
fn an_undeliverable_grant_passes_to_the_next_waiter() {
    let clock = Clock::new();
    let t = table(&clock);
    token(acquire(
        &t,
        clock.now(),
        "k",
        "a",
        HoldKind::Exclusive,
        1000,
        false,
    ));
    let gone = blocked(acquire(
        &t,
        clock.now(),
        "k",
        "gone",
        HoldKind::Exclusive,
        1000,
        true,
    ));
    let mut next = blocked(acquire(
        &t,
        clock.now(),
        "k",
        "c",
        HoldKind::Exclusive,
        1000,
        true,
    ));
    drop(gone.rx);
    let k = b("k");
    t.run(&[&k], clock.now(), |tx| tx.unlock(&k, b"a"))
        .value
        .unwrap();
    assert!(granted(&mut next).is_some());
    assert_eq!(t.waiter_count(), 0);
    let info = t
        .run(&[&k], clock.now(), |tx| tx.lock_info(&k))
        .value
        .unwrap();
    let Reply::Map(fields) = info else { panic!() };
    let Reply::Array(holders) = &fields[1].1 else {
        panic!()
    };
    assert_eq!(holders.len(), 1);
}

#[test]
fn cancel_after_grant_reports_the_grant() {
    let clock = Clock::new();
    let t = table(&clock);
    token(acquire(
        &t,
        clock.now(),
        "k",
        "a",
        HoldKind::Exclusive,
        1000,
        false,
    ));
    let mut w = blocked(acquire(
        &t,
        clock.now(),
        "k",
        "b",
        HoldKind::Exclusive,
        1000,
        true,
    ));
    let k = b("k");
    t.run(&[&k], clock.now(), |tx| tx.unlock(&k, b"a"))
        .value
        .unwrap();
    assert!(!t.cancel(&w.waiter, clock.now()).value, "already granted");
    assert!(granted(&mut w).is_some());
}

#[test]
fn max_waiters_is_an_error() {
    let clock = Clock::new();
    let t = LockTable::new(
        TableConfig {
            shards: 1,
            max_waiters: 1,
            origin: clock.base,
            token_seed: 0,
        },
        None,
    );
    token(acquire(
        &t,
        clock.now(),
        "k",
        "a",
        HoldKind::Exclusive,
        1000,
        false,
    ));
    let _w = blocked(acquire(
        &t,
        clock.now(),
        "k",
        "b",
        HoldKind::Exclusive,
        1000,
        true,
    ));
    let err = acquire(&t, clock.now(), "k", "c", HoldKind::Exclusive, 1000, true).unwrap_err();
    assert_eq!(err, RespError::MAX_WAITERS);
}

#[test]
fn mlock_waiters_in_opposite_orders_do_not_deadlock() {
    let clock = Clock::new();
    let t = table(&clock);
    let (a, bk, o1, o2, h) = (b("a"), b("b"), b("o1"), b("o2"), b("h"));
    // h holds both; o1 waits for [a, b], o2 for [b, a].
    t.run(&[&a, &bk], clock.now(), |tx| {
        tx.mlock(&[a.clone(), bk.clone()], &h, 1000, false)
    })
    .value
    .unwrap();
    let w1 = t
        .run(&[&a, &bk], clock.now(), |tx| {
            tx.mlock(&[a.clone(), bk.clone()], &o1, 1000, true)
        })
        .value;
    let w2 = t
        .run(&[&a, &bk], clock.now(), |tx| {
            tx.mlock(&[bk.clone(), a.clone()], &o2, 1000, true)
        })
        .value;
    let (mut w1, mut w2) = (blocked(w1), blocked(w2));
    t.run(&[&a, &bk], clock.now(), |tx| {
        tx.munlock(&[a.clone(), bk.clone()], &h)
    })
    .value
    .unwrap();
    assert!(
        matches!(w1.rx.try_recv(), Ok(WaitResult::Granted { .. })),
        "first arrival first"
    );
    assert!(w2.rx.try_recv().is_err());
    t.run(&[&a, &bk], clock.now(), |tx| {
        tx.munlock(&[a.clone(), bk.clone()], &o1)
    })
    .value
    .unwrap();
    assert!(matches!(w2.rx.try_recv(), Ok(WaitResult::Granted { .. })));
}

#[test]
fn semaphore_fifo_holds_back_small_requests_behind_a_large_one() {
    let clock = Clock::new();
    let t = table(&clock);
    let k = b("s");
    let acq = |owner: &str, permits: u64, wait: bool| {
        let o = b(owner);
        let req = SemAcquire {
            permits,
            create_capacity: Some(3),
            ttl_ms: 1000,
            wait,
        };
        t.run(&[&k], clock.now(), |tx| tx.sem_acquire(&k, &o, &req))
            .value
    };
    assert!(token(acq("a", 2, false)).is_some());
    let mut big = blocked(acq("big", 3, true));
    assert!(
        token(acq("small", 1, false)).is_none(),
        "1 permit is free but big is first"
    );
    t.run(&[&k], clock.now(), |tx| tx.sem_release(&k, b"a"))
        .value
        .unwrap();
    assert!(granted(&mut big).is_some());
}

#[test]
fn replaying_dumped_records_gives_the_same_holds() {
    let clock = Clock::new();
    let t = table(&clock);
    token(acquire(
        &t,
        clock.now(),
        "k",
        "a",
        HoldKind::Exclusive,
        1000,
        false,
    ));
    token(acquire(
        &t,
        clock.now(),
        "r",
        "x",
        HoldKind::Read,
        500,
        false,
    ));
    let mut records = Vec::new();
    t.dump(clock.now(), &mut |r| records.push(r));
    let copy = table(&clock);
    for r in &records {
        copy.replay(r, clock.now());
    }
    assert_eq!(copy.stats().holders, 2);
    let next = token(acquire(
        &copy,
        clock.now(),
        "z",
        "o",
        HoldKind::Exclusive,
        10,
        false,
    ))
    .unwrap();
    assert!(next > t.last_token(), "tokens continue above the dump");
    let _ = Arc::new(());
}

#[test]
fn an_undeliverable_mlock_grant_keeps_the_keys_the_owner_held_before() {
    let clock = Clock::new();
    let t = table(&clock);
    let (a, bk, o, x) = (b("a"), b("b"), b("o"), b("x"));
    let tb = token(acquire(
        &t,
        clock.now(),
        "b",
        "o",
        HoldKind::Exclusive,
        60_000,
        false,
    ));
    token(acquire(
        &t,
        clock.now(),
        "a",
        "x",
        HoldKind::Exclusive,
        60_000,
        false,
    ));
    // o's MLOCK waits on a only (it holds b already), then its connection goes away.
    let gone = t
        .run(&[&a, &bk], clock.now(), |tx| {
            tx.mlock(&[a.clone(), bk.clone()], &o, 1000, true)
        })
        .value;
    drop(blocked(gone).rx);
    t.run(&[&a], clock.now(), |tx| tx.unlock(&a, &x))
        .value
        .unwrap();
    // The grant of a is undone; o's own earlier hold of b is not part of it and stays.
    let again = token(acquire(
        &t,
        clock.now(),
        "b",
        "o",
        HoldKind::Exclusive,
        60_000,
        false,
    ));
    assert_eq!(again, tb, "o still holds b with its token");
    assert!(token(acquire(
        &t,
        clock.now(),
        "a",
        "y",
        HoldKind::Exclusive,
        1000,
        false
    ))
    .is_some());
    assert_eq!(t.waiter_count(), 0);
}

/// A hand-off inside an expiry batch may renew a hold whose timer already fired in that batch
/// (an MLOCK counting the owner's held key as granted): the renewed lease must survive the
/// stale timer and get a timer of its own. Found by tests/model.rs.
#[test]
fn renewal_inside_an_expiry_batch_keeps_its_lease_and_timer() {
    let mut clock = Clock::new();
    let t = LockTable::new(
        TableConfig {
            shards: 1,
            max_waiters: 100,
            origin: clock.base,
            token_seed: 0,
        },
        None,
    );
    let (k0, k2, a) = (b("k0"), b("k2"), b("a"));
    token(acquire(
        &t,
        clock.now(),
        "k2",
        "a",
        HoldKind::Exclusive,
        100,
        false,
    ))
    .unwrap();
    token(acquire(
        &t,
        clock.now(),
        "k0",
        "b",
        HoldKind::Exclusive,
        100,
        false,
    ))
    .unwrap();
    let now = clock.now();
    let mut w = blocked(
        t.run(&[&k2, &k0], now, |tx| {
            tx.mlock(&[k2.clone(), k0.clone()], &a, 30, true)
        })
        .value,
    );
    clock.ms = 100;
    assert_eq!(t.expire(clock.now(), 100), 2);
    assert!(granted_multi(&mut w));
    let info = |key: &Bytes| t.run(&[key], clock.now(), |tx| tx.lock_info(key)).value;
    assert!(
        !matches!(info(&k2), Ok(Reply::Nil)),
        "renewed k2 lost at once"
    );
    assert_eq!(t.stats().timers, 2, "one timer per lease");
    clock.ms = 130;
    assert_eq!(t.expire(clock.now(), 100), 2);
    assert_eq!(t.stats().holders, 0);
}

/// An MLOCK grant undone for a gone connection releases only what it granted, not a key the
/// owner held before from a delivered LOCK. Found by tests/model.rs.
#[test]
fn undone_mlock_grant_keeps_the_owners_earlier_hold() {
    let mut clock = Clock::new();
    let t = table(&clock);
    let (k0, k1, a) = (b("k0"), b("k1"), b("a"));
    let held = token(acquire(
        &t,
        clock.now(),
        "k0",
        "a",
        HoldKind::Exclusive,
        100,
        false,
    ))
    .unwrap();
    token(acquire(
        &t,
        clock.now(),
        "k1",
        "b",
        HoldKind::Exclusive,
        30,
        false,
    ))
    .unwrap();
    let now = clock.now();
    let w = blocked(
        t.run(&[&k0, &k1], now, |tx| {
            tx.mlock(&[k0.clone(), k1.clone()], &a, 30, true)
        })
        .value,
    );
    drop(w.rx);
    clock.ms = 30;
    assert_eq!(t.expire(clock.now(), 100), 1);
    let again = t
        .run(&[&k0], clock.now(), |tx| {
            tx.lock_acquire(&k0, &a, HoldKind::Exclusive, 100, false)
        })
        .value;
    assert_eq!(token(again), Some(held), "a's LOCK on k0 stands");
    assert_eq!(t.stats().holders, 1, "k1's undone grant is gone");
}

fn granted_multi(b: &mut Blocked) -> bool {
    matches!(
        b.rx.try_recv(),
        Ok(WaitResult::Granted {
            reply: Reply::Array(_),
            ..
        })
    )
}

#[test]
fn reset_drops_every_key_fails_every_waiter_and_keeps_tokens_rising() {
    let clock = Clock::new();
    let t = table(&clock);
    let now = clock.now();
    let first = match acquire(&t, now, "k", "a", HoldKind::Exclusive, 10_000, false) {
        Ok(Outcome::Reply(Reply::Int(token))) => token,
        other => panic!("expected a grant, got {other:?}"),
    };
    let Ok(Outcome::Blocked(mut blocked)) =
        acquire(&t, now, "k", "b", HoldKind::Exclusive, 10_000, true)
    else {
        panic!("expected a queued waiter");
    };
    assert_eq!(t.waiter_count(), 1);
    let err = RespError::fixed("TRYAGAIN leadership changed");
    t.reset(err.clone());
    match blocked.rx.try_recv() {
        Ok(WaitResult::Failed(got)) => assert_eq!(got, err),
        other => panic!("the waiter must fail, got {other:?}"),
    }
    assert_eq!(t.waiter_count(), 0);
    assert_eq!(t.stats().keys(), 0);
    assert_eq!(t.next_deadline(), None);
    match acquire(&t, now, "k", "c", HoldKind::Exclusive, 10_000, false) {
        Ok(Outcome::Reply(Reply::Int(token))) => assert!(token > first),
        other => panic!("expected a grant after the reset, got {other:?}"),
    }
}

/// Cluster mode: a replayed hold whose wall deadline passed stays until `expire` ends it
/// (the leader's committed Release), so no node drops it by its own clock.
#[test]
fn with_ends_by_log_replay_keeps_a_passed_hold_as_due() {
    let mut clock = Clock::new();
    let grant = Record::Grant {
        key: b("k"),
        owner: b("a"),
        hold: HoldKind::Exclusive,
        token: 7,
        deadline_ms: clock.now().wall_ms + 100,
    };
    clock.ms += 1_000;
    let local = table(&clock);
    local.replay(&grant, clock.now());
    assert_eq!(local.stats().holders, 0, "single-node replay drops it");

    let by_log = table(&clock);
    by_log.set_ends_by_log(true);
    by_log.replay(&grant, clock.now());
    assert_eq!(by_log.stats().holders, 1, "cluster replay keeps it");
    let other = acquire(
        &by_log,
        clock.now(),
        "k",
        "b",
        HoldKind::Exclusive,
        1000,
        false,
    );
    assert_eq!(
        token(other),
        None,
        "never granted while the log lists the hold"
    );
    assert_eq!(by_log.expire(clock.now(), 10), 1, "due now for the expirer");
    assert_eq!(by_log.stats().holders, 0);
}

/// LOCK k for `owner` (exclusive, 10 s), waiting when `wait`.
fn lock_k(t: &LockTable, now: Now, owner: &str, wait: bool) -> Result<Outcome, RespError> {
    acquire(t, now, "k", owner, HoldKind::Exclusive, 10_000, wait)
}

fn unlock(t: &LockTable, now: Now, key: &str, owner: &str) {
    let (k, o) = (b(key), b(owner));
    t.run(&[&k], now, |tx| tx.unlock(&k, &o)).value.unwrap();
}

#[test]
fn withdraw_of_a_grant_nobody_receives_releases_it_and_serves_the_next() {
    let clock = Clock::new();
    let t = table(&clock);
    let now = clock.now();
    token(lock_k(&t, now, "a", false)).unwrap();
    let mut first = blocked(lock_k(&t, now, "b", true));
    let mut second = blocked(lock_k(&t, now, "c", true));
    unlock(&t, now, "k", "a");
    // b is granted in the channel, but its connection goes away before reading it.
    t.withdraw(&first.waiter, &mut first.rx, now);
    assert!(
        granted(&mut second).is_some(),
        "c is served once b's grant is undone"
    );
    assert_eq!(t.waiter_count(), 0);
    unlock(&t, now, "k", "c");
    assert!(token(lock_k(&t, now, "d", false)).is_some());
}

#[test]
fn withdraw_of_the_only_waiters_grant_frees_the_key() {
    let clock = Clock::new();
    let t = table(&clock);
    let now = clock.now();
    token(lock_k(&t, now, "a", false)).unwrap();
    let mut only = blocked(lock_k(&t, now, "b", true));
    unlock(&t, now, "k", "a");
    t.withdraw(&only.waiter, &mut only.rx, now);
    assert!(token(lock_k(&t, now, "d", false)).is_some(), "k is free");
}

/// A client whose blocked LOCK's reply is lost repeats it on a new connection and gets the
/// same token (docs/protocol.md): the old connection's withdraw must not end that hold.
#[test]
fn withdraw_leaves_a_grant_its_owner_renewed_on_another_connection() {
    let mut clock = Clock::new();
    let t = table(&clock);
    let now = clock.now();
    token(lock_k(&t, now, "a", false)).unwrap();
    let mut lost = blocked(lock_k(&t, now, "b", true));
    unlock(&t, now, "k", "a");
    clock.ms = 5;
    let retried = token(lock_k(&t, clock.now(), "b", false)).unwrap();
    let mut next = blocked(lock_k(&t, clock.now(), "c", true));
    t.withdraw(&lost.waiter, &mut lost.rx, clock.now());
    assert_eq!(granted(&mut next), None, "b still holds k: c waits");
    assert_eq!(token(lock_k(&t, clock.now(), "b", false)), Some(retried));
}

/// A second shared waiter of the same owner is granted by renewing the hold its first
/// waiter got: withdrawing the second leaves the first's hold.
#[test]
fn withdraw_of_a_renewing_grant_leaves_the_owners_hold() {
    let clock = Clock::new();
    let t = table(&clock);
    let now = clock.now();
    let read = |owner: &str| acquire(&t, now, "k", owner, HoldKind::Read, 10_000, true);
    token(lock_k(&t, now, "a", false)).unwrap();
    let mut first = blocked(read("b"));
    let mut second = blocked(read("b"));
    let mut writer = blocked(lock_k(&t, now, "c", true));
    unlock(&t, now, "k", "a");
    let held = granted(&mut first).unwrap();
    t.withdraw(&second.waiter, &mut second.rx, now);
    assert_eq!(granted(&mut writer), None, "b still reads k: c waits");
    assert_eq!(token(read("b")), Some(held));
}

/// An MLOCK that counted its owner's held key as granted: withdrawing it releases only the
/// key the grant made.
#[test]
fn withdraw_of_an_mlock_grant_releases_only_the_keys_it_made() {
    let clock = Clock::new();
    let t = table(&clock);
    let now = clock.now();
    let (k0, k1, a) = (b("k0"), b("k1"), b("a"));
    let held = token(acquire(&t, now, "k0", "a", HoldKind::Exclusive, 100, false)).unwrap();
    token(acquire(&t, now, "k1", "x", HoldKind::Exclusive, 100, false)).unwrap();
    let mut w = blocked(
        t.run(&[&k0, &k1], now, |tx| {
            tx.mlock(&[k0.clone(), k1.clone()], &a, 100, true)
        })
        .value,
    );
    unlock(&t, now, "k1", "x");
    t.withdraw(&w.waiter, &mut w.rx, now);
    assert_eq!(
        token(acquire(&t, now, "k0", "a", HoldKind::Exclusive, 100, false)),
        Some(held),
        "a's LOCK on k0 stands"
    );
    assert!(
        token(acquire(&t, now, "k1", "y", HoldKind::Exclusive, 100, false)).is_some(),
        "k1, made by the undone grant, is free"
    );
}

#[test]
fn withdraw_of_a_pending_wait_leaves_the_queue() {
    let clock = Clock::new();
    let t = table(&clock);
    let now = clock.now();
    token(lock_k(&t, now, "a", false)).unwrap();
    let mut waiting = blocked(lock_k(&t, now, "b", true));
    t.withdraw(&waiting.waiter, &mut waiting.rx, now);
    assert_eq!(t.waiter_count(), 0);
    unlock(&t, now, "k", "a");
    assert!(
        waiting.rx.try_recv().is_err(),
        "a withdrawn wait is never granted"
    );
    assert!(token(lock_k(&t, now, "c", false)).is_some());
}

/// Two keys whose shards differ in `t`.
fn keys_in_two_shards(t: &LockTable) -> (Bytes, Bytes) {
    let first = b("k0");
    let other = (1..)
        .map(|i| b(&format!("k{i}")))
        .find(|k| t.shard_for(k) != t.shard_for(&first))
        .unwrap();
    (first, other)
}

#[test]
fn a_key_outside_the_sections_shards_is_refused_not_stored_elsewhere() {
    let clock = Clock::new();
    let t = table(&clock);
    let now = clock.now();
    let (declared, stray) = keys_in_two_shards(&t);
    let owner = b("a");
    // The section holds one shard, the single-shard case that routes without hashing.
    let refused = t
        .run(&[&declared], now, |tx| {
            [
                tx.lock_acquire(&stray, &owner, HoldKind::Exclusive, 1000, false)
                    .err(),
                tx.set(&stray, b("v"), &SetOptions::default()).err(),
                tx.del(&stray).err(),
                tx.pttl(&stray).err(),
            ]
        })
        .value;
    for err in refused {
        let err = err.expect("an undeclared key is an error");
        assert!(err.text().starts_with("ERR internal error:"), "{err:?}");
    }
    let exists = t.run(&[&stray], now, |tx| tx.exists(&stray)).value;
    assert_eq!(exists, Ok(false), "nothing was stored for the refused key");
    let exists = t.run(&[&declared], now, |tx| tx.exists(&declared)).value;
    assert_eq!(exists, Ok(false));
}
