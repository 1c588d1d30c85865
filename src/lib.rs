//! baton: a fair, fenced, durable lock server that speaks the Redis protocol.
//!
//! A request flows one way:
//!
//! ```text
//! server::conn ─► resp::decode ─► cmd::parse ─► cmd::apply ─► table (shards, waiters,
//!   (socket)        (frames)        (typed)      (per family)   wheel, tokens)
//!        ▲                                                          │
//!        └──────────── resp::reply ◄──── Reply / blocked wait ◄─────┘
//! ```
//!
//! What each module imports from the crate (`error`, `clock`, `metrics` and `wheel` import
//! nothing; `error`, used by most, is left out):
//!
//! ```text
//! server   ─► cmd, cluster, table, persist, resp, config, clock, metrics
//! cluster  ─► cmd, server, table, persist, resp, config      (Raft: runs commands
//!                                                             through cmd, serves through
//!                                                             server::conn)
//! cmd      ─► table, lua, persist, resp, cluster, server::budget, config, settings,
//!             clock, metrics
//! lua      ─► resp                     (knows no command: cmd hands it a `call` closure)
//! table    ─► persist (HoldKind, Record), wheel, resp (Reply), metrics
//! persist  ─► config, metrics
//! resp     ─► config (DecodeLimits)
//! config  ◄─► settings
//! ```
//!
//! `table` knows nothing of `cmd` or above and reads no clock (every operation takes
//! `now`); `persist` consumes the records the table emits through its one mutation path.
//! `lua` sits below `cmd`: `cmd::script` parses EVAL and runs each `redis.call` itself.
//! Known cycles, each through one narrow item: `cmd` ↔ `server` (the memory budget),
//! `cmd` ↔ `cluster` and `server` ↔ `cluster` (cluster mode wraps apply and the
//! connection loop), `config` ↔ `settings` (the effective settings CONFIG GET shows).
#![warn(missing_docs, unreachable_pub)]

pub mod acl;
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
