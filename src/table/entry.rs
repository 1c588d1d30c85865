//! What a key holds: a lock, a semaphore or a string, and the holders of a lock/semaphore.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::waiters::Waiter;
use crate::persist::HoldKind;
use crate::wheel::TimerId;

/// One key's object.
#[derive(Debug)]
pub enum Entry {
    /// A readers-writer lock; exists while it has holders or waiters.
    Lock(Holds),
    /// A semaphore; exists until SEM.DELETE.
    Sem(Semaphore),
    /// A compatibility-layer string.
    Str(StrValue),
}

/// The holders and FIFO waiters of a lock or a semaphore.
#[derive(Debug, Default)]
pub struct Holds {
    /// Current holders (at most one per owner).
    pub holders: Vec<Holder>,
    /// Waiters in global arrival order (`seq` rising).
    pub queue: VecDeque<Arc<Waiter>>,
}

/// A semaphore: capacity plus holds counted in permits.
#[derive(Debug)]
pub struct Semaphore {
    /// Permits in all.
    pub capacity: u64,
    /// Holders and waiters.
    pub holds: Holds,
}

impl Semaphore {
    /// Permits held now.
    pub fn used(&self) -> u64 {
        self.holds.holders.iter().map(|h| h.kind.permits()).sum()
    }
}

/// A string value with an optional expiry.
#[derive(Debug)]
pub struct StrValue {
    /// The bytes.
    pub value: Bytes,
    /// When it expires, and its timer.
    pub expiry: Option<(Instant, TimerId)>,
}

/// One hold: who, how, which token, until when.
#[derive(Debug, Clone)]
pub struct Holder {
    /// The owner chosen by the client.
    pub owner: Bytes,
    /// Lock mode or permits.
    pub kind: HoldKind,
    /// The fencing token of the grant.
    pub token: i64,
    /// Monotonic end of the lease.
    pub deadline: Instant,
    /// The lease's timer in the shard's wheel.
    pub timer: TimerId,
}

/// Mode compatibility and permit counts.
pub trait KindExt {
    /// Permits this hold uses (1 for lock modes).
    fn permits(&self) -> u64;
    /// Whether two lock holds may coexist on one key.
    fn compatible_with(&self, other: &HoldKind) -> bool;
    /// The mode name LOCK.INFO shows.
    fn mode_name(&self) -> &'static str;
}

impl KindExt for HoldKind {
    fn permits(&self) -> u64 {
        match self {
            HoldKind::Permits(n) => *n,
            _ => 1,
        }
    }

    fn compatible_with(&self, other: &HoldKind) -> bool {
        matches!(
            (self, other),
            (HoldKind::Read, HoldKind::Read) | (HoldKind::SharedWrite, HoldKind::SharedWrite)
        )
    }

    fn mode_name(&self) -> &'static str {
        match self {
            HoldKind::Exclusive => "exclusive",
            HoldKind::SharedWrite => "shared-write",
            HoldKind::Read => "read",
            HoldKind::Permits(_) => "permits",
        }
    }
}

impl Holds {
    /// The hold of `owner`, if any.
    pub fn holder(&self, owner: &[u8]) -> Option<&Holder> {
        self.holders.iter().find(|h| h.owner == owner)
    }

    /// Whether a lock hold of `kind` fits beside the current holders.
    pub fn lock_fits(&self, kind: &HoldKind) -> bool {
        self.holders.iter().all(|h| h.kind.compatible_with(kind))
    }

    /// Whether nobody holds or waits.
    pub fn is_idle(&self) -> bool {
        self.holders.is_empty() && self.queue.is_empty()
    }

    /// Waiters as PROTOCOL.md counts them: an MLOCK whose owner holds this key exclusively
    /// sits in the queue only to keep its arrival place should the hold end; it does not
    /// wait for the key meanwhile.
    pub fn visible_waiters(&self) -> usize {
        self.queue
            .iter()
            .filter(|w| {
                !(w.multi
                    && self
                        .holder(&w.owner)
                        .is_some_and(|h| h.kind == HoldKind::Exclusive))
            })
            .count()
    }

    /// Removes `waiter` from the queue; true if it was there.
    pub fn dequeue(&mut self, waiter: &Waiter) -> bool {
        match self.queue.binary_search_by_key(&waiter.seq, |w| w.seq) {
            Ok(pos) => {
                self.queue.remove(pos);
                true
            }
            Err(_) => false,
        }
    }

    /// Inserts `waiter` at its place in global arrival order.
    pub fn enqueue(&mut self, waiter: Arc<Waiter>) {
        let pos = self
            .queue
            .binary_search_by_key(&waiter.seq, |w| w.seq)
            .unwrap_or_else(|pos| pos);
        self.queue.insert(pos, waiter);
    }
}

impl Entry {
    /// The holds of a lock or semaphore; None for a string.
    pub fn holds(&self) -> Option<&Holds> {
        match self {
            Entry::Lock(h) => Some(h),
            Entry::Sem(s) => Some(&s.holds),
            Entry::Str(_) => None,
        }
    }

    /// Mutable holds of a lock or semaphore.
    pub fn holds_mut(&mut self) -> Option<&mut Holds> {
        match self {
            Entry::Lock(h) => Some(h),
            Entry::Sem(s) => Some(&mut s.holds),
            Entry::Str(_) => None,
        }
    }

    /// `TYPE`'s answer.
    pub fn type_name(&self) -> &'static str {
        match self {
            Entry::Lock(_) => "lock",
            Entry::Sem(_) => "semaphore",
            Entry::Str(_) => "string",
        }
    }
}
