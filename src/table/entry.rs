//! What a key holds: a lock, a semaphore or a string, and the holders of a lock/semaphore.
//!
//! # Forms
//! An [`Entry`] is 16 bytes in its shard's slab (`keys.rs`), found by the key it stores
//! itself (the key's bytes exist once), in one of two forms:
//! - [`Entry::Sole`]: a lock with exactly one holder and nobody queued, in one allocation
//!   ([`SoleLock`], see `sole.rs`). A grant on a free key makes this form.
//! - [`Entry::Boxed`]: everything else, an [`Object`] (its key and [`Value`]) in one box: a
//!   lock with several holders or with waiters, a semaphore, a string, or a key longer than
//!   the compact form takes.
//!
//! A sole lock becomes boxed when a second holder or a waiter comes ([`Entry::expand`]) and
//! stays boxed until the lock is idle and dropped; the next grant on the free key is compact
//! again. Readers see both forms through [`HolderRef`] ([`Entry::holders`]); all changes go
//! through the primitives in `shard.rs`.
//!
//! Keys, owners and values are copies of exactly their length, never `Bytes` slices of a
//! connection's read buffer (which would keep the whole buffer alive). Only waiters keep
//! the request's `Bytes`: they last as long as their connection waits.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

pub(crate) use super::sole::SoleLock;
use super::waiters::Waiter;
use super::HoldKind;
use crate::wheel::TimerId;

/// A monotonic deadline as nanoseconds after the table's origin: 8 bytes where an `Instant`
/// takes 16, and exact (no rounding), so leases and PTTL read as before.
///
/// Nanoseconds reach about 292 years (2^63); a later deadline (Redis accepts string
/// expiries up to i64::MAX ms) is kept as whole ms with the top bit set, which sorts after
/// every nanosecond value, so the order of deadlines stays the order of their times.
///
/// Deadlines before the origin (which no caller makes: `now` comes after the table was
/// built) would count as the origin itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Deadline(u64);

/// Marks a [`Deadline`] kept in ms.
const IN_MS: u64 = 1 << 63;

impl Deadline {
    /// `at` as a deadline of a table whose time zero is `origin`.
    pub(crate) fn new(origin: Instant, at: Instant) -> Deadline {
        let since = at.saturating_duration_since(origin);
        match u64::try_from(since.as_nanos()) {
            Ok(nanos) if nanos < IN_MS => Deadline(nanos),
            _ => {
                let ms = u64::try_from(since.as_millis()).unwrap_or(u64::MAX);
                Deadline(IN_MS | ms.min(IN_MS - 1))
            }
        }
    }

    /// The instant again, given the same `origin` (to the ms past 292 years).
    pub(crate) fn instant(self, origin: Instant) -> Instant {
        let since = if self.0 & IN_MS == 0 {
            std::time::Duration::from_nanos(self.0)
        } else {
            std::time::Duration::from_millis(self.0 & !IN_MS)
        };
        origin
            .checked_add(since)
            .unwrap_or_else(|| origin + std::time::Duration::from_secs(1 << 40))
    }

    /// The raw word (see [`Deadline::as_nanos`]).
    pub(crate) fn from_nanos(nanos: u64) -> Deadline {
        Deadline(nanos)
    }

    /// The raw word: nanoseconds, or ms with the top bit set past 292 years.
    pub(crate) fn as_nanos(self) -> u64 {
        self.0
    }
}

/// A hold's terms, everything but its owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lease {
    /// Lock mode or permits.
    pub(crate) kind: HoldKind,
    /// The fencing token of the grant.
    pub(crate) token: i64,
    /// Monotonic end of the lease.
    pub(crate) deadline: Deadline,
    /// The lease's timer in the shard's wheel.
    pub(crate) timer: TimerId,
}

/// One hold in the general form: who, and on which terms.
#[derive(Debug, Clone)]
pub(crate) struct Holder {
    /// The owner chosen by the client (a copy of exactly its length).
    pub(crate) owner: Box<[u8]>,
    /// Mode, token, deadline, timer.
    pub(crate) lease: Lease,
}

impl Holder {
    /// The holder as readers see it.
    pub(crate) fn as_ref(&self) -> HolderRef<'_> {
        HolderRef {
            owner: &self.owner,
            lease: self.lease,
        }
    }
}

/// A hold as read from either form of entry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HolderRef<'a> {
    /// The owner.
    pub(crate) owner: &'a [u8],
    /// Mode, token, deadline, timer.
    pub(crate) lease: Lease,
}

