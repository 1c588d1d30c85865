//! Lock commands: LOCK, WLOCK, RLOCK, REFRESH, UNLOCK, LOCK.INFO, MLOCK, MUNLOCK.
//!
//! ```text
//! LOCK key owner ttl [WAIT ms]
//! WLOCK key owner ttl [WAIT ms] [SHARED]
//! RLOCK key owner ttl [WAIT ms]
//! REFRESH key owner ttl
//! UNLOCK key owner
//! LOCK.INFO key
//! MLOCK numkeys key [key ...] owner ttl [WAIT ms]
//! MUNLOCK numkeys key [key ...] owner
//! ```

use bytes::Bytes;

use super::args::Args;
use super::{no_duplicates, TxCommand, Wait};
use crate::error::RespError;
use crate::table::HoldKind;
use crate::table::{Outcome, Tx};

/// The commands of this family, as the command table names them: [`LockCommand::parse`]
/// matches every one, so a command added here without its parser does not compile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockId {
    /// LOCK.
    Lock,
    /// WLOCK.
    WLock,
    /// RLOCK.
    RLock,
    /// REFRESH.
    Refresh,
    /// UNLOCK.
    Unlock,
    /// LOCK.INFO.
    Info,
    /// MLOCK.
    MLock,
    /// MUNLOCK.
    MUnlock,
}

/// A single-key grant request (LOCK, WLOCK, RLOCK).
#[derive(Debug, Clone)]
pub struct Acquire {
    /// The key.
    pub key: Bytes,
    /// The owner.
    pub owner: Bytes,
    /// Exclusive, shared-write or read.
    pub kind: HoldKind,
    /// Lease in ms.
    pub ttl_ms: u64,
    /// WAIT.
    pub wait: Wait,
}

/// MLOCK's request.
#[derive(Debug, Clone)]
pub struct MLock {
    /// The keys, distinct, in the client's order.
    pub keys: Vec<Bytes>,
    /// The owner.
    pub owner: Bytes,
    /// Lease in ms, for every key.
    pub ttl_ms: u64,
    /// WAIT.
    pub wait: Wait,
}

/// A parsed lock command.
#[derive(Debug, Clone)]
pub enum LockCommand {
    /// LOCK / WLOCK / RLOCK.
    Acquire(Acquire),
    /// REFRESH key owner ttl.
    Refresh {
        /// The key.
        key: Bytes,
        /// The owner.
        owner: Bytes,
        /// New lease in ms.
        ttl_ms: u64,
    },
    /// UNLOCK key owner.
    Unlock {
        /// The key.
        key: Bytes,
        /// The owner.
        owner: Bytes,
    },
    /// LOCK.INFO key.
    Info {
        /// The key.
        key: Bytes,
    },
    /// MLOCK.
    MLock(MLock),
    /// MUNLOCK numkeys key... owner.
    MUnlock {
        /// The keys.
        keys: Vec<Bytes>,
        /// The owner.
        owner: Bytes,
    },
}

/// Parses `[WAIT ms]` (and `[SHARED]` when `shared` is given) up to the end.
fn wait_options(args: &mut Args<'_>, mut shared: Option<&mut bool>) -> Result<Wait, RespError> {
    let mut wait = Wait::No;
    while let Some(opt) = args.peek_upper() {
        args.next();
        match (opt.as_slice(), shared.as_deref_mut()) {
            (b"WAIT", _) => {
                if args.remaining() == 0 {
                    return Err(RespError::SYNTAX);
                }
                wait = args.wait()?;
            }
            (b"SHARED", Some(flag)) => *flag = true,
            _ => args.unknown_option(),
        }
    }
    Ok(wait)
}

/// Parses `numkeys` and that many keys, leaving `after` arguments for the rest.
///
/// # Errors
/// Not an integer; `invalid numkeys` below 1 or above the keys given; `invalid key`.
pub fn numkeys_and_keys(args: &mut Args<'_>, after: usize) -> Result<Vec<Bytes>, RespError> {
    let n = args.int()?;
    if n < 1 || n as u64 > args.remaining().saturating_sub(after) as u64 {
        return Err(RespError::INVALID_NUMKEYS);
    }
    (0..n).map(|_| args.key()).collect()
}

