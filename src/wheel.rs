//! A timer wheel (interim BTreeMap version; the hierarchical wheel lands from its branch).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Handle of a scheduled timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimerId(u64);

/// Timers keyed by deadline.
#[derive(Debug)]
pub struct Wheel<T> {
    origin: Instant,
    next_id: u64,
    by_time: BTreeMap<(u64, u64), T>,
    ticks: std::collections::HashMap<u64, u64>,
}

impl<T> Wheel<T> {
    /// A wheel whose tick 0 is `origin`.
    pub fn new(origin: Instant) -> Self {
        Wheel {
            origin,
            next_id: 0,
            by_time: BTreeMap::new(),
            ticks: Default::default(),
        }
    }
    fn tick_of(&self, deadline: Instant) -> u64 {
        let d = deadline.saturating_duration_since(self.origin);
        let ms = d.as_millis() as u64;
        if Duration::from_millis(ms) < d {
            ms + 1
        } else {
            ms
        }
    }
    /// Schedules `item` at `deadline`.
    pub fn insert(&mut self, deadline: Instant, item: T) -> TimerId {
        let id = self.next_id;
        self.next_id += 1;
        let tick = self.tick_of(deadline);
        self.by_time.insert((tick, id), item);
        self.ticks.insert(id, tick);
        TimerId(id)
    }
    /// Removes a timer.
    pub fn cancel(&mut self, id: TimerId) -> Option<T> {
        let tick = self.ticks.remove(&id.0)?;
        self.by_time.remove(&(tick, id.0))
    }
    /// Moves a timer.
    pub fn reschedule(&mut self, id: TimerId, deadline: Instant) -> bool {
        let Some(tick) = self.ticks.get(&id.0).copied() else {
            return false;
        };
        let Some(item) = self.by_time.remove(&(tick, id.0)) else {
            return false;
        };
        let tick = self.tick_of(deadline);
        self.by_time.insert((tick, id.0), item);
        self.ticks.insert(id.0, tick);
        true
    }
    /// The earliest deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        let (&(tick, _), _) = self.by_time.iter().next()?;
        Some(self.origin + Duration::from_millis(tick))
    }
    /// Fires due timers.
    pub fn poll(&mut self, now: Instant, budget: usize, out: &mut Vec<(TimerId, T)>) -> usize {
        let now_tick = now.saturating_duration_since(self.origin).as_millis() as u64;
        let mut n = 0;
        while n < budget {
            let Some(entry) = self.by_time.first_entry() else {
                break;
            };
            if entry.key().0 > now_tick {
                break;
            }
            let ((_, id), item) = entry.remove_entry();
            self.ticks.remove(&id);
            out.push((TimerId(id), item));
            n += 1;
        }
        n
    }
    /// Pending timers.
    pub fn len(&self) -> usize {
        self.by_time.len()
    }
    /// No pending timers.
    pub fn is_empty(&self) -> bool {
        self.by_time.is_empty()
    }
}
