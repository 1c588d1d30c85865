//! The wall clock: the one function that reads `SystemTime`, for the command layer, the
//! server, the log and the metrics (fencing-token floors, expiry in Unix time, TIME, ages,
//! the last sync and snapshot times in INFO persistence).
//! Monotonic time (`Instant`) is read where a deadline is set and handed to the table as
//! `now`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Time since the Unix epoch; zero when the system clock is set before it.
pub fn since_epoch() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// Wall-clock ms since the Unix epoch.
pub fn wall_ms() -> u64 {
    u64::try_from(since_epoch().as_millis()).unwrap_or(u64::MAX)
}
