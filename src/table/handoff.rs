//! Hand-off: queueing blocked requests, serving queues when holds end (single-key and
//! MLOCK waiters), and waiters leaving (cancelled, failed or withdrawn).

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::oneshot;

use super::entry::{Entry, Holds};
use super::waiters::{Made, WaitResult, Waiter};
use super::HoldKind;
use super::{Blocked, LockTable, Now, Outcome, Ran, Tx};
use crate::error::RespError;
use crate::resp::Reply;

impl LockTable {
    /// Takes a waiter out of its queues (its deadline passed or its connection closed).
    ///
    /// Returns true if it was still waiting; false if it was granted or failed meanwhile, in
    /// which case the outcome is in its channel.
    pub fn cancel(&self, waiter: &Arc<Waiter>, now: Now) -> Ran<bool> {
        let keys: Vec<&[u8]> = waiter.keys.iter().map(|k| k.as_ref()).collect();
        self.run(&keys, now, |tx| tx.cancel_waiter(waiter))
    }

    /// The connection that awaits `rx` for `waiter` is gone: takes the waiter out of its
    /// queues or, when it was granted meanwhile, releases the holds the grant made (it can
    /// no longer be delivered; see [`Made`]) and serves their queues. A failed wait leaves
    /// nothing.
    /// One section over the waiter's keys, so nobody sees half of it.
    pub fn withdraw(&self, waiter: &Arc<Waiter>, rx: &mut oneshot::Receiver<WaitResult>, now: Now) {
        let keys: Vec<&[u8]> = waiter.keys.iter().map(|k| k.as_ref()).collect();
        self.run(&keys, now, |tx| {
            if tx.cancel_waiter(waiter) {
                return;
            }
            let Ok(WaitResult::Granted { made, .. }) = rx.try_recv() else {
                return;
            };
            let (keys, until) = match &made {
                Made::Nothing => return,
                Made::EveryKey { until } => (waiter.keys.as_slice(), *until),
                Made::Keys { keys, until } => (keys.as_slice(), *until),
            };
            // All are released before any queue is served, so that no waiter sees half of
            // the undone grant.
            let released: Vec<&Bytes> = keys
                .iter()
                .filter(|key| tx.release_unrenewed(key, &waiter.owner, until).is_some())
                .collect();
            for key in released {
                tx.pump(key);
            }
        });
    }
}

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
    ) -> Result<Outcome, RespError> {
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
        Ok(Outcome::Blocked(Blocked { waiter, rx }))
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
                        made: Made::Nothing,
                    })
            }
            Some(HoldKind::Permits(_)) => Some(WaitResult::Failed(RespError::OTHER_PERMITS)),
            Some(_) => Some(WaitResult::Failed(RespError::OTHER_MODE)),
            None => {
                let token = self.grant_hold(key, &w.owner, w.kind, w.ttl_ms);
                if w.deliver(WaitResult::Granted {
                    reply: Reply::Int(token),
                    lsn: self.lsn,
                    made: Made::EveryKey {
                        until: self.now.deadline(w.ttl_ms).0,
                    },
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
    /// its owner still has the exclusive hold it had there when it asked; the section holds
    /// the shards of all its keys. Returns true if it was granted (or found finished), i.e.
    /// the queues changed.
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
        let until = self.now.deadline(w.ttl_ms).0;
        let made = if fresh.is_empty() {
            Made::Nothing
        } else if fresh.len() == w.keys.len() {
            Made::EveryKey { until }
        } else {
            Made::Keys {
                keys: fresh.clone(),
                until,
            }
        };
        let delivered = w.deliver(WaitResult::Granted {
            reply: Reply::Array(tokens),
            lsn: self.lsn,
            made,
        });
        if delivered {
            crate::metrics::handoff_wait(self.now.mono.saturating_duration_since(w.queued));
            // Serve what now heads each of its queues, not only the key whose `pump` made
            // the grant (or none when the grant was deferred): otherwise the outcome would
            // depend on the shard layout.
            for key in &w.keys {
                self.pump(key);
            }
        } else {
            // Undo only the holds this grant created: a key the owner already held came from
            // an earlier, delivered grant and stands until UNLOCK or expiry (docs/protocol.md), as
            // in `grant_single`. All are released before any queue is served, so that no
            // waiter sees half of the undone grant.
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
            // would underflow the server-wide waiter count (and every WAIT would then get
            // `max waiters reached`).
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
}
