//! The lock table: every key's lock, semaphore or string, their holders, FIFO waiters and
//! leases, sharded by key hash.
//!
//! The table is sans-IO: no `async`, no sockets, no clock reads. Every operation takes a
//! [`Now`] and returns a value (usually an [`Outcome`]); the server layer reads the clock,
//! awaits blocked waits and writes replies.
//!
//! # API
//! - [`LockTable::run`] locks the shards of the given keys (in shard order, so any two calls
//!   agree on the order) and hands a [`Tx`] to a closure; every command and every lease
//!   expiry goes through it. The operations of each family live in their own file:
//!   `locks.rs` (LOCK, RLOCK, WLOCK, REFRESH, UNLOCK, MLOCK, LOCK.INFO), `sems.rs` (SEM.*),
//!   `strings.rs` (SET, GET, expiry of strings), `keyspace.rs` (DEL, EXISTS, TYPE, SCAN...).
//! - Every state change passes one set of primitives in `shard.rs` (`grant_hold`,
//!   `renew_hold`, `release_hold`, `put_str`, `remove_key`, ...), which update the state,
//!   schedule or cancel the lease timer and emit the [`Record`] to the [`RecordSink`].
//! - [`LockTable::expire`] fires due leases with a budget; [`LockTable::next_deadline`] tells
//!   the expirer when to wake.
//!
//! # Files
//! - `mod.rs`: [`LockTable`] (sharding, [`LockTable::run`], stats, dump, reset), [`Tx`]
//!   (the section: shard routing, records, tokens, the waiter budget, timers), [`Now`].
//! - `shard.rs`: a `Shard`'s storage and the state-change primitives on [`Tx`].
//! - `handoff.rs`: queueing a blocked request, `pump` (granting queue heads when holds
//!   end), MLOCK's all-or-nothing grant, cancelling and failing waiters.
//! - `expire.rs`: firing due timers ([`LockTable::expire`]), in firing order.
//! - `replay.rs`: applying recovered records ([`LockTable::replay`]) and the replay-only
//!   state (holds expired by replay that a later refresh may revive).
//! - `locks.rs`, `sems.rs`, `strings.rs`, `keyspace.rs`: the command families.
//! - `entry.rs`, `sole.rs`, `keys.rs`: what a key holds and how it is stored;
//!   `waiters.rs`: a blocked request; `token.rs`: fencing tokens.
//!
//! # Storage
//! A shard keeps its keys in `keys.rs` (a chunked slab behind a hash index of 4-byte
//! positions) as `Entry`s (`entry.rs`): a lock with one holder and no waiters is one
//! exact allocation (`SoleLock`, `sole.rs`), anything else one box with its key. Each
//! timer in the shard's wheel carries only its key's hash. About 154 bytes per held lock
//! at 1M locks (16-byte keys, 36-byte owners; `examples/lock_memory.rs`).
//!
//! # Hand-off
//! When a hold ends (UNLOCK, expiry, DEL, undone grant) the key's queue is *pumped* (`handoff.rs`)
//! in the same critical section: head waiters that fit are granted and their replies sent through
//! their oneshot channels. A multi-key (MLOCK) waiter at the head needs the shards of all its keys;
//! if the current [`Tx`] does not hold them it is deferred, and `run` re-examines it under a new
//! `Tx` with the right shards once the current shards are released.
//!
//! To add a command family: add a file with an `impl Tx<'_>` block that uses the
//! primitives, never touching a `Shard`'s keys directly for holds.

mod entry;
mod expire;
mod handoff;
mod keys;
mod keyspace;
mod kind;
mod locks;
mod replay;
mod sems;
mod shard;
mod sole;
mod strings;
mod token;
mod waiters;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, MutexGuard};
use smallvec::SmallVec;
use tokio::sync::oneshot;

/// Shard indexes of one section; inline for the usual one or two, so no allocation.
type ShardList = SmallVec<[usize; 4]>;

