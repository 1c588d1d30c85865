//! The Redis keyspace over all kinds: EXISTS, TYPE, DEL/UNLINK (a lock's force-release),
//! PTTL, FLUSHALL, and the cross-shard walks behind KEYS, SCAN and DBSIZE.

use bytes::Bytes;

use super::{LockTable, Tx};
use crate::error::RespError;
use crate::persist::Record;

impl Tx<'_> {
    /// Whether `key` exists (a lock while it has holders or waiters).
    ///
    /// # Errors
    /// `internal error` for a key whose shard the section did not lock.
    pub fn exists(&mut self, key: &[u8]) -> Result<bool, RespError> {
        self.check(key)?;
        Ok(self.entry(key).is_some_and(|e| !e.is_idle_lock()))
    }

    /// TYPE: `lock`, `semaphore`, `string` or `none`.
    ///
    /// # Errors
    /// `internal error` for a key whose shard the section did not lock.
    pub fn type_of(&mut self, key: &[u8]) -> Result<&'static str, RespError> {
        self.check(key)?;
        Ok(match self.entry(key) {
            Some(e) => e.type_name(),
            None => "none",
        })
    }

    /// DEL / UNLINK of one key: a lock loses its holders and serves its waiters in order; a
    /// semaphore is deleted as by SEM.DELETE; a string is removed. True if the key existed.
    ///
    /// # Errors
    /// `internal error` for a key whose shard the section did not lock.
    pub fn del(&mut self, key: &Bytes) -> Result<bool, RespError> {
        self.check(key)?;
        Ok(match self.entry(key) {
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
        })
    }

    /// PTTL in ms: -2 missing; a lock: its longest remaining lease (-1 with only waiters); a
    /// semaphore: -1; a string: its remaining time or -1.
    ///
    /// # Errors
    /// `internal error` for a key whose shard the section did not lock.
    pub fn pttl(&mut self, key: &[u8]) -> Result<i64, RespError> {
        self.check(key)?;
        let (now, origin) = (self.now, self.origin());
        let left = |deadline: super::Deadline| now.ms_until(deadline.instant(origin));
        Ok(match self.entry(key) {
            None => -2,
            Some(e) => e.ttl_deadline().map_or(-1, left),
        })
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

    /// Copies the key and type name of every key of shard `index` into `out` (replacing
    /// what it held). KEYS and SCAN match the copy, so no pattern, however slow, runs
    /// under a shard lock; the lock is held for one copy of the shard's keys.
    pub fn copy_keys(&self, index: usize, out: &mut ShardKeys) {
        out.bytes.clear();
        out.ends.clear();
        if let Some(shard) = self.shards.get(index) {
            for entry in shard.lock().iter() {
                if !entry.is_idle_lock() {
                    out.bytes.extend_from_slice(entry.key());
                    out.ends.push((out.bytes.len(), entry.type_name()));
                }
            }
        }
    }
}

/// The keys of one shard, copied out by [`LockTable::copy_keys`]: all key bytes in one
/// buffer (one allocation per shard, not one per key).
#[derive(Debug, Default)]
pub struct ShardKeys {
    bytes: Vec<u8>,
    ends: Vec<(usize, &'static str)>,
}

impl ShardKeys {
    /// Each key with its type name.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &'static str)> + '_ {
        let mut start = 0;
        self.ends.iter().map(move |&(end, kind)| {
            let key = &self.bytes[start..end];
            start = end;
            (key, kind)
        })
    }

    /// How many keys.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
}

/// Redis's glob matching (`*`, `?`, `[abc]`, `[^a-z]`, `\x`), as KEYS and SCAN MATCH use.
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    Glob::new(pattern).matches(text)
}

/// A glob pattern compiled for matching many keys, in time linear in the pattern plus
/// the square of the key's length at worst, whatever the pattern: the classic wildcard
/// algorithm, which on a mismatch only moves the last `*` on by one byte (a `*` never needs
/// to revisit an earlier one), over tokens whose sets are 256-bit tables. Redis's
/// recursive matcher was exponential in the number of `*` (CVE-2022-36021).
///
/// Semantics are Redis's `stringmatchlen`: `*`, `?`, `[...]` with `^`, ranges (either
/// order) and `\` escapes (an unterminated set runs to the end of the pattern), `\x`
/// outside sets; anything else is literal.
#[derive(Debug, Clone)]
pub struct Glob {
    tokens: Vec<Token>,
    sets: Vec<[u64; 4]>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Star,
    Any,
    Byte(u8),
    Set(u32),
}

