//! Per-command counts and latency, taken at the dispatch point (`cmd::execute`): what INFO
//! commandstats shows and /metrics publishes as `baton_commands_total` and
//! `baton_command_duration_seconds`.
//!
//! Counts are striped, as a striped counter is: each worker thread bumps the cells of its
//! own stripe (one of 16, each its own allocation), so the commands of one hot name do not
//! move one cache line between the cores on every call; a reader sums the stripes. One
//! shared atomic per command, bumped by every worker, would move its line on every call.
//! Latency goes to the `metrics` facade's histogram of the command (handles resolved
//! once).
//!
//! Each command is timed with [`Started`], which reads the CPU's time-stamp counter through
//! the `quanta` crate (already in the tree under `metrics`; it calibrates the counter
//! against the OS clock once and falls back to the OS clock where the counter is not
//! invariant). On this VM a `std::time::Instant` read is a vDSO `clock_gettime` that costs
//! several times a counter read, and two of them per command were a visible share of
//! the server's CPU per request.
//!
//! CONFIG RESETSTAT zeroes what INFO shows but not what /metrics publishes: a Prometheus
//! counter only grows (the recorder keeps the highest absolute value it was given), so
//! the reset records a baseline that INFO subtracts ([`CommandStats::counts`]) while
//! /metrics reads the counts since start ([`CommandStats::lifetime_counts`]).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use metrics::Histogram;
use parking_lot::Mutex;

use super::spec::{Spec, COMMANDS};

/// How a command ended, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallResult {
    /// Executed and answered without an error.
    Ok,
    /// Refused before executing: unknown arguments, arity, NOAUTH, `-MISCONF` while the log
    /// cannot write, `-TRYAGAIN` during the restart delay (Redis's rejected_calls).
    Rejected,
    /// Executed and answered with an error (Redis's failed_calls).
    Failed,
    /// Queued for a WAIT: its grant or timeout comes later.
    Blocked,
}

/// One command's cells in one stripe.
#[derive(Debug, Default)]
struct Cell {
    ok: AtomicU64,
    rejected: AtomicU64,
    failed: AtomicU64,
    blocked: AtomicU64,
    usec: AtomicU64,
}

/// One command's totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommandCount {
    /// Executed without an error.
    pub ok: u64,
    /// Refused before executing.
    pub rejected: u64,
    /// Executed with an error.
    pub failed: u64,
    /// Queued for a WAIT.
    pub blocked: u64,
    /// Time spent executing, in µs.
    pub usec: u64,
}

impl CommandCount {
    /// Redis's `calls`: executed, whatever the outcome (not the rejected).
    pub fn calls(&self) -> u64 {
        self.ok + self.failed + self.blocked
    }
}

const STRIPES: usize = 16;

/// Counts and latency of every command since start.
#[derive(Debug)]
pub struct CommandStats {
    /// `STRIPES` separate allocations of one cell per command in `COMMANDS` order.
    stripes: Vec<Box<[Cell]>>,
    /// Requests whose command name is unknown.
    unknown: AtomicU64,
    /// Resolved at a command's first call, so /metrics lists only commands that ran.
    histograms: Vec<OnceLock<Histogram>>,
    /// The counts at the last CONFIG RESETSTAT (per command, then the unknown ones).
    baseline: Mutex<(Vec<CommandCount>, u64)>,
}

impl Default for CommandStats {
    fn default() -> Self {
        // The clock calibrates on its first read: here, not in the first command.
        let _ = Started::now();
        CommandStats {
            stripes: (0..STRIPES)
                .map(|_| COMMANDS.iter().map(|_| Cell::default()).collect())
                .collect(),
            unknown: AtomicU64::new(0),
            histograms: COMMANDS.iter().map(|_| OnceLock::new()).collect(),
            baseline: Mutex::new((vec![CommandCount::default(); COMMANDS.len()], 0)),
        }
    }
}

/// When a command started, for its latency.
#[derive(Debug, Clone, Copy)]
pub struct Started(quanta::Instant);

impl Started {
    /// Now.
    pub fn now() -> Self {
        Started(quanta::Instant::now())
    }

    /// Time since the start.
    pub fn elapsed(self) -> Duration {
        quanta::Instant::now().duration_since(self.0)
    }
}

/// This thread's stripe.
fn stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: usize = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
    }
    STRIPE.try_with(|s| *s).unwrap_or(0)
}

/// The position of `spec` in `COMMANDS` (every spec comes from there).
fn index(spec: &'static Spec) -> Option<usize> {
    let base = COMMANDS.as_ptr() as usize;
    let at = spec as *const Spec as usize;
    let i = at.checked_sub(base)? / std::mem::size_of::<Spec>();
    (i < COMMANDS.len()).then_some(i)
}