pub(crate) use entry::{Deadline, Entry};
pub use keyspace::{glob_match, Glob, ShardKeys};
pub use kind::{HoldKind, KIND_NAMES};
pub use sems::SemAcquire;
pub(crate) use shard::Shard;
pub use strings::{ExpireCondition, SetCondition, SetExpiry, SetOptions};
pub(crate) use token::{TokenCounter, TOKEN_BLOCK};
pub use waiters::{Made, WaitResult, Waiter};

use crate::error::RespError;
use crate::persist::Record;
use crate::resp::Reply;

/// The clock, as passed in by the caller: monotonic for leases, wall for disk and tokens.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    /// Monotonic time: leases end by it.
    pub mono: Instant,
    /// Wall-clock ms since the Unix epoch: only written to disk.
    pub wall_ms: u64,
}

impl Now {
    /// The monotonic deadline and the wall-clock deadline `ttl_ms` from now.
    pub fn deadline(&self, ttl_ms: u64) -> (Instant, u64) {
        (
            self.mono + Duration::from_millis(ttl_ms),
            self.wall_ms.saturating_add(ttl_ms),
        )
    }

    /// Ms left until `deadline`, rounded up (0 when passed).
    pub fn ms_until(&self, deadline: Instant) -> i64 {
        let left = deadline.saturating_duration_since(self.mono);
        let ms = left.as_millis() as i64;
        if Duration::from_millis(ms as u64) < left {
            ms + 1
        } else {
            ms
        }
    }
}

/// Where the table sends the records of its state changes (the append-only log).
pub trait RecordSink: Send + Sync {
    /// Appends `record` and returns its log sequence number. Called under a shard lock: it
    /// must be quick and must not block on I/O.
    fn append(&self, record: &Record) -> u64;
}

/// What a command gets from the table.
#[derive(Debug)]
pub enum Outcome {
    /// The answer, to send now.
    Reply(Reply),
    /// The request waits in one or more queues.
    Blocked(Blocked),
}

impl From<Reply> for Outcome {
    fn from(reply: Reply) -> Outcome {
        Outcome::Reply(reply)
    }
}

/// A queued request: the connection awaits `rx` and cancels with [`LockTable::cancel`].
#[derive(Debug)]
pub struct Blocked {
    /// The waiter as queued.
    pub waiter: Arc<Waiter>,
    /// Receives the grant or the error.
    pub rx: oneshot::Receiver<WaitResult>,
}

/// The result of [`LockTable::run`]: the closure's value plus the log position to await.
#[derive(Debug)]
pub struct Ran<R> {
    /// What the closure returned.
    pub value: R,
    /// Highest log sequence number of the records the call emitted (0: none).
    pub lsn: u64,
}

/// Table-wide settings.
#[derive(Debug, Clone)]
pub struct TableConfig {
    /// Shards (rounded up to a power of two).
    pub shards: usize,
    /// Most waiters at once; beyond it `-ERR max waiters reached`.
    pub max_waiters: usize,
    /// Time zero of the lease wheels.
    pub origin: Instant,
    /// Lowest first token: the wall clock in µs or the disk high-water mark.
    pub token_seed: i64,
}

/// State shared by all shards.
pub(crate) struct Shared {
    pub(crate) tokens: TokenCounter,
    pub(crate) sink: Option<Arc<dyn RecordSink>>,
    /// Waiters queued now, server-wide.
    pub(crate) waiters: AtomicUsize,
    /// Changed at run time by CONFIG SET max-waiters.
    pub(crate) max_waiters: AtomicUsize,
    /// Global arrival order of waiters.
    pub(crate) seq: AtomicU64,
    pub(crate) origin: Instant,
    /// Ms after `origin` at which the expirer will wake next (u64::MAX: not armed).
    pub(crate) armed_ms: AtomicU64,
    /// Called when a deadline earlier than `armed_ms` is scheduled.
    pub(crate) wake: Mutex<Option<Box<dyn Fn() + Send + Sync>>>,
    /// Cluster mode: replay keeps a lease whose wall deadline passed (as due now) instead
    /// of dropping it; only a committed Release/Delete ends it.
    pub(crate) ends_by_log: AtomicBool,
}

