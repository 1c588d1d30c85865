//! [`Record`]: one durable state change, with absolute wall-clock deadlines.
//!
//! Records are "set state" operations: replaying a record whose effect is already present
//! changes nothing, so a log suffix may be replayed over a snapshot that is partly ahead.
//!
//! This file also owns the binary encoding (the on-disk contract):
//! - a payload is a tag byte then the fields in declaration order: integers as u64/i64 LE,
//!   byte strings as `u32 LE length | bytes`, `Option<u64>` as `0` or `1 | u64 LE`,
//!   [`HoldKind`] as a byte (0 exclusive, 1 shared write, 2 read, 3 permits `| u64 LE`);
//! - a frame in a file is `len: u32 LE | crc32: u32 LE (of the payload) | payload`.
//!
//! To add a record kind: add the variant, a new `TAG_*` constant (never reuse or renumber
//! one), its arm in [`Record::encode`] and [`Record::decode`], and its case in the test
//! strategy `record_strategy`. Changing an existing layout needs a new file version
//! (`persist::log::FORMAT_VERSION`).

use bytes::Bytes;

/// The kind of a [`Record::Grant`]'s hold: a table type, encoded here (named from `persist`
/// too, so readers of the format find it beside the records).
pub use crate::table::HoldKind;

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

/// Why a record payload could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The payload has no tag byte.
    #[error("empty record")]
    Empty,
    /// The tag byte names no record kind.
    #[error("unknown record tag {0}")]
    UnknownTag(u8),
    /// The payload ends inside a field.
    #[error("record truncated")]
    Truncated,
    /// Bytes are left after the last field.
    #[error("{0} trailing bytes after the record")]
    TrailingBytes(usize),
    /// The hold-kind byte names no hold kind.
    #[error("unknown hold kind {0}")]
    BadHoldKind(u8),
    /// An optional field's presence byte is neither 0 nor 1.
    #[error("bad option flag {0}")]
    BadOption(u8),
}

// Tag bytes: append new kinds at the end, never renumber (they are on disk).
const TAG_GRANT: u8 = 1;
const TAG_REFRESH: u8 = 2;
const TAG_RELEASE: u8 = 3;
const TAG_SEM_CREATE: u8 = 4;
const TAG_DELETE: u8 = 5;
const TAG_STR_SET: u8 = 6;
const TAG_STR_EXPIRE: u8 = 7;
const TAG_FLUSH_ALL: u8 = 8;
const TAG_TOKEN_HIGH_WATER: u8 = 9;

const HOLD_EXCLUSIVE: u8 = 0;
const HOLD_SHARED_WRITE: u8 = 1;
const HOLD_READ: u8 = 2;
const HOLD_PERMITS: u8 = 3;

/// Bytes of a frame header: `len: u32 LE | crc32: u32 LE`.
pub const FRAME_HEADER_LEN: usize = 8;

