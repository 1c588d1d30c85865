//! A shard: the keys it owns, their lease timers, and the primitives through which every
//! state change passes (each updates memory, schedules or cancels the timer and emits its
//! [`Record`]), plus the hand-off machinery (`pump`) that serves queues when holds end.
//!
//! Keys live in [`Keys`] (`keys.rs`): entries that carry their own key, so a key's bytes are
//! stored once; the wheel's timers carry only the key's hash (see [`Due`]).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::entry::{
    Deadline, Entry, Holder, HolderRef, Holds, KindExt, Lease, Semaphore, StrExpiry, StrValue,
    Value,
};
use super::keys::Keys;
use super::waiters::{WaitResult, Waiter};
use super::{Now, TableStats, Tx};
use crate::error::RespError;
use crate::persist::{HoldKind, Record};
use crate::resp::Reply;
use crate::wheel::{TimerId, Wheel};

/// What a timer in the wheel stands for: the hash of the key whose hold lease or string
/// expiry it ends (8 bytes, where a copy of the key cost a `Bytes` handle and a shared
/// buffer per lease).
///
/// At expiry the key is found by that hash and the timer id itself: every hold and string
/// stores its `TimerId`, and a fired id matches only the hold or string it was scheduled for
/// (ids are generational), so keys whose hashes collide are told apart too.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Due {
    hash: u64,
}

/// The keys of one shard and their timers.
#[derive(Debug)]
pub struct Shard {
    /// Every key of the shard.
    keys: Keys,
    pub(crate) wheel: Wheel<Due>,
    /// Replay only: holds whose recovered deadline has already passed, by (key, owner), with
    /// their kind and token. A later Refresh record may revive one: the live server
    /// refreshed it before its lease ran out (the grant's deadline alone is stale). Every
    /// end of a hold is logged (Release, Delete, FlushAll), and those records clear it; what
    /// is left after replay are holds that ran out while the server was down (bounded by the
    /// holds live at the crash).
    pub(crate) ghosts: HashMap<(Bytes, Bytes), (HoldKind, i64), foldhash::fast::RandomState>,
    /// Effects counted for INFO and /metrics (bumped under the shard's mutex, so no cache
    /// line is shared between cores; summed by `LockTable::stats`).
    pub(crate) counts: Counts,
}

/// A shard's count of effects since start.
#[derive(Debug, Default, Clone)]
pub(crate) struct Counts {
    /// Grants, by [`super::kind_index`].
    pub(crate) grants: [u64; 4],
    /// Leases renewed.
    pub(crate) refreshes: u64,
    /// Leases that ran out.
    pub(crate) expired: u64,
}

/// What one fired timer ended ([`Shard::end_timer`]).
pub(crate) enum Ended {
    /// Nothing: what it was scheduled for is gone, or has a newer timer.
    Nothing,
    /// A string expired and was removed; its key when asked for.
    Str { key: Option<Bytes> },
    /// A hold's lease ran out and the hold was removed (its lock too, when left idle).
    Hold {
        /// The key, when asked for or when `waiters`.
        key: Option<Bytes>,
        /// The owner, when asked for.
        owner: Option<Bytes>,
        /// The lease's end.
        deadline: Deadline,
        /// Whether the key's queue must be served now.
        waiters: bool,
    },
}

impl Shard {
    pub(crate) fn new(origin: Instant) -> Self {
        Shard {
            keys: Keys::default(),
            wheel: Wheel::new(origin),
            ghosts: HashMap::default(),
            counts: Counts::default(),
        }
    }

    /// The entry of `key`.
    pub(crate) fn get(&self, key: &[u8]) -> Option<&Entry> {
        self.keys.get(key)
    }

    /// The entry of `key`, mutably.
    pub(crate) fn get_mut(&mut self, key: &[u8]) -> Option<&mut Entry> {
        self.keys.get_mut(key)
    }

    /// Adds `entry`, whose key must be missing.
    fn insert(&mut self, entry: Entry) {
        self.keys.insert(entry);
    }