/// The sharded lock table. Cheap to share behind an `Arc`.
pub struct LockTable {
    shards: Box<[Mutex<Shard>]>,
    shared: Shared,
    /// Replay only (see [`replay::Ghosts`]).
    ghosts: Mutex<replay::Ghosts>,
    mask: usize,
    hasher: foldhash::fast::FixedState,
}

impl std::fmt::Debug for LockTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockTable")
            .field("shards", &self.shards.len())
            .finish()
    }
}

impl LockTable {
    /// An empty table.
    pub fn new(config: TableConfig, sink: Option<Arc<dyn RecordSink>>) -> Self {
        let n = config.shards.max(1).next_power_of_two();
        let shards = (0..n)
            .map(|_| Mutex::new(Shard::new(config.origin)))
            .collect::<Vec<_>>()
            .into_boxed_slice();
        LockTable {
            shards,
            ghosts: Mutex::new(replay::Ghosts::default()),
            mask: n - 1,
            hasher: foldhash::fast::FixedState::with_seed(0x6261_746f_6e21),
            shared: Shared {
                tokens: TokenCounter::seeded(config.token_seed, 0),
                sink,
                waiters: AtomicUsize::new(0),
                max_waiters: AtomicUsize::new(config.max_waiters),
                seq: AtomicU64::new(0),
                origin: config.origin,
                armed_ms: AtomicU64::new(u64::MAX),
                ends_by_log: AtomicBool::new(false),
                wake: Mutex::new(None),
            },
        }
    }

    /// Number of shards.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// The shard that owns `key`.
    pub fn shard_for(&self, key: &[u8]) -> usize {
        use std::hash::BuildHasher;
        (self.hasher.hash_one(key) as usize) & self.mask
    }

    /// Sets the function called when a lease earlier than the expirer's wake-up is scheduled.
    pub fn set_wake(&self, wake: Box<dyn Fn() + Send + Sync>) {
        *self.shared.wake.lock() = Some(wake);
    }

    /// Tells the table when the expirer will wake next (None: it sleeps until woken).
    pub fn set_armed(&self, at: Option<Instant>) {
        let ms = at.map_or(u64::MAX, |at| {
            at.saturating_duration_since(self.shared.origin).as_millis() as u64
        });
        self.shared.armed_ms.store(ms, Ordering::SeqCst);
    }

    /// The last fencing token handed out.
    pub fn last_token(&self) -> i64 {
        self.shared.tokens.last()
    }

    /// Waiters queued now, server-wide.
    pub fn waiter_count(&self) -> usize {
        self.shared.waiters.load(Ordering::Relaxed)
    }

    /// Runs `f` with the shards of `keys` locked (in shard order), then re-examines any
    /// multi-key waiter the call could not finish with those shards.
    pub fn run<R>(&self, keys: &[&[u8]], now: Now, f: impl FnOnce(&mut Tx<'_>) -> R) -> Ran<R> {
        let mut idx: ShardList = keys.iter().map(|k| self.shard_for(k)).collect();
        self.run_on(&mut idx, keys, now, f)
    }

    /// Like [`run`](Self::run) with every shard locked (FLUSHALL, scripts without keys).
    pub fn run_all<R>(&self, now: Now, f: impl FnOnce(&mut Tx<'_>) -> R) -> Ran<R> {
        let mut idx: ShardList = (0..self.shards.len()).collect();
        self.run_on(&mut idx, &[], now, f)
    }

    /// Runs `f` over the shards `idx`; `keys` are the keys the section is opened for (see
    /// [`Tx::slot`]), empty when it is opened by shard.
    fn run_on<R>(
        &self,
        idx: &mut ShardList,
        keys: &[&[u8]],
        now: Now,
        f: impl FnOnce(&mut Tx<'_>) -> R,
    ) -> Ran<R> {
        let mut tx = self.begin(idx, keys, now);
        let value = f(&mut tx);
        let mut lsn = tx.lsn;
        let mut deferred = std::mem::take(&mut tx.deferred);
        drop(tx);
        while let Some(waiter) = deferred.pop() {
            if !waiter.is_pending() {
                continue;
            }
            let mut idx: ShardList = waiter.keys.iter().map(|k| self.shard_for(k)).collect();
            let mut tx = self.begin(&mut idx, &[], now);
            tx.examine_multi(&waiter);
            lsn = lsn.max(tx.lsn);
            deferred.append(&mut tx.deferred);
        }
        Ran { value, lsn }
    }

    fn begin<'t>(&'t self, idx: &mut ShardList, keys: &'t [&'t [u8]], now: Now) -> Tx<'t> {
        idx.sort_unstable();
        idx.dedup();
        let guards = idx.iter().map(|&i| (i, self.shards[i].lock())).collect();
        Tx {
            table: self,
            guards,
            declared: keys,
            now,
            lsn: 0,
            deferred: Vec::new(),
            replaying: false,
        }
    }

