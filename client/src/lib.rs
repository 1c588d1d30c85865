//! Client for baton, a lock server that speaks the Redis protocol: lock guards with
//! fencing tokens and a lease watchdog, read/write locks, multi-key locks, semaphores, and
//! a blocking facade.
//!
//! ```no_run
//! use std::time::Duration;
//! use baton_client::Client;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> baton_client::Result<()> {
//! let client = Client::connect("redis://127.0.0.1:6379").await?;
//!
//! // Wait up to 5 s for the lock; the lease is 10 s and renewed in the background.
//! let guard = client
//!     .lock("invoice:42", Duration::from_secs(10))
//!     .wait(Duration::from_secs(5))
//!     .await?;
//!
//! // Hand the fencing token to every system the critical section writes to, so that
//! // a writer whose lease ended (a long GC pause, a partition) is refused there.
//! let token = guard.token();
//! println!("holding invoice:42 with token {token}");
//!
//! guard.ensure_held()?; // an error once the lease is lost
//! guard.unlock().await?; // or drop the guard: it releases in the background
//! # Ok(())
//! # }
//! ```
//!
//! # Guards and leases
//! Every grant has a lease (its ttl). A [`LockGuard`] renews it every third of the ttl in
//! a background task (the watchdog, as Redisson's), releases the hold when dropped (in a
//! spawned task) or by [`LockGuard::unlock`] (with the result), and reports a lost lease
//! through [`LockGuard::lost`] (a future), [`LockGuard::watch`] (a `watch` channel) and
//! an [`Error::LeaseLost`] from the next [`LockGuard::ensure_held`],
//! [`LockGuard::refresh`] or [`LockGuard::unlock`]. A lease is lost when the server
//! answers a renewal with "not held" (the lease ran out there, an operator deleted the
//! key, the server restarted without its data) or when no renewal succeeded before the
//! lease's end by the client's clock. A lost guard never takes the lock again by itself.
//!
//! # Fencing tokens
//! Each grant returns a token ([`LockGuard::token`]); for one key tokens strictly increase
//! over the server's whole life, also across restarts. A lease can end while its holder
//! still works (a pause longer than the ttl), so a lock alone cannot stop a late write;
//! a store that keeps the largest token it has seen and refuses smaller ones can. See
//! `examples/fencing.rs`.
//!
//! # Owners
//! The server names each hold by an owner id. Every request made by this crate gets a new
//! one, [`new_owner_id`]: `RANDOM:HOST:PID` with 128 random bits in hex, then the host
//! name and process id for operators reading `LOCK.INFO`. A retried request (after a lost
//! reply) reuses its owner, so the server recognises it and returns the same token instead
//! of granting twice. [`Acquire::owner`] sets a chosen id instead.
//!
//! # Connections, retries and clusters
//! The client keeps one multiplexed connection for commands that the server answers at
//! once (it reconnects by itself) and opens a separate connection for each waiting
//! acquire, since the server blocks that connection until the grant. Connection failures
//! and `TRYAGAIN`/`LOADING`/`MASTERDOWN`/`CLUSTERDOWN`/`READONLY` answers (a cluster in
//! failover) are retried with exponential backoff: a grant retried by the same owner gets
//! the same token back. Give the client several nodes of a cluster
//! ([`ClientBuilder::node`]) and it moves to the next one when a connection fails; any
//! node serves every command.
//!
//! # Crates used
//! `redis` carries the protocol and reconnects (its `ConnectionManager`), `tokio` runs the
//! watchdogs, `getrandom` and `gethostname` make owner ids, `fastrand` jitters the
//! backoff, `thiserror` derives the error type.
#![warn(missing_docs)]

pub mod blocking;
mod client;
mod conn;
mod error;
mod guard;
mod hold;
mod info;
mod owner;
mod semaphore;

pub use client::{Acquire, Client, ClientBuilder};
pub use error::{Error, LostReason, Result};
pub use guard::{LeaseState, LockGuard};
pub use info::{LockHolder, LockInfo, LockMode, SemaphoreHolder, SemaphoreInfo};
pub use owner::new_owner_id;
pub use semaphore::Semaphore;

/// The README's examples, compiled as doctests so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
