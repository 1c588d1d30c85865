//! Replay: recovered records (the snapshot and the log after a restart, or committed cluster
//! entries) applied to the table without emitting them again.
//!
//! Replay-only state lives here, not in the live shards: the [`Ghosts`], holds whose
//! recovered deadline had passed but which a later Refresh record may revive.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::HoldKind;
use super::{LockTable, Now, Tx};
use crate::persist::Record;

/// Holds whose recovered deadline had already passed, by key, with their owner, kind and
/// token. A later Refresh record may revive one: the live server refreshed it before its
/// lease ran out (the grant's deadline alone is stale). Every end of a hold is logged
/// (Release, Delete, FlushAll), and those records clear it; what is left after replay are
/// holds that ran out while the server was down (bounded by the holds live at the crash).
/// Cluster mode keeps none (see [`LockTable::set_ends_by_log`]).
#[derive(Debug, Default)]
pub(crate) struct Ghosts {
    by_key: HashMap<Bytes, Vec<Ghost>, foldhash::fast::RandomState>,
}

#[derive(Debug)]
struct Ghost {
    owner: Bytes,
    hold: HoldKind,
    token: i64,
}

impl Ghosts {
    /// Records (or replaces) the ghost of `owner` on `key`.
    fn insert(&mut self, key: &Bytes, owner: &Bytes, hold: HoldKind, token: i64) {
        let ghosts = self.by_key.entry(key.clone()).or_default();
        match ghosts.iter_mut().find(|g| g.owner == *owner) {
            Some(ghost) => (ghost.hold, ghost.token) = (hold, token),
            None => ghosts.push(Ghost {
                owner: owner.clone(),
                hold,
                token,
            }),
        }
    }

    /// Takes out the ghost of `owner` on `key`: its kind and token.
    fn remove(&mut self, key: &[u8], owner: &[u8]) -> Option<(HoldKind, i64)> {
        let ghosts = self.by_key.get_mut(key)?;
        let pos = ghosts.iter().position(|g| g.owner == owner)?;
        let ghost = ghosts.swap_remove(pos);
        if ghosts.is_empty() {
            self.by_key.remove(key);
        }
        Some((ghost.hold, ghost.token))
    }

    /// `key` is gone, so are its ghosts.
    fn forget(&mut self, key: &[u8]) {
        self.by_key.remove(key);
    }

    /// Drops every ghost (FLUSHALL, a table reset).
    pub(crate) fn clear(&mut self) {
        self.by_key.clear();
    }

    /// Every ghost as a `Grant` with deadline 0, so that a snapshot replayed later keeps it
    /// as a ghost too.
    fn dump(&self, f: &mut dyn FnMut(Record)) {
        for (key, ghosts) in &self.by_key {
            for ghost in ghosts {
                f(Record::Grant {
                    key: key.clone(),
                    owner: ghost.owner.clone(),
                    hold: ghost.hold,
                    token: ghost.token,
                    deadline_ms: 0,
                });
            }
        }
    }
}

impl LockTable {
    /// Cluster mode: makes replay deterministic. A recovered lease (or string expiry) whose
    /// wall deadline passed is kept as due now instead of dropped, so every node's table
    /// is a function of the committed log alone; the serving leader's expirer ends it by
    /// proposing a Release (or Delete) through the log. Single-node mode never sets it.
    pub fn set_ends_by_log(&self, on: bool) {
        self.shared.ends_by_log.store(on, Ordering::Relaxed);
    }

    /// Re-applies a recovered record (restart). Leases whose wall deadline passed are
    /// dropped, unless [`set_ends_by_log`](Self::set_ends_by_log) keeps them as due now.
    pub fn replay(&self, record: &Record, now: Now) {
        let key: Option<&[u8]> = match record {
            Record::Grant { key, .. }
            | Record::Refresh { key, .. }
            | Record::Release { key, .. }
            | Record::SemCreate { key, .. }
            | Record::Delete { key }
            | Record::StrSet { key, .. }
            | Record::StrExpire { key, .. } => Some(key),
            Record::FlushAll => None,
            Record::TokenHighWater { upto } => {
                self.shared.tokens.observe(*upto);
                return;
            }
        };
        let mut ghosts = self.ghosts.lock();
        let apply = |tx: &mut Tx<'_>| {
            tx.replaying = true;
            Replay {
                tx,
                ghosts: &mut ghosts,
            }
            .apply(record);
            tx.replaying = false;
        };
        match key {
            Some(key) => self.run(&[key], now, apply),
            None => self.run_all(now, apply),
        };
    }

    /// Like [`dump`](Self::dump), plus the holds that replay found expired but a later
    /// refresh may still revive (cluster snapshots are replayed before later entries).
    pub fn dump_with_ghosts(&self, now: Now, f: &mut dyn FnMut(Record)) {
        self.dump(now, f);
        self.ghosts.lock().dump(f);
    }
}

/// One record's replay: the section over its key's shard (every shard for FLUSHALL) and
/// the table's ghosts.
struct Replay<'t, 'a> {
    tx: &'t mut Tx<'a>,
    ghosts: &'t mut Ghosts,
}

