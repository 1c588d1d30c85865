//! Metrics: every name (prefixed `baton_`) with its help text, the Prometheus recorder, and
//! the few handles recorded on hot paths.
//!
//! Two kinds of sources, one exposition:
//! - **Counts that INFO also shows** (commands by name and result, grants, expiries,
//!   refreshes, connections, ...) live as plain atomics in the state that owns them (the
//!   server state, each table shard, the log) and are published at scrape time with
//!   `counter!(..).absolute(n)` / `gauge!(..).set(x)` (see `server::http`). INFO and
//!   /metrics therefore read the same numbers, and the hot paths pay no registry lookup.
//! - **Distributions** (command latency, hand-off wait, fsync latency, batch size) are
//!   recorded through the `metrics` facade where they happen, into handles cached here.
//!
//! Exposition is `metrics-exporter-prometheus` (the facade's maintained Prometheus recorder:
//! text format, help texts, histogram buckets), installed by [`install`] without its own
//! HTTP listener; `server::http` serves [`PrometheusHandle::render`]. Histogram samples
//! accumulate until drained, so [`upkeep`] drains them every few seconds.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{Histogram, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Commands executed, by `command` (lower-case name, `unknown` for unknown names) and
/// `result` (`ok`, `error`, `blocked`: queued for a WAIT) (counter).
pub const COMMANDS: &str = "baton_commands_total";
/// Time to execute a command at the dispatch point, by `command`; a blocked request's wait
/// and the wait for durability are not included (histogram, seconds).
pub const COMMAND_SECONDS: &str = "baton_command_duration_seconds";
/// Locks and permits granted, by `kind` (`exclusive`, `shared_write`, `read`, `permits`)
/// (counter).
pub const GRANTS: &str = "baton_grants_total";
/// Leases that ran out before release (counter).
pub const LEASES_EXPIRED: &str = "baton_leases_expired_total";
/// Leases renewed (REFRESH, idempotent re-grants) (counter).
pub const REFRESHES: &str = "baton_refreshes_total";
/// Time a queued request waited from joining the queue to its grant (histogram, seconds).
pub const HANDOFF_SECONDS: &str = "baton_handoff_wait_seconds";
/// Holds now, by `kind` (`exclusive`, `shared_write`, `read`, `permits`: permits held)
/// (gauge).
pub const HELD: &str = "baton_held";
/// Keys now, by `type` (`lock`, `semaphore`, `string`) (gauge).
pub const KEYS: &str = "baton_keys";
/// Requests queued now (gauge).
pub const WAITERS: &str = "baton_waiters";
/// Records appended to the log (counter).
pub const LOG_APPENDS: &str = "baton_log_appends_total";
/// Records per batch the log writer wrote at once (histogram).
pub const LOG_BATCH_RECORDS: &str = "baton_log_batch_records";
/// Time of one fdatasync of the log (histogram, seconds).
pub const LOG_FSYNC_SECONDS: &str = "baton_log_fsync_duration_seconds";
/// Seconds since the last snapshot was written (gauge; absent before the first).
pub const SNAPSHOT_AGE: &str = "baton_snapshot_age_seconds";
/// Client connections accepted (counter).
pub const CONNECTIONS: &str = "baton_connections_total";
/// Client connections refused at `--max-clients` (counter).
pub const CONNECTIONS_REJECTED: &str = "baton_connections_rejected_total";
/// AUTH and `HELLO ... AUTH` answered WRONGPASS (counter; INFO's acl_access_denied_auth).
pub const AUTH_FAILURES: &str = "baton_auth_failures_total";
/// Commands refused by the ACL (counter; `reason` = `command` or `key`; INFO's
/// acl_access_denied_cmd and acl_access_denied_key).
pub const ACL_DENIED: &str = "baton_acl_denied_total";
/// Client connections open now (gauge).
pub const CONNECTED: &str = "baton_connected_clients";
/// Resident memory of the process (gauge, bytes).
pub const RESIDENT_MEMORY: &str = "baton_resident_memory_bytes";
/// 1 once recovery is done and commands are served (in cluster mode: a leader is known and,
/// on the leader, it serves), else 0 (gauge): what /ready answers.
pub const READY: &str = "baton_ready";
/// Cluster mode: this node's role (gauge, 1 on the series whose `role` label it has:
/// `leader`, `follower`, `candidate`). Set at scrape time through [`cluster`].
pub const CLUSTER_ROLE: &str = "baton_cluster_role";
/// Cluster mode: the current term (gauge).
pub const CLUSTER_TERM: &str = "baton_cluster_term";
/// Cluster mode: log entries known committed but not yet applied to this node's table
/// (INFO replication's `commit_index - applied_index`) (gauge).
pub const CLUSTER_COMMIT_LAG: &str = "baton_cluster_commit_lag";

/// Upper bounds of the latency histograms' buckets, in seconds (50 µs to 10 s).
const SECONDS_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 10.0,
];
/// Upper bounds of the batch-size histogram's buckets, in records.
const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0, 4096.0,
];

