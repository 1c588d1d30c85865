//! What a key holds: a lock, a semaphore or a string, and the holders of a lock/semaphore.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::waiters::Waiter;
use crate::persist::HoldKind;
use crate::wheel::TimerId;

/// One key's object.
///
/// Each variant is boxed so the map's bucket stays at key + 16 bytes: the hash map runs
/// between 44% and 87% full, so every byte inline costs up to two bytes per key, while a
/// box costs its size once (measured with `examples/lock_memory.rs`).
#[derive(Debug)]
pub enum Entry {
    /// A readers-writer lock; exists while it has holders or waiters.
    Lock(Box<Holds>),
    /// A semaphore; exists until SEM.DELETE.
    Sem(Box<Semaphore>),
    /// A compatibility-layer string.
    Str(Box<StrValue>),
}

/// The holders and FIFO waiters of a lock or a semaphore.
#[derive(Debug, Default)]
pub struct Holds {
    /// Current holders (at most one per owner).
    pub holders: HolderList,
    /// Waiters in global arrival order (`seq` rising).
    pub queue: Queue,
}

/// The holders of one key: one inline (the common case: an exclusive lock), more in a `Vec`.
///
/// A `Vec` allocates room for 4 holders on its first push (320 bytes for one lock);
/// this keeps a single holder inside the entry. Reads go through `Deref<Target = [Holder]>`.
#[derive(Debug)]
pub enum HolderList {
    /// No holder or several (or one left after a removal from several).
    Many(Vec<Holder>),
    /// Exactly one holder.
    One(Holder),
}

impl Default for HolderList {
    fn default() -> Self {
        HolderList::Many(Vec::new())
    }
}

impl std::ops::Deref for HolderList {
    type Target = [Holder];
    fn deref(&self) -> &[Holder] {
        match self {
            HolderList::Many(v) => v,
            HolderList::One(h) => std::slice::from_ref(h),
        }
    }
}

impl std::ops::DerefMut for HolderList {
    fn deref_mut(&mut self) -> &mut [Holder] {
        match self {
            HolderList::Many(v) => v,
            HolderList::One(h) => std::slice::from_mut(h),
        }
    }
}

impl HolderList {
    /// Adds a holder.
    pub fn push(&mut self, holder: Holder) {
        match self {
            HolderList::Many(v) if v.is_empty() => *self = HolderList::One(holder),
            HolderList::Many(v) => v.push(holder),
            HolderList::One(_) => {
                let HolderList::One(first) = std::mem::take(self) else {
                    unreachable!("matched One above")
                };
                *self = HolderList::Many(vec![first, holder]);
            }
        }
    }

    /// Removes and returns the holder at `pos` (the last one takes its place).
    ///
    /// # Panics
    /// If `pos` is out of bounds.
    pub fn swap_remove(&mut self, pos: usize) -> Holder {
        match self {
            HolderList::Many(v) => {
                let holder = v.swap_remove(pos);
                if v.is_empty() {
                    // Give the allocation back: an idle entry owns no heap memory.
                    *v = Vec::new();
                }
                holder
            }
            HolderList::One(_) => {
                assert_eq!(pos, 0, "holder index out of bounds");
                let HolderList::One(holder) = std::mem::take(self) else {
                    unreachable!("matched One above")
                };
                holder
            }
        }
    }
}

/// A FIFO of waiters that costs one pointer while empty (most keys never have a waiter).
///
/// The box is deliberate (against `clippy::box_collection`): an empty `VecDeque` is 32
/// bytes inline in every key's entry, the box 8; the extra allocation exists only while
/// somebody waits.
#[derive(Debug, Default)]
#[allow(clippy::box_collection)]
pub struct Queue(Option<Box<VecDeque<Arc<Waiter>>>>);

impl Queue {
    /// Whether nobody waits.
    pub fn is_empty(&self) -> bool {
        self.0.as_ref().is_none_or(|q| q.is_empty())
    }

    /// Waiters queued.
    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |q| q.len())
    }

    /// The head waiter.
    pub fn front(&self) -> Option<&Arc<Waiter>> {
        self.0.as_ref().and_then(|q| q.front())
    }

    /// Appends a waiter.
    pub fn push_back(&mut self, waiter: Arc<Waiter>) {
        self.0.get_or_insert_default().push_back(waiter);
    }

    /// Removes the head waiter; frees the storage when the queue empties.
    pub fn pop_front(&mut self) -> Option<Arc<Waiter>> {
        let q = self.0.as_mut()?;
        let head = q.pop_front();
        if q.is_empty() {
            self.0 = None;
        }
        head
    }

    /// The waiters, head first.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Waiter>> {
        self.0.iter().flat_map(|q| q.iter())
    }

    /// Keeps only the waiters for which `f` is true.
    pub fn retain(&mut self, f: impl FnMut(&Arc<Waiter>) -> bool) {
        if let Some(q) = self.0.as_mut() {
            q.retain(f);
            if q.is_empty() {
                self.0 = None;
            }
        }
    }

    /// Position of `seq` (Ok) or where it belongs (Err), by arrival order.
    fn search(&self, seq: u64) -> Result<usize, usize> {
        match &self.0 {
            Some(q) => q.binary_search_by_key(&seq, |w| w.seq),
            None => Err(0),
        }
    }
}

impl IntoIterator for Queue {
    type Item = Arc<Waiter>;
    type IntoIter = std::iter::Flatten<std::option::IntoIter<VecDeque<Arc<Waiter>>>>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.map(|q| *q).into_iter().flatten()
    }
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

    /// Waiters as PROTOCOL.md counts them: an MLOCK whose owner held this key exclusively
    /// when it asked, and still does, sits in the queue only to keep its arrival place
    /// should that hold end; it does not wait for the key meanwhile.
    pub fn visible_waiters(&self) -> usize {
        self.queue
            .iter()
            .filter(|w| !self.holder(&w.owner).is_some_and(|h| w.owns(h.token)))
            .count()
    }

    /// Removes `waiter` from the queue; true if it was there.
    pub fn dequeue(&mut self, waiter: &Waiter) -> bool {
        match self.queue.search(waiter.seq) {
            Ok(pos) => {
                if let Some(q) = self.queue.0.as_mut() {
                    q.remove(pos);
                    if q.is_empty() {
                        self.queue.0 = None;
                    }
                }
                true
            }
            Err(_) => false,
        }
    }

    /// Inserts `waiter` at its place in global arrival order.
    pub fn enqueue(&mut self, waiter: Arc<Waiter>) {
        let pos = self.queue.search(waiter.seq).unwrap_or_else(|pos| pos);
        self.queue.0.get_or_insert_default().insert(pos, waiter);
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
