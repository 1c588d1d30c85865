//! Semaphores: SEM.CREATE, SEM.ACQUIRE, SEM.RELEASE, SEM.INFO, SEM.DELETE. Holds count
//! permits; the queue is strictly FIFO, so a head waiter that needs more permits than are
//! free holds back smaller requests behind it.

use std::sync::Arc;

use bytes::Bytes;

use super::entry::Entry;
use super::waiters::{WaitResult, Waiter};
use super::HoldKind;
use super::{Outcome, Tx};
use crate::error::RespError;
use crate::resp::Reply;

/// SEM.ACQUIRE's request.
#[derive(Debug, Clone)]
pub struct SemAcquire {
    /// Permits asked for (≥ 1).
    pub permits: u64,
    /// CAPACITY: create the semaphore with this capacity if it is missing.
    pub create_capacity: Option<u64>,
    /// Lease in ms.
    pub ttl_ms: u64,
    /// Queue when it cannot be granted now.
    pub wait: bool,
}

impl Tx<'_> {
    /// SEM.CREATE: creates the semaphore or sets its capacity. Shrinking revokes nobody;
    /// waiters whose request no longer fits the capacity get `permits exceed capacity`.
    ///
    /// # Errors
    /// WRONGTYPE on a lock or string key.
    pub fn sem_create(&mut self, key: &Bytes, capacity: u64) -> Result<Reply, RespError> {
        self.check(key)?;
        if self.entry(key).is_some_and(|e| !e.is_sem()) {
            return Err(RespError::WRONGTYPE);
        }
        self.put_sem(key, capacity);
        if let Some(sem) = self.entry(key).and_then(Entry::sem_mut) {
            let too_big: Vec<Arc<Waiter>> = sem
                .holds
                .queue
                .iter()
                .filter(|w| w.kind.permits() > capacity)
                .cloned()
                .collect();
            sem.holds.queue.retain(|w| w.kind.permits() <= capacity);
            for w in too_big {
                w.deliver(WaitResult::Failed(RespError::PERMITS_EXCEED));
                self.waiter_left();
            }
        }
        self.pump(key);
        Ok(Reply::ok())
    }

    /// SEM.ACQUIRE: `permits` for `owner`, now, queued, or nil. Checks run in docs/protocol.md's
    /// order: kind, existence, permits against capacity, the owner's existing hold.
    ///
    /// # Errors
    /// WRONGTYPE, `no such semaphore`, `permits exceed capacity`, `owner already holds other
    /// permits`, `max waiters reached`.
    pub fn sem_acquire(
        &mut self,
        key: &Bytes,
        owner: &Bytes,
        req: &SemAcquire,
    ) -> Result<Outcome, RespError> {
        self.check(key)?;
        let kind = HoldKind::Permits(req.permits);
        let capacity = match self.entry(key) {
            Some(e) => match e.sem() {
                Some(sem) => sem.capacity,
                None => return Err(RespError::WRONGTYPE),
            },
            None => match req.create_capacity {
                None => return Err(RespError::NO_SUCH_SEM),
                Some(c) if req.permits > c => return Err(RespError::PERMITS_EXCEED),
                Some(c) => {
                    self.put_sem(key, c);
                    c
                }
            },
        };
        if req.permits > capacity {
            return Err(RespError::PERMITS_EXCEED);
        }
        let (existing, grantable) = match self.entry(key).and_then(|e| e.sem()) {
            Some(sem) => (
                sem.holds.holder(owner).map(|h| h.lease),
                sem.holds.queue.is_empty() && sem.used() + req.permits <= capacity,
            ),
            None => return Err(RespError::NO_SUCH_SEM),
        };
        if let Some(lease) = existing {
            if lease.kind != kind {
                return Err(RespError::OTHER_PERMITS);
            }
            let token = self
                .renew_hold(key, owner, req.ttl_ms)
                .unwrap_or(lease.token);
            return Ok(Reply::Int(token).into());
        }
        if grantable {
            let token = self.grant_hold(key, owner, kind, req.ttl_ms);
            return Ok(Reply::Int(token).into());
        }
        if !req.wait {
            return Ok(Reply::Nil.into());
        }
        self.enqueue_single(key, owner, kind, req.ttl_ms)
    }

    /// SEM.RELEASE: releases all the owner's permits; returns how many (0 if none).
    ///
    /// # Errors
    /// WRONGTYPE on a lock or string key.
    pub fn sem_release(&mut self, key: &Bytes, owner: &[u8]) -> Result<Reply, RespError> {
        self.check(key)?;
        match self.entry(key) {
            None => return Ok(Reply::Int(0)),
            Some(e) if e.is_sem() => {}
            Some(_) => return Err(RespError::WRONGTYPE),
        }
        let permits = self
            .release_hold(key, owner)
            .map_or(0, |lease| lease.kind.permits());
        if permits > 0 {
            self.pump(key);
        }
        Ok(Reply::Int(permits as i64))
    }

    /// SEM.INFO: nil, or capacity, used, holders and waiter count.
    ///
    /// # Errors
    /// WRONGTYPE on a lock or string key.
    pub fn sem_info(&mut self, key: &[u8]) -> Result<Reply, RespError> {
        self.check(key)?;
        let (now, origin) = (self.now, self.origin());
        let sem = match self.entry(key) {
            None => return Ok(Reply::Nil),
            Some(e) => match e.sem() {
                Some(s) => s,
                None => return Err(RespError::WRONGTYPE),
            },
        };
        let holders = sem
            .holds
            .holders
            .iter()
            .map(|h| {
                Reply::map_static(vec![
                    ("owner", Reply::Bulk(Bytes::copy_from_slice(&h.owner))),
                    ("permits", Reply::Int(h.lease.kind.permits() as i64)),
                    ("token", Reply::Int(h.lease.token)),
                    (
                        "ttl",
                        Reply::Int(now.ms_until(h.lease.deadline.instant(origin))),
                    ),
                ])
            })
            .collect();
        Ok(Reply::map_static(vec![
            ("capacity", Reply::Int(sem.capacity as i64)),
            ("used", Reply::Int(sem.used() as i64)),
            ("holders", Reply::Array(holders)),
            ("waiters", Reply::Int(sem.holds.queue.len() as i64)),
        ]))
    }

    /// SEM.DELETE: removes the semaphore; holders lose their leases, waiters get
    /// `semaphore deleted`. 1 if it existed.
    ///
    /// # Errors
    /// WRONGTYPE on a lock or string key.
    pub fn sem_delete(&mut self, key: &[u8]) -> Result<Reply, RespError> {
        self.check(key)?;
        match self.entry(key) {
            None => Ok(Reply::Int(0)),
            Some(e) if e.is_sem() => {
                if let Some(mut entry) = self.remove_key(key) {
                    if let Some(holds) = entry.holds_mut() {
                        self.fail_waiters(key, holds, RespError::SEM_DELETED);
                    }
                }
                Ok(Reply::Int(1))
            }
            Some(_) => Err(RespError::WRONGTYPE),
        }
    }
}
