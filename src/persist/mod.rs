//! Durability: the append-only log, snapshots and recovery.
//!
//! The lock table emits a [`Record`] for every state change that matters after a restart
//! (its state-change primitives, `table/shard.rs`) and calls [`Log::append`] under the
//! shard's mutex; the connection awaits [`Log::wait_durable`] before replying. [`log`]
//! writes records with group commit, [`snapshot`] replaces the log by the live state when it
//! grows, [`recover`] reads the data directory back into records that the table replays
//! through the same primitives (`table/replay.rs`). [`record`] is the on-disk encoding;
//! `files` names the files.
//!
//! Start-up: `let (log, recovered) = Log::open(LogConfig::from_config(&cfg)).await?;`,
//! replay `recovered.records` in order, seed the token counter above
//! `recovered.token_high_water()`.

mod files;
pub mod log;
pub mod record;
pub mod recover;
pub mod snapshot;

pub use files::{FORMAT_VERSION, HEADER_LEN};
pub use log::{Log, LogConfig, LogError, LogStats, Lsn};
pub use record::{DecodeError, HoldKind, Record};
pub use recover::{decode_frames, decode_log_bytes, LogDecodeError, Recovered, RecoveryStats};

#[cfg(test)]
mod tests;