impl Record {
    /// Appends this record's payload (tag byte, then its fields) to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Record::Grant {
                key,
                owner,
                hold,
                token,
                deadline_ms,
            } => {
                out.push(TAG_GRANT);
                put_bytes(out, key);
                put_bytes(out, owner);
                match hold {
                    HoldKind::Exclusive => out.push(HOLD_EXCLUSIVE),
                    HoldKind::SharedWrite => out.push(HOLD_SHARED_WRITE),
                    HoldKind::Read => out.push(HOLD_READ),
                    HoldKind::Permits(n) => {
                        out.push(HOLD_PERMITS);
                        out.extend_from_slice(&n.to_le_bytes());
                    }
                }
                out.extend_from_slice(&token.to_le_bytes());
                out.extend_from_slice(&deadline_ms.to_le_bytes());
            }
            Record::Refresh {
                key,
                owner,
                deadline_ms,
            } => {
                out.push(TAG_REFRESH);
                put_bytes(out, key);
                put_bytes(out, owner);
                out.extend_from_slice(&deadline_ms.to_le_bytes());
            }
            Record::Release { key, owner } => {
                out.push(TAG_RELEASE);
                put_bytes(out, key);
                put_bytes(out, owner);
            }
            Record::SemCreate { key, capacity } => {
                out.push(TAG_SEM_CREATE);
                put_bytes(out, key);
                out.extend_from_slice(&capacity.to_le_bytes());
            }
            Record::Delete { key } => {
                out.push(TAG_DELETE);
                put_bytes(out, key);
            }
            Record::StrSet {
                key,
                value,
                deadline_ms,
            } => {
                out.push(TAG_STR_SET);
                put_bytes(out, key);
                put_bytes(out, value);
                put_opt_u64(out, *deadline_ms);
            }
            Record::StrExpire { key, deadline_ms } => {
                out.push(TAG_STR_EXPIRE);
                put_bytes(out, key);
                put_opt_u64(out, *deadline_ms);
            }
            Record::FlushAll => out.push(TAG_FLUSH_ALL),
            Record::TokenHighWater { upto } => {
                out.push(TAG_TOKEN_HIGH_WATER);
                out.extend_from_slice(&upto.to_le_bytes());
            }
        }
    }

    /// Decodes one payload written by [`Record::encode`]; the whole slice must be used.
    ///
    /// # Errors
    ///
    /// [`DecodeError`] when the bytes are not exactly one well-formed record.
    pub fn decode(payload: &[u8]) -> Result<Record, DecodeError> {
        let mut cur = Cursor(payload);
        let tag = cur.u8().map_err(|_| DecodeError::Empty)?;
        let record = match tag {
            TAG_GRANT => {
                let key = cur.bytes()?;
                let owner = cur.bytes()?;
                let hold = match cur.u8()? {
                    HOLD_EXCLUSIVE => HoldKind::Exclusive,
                    HOLD_SHARED_WRITE => HoldKind::SharedWrite,
                    HOLD_READ => HoldKind::Read,
                    HOLD_PERMITS => HoldKind::Permits(cur.u64()?),
                    other => return Err(DecodeError::BadHoldKind(other)),
                };
                Record::Grant {
                    key,
                    owner,
                    hold,
                    token: cur.i64()?,
                    deadline_ms: cur.u64()?,
                }
            }
            TAG_REFRESH => Record::Refresh {
                key: cur.bytes()?,
                owner: cur.bytes()?,
                deadline_ms: cur.u64()?,
            },
            TAG_RELEASE => Record::Release {
                key: cur.bytes()?,
                owner: cur.bytes()?,
            },
            TAG_SEM_CREATE => Record::SemCreate {
                key: cur.bytes()?,
                capacity: cur.u64()?,
            },
            TAG_DELETE => Record::Delete { key: cur.bytes()? },
            TAG_STR_SET => Record::StrSet {
                key: cur.bytes()?,
                value: cur.bytes()?,
                deadline_ms: cur.opt_u64()?,
            },
            TAG_STR_EXPIRE => Record::StrExpire {
                key: cur.bytes()?,
                deadline_ms: cur.opt_u64()?,
            },
            TAG_FLUSH_ALL => Record::FlushAll,
            TAG_TOKEN_HIGH_WATER => Record::TokenHighWater { upto: cur.i64()? },
            other => return Err(DecodeError::UnknownTag(other)),
        };
        if !cur.0.is_empty() {
            return Err(DecodeError::TrailingBytes(cur.0.len()));
        }
        Ok(record)
    }

    /// Appends this record framed for a file: `len: u32 LE | crc32: u32 LE | payload`.
    pub fn encode_frame(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[0; FRAME_HEADER_LEN]);
        self.encode(out);
        let payload = &out[start + FRAME_HEADER_LEN..];
        // A payload over 4 GiB cannot come from a request (bulk strings are capped far
        // below); saturating keeps encode infallible and makes such a frame fail its check.
        let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
        let crc = crc32fast::hash(payload);
        out[start..start + 4].copy_from_slice(&len.to_le_bytes());
        out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    }

    /// The fencing token this record reserves or hands out, if any.
    pub fn token(&self) -> Option<i64> {
        match self {
            Record::Grant { token, .. } => Some(*token),
            Record::TokenHighWater { upto } => Some(*upto),
            _ => None,
        }
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    // Keys, owners and values are bounded by the request limits (far below 4 GiB).
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(bytes);
}