impl CommandStats {
    /// Counts one request of `spec` (None: an unknown command) that took `took`.
    pub fn record(&self, spec: Option<&'static Spec>, result: CallResult, took: Duration) {
        let Some(i) = spec.and_then(index) else {
            self.unknown.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let Some(cell) = self.stripes.get(stripe()).and_then(|s| s.get(i)) else {
            return;
        };
        let counter = match result {
            CallResult::Ok => &cell.ok,
            CallResult::Rejected => &cell.rejected,
            CallResult::Failed => &cell.failed,
            CallResult::Blocked => &cell.blocked,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let usec = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        cell.usec.fetch_add(usec, Ordering::Relaxed);
        if result != CallResult::Rejected {
            if let (Some(h), Some(spec)) = (self.histograms.get(i), COMMANDS.get(i)) {
                h.get_or_init(|| {
                    metrics::histogram!(
                        crate::metrics::COMMAND_SECONDS,
                        "command" => spec.name.to_ascii_lowercase()
                    )
                })
                .record(took.as_secs_f64());
            }
        }
    }

    /// Every command's totals since start, in `COMMANDS` order (what /metrics publishes).
    pub fn lifetime_counts(&self) -> Vec<(&'static Spec, CommandCount)> {
        COMMANDS
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                let mut sum = CommandCount::default();
                for cell in self.stripes.iter().filter_map(|s| s.get(i)) {
                    sum.ok += cell.ok.load(Ordering::Relaxed);
                    sum.rejected += cell.rejected.load(Ordering::Relaxed);
                    sum.failed += cell.failed.load(Ordering::Relaxed);
                    sum.blocked += cell.blocked.load(Ordering::Relaxed);
                    sum.usec += cell.usec.load(Ordering::Relaxed);
                }
                (spec, sum)
            })
            .collect()
    }

    /// Requests whose command was unknown, since start.
    pub fn lifetime_unknown(&self) -> u64 {
        self.unknown.load(Ordering::Relaxed)
    }

    /// Every command's totals since the last CONFIG RESETSTAT, in `COMMANDS` order (what
    /// INFO commandstats shows).
    pub fn counts(&self) -> Vec<(&'static Spec, CommandCount)> {
        let baseline = self.baseline.lock();
        let mut counts = self.lifetime_counts();
        for ((_, count), base) in counts.iter_mut().zip(baseline.0.iter()) {
            count.ok = count.ok.saturating_sub(base.ok);
            count.rejected = count.rejected.saturating_sub(base.rejected);
            count.failed = count.failed.saturating_sub(base.failed);
            count.blocked = count.blocked.saturating_sub(base.blocked);
            count.usec = count.usec.saturating_sub(base.usec);
        }
        counts
    }

    /// Requests whose command was unknown, since the last CONFIG RESETSTAT.
    pub fn unknown(&self) -> u64 {
        let baseline = self.baseline.lock().1;
        self.lifetime_unknown().saturating_sub(baseline)
    }

    /// Every request counted since the last CONFIG RESETSTAT (INFO's
    /// total_commands_processed).
    pub fn total(&self) -> u64 {
        let known: u64 = self
            .counts()
            .iter()
            .map(|(_, c)| c.calls() + c.rejected)
            .sum();
        known + self.unknown()
    }

    /// CONFIG RESETSTAT: INFO counts from zero again; /metrics keeps counting.
    pub fn reset(&self) {
        let counts = self.lifetime_counts().into_iter().map(|(_, c)| c).collect();
        let unknown = self.lifetime_unknown();
        *self.baseline.lock() = (counts, unknown);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_sum_every_thread_and_result() {
        let stats = std::sync::Arc::new(CommandStats::default());
        let lock = super::super::spec::lookup(b"LOCK").expect("LOCK");
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let stats = stats.clone();
                std::thread::spawn(move || {
                    for _ in 0..100 {
                        stats.record(Some(lock), CallResult::Ok, Duration::from_micros(2));
                    }
                    stats.record(Some(lock), CallResult::Failed, Duration::ZERO);
                    stats.record(None, CallResult::Rejected, Duration::ZERO);
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        let (_, count) = stats
            .counts()
            .into_iter()
            .find(|(s, _)| s.name == "LOCK")
            .expect("LOCK counted");
        assert_eq!(count.ok, 800);
        assert_eq!(count.failed, 8);
        assert_eq!(count.calls(), 808);
        assert_eq!(count.usec, 1600);
        assert_eq!(stats.unknown(), 8);
        assert_eq!(stats.total(), 816);
        stats.reset();
        assert_eq!(stats.total(), 0);
        assert_eq!(stats.unknown(), 0);
        stats.record(Some(lock), CallResult::Rejected, Duration::ZERO);
        assert_eq!(stats.total(), 1);
        let lifetime: u64 = stats
            .lifetime_counts()
            .iter()
            .map(|(_, c)| c.calls() + c.rejected)
            .sum();
        assert_eq!(lifetime + stats.lifetime_unknown(), 817);
    }
}
