//! A shard: the keys it owns, their lease timers, and the primitives through which every
//! state change passes (each updates memory, schedules or cancels the timer and emits its
//! [`Record`]), plus the hand-off machinery (`pump`) that serves queues when holds end.

use std::collections::hash_map::Entry::Occupied;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::entry::{Entry, Holder, Holds, KindExt, Semaphore, StrValue};
use super::waiters::{WaitResult, Waiter};
use super::{Now, TableStats, Tx};
use crate::error::RespError;
use crate::persist::{HoldKind, Record};
use crate::resp::Reply;
use crate::wheel::Wheel;

/// What a timer in the wheel stands for: the key whose hold lease or string expiry it ends.
///
/// Which hold (or whether the string's expiry) is found at expiry by the timer id itself:
/// every hold and string stores its `TimerId`, and a fired id matches only the hold or
/// string it was scheduled for (ids are generational). Carrying no token keeps a timer at
/// one `Bytes` handle.
#[derive(Debug)]
pub(crate) struct Due {
    pub(crate) key: Bytes,
}

/// The keys of one shard and their timers.
#[derive(Debug)]
pub struct Shard {
    pub(crate) entries: HashMap<Bytes, Entry, foldhash::fast::RandomState>,
    pub(crate) wheel: Wheel<Due>,
    /// Replay only: holds whose recovered deadline has already passed, by (key, owner), with
    /// their kind and token. A later Refresh record may revive one: the live server
    /// refreshed it before its lease ran out (the grant's deadline alone is stale). Every
    /// end of a hold is logged (Release, Delete, FlushAll), and those records clear it; what
    /// is left after replay are holds that ran out while the server was down (bounded by the
    /// holds live at the crash).
    pub(crate) ghosts: HashMap<(Bytes, Bytes), (HoldKind, i64), foldhash::fast::RandomState>,
}

impl Shard {
    pub(crate) fn new(origin: Instant) -> Self {
        Shard {
            entries: HashMap::default(),
            wheel: Wheel::new(origin),
            ghosts: HashMap::default(),
        }
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.wheel.next_deadline()
    }

    pub(crate) fn add_stats(&self, stats: &mut TableStats) {
        for entry in self.entries.values() {
            match entry {
                Entry::Lock(h) => {
                    stats.locks += 1;
                    stats.holders += h.holders.len();
                }
                Entry::Sem(s) => {
                    stats.semaphores += 1;
                    stats.holders += s.holds.holders.len();
                }
                Entry::Str(_) => stats.strings += 1,
            }
        }
        stats.timers += self.wheel.len();
    }

    /// Every live key of this shard as records (snapshot).
    pub(crate) fn dump(&self, now: Now, f: &mut dyn FnMut(Record)) {
        let wall = |deadline: Instant| now.wall_ms.saturating_add(now.ms_until(deadline) as u64);
        for (key, entry) in &self.entries {
            let holders = match entry {
                Entry::Lock(h) => &h.holders,
                Entry::Sem(s) => {
                    f(Record::SemCreate {
                        key: key.clone(),
                        capacity: s.capacity,
                    });
                    &s.holds.holders
                }
                Entry::Str(s) => {
                    f(Record::StrSet {
                        key: key.clone(),
                        value: s.value.clone(),
                        deadline_ms: s.expiry.map(|(d, _)| wall(d)),
                    });
                    continue;
                }
            };
            for h in holders.iter() {
                f(Record::Grant {
                    key: key.clone(),
                    owner: h.owner.clone(),
                    hold: h.kind,
                    token: h.token,
                    deadline_ms: wall(h.deadline),
                });
            }
        }
    }
}

