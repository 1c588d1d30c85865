//! Owner ids: the name a hold has on the server.
//!
//! Every guard gets its own owner id, so that two guards of one process (or one task that
//! locks a key twice) are two holders to the server, and so that a retried grant request
//! (after a lost reply) is recognised as the same request: the server answers a repeated
//! grant by the same owner with the same token (`docs/protocol.md`, idempotent grants).
//!
//! The id is `RANDOM:HOST:PID`: 128 random bits from the operating system (`getrandom`) in
//! lower-case hex, the host name (at most 64 bytes of it) and the process id. The random
//! part alone makes it unique; host and pid tell an operator reading `LOCK.INFO` whose
//! hold it is.

/// The longest host name part of an owner id, in bytes (the server allows 256-byte owners).
const MAX_HOST_BYTES: usize = 64;

/// A new owner id, `RANDOM:HOST:PID`: 128 random bits in hex, the host name (at most 64
/// bytes) and the process id (see the crate documentation, "Owners").
///
/// ```
/// let a = baton_client::new_owner_id();
/// let b = baton_client::new_owner_id();
/// assert_ne!(a, b);
/// assert!(a.len() <= 256);
/// ```
pub fn new_owner_id() -> String {
    let mut random = [0u8; 16];
    if getrandom::fill(&mut random).is_err() {
        // No OS randomness (not seen on supported platforms): fall back to a process-local
        // generator seeded from the clock, still unique together with host and pid.
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let mut rng = fastrand::Rng::with_seed(seed as u64 ^ COUNTER.fetch_add(1, Relaxed));
        rng.fill(&mut random);
    }
    let mut id = String::with_capacity(32 + 1 + MAX_HOST_BYTES + 1 + 10);
    for b in random {
        id.push_str(&format!("{b:02x}"));
    }
    id.push(':');
    id.push_str(&host());
    id.push(':');
    id.push_str(&std::process::id().to_string());
    id
}

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Distinguishes fallback seeds taken in the same nanosecond.
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// The host name, cut to [`MAX_HOST_BYTES`] on a character boundary; `unknown` if unset.
fn host() -> String {
    let name = gethostname::gethostname().to_string_lossy().into_owned();
    let name = if name.is_empty() {
        "unknown".to_owned()
    } else {
        name
    };
    let mut end = name.len().min(MAX_HOST_BYTES);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_owned()
}
