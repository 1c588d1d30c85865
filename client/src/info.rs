//! `LOCK.INFO` and `SEM.INFO` replies as typed values.
//!
//! The server answers a map in RESP3 and a flat array of name, value pairs in RESP2; both
//! parse here. Fields this version does not know are skipped, as the protocol asks
//! (`docs/protocol.md`: later versions may add fields).

use std::time::Duration;

use redis::Value;

use crate::error::{Error, Result};

/// The mode a lock is held in (`mode` of `LOCK.INFO` and of each holder).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LockMode {
    /// One exclusive holder (`LOCK`, `WLOCK`, `MLOCK`).
    Exclusive,
    /// Shared writers (`WLOCK ... SHARED`).
    SharedWrite,
    /// Readers (`RLOCK`).
    Read,
    /// Nobody holds the key; only waiters remain.
    None,
    /// A mode this version of the client does not know, as the server named it.
    Other(String),
}

impl LockMode {
    fn parse(name: &str) -> LockMode {
        match name {
            "exclusive" => LockMode::Exclusive,
            "shared-write" => LockMode::SharedWrite,
            "read" => LockMode::Read,
            "none" => LockMode::None,
            other => LockMode::Other(other.to_owned()),
        }
    }
}

/// One holder of a lock, from `LOCK.INFO`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LockHolder {
    /// The holder's owner id (binary-safe; ids made by this crate are UTF-8).
    pub owner: Vec<u8>,
    /// The mode of this hold.
    pub mode: LockMode,
    /// The hold's fencing token.
    pub token: i64,
    /// Lease time left.
    pub ttl: Duration,
}

/// The state of a lock key, from `LOCK.INFO` (see [`Client::lock_info`](crate::Client::lock_info)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LockInfo {
    /// The mode the key is held in ([`LockMode::None`] while only waiters remain).
    pub mode: LockMode,
    /// The holders, in no particular order.
    pub holders: Vec<LockHolder>,
    /// How many requests wait in the key's queue.
    pub waiters: u64,
}

/// One holder of a semaphore, from `SEM.INFO`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SemaphoreHolder {
    /// The holder's owner id.
    pub owner: Vec<u8>,
    /// Permits it holds.
    pub permits: u64,
    /// The hold's fencing token.
    pub token: i64,
    /// Lease time left.
    pub ttl: Duration,
}

/// The state of a semaphore, from `SEM.INFO` (see [`Semaphore::info`](crate::Semaphore::info)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SemaphoreInfo {
    /// Permits in total.
    pub capacity: u64,
    /// Permits held.
    pub used: u64,
    /// The holders, in no particular order.
    pub holders: Vec<SemaphoreHolder>,
    /// How many requests wait in the queue.
    pub waiters: u64,
}

/// Parses a `LOCK.INFO` reply (`None` for nil).
pub(crate) fn lock_info(value: Value) -> Result<Option<LockInfo>> {
    let Some(fields) = fields_of(value)? else {
        return Ok(None);
    };
    let mut info = LockInfo {
        mode: LockMode::None,
        holders: Vec::new(),
        waiters: 0,
    };
    for (name, value) in fields {
        match name.as_str() {
            "mode" => info.mode = LockMode::parse(&text(value)?),
            "waiters" => info.waiters = unsigned(value)?,
            "holders" => {
                for holder in list(value)? {
                    info.holders.push(lock_holder(holder)?);
                }
            }
            _ => {}
        }
    }
    Ok(Some(info))
}

fn lock_holder(value: Value) -> Result<LockHolder> {
    let fields = fields_of(value)?.ok_or_else(|| unexpected("nil holder"))?;
    let mut holder = LockHolder {
        owner: Vec::new(),
        mode: LockMode::None,
        token: 0,
        ttl: Duration::ZERO,
    };
    for (name, value) in fields {
        match name.as_str() {
            "owner" => holder.owner = bytes(value)?,
            "mode" => holder.mode = LockMode::parse(&text(value)?),
            "token" => holder.token = integer(value)?,
            "ttl" => holder.ttl = Duration::from_millis(unsigned(value)?),
            _ => {}
        }
    }
    Ok(holder)
}

/// Parses a `SEM.INFO` reply (`None` for nil).
pub(crate) fn semaphore_info(value: Value) -> Result<Option<SemaphoreInfo>> {
    let Some(fields) = fields_of(value)? else {
        return Ok(None);
    };
    let mut info = SemaphoreInfo {
        capacity: 0,
        used: 0,
        holders: Vec::new(),
        waiters: 0,
    };
    for (name, value) in fields {
        match name.as_str() {
            "capacity" => info.capacity = unsigned(value)?,
            "used" => info.used = unsigned(value)?,
            "waiters" => info.waiters = unsigned(value)?,
            "holders" => {
                for holder in list(value)? {
                    info.holders.push(semaphore_holder(holder)?);
                }
            }
            _ => {}
        }
    }
    Ok(Some(info))
}

