//! baton: a fair, fenced, durable lock server that speaks the Redis protocol.
//!
//! Data flows one way:
//!
//! ```text
//! server::conn ─► resp::decode ─► cmd::parse ─► cmd::apply ─► table (shards, waiters,
//!   (socket)        (frames)        (typed)      (per family)   wheel, tokens)
//!        ▲                                                          │
//!        └──────────── resp::reply ◄──── Reply / blocked wait ◄─────┘
//! ```
//!
//! Imports only point down that chain: `table` knows nothing above it and reads no clock
//! (every operation takes `now`). `persist` consumes the records the table emits through its
//! one mutation path; `lua` sits above `cmd` and calls into it.
#![warn(missing_docs, unreachable_pub)]

pub mod clock;
pub mod cluster;
pub mod cmd;
pub mod config;
pub mod error;
pub mod lua;
pub mod metrics;
pub mod persist;
pub mod resp;
pub mod settings;
pub mod table;
pub mod wheel;

/// baton's version, as HELLO and INFO report it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub mod server;