fn set_has(set: &[u64; 4], c: u8) -> bool {
    set[usize::from(c >> 6)] & (1 << (c & 63)) != 0
}

fn set_add(set: &mut [u64; 4], c: u8) {
    set[usize::from(c >> 6)] |= 1 << (c & 63);
}

impl Glob {
    /// Compiles `pattern`.
    pub fn new(p: &[u8]) -> Glob {
        let mut tokens = Vec::new();
        let mut sets = Vec::new();
        let mut i = 0;
        while i < p.len() {
            match p[i] {
                b'*' => {
                    if tokens.last() != Some(&Token::Star) {
                        tokens.push(Token::Star);
                    }
                    i += 1;
                }
                b'?' => {
                    tokens.push(Token::Any);
                    i += 1;
                }
                b'[' => {
                    i += 1;
                    let negate = p.get(i) == Some(&b'^');
                    if negate {
                        i += 1;
                    }
                    let mut set = [0u64; 4];
                    loop {
                        let left = p.len().saturating_sub(i);
                        if left >= 2 && p[i] == b'\\' {
                            i += 1;
                            set_add(&mut set, p[i]);
                        } else if left == 0 || p[i] == b']' {
                            break;
                        } else if left >= 3 && p[i + 1] == b'-' {
                            let (lo, hi) = (p[i].min(p[i + 2]), p[i].max(p[i + 2]));
                            for c in lo..=hi {
                                set_add(&mut set, c);
                            }
                            i += 2;
                        } else {
                            set_add(&mut set, p[i]);
                        }
                        i += 1;
                    }
                    if negate {
                        for word in &mut set {
                            *word = !*word;
                        }
                    }
                    // Past the `]` (or the end).
                    i += 1;
                    tokens.push(Token::Set(sets.len() as u32));
                    sets.push(set);
                }
                b'\\' if p.len() - i >= 2 => {
                    tokens.push(Token::Byte(p[i + 1]));
                    i += 2;
                }
                c => {
                    tokens.push(Token::Byte(c));
                    i += 1;
                }
            }
        }
        Glob { tokens, sets }
    }

    fn one(&self, token: Token, c: u8) -> bool {
        match token {
            Token::Star => false,
            Token::Any => true,
            Token::Byte(b) => b == c,
            Token::Set(i) => set_has(&self.sets[i as usize], c),
        }
    }

    /// Whether `text` matches the whole pattern.
    pub fn matches(&self, text: &[u8]) -> bool {
        let (mut ti, mut pi) = (0, 0);
        // After the last `*` seen: the token after it and where its match would end.
        let mut star: Option<(usize, usize)> = None;
        while ti < text.len() {
            match self.tokens.get(pi) {
                Some(Token::Star) => {
                    star = Some((pi + 1, ti));
                    pi += 1;
                    continue;
                }
                Some(&token) if self.one(token, text[ti]) => {
                    pi += 1;
                    ti += 1;
                    continue;
                }
                _ => {}
            }
            match star {
                Some((after, from)) => {
                    pi = after;
                    ti = from + 1;
                    star = Some((after, from + 1));
                }
                None => return false,
            }
        }
        self.tokens[pi..].iter().all(|t| *t == Token::Star)
    }
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
        assert!(!glob_match(b"[]]", b"]"));
        assert!(!glob_match(b"h[a-]llo", b"h]llo"));
        assert!(glob_match(b"h[a-]", b"h_"));
        assert!(glob_match(b"[abc", b"b"));
        assert!(glob_match(b"*a*b*", b"xxaxxbxx"));
        assert!(!glob_match(b"*a*b", b"xxaxxbxx"));
        assert!(glob_match(b"[z-a]", b"m"));
        assert!(glob_match(b"[\\]]", b"]"));
        assert!(glob_match(b"a\\", b"a\\"));
        assert!(glob_match(b"", b""));
        assert!(!glob_match(b"", b"a"));
        assert!(glob_match(b"**", b""));
    }

    #[test]
    fn many_stars_stay_fast() {
        let text = vec![b'a'; 1000];
        let pattern = b"*a".repeat(500);
        let mut pattern = pattern;
        pattern.extend_from_slice(b"*b");
        let started = std::time::Instant::now();
        assert!(!glob_match(&pattern, &text));
        // Exponential matching took seconds for 6 stars; this is at most |key|^2 steps.
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }
}