    /// The earliest lease deadline over all shards (at or before the true deadline).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.shards
            .iter()
            .filter_map(|s| s.lock().next_deadline())
            .min()
    }

    /// Drops every key, hold, lease and waiter; each waiter gets `err`. Tokens keep rising
    /// (the counter is kept). Cluster mode: a node that stops leading rebuilds its table
    /// from the committed log, starting from this.
    pub fn reset(&self, err: crate::error::RespError) {
        let mut seen = std::collections::HashSet::new();
        for shard in self.shards.iter() {
            let waiters = {
                let mut shard = shard.lock();
                let waiters = shard.queued_waiters();
                *shard = Shard::new(self.shared.origin);
                waiters
            };
            for waiter in waiters {
                if seen.insert(Arc::as_ptr(&waiter) as usize) {
                    waiter.deliver(WaitResult::Failed(err.clone()));
                }
            }
        }
        self.ghosts.lock().clear();
        let gone = seen.len();
        let _ = self
            .shared
            .waiters
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_sub(gone))
            });
    }

    /// Calls `f` with every live key's state as records (for a snapshot), shard by shard.
    pub fn dump(&self, now: Now, f: &mut dyn FnMut(Record)) {
        f(Record::TokenHighWater {
            upto: self.shared.tokens.last() + TOKEN_BLOCK,
        });
        for shard in self.shards.iter() {
            shard.lock().dump(now, f);
        }
    }

    /// Counts of what the table holds, for INFO.
    pub fn stats(&self) -> TableStats {
        let mut stats = TableStats {
            waiters: self.waiter_count(),
            last_token: self.last_token(),
            ..TableStats::default()
        };
        for shard in self.shards.iter() {
            shard.lock().add_stats(&mut stats);
        }
        stats
    }

    /// Sets the most waiters at once (already queued ones stay).
    pub fn set_max_waiters(&self, max: usize) {
        self.shared.max_waiters.store(max, Ordering::Relaxed);
    }

    /// The most waiters at once.
    pub fn max_waiters(&self) -> usize {
        self.shared.max_waiters.load(Ordering::Relaxed)
    }

    /// Keys with a time to live and their mean PTTL at `now` (an exact walk, where Redis
    /// samples).
    pub fn ttl_stats(&self, now: Now) -> TtlStats {
        let (mut keys, mut sum_ms) = (0u64, 0u128);
        for shard in self.shards.iter() {
            let shard = shard.lock();
            let origin = self.shared.origin;
            for entry in shard.iter() {
                if let Some(deadline) = entry.ttl_deadline() {
                    keys += 1;
                    sum_ms += now.ms_until(deadline.instant(origin)) as u128;
                }
            }
        }
        TtlStats {
            expires: keys,
            avg_ttl_ms: if keys == 0 {
                0
            } else {
                u64::try_from(sum_ms / u128::from(keys)).unwrap_or(u64::MAX)
            },
        }
    }
}