/// The holders and FIFO waiters of a lock or a semaphore in the general form.
#[derive(Debug, Default)]
pub(crate) struct Holds {
    /// Current holders (at most one per owner).
    pub(crate) holders: HolderList,
    /// Waiters in global arrival order (`seq` rising).
    pub(crate) queue: Queue,
}

/// The holders of one key: one inline (a semaphore's usual case, or what is left of a
/// contended lock), more in a `Vec`.
///
/// A `Vec` allocates room for 4 holders on its first push; this keeps a single holder
/// inside the entry. Reads go through `Deref<Target = [Holder]>`.
#[derive(Debug)]
pub(crate) enum HolderList {
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
    pub(crate) fn push(&mut self, holder: Holder) {
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
    pub(crate) fn swap_remove(&mut self, pos: usize) -> Holder {
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
pub(crate) struct Queue(Option<Box<VecDeque<Arc<Waiter>>>>);

impl Queue {
    /// Whether nobody waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.as_ref().is_none_or(|q| q.is_empty())
    }

    /// Waiters queued.
    pub(crate) fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |q| q.len())
    }

    /// The head waiter.
    pub(crate) fn front(&self) -> Option<&Arc<Waiter>> {
        self.0.as_ref().and_then(|q| q.front())
    }

    /// Appends a waiter.
    pub(crate) fn push_back(&mut self, waiter: Arc<Waiter>) {
        self.0.get_or_insert_default().push_back(waiter);
    }

    /// Removes the head waiter; frees the storage when the queue empties.
    pub(crate) fn pop_front(&mut self) -> Option<Arc<Waiter>> {
        let q = self.0.as_mut()?;
        let head = q.pop_front();
        if q.is_empty() {
            self.0 = None;
        }
        head
    }

    /// The waiters, head first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Arc<Waiter>> {
        self.0.iter().flat_map(|q| q.iter())
    }

    /// Keeps only the waiters for which `f` is true.
    pub(crate) fn retain(&mut self, f: impl FnMut(&Arc<Waiter>) -> bool) {
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
pub(crate) struct Semaphore {
    /// Permits in all.
    pub(crate) capacity: u64,
    /// Holders and waiters.
    pub(crate) holds: Holds,
}

impl Semaphore {
    /// Permits held now.
    pub(crate) fn used(&self) -> u64 {
        self.holds
            .holders
            .iter()
            .map(|h| h.lease.kind.permits())
            .sum()
    }
}

/// A string value with an optional expiry.
#[derive(Debug)]
pub(crate) struct StrValue {
    /// The bytes (a copy of exactly their length).
    pub(crate) value: Box<[u8]>,
    /// When it expires, if it does.
    pub(crate) expiry: Option<StrExpiry>,
}

/// When a string expires: the deadline its timer keeps, and the wall-clock time the
/// client set. The wall time is kept as given, not derived back from the monotonic
/// deadline, so EXPIRE GT/LT and the log compare the exact milliseconds asked for.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StrExpiry {
    /// The monotonic deadline.
    pub(crate) deadline: Deadline,
    /// Its timer on the wheel.
    pub(crate) timer: TimerId,
    /// Unix milliseconds, as set by the client (or recovered from the log).
    pub(crate) wall_ms: u64,
}

impl Holds {
    /// The hold of `owner`, if any.
    pub(crate) fn holder(&self, owner: &[u8]) -> Option<&Holder> {
        self.holders.iter().find(|h| *h.owner == *owner)
    }

    /// Whether nobody holds or waits.
    pub(crate) fn is_idle(&self) -> bool {
        self.holders.is_empty() && self.queue.is_empty()
    }

    /// Whether a lock hold of `kind` fits beside the current holders.
    pub(crate) fn lock_fits(&self, kind: &HoldKind) -> bool {
        self.holders
            .iter()
            .all(|h| h.lease.kind.compatible_with(kind))
    }

    /// Waiters as docs/protocol.md counts them: an MLOCK whose owner held this key exclusively
    /// when it asked, and still does, sits in the queue only to keep its arrival place
    /// should that hold end; it does not wait for the key meanwhile.
    pub(crate) fn visible_waiters(&self) -> usize {
        self.queue
            .iter()
            .filter(|w| !self.still_held_for(w))
            .count()
    }

    /// Whether `w`'s owner still has here the exclusive hold it had when `w` (an MLOCK)
    /// asked: the key counts as granted to `w`.
    pub(crate) fn still_held_for(&self, w: &Waiter) -> bool {
        self.holder(&w.owner).is_some_and(|h| w.owns(h.lease.token))
    }