/// The state-change primitives. Only these touch holds, strings and timers.
impl Tx<'_> {
    /// Adds a hold for `owner` to the lock or semaphore at `key` (which exists) with a new
    /// token and a lease of `ttl_ms`. Returns the token.
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
        self.emit(Record::Grant {
            key: key.clone(),
            owner: owner.clone(),
            hold: kind,
            token,
            deadline_ms,
        });
        token
    }

    fn insert_holder(
        &mut self,
        key: &Bytes,
        owner: &Bytes,
        kind: HoldKind,
        token: i64,
        deadline: Instant,
    ) {
        let timer = self.schedule(key, deadline, Due { key: key.clone() });
        if let Some(holds) = self.entry(key).and_then(Entry::holds_mut) {
            holds.holders.push(Holder {
                owner: owner.clone(),
                kind,
                token,
                deadline,
                timer,
            });
        }
    }

    /// Resets the lease of `owner` on `key` to `ttl_ms` from now. Returns the hold's token,
    /// or None when the owner holds nothing there.
    pub(crate) fn renew_hold(&mut self, key: &Bytes, owner: &[u8], ttl_ms: u64) -> Option<i64> {
        let (deadline, deadline_ms) = self.now.deadline(ttl_ms);
        let holder = self
            .entry(key)
            .and_then(Entry::holds_mut)?
            .holders
            .iter_mut()
            .find(|h| h.owner == owner)?;
        holder.deadline = deadline;
        let (token, timer, owner) = (holder.token, holder.timer, holder.owner.clone());
        if !self.reschedule(key, timer, deadline) {
            // The old timer already fired in this `expire` batch (a hand-off during expiry
            // renewed a hold whose lease is due later in the batch, e.g. an MLOCK that counts
            // the owner's held key as granted): the renewed lease needs a timer of its own.
            // Found by tests/model.rs.
            let timer = self.schedule(key, deadline, Due { key: key.clone() });
            if let Some(h) = self
                .entry(key)
                .and_then(Entry::holds_mut)
                .and_then(|h| h.holders.iter_mut().find(|h| h.token == token))
            {
                h.timer = timer;
            }
        }
        self.emit(Record::Refresh {
            key: key.clone(),
            owner,
            deadline_ms,
        });
        Some(token)
    }

    /// Ends the hold of `owner` on `key` (without serving the queue: call [`pump`]).
    pub(crate) fn release_hold(&mut self, key: &Bytes, owner: &[u8]) -> Option<Holder> {
        let holds = self.entry(key).and_then(Entry::holds_mut)?;
        let pos = holds.holders.iter().position(|h| h.owner == owner)?;
        let holder = holds.holders.swap_remove(pos);
        self.shard(key).wheel.cancel(holder.timer);
        self.emit(Record::Release {
            key: key.clone(),
            owner: holder.owner.clone(),
        });
        Some(holder)
    }

    /// Creates an empty lock at `key` if the key is free (no record: an idle lock is no state).
    pub(crate) fn ensure_lock(&mut self, key: &Bytes) {
        self.shard(key)
            .entries
            .entry(key.clone())
            .or_insert_with(|| Entry::Lock(Box::default()));
    }

    /// Drops `key` if it is a lock with no holders and no waiters.
    pub(crate) fn gc(&mut self, key: &[u8]) {
        let shard = self.shard(key);
        if let Some(Entry::Lock(h)) = shard.entries.get(key) {
            if h.is_idle() {
                shard.entries.remove(key);
            }
        }
    }

    /// Creates the semaphore `key` or sets its capacity.
    pub(crate) fn put_sem(&mut self, key: &Bytes, capacity: u64) {
        let shard = self.shard(key);
        match shard.entries.get_mut(key) {
            Some(Entry::Sem(s)) => s.capacity = capacity,
            _ => {
                shard.entries.insert(
                    key.clone(),
                    Entry::Sem(Box::new(Semaphore {
                        capacity,
                        holds: Holds::default(),
                    })),
                );
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
        let entry = shard.entries.remove(key)?;
        match &entry {
            Entry::Str(s) => {
                if let Some((_, timer)) = s.expiry {
                    shard.wheel.cancel(timer);
                }
            }
            other => {
                for h in other.holds().map(|h| &h.holders[..]).unwrap_or(&[]) {
                    shard.wheel.cancel(h.timer);
                }
            }
        }
        self.emit(Record::Delete {
            key: Bytes::copy_from_slice(key),
        });
        Some(entry)
    }

    /// Stores string `key` = `value`, expiring at `expiry` (a monotonic deadline and its wall
    /// ms) or never. Replaces an existing string; the caller checked the key's kind.
    pub(crate) fn put_str(&mut self, key: &Bytes, value: Bytes, expiry: Option<(Instant, u64)>) {
        self.cancel_str_timer(key);
        let timer = expiry.map(|(d, _)| (d, self.schedule(key, d, Due { key: key.clone() })));
        self.shard(key).entries.insert(
            key.clone(),
            Entry::Str(Box::new(StrValue {
                value: value.clone(),
                expiry: timer,
            })),
        );
        self.emit(Record::StrSet {
            key: key.clone(),
            value,
            deadline_ms: expiry.map(|(_, w)| w),
        });
    }

    /// Sets or clears the expiry of string `key` (which exists).
    pub(crate) fn set_str_expiry(&mut self, key: &Bytes, expiry: Option<(Instant, u64)>) {
        self.cancel_str_timer(key);
        let timer = expiry.map(|(d, _)| (d, self.schedule(key, d, Due { key: key.clone() })));
        if let Some(Entry::Str(s)) = self.entry(key) {
            s.expiry = timer;
        }
        self.emit(Record::StrExpire {
            key: key.clone(),
            deadline_ms: expiry.map(|(_, w)| w),
        });
    }

    fn cancel_str_timer(&mut self, key: &[u8]) {
        let shard = self.shard(key);
        if let Some(Entry::Str(s)) = shard.entries.get(key) {
            if let Some((_, timer)) = s.expiry {
                shard.wheel.cancel(timer);
            }
        }
    }
}

/// Hand-off: serving queues when holds end, and waiters leaving.
impl Tx<'_> {
    /// Queues a single-key request (LOCK family, SEM.ACQUIRE) at the back of `key`'s queue.
    ///
    /// # Errors
    /// `max waiters reached` (an idle lock created for the request is dropped again).
    pub(crate) fn enqueue_single(
        &mut self,
        key: &Bytes,
        owner: &Bytes,
        kind: HoldKind,
        ttl_ms: u64,
    ) -> Result<super::Outcome, RespError> {
        let seq = match self.admit_waiter() {
            Ok(seq) => seq,
            Err(err) => {
                self.gc(key);
                return Err(err);
            }
        };
        let (waiter, rx) = Waiter::new(
            seq,
            owner.clone(),
            kind,
            ttl_ms,
            vec![key.clone()],
            false,
            Vec::new(),
        );
        let waiter = Arc::new(waiter);
        if let Some(holds) = self.entry(key).and_then(Entry::holds_mut) {
            holds.queue.push_back(waiter.clone());
        }
        Ok(super::Outcome::Blocked(super::Blocked { waiter, rx }))
    }

    /// Grants the head waiters of `key` that fit, in order, and drops the key if it became
    /// an idle lock. A multi-key head whose shards this section lacks is deferred.
    pub(crate) fn pump(&mut self, key: &Bytes) {
        loop {
            let Some(entry) = self.entry(key) else { return };
            let capacity = match entry {
                Entry::Sem(s) => Some((s.capacity, s.used())),
                Entry::Lock(_) => None,
                Entry::Str(_) => return,
            };
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
            .and_then(|e| e.holds())
            .and_then(|h| h.holder(&w.owner))
            .map(|h| h.kind);
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

    /// Grants multi-key waiter `w` if, on every key, it heads the queue of a free key or
    /// its owner still has the exclusive hold it had there when it asked; all of its keys' shards are held. Returns true if
    /// it was granted (or found finished), i.e. the queues changed.
    pub(crate) fn examine_multi(&mut self, w: &Arc<Waiter>) -> bool {
        if !w.is_pending() {
            return false;
        }
        let ready = w.keys.iter().all(|key| {
            self.entry(key)
                .and_then(|e| e.holds())
                .is_some_and(|holds| {
                    let own = holds.holder(&w.owner).is_some_and(|h| w.owns(h.token));
                    let heads = holds.queue.front().is_some_and(|h| h.seq == w.seq);
                    own || heads && holds.holders.is_empty()
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
            let renewed = self.renew_hold(key, &w.owner, w.ttl_ms);
            let token = match renewed {
                Some(token) => token,
                None => {
                    self.ensure_lock(key);
                    fresh.push(key.clone());
                    self.grant_hold(key, &w.owner, HoldKind::Exclusive, w.ttl_ms)
                }
            };
            tokens.push(Reply::Int(token));
        }
        self.waiter_left();
        let delivered = w.deliver(WaitResult::Granted {
            reply: Reply::Array(tokens),
            lsn: self.lsn,
        });
        if delivered {
            // Serve what now heads each of its queues, not only the key whose `pump` made
            // the grant (or none when the grant was deferred): otherwise the outcome depended
            // on the shard layout. Found by tests/model.rs.
            for key in &w.keys {
                self.pump(key);
            }
        } else {
            // Undo only the holds this grant created. A key the owner already held counted as
            // granted (renewed, same token): that hold came from an earlier, delivered grant
            // and stands until UNLOCK or expiry (PROTOCOL.md), as in `grant_single`.
            // Releasing every key here dropped it. Found by tests/model.rs.
            // All are released before any queue is served, so that no waiter sees half of
            // the undone grant (an MLOCK of the same owner counted such a dying hold as its
            // own). Found by tests/model.rs.
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
    /// hash lookup per lease; a lease whose key has waiters goes through `pump` at once, so
    /// records and hand-offs keep their firing order. Records are built only when a sink
    /// takes them.
    pub(crate) fn expire_shard(&mut self, index: usize, budget: usize) -> usize {
        /// Timers taken from the wheel per pass: bounds the scratch buffer.
        const CHUNK: usize = 1024;
        let now = self.now.mono;
        let logging = !self.replaying && self.table.shared.sink.is_some();
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
                for (timer, Due { key }) in batch.by_ref() {
                    let Occupied(mut slot) = shard.entries.entry(key) else {
                        continue;
                    };
                    let holds = match slot.get_mut() {
                        Entry::Str(s) => {
                            if s.expiry.is_some_and(|(_, t)| t == timer) {
                                let (key, _) = slot.remove_entry();
                                if logging {
                                    records.push(Record::Delete { key });
                                }
                            }
                            continue;
                        }
                        Entry::Lock(h) => &mut **h,
                        Entry::Sem(s) => &mut s.holds,
                    };
                    // The hold this timer was scheduled for. A hold renewed after the poll
                    // (by a hand-off earlier in this batch) got a new timer, so it is not
                    // found: its lease never ends before its deadline.
                    let Some(pos) = holds.holders.iter().position(|h| h.timer == timer) else {
                        continue;
                    };
                    let holder = holds.holders.swap_remove(pos);
                    debug_assert!(holder.deadline <= now, "lease ended before its deadline");
                    ended += 1;
                    let waiters = !holds.queue.is_empty();
                    let idle = holds.holders.is_empty() && matches!(slot.get(), Entry::Lock(_));
                    let key = if !waiters && idle {
                        slot.remove_entry().0
                    } else {
                        slot.key().clone()
                    };
                    if logging || waiters {
                        if waiters {
                            hand_off = Some(key.clone());
                        }
                        records.push(Record::Release {
                            key,
                            owner: holder.owner,
                        });
                    }
                    if hand_off.is_some() {
                        break;
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
        if ended > 0 {
            metrics::counter!(crate::metrics::LEASES_EXPIRED).increment(ended);
        }
        fired
    }

    /// Applies a recovered record without emitting it again.
    pub(crate) fn replay(&mut self, record: &Record) {
        self.replaying = true;
        let now = self.now;
        let mono = |deadline_ms: u64| -> Option<Instant> {
            (deadline_ms > now.wall_ms)
                .then(|| now.mono + Duration::from_millis(deadline_ms - now.wall_ms))
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
                        let found = self
                            .entry(key)
                            .and_then(Entry::holds_mut)
                            .and_then(|h| h.holders.iter_mut().find(|h| h.owner == *owner))
                            .map(|h| {
                                h.deadline = deadline;
                                h.timer
                            });
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
                        if let Some(h) = self.release_hold(key, owner) {
                            self.shard(key).ghosts.insert(ghost, (h.kind, h.token));
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
                if matches!(self.entry(key), Some(Entry::Lock(_)) | Some(Entry::Str(_))) {
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
                if matches!(self.entry(key), Some(Entry::Lock(_)) | Some(Entry::Sem(_))) {
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
                if matches!(self.entry(key), Some(Entry::Str(_))) {
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
                let keys: Vec<Bytes> = self
                    .guards
                    .iter()
                    .flat_map(|(_, g)| g.entries.keys().cloned().collect::<Vec<_>>())
                    .collect();
                for key in keys {
                    self.remove_key(&key);
                }
                for (_, guard) in &mut self.guards {
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
        match hold {
            HoldKind::Permits(n) => {
                if !matches!(self.entry(key), Some(Entry::Sem(_))) {
                    self.put_sem(key, n);
                }
            }
            _ => self.ensure_lock(key),
        }
        if self.entry(key).and_then(|e| e.holds()).is_some() {
            self.insert_holder(key, owner, hold, token, deadline);
        }
    }

    /// Replay: `key` is gone, so are its expired holds.
    fn forget_ghosts(&mut self, key: &[u8]) {
        self.shard(key).ghosts.retain(|(k, _), _| k.as_ref() != key);
    }
}
