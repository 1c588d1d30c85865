//! Durability: the append-only log, snapshots and recovery.
//!
//! The lock table emits a [`Record`] for every state change that matters after a restart
//! (see `table::Shard::commit`); [`log`] writes them with group commit; [`recover`] reads the
//! data directory back into records that the table replays through the same `commit` path.

pub mod record;

pub use record::{HoldKind, Record};
