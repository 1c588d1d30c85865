//! Strings with expiry (the compatibility layer): SET with its conditions and expiry
//! options, GET, the compare-and-delete family, and the EXPIRE/PERSIST family. A string
//! shares the keyspace and the lease wheel with locks; a SET never overwrites a lock or a
//! semaphore (WRONGTYPE), so a stray SET cannot end a hold.

use std::time::Instant;

use bytes::Bytes;

use super::Tx;
use crate::error::RespError;
use crate::resp::Reply;

/// When SET writes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SetCondition {
    /// Always.
    #[default]
    Always,
    /// NX: only if the key is missing.
    Nx,
    /// XX: only if the key exists.
    Xx,
    /// IFEQ v: only if the key holds exactly `v`.
    IfEq(Bytes),
    /// IFNE v: only if the key is missing or does not hold `v`.
    IfNe(Bytes),
}

/// What SET does with the expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SetExpiry {
    /// No option: the key lives until deleted.
    #[default]
    Never,
    /// KEEPTTL: keep the current expiry.
    Keep,
    /// EX/PX/EXAT/PXAT: expire at this monotonic deadline and wall-clock ms (already
    /// passed: the key is deleted right away).
    At(Instant, u64),
}

/// SET's options, parsed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SetOptions {
    /// The condition.
    pub condition: SetCondition,
    /// The expiry.
    pub expiry: SetExpiry,
    /// GET: answer the old value.
    pub get: bool,
}

/// Which EXPIRE variant condition applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExpireCondition {
    /// Always.
    #[default]
    Always,
    /// NX: only when the key has no expiry.
    Nx,
    /// XX: only when it has one.
    Xx,
    /// GT: only when the new expiry is later.
    Gt,
    /// LT: only when the new expiry is earlier.
    Lt,
}

/// A string's value and its expiry (monotonic deadline, wall ms).
type StringState = (Bytes, Option<(Instant, u64)>);

impl Tx<'_> {
    fn string_value(&mut self, key: &[u8]) -> Result<Option<StringState>, RespError> {
        let origin = self.origin();
        let Some(entry) = self.entry(key) else {
            return Ok(None);
        };
        let s = entry.str_value().ok_or(RespError::WRONGTYPE)?;
        let expiry = s.expiry.map(|e| (e.deadline.instant(origin), e.wall_ms));
        Ok(Some((Bytes::copy_from_slice(&s.value), expiry)))
    }

    /// `SET key value [options]`.
    ///
    /// # Errors
    /// WRONGTYPE over a lock or semaphore (except `NX` without `GET`, which answers nil).
    pub fn set(
        &mut self,
        key: &Bytes,
        value: Bytes,
        opts: &SetOptions,
    ) -> Result<Reply, RespError> {
        self.check(key)?;
        let old = match self.string_value(key) {
            Ok(old) => old,
            Err(err) => {
                if opts.condition == SetCondition::Nx && !opts.get {
                    return Ok(Reply::Nil);
                }
                return Err(err);
            }
        };
        let write = match &opts.condition {
            SetCondition::Always => true,
            SetCondition::Nx => old.is_none(),
            SetCondition::Xx => old.is_some(),
            SetCondition::IfEq(v) => old.as_ref().is_some_and(|(cur, _)| cur == v),
            SetCondition::IfNe(v) => old.as_ref().is_none_or(|(cur, _)| cur != v),
        };
        if write {
            let expiry = match opts.expiry {
                SetExpiry::Never => None,
                SetExpiry::Keep => old.as_ref().and_then(|(_, e)| *e),
                SetExpiry::At(deadline, wall) => Some((deadline, wall)),
            };
            match expiry {
                Some((deadline, _)) if deadline <= self.now.mono => {
                    if old.is_some() {
                        self.remove_key(key);
                    }
                }
                _ => self.put_str(key, value, expiry),
            }
        }
        Ok(match (opts.get, write) {
            (true, _) => old.map_or(Reply::Nil, |(v, _)| Reply::Bulk(v)),
            (false, true) => Reply::ok(),
            (false, false) => Reply::Nil,
        })
    }

    /// GET key.
    ///
    /// # Errors
    /// WRONGTYPE on a lock or semaphore.
    pub fn get(&mut self, key: &[u8]) -> Result<Reply, RespError> {
        self.check(key)?;
        Ok(self
            .string_value(key)?
            .map_or(Reply::Nil, |(v, _)| Reply::Bulk(v)))
    }

    /// DELIFEQ key value / DELEX key IFEQ value (`equal` true) or IFNE (`equal` false):
    /// deletes the string when the condition holds. 1 if deleted.
    ///
    /// # Errors
    /// WRONGTYPE on a lock or semaphore.
    pub fn del_if(&mut self, key: &[u8], value: &[u8], equal: bool) -> Result<Reply, RespError> {
        self.check(key)?;
        let Some((cur, _)) = self.string_value(key)? else {
            return Ok(Reply::Int(0));
        };
        if (cur == value) == equal {
            self.remove_key(key);
            return Ok(Reply::Int(1));
        }
        Ok(Reply::Int(0))
    }

    /// EXPIRE family: sets the string's expiry at `deadline` (monotonic, wall ms) if
    /// `cond` holds. 1 if set (or the key was deleted for a deadline already passed).
    ///
    /// # Errors
    /// WRONGTYPE on a lock or semaphore (their leases renew with REFRESH).
    pub fn expire_at(
        &mut self,
        key: &Bytes,
        deadline: (Instant, u64),
        cond: ExpireCondition,
    ) -> Result<Reply, RespError> {
        self.check(key)?;
        let Some((_, current)) = self.string_value(key)? else {
            return Ok(Reply::Int(0));
        };
        let ok = match (cond, current) {
            (ExpireCondition::Always, _) => true,
            (ExpireCondition::Nx, cur) => cur.is_none(),
            (ExpireCondition::Xx, cur) => cur.is_some(),
            // Compared in wall milliseconds, as Redis does: the same PEXPIREAT
            // twice is "not greater" even if its monotonic conversion drifts.
            (ExpireCondition::Gt, Some((_, wall))) => deadline.1 > wall,
            (ExpireCondition::Gt, None) => false,
            (ExpireCondition::Lt, Some((_, wall))) => deadline.1 < wall,
            (ExpireCondition::Lt, None) => true,
        };
        if !ok {
            return Ok(Reply::Int(0));
        }
        if deadline.0 <= self.now.mono {
            self.remove_key(key);
        } else {
            self.set_str_expiry(key, Some(deadline));
        }
        Ok(Reply::Int(1))
    }

    /// PERSIST: drops the string's expiry. 1 if it had one.
    ///
    /// # Errors
    /// WRONGTYPE on a lock or semaphore.
    pub fn persist(&mut self, key: &Bytes) -> Result<Reply, RespError> {
        self.check(key)?;
        match self.string_value(key)? {
            Some((_, Some(_))) => {
                self.set_str_expiry(key, None);
                Ok(Reply::Int(1))
            }
            _ => Ok(Reply::Int(0)),
        }
    }
}
