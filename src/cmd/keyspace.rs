//! Keyspace commands shared by all kinds.
//!
//! ```text
//! DEL key [key ...]        UNLINK key [key ...]      EXISTS key [key ...]
//! TYPE key                 PTTL key                  TTL key
//! KEYS pattern             SCAN cursor [MATCH p] [COUNT n] [TYPE t]
//! DBSIZE                   FLUSHALL [ASYNC|SYNC]     FLUSHDB [ASYNC|SYNC]
//! ```

use bytes::Bytes;

use super::args::{parse_int, Args};
use super::{Executed, Session, Shared, TxCommand};
use crate::error::RespError;
use crate::resp::Reply;
use crate::table::{Glob, Outcome, ShardKeys, Tx};

/// Keyspace commands on named keys.
#[derive(Debug, Clone)]
pub enum KeyCommand {
    /// DEL / UNLINK.
    Del {
        /// The keys.
        keys: Vec<Bytes>,
        /// Set (to the user's name) when the user lacks `@admin`: a key with live holders
        /// is then refused rather than released (see [`held_by_others`]).
        held_guard: Option<std::sync::Arc<str>>,
    },
    /// EXISTS.
    Exists {
        /// The keys (repeats count again, as in Redis).
        keys: Vec<Bytes>,
    },
    /// TYPE.
    Type {
        /// The key.
        key: Bytes,
    },
    /// PTTL (ms) or TTL (seconds).
    Ttl {
        /// The key.
        key: Bytes,
        /// TTL rather than PTTL.
        seconds: bool,
    },
}

/// Keyspace commands over the whole table.
#[derive(Debug, Clone)]
pub enum TableCommand {
    /// KEYS pattern.
    Keys {
        /// Glob pattern.
        pattern: Bytes,
    },
    /// SCAN.
    Scan {
        /// The shard to start at.
        cursor: u64,
        /// MATCH.
        pattern: Option<Bytes>,
        /// COUNT hint.
        count: usize,
        /// TYPE filter.
        kind: Option<Bytes>,
    },
    /// DBSIZE.
    Dbsize,
    /// FLUSHALL / FLUSHDB.
    Flush,
}

/// The commands on named keys, as the command table names them: [`KeyCommand::parse`]
/// matches every one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyId {
    /// DEL.
    Del,
    /// UNLINK.
    Unlink,
    /// EXISTS.
    Exists,
    /// TYPE.
    Type,
    /// PTTL.
    Pttl,
    /// TTL.
    Ttl,
}

/// The commands over the whole table, as the command table names them:
/// [`TableCommand::parse`] matches every one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableId {
    /// KEYS.
    Keys,
    /// SCAN.
    Scan,
    /// DBSIZE.
    Dbsize,
    /// FLUSHALL.
    FlushAll,
    /// FLUSHDB.
    FlushDb,
}

fn all_keys(args: &mut Args<'_>) -> Result<Vec<Bytes>, RespError> {
    let mut keys = Vec::with_capacity(args.remaining());
    while args.remaining() > 0 {
        keys.push(args.key()?);
    }
    Ok(keys)
}

impl KeyCommand {
    /// Parses the arguments of command `id` (arity already checked).
    ///
    /// # Errors
    /// `invalid key` for an empty or oversized key.
    pub fn parse(id: KeyId, args: &mut Args<'_>) -> Result<Self, RespError> {
        let cmd = match id {
            KeyId::Del | KeyId::Unlink => KeyCommand::Del {
                keys: all_keys(args)?,
                held_guard: None,
            },
            KeyId::Exists => KeyCommand::Exists {
                keys: all_keys(args)?,
            },
            KeyId::Type => KeyCommand::Type { key: args.key()? },
            KeyId::Pttl | KeyId::Ttl => KeyCommand::Ttl {
                key: args.key()?,
                seconds: id == KeyId::Ttl,
            },
        };
        args.finish_ref()?;
        Ok(cmd)
    }
}

