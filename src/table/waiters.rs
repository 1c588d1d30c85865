//! Waiters: a blocked request, queued on one key (LOCK, SEM.ACQUIRE) or several (MLOCK).
//!
//! A waiter sits in the FIFO of every key it waits on (an MLOCK also in those of keys its owner
//! already holds, so that it keeps its arrival place if such a hold ends), ordered by a global
//! arrival number (`seq`), which keeps all queues consistent with one order and so rules out
//! deadlock for multi-key waits. The connection that asked keeps the receiving end of a oneshot
//! channel; the table sends the grant (or an error) through it inside the critical section that
//! made the grant. When the send fails the connection is gone and the grant is undone at once.

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::oneshot;

use super::HoldKind;
use crate::error::RespError;
use crate::resp::Reply;

/// What a blocked request finally receives.
#[derive(Debug)]
pub enum WaitResult {
    /// Granted: the reply (a token, or MLOCK's array of tokens) and the log position that
    /// must be durable before the reply is sent.
    Granted {
        /// The reply to send.
        reply: Reply,
        /// Log sequence number of the grant's records (0: none).
        lsn: u64,
        /// The holds the grant created, which [`LockTable::withdraw`] undoes when the
        /// reply can no longer be delivered.
        ///
        /// [`LockTable::withdraw`]: super::LockTable::withdraw
        made: Made,
    },
    /// The wait ended with an error (semaphore deleted, keyspace flushed, capacity shrunk).
    Failed(RespError),
}

/// The holds a grant created, and the lease end it gave them. Only these are the grant's
/// to undo: a hold the owner already had came with an earlier reply, and a hold whose lease
/// changed since the grant (the owner repeated its request on another connection after a
/// lost reply, and got the same token) is known to the owner.
#[derive(Debug, Clone)]
pub enum Made {
    /// No hold: the grant renewed one the owner already had.
    Nothing,
    /// A hold on every key of the waiter, each lease ending at `until`.
    EveryKey {
        /// The lease end the grant set.
        until: std::time::Instant,
    },
    /// Holds on these keys of an MLOCK only (it counted the owner's other keys as granted).
    Keys {
        /// The keys whose hold the grant created.
        keys: Vec<Bytes>,
        /// The lease end the grant set.
        until: std::time::Instant,
    },
}

/// A queued request.
#[derive(Debug)]
pub struct Waiter {
    /// Global arrival number: queue order on every key.
    pub seq: u64,
    /// Who asks.
    pub owner: Bytes,
    /// Mode or permits asked for.
    pub kind: HoldKind,
    /// Lease to give on grant.
    pub ttl_ms: u64,
    /// Every key of the request, in the order the client named them.
    pub keys: Vec<Bytes>,
    /// Whether this is an MLOCK (reply is an array).
    pub multi: bool,
    /// MLOCK only, per key: the token of the owner's exclusive hold when it asked. That hold
    /// counts as granted for as long as it lasts (renewals keep the token); any other hold
    /// of the owner, made while this waits, does not.
    pub own_tokens: Vec<Option<i64>>,
    /// When it joined the queue (the table's clock): the hand-off wait ends at its grant.
    pub queued: std::time::Instant,
    /// Where to send the outcome; None once sent or cancelled.
    sender: Mutex<Option<oneshot::Sender<WaitResult>>>,
}

impl Waiter {
    /// A new waiter and the receiver its connection awaits.
    // Each argument is a field of the waiter; a builder for two call sites would hide that.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        seq: u64,
        owner: Bytes,
        kind: HoldKind,
        ttl_ms: u64,
        keys: Vec<Bytes>,
        multi: bool,
        own_tokens: Vec<Option<i64>>,
        queued: std::time::Instant,
    ) -> (Waiter, oneshot::Receiver<WaitResult>) {
        let (tx, rx) = oneshot::channel();
        let waiter = Waiter {
            seq,
            owner,
            kind,
            ttl_ms,
            keys,
            multi,
            own_tokens,
            queued,
            sender: Mutex::new(Some(tx)),
        };
        (waiter, rx)
    }

    /// Whether the waiter still waits (not granted, failed or cancelled).
    pub fn is_pending(&self) -> bool {
        self.sender.lock().is_some()
    }

    /// Sends the outcome. False when the receiver is gone (the grant must be undone).
    pub(crate) fn deliver(&self, result: WaitResult) -> bool {
        match self.sender.lock().take() {
            Some(tx) => tx.send(result).is_ok(),
            None => false,
        }
    }

    /// Whether `token` is the owner's hold on one of the keys when this MLOCK asked.
    pub(crate) fn owns(&self, token: i64) -> bool {
        self.own_tokens.contains(&Some(token))
    }

    /// Marks the waiter finished without a reply (cancelled); true if it was pending.
    pub(crate) fn close(&self) -> bool {
        self.sender.lock().take().is_some()
    }
}
