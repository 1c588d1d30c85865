//! Semaphore commands.
//!
//! ```text
//! SEM.CREATE key capacity
//! SEM.ACQUIRE key owner ttl [PERMITS n] [CAPACITY c] [WAIT ms]
//! SEM.RELEASE key owner
//! SEM.INFO key
//! SEM.DELETE key
//! ```

use bytes::Bytes;

use super::args::Args;
use super::{TxCommand, Wait};
use crate::error::RespError;
use crate::table::{Outcome, SemAcquire, Tx};

/// The commands of this family, as the command table names them: [`SemCommand::parse`]
/// matches every one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SemId {
    /// SEM.CREATE.
    Create,
    /// SEM.ACQUIRE.
    Acquire,
    /// SEM.RELEASE.
    Release,
    /// SEM.INFO.
    Info,
    /// SEM.DELETE.
    Delete,
}

/// A parsed semaphore command.
#[derive(Debug, Clone)]
pub enum SemCommand {
    /// SEM.CREATE.
    Create {
        /// The key.
        key: Bytes,
        /// Capacity ≥ 1.
        capacity: u64,
    },
    /// SEM.ACQUIRE.
    Acquire {
        /// The key.
        key: Bytes,
        /// The owner.
        owner: Bytes,
        /// The request.
        req: SemAcquire,
        /// WAIT.
        wait: Wait,
    },
    /// SEM.RELEASE.
    Release {
        /// The key.
        key: Bytes,
        /// The owner.
        owner: Bytes,
    },
    /// SEM.INFO.
    Info {
        /// The key.
        key: Bytes,
    },
    /// SEM.DELETE.
    Delete {
        /// The key.
        key: Bytes,
    },
}

fn positive(args: &mut Args<'_>, err: RespError) -> Result<u64, RespError> {
    if args.remaining() == 0 {
        return Err(RespError::SYNTAX);
    }
    let n = args.int()?;
    if n < 1 {
        return Err(err);
    }
    Ok(n as u64)
}

impl SemCommand {
    /// Parses the arguments of command `id` (arity already checked).
    ///
    /// # Errors
    /// The first bad argument, in docs/protocol.md's order.
    pub fn parse(id: SemId, args: &mut Args<'_>) -> Result<Self, RespError> {
        let cmd = match id {
            SemId::Create => SemCommand::Create {
                key: args.key()?,
                capacity: positive(args, RespError::INVALID_CAPACITY)?,
            },
            SemId::Acquire => {
                let key = args.key()?;
                let owner = args.owner()?;
                let ttl_ms = args.ttl_ms()?;
                let mut permits = 1;
                let mut create_capacity = None;
                let mut wait = Wait::No;
                while let Some(opt) = args.peek_upper() {
                    args.next();
                    match opt.as_slice() {
                        b"PERMITS" => permits = positive(args, RespError::INVALID_PERMITS)?,
                        b"CAPACITY" => {
                            create_capacity = Some(positive(args, RespError::INVALID_CAPACITY)?)
                        }
                        b"WAIT" => {
                            if args.remaining() == 0 {
                                return Err(RespError::SYNTAX);
                            }
                            wait = args.wait()?;
                        }
                        _ => args.unknown_option(),
                    }
                }
                SemCommand::Acquire {
                    key,
                    owner,
                    req: SemAcquire {
                        permits,
                        create_capacity,
                        ttl_ms,
                        wait: wait.queues(),
                    },
                    wait,
                }
            }
            SemId::Release => SemCommand::Release {
                key: args.key()?,
                owner: args.owner()?,
            },
            SemId::Info => SemCommand::Info { key: args.key()? },
            SemId::Delete => SemCommand::Delete { key: args.key()? },
        };
        args.finish_ref()?;
        Ok(cmd)
    }
}

impl TxCommand for SemCommand {
    fn keys(&self) -> Vec<&[u8]> {
        match self {
            SemCommand::Create { key, .. }
            | SemCommand::Acquire { key, .. }
            | SemCommand::Release { key, .. }
            | SemCommand::Info { key }
            | SemCommand::Delete { key } => vec![key],
        }
    }

    fn wait(&self) -> Wait {
        match self {
            SemCommand::Acquire { wait, .. } => *wait,
            _ => Wait::No,
        }
    }

    fn apply(&self, tx: &mut Tx<'_>) -> Result<Outcome, RespError> {
        match self {
            SemCommand::Create { key, capacity } => {
                tx.sem_create(key, *capacity).map(Outcome::Reply)
            }
            SemCommand::Acquire {
                key, owner, req, ..
            } => tx.sem_acquire(key, owner, req),
            SemCommand::Release { key, owner } => tx.sem_release(key, owner).map(Outcome::Reply),
            SemCommand::Info { key } => tx.sem_info(key).map(Outcome::Reply),
            SemCommand::Delete { key } => tx.sem_delete(key).map(Outcome::Reply),
        }
    }
}
