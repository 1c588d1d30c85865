//! String commands of the compatibility layer.
//!
//! ```text
//! SET key value [NX | XX | IFEQ v | IFNE v] [GET] [EX s | PX ms | EXAT s | PXAT ms | KEEPTTL]
//! GET key
//! DELIFEQ key value
//! DELEX key [IFEQ value | IFNE value]
//! EXPIRE key seconds [NX | XX | GT | LT]     (also PEXPIRE, EXPIREAT, PEXPIREAT)
//! PERSIST key
//! ```

use std::time::Duration;

use bytes::Bytes;

use super::args::{parse_int, Args};
use super::TxCommand;
use crate::error::RespError;
use crate::table::{ExpireCondition, Now, Outcome, SetCondition, SetExpiry, SetOptions, Tx};

/// Expiries take Redis's whole range (`--max-ttl-ms` bounds native leases only): any
/// positive value whose absolute time in ms fits in an i64; past that, Redis's
/// `invalid expire time in '<cmd>' command`.
fn expire_ms(n: i64, seconds: bool, relative: bool, cmd: &str) -> Result<i64, RespError> {
    let ms = if seconds {
        n.checked_mul(1000)
    } else {
        Some(n)
    };
    let base = if relative {
        crate::clock::wall_ms() as i64
    } else {
        0
    };
    ms.filter(|ms| ms.checked_add(base).is_some())
        .ok_or_else(|| invalid_expire(cmd))
}

/// The commands of this family, as the command table names them: [`StrCommand::parse`]
/// matches every one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrId {
    /// SET.
    Set,
    /// GET.
    Get,
    /// DELIFEQ.
    DelIfEq,
    /// DELEX.
    DelEx,
    /// EXPIRE (seconds from now).
    Expire,
    /// PEXPIRE (ms from now).
    PExpire,
    /// EXPIREAT (Unix seconds).
    ExpireAt,
    /// PEXPIREAT (Unix ms).
    PExpireAt,
    /// PERSIST.
    Persist,
}

/// An expiry as the client wrote it; turned into deadlines at apply time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpirySpec {
    /// No expiry option.
    None,
    /// KEEPTTL.
    Keep,
    /// EX / PX: ms from now.
    In(i64),
    /// EXAT / PXAT: Unix ms.
    At(i64),
}

/// A parsed string command.
#[derive(Debug, Clone)]
pub enum StrCommand {
    /// SET.
    Set {
        /// The key.
        key: Bytes,
        /// The value.
        value: Bytes,
        /// NX / XX / IFEQ / IFNE.
        condition: SetCondition,
        /// The expiry.
        expiry: ExpirySpec,
        /// GET.
        get: bool,
    },
    /// GET.
    Get {
        /// The key.
        key: Bytes,
    },
    /// DELIFEQ / DELEX ... IFEQ|IFNE.
    DelIf {
        /// The key.
        key: Bytes,
        /// The value compared.
        value: Bytes,
        /// IFEQ (true) or IFNE (false).
        equal: bool,
    },
    /// DELEX key without a condition: DEL.
    Del {
        /// The key.
        key: Bytes,
    },
    /// EXPIRE / PEXPIRE / EXPIREAT / PEXPIREAT.
    Expire {
        /// The key.
        key: Bytes,
        /// Relative ms or absolute Unix ms.
        when: ExpirySpec,
        /// NX / XX / GT / LT.
        condition: ExpireCondition,
    },
    /// PERSIST.
    Persist {
        /// The key.
        key: Bytes,
    },
}

fn invalid_expire(cmd: &str) -> RespError {
    RespError::new(format!(
        "ERR invalid expire time in '{}' command",
        cmd.to_ascii_lowercase()
    ))
}

/// Turns a client expiry into (monotonic deadline, wall ms) at `now`; None for no expiry.
pub fn deadline_of(spec: ExpirySpec, now: Now) -> Option<(std::time::Instant, u64)> {
    let wall_now = now.wall_ms as i64;
    let (rel_ms, wall) = match spec {
        ExpirySpec::None | ExpirySpec::Keep => return None,
        ExpirySpec::In(ms) => (ms, wall_now.saturating_add(ms)),
        ExpirySpec::At(at) => (at.saturating_sub(wall_now), at),
    };
    let mono = if rel_ms <= 0 {
        now.mono
    } else {
        let far = Duration::from_millis(rel_ms as u64);
        now.mono
            .checked_add(far)
            .unwrap_or_else(|| now.mono + Duration::from_secs(1 << 40))
    };
    Some((mono, wall.max(0) as u64))
}

/// SET's arguments after the name.
fn parse_set(args: &mut Args<'_>) -> Result<StrCommand, RespError> {
    let key = args.key()?;
    let value = args.bytes()?;
    let mut condition = SetCondition::Always;
    let mut expiry = ExpirySpec::None;
    let mut get = false;
    while let Some(opt) = args.peek_upper() {
        args.next();
        let cond_free = condition == SetCondition::Always;
        let exp_free = expiry == ExpirySpec::None;
        match opt.as_slice() {
            b"NX" if cond_free => condition = SetCondition::Nx,
            b"XX" if cond_free => condition = SetCondition::Xx,
            b"IFEQ" if cond_free => condition = SetCondition::IfEq(args.bytes()?),
            b"IFNE" if cond_free => condition = SetCondition::IfNe(args.bytes()?),
            b"GET" => get = true,
            b"KEEPTTL" if exp_free => expiry = ExpirySpec::Keep,
            b"EX" | b"PX" | b"EXAT" | b"PXAT" if exp_free => {
                let n = parse_int(&args.bytes()?)?;
                let at = opt.ends_with(b"AT");
                if n <= 0 {
                    return Err(invalid_expire("set"));
                }
                let ms = expire_ms(n, opt[0] == b'E', !at, "set")?;
                expiry = if at {
                    ExpirySpec::At(ms)
                } else {
                    ExpirySpec::In(ms)
                };
            }
            _ => return Err(RespError::SYNTAX),
        }
    }
    Ok(StrCommand::Set {
        key,
        value,
        condition,
        expiry,
        get,
    })
}