impl TxCommand for KeyCommand {
    fn keys(&self) -> Vec<&[u8]> {
        match self {
            KeyCommand::Del { keys, .. } | KeyCommand::Exists { keys } => {
                keys.iter().map(|k| k.as_ref()).collect()
            }
            KeyCommand::Type { key } | KeyCommand::Ttl { key, .. } => vec![key],
        }
    }

    fn apply(&self, tx: &mut Tx<'_>) -> Result<Outcome, RespError> {
        let reply = match self {
            KeyCommand::Del { keys, held_guard } => {
                if let Some(user) = held_guard {
                    if keys.iter().any(|k| has_live_holds(tx, k)) {
                        return Err(held_by_others(user));
                    }
                }
                let mut n = 0;
                for key in keys {
                    n += i64::from(tx.del(key)?);
                }
                Reply::Int(n)
            }
            KeyCommand::Exists { keys } => {
                let mut n = 0;
                for key in keys {
                    n += i64::from(tx.exists(key)?);
                }
                Reply::Int(n)
            }
            KeyCommand::Type { key } => {
                Reply::Simple(Bytes::from_static(tx.type_of(key)?.as_bytes()))
            }
            KeyCommand::Ttl { key, seconds } => {
                let ms = tx.pttl(key)?;
                Reply::Int(if *seconds && ms >= 0 {
                    (ms + 500) / 1000
                } else {
                    ms
                })
            }
        };
        Ok(Outcome::Reply(reply))
    }
}

/// Whether `key` is a lock or semaphore with a live hold (what DEL would force-release).
fn has_live_holds(tx: &mut Tx<'_>, key: &[u8]) -> bool {
    tx.entry(key)
        .is_some_and(|e| !e.is_str() && e.holders().next().is_some())
}

/// DEL / UNLINK of a key with live holders by a user without `@admin`: releasing another
/// client's hold by force is an admin's act. A string (Redlock's lock) stays deletable.
pub fn held_by_others(user: &str) -> RespError {
    RespError::new(format!(
        "NOPERM User {user} has no permissions to run the 'del' command on a held lock"
    ))
}

impl TableCommand {
    /// Parses the arguments of command `id` (arity already checked).
    ///
    /// # Errors
    /// `invalid cursor`, not an integer, syntax error.
    pub fn parse(id: TableId, args: &mut Args<'_>) -> Result<Self, RespError> {
        let cmd = match id {
            TableId::Keys => TableCommand::Keys {
                pattern: args.bytes()?,
            },
            TableId::Scan => {
                let cursor = parse_int(&args.bytes()?)
                    .ok()
                    .filter(|c| *c >= 0)
                    .ok_or(RespError::fixed("ERR invalid cursor"))?
                    as u64;
                let mut pattern = None;
                let mut count = 10;
                let mut kind = None;
                while let Some(opt) = args.peek_upper() {
                    args.next();
                    match opt.as_slice() {
                        b"MATCH" => pattern = Some(args.bytes()?),
                        b"COUNT" => {
                            let n = args.int()?;
                            if n < 1 {
                                return Err(RespError::SYNTAX);
                            }
                            count = n as usize;
                        }
                        b"TYPE" => kind = Some(args.bytes()?),
                        _ => return Err(RespError::SYNTAX),
                    }
                }
                TableCommand::Scan {
                    cursor,
                    pattern,
                    count,
                    kind,
                }
            }
            TableId::Dbsize => TableCommand::Dbsize,
            TableId::FlushAll | TableId::FlushDb => {
                while let Some(opt) = args.peek_upper() {
                    args.next();
                    if opt != b"ASYNC" && opt != b"SYNC" {
                        return Err(RespError::SYNTAX);
                    }
                }
                TableCommand::Flush
            }
        };
        args.finish_ref()?;
        Ok(cmd)
    }