/// How often [`upkeep`] drains the histograms' samples.
pub const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Installs the Prometheus recorder as the process's `metrics` recorder (once; later calls
/// return the same handle) and registers every help text.
///
/// # Errors
/// A text when another recorder is installed already.
pub fn install() -> Result<PrometheusHandle, String> {
    static HANDLE: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full(LOG_BATCH_RECORDS.into()), BATCH_BUCKETS)
                })
                .map_err(|e| e.to_string())?
                .install_recorder()
                .map_err(|e| e.to_string())?;
            describe();
            Ok(handle)
        })
        .clone()
}

/// Drains the histograms' samples into their buckets every [`UPKEEP_EVERY`], forever.
pub async fn upkeep(handle: PrometheusHandle) {
    loop {
        tokio::time::sleep(UPKEEP_EVERY).await;
        handle.run_upkeep();
    }
}

/// Registers the help text of every metric with the installed recorder.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        COMMANDS,
        "Commands executed, by command and result (ok, error, blocked: queued for a WAIT)"
    );
    describe_histogram!(
        COMMAND_SECONDS,
        Unit::Seconds,
        "Time to execute a command at dispatch, by command (without WAIT and fsync waits)"
    );
    describe_counter!(GRANTS, "Locks and permits granted, by kind");
    describe_counter!(LEASES_EXPIRED, "Leases that ran out before release");
    describe_counter!(REFRESHES, "Leases renewed");
    describe_histogram!(
        HANDOFF_SECONDS,
        Unit::Seconds,
        "Time a queued request waited from joining the queue to its grant"
    );
    describe_gauge!(
        HELD,
        "Holds now, by kind (exclusive, shared_write, read; permits: permits held)"
    );
    describe_gauge!(KEYS, "Keys now, by type");
    describe_gauge!(WAITERS, "Requests queued now");
    describe_counter!(LOG_APPENDS, "Records appended to the log");
    describe_histogram!(LOG_BATCH_RECORDS, "Records the log writer wrote per batch");
    describe_histogram!(
        LOG_FSYNC_SECONDS,
        Unit::Seconds,
        "Time of one fdatasync of the log"
    );
    describe_gauge!(
        SNAPSHOT_AGE,
        Unit::Seconds,
        "Seconds since the last snapshot was written"
    );
    describe_counter!(CONNECTIONS, "Client connections accepted");
    describe_counter!(
        CONNECTIONS_REJECTED,
        "Client connections refused at max-clients"
    );
    describe_counter!(
        AUTH_FAILURES,
        "AUTH and HELLO AUTH attempts answered WRONGPASS"
    );
    describe_counter!(
        ACL_DENIED,
        "Commands refused by the ACL, by reason (command rule or key pattern)"
    );
    describe_gauge!(CONNECTED, "Client connections open now");
    describe_gauge!(
        RESIDENT_MEMORY,
        Unit::Bytes,
        "Resident memory of the process"
    );
    describe_gauge!(
        READY,
        "1 when /ready answers 200 (recovered; in cluster mode a leader is known), else 0"
    );
    describe_gauge!(
        CLUSTER_ROLE,
        "Cluster mode: 1 on the series of this node's role"
    );
    describe_gauge!(CLUSTER_TERM, "Cluster mode: the current term");
    describe_gauge!(
        CLUSTER_COMMIT_LAG,
        "Cluster mode: log entries committed but not yet applied here"
    );
}

/// Publishes cluster mode's `role` (`leader`, `follower`, `candidate`), `term` and commit
/// lag (called at scrape time with INFO replication's values).
pub fn cluster(role: &'static str, term: u64, commit_lag: u64) {
    for r in ["leader", "follower", "candidate", "removed"] {
        metrics::gauge!(CLUSTER_ROLE, "role" => r).set(if r == role { 1.0 } else { 0.0 });
    }
    metrics::gauge!(CLUSTER_TERM).set(term as f64);
    metrics::gauge!(CLUSTER_COMMIT_LAG).set(commit_lag as f64);
}

/// Handles of the distributions recorded on hot paths, resolved once against the recorder
/// installed at that time (no-op handles when none is).
struct Hot {
    handoff: Histogram,
    fsync: Histogram,
    batch: Histogram,
}

fn hot() -> &'static Hot {
    static HOT: OnceLock<Hot> = OnceLock::new();
    HOT.get_or_init(|| Hot {
        handoff: metrics::histogram!(HANDOFF_SECONDS),
        fsync: metrics::histogram!(LOG_FSYNC_SECONDS),
        batch: metrics::histogram!(LOG_BATCH_RECORDS),
    })
}

/// Records how long a granted waiter was queued.
pub fn handoff_wait(waited: Duration) {
    hot().handoff.record(waited.as_secs_f64());
}

/// Records one fdatasync of the log.
pub fn log_fsync(took: Duration) {
    hot().fsync.record(took.as_secs_f64());
}

/// Records one batch of `records` written by the log writer.
pub fn log_batch(records: u64) {
    if records > 0 {
        metrics::counter!(LOG_APPENDS).increment(records);
        hot().batch.record(records as f64);
    }
}

/// Resident memory of this process in bytes: `/proc/self/statm`'s resident pages times
/// the real page size (0 where there is no /proc).
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * page_size())
}

/// The system's page size: from the ELF auxiliary vector via `rustix` (4096 on x86-64, but
/// 16 KiB or 64 KiB on some arm64 kernels).
fn page_size() -> u64 {
    rustix::param::page_size() as u64
}