    /// Removes the entry of `key` (its timers stay: the caller cancels them).
    fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        self.keys.remove(key)
    }

    /// Removes the entry of `key` if `drop_it` says so, with one lookup.
    fn remove_if(&mut self, key: &[u8], drop_it: impl FnOnce(&Entry) -> bool) {
        let hash = self.keys.hash(key);
        if let Some(found) = self.keys.find(hash, |e| e.key() == key) {
            if drop_it(found.get()) {
                found.remove();
            }
        }
    }

    /// Removes every entry, cancelling their timers.
    pub(crate) fn take_all(&mut self) -> Vec<Entry> {
        let entries = self.keys.take_all();
        for timer in entries.iter().flat_map(Entry::timers) {
            self.wheel.cancel(timer);
        }
        entries
    }

    /// Number of keys (idle locks included).
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// Every entry, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.keys.iter()
    }

    /// What a timer for `key` carries.
    fn due(&self, key: &[u8]) -> Due {
        Due {
            hash: self.keys.hash(key),
        }
    }

    /// Removes the first hold on `key` for which `which` is true and returns its lease; a
    /// sole lock goes with its holder (a general one stays for `pump` and `gc`).
    fn take_holder(&mut self, key: &[u8], which: impl Fn(HolderRef<'_>) -> bool) -> Option<Lease> {
        let hash = self.keys.hash(key);
        let mut slot = self.keys.find(hash, |e| e.key() == key)?;
        if let Entry::Sole(sole) = slot.get() {
            if !which(sole.holder()) {
                return None;
            }
            let lease = sole.lease();
            slot.remove();
            return Some(lease);
        }
        let holds = slot.get_mut().holds_mut()?;
        let pos = holds.holders.iter().position(|h| which(h.as_ref()))?;
        Some(holds.holders.swap_remove(pos).lease)
    }

    /// Ends what `timer` was scheduled for (it fired, carrying `due`): removes the hold whose
    /// lease it was, or the string it expires; a lock left idle is dropped. Key and owner are
    /// copied out only when `names` is set (for the log), the key also when waiters must be
    /// served.
    pub(crate) fn end_timer(&mut self, due: Due, timer: TimerId, names: bool) -> Ended {
        let Some(mut slot) = self.keys.find(due.hash, |e| e.has_timer(timer)) else {
            return Ended::Nothing;
        };
        let copy = |bytes: &[u8]| Bytes::copy_from_slice(bytes);
        let (ended, remove) = match slot.get_mut() {
            Entry::Sole(sole) => {
                let ended = Ended::Hold {
                    key: names.then(|| copy(sole.key())),
                    owner: names.then(|| copy(sole.owner())),
                    deadline: sole.lease().deadline,
                    waiters: false,
                };
                (ended, true)
            }
            Entry::Boxed(object) => {
                let is_lock = matches!(object.value, Value::Lock(_));
                match &mut object.value {
                    Value::Str(_) => {
                        let key = names.then(|| copy(&object.key));
                        (Ended::Str { key }, true)
                    }
                    Value::Lock(holds) | Value::Sem(Semaphore { holds, .. }) => {
                        let Some(pos) = holds.holders.iter().position(|h| h.lease.timer == timer)
                        else {
                            return Ended::Nothing;
                        };
                        let holder = holds.holders.swap_remove(pos);
                        let waiters = !holds.queue.is_empty();
                        let idle = is_lock && holds.is_idle();
                        let ended = Ended::Hold {
                            key: (names || waiters).then(|| copy(&object.key)),
                            owner: names.then(|| Bytes::from(holder.owner)),
                            deadline: holder.lease.deadline,
                            waiters,
                        };
                        (ended, idle)
                    }
                }
            }
        };
        if remove {
            slot.remove();
        }
        ended
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.wheel.next_deadline()
    }

    pub(crate) fn add_stats(&self, stats: &mut TableStats) {
        for entry in self.keys.iter() {
            if entry.is_lock() {
                stats.locks += 1;
            } else if entry.is_sem() {
                stats.semaphores += 1;
            } else {
                stats.strings += 1;
            }
            for holder in entry.holders() {
                stats.holders += 1;
                let kind = holder.lease.kind;
                stats.held[super::kind_index(kind)] += kind.permits();
            }
        }
        stats.timers += self.wheel.len();
        for (sum, n) in stats.grants.iter_mut().zip(self.counts.grants) {
            *sum += n;
        }
        stats.refreshes += self.counts.refreshes;
        stats.expired += self.counts.expired;
    }

    /// Replay only: every ghost (a hold whose recovered deadline had passed) as a `Grant`
    /// with deadline 0, so that a snapshot replayed later keeps it as a ghost too.
    pub(crate) fn dump_ghosts(&self, f: &mut dyn FnMut(Record)) {
        for ((key, owner), (hold, token)) in &self.ghosts {
            f(Record::Grant {
                key: key.clone(),
                owner: owner.clone(),
                hold: *hold,
                token: *token,
                deadline_ms: 0,
            });
        }
    }

    /// Every waiter queued on a key of this shard (an MLOCK once per key it waits on).
    pub(crate) fn queued_waiters(&self) -> Vec<Arc<Waiter>> {
        self.keys
            .iter()
            .filter_map(Entry::holds)
            .flat_map(|h| h.queue.iter().cloned())
            .collect()
    }

    /// Every live key of this shard as records (snapshot).
    pub(crate) fn dump(&self, now: Now, f: &mut dyn FnMut(Record)) {
        let origin = self.wheel.origin();
        let wall = |deadline: Deadline| {
            now.wall_ms
                .saturating_add(now.ms_until(deadline.instant(origin)) as u64)
        };
        for entry in self.keys.iter() {
            let key = Bytes::copy_from_slice(entry.key());
            if let Some(s) = entry.str_value() {
                f(Record::StrSet {
                    key,
                    value: Bytes::copy_from_slice(&s.value),
                    deadline_ms: s.expiry.map(|e| e.wall_ms),
                });
                continue;
            }
            if let Some(s) = entry.sem() {
                f(Record::SemCreate {
                    key: key.clone(),
                    capacity: s.capacity,
                });
            }
            for h in entry.holders() {
                f(Record::Grant {
                    key: key.clone(),
                    owner: Bytes::copy_from_slice(h.owner),
                    hold: h.lease.kind,
                    token: h.lease.token,
                    deadline_ms: wall(h.lease.deadline),
                });
            }
        }
    }
}

