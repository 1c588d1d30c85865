//! A generic hierarchical timer wheel: the lease-expiry clock of the lock table.
//!
//! Owns: the bookkeeping of *when* opaque items (`T`) become due. It knows nothing about
//! locks, reads no clock and never sleeps (sans-IO): time comes in as `now: Instant`, and the
//! caller asks [`Wheel::next_deadline`] how long it may sleep.
//!
//! API: [`Wheel::insert`] returns a generational [`TimerId`]; [`Wheel::cancel`],
//! [`Wheel::reschedule`] and [`Wheel::deadline`] take it and are O(1); [`Wheel::poll`] fires
//! due items under a budget; [`Wheel::next_deadline`] is O(levels) thanks to a `u64`
//! occupancy bitmap per level.
//!
//! Semantics:
//! - Resolution is 1 ms. Tick `t` is the instant `origin + t ms`. A deadline is rounded **up**
//!   to a whole tick, so an item never fires before its deadline and fires at most 1 ms late
//!   (plus the caller's polling delay). [`Wheel::deadline`] returns that rounded instant, and
//!   `poll(now)` fires exactly the items whose rounded deadline is `<= now`.
//! - A deadline at or before the last polled `now` (or before `origin`) is "due now": it
//!   fires at the next poll. `now` should not go backwards; an earlier `now` than a previous
//!   poll's simply advances nothing.
//! - A [`TimerId`] carries a 32-bit generation: a stale id is refused unless its slab entry
//!   was reused 2^32 times since.
//! - Deadlines beyond the current top-level rotation (2^36 ms ≈ 2.2 years, aligned) wait in
//!   an overflow list and are re-inserted when the wheel reaches the next rotation. Ticks are
//!   capped at 2^52 ms (≈ 142,000 years).
//!
//! Layout (compact for 1M+ timers): a slab of entries (item, deadline tick, generation and
//! position `(level, slot, index-in-slot)`; 32 bytes for an 8-byte item) with a free list; each slot is a `Vec<u32>` of slab
//! indexes, removed from with `swap_remove` (the moved entry's index is patched), which makes
//! cancel O(1). Level `k` has 64 slots of `64^k` ms each, as in tokio's driver. Polling
//! processes the earliest occupied slot: its entries either fire or cascade to a lower level.
//!
//! Items are small `Copy` handles (the lock table stores a key's hash): a vacant slab entry
//! keeps its stale item instead of an `Option`, which would cost a tag word per timer.
//!
//! To extend: keep every position change in `Wheel::place` / `Wheel::unlink` so the
//! slot-index back-pointers stay right, and extend the model proptest at the bottom.

use std::time::{Duration, Instant};

/// Bits of tick per level (64 slots).
const SLOT_BITS: u32 = 6;
/// Slots per level.
const SLOTS: usize = 1 << SLOT_BITS;
/// Number of levels; level `LEVELS - 1` spans `2^(6 * LEVELS)` ms.
const LEVELS: usize = 6;
/// Ticks covered by one rotation of the top level.
const TOP_SPAN: u64 = 1 << (SLOT_BITS as usize * LEVELS);
/// Pseudo-level of the "due now" list.
const DUE: u8 = LEVELS as u8;
/// Pseudo-level of the overflow list (deadlines beyond the current top rotation).
const OVERFLOW: u8 = LEVELS as u8 + 1;
/// Pseudo-level of a vacant slab entry.
const VACANT: u8 = u8::MAX;
/// Highest tick stored; later deadlines are clamped to it.
const MAX_TICK: u64 = 1 << 52;
/// End of the free list.
const NIL: u32 = u32::MAX;

/// Handle of a scheduled timer; generational so a stale handle never cancels another timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimerId {
    index: u32,
    generation: u32,
}

impl TimerId {
    /// The id as one integer, for callers that pack it into their own storage.
    pub fn to_bits(self) -> u64 {
        (u64::from(self.generation) << 32) | u64::from(self.index)
    }

    /// The id [`to_bits`](Self::to_bits) gave. Any value is safe to pass: an id the wheel
    /// did not hand out is simply not pending.
    pub fn from_bits(bits: u64) -> TimerId {
        TimerId {
            index: bits as u32,
            generation: (bits >> 32) as u32,
        }
    }
}