/// The EXPIRE family's arguments after the name; `name` is for the error text.
fn parse_expire(id: StrId, name: &str, args: &mut Args<'_>) -> Result<StrCommand, RespError> {
    let key = args.key()?;
    let n = args.int()?;
    let seconds = matches!(id, StrId::Expire | StrId::ExpireAt);
    let at = matches!(id, StrId::ExpireAt | StrId::PExpireAt);
    // Negative is allowed (the key is deleted), as in Redis.
    let ms = expire_ms(n, seconds, !at, name)?;
    let when = if at {
        ExpirySpec::At(ms)
    } else {
        ExpirySpec::In(ms)
    };
    let mut condition = ExpireCondition::Always;
    while let Some(opt) = args.peek_upper() {
        args.next();
        let new = match opt.as_slice() {
            b"NX" => ExpireCondition::Nx,
            b"XX" => ExpireCondition::Xx,
            b"GT" => ExpireCondition::Gt,
            b"LT" => ExpireCondition::Lt,
            _ => {
                return Err(RespError::new(format!(
                    "ERR Unsupported option {}",
                    crate::error::printable(&opt, 64)
                )))
            }
        };
        if condition != ExpireCondition::Always && condition != new {
            let both_gt_lt = matches!(
                (condition, new),
                (ExpireCondition::Gt, ExpireCondition::Lt)
                    | (ExpireCondition::Lt, ExpireCondition::Gt)
            );
            return Err(RespError::fixed(if both_gt_lt {
                "ERR GT and LT options at the same time are not compatible"
            } else {
                "ERR NX and XX, GT or LT options at the same time are not compatible"
            }));
        }
        condition = new;
    }
    Ok(StrCommand::Expire {
        key,
        when,
        condition,
    })
}

impl StrCommand {
    /// Parses the arguments of command `id`, called `name` (arity already checked).
    ///
    /// # Errors
    /// Redis's texts: syntax error, not an integer, `invalid expire time in '...' command`.
    pub fn parse(id: StrId, name: &str, args: &mut Args<'_>) -> Result<Self, RespError> {
        let cmd = match id {
            StrId::Set => parse_set(args)?,
            StrId::Get => StrCommand::Get { key: args.key()? },
            StrId::DelIfEq => StrCommand::DelIf {
                key: args.key()?,
                value: args.bytes()?,
                equal: true,
            },
            StrId::DelEx => {
                let key = args.key()?;
                match args.peek_upper().as_deref() {
                    None => StrCommand::Del { key },
                    Some(b"IFEQ") | Some(b"IFNE") => {
                        let equal = args.peek_upper().as_deref() == Some(b"IFEQ");
                        args.next();
                        StrCommand::DelIf {
                            key,
                            value: args.bytes()?,
                            equal,
                        }
                    }
                    Some(_) => return Err(RespError::SYNTAX),
                }
            }
            StrId::Expire | StrId::PExpire | StrId::ExpireAt | StrId::PExpireAt => {
                parse_expire(id, name, args)?
            }
            StrId::Persist => StrCommand::Persist { key: args.key()? },
        };
        args.finish_ref()?;
        Ok(cmd)
    }
}

impl TxCommand for StrCommand {
    fn keys(&self) -> Vec<&[u8]> {
        match self {
            StrCommand::Set { key, .. }
            | StrCommand::Get { key }
            | StrCommand::DelIf { key, .. }
            | StrCommand::Del { key }
            | StrCommand::Expire { key, .. }
            | StrCommand::Persist { key } => vec![key],
        }
    }

    fn apply(&self, tx: &mut Tx<'_>) -> Result<Outcome, RespError> {
        let now = tx.now();
        let reply = match self {
            StrCommand::Set {
                key,
                value,
                condition,
                expiry,
                get,
            } => {
                let expiry = match expiry {
                    ExpirySpec::None => SetExpiry::Never,
                    ExpirySpec::Keep => SetExpiry::Keep,
                    spec => match deadline_of(*spec, now) {
                        Some((mono, wall)) => SetExpiry::At(mono, wall),
                        None => SetExpiry::Never,
                    },
                };
                let opts = SetOptions {
                    condition: condition.clone(),
                    expiry,
                    get: *get,
                };
                tx.set(key, value.clone(), &opts)?
            }
            StrCommand::Get { key } => tx.get(key)?,
            StrCommand::DelIf { key, value, equal } => tx.del_if(key, value, *equal)?,
            StrCommand::Del { key } => crate::resp::Reply::Int(i64::from(tx.del(key)?)),
            StrCommand::Expire {
                key,
                when,
                condition,
            } => match deadline_of(*when, now) {
                Some(deadline) => tx.expire_at(key, deadline, *condition)?,
                None => crate::resp::Reply::Int(0),
            },
            StrCommand::Persist { key } => tx.persist(key)?,
        };
        Ok(Outcome::Reply(reply))
    }
}
