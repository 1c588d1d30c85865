//! Lease expiry: timers that fire end holds and string expiries, in firing order, with a
//! budget per call; a hold whose key has waiters hands off at once.

use bytes::Bytes;

use super::entry::{Deadline, Entry, Semaphore, Value};
use super::shard::{Due, Shard};
use super::{LockTable, Now, ShardList, Tx};
use crate::persist::Record;
use crate::wheel::TimerId;

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

impl LockTable {
    /// Ends the leases (and string expiries) due at `now`, at most `budget` of them.
    /// Returns how many ended; when it equals `budget`, more may be due.
    pub fn expire(&self, now: Now, budget: usize) -> usize {
        self.expire_shards(0..self.shards.len(), now, budget)
    }

    /// [`LockTable::expire`] for the shards in `shards` only (the expirer splits the shards
    /// among workers that run in parallel; each shard is locked on its own).
    pub fn expire_shards(&self, shards: std::ops::Range<usize>, now: Now, budget: usize) -> usize {
        let mut done = 0;
        for i in shards.start..shards.end.min(self.shards.len()) {
            if done >= budget {
                break;
            }
            let mut idx: ShardList = smallvec::smallvec![i];
            let ran = self.run_on(&mut idx, &[], now, |tx| tx.expire_shard(i, budget - done));
            done += ran.value;
        }
        done
    }
}

impl Shard {
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
}

impl Tx<'_> {
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
}
