//! The compact form of the most common key: a lock with exactly one holder and nobody
//! queued. Everything it needs (lease, key, owner) sits in one allocation of the exact size,
//! so a held lock with a 16-byte key and a 36-byte owner costs one 80-byte block
//! (mimalloc's size class for 78 bytes) instead of a boxed holder list, a queue and two
//! shared byte buffers.
//!
//! Layout of the bytes (native endian; the block never leaves memory):
//!
//! ```text
//! 0..8    token       i64
//! 8..16   deadline    u64   ns after the table's origin (Deadline)
//! 16..24  timer       u64   TimerId::to_bits
//! 24      mode        u8    0 exclusive, 1 shared-write, 2 read
//! 25      key length  u8    (keys up to 255 bytes; longer ones use the general form)
//! 26..    key, then owner (the rest)
//! ```
//!
//! A boxed slice rather than a struct with a trailing slice: safe Rust cannot allocate a
//! custom dynamically sized type, and a struct holding a second box would cost a second
//! allocation. Only this file knows the offsets.

use super::HoldKind;
use crate::wheel::TimerId;

use super::entry::{Deadline, HolderRef, Lease};

const TOKEN: usize = 0;
const DEADLINE: usize = 8;
const TIMER: usize = 16;
const MODE: usize = 24;
const KEY_LEN: usize = 25;
const HEADER: usize = 26;

/// A lock with one holder and no waiters, in one allocation (see the module doc).
#[derive(Debug)]
pub(crate) struct SoleLock(Box<[u8]>);

impl SoleLock {
    /// The compact form of `owner`'s hold on `key`, or None when it does not fit: a key
    /// over 255 bytes, or permits (semaphores always use the general form).
    pub(crate) fn new(key: &[u8], owner: &[u8], lease: &Lease) -> Option<SoleLock> {
        let mode = mode_byte(lease.kind)?;
        let key_len = u8::try_from(key.len()).ok()?;
        let mut bytes = Vec::with_capacity(HEADER + key.len() + owner.len());
        bytes.extend_from_slice(&[0; HEADER]);
        bytes[MODE] = mode;
        bytes[KEY_LEN] = key_len;
        bytes.extend_from_slice(key);
        bytes.extend_from_slice(owner);
        let mut sole = SoleLock(bytes.into_boxed_slice());
        sole.set_lease(lease);
        Some(sole)
    }

    /// A placeholder that holds nothing and allocates nothing: a vacant slot of a shard's
    /// slab (`keys.rs`). No method but [`is_vacant`](Self::is_vacant) may be called on it.
    pub(crate) fn vacant() -> SoleLock {
        SoleLock(Box::default())
    }

    /// Whether this is the [`vacant`](Self::vacant) placeholder.
    pub(crate) fn is_vacant(&self) -> bool {
        self.0.is_empty()
    }

    /// The key.
    pub(crate) fn key(&self) -> &[u8] {
        &self.0[HEADER..HEADER + self.key_len()]
    }

    /// The holder's owner.
    pub(crate) fn owner(&self) -> &[u8] {
        &self.0[HEADER + self.key_len()..]
    }

    /// The holder's lease.
    pub(crate) fn lease(&self) -> Lease {
        Lease {
            kind: match self.0[MODE] {
                1 => HoldKind::SharedWrite,
                2 => HoldKind::Read,
                _ => HoldKind::Exclusive,
            },
            token: self.word(TOKEN) as i64,
            deadline: Deadline::from_nanos(self.word(DEADLINE)),
            timer: TimerId::from_bits(self.word(TIMER)),
        }
    }

    /// The timer of the lease (read without decoding the rest: expiry matches on it).
    pub(crate) fn timer(&self) -> TimerId {
        TimerId::from_bits(self.word(TIMER))
    }

    /// The holder as the general form shows it.
    pub(crate) fn holder(&self) -> HolderRef<'_> {
        HolderRef {
            owner: self.owner(),
            lease: self.lease(),
        }
    }

    /// Overwrites the lease's token, deadline and timer. The mode stays: a hold never
    /// changes mode (no upgrades or downgrades).
    pub(crate) fn set_lease(&mut self, lease: &Lease) {
        debug_assert_eq!(mode_byte(lease.kind), Some(self.0[MODE]));
        self.set_word(TOKEN, lease.token as u64);
        self.set_word(DEADLINE, lease.deadline.as_nanos());
        self.set_word(TIMER, lease.timer.to_bits());
    }

    fn key_len(&self) -> usize {
        usize::from(self.0[KEY_LEN])
    }

    fn word(&self, at: usize) -> u64 {
        let mut word = [0; 8];
        word.copy_from_slice(&self.0[at..at + 8]);
        u64::from_ne_bytes(word)
    }

    fn set_word(&mut self, at: usize, value: u64) {
        self.0[at..at + 8].copy_from_slice(&value.to_ne_bytes());
    }
}

/// The byte for a lock mode; None for permits.
fn mode_byte(kind: HoldKind) -> Option<u8> {
    match kind {
        HoldKind::Exclusive => Some(0),
        HoldKind::SharedWrite => Some(1),
        HoldKind::Read => Some(2),
        HoldKind::Permits(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(kind: HoldKind, token: i64, nanos: u64) -> Lease {
        Lease {
            kind,
            token,
            deadline: Deadline::from_nanos(nanos),
            timer: TimerId::from_bits(0x0000_0007_0000_0009),
        }
    }

    #[test]
    fn round_trips_and_is_one_exact_block() {
        let key = b"lock:00000000042";
        let owner = b"0000002a-0000-4000-8000-00000000002a";
        for kind in [HoldKind::Exclusive, HoldKind::SharedWrite, HoldKind::Read] {
            let l = lease(kind, -5, u64::MAX - 1);
            let sole = SoleLock::new(key, owner, &l).expect("fits");
            assert_eq!(sole.key(), key);
            assert_eq!(sole.owner(), owner);
            assert_eq!(sole.lease(), l);
            assert_eq!(sole.timer(), l.timer);
            assert_eq!(sole.0.len(), HEADER + key.len() + owner.len());
        }
        let mut sole = SoleLock::new(b"k", b"o", &lease(HoldKind::Read, 1, 2)).expect("fits");
        let renewed = lease(HoldKind::Read, 1, 99);
        sole.set_lease(&renewed);
        assert_eq!(sole.lease(), renewed);
        assert_eq!((sole.key(), sole.owner()), (&b"k"[..], &b"o"[..]));
    }

    #[test]
    fn long_keys_and_permits_do_not_fit() {
        let l = lease(HoldKind::Exclusive, 1, 1);
        assert!(SoleLock::new(&[b'k'; 255], b"o", &l).is_some());
        assert!(SoleLock::new(&[b'k'; 256], b"o", &l).is_none());
        assert!(SoleLock::new(b"k", b"o", &lease(HoldKind::Permits(1), 1, 1)).is_none());
    }
}
