//! The Redis keyspace over all kinds: EXISTS, TYPE, DEL/UNLINK (a lock's force-release),
//! PTTL, FLUSHALL, and the cross-shard walks behind KEYS, SCAN and DBSIZE.

use bytes::Bytes;

use super::{LockTable, Now, Tx};
use crate::error::RespError;
use crate::persist::Record;

impl Tx<'_> {
    /// Whether `key` exists (a lock while it has holders or waiters).
    pub fn exists(&mut self, key: &[u8]) -> bool {
        self.entry(key).is_some_and(|e| !e.is_idle_lock())
    }

    /// TYPE: `lock`, `semaphore`, `string` or `none`.
    pub fn type_of(&mut self, key: &[u8]) -> &'static str {
        match self.entry(key) {
            Some(e) => e.type_name(),
            None => "none",
        }
    }

    /// DEL / UNLINK of one key: a lock loses its holders and serves its waiters in order; a
    /// semaphore is deleted as by SEM.DELETE; a string is removed. True if the key existed.
    pub fn del(&mut self, key: &Bytes) -> bool {
        match self.entry(key) {
            None => false,
            Some(e) if e.is_lock() => {
                let owners: Vec<Box<[u8]>> = e.holders().map(|h| h.owner.into()).collect();
                for owner in owners {
                    self.release_hold(key, &owner);
                }
                self.pump(key);
                true
            }
            Some(e) if e.is_sem() => self.sem_delete(key).is_ok(),
            Some(_) => self.remove_key(key).is_some(),
        }
    }

    /// PTTL in ms: -2 missing; a lock: its longest remaining lease (-1 with only waiters); a
    /// semaphore: -1; a string: its remaining time or -1.
    pub fn pttl(&mut self, key: &[u8]) -> i64 {
        let (now, origin) = (self.now, self.origin());
        let left = |deadline: super::Deadline| now.ms_until(deadline.instant(origin));
        match self.entry(key) {
            None => -2,
            Some(e) => e.ttl_deadline().map_or(-1, left),
        }
    }

    /// FLUSHALL / FLUSHDB: removes every key of the shards held (all of them, via
    /// [`LockTable::run_all`]); every waiter gets `keyspace flushed`.
    pub fn flush(&mut self) {
        let was_replaying = self.replaying;
        self.emit(Record::FlushAll);
        // One FlushAll record stands for all the deletes below.
        self.replaying = true;
        // Remove every key before failing any waiter: failing an MLOCK waiter takes it out
        // of its other keys' queues and pumps them, and a key still present would then
        // grant the waiter queued behind it (which must get `keyspace flushed` too).
        let mut removed = Vec::new();
        for (_, guard) in &mut self.guards {
            removed.extend(guard.take_all().into_iter().filter(|e| e.has_waiters()));
        }
        for mut entry in removed {
            let key = Bytes::copy_from_slice(entry.key());
            if let Some(holds) = entry.holds_mut() {
                self.fail_waiters(&key, holds, RespError::FLUSHED);
            }
        }
        self.replaying = was_replaying;
    }
}

impl LockTable {
    /// Number of keys.
    pub fn dbsize(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    /// Calls `f` with the key and type name of every key of shard `index` (SCAN walks one
    /// shard at a time so that no call holds more than one shard lock).
    pub fn for_each_key(&self, index: usize, _now: Now, f: &mut dyn FnMut(&[u8], &'static str)) {
        if let Some(shard) = self.shards.get(index) {
            for entry in shard.lock().iter() {
                if !entry.is_idle_lock() {
                    f(entry.key(), entry.type_name());
                }
            }
        }
    }
}

/// Redis's glob matching (`*`, `?`, `[abc]`, `[^a-z]`, `\x`), as KEYS and SCAN MATCH use.
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    glob_inner(pattern, text, 0)
}

fn glob_inner(mut p: &[u8], mut t: &[u8], depth: usize) -> bool {
    // Redis bounds recursion too: a pathological pattern fails instead of overflowing.
    if depth > 1000 {
        return false;
    }
    while let Some(&c) = p.first() {
        match c {
            b'*' => {
                while p.len() > 1 && p[1] == b'*' {
                    p = &p[1..];
                }
                if p.len() == 1 {
                    return true;
                }
                for i in 0..=t.len() {
                    if glob_inner(&p[1..], &t[i..], depth + 1) {
                        return true;
                    }
                }
                return false;
            }
            b'?' => {
                if t.is_empty() {
                    return false;
                }
                t = &t[1..];
                p = &p[1..];
            }
            b'[' => {
                let Some(&tc) = t.first() else { return false };
                let mut i = 1;
                let negate = p.get(1) == Some(&b'^');
                if negate {
                    i += 1;
                }
                let mut matched = false;
                while i < p.len() && p[i] != b']' {
                    if p[i] == b'\\' && i + 1 < p.len() {
                        i += 1;
                        matched |= p[i] == tc;
                    } else if i + 2 < p.len() && p[i + 1] == b'-' && p[i + 2] != b']' {
                        let (lo, hi) = if p[i] <= p[i + 2] {
                            (p[i], p[i + 2])
                        } else {
                            (p[i + 2], p[i])
                        };
                        matched |= lo <= tc && tc <= hi;
                        i += 2;
                    } else {
                        matched |= p[i] == tc;
                    }
                    i += 1;
                }
                if negate {
                    matched = !matched;
                }
                if !matched {
                    return false;
                }
                p = if i < p.len() { &p[i + 1..] } else { &p[i..] };
                t = &t[1..];
            }
            b'\\' if p.len() >= 2 => {
                if t.first() != Some(&p[1]) {
                    return false;
                }
                p = &p[2..];
                t = &t[1..];
            }
            _ => {
                if t.first() != Some(&c) {
                    return false;
                }
                p = &p[1..];
                t = &t[1..];
            }
        }
    }
    t.is_empty()
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn globs_as_redis() {
        assert!(glob_match(b"*", b"anything"));
        assert!(glob_match(b"lock:*", b"lock:1"));
        assert!(!glob_match(b"lock:*", b"sem:1"));
        assert!(glob_match(b"h?llo", b"hello"));
        assert!(glob_match(b"h[ae]llo", b"hallo"));
        assert!(!glob_match(b"h[^e]llo", b"hello"));
        assert!(glob_match(b"h[a-c]llo", b"hbllo"));
        assert!(glob_match(b"a\\*b", b"a*b"));
        assert!(!glob_match(b"a\\*b", b"axb"));
    }
}