fn semaphore_holder(value: Value) -> Result<SemaphoreHolder> {
    let fields = fields_of(value)?.ok_or_else(|| unexpected("nil holder"))?;
    let mut holder = SemaphoreHolder {
        owner: Vec::new(),
        permits: 0,
        token: 0,
        ttl: Duration::ZERO,
    };
    for (name, value) in fields {
        match name.as_str() {
            "owner" => holder.owner = bytes(value)?,
            "permits" => holder.permits = unsigned(value)?,
            "token" => holder.token = integer(value)?,
            "ttl" => holder.ttl = Duration::from_millis(unsigned(value)?),
            _ => {}
        }
    }
    Ok(holder)
}

/// The name, value pairs of a map (RESP3) or flat array (RESP2); `None` for nil.
fn fields_of(value: Value) -> Result<Option<Vec<(String, Value)>>> {
    let pairs = match value {
        Value::Nil => return Ok(None),
        Value::Map(pairs) => pairs,
        Value::Array(items) => {
            if items.len() % 2 != 0 {
                return Err(unexpected("odd number of items in a name, value array"));
            }
            let mut pairs = Vec::with_capacity(items.len() / 2);
            let mut items = items.into_iter();
            while let (Some(name), Some(value)) = (items.next(), items.next()) {
                pairs.push((name, value));
            }
            pairs
        }
        other => return Err(unexpected(&format!("expected a map, got {other:?}"))),
    };
    pairs
        .into_iter()
        .map(|(name, value)| Ok((text(name)?, value)))
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

fn list(value: Value) -> Result<Vec<Value>> {
    match value {
        Value::Array(items) | Value::Set(items) => Ok(items),
        Value::Nil => Ok(Vec::new()),
        other => Err(unexpected(&format!("expected an array, got {other:?}"))),
    }
}

fn bytes(value: Value) -> Result<Vec<u8>> {
    match value {
        Value::BulkString(bytes) => Ok(bytes),
        Value::SimpleString(text) => Ok(text.into_bytes()),
        Value::VerbatimString { text, .. } => Ok(text.into_bytes()),
        other => Err(unexpected(&format!("expected a string, got {other:?}"))),
    }
}

fn text(value: Value) -> Result<String> {
    String::from_utf8(bytes(value)?).map_err(|_| unexpected("a field name is not UTF-8"))
}

fn integer(value: Value) -> Result<i64> {
    match value {
        Value::Int(n) => Ok(n),
        other => {
            let text = text(other)?;
            text.parse()
                .map_err(|_| unexpected(&format!("expected an integer, got {text:?}")))
        }
    }
}

fn unsigned(value: Value) -> Result<u64> {
    let n = integer(value)?;
    u64::try_from(n).map_err(|_| unexpected(&format!("expected a count, got {n}")))
}

fn unexpected(what: &str) -> Error {
    Error::UnexpectedReply(what.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn resp2_lock_info_parses_and_skips_unknown_fields() {
        let holder = Value::Array(vec![
            bulk("owner"),
            bulk("me"),
            bulk("mode"),
            bulk("read"),
            bulk("token"),
            Value::Int(7),
            bulk("ttl"),
            Value::Int(1500),
            bulk("future-field"),
            Value::Int(1),
        ]);
        let reply = Value::Array(vec![
            bulk("mode"),
            bulk("read"),
            bulk("holders"),
            Value::Array(vec![holder]),
            bulk("waiters"),
            Value::Int(2),
        ]);
        let info = lock_info(reply).unwrap().unwrap();
        assert_eq!(info.mode, LockMode::Read);
        assert_eq!(info.waiters, 2);
        assert_eq!(info.holders.len(), 1);
        assert_eq!(info.holders[0].owner, b"me");
        assert_eq!(info.holders[0].token, 7);
        assert_eq!(info.holders[0].ttl, Duration::from_millis(1500));
    }

    #[test]
    fn resp3_semaphore_info_parses() {
        let reply = Value::Map(vec![
            (bulk("capacity"), Value::Int(3)),
            (bulk("used"), Value::Int(1)),
            (
                bulk("holders"),
                Value::Array(vec![Value::Map(vec![
                    (bulk("owner"), bulk("w")),
                    (bulk("permits"), Value::Int(1)),
                    (bulk("token"), Value::Int(9)),
                    (bulk("ttl"), Value::Int(10)),
                ])]),
            ),
            (bulk("waiters"), Value::Int(0)),
        ]);
        let info = semaphore_info(reply).unwrap().unwrap();
        assert_eq!((info.capacity, info.used, info.waiters), (3, 1, 0));
        assert_eq!(info.holders[0].permits, 1);
    }

    #[test]
    fn nil_is_none_and_garbage_is_an_error() {
        assert_eq!(lock_info(Value::Nil).unwrap(), None);
        assert!(lock_info(Value::Int(3)).is_err());
        assert!(lock_info(Value::Array(vec![bulk("mode")])).is_err());
    }
}