    /// Runs the command over the table, one shard at a time (FLUSHALL: all at once).
    /// KEYS, SCAN and FLUSHALL run on a script thread: they walk the whole keyspace.
    ///
    /// A user whose patterns do not cover every key sees only its keys: KEYS and SCAN skip
    /// the others, DBSIZE counts only its own (walking the keyspace on a script thread).
    pub fn apply(&self, server: &Shared, session: &mut Session) -> Executed {
        let table = &server.table;
        let user = (!session.user.all_keys()).then(|| session.user.clone());
        let reply = match self {
            TableCommand::Keys { .. } | TableCommand::Scan { .. } => {
                let cmd = self.clone();
                return Executed {
                    effect: super::Effect::Offload(super::Offload::new(move |server| {
                        Executed::reply(cmd.walk(server, user.as_deref()))
                    })),
                    lsn: 0,
                };
            }
            TableCommand::Dbsize => match user {
                None => Reply::Int(table.dbsize() as i64),
                Some(user) => {
                    return Executed {
                        effect: super::Effect::Offload(super::Offload::new(move |server| {
                            Executed::reply(Reply::Int(count_keys_of(server, &user) as i64))
                        })),
                        lsn: 0,
                    };
                }
            },
            TableCommand::Flush => {
                // Freeing every key takes time in proportion to the keyspace.
                return Executed {
                    effect: super::Effect::Offload(super::Offload::new(|server| {
                        let ran = server.table.run_all(server.now(), |tx| tx.flush());
                        Executed {
                            effect: super::Effect::Reply(Reply::ok()),
                            lsn: ran.lsn,
                        }
                    })),
                    lsn: 0,
                };
            }
        };
        Executed::reply(reply)
    }

    /// KEYS and SCAN: each shard's keys are copied out under its lock, then matched (and,
    /// for a restricted `user`, filtered by its patterns).
    fn walk(&self, server: &Shared, user: Option<&crate::acl::User>) -> Reply {
        let mine = |key: &[u8]| user.is_none_or(|u| u.key_allowed(key));
        let table = &server.table;
        let mut shard_keys = ShardKeys::default();
        match self {
            TableCommand::Keys { pattern } => {
                let glob = Glob::new(pattern);
                let mut keys = Vec::new();
                for i in 0..table.shard_count() {
                    table.copy_keys(i, &mut shard_keys);
                    for (key, _) in shard_keys.iter() {
                        if glob.matches(key) && mine(key) {
                            keys.push(Reply::Bulk(Bytes::copy_from_slice(key)));
                        }
                    }
                }
                Reply::Array(keys)
            }
            TableCommand::Scan {
                cursor,
                pattern,
                count,
                kind,
            } => {
                // The cursor is a shard index: each call returns whole shards until COUNT
                // keys were seen, so a key present for the whole scan is always returned.
                let glob = pattern.as_ref().map(|p| Glob::new(p));
                let mut keys = Vec::new();
                let mut seen = 0;
                let mut shard = *cursor as usize;
                while shard < table.shard_count() && seen < *count {
                    table.copy_keys(shard, &mut shard_keys);
                    seen += shard_keys.len();
                    for (key, type_name) in shard_keys.iter() {
                        let type_ok = kind
                            .as_ref()
                            .is_none_or(|k| k.eq_ignore_ascii_case(type_name.as_bytes()));
                        if type_ok && glob.as_ref().is_none_or(|g| g.matches(key)) && mine(key) {
                            keys.push(Reply::Bulk(Bytes::copy_from_slice(key)));
                        }
                    }
                    shard += 1;
                }
                let next = if shard >= table.shard_count() {
                    0
                } else {
                    shard
                };
                Reply::Array(vec![
                    Reply::bulk_string(next.to_string()),
                    Reply::Array(keys),
                ])
            }
            _ => Reply::Error(RespError::SYNTAX),
        }
    }
}

/// How many keys `user`'s patterns cover (DBSIZE and INFO keyspace of a restricted user):
/// each shard's keys are copied out under its lock, then matched.
pub fn count_keys_of(server: &Shared, user: &crate::acl::User) -> usize {
    let table = &server.table;
    let mut shard_keys = ShardKeys::default();
    let mut count = 0;
    for i in 0..table.shard_count() {
        table.copy_keys(i, &mut shard_keys);
        count += shard_keys
            .iter()
            .filter(|(key, _)| user.key_allowed(key))
            .count();
    }
    count
}
