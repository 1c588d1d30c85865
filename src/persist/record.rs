//! [`Record`]: one durable state change, with absolute wall-clock deadlines.
//!
//! Records are "set state" operations: replaying a record whose effect is already present
//! changes nothing, so a log suffix may be replayed over a snapshot that is partly ahead.

use bytes::Bytes;

/// What a hold is: a lock mode or a number of semaphore permits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HoldKind {
    /// LOCK / WLOCK: excludes everybody else.
    Exclusive,
    /// WLOCK ... SHARED: shares with other shared writers only.
    SharedWrite,
    /// RLOCK: shares with other readers.
    Read,
    /// SEM.ACQUIRE ... PERMITS n.
    Permits(u64),
}

/// One durable state change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// `owner` holds `key` as `hold` with `token` until `deadline_ms` (Unix ms). Also written
    /// for an idempotent re-grant (same token, new deadline).
    Grant {
        /// The key.
        key: Bytes,
        /// The owner.
        owner: Bytes,
        /// Mode or permits.
        hold: HoldKind,
        /// The fencing token of the grant.
        token: i64,
        /// Wall-clock deadline of the lease, ms since the Unix epoch.
        deadline_ms: u64,
    },
    /// The lease of `owner` on `key` now ends at `deadline_ms` (Unix ms).
    Refresh {
        /// The key.
        key: Bytes,
        /// The owner.
        owner: Bytes,
        /// New wall-clock deadline, ms since the Unix epoch.
        deadline_ms: u64,
    },
    /// `owner` no longer holds `key` (UNLOCK, SEM.RELEASE, expiry, undone grant).
    Release {
        /// The key.
        key: Bytes,
        /// The owner.
        owner: Bytes,
    },
    /// A semaphore `key` exists with `capacity` (create or resize).
    SemCreate {
        /// The key.
        key: Bytes,
        /// Its capacity.
        capacity: u64,
    },
    /// `key` is gone, whatever it was (DEL, SEM.DELETE, a string's expiry).
    Delete {
        /// The key.
        key: Bytes,
    },
    /// String `key` holds `value`, expiring at `deadline_ms` (Unix ms) if set.
    StrSet {
        /// The key.
        key: Bytes,
        /// The value.
        value: Bytes,
        /// Wall-clock expiry, ms since the Unix epoch; `None` lives until deleted.
        deadline_ms: Option<u64>,
    },
    /// String `key` now expires at `deadline_ms` (None: PERSIST).
    StrExpire {
        /// The key.
        key: Bytes,
        /// Wall-clock expiry, ms since the Unix epoch; `None` lives until deleted.
        deadline_ms: Option<u64>,
    },
    /// Every key is gone (FLUSHALL / FLUSHDB).
    FlushAll,
    /// Tokens up to and including `upto` may have been handed out: after a restart the
    /// counter starts above it.
    TokenHighWater {
        /// The reserved high-water mark.
        upto: i64,
    },
}