impl LockCommand {
    /// Parses the arguments of command `id` (arity already checked).
    ///
    /// # Errors
    /// The first bad argument, in docs/protocol.md's order.
    pub fn parse(id: LockId, args: &mut Args<'_>) -> Result<Self, RespError> {
        let cmd = match id {
            LockId::Lock | LockId::RLock | LockId::WLock => {
                let key = args.key()?;
                let owner = args.owner()?;
                let ttl_ms = args.ttl_ms()?;
                let mut shared = false;
                let wait = if id == LockId::WLock {
                    wait_options(args, Some(&mut shared))?
                } else {
                    wait_options(args, None)?
                };
                let kind = match (id, shared) {
                    (LockId::RLock, _) => HoldKind::Read,
                    (LockId::WLock, true) => HoldKind::SharedWrite,
                    _ => HoldKind::Exclusive,
                };
                LockCommand::Acquire(Acquire {
                    key,
                    owner,
                    kind,
                    ttl_ms,
                    wait,
                })
            }
            LockId::Refresh => LockCommand::Refresh {
                key: args.key()?,
                owner: args.owner()?,
                ttl_ms: args.ttl_ms()?,
            },
            LockId::Unlock => LockCommand::Unlock {
                key: args.key()?,
                owner: args.owner()?,
            },
            LockId::Info => LockCommand::Info { key: args.key()? },
            LockId::MLock => {
                let keys = numkeys_and_keys(args, 2)?;
                let owner = args.owner()?;
                let ttl_ms = args.ttl_ms()?;
                let wait = wait_options(args, None)?;
                args.finish_ref()?;
                no_duplicates(&keys, RespError::fixed("ERR duplicate key in MLOCK"))?;
                return Ok(LockCommand::MLock(MLock {
                    keys,
                    owner,
                    ttl_ms,
                    wait,
                }));
            }
            LockId::MUnlock => {
                let keys = numkeys_and_keys(args, 1)?;
                let owner = args.owner()?;
                args.finish_ref()?;
                no_duplicates(&keys, RespError::fixed("ERR duplicate key in MUNLOCK"))?;
                return Ok(LockCommand::MUnlock { keys, owner });
            }
        };
        args.finish_ref()?;
        Ok(cmd)
    }
}

impl TxCommand for LockCommand {
    fn keys(&self) -> Vec<&[u8]> {
        match self {
            LockCommand::Acquire(a) => vec![&a.key],
            LockCommand::Refresh { key, .. }
            | LockCommand::Unlock { key, .. }
            | LockCommand::Info { key } => vec![key],
            LockCommand::MLock(m) => m.keys.iter().map(|k| k.as_ref()).collect(),
            LockCommand::MUnlock { keys, .. } => keys.iter().map(|k| k.as_ref()).collect(),
        }
    }

    fn wait(&self) -> Wait {
        match self {
            LockCommand::Acquire(a) => a.wait,
            LockCommand::MLock(m) => m.wait,
            _ => Wait::No,
        }
    }

    fn apply(&self, tx: &mut Tx<'_>) -> Result<Outcome, RespError> {
        match self {
            LockCommand::Acquire(a) => {
                tx.lock_acquire(&a.key, &a.owner, a.kind, a.ttl_ms, a.wait.queues())
            }
            LockCommand::Refresh { key, owner, ttl_ms } => {
                tx.refresh(key, owner, *ttl_ms).map(Outcome::Reply)
            }
            LockCommand::Unlock { key, owner } => tx.unlock(key, owner).map(Outcome::Reply),
            LockCommand::Info { key } => tx.lock_info(key).map(Outcome::Reply),
            LockCommand::MLock(m) => tx.mlock(&m.keys, &m.owner, m.ttl_ms, m.wait.queues()),
            LockCommand::MUnlock { keys, owner } => tx.munlock(keys, owner).map(Outcome::Reply),
        }
    }
}