    /// Removes `waiter` from the queue; true if it was there.
    pub(crate) fn dequeue(&mut self, waiter: &Waiter) -> bool {
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
}

/// A key in the general form: its bytes and what it holds.
#[derive(Debug)]
pub(crate) struct Object {
    /// The key (a copy of exactly its length).
    pub(crate) key: Box<[u8]>,
    /// What it holds.
    pub(crate) value: Value,
}

/// What a key in the general form holds.
#[derive(Debug)]
pub(crate) enum Value {
    /// A readers-writer lock; exists while it has holders or waiters.
    Lock(Holds),
    /// A semaphore; exists until SEM.DELETE.
    Sem(Semaphore),
    /// A compatibility-layer string.
    Str(StrValue),
}

/// One key and its object, as its shard's table stores it (see the module doc).
#[derive(Debug)]
pub(crate) enum Entry {
    /// A lock with exactly one holder and no waiters.
    Sole(SoleLock),
    /// Any other key.
    Boxed(Box<Object>),
}

impl Entry {
    /// A lock held by `owner` alone on `lease`: compact when it fits, else in the general
    /// form.
    pub(crate) fn held(key: &[u8], owner: &[u8], lease: Lease) -> Entry {
        match SoleLock::new(key, owner, &lease) {
            Some(sole) => Entry::Sole(sole),
            None => {
                let mut holds = Holds::default();
                holds.holders.push(Holder {
                    owner: owner.into(),
                    lease,
                });
                Entry::boxed(key, Value::Lock(holds))
            }
        }
    }

    /// A placeholder for a vacant slot of a shard's slab (`keys.rs`); never a key's entry.
    pub(crate) fn vacant() -> Entry {
        Entry::Sole(SoleLock::vacant())
    }

    /// Whether this is the [`vacant`](Self::vacant) placeholder.
    pub(crate) fn is_vacant(&self) -> bool {
        matches!(self, Entry::Sole(s) if s.is_vacant())
    }

    /// `value` at `key` in the general form.
    pub(crate) fn boxed(key: &[u8], value: Value) -> Entry {
        Entry::Boxed(Box::new(Object {
            key: key.into(),
            value,
        }))
    }

    /// The key.
    pub(crate) fn key(&self) -> &[u8] {
        match self {
            Entry::Sole(s) => s.key(),
            Entry::Boxed(o) => &o.key,
        }
    }

    /// Whether the key is a lock (of either form).
    pub(crate) fn is_lock(&self) -> bool {
        matches!(self, Entry::Sole(_)) || matches!(self.value(), Some(Value::Lock(_)))
    }

    /// Whether the key is a semaphore.
    pub(crate) fn is_sem(&self) -> bool {
        matches!(self.value(), Some(Value::Sem(_)))
    }

    /// Whether the key is a string.
    pub(crate) fn is_str(&self) -> bool {
        matches!(self.value(), Some(Value::Str(_)))
    }

    /// `TYPE`'s answer.
    pub(crate) fn type_name(&self) -> &'static str {
        match self.value() {
            None | Some(Value::Lock(_)) => "lock",
            Some(Value::Sem(_)) => "semaphore",
            Some(Value::Str(_)) => "string",
        }
    }

    /// The value of the general form; None for a sole lock.
    fn value(&self) -> Option<&Value> {
        match self {
            Entry::Sole(_) => None,
            Entry::Boxed(o) => Some(&o.value),
        }
    }

    /// The holds of a lock or semaphore in the general form; None for a sole lock (it has no
    /// queue) and a string.
    pub(crate) fn holds(&self) -> Option<&Holds> {
        match self.value()? {
            Value::Lock(h) => Some(h),
            Value::Sem(s) => Some(&s.holds),
            Value::Str(_) => None,
        }
    }

    /// Mutable [`holds`](Self::holds).
    pub(crate) fn holds_mut(&mut self) -> Option<&mut Holds> {
        match self {
            Entry::Sole(_) => None,
            Entry::Boxed(o) => match &mut o.value {
                Value::Lock(h) => Some(h),
                Value::Sem(s) => Some(&mut s.holds),
                Value::Str(_) => None,
            },
        }
    }

    /// The holds of a lock or semaphore, turning a sole lock into the general form first
    /// (to add a holder or a waiter). None for a string.
    pub(crate) fn expand(&mut self) -> Option<&mut Holds> {
        if let Entry::Sole(sole) = self {
            let mut holds = Holds::default();
            holds.holders.push(Holder {
                owner: sole.owner().into(),
                lease: sole.lease(),
            });
            let boxed = Entry::boxed(sole.key(), Value::Lock(holds));
            *self = boxed;
        }
        self.holds_mut()
    }

    /// The semaphore, if the key is one.
    pub(crate) fn sem(&self) -> Option<&Semaphore> {
        match self.value()? {
            Value::Sem(s) => Some(s),
            _ => None,
        }
    }