/// Counts for INFO.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableStats {
    /// Keys holding a lock.
    pub locks: usize,
    /// Keys holding a semaphore.
    pub semaphores: usize,
    /// String keys.
    pub strings: usize,
    /// Holds of locks and semaphores.
    pub holders: usize,
    /// Queued waiters.
    pub waiters: usize,
    /// Pending lease timers.
    pub timers: usize,
    /// The last fencing token handed out.
    pub last_token: i64,
    /// Holds now by [`KIND_NAMES`] (for `permits`: permits held).
    pub held: [u64; 4],
    /// Grants since start by [`KIND_NAMES`].
    pub grants: [u64; 4],
    /// Leases renewed since start.
    pub refreshes: u64,
    /// Leases that ran out since start.
    pub expired: u64,
}

/// The sizes in bytes of the table's storage types, by name: a key's `Entry`, the boxed
/// general form (`Object`), a lock's or semaphore's holders and queue (`Holds`) and one
/// holder (`Holder`). For `examples/lock_memory.rs`, which reports them beside the memory
/// per held lock; the types themselves are internal.
pub fn storage_sizes() -> [(&'static str, usize); 4] {
    use std::mem::size_of;
    [
        ("Entry", size_of::<Entry>()),
        ("Object", size_of::<entry::Object>()),
        ("Holds", size_of::<entry::Holds>()),
        ("Holder", size_of::<entry::Holder>()),
    ]
}

/// What INFO keyspace reports of expiring keys.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TtlStats {
    /// Keys with a time to live (those whose PTTL is not -1): held locks, strings with an
    /// expiry.
    pub expires: u64,
    /// Their mean PTTL in ms (0 with none).
    pub avg_ttl_ms: u64,
}

impl TableStats {
    /// All keys.
    pub fn keys(&self) -> usize {
        self.locks + self.semaphores + self.strings
    }
}

/// A critical section over some shards: the only handle through which state changes.
///
/// Every command method refuses a key whose shard the section did not lock with
/// `ERR internal error: ...` (a caller that forgot to name the key), before changing anything.
pub struct Tx<'a> {
    table: &'a LockTable,
    guards: SmallVec<[(usize, MutexGuard<'a, Shard>); 2]>,
    /// The keys the section was opened for (empty when opened by shard): lets the usual
    /// one-shard section route a key with a byte compare instead of a hash.
    declared: &'a [&'a [u8]],
    now: Now,
    lsn: u64,
    deferred: Vec<Arc<Waiter>>,
    /// Set while replaying recovered records: nothing is emitted again.
    replaying: bool,
}

impl<'a> Tx<'a> {
    /// The clock this section runs at.
    pub fn now(&self) -> Now {
        self.now
    }

    /// Whether this section holds the shard of `key` (scripts may touch only those).
    pub fn covers(&self, key: &[u8]) -> bool {
        self.slot(key).is_some()
    }

    /// Refuses a key whose shard this section does not hold: every command method checks
    /// its keys with it before touching them, so a key its caller forgot to name when
    /// opening the section is an error reply, never a write to another shard.
    ///
    /// # Errors
    /// `ERR internal error: ...` when the shard of `key` is not locked by this section.
    pub(crate) fn check(&self, key: &[u8]) -> Result<(), RespError> {
        match self.slot(key) {
            Some(_) => Ok(()),
            None => Err(RespError::new(format!(
                "ERR internal error: key '{}' is outside the shards this command locked",
                crate::error::printable(key, 64)
            ))),
        }
    }

    /// Takes `waiter` out of its queues within this section (a script's request that
    /// would block answers as without WAIT). True if it was still waiting.
    pub fn cancel_in_place(&mut self, waiter: &Arc<Waiter>) -> bool {
        self.cancel_waiter(waiter)
    }

