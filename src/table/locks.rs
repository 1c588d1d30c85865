//! Locks: LOCK / WLOCK / RLOCK (one key), MLOCK / MUNLOCK (several), REFRESH, UNLOCK,
//! LOCK.INFO. Modes and their compatibility are [`HoldKind`]'s (`kind.rs`).

use std::sync::Arc;

use bytes::Bytes;

use super::entry::Holds;
use super::waiters::Waiter;
use super::HoldKind;
use super::{Blocked, Outcome, Tx};
use crate::error::RespError;
use crate::resp::Reply;

impl Tx<'_> {
    /// LOCK / WLOCK / RLOCK: grants `kind` on `key` to `owner` now, queues it (`wait`), or
    /// answers nil. A repeated grant in the same mode resets the lease and returns the same
    /// token.
    ///
    /// # Errors
    /// WRONGTYPE for a string or semaphore key; `owner already holds this key in another
    /// mode`; `max waiters reached`.
    pub fn lock_acquire(
        &mut self,
        key: &Bytes,
        owner: &Bytes,
        kind: HoldKind,
        ttl_ms: u64,
        wait: bool,
    ) -> Result<Outcome, RespError> {
        self.check(key)?;
        let (existing, grantable) = match self.entry(key) {
            Some(e) if e.is_lock() => (
                e.holder(owner).map(|h| h.lease),
                !e.has_waiters() && e.lock_fits(&kind),
            ),
            Some(_) => return Err(RespError::WRONGTYPE),
            None => (None, true),
        };
        if let Some(lease) = existing {
            if lease.kind != kind {
                return Err(RespError::OTHER_MODE);
            }
            let token = self.renew_hold(key, owner, ttl_ms).unwrap_or(lease.token);
            return Ok(Reply::Int(token).into());
        }
        if grantable {
            let token = self.grant_hold(key, owner, kind, ttl_ms);
            return Ok(Reply::Int(token).into());
        }
        if !wait {
            return Ok(Reply::Nil.into());
        }
        self.enqueue_single(key, owner, kind, ttl_ms)
    }

    /// REFRESH: renews the owner's lease on a lock or semaphore. 1 if renewed, 0 if the
    /// owner holds nothing there.
    ///
    /// # Errors
    /// WRONGTYPE on a string key.
    pub fn refresh(&mut self, key: &Bytes, owner: &[u8], ttl_ms: u64) -> Result<Reply, RespError> {
        self.check(key)?;
        if self.entry(key).is_some_and(|e| e.is_str()) {
            return Err(RespError::WRONGTYPE);
        }
        Ok(Reply::Int(i64::from(
            self.renew_hold(key, owner, ttl_ms).is_some(),
        )))
    }

    /// UNLOCK: ends the owner's hold (lock, or all its permits) and serves the queue.
    /// 1 if it held something, else 0.
    ///
    /// # Errors
    /// WRONGTYPE on a string key.
    pub fn unlock(&mut self, key: &Bytes, owner: &[u8]) -> Result<Reply, RespError> {
        self.check(key)?;
        if self.entry(key).is_some_and(|e| e.is_str()) {
            return Err(RespError::WRONGTYPE);
        }
        let released = self.release_hold(key, owner).is_some();
        if released {
            self.pump(key);
        }
        Ok(Reply::Int(i64::from(released)))
    }

    /// LOCK.INFO: nil, or mode, holders and waiter count.
    ///
    /// # Errors
    /// WRONGTYPE on a string or semaphore key.
    pub fn lock_info(&mut self, key: &[u8]) -> Result<Reply, RespError> {
        self.check(key)?;
        let (now, origin) = (self.now, self.origin());
        let entry = match self.entry(key) {
            None => return Ok(Reply::Nil),
            Some(e) if e.is_lock() => e,
            Some(_) => return Err(RespError::WRONGTYPE),
        };
        if entry.is_idle() {
            return Ok(Reply::Nil);
        }
        let mode = entry
            .holders()
            .next()
            .map_or("none", |h| h.lease.kind.mode_name());
        let holders = entry
            .holders()
            .map(|h| {
                Reply::map_static(vec![
                    ("owner", Reply::Bulk(Bytes::copy_from_slice(h.owner))),
                    ("mode", Reply::bulk_static(h.lease.kind.mode_name())),
                    ("token", Reply::Int(h.lease.token)),
                    (
                        "ttl",
                        Reply::Int(now.ms_until(h.lease.deadline.instant(origin))),
                    ),
                ])
            })
            .collect();
        let waiters = entry.holds().map_or(0, Holds::visible_waiters);
        Ok(Reply::map_static(vec![
            ("mode", Reply::bulk_static(mode)),
            ("holders", Reply::Array(holders)),
            ("waiters", Reply::Int(waiters as i64)),
        ]))
    }

    /// MLOCK: all `keys` exclusively or none. Keys the owner holds exclusively already count
    /// as granted (lease reset, same token). Granted: an array of tokens in key order.
    ///
    /// # Errors
    /// WRONGTYPE if any key is a string or semaphore; `owner already holds this key in
    /// another mode`; `max waiters reached`.
    pub fn mlock(
        &mut self,
        keys: &[Bytes],
        owner: &Bytes,
        ttl_ms: u64,
        wait: bool,
    ) -> Result<Outcome, RespError> {
        for key in keys {
            self.check(key)?;
        }
        // Per key: the token of the owner's exclusive hold there, if any.
        let mut held = Vec::with_capacity(keys.len());
        let mut all_free = true;
        for key in keys {
            match self.entry(key) {
                None => held.push(None),
                Some(e) if e.is_lock() => match e.holder(owner) {
                    Some(h) if h.lease.kind == HoldKind::Exclusive => {
                        held.push(Some(h.lease.token))
                    }
                    Some(_) => return Err(RespError::OTHER_MODE),
                    None => {
                        all_free &= e.is_idle();
                        held.push(None);
                    }
                },
                Some(_) => return Err(RespError::WRONGTYPE),
            }
        }
        if all_free {
            let tokens = keys
                .iter()
                .zip(&held)
                .map(|(key, held)| {
                    let (token, _) = self.grant_mlock_key(key, owner, ttl_ms, held.is_some());
                    Reply::Int(token)
                })
                .collect();
            return Ok(Reply::Array(tokens).into());
        }
        if !wait {
            return Ok(Reply::NilArray.into());
        }
        let seq = self.admit_waiter()?;
        let (waiter, rx) = Waiter::new(
            seq,
            owner.clone(),
            HoldKind::Exclusive,
            ttl_ms,
            keys.to_vec(),
            true,
            held,
            self.now.mono,
        );
        let waiter = Arc::new(waiter);
        // Also on the keys the owner holds: they count as granted while that hold lasts, and
        // if it ends first the MLOCK waits for that key at its arrival place.
        for key in keys {
            self.queue_waiter(key, waiter.clone());
        }
        Ok(Outcome::Blocked(Blocked { waiter, rx }))
    }

    /// MUNLOCK: releases each key the owner holds (a semaphore: all its permits). Returns how
    /// many it held.
    ///
    /// # Errors
    /// WRONGTYPE if any key is a string (nothing is released then).
    pub fn munlock(&mut self, keys: &[Bytes], owner: &[u8]) -> Result<Reply, RespError> {
        for key in keys {
            self.check(key)?;
        }
        for key in keys {
            if self.entry(key).is_some_and(|e| e.is_str()) {
                return Err(RespError::WRONGTYPE);
            }
        }
        let mut released = 0;
        for key in keys {
            if self.release_hold(key, owner).is_some() {
                released += 1;
                self.pump(key);
            }
        }
        Ok(Reply::Int(released))
    }
}
