//! The crate's error type: every fallible call returns [`Result`].

use std::fmt;

/// Why a lease ended while its guard still existed (see [`LockGuard::lost`](crate::LockGuard::lost)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LostReason {
    /// The server answered that this owner holds nothing there any more: the lease ran out
    /// on the server, an operator force-released the key (`DEL`, `FLUSHALL`), the semaphore
    /// was deleted, or the server restarted without its data.
    NotHeld,
    /// The lease's time ran out on the client's clock without a successful refresh: the
    /// watchdog was stopped, or no node answered a refresh before the lease's end.
    Expired,
}

impl fmt::Display for LostReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LostReason::NotHeld => "the server no longer has the hold",
            LostReason::Expired => "the lease ran out without a successful refresh",
        })
    }
}

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The lock or permits were not granted: without a wait they were busy, with a wait the
    /// time ran out first.
    #[error("not granted: held by another owner (and the wait, if any, ran out)")]
    NotGranted,
    /// The lease is gone (see [`LostReason`]); the guard no longer protects anything.
    #[error("lease lost: {0}")]
    LeaseLost(LostReason),
    /// An error reply from the server (e.g. `ERR owner already holds this key in another
    /// mode`, `WRONGTYPE ...`), or a connection error that outlasted the retries.
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
    /// An argument this crate rejects before sending (a zero ttl, no keys, zero permits).
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
    /// The server's reply did not have the shape the protocol describes.
    #[error("unexpected reply: {0}")]
    UnexpectedReply(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
