//! Fencing tokens: one global, strictly rising counter for every grant of every key.
//!
//! Seeded with the larger of the high-water mark on disk and the wall clock in microseconds,
//! so tokens do not go backwards across a restart even with persistence off. With
//! persistence on, the counter reserves blocks ahead ([`TOKEN_BLOCK`]) by emitting a
//! `Record::TokenHighWater` before handing out any token of a new block.

use std::sync::atomic::{AtomicI64, Ordering};

/// Tokens reserved on disk ahead of use, per reservation record.
pub(crate) const TOKEN_BLOCK: i64 = 100_000;

/// The counter. `next` is the last token handed out.
#[derive(Debug)]
pub(crate) struct TokenCounter {
    last: AtomicI64,
    reserved: AtomicI64,
}

impl TokenCounter {
    /// A counter whose first token is above both `disk_high_water` and `wall_clock_us`.
    pub(crate) fn seeded(disk_high_water: i64, wall_clock_us: i64) -> Self {
        let start = disk_high_water.max(wall_clock_us).max(0);
        TokenCounter {
            last: AtomicI64::new(start),
            reserved: AtomicI64::new(start),
        }
    }

    /// Hands out the next token. Returns it and, when it starts a new block, the high-water
    /// mark to reserve on disk before the token is used.
    pub(crate) fn next(&self) -> (i64, Option<i64>) {
        let token = self.last.fetch_add(1, Ordering::Relaxed) + 1;
        let reserved = self.reserved.load(Ordering::Relaxed);
        if token > reserved {
            let upto = token + TOKEN_BLOCK;
            // Only the caller that moves the mark emits the record; a racing caller with a
            // larger token moves it further, which is also safe (marks only need to cover).
            let prev = self.reserved.fetch_max(upto, Ordering::Relaxed);
            if prev < upto {
                return (token, Some(upto));
            }
        }
        (token, None)
    }

    /// The last token handed out.
    pub(crate) fn last(&self) -> i64 {
        self.last.load(Ordering::Relaxed)
    }

    /// Raises the counter to at least `token` (recovery).
    pub(crate) fn observe(&self, token: i64) {
        self.last.fetch_max(token, Ordering::Relaxed);
        self.reserved.fetch_max(token, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_above_both_marks_and_rising() {
        let c = TokenCounter::seeded(500, 100);
        let (a, reserve) = c.next();
        assert_eq!(a, 501);
        assert_eq!(reserve, Some(501 + TOKEN_BLOCK));
        let (b, reserve) = c.next();
        assert_eq!(b, 502);
        assert_eq!(reserve, None);
        let c = TokenCounter::seeded(5, 1_000);
        assert_eq!(c.next().0, 1_001);
    }
}