/// The state-change primitives. Only these touch holds, strings and timers.
impl Tx<'_> {
    /// Time zero of the shards' wheels and of every [`Deadline`].
    pub(crate) fn origin(&self) -> Instant {
        self.table.shared.origin
    }

    /// Whether records are wanted (a sink takes them and this is no replay): records whose
    /// fields must be copied out of the table are built only then.
    pub(crate) fn logging(&self) -> bool {
        !self.replaying && self.table.shared.sink.is_some()
    }

    /// What the timer of a lease or expiry on `key` carries.
    pub(crate) fn due(&mut self, key: &[u8]) -> Due {
        self.shard(key).due(key)
    }

    /// Adds a hold for `owner` to the lock or semaphore at `key` with a new token and a lease
    /// of `ttl_ms` (a missing key becomes a lock). Returns the token.
    pub(crate) fn grant_hold(
        &mut self,
        key: &Bytes,
        owner: &Bytes,
        kind: HoldKind,
        ttl_ms: u64,
    ) -> i64 {
        let token = self.next_token();
        let (deadline, deadline_ms) = self.now.deadline(ttl_ms);
        self.insert_holder(key, owner, kind, token, deadline);
        self.shard(key).counts.grants[super::kind_index(kind)] += 1;
        if self.logging() {
            self.emit(Record::Grant {
                key: key.clone(),
                owner: owner.clone(),
                hold: kind,
                token,
                deadline_ms,
            });
        }
        token
    }

    /// Stores a hold and schedules its lease: a missing key becomes a sole lock (or a
    /// general one when the key is too long for the compact form); a sole lock that gets a
    /// second holder becomes general.
    fn insert_holder(
        &mut self,
        key: &[u8],
        owner: &[u8],
        kind: HoldKind,
        token: i64,
        deadline: Instant,
    ) {
        let timer = self.schedule(key, deadline);
        let lease = Lease {
            kind,
            token,
            deadline: Deadline::new(self.origin(), deadline),
            timer,
        };
        let shard = self.shard(key);
        match shard.get_mut(key) {
            None if !matches!(kind, HoldKind::Permits(_)) => {
                shard.insert(Entry::held(key, owner, lease));
            }
            Some(entry) if !entry.is_str() => {
                if let Some(holds) = entry.expand() {
                    holds.holders.push(Holder {
                        owner: owner.into(),
                        lease,
                    });
                }
            }
            // Callers create the semaphore first and never grant on a string.
            _ => {
                debug_assert!(false, "no lock or semaphore to hold at the key");
                shard.wheel.cancel(timer);
            }
        }
    }

    /// Resets the lease of `owner` on `key` to `ttl_ms` from now. Returns the hold's token,
    /// or None when the owner holds nothing there.
    pub(crate) fn renew_hold(&mut self, key: &Bytes, owner: &[u8], ttl_ms: u64) -> Option<i64> {
        let (deadline, deadline_ms) = self.now.deadline(ttl_ms);
        let at = Deadline::new(self.origin(), deadline);
        let lease = self
            .entry(key)?
            .update_lease(|h| h.owner == owner, |lease| lease.deadline = at)?;
        self.shard(key).counts.refreshes += 1;
        if !self.reschedule(key, lease.timer, deadline) {
            // The old timer already fired in this `expire` batch (a hand-off during expiry
            // renewed a hold whose lease is due later in the batch, e.g. an MLOCK that counts
            // the owner's held key as granted): the renewed lease needs a timer of its own.
            // Found by tests/model.rs.
            let timer = self.schedule(key, deadline);
            if let Some(entry) = self.entry(key) {
                entry.update_lease(|h| h.lease.token == lease.token, |l| l.timer = timer);
            }
        }
        if self.logging() {
            self.emit(Record::Refresh {
                key: key.clone(),
                owner: Bytes::copy_from_slice(owner),
                deadline_ms,
            });
        }
        Some(lease.token)
    }

    /// Ends the hold of `owner` on `key` (without serving the queue: call [`pump`]).
    /// Returns its lease.
    pub(crate) fn release_hold(&mut self, key: &Bytes, owner: &[u8]) -> Option<Lease> {
        let shard = self.shard(key);
        let lease = shard.take_holder(key, |h| h.owner == owner)?;
        shard.wheel.cancel(lease.timer);
        if self.logging() {
            self.emit(Record::Release {
                key: key.clone(),
                owner: Bytes::copy_from_slice(owner),
            });
        }
        Some(lease)
    }

    /// Puts `waiter` at the back of `key`'s queue, making the key a lock if it is missing;
    /// a sole lock becomes general (no record: a queue is no durable state).
    pub(crate) fn queue_waiter(&mut self, key: &[u8], waiter: Arc<Waiter>) {
        let shard = self.shard(key);
        match shard.get_mut(key) {
            Some(entry) => {
                if let Some(holds) = entry.expand() {
                    holds.queue.push_back(waiter);
                }
            }
            None => {
                let mut holds = Holds::default();
                holds.queue.push_back(waiter);
                shard.insert(Entry::boxed(key, Value::Lock(holds)));
            }
        }
    }

    /// Drops `key` if it is a lock with no holders and no waiters.
    pub(crate) fn gc(&mut self, key: &[u8]) {
        self.shard(key).remove_if(key, Entry::is_idle_lock);
    }

    /// Creates the semaphore `key` or sets its capacity.
    pub(crate) fn put_sem(&mut self, key: &Bytes, capacity: u64) {
        let shard = self.shard(key);
        match shard.get_mut(key).and_then(Entry::sem_mut) {
            Some(s) => s.capacity = capacity,
            None => {
                // Callers remove any other kind first; replacing keeps a stray one out.
                let sem = Semaphore {
                    capacity,
                    holds: Holds::default(),
                };
                shard.remove(key);
                shard.insert(Entry::boxed(key, Value::Sem(sem)));
            }
        }
        self.emit(Record::SemCreate {
            key: key.clone(),
            capacity,
        });
    }

    /// Removes `key` whatever it holds, cancelling its timers. Its waiters (returned inside
    /// the entry) are the caller's to serve or fail.
    pub(crate) fn remove_key(&mut self, key: &[u8]) -> Option<Entry> {
        let shard = self.shard(key);
        let entry = shard.remove(key)?;
        for timer in entry.timers() {
            shard.wheel.cancel(timer);
        }
        if self.logging() {
            self.emit(Record::Delete {
                key: Bytes::copy_from_slice(key),
            });
        }
        Some(entry)
    }

    /// Stores string `key` = `value` (a copy of it), expiring at `expiry` (a monotonic
    /// deadline and its wall ms) or never. Replaces an existing string; the caller checked
    /// the key's kind.
    pub(crate) fn put_str(&mut self, key: &Bytes, value: Bytes, expiry: Option<(Instant, u64)>) {
        self.cancel_str_timer(key);
        let expiry_at = self.str_expiry(key, expiry);
        let stored = StrValue {
            value: value.as_ref().into(),
            expiry: expiry_at,
        };
        let shard = self.shard(key);
        match shard.get_mut(key).and_then(Entry::str_mut) {
            Some(s) => *s = stored,
            None => {
                shard.remove(key);
                shard.insert(Entry::boxed(key, Value::Str(stored)));
            }
        }
        self.emit(Record::StrSet {
            key: key.clone(),
            value,
            deadline_ms: expiry.map(|(_, w)| w),
        });
    }

    /// Sets or clears the expiry of string `key` (which exists).
    pub(crate) fn set_str_expiry(&mut self, key: &Bytes, expiry: Option<(Instant, u64)>) {
        self.cancel_str_timer(key);
        let expiry_at = self.str_expiry(key, expiry);
        if let Some(s) = self.entry(key).and_then(Entry::str_mut) {
            s.expiry = expiry_at;
        }
        self.emit(Record::StrExpire {
            key: key.clone(),
            deadline_ms: expiry.map(|(_, w)| w),
        });
    }

    /// Schedules the expiry of string `key` at `expiry`, if any: its stored deadline and timer.
    fn str_expiry(&mut self, key: &[u8], expiry: Option<(Instant, u64)>) -> Option<StrExpiry> {
        let (deadline, wall_ms) = expiry?;
        let timer = self.schedule(key, deadline);
        Some(StrExpiry {
            deadline: Deadline::new(self.origin(), deadline),
            timer,
            wall_ms,
        })
    }

    fn cancel_str_timer(&mut self, key: &[u8]) {
        let shard = self.shard(key);
        let timer = shard
            .get(key)
            .and_then(Entry::str_value)
            .and_then(|s| s.expiry);
        if let Some(expiry) = timer {
            shard.wheel.cancel(expiry.timer);
        }
    }
}