impl Replay<'_, '_> {
    /// Applies `record` (the section is marked as replaying: nothing is emitted).
    fn apply(&mut self, record: &Record) {
        let (now, by_log) = (self.tx.now, self.by_log());
        let mono = |deadline_ms| live_deadline(now, by_log, deadline_ms);
        match record {
            Record::Grant {
                key,
                owner,
                hold,
                token,
                deadline_ms,
            } => self.grant(key, owner, *hold, *token, *deadline_ms),
            Record::Refresh {
                key,
                owner,
                deadline_ms,
            } => self.refresh(key, owner, *deadline_ms),
            Record::Release { key, owner } => {
                self.tx.release_hold(key, owner);
                self.ghosts.remove(key, owner);
                self.tx.gc(key);
            }
            Record::SemCreate { key, capacity } => {
                if self.tx.entry(key).is_some_and(|e| !e.is_sem()) {
                    self.tx.remove_key(key);
                    self.ghosts.forget(key);
                }
                self.tx.put_sem(key, *capacity);
            }
            Record::Delete { key } => {
                self.tx.remove_key(key);
                self.ghosts.forget(key);
            }
            Record::StrSet {
                key,
                value,
                deadline_ms,
            } => {
                if self.tx.entry(key).is_some_and(|e| !e.is_str()) {
                    self.tx.remove_key(key);
                    self.ghosts.forget(key);
                }
                match deadline_ms {
                    None => self.tx.put_str(key, value.clone(), None),
                    Some(ms) => match mono(*ms) {
                        Some(d) => self.tx.put_str(key, value.clone(), Some((d, *ms))),
                        None => {
                            self.tx.remove_key(key);
                        }
                    },
                }
            }
            Record::StrExpire { key, deadline_ms } => {
                if self.tx.entry(key).is_some_and(|e| e.is_str()) {
                    match deadline_ms {
                        None => self.tx.set_str_expiry(key, None),
                        Some(ms) => match mono(*ms) {
                            Some(d) => self.tx.set_str_expiry(key, Some((d, *ms))),
                            None => {
                                self.tx.remove_key(key);
                            }
                        },
                    }
                }
            }
            Record::FlushAll => {
                for (_, guard) in &mut self.tx.guards {
                    guard.take_all();
                }
                self.ghosts.clear();
            }
            Record::TokenHighWater { upto } => self.tx.table.shared.tokens.observe(*upto),
        }
    }

    /// Whether replay runs in cluster mode (see [`LockTable::set_ends_by_log`]).
    fn by_log(&self) -> bool {
        self.tx.table.shared.ends_by_log.load(Ordering::Relaxed)
    }

    /// A Grant record: the hold with a live deadline, or a ghost when its deadline passed.
    fn grant(&mut self, key: &Bytes, owner: &Bytes, hold: HoldKind, token: i64, deadline_ms: u64) {
        self.tx.table.shared.tokens.observe(token);
        self.tx.release_hold(key, owner);
        self.ghosts.remove(key, owner);
        match live_deadline(self.tx.now, self.by_log(), deadline_ms) {
            Some(deadline) => self.revive(key, owner, hold, token, deadline),
            // Passed by now, but a later Refresh may have kept it (see `Ghosts`).
            None => self.ghosts.insert(key, owner, hold, token),
        }
        self.tx.gc(key);
    }

    /// A Refresh record: the hold's new deadline; a ghost it revives; or, when the new
    /// deadline passed too, the hold becomes a ghost.
    fn refresh(&mut self, key: &Bytes, owner: &Bytes, deadline_ms: u64) {
        let Some(deadline) = live_deadline(self.tx.now, self.by_log(), deadline_ms) else {
            if let Some(lease) = self.tx.release_hold(key, owner) {
                self.ghosts.insert(key, owner, lease.kind, lease.token);
            }
            self.tx.gc(key);
            return;
        };
        let at = super::entry::Deadline::new(self.tx.origin(), deadline);
        let found = self
            .tx
            .entry(key)
            .and_then(|e| e.update_lease(|h| h.owner == owner.as_ref(), |l| l.deadline = at))
            .map(|lease| lease.timer);
        if let Some(timer) = found {
            self.tx.reschedule(key, timer, deadline);
        } else if let Some((hold, token)) = self.ghosts.remove(key, owner) {
            // The grant's deadline had passed by now, yet the live server refreshed the hold
            // before it ran out: the hold lives on (a lock kept alive by REFRESH across a
            // restart).
            self.revive(key, owner, hold, token, deadline);
        }
    }

    /// Puts back a recovered hold of `owner` on `key` with a live `deadline`.
    fn revive(
        &mut self,
        key: &Bytes,
        owner: &Bytes,
        hold: HoldKind,
        token: i64,
        deadline: Instant,
    ) {
        if let HoldKind::Permits(n) = hold {
            if !self.tx.entry(key).is_some_and(|e| e.is_sem()) {
                self.tx.put_sem(key, n);
            }
        }
        // A lock mode on a missing key makes a lock; a string takes no holds.
        if !self.tx.entry(key).is_some_and(|e| e.is_str()) {
            self.drop_conflicting(key, owner, hold);
            self.tx.insert_holder(key, owner, hold, token, deadline);
        }
    }

    /// A grant of `key` to `owner` as `hold`: other holders it excludes are
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
            .tx
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
            self.tx.release_hold(key, &other);
        }
    }
}

/// The monotonic deadline for a recovered wall-clock one: None when it has passed, except
/// in cluster mode (`by_log`), where a passed deadline is due now and never dropped here
/// (see [`LockTable::set_ends_by_log`]), so the ghost paths are not taken.
fn live_deadline(now: Now, by_log: bool, deadline_ms: u64) -> Option<Instant> {
    if deadline_ms > now.wall_ms {
        Some(now.mono + Duration::from_millis(deadline_ms - now.wall_ms))
    } else {
        by_log.then_some(now.mono)
    }
}