    /// The position in `guards` of the shard of `key`, if this section holds it.
    ///
    /// Most sections hold one shard and were opened for one key, the key they then touch:
    /// that case is a byte compare, since hashing every key would cost about a tenth of the
    /// server's CPU on a lock/unlock cycle. Any other key is hashed.
    fn slot(&self, key: &[u8]) -> Option<usize> {
        /// Declared keys compared before hashing instead (bounds the compares per call).
        const COMPARED: usize = 4;
        if self.guards.len() == 1 && self.declared.len() <= COMPARED && self.declared.contains(&key)
        {
            return Some(0);
        }
        let i = self.table.shard_for(key);
        self.guards.iter().position(|(j, _)| *j == i)
    }

    /// The shard of `key`; None when the section does not hold it (the command methods
    /// have refused such a key with [`check`](Self::check) before, so the primitives treat
    /// None as "nothing there" and change nothing).
    fn shard(&mut self, key: &[u8]) -> Option<&mut Shard> {
        let i = self.slot(key)?;
        Some(&mut self.guards[i].1)
    }

    /// The entry of `key`, if any.
    pub(crate) fn entry(&mut self, key: &[u8]) -> Option<&mut Entry> {
        self.shard(key)?.get_mut(key)
    }

    fn shared(&self) -> &'a Shared {
        &self.table.shared
    }

    fn emit(&mut self, record: Record) {
        if self.replaying {
            return;
        }
        if let Some(sink) = &self.table.shared.sink {
            self.lsn = self.lsn.max(sink.append(&record));
        }
    }

    /// Hands out the next fencing token, reserving a block on disk when one starts.
    fn next_token(&mut self) -> i64 {
        let (token, reserve) = self.shared().tokens.next();
        if let Some(upto) = reserve {
            self.emit(Record::TokenHighWater { upto });
        }
        token
    }

    /// A waiter number in the global arrival order, and a place in the waiter budget.
    fn admit_waiter(&mut self) -> Result<u64, crate::error::RespError> {
        let shared = self.shared();
        let prev = shared.waiters.fetch_add(1, Ordering::Relaxed);
        if prev >= shared.max_waiters.load(Ordering::Relaxed) {
            shared.waiters.fetch_sub(1, Ordering::Relaxed);
            return Err(crate::error::RespError::MAX_WAITERS);
        }
        Ok(shared.seq.fetch_add(1, Ordering::Relaxed) + 1)
    }

    /// A waiter left every queue (granted, failed or cancelled).
    fn waiter_left(&mut self) {
        self.shared().waiters.fetch_sub(1, Ordering::Relaxed);
    }

    /// Schedules a timer for `key` and wakes the expirer if it fires before the expirer's
    /// wake-up.
    fn schedule(&mut self, key: &[u8], deadline: Instant) -> Option<crate::wheel::TimerId> {
        let shard = self.shard(key)?;
        let due = shard.due(key);
        let id = shard.wheel.insert(deadline, due);
        self.wake_if_earlier(deadline);
        Some(id)
    }

    /// Moves `timer` to `deadline`; false (and nothing scheduled) when the timer is no longer
    /// pending, which happens when `expire` has already polled it: the caller schedules anew.
    fn reschedule(&mut self, key: &[u8], timer: crate::wheel::TimerId, deadline: Instant) -> bool {
        if !self
            .shard(key)
            .is_some_and(|shard| shard.wheel.reschedule(timer, deadline))
        {
            return false;
        }
        self.wake_if_earlier(deadline);
        true
    }

    /// Wakes the expirer when `deadline` comes before the wake-up it is armed for.
    fn wake_if_earlier(&self, deadline: Instant) {
        let shared = self.shared();
        let ms = deadline
            .saturating_duration_since(shared.origin)
            .as_millis() as u64;
        if ms < shared.armed_ms.load(Ordering::SeqCst) {
            shared.armed_ms.store(ms, Ordering::SeqCst);
            if let Some(wake) = shared.wake.lock().as_ref() {
                wake();
            }
        }
    }
}

#[cfg(test)]
mod tests;