fn put_opt_u64(out: &mut Vec<u8>, value: Option<u64>) {
    match value {
        None => out.push(0),
        Some(v) => {
            out.push(1);
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
}

/// Reads fields off the front of a payload; every read checks the length first.
struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    fn opt_u64(&mut self) -> Result<Option<u64>, DecodeError> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.u64()?)),
            other => Err(DecodeError::BadOption(other)),
        }
    }

    fn bytes(&mut self) -> Result<Bytes, DecodeError> {
        let len = u32::from_le_bytes(self.array()?) as usize;
        Ok(Bytes::copy_from_slice(self.take(len)?))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bytes_strategy() -> impl Strategy<Value = Bytes> {
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Bytes::from)
    }

    fn hold_strategy() -> impl Strategy<Value = HoldKind> {
        prop_oneof![
            Just(HoldKind::Exclusive),
            Just(HoldKind::SharedWrite),
            Just(HoldKind::Read),
            any::<u64>().prop_map(HoldKind::Permits),
        ]
    }

    /// Any record, for property tests here and in the log and recovery tests.
    pub(crate) fn record_strategy() -> impl Strategy<Value = Record> {
        prop_oneof![
            (
                bytes_strategy(),
                bytes_strategy(),
                hold_strategy(),
                any::<i64>(),
                any::<u64>()
            )
                .prop_map(|(key, owner, hold, token, deadline_ms)| Record::Grant {
                    key,
                    owner,
                    hold,
                    token,
                    deadline_ms
                }),
            (bytes_strategy(), bytes_strategy(), any::<u64>()).prop_map(
                |(key, owner, deadline_ms)| Record::Refresh {
                    key,
                    owner,
                    deadline_ms
                }
            ),
            (bytes_strategy(), bytes_strategy())
                .prop_map(|(key, owner)| Record::Release { key, owner }),
            (bytes_strategy(), any::<u64>())
                .prop_map(|(key, capacity)| Record::SemCreate { key, capacity }),
            bytes_strategy().prop_map(|key| Record::Delete { key }),
            (bytes_strategy(), bytes_strategy(), any::<Option<u64>>()).prop_map(
                |(key, value, deadline_ms)| Record::StrSet {
                    key,
                    value,
                    deadline_ms
                }
            ),
            (bytes_strategy(), any::<Option<u64>>())
                .prop_map(|(key, deadline_ms)| Record::StrExpire { key, deadline_ms }),
            Just(Record::FlushAll),
            any::<i64>().prop_map(|upto| Record::TokenHighWater { upto }),
        ]
    }

    proptest! {
        #[test]
        fn encode_decode_round_trip(record in record_strategy()) {
            let mut buf = Vec::new();
            record.encode(&mut buf);
            prop_assert_eq!(Record::decode(&buf), Ok(record));
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Record::decode(&bytes);
        }

        #[test]
        fn every_strict_prefix_fails(record in record_strategy()) {
            let mut buf = Vec::new();
            record.encode(&mut buf);
            for cut in 0..buf.len() {
                prop_assert!(Record::decode(&buf[..cut]).is_err());
            }
        }
    }

    #[test]
    fn frame_carries_len_and_crc() {
        let record = Record::Delete {
            key: Bytes::from_static(b"k"),
        };
        let mut buf = Vec::new();
        record.encode_frame(&mut buf);
        let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        assert_eq!(len, buf.len() - FRAME_HEADER_LEN);
        let crc = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
        assert_eq!(crc, crc32fast::hash(&buf[FRAME_HEADER_LEN..]));
        assert_eq!(Record::decode(&buf[FRAME_HEADER_LEN..]), Ok(record));
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut buf = Vec::new();
        Record::FlushAll.encode(&mut buf);
        buf.push(0);
        assert_eq!(Record::decode(&buf), Err(DecodeError::TrailingBytes(1)));
    }
}