    /// Mutable [`sem`](Self::sem).
    pub(crate) fn sem_mut(&mut self) -> Option<&mut Semaphore> {
        match self {
            Entry::Boxed(o) => match &mut o.value {
                Value::Sem(s) => Some(s),
                _ => None,
            },
            Entry::Sole(_) => None,
        }
    }

    /// The string, if the key is one.
    pub(crate) fn str_value(&self) -> Option<&StrValue> {
        match self.value()? {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Mutable [`str_value`](Self::str_value).
    pub(crate) fn str_mut(&mut self) -> Option<&mut StrValue> {
        match self {
            Entry::Boxed(o) => match &mut o.value {
                Value::Str(s) => Some(s),
                _ => None,
            },
            Entry::Sole(_) => None,
        }
    }

    /// When the key's time to live ends, as PTTL reports it: a lock's longest lease (None
    /// with only waiters), a string's expiry; a semaphore has none.
    pub(crate) fn ttl_deadline(&self) -> Option<Deadline> {
        if self.is_sem() {
            return None;
        }
        match self.str_value() {
            Some(s) => s.expiry.map(|e| e.deadline),
            None => self.holders().map(|h| h.lease.deadline).max(),
        }
    }

    /// The holders of a lock or semaphore (none for a string).
    pub(crate) fn holders(&self) -> impl Iterator<Item = HolderRef<'_>> {
        let (sole, many) = match self {
            Entry::Sole(s) => (Some(s.holder()), &[][..]),
            Entry::Boxed(_) => (None, self.holds().map_or(&[][..], |h| &h.holders[..])),
        };
        sole.into_iter().chain(many.iter().map(Holder::as_ref))
    }

    /// The hold of `owner`, if any.
    pub(crate) fn holder(&self, owner: &[u8]) -> Option<HolderRef<'_>> {
        self.holders().find(|h| h.owner == owner)
    }

    /// Whether a lock hold of `kind` fits beside the current holders.
    pub(crate) fn lock_fits(&self, kind: &HoldKind) -> bool {
        self.holders().all(|h| h.lease.kind.compatible_with(kind))
    }

    /// Whether anybody waits in the key's queue.
    pub(crate) fn has_waiters(&self) -> bool {
        self.holds().is_some_and(|h| !h.queue.is_empty())
    }

    /// Whether nobody holds or waits (meaningful for locks; a string has neither).
    pub(crate) fn is_idle(&self) -> bool {
        self.holders().next().is_none() && !self.has_waiters()
    }

    /// Whether the key is a lock that nobody holds or waits for (it is then dropped).
    pub(crate) fn is_idle_lock(&self) -> bool {
        matches!(self.value(), Some(Value::Lock(h)) if h.is_idle())
    }

    /// Whether `timer` is the timer of one of the key's leases or of its string expiry.
    pub(crate) fn has_timer(&self, timer: TimerId) -> bool {
        match self {
            Entry::Sole(s) => s.timer() == timer,
            Entry::Boxed(o) => match &o.value {
                Value::Lock(h) | Value::Sem(Semaphore { holds: h, .. }) => {
                    h.holders.iter().any(|h| h.lease.timer == timer)
                }
                Value::Str(s) => s.expiry.is_some_and(|e| e.timer == timer),
            },
        }
    }

    /// Every timer the key owns (its leases', or its string expiry's).
    pub(crate) fn timers(&self) -> impl Iterator<Item = TimerId> + '_ {
        let expiry = self.str_value().and_then(|s| s.expiry).map(|e| e.timer);
        self.holders().map(|h| h.lease.timer).chain(expiry)
    }

    /// Changes the lease of the first holder for which `which` is true with `change`, and
    /// returns it as changed; None when no holder matches.
    pub(crate) fn update_lease(
        &mut self,
        which: impl Fn(HolderRef<'_>) -> bool,
        change: impl FnOnce(&mut Lease),
    ) -> Option<Lease> {
        match self {
            Entry::Sole(s) => {
                if !which(s.holder()) {
                    return None;
                }
                let mut lease = s.lease();
                change(&mut lease);
                s.set_lease(&lease);
                Some(lease)
            }
            Entry::Boxed(_) => {
                let holder = self
                    .holds_mut()?
                    .holders
                    .iter_mut()
                    .find(|h| which(h.as_ref()))?;
                change(&mut holder.lease);
                Some(holder.lease)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_stay_small() {
        // A slab slot: a fat pointer whose null niche tags the boxed form.
        assert_eq!(std::mem::size_of::<Entry>(), 16);
        assert_eq!(std::mem::size_of::<Holder>(), 56);
    }
}