/// One slab entry. When vacant, `level` is `VACANT`, `pos` links the free list and `item` is
/// the stale item of its last timer.
#[derive(Debug, Clone)]
struct Entry<T> {
    tick: u64,
    generation: u32,
    /// Index inside its slot's (or list's) `Vec`; next free index when vacant.
    pos: u32,
    level: u8,
    slot: u8,
    item: T,
}

/// A hierarchical timer wheel of items `T` with 1 ms resolution.
#[derive(Debug, Clone)]
pub struct Wheel<T> {
    origin: Instant,
    /// Every tick `<= elapsed` has been processed by a poll.
    elapsed: u64,
    entries: Vec<Entry<T>>,
    free_head: u32,
    len: usize,
    /// `slots[level * SLOTS + slot]`: slab indexes.
    slots: Vec<Vec<u32>>,
    occupied: [u64; LEVELS],
    /// Entries whose tick is `<= elapsed` (or `<=` the `now` being polled).
    due: Vec<u32>,
    /// A lower bound of the ticks in `due` (valid while `due` is non-empty).
    due_min: u64,
    /// The `(level, slot)` whose whole list became `due` without touching its entries (see
    /// [`Wheel::process`]): entries still marked with it live in `due`. Cleared whenever
    /// `due` is found empty, which always happens before `elapsed` moves on, so no new
    /// entry can be placed in that slot meanwhile.
    due_slot: Option<(u8, u8)>,
    /// Entries beyond the top level's current rotation.
    overflow: Vec<u32>,
}

impl<T: Copy> Wheel<T> {
    /// A wheel whose tick 0 is `origin`; resolution 1 ms.
    pub fn new(origin: Instant) -> Self {
        Self::with_capacity(origin, 0)
    }

    /// Like [`Wheel::new`], with room for `capacity` timers before the slab reallocates.
    pub fn with_capacity(origin: Instant, capacity: usize) -> Self {
        Wheel {
            origin,
            elapsed: 0,
            entries: Vec::with_capacity(capacity),
            free_head: NIL,
            len: 0,
            slots: (0..LEVELS * SLOTS).map(|_| Vec::new()).collect(),
            occupied: [0; LEVELS],
            due: Vec::new(),
            due_min: 0,
            due_slot: None,
            overflow: Vec::new(),
        }
    }

    /// The instant of tick 0.
    pub fn origin(&self) -> Instant {
        self.origin
    }

    /// Number of pending timers.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no timer is pending.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Schedules `item` to fire at `deadline` (rounded UP to the next whole ms tick, so an item never fires before its deadline). A deadline in the past fires at the next poll.
    pub fn insert(&mut self, deadline: Instant, item: T) -> TimerId {
        let tick = self.tick_ceil(deadline);
        let index = if self.free_head != NIL {
            let index = self.free_head;
            let entry = &mut self.entries[index as usize];
            self.free_head = entry.pos;
            entry.tick = tick;
            entry.item = item;
            index
        } else {
            let index = u32::try_from(self.entries.len())
                .ok()
                .filter(|&i| i != NIL)
                .expect("timer wheel holds at most u32::MAX - 1 timers");
            self.entries.push(Entry {
                tick,
                generation: 0,
                pos: 0,
                level: VACANT,
                slot: 0,
                item,
            });
            index
        };
        self.len += 1;
        self.place(index, self.elapsed);
        TimerId {
            index,
            generation: self.entries[index as usize].generation,
        }
    }

    /// Removes a timer; returns its item, or None if it already fired or was cancelled. O(1).
    pub fn cancel(&mut self, id: TimerId) -> Option<T> {
        self.pending(id)?;
        self.unlink(id.index);
        Some(self.release(id.index))
    }

    /// Moves a pending timer to a new deadline (rounded up like [`Wheel::insert`]); returns false if it is no longer pending. O(1).
    pub fn reschedule(&mut self, id: TimerId, deadline: Instant) -> bool {
        if self.pending(id).is_none() {
            return false;
        }
        let tick = self.tick_ceil(deadline);
        self.unlink(id.index);
        self.entries[id.index as usize].tick = tick;
        self.place(id.index, self.elapsed);
        true
    }

