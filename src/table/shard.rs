//! A shard: the keys it owns, their lease timers, and the primitives through which every
//! state change passes (each updates memory, schedules or cancels the timer and emits its
//! [`Record`]). Serving queues is in `handoff.rs`, firing timers in `expire.rs`, replay in
//! `replay.rs`.
//!
//! Keys live in [`Keys`] (`keys.rs`): entries that carry their own key, so a key's bytes are
//! stored once; the wheel's timers carry only the key's hash (see [`Due`]).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::entry::{
    Deadline, Entry, Holder, HolderRef, Holds, Lease, Semaphore, StrExpiry, StrValue, Value,
};
use super::keys::Keys;
use super::waiters::Waiter;
use super::HoldKind;
use super::{Now, TableStats, Tx};
use crate::persist::Record;
use crate::wheel::Wheel;

/// What a timer in the wheel stands for: the hash of the key whose hold lease or string
/// expiry it ends (8 bytes; a copy of the key would cost a `Bytes` handle and a shared
/// buffer per lease).
///
/// At expiry the key is found by that hash and the timer id itself: every hold and string
/// stores its `TimerId`, and a fired id matches only the hold or string it was scheduled for
/// (ids are generational), so keys whose hashes collide are told apart too.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Due {
    pub(super) hash: u64,
}

/// The keys of one shard and their timers.
#[derive(Debug)]
pub(crate) struct Shard {
    /// Every key of the shard.
    pub(super) keys: Keys,
    pub(crate) wheel: Wheel<Due>,
    /// Effects counted for INFO and /metrics (bumped under the shard's mutex, so no cache
    /// line is shared between cores; summed by `LockTable::stats`).
    pub(crate) counts: Counts,
}

/// A shard's count of effects since start.
#[derive(Debug, Default, Clone)]
pub(crate) struct Counts {
    /// Grants, by [`HoldKind::index`](super::HoldKind::index).
    pub(crate) grants: [u64; 4],
    /// Leases renewed.
    pub(crate) refreshes: u64,
    /// Leases that ran out.
    pub(crate) expired: u64,
}

impl Shard {
    pub(crate) fn new(origin: Instant) -> Self {
        Shard {
            keys: Keys::default(),
            wheel: Wheel::new(origin),
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
    pub(super) fn due(&self, key: &[u8]) -> Due {
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
                stats.held[kind.index()] += kind.permits();
            }
        }
        stats.timers += self.wheel.len();
        for (sum, n) in stats.grants.iter_mut().zip(self.counts.grants) {
            *sum += n;
        }
        stats.refreshes += self.counts.refreshes;
        stats.expired += self.counts.expired;
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
        if !self.insert_holder(key, owner, kind, token, deadline) {
            return token;
        }
        if let Some(shard) = self.shard(key) {
            shard.counts.grants[kind.index()] += 1;
        }
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
    /// second holder becomes general. False when nothing was stored.
    pub(super) fn insert_holder(
        &mut self,
        key: &[u8],
        owner: &[u8],
        kind: HoldKind,
        token: i64,
        deadline: Instant,
    ) -> bool {
        let Some(timer) = self.schedule(key, deadline) else {
            return false;
        };
        let lease = Lease {
            kind,
            token,
            deadline: Deadline::new(self.origin(), deadline),
            timer,
        };
        let Some(shard) = self.shard(key) else {
            return false;
        };
        match shard.get_mut(key) {
            None if !matches!(kind, HoldKind::Permits(_)) => {
                shard.insert(Entry::held(key, owner, lease));
                true
            }
            Some(entry) if !entry.is_str() => match entry.expand() {
                Some(holds) => {
                    holds.holders.push(Holder {
                        owner: owner.into(),
                        lease,
                    });
                    true
                }
                None => false,
            },
            // Callers create the semaphore first and never grant on a string.
            _ => {
                debug_assert!(false, "no lock or semaphore to hold at the key");
                shard.wheel.cancel(timer);
                false
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
        // The entry was found, so the section holds its shard.
        let shard = self.shard(key)?;
        shard.counts.refreshes += 1;
        if !self.reschedule(key, lease.timer, deadline) {
            // The old timer already fired in this `expire` batch (a hand-off during expiry
            // renewed a hold whose lease is due later in the batch, e.g. an MLOCK that counts
            // the owner's held key as granted): the renewed lease needs a timer of its own.
            let timer = self.schedule(key, deadline)?;
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
        self.release_where(key, owner, |_| true)
    }

    /// Ends the hold of `owner` on `key`, as [`release_hold`] does, only if its lease still
    /// ends at `until`: the hold a grant made and nobody renewed since.
    ///
    /// [`release_hold`]: Tx::release_hold
    pub(crate) fn release_unrenewed(
        &mut self,
        key: &Bytes,
        owner: &[u8],
        until: Instant,
    ) -> Option<Lease> {
        let at = Deadline::new(self.origin(), until);
        self.release_where(key, owner, |lease| lease.deadline == at)
    }

    /// Ends the hold of `owner` on `key` if `which` accepts its lease.
    fn release_where(
        &mut self,
        key: &Bytes,
        owner: &[u8],
        which: impl Fn(&Lease) -> bool,
    ) -> Option<Lease> {
        let shard = self.shard(key)?;
        let lease = shard.take_holder(key, |h| h.owner == owner && which(&h.lease))?;
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
        let Some(shard) = self.shard(key) else {
            return;
        };
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
        if let Some(shard) = self.shard(key) {
            shard.remove_if(key, Entry::is_idle_lock);
        }
    }

    /// Creates the semaphore `key` or sets its capacity.
    pub(crate) fn put_sem(&mut self, key: &Bytes, capacity: u64) {
        let Some(shard) = self.shard(key) else {
            return;
        };
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
        let shard = self.shard(key)?;
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
        if self.slot(key).is_none() {
            return;
        }
        self.cancel_str_timer(key);
        let expiry_at = self.str_expiry(key, expiry);
        let stored = StrValue {
            value: value.as_ref().into(),
            expiry: expiry_at,
        };
        let Some(shard) = self.shard(key) else {
            return;
        };
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
        if self.slot(key).is_none() {
            return;
        }
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
        let timer = self.schedule(key, deadline)?;
        Some(StrExpiry {
            deadline: Deadline::new(self.origin(), deadline),
            timer,
            wall_ms,
        })
    }

    fn cancel_str_timer(&mut self, key: &[u8]) {
        let Some(shard) = self.shard(key) else {
            return;
        };
        let timer = shard
            .get(key)
            .and_then(Entry::str_value)
            .and_then(|s| s.expiry);
        if let Some(expiry) = timer {
            shard.wheel.cancel(expiry.timer);
        }
    }
}