/// Hand-off: serving queues when holds end, and waiters leaving.
impl Tx<'_> {
    /// Queues a single-key request (LOCK family, SEM.ACQUIRE) at the back of `key`'s queue
    /// (the key exists: the request could not be granted).
    ///
    /// # Errors
    /// `max waiters reached`.
    pub(crate) fn enqueue_single(
        &mut self,
        key: &Bytes,
        owner: &Bytes,
        kind: HoldKind,
        ttl_ms: u64,
    ) -> Result<super::Outcome, RespError> {
        let seq = self.admit_waiter()?;
        let (waiter, rx) = Waiter::new(
            seq,
            owner.clone(),
            kind,
            ttl_ms,
            vec![key.clone()],
            false,
            Vec::new(),
            self.now.mono,
        );
        let waiter = Arc::new(waiter);
        self.queue_waiter(key, waiter.clone());
        Ok(super::Outcome::Blocked(super::Blocked { waiter, rx }))
    }

    /// Grants the head waiters of `key` that fit, in order, and drops the key if it became
    /// an idle lock. A multi-key head whose shards this section lacks is deferred.
    pub(crate) fn pump(&mut self, key: &Bytes) {
        loop {
            let Some(entry) = self.entry(key) else { return };
            let capacity = entry.sem().map(|s| (s.capacity, s.used()));
            // None for a string, and for a sole lock: nobody waits there.
            let Some(holds) = entry.holds_mut() else {
                return;
            };
            let Some(head) = holds.queue.front().cloned() else {
                self.gc(key);
                return;
            };
            if head.multi {
                let all_here = head.keys.iter().all(|k| self.covers(k));
                if !all_here {
                    self.deferred.push(head);
                    return;
                }
                if !self.examine_multi(&head) {
                    return;
                }
                continue;
            }
            let fits = match capacity {
                Some((cap, used)) => used + head.kind.permits() <= cap,
                None => holds.lock_fits(&head.kind),
            };
            if !fits {
                return;
            }
            holds.queue.pop_front();
            self.waiter_left();
            self.grant_single(key, &head);
        }
    }

    /// Grants single-key waiter `w` (already out of the queue) and delivers the token; a
    /// delivery that fails is undone.
    fn grant_single(&mut self, key: &Bytes, w: &Arc<Waiter>) {
        let existing = self
            .entry(key)
            .and_then(|e| e.holder(&w.owner))
            .map(|h| h.lease.kind);
        let result = match existing {
            // The same owner got the key meanwhile on another connection: same hold, so the
            // grant is idempotent (same token, lease reset).
            Some(kind) if kind == w.kind => {
                self.renew_hold(key, &w.owner, w.ttl_ms)
                    .map(|token| WaitResult::Granted {
                        reply: Reply::Int(token),
                        lsn: 0,
                    })
            }
            Some(HoldKind::Permits(_)) => Some(WaitResult::Failed(RespError::OTHER_PERMITS)),
            Some(_) => Some(WaitResult::Failed(RespError::OTHER_MODE)),
            None => {
                let token = self.grant_hold(key, &w.owner, w.kind, w.ttl_ms);
                if w.deliver(WaitResult::Granted {
                    reply: Reply::Int(token),
                    lsn: self.lsn,
                }) {
                    crate::metrics::handoff_wait(self.now.mono.saturating_duration_since(w.queued));
                    return;
                }
                // The connection is gone: undo and let the loop serve the next waiter.
                self.release_hold(key, &w.owner);
                return;
            }
        };
        if let Some(mut result) = result {
            if let WaitResult::Granted { lsn, .. } = &mut result {
                *lsn = self.lsn;
            }
            w.deliver(result);
        }
    }

    /// One key of an MLOCK grant: renews the owner's hold (same token, lease reset) when
    /// `may_hold`, else or when it holds nothing there grants a new exclusive hold. Returns
    /// the token and whether the hold is new.
    pub(crate) fn grant_mlock_key(
        &mut self,
        key: &Bytes,
        owner: &Bytes,
        ttl_ms: u64,
        may_hold: bool,
    ) -> (i64, bool) {
        if may_hold {
            if let Some(token) = self.renew_hold(key, owner, ttl_ms) {
                return (token, false);
            }
        }
        (
            self.grant_hold(key, owner, HoldKind::Exclusive, ttl_ms),
            true,
        )
    }

    /// Grants multi-key waiter `w` if, on every key, it heads the queue of a free key or
    /// its owner still has the exclusive hold it had there when it asked; all of its keys' shards are held. Returns true if
    /// it was granted (or found finished), i.e. the queues changed.
    pub(crate) fn examine_multi(&mut self, w: &Arc<Waiter>) -> bool {
        if !w.is_pending() {
            return false;
        }
        // Every key has a general entry: the waiter sits in each key's queue.
        let ready = w.keys.iter().all(|key| {
            self.entry(key)
                .and_then(|e| e.holds())
                .is_some_and(|holds| {
                    let heads = holds.queue.front().is_some_and(|h| h.seq == w.seq);
                    holds.still_held_for(w) || heads && holds.holders.is_empty()
                })
        });
        if !ready {
            return false;
        }
        let mut tokens = Vec::with_capacity(w.keys.len());
        let mut fresh = Vec::with_capacity(w.keys.len());
        for key in &w.keys {
            if let Some(holds) = self.entry(key).and_then(Entry::holds_mut) {
                holds.dequeue(w);
            }
            let (token, new) = self.grant_mlock_key(key, &w.owner, w.ttl_ms, true);
            if new {
                fresh.push(key.clone());
            }
            tokens.push(Reply::Int(token));
        }
        self.waiter_left();
        let delivered = w.deliver(WaitResult::Granted {
            reply: Reply::Array(tokens),
            lsn: self.lsn,
        });
        if delivered {
            crate::metrics::handoff_wait(self.now.mono.saturating_duration_since(w.queued));
            // Serve what now heads each of its queues, not only the key whose `pump` made
            // the grant (or none when the grant was deferred): otherwise the outcome depended
            // on the shard layout. Found by tests/model.rs.
            for key in &w.keys {
                self.pump(key);
            }
        } else {
            // Undo only the holds this grant created: a key the owner already held came from
            // an earlier, delivered grant and stands until UNLOCK or expiry (docs/protocol.md), as
            // in `grant_single`. All are released before any queue is served, so that no
            // waiter sees half of the undone grant. Both found by tests/model.rs.
            for key in &fresh {
                self.release_hold(key, &w.owner);
            }
            for key in &fresh {
                self.pump(key);
            }
        }
        true
    }

    /// Takes `w` out of all its queues. True if it was still pending.
    pub(crate) fn cancel_waiter(&mut self, w: &Arc<Waiter>) -> bool {
        if !w.close() {
            return false;
        }
        self.waiter_left();
        for key in &w.keys {
            let was_head = match self.entry(key).and_then(Entry::holds_mut) {
                Some(holds) => {
                    let head = holds.queue.front().is_some_and(|h| h.seq == w.seq);
                    holds.dequeue(w);
                    head
                }
                None => false,
            };
            if was_head {
                self.pump(key);
            } else {
                self.gc(key);
            }
        }
        true
    }

    /// Fails every waiter of `holds` with `err` (SEM.DELETE, FLUSHALL), removing multi-key
    /// waiters from their other queues too.
    pub(crate) fn fail_waiters(&mut self, key: &[u8], holds: &mut Holds, err: RespError) {
        for w in std::mem::take(&mut holds.queue) {
            // An MLOCK waiter sits in several queues; FLUSHALL meets it once per removed
            // key. Only the first meeting fails it and counts it out: counting it again
            // underflowed the server-wide waiter count (then every WAIT got `max waiters
            // reached`).
            if !w.is_pending() {
                continue;
            }
            // False when the connection closed meanwhile: it is finished here all the same
            // (its later cancel finds it no longer pending and counts nothing).
            let _ = w.deliver(WaitResult::Failed(err.clone()));
            self.waiter_left();
            if w.multi {
                for other in &w.keys {
                    if other.as_ref() != key && self.covers(other) {
                        if let Some(h) = self.entry(other).and_then(Entry::holds_mut) {
                            h.dequeue(&w);
                        }
                        self.pump(&other.clone());
                    }
                }
            }
        }
    }

    /// Ends the due leases of shard `index` (the only shard this section holds), at most
    /// `budget`. Returns how many timers fired.
    ///
    /// The common case (a hold with nobody queued behind it) is served in place with one
    /// hash lookup per lease ([`Shard::end_timer`]); a lease whose key has waiters goes
    /// through `pump` at once, so records and hand-offs keep their firing order. Records
    /// are built only when a sink takes them.
    pub(crate) fn expire_shard(&mut self, index: usize, budget: usize) -> usize {
        /// Timers taken from the wheel per pass: bounds the scratch buffer.
        const CHUNK: usize = 1024;
        let now = self.now.mono;
        let origin = self.origin();
        let logging = self.logging();
        let mut due = Vec::with_capacity(budget.min(CHUNK));
        let mut records = Vec::new();
        let mut fired = 0;
        let mut ended = 0u64;
        while fired < budget {
            let want = (budget - fired).min(CHUNK);
            let n = match self.guards.iter_mut().find(|(i, _)| *i == index) {
                Some((_, guard)) => guard.wheel.poll(now, want, &mut due),
                None => return fired,
            };
            fired += n;
            let mut batch = due.drain(..);
            loop {
                let mut hand_off = None;
                let Some((_, guard)) = self.guards.iter_mut().find(|(i, _)| *i == index) else {
                    return fired;
                };
                let shard: &mut Shard = guard;
                for (timer, due) in batch.by_ref() {
                    // A hold renewed after the poll (by a hand-off earlier in this batch) got
                    // a new timer, so it is not found: its lease never ends before its
                    // deadline.
                    match shard.end_timer(due, timer, logging) {
                        Ended::Nothing => {}
                        Ended::Str { key } => {
                            if let Some(key) = key {
                                records.push(Record::Delete { key });
                            }
                        }
                        Ended::Hold {
                            key,
                            owner,
                            deadline,
                            waiters,
                        } => {
                            debug_assert!(
                                deadline.instant(origin) <= now,
                                "lease ended before its deadline"
                            );
                            ended += 1;
                            if let (Some(key), Some(owner)) = (&key, owner) {
                                records.push(Record::Release {
                                    key: key.clone(),
                                    owner,
                                });
                            }
                            if waiters {
                                hand_off = key;
                                break;
                            }
                        }
                    }
                }
                for record in records.drain(..) {
                    self.emit(record);
                }
                match hand_off {
                    Some(key) => self.pump(&key),
                    None => break,
                }
            }
            if n < want {
                break;
            }
        }
        if let Some((_, guard)) = self.guards.iter_mut().find(|(i, _)| *i == index) {
            guard.counts.expired += ended;
        }
        fired
    }

    /// Applies a recovered record without emitting it again.
    pub(crate) fn replay(&mut self, record: &Record) {
        self.replaying = true;
        let now = self.now;
        // Cluster mode: a passed deadline is due now, never dropped here (see
        // `LockTable::set_ends_by_log`), so the ghost paths below are not taken.
        let by_log = self.table.shared.ends_by_log.load(Ordering::Relaxed);
        let mono = |deadline_ms: u64| -> Option<Instant> {
            if deadline_ms > now.wall_ms {
                Some(now.mono + Duration::from_millis(deadline_ms - now.wall_ms))
            } else {
                by_log.then_some(now.mono)
            }
        };
        match record {
            Record::Grant {
                key,
                owner,
                hold,
                token,
                deadline_ms,
            } => {
                self.table.shared.tokens.observe(*token);
                self.release_hold(key, owner);
                self.shard(key).ghosts.remove(&(key.clone(), owner.clone()));
                match mono(*deadline_ms) {
                    Some(deadline) => self.revive(key, owner, *hold, *token, deadline),
                    // Passed by now, but a later Refresh may have kept it (see `ghosts`).
                    None => {
                        self.shard(key)
                            .ghosts
                            .insert((key.clone(), owner.clone()), (*hold, *token));
                    }
                }
                self.gc(key);
            }
            Record::Refresh {
                key,
                owner,
                deadline_ms,
            } => {
                let ghost = (key.clone(), owner.clone());
                match mono(*deadline_ms) {
                    Some(deadline) => {
                        let at = Deadline::new(self.origin(), deadline);
                        let found = self
                            .entry(key)
                            .and_then(|e| {
                                e.update_lease(|h| h.owner == owner.as_ref(), |l| l.deadline = at)
                            })
                            .map(|lease| lease.timer);
                        if let Some(timer) = found {
                            self.reschedule(key, timer, deadline);
                        } else if let Some((hold, token)) = self.shard(key).ghosts.remove(&ghost) {
                            // The grant's deadline had passed by now, yet the live server
                            // refreshed the hold before it ran out. Dropping the grant and
                            // then ignoring this refresh lost every hold older than its
                            // first lease (a lock kept alive by REFRESH across a restart).
                            // Found by tests/replay.rs.
                            self.revive(key, owner, hold, token, deadline);
                        }
                    }
                    None => {
                        if let Some(lease) = self.release_hold(key, owner) {
                            self.shard(key)
                                .ghosts
                                .insert(ghost, (lease.kind, lease.token));
                        }
                        self.gc(key);
                    }
                }
            }
            Record::Release { key, owner } => {
                self.release_hold(key, owner);
                self.shard(key).ghosts.remove(&(key.clone(), owner.clone()));
                self.gc(key);
            }
            Record::SemCreate { key, capacity } => {
                if self.entry(key).is_some_and(|e| !e.is_sem()) {
                    self.remove_key(key);
                    self.forget_ghosts(key);
                }
                self.put_sem(key, *capacity);
            }
            Record::Delete { key } => {
                self.remove_key(key);
                self.forget_ghosts(key);
            }
            Record::StrSet {
                key,
                value,
                deadline_ms,
            } => {
                if self.entry(key).is_some_and(|e| !e.is_str()) {
                    self.remove_key(key);
                    self.forget_ghosts(key);
                }
                match deadline_ms {
                    None => self.put_str(key, value.clone(), None),
                    Some(ms) => match mono(*ms) {
                        Some(d) => self.put_str(key, value.clone(), Some((d, *ms))),
                        None => {
                            self.remove_key(key);
                        }
                    },
                }
            }
            Record::StrExpire { key, deadline_ms } => {
                if self.entry(key).is_some_and(|e| e.is_str()) {
                    match deadline_ms {
                        None => self.set_str_expiry(key, None),
                        Some(ms) => match mono(*ms) {
                            Some(d) => self.set_str_expiry(key, Some((d, *ms))),
                            None => {
                                self.remove_key(key);
                            }
                        },
                    }
                }
            }
            Record::FlushAll => {
                for (_, guard) in &mut self.guards {
                    guard.take_all();
                    guard.ghosts.clear();
                }
            }
            Record::TokenHighWater { upto } => self.table.shared.tokens.observe(*upto),
        }
        self.replaying = false;
    }

    /// Replay: puts back a recovered hold of `owner` on `key` with a live `deadline`.
    fn revive(
        &mut self,
        key: &Bytes,
        owner: &Bytes,
        hold: HoldKind,
        token: i64,
        deadline: Instant,
    ) {
        if let HoldKind::Permits(n) = hold {
            if !self.entry(key).is_some_and(|e| e.is_sem()) {
                self.put_sem(key, n);
            }
        }
        // A lock mode on a missing key makes a lock; a string takes no holds.
        if !self.entry(key).is_some_and(|e| e.is_str()) {
            self.drop_conflicting(key, owner, hold);
            self.insert_holder(key, owner, hold, token, deadline);
        }
    }

    /// Replay of a grant of `key` to `owner` as `hold`: other holders it excludes are
    /// dropped, so that no log gives two exclusive holders (the later grant in the log
    /// wins). A live server never writes such a pair: the grant that follows a hold comes
    /// after its Release. It happens when the log suffix is replayed over a snapshot that
    /// is ahead of it (the records that follow put the snapshot's state back), or with a
    /// log that two servers wrote before the data directory was locked.
    fn drop_conflicting(&mut self, key: &Bytes, owner: &[u8], hold: HoldKind) {
        if matches!(hold, HoldKind::Permits(_)) {
            return;
        }
        let excluded: Vec<Box<[u8]>> = self
            .entry(key)
            .map(|e| {
                e.holders()
                    .filter(|h| h.owner != owner && !hold.compatible_with(&h.lease.kind))
                    .map(|h| h.owner.into())
                    .collect()
            })
            .unwrap_or_default();
        for other in excluded {
            tracing::debug!(
                key = %String::from_utf8_lossy(key),
                dropped = %String::from_utf8_lossy(&other),
                granted = %String::from_utf8_lossy(owner),
                "replay: a grant excludes an earlier holder; the later grant wins"
            );
            self.release_hold(key, &other);
        }
    }

    /// Replay: `key` is gone, so are its expired holds.
    fn forget_ghosts(&mut self, key: &[u8]) {
        self.shard(key).ghosts.retain(|(k, _), _| k.as_ref() != key);
    }
}