    /// The rounded (whole-ms tick) deadline of a pending timer, None if not pending.
    pub fn deadline(&self, id: TimerId) -> Option<Instant> {
        self.pending(id).map(|e| self.tick_instant(e.tick))
    }

    /// An instant at or before the earliest pending deadline such that sleeping until it and calling poll() makes progress (either items fire, or next_deadline moves later). None when empty. O(levels).
    ///
    /// It is the start of the earliest occupied slot, so for timers more than 64 ms away it is
    /// earlier than the real deadline: the poll at that instant cascades them to a finer level.
    pub fn next_deadline(&self) -> Option<Instant> {
        let slot = self.next_expiration().map(|(tick, _)| tick);
        // After a budget-limited poll, a later insert may land in a slot before `due_min`.
        let due = (!self.due.is_empty()).then_some(self.due_min);
        let tick = match (due, slot) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b)?,
        };
        Some(self.tick_instant(tick))
    }

    /// Fires timers whose deadline is <= now: pushes at most `budget` (id, item) pairs to `out` and returns how many were pushed. Items not returned because of the budget stay pending and are returned by the next poll. Never returns an item before its deadline.
    pub fn poll(&mut self, now: Instant, budget: usize, out: &mut Vec<(TimerId, T)>) -> usize {
        let now_tick = self.tick_floor(now);
        let mut fired = 0;
        loop {
            while fired < budget {
                let Some(index) = self.due.pop() else {
                    self.due_slot = None;
                    break;
                };
                let generation = self.entries[index as usize].generation;
                let item = self.release(index);
                out.push((TimerId { index, generation }, item));
                fired += 1;
            }
            if fired == budget {
                return fired;
            }
            match self.next_expiration() {
                Some((tick, level)) if tick <= now_tick => self.process(tick, level, now_tick),
                _ => {
                    self.elapsed = self.elapsed.max(now_tick);
                    return fired;
                }
            }
        }
    }

    /// The earliest slot (or the overflow list) to process: its start tick and pseudo-level.
    fn next_expiration(&self) -> Option<(u64, u8)> {
        for level in 0..LEVELS {
            let occupied = self.occupied[level];
            if occupied == 0 {
                continue;
            }
            let shift = SLOT_BITS * level as u32;
            let now_slot = ((self.elapsed >> shift) as u32) & (SLOTS as u32 - 1);
            // Every occupied slot is at or after the current one (no wrap-around: later
            // rotations of the top level live in `overflow`).
            let slot = now_slot + (occupied >> now_slot).trailing_zeros();
            debug_assert!(slot < SLOTS as u32, "slot before elapsed at level {level}");
            let level_start = self.elapsed & !((1u64 << (shift + SLOT_BITS)) - 1);
            return Some((level_start + (u64::from(slot) << shift), level as u8));
        }
        if self.overflow.is_empty() {
            None
        } else {
            Some(((self.elapsed | (TOP_SPAN - 1)) + 1, OVERFLOW))
        }
    }

    /// Empties the slot (or overflow list) that starts at `tick`, firing or cascading its entries.
    ///
    /// A slot that ends by `now_tick` holds only due entries: its list becomes `due` whole
    /// (their ticks are read for `due_min`, but nothing is written or pushed until they fire) instead of being re-placed one by
    /// one. Called only with `due` empty.
    fn process(&mut self, tick: u64, level: u8, now_tick: u64) {
        self.elapsed = tick;
        if level != OVERFLOW && self.due.is_empty() {
            let shift = SLOT_BITS * u32::from(level);
            if tick + (1u64 << shift) - 1 <= now_tick {
                let slot = ((tick >> shift) as usize) & (SLOTS - 1);
                self.occupied[level as usize] &= !(1u64 << slot);
                let home = &mut self.slots[level as usize * SLOTS + slot];
                // The old (empty) `due` buffer becomes the slot's, so no capacity is lost.
                std::mem::swap(home, &mut self.due);
                // The exact minimum (reads only): `next_deadline` stays as tight as before.
                let entries = &self.entries;
                self.due_min = self
                    .due
                    .iter()
                    .map(|&i| entries[i as usize].tick)
                    .min()
                    .unwrap_or(tick);
                self.due_slot = Some((level, slot as u8));
                return;
            }
        }
        let mut list = if level == OVERFLOW {
            std::mem::take(&mut self.overflow)
        } else {
            let slot = ((tick >> (SLOT_BITS * u32::from(level))) as usize) & (SLOTS - 1);
            self.occupied[level as usize] &= !(1u64 << slot);
            std::mem::take(&mut self.slots[level as usize * SLOTS + slot])
        };
        for &index in &list {
            self.place(index, now_tick);
        }
        if level != OVERFLOW {
            // An entry never cascades back into the slot it left, so give the allocation back.
            list.clear();
            let slot = ((tick >> (SLOT_BITS * u32::from(level))) as usize) & (SLOTS - 1);
            let home = &mut self.slots[level as usize * SLOTS + slot];
            debug_assert!(home.is_empty());
            *home = list;
        }
    }

    /// Puts an unlinked entry where it belongs: "due" if its tick is `<= due_upto`, else the
    /// level and slot of its tick relative to `elapsed`, else the overflow list.
    fn place(&mut self, index: u32, due_upto: u64) {
        let tick = self.entries[index as usize].tick;
        let (level, slot, list) = if tick <= due_upto {
            if self.due.is_empty() || tick < self.due_min {
                self.due_min = tick;
            }
            (DUE, 0, &mut self.due)
        } else if (tick ^ self.elapsed) >= TOP_SPAN {
            (OVERFLOW, 0, &mut self.overflow)
        } else {
            let significant = 63 - ((tick ^ self.elapsed) | (SLOTS as u64 - 1)).leading_zeros();
            let level = significant / SLOT_BITS;
            let slot = ((tick >> (SLOT_BITS * level)) as usize) & (SLOTS - 1);
            self.occupied[level as usize] |= 1u64 << slot;
            (
                level as u8,
                slot as u8,
                &mut self.slots[level as usize * SLOTS + slot],
            )
        };
        let pos = list.len() as u32;
        list.push(index);
        let entry = &mut self.entries[index as usize];
        entry.level = level;
        entry.slot = slot;
        entry.pos = pos;
    }

    /// Removes a pending entry from its slot or list in O(1), keeping back-pointers right.
    fn unlink(&mut self, index: u32) {
        let entry = &self.entries[index as usize];
        let (level, slot, pos) = (entry.level, entry.slot as usize, entry.pos as usize);
        let adopted = self.due_slot == Some((level, slot as u8));
        let list = match level {
            DUE => &mut self.due,
            OVERFLOW => &mut self.overflow,
            _ if adopted => &mut self.due,
            _ => &mut self.slots[level as usize * SLOTS + slot],
        };
        debug_assert_eq!(list[pos], index);
        list.swap_remove(pos);
        if let Some(&moved) = list.get(pos) {
            self.entries[moved as usize].pos = pos as u32;
        } else if list.is_empty() && level < DUE && !adopted {
            self.occupied[level as usize] &= !(1u64 << slot);
        }
        if self.due.is_empty() {
            self.due_slot = None;
        }
        self.entries[index as usize].level = VACANT;
    }

    /// Frees an unlinked entry (bumping its generation) and returns its item.
    fn release(&mut self, index: u32) -> T {
        let entry = &mut self.entries[index as usize];
        entry.level = VACANT;
        entry.generation = entry.generation.wrapping_add(1);
        entry.pos = self.free_head;
        self.free_head = index;
        self.len -= 1;
        entry.item
    }

    /// The entry behind `id` if it is still pending.
    fn pending(&self, id: TimerId) -> Option<&Entry<T>> {
        self.entries
            .get(id.index as usize)
            .filter(|e| e.generation == id.generation && e.level != VACANT)
    }

    /// `deadline` in whole ms since origin, rounded up and capped at `MAX_TICK`.
    fn tick_ceil(&self, deadline: Instant) -> u64 {
        let nanos = deadline.saturating_duration_since(self.origin).as_nanos();
        u64::try_from(nanos.div_ceil(1_000_000)).map_or(MAX_TICK, |t| t.min(MAX_TICK))
    }

    /// `now` in whole ms since origin, rounded down.
    fn tick_floor(&self, now: Instant) -> u64 {
        let millis = now.saturating_duration_since(self.origin).as_millis();
        u64::try_from(millis).map_or(MAX_TICK, |t| t.min(MAX_TICK))
    }

    /// The instant of `tick`.
    fn tick_instant(&self, tick: u64) -> Instant {
        self.origin + Duration::from_millis(tick)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, HashMap};

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    fn fire(w: &mut Wheel<u32>, now: Instant) -> Vec<u32> {
        let mut out = Vec::new();
        w.poll(now, usize::MAX, &mut out);
        let mut items: Vec<u32> = out.into_iter().map(|(_, item)| item).collect();
        items.sort_unstable();
        items
    }

    /// Sleeps (virtually) until each next deadline and polls, as the expirer does.
    fn drain(w: &mut Wheel<u32>) -> Vec<(Instant, u32)> {
        let mut fired = Vec::new();
        let mut steps = 0;
        while let Some(at) = w.next_deadline() {
            steps += 1;
            assert!(steps < 10_000, "no progress");
            for item in fire(w, at) {
                fired.push((at, item));
            }
        }
        fired
    }

    #[test]
    fn deadline_rounds_up_to_whole_ms() {
        let base = Instant::now();
        let mut w = Wheel::new(base);
        let a = w.insert(base + us(1_500), 1);
        let b = w.insert(base + ms(5), 2);
        assert_eq!(w.deadline(a), Some(base + ms(2)));
        assert_eq!(w.deadline(b), Some(base + ms(5)));
        assert!(fire(&mut w, base + us(1_999)).is_empty());
        assert_eq!(fire(&mut w, base + ms(2)), [1]);
        assert!(fire(&mut w, base + us(4_999)).is_empty());
        assert_eq!(fire(&mut w, base + ms(5)), [2]);
        assert!(w.is_empty());
        assert_eq!(w.next_deadline(), None);
    }

    #[test]
    fn past_deadline_fires_at_next_poll() {
        let base = Instant::now();
        let mut w = Wheel::new(base);
        assert!(fire(&mut w, base + ms(100)).is_empty());
        let id = w.insert(base + ms(50), 7);
        assert_eq!(w.next_deadline(), Some(base + ms(50)));
        assert_eq!(w.deadline(id), Some(base + ms(50)));
        assert_eq!(fire(&mut w, base + ms(100)), [7]);
        // Before the origin counts as tick 0.
        w.insert(base.checked_sub(ms(1)).unwrap_or(base), 8);
        assert_eq!(fire(&mut w, base + ms(100)), [8]);
    }

    #[test]
    fn cancel_is_generational() {
        let base = Instant::now();
        let mut w = Wheel::new(base);
        let a = w.insert(base + ms(10), 1);
        assert_eq!(w.cancel(a), Some(1));
        assert_eq!(w.cancel(a), None);
        let b = w.insert(base + ms(10), 2); // reuses a's slab entry
        assert_ne!(a, b);
        assert_eq!(w.cancel(a), None);
        assert!(!w.reschedule(a, base + ms(1)));
        assert_eq!(w.deadline(a), None);
        assert_eq!(w.len(), 1);
        assert_eq!(fire(&mut w, base + ms(10)), [2]);
        assert_eq!(w.cancel(b), None, "fired timers cannot be cancelled");
    }

    #[test]
    fn cancel_patches_moved_entries() {
        let base = Instant::now();
        let mut w = Wheel::new(base);
        let ids: Vec<TimerId> = (0..5).map(|i| w.insert(base + ms(3), i)).collect();
        assert_eq!(w.cancel(ids[0]), Some(0));
        assert_eq!(w.cancel(ids[4]), Some(4)); // was moved into position 0
        assert_eq!(w.cancel(ids[2]), Some(2));
        assert_eq!(fire(&mut w, base + ms(3)), [1, 3]);
    }

    #[test]
    fn reschedule_moves_both_ways() {
        let base = Instant::now();
        let mut w = Wheel::new(base);
        let a = w.insert(base + ms(10), 1);
        let b = w.insert(base + ms(5_000), 2);
        assert!(w.reschedule(a, base + ms(9_000)));
        assert!(w.reschedule(b, base + ms(20)));
        assert_eq!(w.deadline(a), Some(base + ms(9_000)));
        assert!(fire(&mut w, base + ms(19)).is_empty());
        assert_eq!(fire(&mut w, base + ms(20)), [2]);
        assert!(!w.reschedule(b, base + ms(30)));
        assert!(fire(&mut w, base + ms(8_999)).is_empty());
        assert_eq!(fire(&mut w, base + ms(9_000)), [1]);
    }

    #[test]
    fn budget_leaves_the_rest_pending() {
        let base = Instant::now();
        let mut w = Wheel::new(base);
        for i in 0..10 {
            w.insert(base + ms(7), i);
        }
        let mut out = Vec::new();
        let now = base + ms(7);
        assert_eq!(w.poll(now, 3, &mut out), 3);
        assert_eq!(w.len(), 7);
        assert!(w.next_deadline().unwrap() <= now);
        assert_eq!(w.poll(now, 3, &mut out), 3);
        assert_eq!(w.poll(now, 0, &mut out), 0);
        assert_eq!(w.poll(now, 10, &mut out), 4);
        let mut items: Vec<u32> = out.iter().map(|&(_, i)| i).collect();
        items.sort_unstable();
        assert_eq!(items, (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn far_and_overflowing_deadlines_fire_exactly() {
        let base = Instant::now();
        let mut w = Wheel::new(base);
        let year = 365 * 24 * 3_600_000;
        let offsets = [
            1,
            63,
            64,
            65,
            4_095,
            4_096,
            300_000,
            year,
            3 * year,
            40 * year,
        ];
        for (i, &off) in offsets.iter().enumerate() {
            w.insert(base + ms(off), i as u32);
        }
        let fired = drain(&mut w);
        let expect: Vec<(Instant, u32)> = offsets
            .iter()
            .enumerate()
            .map(|(i, &off)| (base + ms(off), i as u32))
            .collect();
        assert_eq!(fired, expect);
    }

    #[test]
    fn next_deadline_never_passes_an_early_insert() {
        let base = Instant::now();
        let mut w = Wheel::new(base);
        w.insert(base + ms(100), 1);
        w.insert(base + ms(100), 2);
        let mut out = Vec::new();
        // The level-1 slot starting at 64 ms is processed; the budget stops the poll there, so
        // one item waits in "due" (deadline 100) while the wheel stays at 64.
        assert_eq!(w.poll(base + ms(200), 1, &mut out), 1);
        w.insert(base + ms(80), 3);
        assert_eq!(w.next_deadline(), Some(base + ms(80)));
        let mut items = fire(&mut w, base + ms(200));
        items.push(out[0].1);
        items.sort_unstable();
        assert_eq!(items, [1, 2, 3]);
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// Deadline = now + offset - 100 ms (so some are in the past), in µs.
        Insert(u64),
        Cancel(usize),
        Reschedule(usize, u64),
        /// Advance `now` by µs, then poll with a budget.
        Poll(u64, usize),
        /// Jump to `next_deadline()` and poll without budget: must make progress.
        SleepNext,
    }

    fn offset() -> impl Strategy<Value = u64> {
        prop_oneof![
            4 => 0..200_000u64,
            3 => 0..300_000_000u64,
            1 => 0..(1u64 << 40) * 1_000,
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            5 => offset().prop_map(Op::Insert),
            2 => any::<usize>().prop_map(Op::Cancel),
            2 => (any::<usize>(), offset()).prop_map(|(i, o)| Op::Reschedule(i, o)),
            3 => (offset(), 0..8usize).prop_map(|(a, b)| Op::Poll(a / 4, b)),
            2 => Just(Op::SleepNext),
        ]
    }

    /// Model: item → (id, rounded deadline, exact deadline), plus a sorted index.
    #[derive(Default)]
    struct Model {
        live: HashMap<u32, (TimerId, Instant, Instant)>,
        order: BTreeMap<(Instant, u32), ()>,
    }

    impl Model {
        fn add(&mut self, item: u32, id: TimerId, rounded: Instant, exact: Instant) {
            self.live.insert(item, (id, rounded, exact));
            self.order.insert((rounded, item), ());
        }
        fn remove(&mut self, item: u32) -> (TimerId, Instant, Instant) {
            let e = self.live.remove(&item).expect("item is live in the model");
            self.order.remove(&(e.1, item));
            e
        }
        fn by_id(&self, id: TimerId) -> Option<u32> {
            self.live.iter().find(|(_, e)| e.0 == id).map(|(&k, _)| k)
        }
    }

    fn rounded(base: Instant, t: Instant) -> Instant {
        let nanos = t.saturating_duration_since(base).as_nanos() as u64;
        base + Duration::from_millis(nanos.div_ceil(1_000_000))
    }

    fn check_poll(
        model: &mut Model,
        now: Instant,
        budget: usize,
        out: &[(TimerId, u32)],
    ) -> Result<(), TestCaseError> {
        for &(id, item) in out {
            let (mid, r, exact) = model.remove(item);
            prop_assert_eq!(mid, id);
            prop_assert!(r <= now && exact <= now, "fired early");
        }
        if out.len() < budget {
            if let Some((&(first, _), _)) = model.order.first_key_value() {
                prop_assert!(first > now, "due item not fired");
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]
        #[test]
        fn matches_model(ops in proptest::collection::vec(op(), 1..200)) {
            let base = Instant::now();
            let mut w: Wheel<u32> = Wheel::new(base);
            let mut model = Model::default();
            let mut ids: Vec<TimerId> = Vec::new();
            let mut now = base;
            let mut next_item = 0u32;
            let at = |now: Instant, off: u64| (now + us(off)).checked_sub(ms(100)).unwrap_or(now);
            for op in ops {
                match op {
                    Op::Insert(off) => {
                        let d = at(now, off);
                        let id = w.insert(d, next_item);
                        model.add(next_item, id, rounded(base, d), d);
                        ids.push(id);
                        next_item += 1;
                    }
                    Op::Cancel(i) if !ids.is_empty() => {
                        let id = ids[i % ids.len()];
                        let expect = model.by_id(id);
                        prop_assert_eq!(w.cancel(id), expect);
                        if let Some(item) = expect {
                            model.remove(item);
                        }
                    }
                    Op::Reschedule(i, off) if !ids.is_empty() => {
                        let id = ids[i % ids.len()];
                        let d = at(now, off);
                        let expect = model.by_id(id);
                        prop_assert_eq!(w.reschedule(id, d), expect.is_some());
                        if let Some(item) = expect {
                            model.remove(item);
                            model.add(item, id, rounded(base, d), d);
                        }
                    }
                    Op::Poll(adv, budget) => {
                        now += us(adv);
                        let mut out = Vec::new();
                        prop_assert_eq!(w.poll(now, budget, &mut out), out.len());
                        prop_assert!(out.len() <= budget);
                        check_poll(&mut model, now, budget, &out)?;
                    }
                    Op::SleepNext => {
                        if let Some(nd) = w.next_deadline() {
                            now = now.max(nd);
                            let mut out = Vec::new();
                            w.poll(now, usize::MAX, &mut out);
                            let later = w.next_deadline().is_none_or(|n| n > nd);
                            prop_assert!(!out.is_empty() || later, "no progress");
                            check_poll(&mut model, now, usize::MAX, &out)?;
                        }
                    }
                    Op::Cancel(_) | Op::Reschedule(..) => {}
                }
                prop_assert_eq!(w.len(), model.live.len());
                for &(id, r, _) in model.live.values() {
                    prop_assert_eq!(w.deadline(id), Some(r));
                }
                match (w.next_deadline(), model.order.first_key_value()) {
                    (None, None) => {}
                    (Some(nd), Some((&(first, _), _))) => prop_assert!(nd <= first),
                    (nd, first) => prop_assert!(false, "next_deadline {:?} vs model {:?}", nd, first),
                }
            }
            // The expirer loop drains everything in a bounded number of steps.
            let mut steps = 0;
            while let Some(nd) = w.next_deadline() {
                steps += 1;
                prop_assert!(steps < 1_000 + 10 * ids.len(), "drain does not terminate");
                now = now.max(nd);
                let mut out = Vec::new();
                w.poll(now, usize::MAX, &mut out);
                check_poll(&mut model, now, usize::MAX, &out)?;
            }
            prop_assert!(model.live.is_empty());
        }
    }
}
