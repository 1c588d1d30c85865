//! The append-only log: [`Log::append`] buffers, one writer thread writes with group commit.
//!
//! ```text
//! table shard (mutex held) ─ append(&Record) ─► Pending { buf, last_lsn } ──┐ (no I/O)
//! connection ─ wait_durable(lsn).await ◄─ watch<Progress> ◄─ writer thread ◄┘
//!                                           one write + one fdatasync per batch
//! ```
//!
//! Owns the pending buffer, the writer thread, durability progress and the counters of
//! `INFO persistence`. The writer is a dedicated OS thread rather than a tokio task:
//! `write` and `fdatasync` block, and a long-lived blocking task would stall a runtime
//! worker (on a 2-core machine, half the server) or keep the runtime from shutting down.
//!
//! Policies ([`AppendFsync`]): `always` publishes an LSN only after the fdatasync covering
//! it, so a reply sent after [`Log::wait_durable`] is on disk; `everysec` and `no` return
//! from `wait_durable` at once, the writer still writes every batch at once, `everysec`
//! syncs at most a second after a write, `no` only at snapshots and shutdown.
//!
//! Group commit: the writer takes the whole buffer each time (one `write`, one
//! `fdatasync`). After a synced batch of several records it pauses for 1/8 of the sync
//! time (at most 0.5 ms) so the waiters it just woke can append again: without that,
//! batches alternate big/small and, with many appenders on a slow-fdatasync disk, about
//! half the appends per second get through.
//!
//! Failures: a failed write or fdatasync is never retried under `always` (the server stops,
//! see `server::serve`: what was written but not synced cannot be trusted). Under
//! `everysec` and `no` the writer cuts the file back to its last complete write, keeps the
//! bytes, and retries every second, as Redis does with its AOF; meanwhile
//! [`Log::failure`] is set (the server refuses writes with `-MISCONF`) and
//! [`Log::wait_durable`] fails for every record not written yet.
//!
//! Fault injection for tests: the environment variable `BATON_TEST_FAULT`, read once at
//! [`Log::open`], makes the writer fail on purpose (see [`Fault`]); unset, nothing changes.
//!
//! To add a request for the writer (like rotation or a sync barrier): add a queue to
//! `Pending`, wake the writer when it is pushed, serve it in `Writer::serve`, and answer
//! it with an error when the writer has stopped.

use std::fs::File;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use tokio::sync::{oneshot, watch};

use super::files::{self, DirLock, HEADER_LEN};
use super::record::Record;
use super::recover::{self, Recovered};
use crate::config::{AppendFsync, Config};
use crate::error::StartupError;

/// Log sequence number: the position of a record among those appended since [`Log::open`]
/// (1 for the first). Not stored on disk.
pub type Lsn = u64;

/// Failures the writer injects on purpose, for tests that show what a failing disk does.
///
/// Parsed from `BATON_TEST_FAULT`: `fsync-fail-after:N` (every fdatasync of the log after
/// the first N fails with EIO) and `write-fail-after:N` (every write after the first N
/// fails with ENOSPC); several are separated by commas. `heal-after-ms:M` makes the
/// injected failures stop M ms after the first one (a disk that got space back).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fault {
    /// Syncs that succeed before every later one fails.
    pub fsync_fail_after: Option<u64>,
    /// Writes that succeed before every later one fails.
    pub write_fail_after: Option<u64>,
    /// Injected failures stop this long after the first.
    pub heal_after_ms: Option<u64>,
}

impl Fault {
    /// The variable tests set.
    pub const ENV: &'static str = "BATON_TEST_FAULT";

    /// The faults of `BATON_TEST_FAULT` (none when it is unset or says nothing known).
    pub fn from_env() -> Fault {
        std::env::var(Self::ENV)
            .map(|spec| Fault::parse(&spec))
            .unwrap_or_default()
    }

    /// Parses `name:N[,name:N...]`; unknown parts are ignored.
    pub fn parse(spec: &str) -> Fault {
        let mut fault = Fault::default();
        for part in spec.split(',') {
            let Some((name, n)) = part.trim().split_once(':') else {
                continue;
            };
            let Ok(n) = n.trim().parse::<u64>() else {
                continue;
            };
            match name.trim() {
                "fsync-fail-after" => fault.fsync_fail_after = Some(n),
                "write-fail-after" => fault.write_fail_after = Some(n),
                "heal-after-ms" => fault.heal_after_ms = Some(n),
                _ => {}
            }
        }
        fault
    }
}

/// Where and how the log is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// The data directory (created if missing).
    pub dir: PathBuf,
    /// When the log is flushed to disk.
    pub fsync: AppendFsync,
    /// Log size from which [`Log::wants_snapshot`] answers true.
    pub snapshot_after_bytes: u64,
    /// Start even if a file is damaged in the middle, dropping what follows the damage.
    pub repair: bool,
    /// Failures to inject (tests only; none by default).
    pub fault: Fault,
}

impl LogConfig {
    /// Default for [`LogConfig::snapshot_after_bytes`]: 64 MiB.
    pub const DEFAULT_SNAPSHOT_AFTER_BYTES: u64 = 64 << 20;

    /// A config for `dir` with the given policy, no repair and the default snapshot size.
    pub fn new(dir: impl Into<PathBuf>, fsync: AppendFsync) -> Self {
        LogConfig {
            dir: dir.into(),
            fsync,
            snapshot_after_bytes: Self::DEFAULT_SNAPSHOT_AFTER_BYTES,
            repair: false,
            fault: Fault::default(),
        }
    }

    /// The log settings of the server's configuration (`--dir`, `--appendfsync`, `--repair`)
    /// and the faults of `BATON_TEST_FAULT`.
    pub fn from_config(config: &Config) -> Self {
        LogConfig {
            repair: config.repair,
            fault: Fault::from_env(),
            ..LogConfig::new(config.dir.clone(), config.appendfsync)
        }
    }
}

/// Why a record will never become durable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    /// A write or sync failed; the log accepts no more data (the server should stop).
    #[error("append-only log failed: {0}")]
    Failed(Arc<str>),
    /// The log was shut down before the record was written.
    #[error("append-only log is shut down")]
    Closed,
}

/// Counters for `INFO persistence`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogStats {
    /// Bytes in the current log file (written, header included).
    pub log_bytes: u64,
    /// Generation of the current log file.
    pub generation: u64,
    /// Last LSN handed out by [`Log::append`].
    pub appended_lsn: Lsn,
    /// Last LSN written (and, with `always`, synced).
    pub durable_lsn: Lsn,
    /// Batches written (one `write` each).
    pub writes: u64,
    /// fdatasync calls on log files.
    pub syncs: u64,
    /// Time of the last log sync, ms since the Unix epoch (0: none yet).
    pub last_sync_unix_ms: u64,
    /// Time of the last completed snapshot, ms since the Unix epoch (0: none yet).
    pub last_snapshot_unix_ms: u64,
    /// Snapshots completed since start.
    pub snapshots: u64,
    /// Records replayed at start.
    pub records_replayed: u64,
    /// The fsync policy.
    pub fsync: AppendFsync,
    /// The error that stopped the log, if any.
    pub failed: Option<String>,
}

/// The durable log: cheap [`append`](Log::append), group-committed writes.
pub struct Log {
    pub(super) shared: Arc<Shared>,
    progress: watch::Receiver<Progress>,
    writer: Mutex<Option<JoinHandle<()>>>,
    pub(super) snapshot_lock: tokio::sync::Mutex<()>,
    pub(super) snapshot_running: AtomicBool,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log")
            .field("dir", &self.shared.cfg.dir)
            .field("stats", &self.stats())
            .finish()
    }
}

/// What the writer publishes after each batch.
#[derive(Debug, Clone, Default)]
struct Progress {
    /// Every record up to this LSN is written (and synced under `always`).
    lsn: Lsn,
    /// Set once a write failed; nothing after `lsn` will be written.
    failed: Option<Arc<str>>,
    /// Set when the writer has exited.
    closed: bool,
}

/// State shared by the log handle and its writer thread.
pub(super) struct Shared {
    pub(super) cfg: LogConfig,
    pub(super) pending: Mutex<Pending>,
    /// Wakes the writer; waited on only while `pending` has nothing to do.
    pub(super) wake: Condvar,
    progress: watch::Sender<Progress>,
    appended: AtomicU64,
    log_bytes: AtomicU64,
    generation: AtomicU64,
    writes: AtomicU64,
    syncs: AtomicU64,
    last_sync_ms: AtomicU64,
    pub(super) last_snapshot_ms: AtomicU64,
    pub(super) snapshots: AtomicU64,
    records_replayed: u64,
}

/// Work queued for the writer, behind the short append mutex.
pub(super) struct Pending {
    /// Framed records not yet taken by the writer.
    buf: Vec<u8>,
    /// LSN of the last record in `buf` (or written before).
    last_lsn: Lsn,
    /// Largest token of any record appended or recovered (for snapshots).
    pub(super) max_token: i64,
    /// Generation that records appended now go into.
    pub(super) generation: u64,
    /// Switch to a new log file at these points of `buf`.
    pub(super) rotations: Vec<Rotation>,
    /// Sync everything in `buf` and before, whatever the policy, then answer.
    pub(super) sync_requests: Vec<oneshot::Sender<Result<(), LogError>>>,
    /// Set by shutdown or drop: write what is queued, sync and exit.
    pub(super) stop: bool,
}

/// A request to continue in a new log file from `offset` of the pending buffer on.
pub(super) struct Rotation {
    pub(super) offset: usize,
    pub(super) generation: u64,
    pub(super) done: oneshot::Sender<Result<(), LogError>>,
}

impl Pending {
    /// Queues a sync barrier covering everything appended so far.
    pub(super) fn request_sync(
        &mut self,
    ) -> Result<oneshot::Receiver<Result<(), LogError>>, LogError> {
        if self.stop {
            return Err(LogError::Closed);
        }
        let (tx, rx) = oneshot::channel();
        self.sync_requests.push(tx);
        Ok(rx)
    }

    /// Bytes queued and not yet taken by the writer.
    pub(super) fn buffered_len(&self) -> usize {
        self.buf.len()
    }

    fn has_work(&self) -> bool {
        !self.buf.is_empty()
            || !self.rotations.is_empty()
            || !self.sync_requests.is_empty()
            || self.stop
    }
}

impl Log {
    /// Opens (creating) the data dir, recovers snapshot and logs, and starts the writer.
    ///
    /// Returns the records to replay, snapshot records first, then log records. Needs a
    /// tokio runtime (recovery reads files on a blocking thread).
    ///
    /// # Errors
    ///
    /// [`StartupError`] when the directory cannot be read or written, is locked by another
    /// process, or a file is damaged in the middle and `repair` is off (the error names
    /// file, offset and remedy).
    pub async fn open(cfg: LogConfig) -> Result<(Arc<Log>, Recovered), StartupError> {
        let records = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&records);
        let (log, mut recovered) = Self::open_with(cfg, move |r| sink.lock().push(r)).await?;
        recovered.records = std::mem::take(&mut *records.lock());
        Ok((log, recovered))
    }

    /// Like [`Log::open`], but hands each record to `on_record` as it is read instead of
    /// collecting them (`Recovered::records` stays empty): memory holds one frame at a
    /// time, not the files.
    ///
    /// # Errors
    ///
    /// As [`Log::open`].
    pub async fn open_with(
        cfg: LogConfig,
        mut on_record: impl FnMut(Record) + Send + 'static,
    ) -> Result<(Arc<Log>, Recovered), StartupError> {
        let for_recovery = cfg.clone();
        let (recovered, resume) =
            tokio::task::spawn_blocking(move || recover::recover(&for_recovery, &mut on_record))
                .await
                .map_err(|e| StartupError::Persistence(format!("recovery failed: {e}")))??;
        let stats = &recovered.stats;
        tracing::info!(
            dir = %cfg.dir.display(),
            records = stats.records_replayed,
            snapshot_records = stats.snapshot_records,
            log_files = stats.log_files,
            bytes = stats.bytes_read,
            torn_tail_bytes = stats.torn_tail_bytes,
            repaired_bytes = stats.repaired_bytes,
            "recovered the data directory"
        );
        let (progress_tx, progress_rx) = watch::channel(Progress::default());
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending {
                buf: Vec::new(),
                last_lsn: 0,
                max_token: recovered.token_high_water(),
                generation: resume.generation,
                rotations: Vec::new(),
                sync_requests: Vec::new(),
                stop: false,
            }),
            wake: Condvar::new(),
            progress: progress_tx,
            appended: AtomicU64::new(0),
            log_bytes: AtomicU64::new(resume.len),
            generation: AtomicU64::new(resume.generation),
            writes: AtomicU64::new(0),
            syncs: AtomicU64::new(0),
            last_sync_ms: AtomicU64::new(0),
            last_snapshot_ms: AtomicU64::new(0),
            snapshots: AtomicU64::new(0),
            records_replayed: recovered.stats.records_replayed,
            cfg,
        });
        let fault = shared.cfg.fault;
        if fault != Fault::default() {
            tracing::warn!(
                ?fault,
                "{} is set: the log writer fails on purpose",
                Fault::ENV
            );
        }
        let mut writer = Writer {
            shared: Arc::clone(&shared),
            file: resume.file,
            _dir_lock: resume.dir_lock,
            good_len: resume.len,
            unsynced: false,
            last_sync: Instant::now(),
            last_sync_took: Duration::ZERO,
            failed: None,
            permanent: false,
            held: Vec::new(),
            last_attempt: Instant::now(),
            fault: FaultState {
                fault,
                ..FaultState::default()
            },
        };
        let handle = std::thread::Builder::new()
            .name("baton-log-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| StartupError::Persistence(format!("cannot start the log writer: {e}")))?;
        let log = Log {
            shared,
            progress: progress_rx,
            writer: Mutex::new(Some(handle)),
            snapshot_lock: tokio::sync::Mutex::new(()),
            snapshot_running: AtomicBool::new(false),
        };
        Ok((Arc::new(log), recovered))
    }

    /// Queues `record` for writing and returns its LSN. No I/O: safe under a shard mutex.
    pub fn append(&self, record: &Record) -> Lsn {
        let mut pending = self.shared.pending.lock();
        let was_empty = pending.buf.is_empty();
        record.encode_frame(&mut pending.buf);
        if let Some(token) = record.token() {
            pending.max_token = pending.max_token.max(token);
        }
        pending.last_lsn += 1;
        let lsn = pending.last_lsn;
        self.shared.appended.store(lsn, Ordering::Release);
        drop(pending);
        // The writer sleeps only while the buffer is empty, so whoever filled it woke it.
        if was_empty {
            self.shared.wake.notify_one();
        }
        lsn
    }

    /// Waits until `lsn` is as durable as the policy promises: synced under `always`;
    /// under `everysec` and `no`, at once, unless the log is failing and `lsn` is not
    /// written yet.
    ///
    /// # Errors
    ///
    /// [`LogError`] when the log failed or was shut down before `lsn` was written; the
    /// change must then not be acknowledged.
    pub async fn wait_durable(&self, lsn: Lsn) -> Result<(), LogError> {
        if self.shared.cfg.fsync != AppendFsync::Always {
            let progress = self.progress.borrow();
            return match &progress.failed {
                Some(err) if progress.lsn < lsn => Err(LogError::Failed(Arc::clone(err))),
                _ => Ok(()),
            };
        }
        if self.progress.borrow().lsn >= lsn {
            return Ok(());
        }
        let mut progress = self.progress.clone();
        let seen = progress
            .wait_for(|p| p.lsn >= lsn || p.failed.is_some() || p.closed)
            .await
            .map_err(|_| LogError::Closed)?;
        if seen.lsn >= lsn {
            Ok(())
        } else if let Some(err) = &seen.failed {
            Err(LogError::Failed(Arc::clone(err)))
        } else {
            Err(LogError::Closed)
        }
    }

    /// Why the log cannot write right now (the OS's words, as `-MISCONF` shows them), or
    /// None while it works.
    pub fn failure(&self) -> Option<Arc<str>> {
        self.progress.borrow().failed.clone()
    }

    /// Resolves with the cause once a write or sync has failed.
    pub async fn failed(&self) -> Arc<str> {
        let mut progress = self.progress.clone();
        let result = match progress.wait_for(|p| p.failed.is_some()).await {
            Ok(seen) => seen.failed.clone(),
            Err(_) => None,
        };
        match result {
            Some(cause) => cause,
            // The writer is gone without a failure: nothing will ever fail.
            None => std::future::pending().await,
        }
    }

    /// The fsync policy.
    pub fn fsync(&self) -> AppendFsync {
        self.shared.cfg.fsync
    }

    /// The LSN of the last appended record (0 before the first).
    pub fn appended_lsn(&self) -> Lsn {
        self.shared.appended.load(Ordering::Acquire)
    }

    /// Whether the current log has grown past `snapshot_after_bytes` and no snapshot runs
    /// (the server then calls [`Log::snapshot`]).
    pub fn wants_snapshot(&self) -> bool {
        self.shared.log_bytes.load(Ordering::Relaxed) >= self.shared.cfg.snapshot_after_bytes
            && !self.snapshot_running.load(Ordering::Relaxed)
    }

    /// Counters for `INFO persistence`.
    pub fn stats(&self) -> LogStats {
        let shared = &self.shared;
        let progress = self.progress.borrow();
        LogStats {
            log_bytes: shared.log_bytes.load(Ordering::Relaxed),
            generation: shared.generation.load(Ordering::Relaxed),
            appended_lsn: self.appended_lsn(),
            durable_lsn: progress.lsn,
            writes: shared.writes.load(Ordering::Relaxed),
            syncs: shared.syncs.load(Ordering::Relaxed),
            last_sync_unix_ms: shared.last_sync_ms.load(Ordering::Relaxed),
            last_snapshot_unix_ms: shared.last_snapshot_ms.load(Ordering::Relaxed),
            snapshots: shared.snapshots.load(Ordering::Relaxed),
            records_replayed: shared.records_replayed,
            fsync: shared.cfg.fsync,
            failed: progress.failed.as_deref().map(str::to_owned),
        }
    }

    /// Writes and syncs everything appended so far, whatever the policy, then stops the
    /// writer. Later appends are never written. Calling it again does nothing.
    pub async fn shutdown(&self) {
        let Some(handle) = self.writer.lock().take() else {
            return;
        };
        let done = {
            let mut pending = self.shared.pending.lock();
            let done = pending.request_sync();
            pending.stop = true;
            done
        };
        self.shared.wake.notify_one();
        if let Ok(done) = done {
            if let Ok(Err(err)) = done.await {
                tracing::error!(%err, "the log could not be flushed at shutdown");
            }
        }
        if tokio::task::spawn_blocking(move || handle.join())
            .await
            .is_err()
        {
            tracing::error!("the log writer panicked");
        }
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        // Without shutdown(): the writer still writes and syncs what is queued, then exits
        // and releases the directory lock; waited for, so that the directory is free
        // once the log is gone.
        self.shared.pending.lock().stop = true;
        self.shared.wake.notify_one();
        if let Some(handle) = self.writer.lock().take() {
            let _ = handle.join();
        }
    }
}

/// The writer thread's state: the open log file and what it has not synced yet.
struct Writer {
    shared: Arc<Shared>,
    file: File,
    /// The data directory's lock, released when the writer exits (after its last write).
    _dir_lock: DirLock,
    /// Length of `file` after its last complete write: a failed write is cut back to it.
    good_len: u64,
    unsynced: bool,
    last_sync: Instant,
    last_sync_took: Duration,
    failed: Option<Arc<str>>,
    /// A failure that is never retried (any failure under `always`, a failed rotation).
    permanent: bool,
    /// Bytes appended but not written because of a failure, written first by the retry.
    held: Vec<u8>,
    /// When the last retry after a failure ran.
    last_attempt: Instant,
    fault: FaultState,
}

/// Counts for [`Fault`]: how many writes and syncs succeeded, when the first failed.
#[derive(Default)]
struct FaultState {
    fault: Fault,
    writes: u64,
    syncs: u64,
    first: Option<Instant>,
}

impl FaultState {
    /// An injected error when the `n`th operation (0-based, `done` so far) is due to fail.
    fn check(&mut self, after: Option<u64>, done: u64, errno: i32) -> io::Result<()> {
        let Some(after) = after else { return Ok(()) };
        if done < after {
            return Ok(());
        }
        let first = *self.first.get_or_insert_with(Instant::now);
        let healed = self
            .fault
            .heal_after_ms
            .is_some_and(|ms| first.elapsed() >= Duration::from_millis(ms));
        if healed {
            return Ok(());
        }
        Err(io::Error::from_raw_os_error(errno))
    }
}

const EVERYSEC: Duration = Duration::from_secs(1);
/// Pause between retries after a failure under `everysec` and `no`.
const RETRY: Duration = Duration::from_secs(1);
/// Longest gather pause (see `Writer::gather_pause`).
const MAX_GATHER: Duration = Duration::from_micros(500);
/// ENOSPC and EIO, the errors of the injected faults.
const ENOSPC: i32 = 28;
const EIO: i32 = 5;

impl Writer {
    fn run(&mut self) {
        let mut batch = Vec::new();
        let mut published: Lsn = 0;
        loop {
            let mut pending = self.shared.pending.lock();
            while !pending.has_work() {
                let wake_at = if self.retrying() {
                    Some(self.last_attempt + RETRY)
                } else if self.shared.cfg.fsync == AppendFsync::Everysec && self.unsynced {
                    Some(self.last_sync + EVERYSEC)
                } else {
                    None
                };
                match wake_at {
                    Some(at) => {
                        if self.shared.wake.wait_until(&mut pending, at).timed_out() {
                            break;
                        }
                    }
                    None => self.shared.wake.wait(&mut pending),
                }
            }
            std::mem::swap(&mut pending.buf, &mut batch);
            let lsn = pending.last_lsn;
            let rotations = std::mem::take(&mut pending.rotations);
            let sync_requests = std::mem::take(&mut pending.sync_requests);
            let stop = pending.stop;
            drop(pending);

            let force_sync = stop || !sync_requests.is_empty();
            let result = match self.failed.clone() {
                None => self.serve(&batch, rotations, force_sync),
                Some(err) if !self.retrying() => Err(io::Error::other(err.to_string())),
                // Rotations are not served while failed: their snapshot fails.
                Some(err) => self.retry(&batch, &err),
            };
            let result = match result {
                Ok(()) => {
                    if let Some(err) = self.failed.take() {
                        tracing::warn!(%err, "append-only log writes work again");
                    }
                    Ok(())
                }
                Err(err) => Err(LogError::Failed(self.fail(err))),
            };
            let batch_records = lsn - published;
            let gather = self.gather_pause(batch_records, result.is_ok());
            match &result {
                Ok(()) => {
                    crate::metrics::log_batch(batch_records);
                    self.shared.progress.send_modify(|p| {
                        p.lsn = lsn;
                        p.failed = None;
                    });
                    published = lsn;
                }
                Err(LogError::Failed(err)) => {
                    let err = Arc::clone(err);
                    self.shared.progress.send_if_modified(|p| {
                        let changed = p.failed.is_none();
                        p.failed = Some(Arc::clone(&err));
                        changed
                    });
                }
                Err(LogError::Closed) => {}
            }
            for request in sync_requests {
                let _ = request.send(result.clone());
            }
            // Keep the spare buffer's capacity, unless one huge batch inflated it.
            batch.clear();
            if batch.capacity() > 16 << 20 {
                batch = Vec::new();
            }
            if stop {
                self.shared.progress.send_modify(|p| p.closed = true);
                return;
            }
            if let Some(pause) = gather {
                let queued = self.shared.pending.lock().last_lsn - lsn;
                if queued < batch_records {
                    std::thread::sleep(pause);
                }
            }
        }
    }

    /// Whether a failure is being retried (set, and not permanent).
    fn retrying(&self) -> bool {
        self.failed.is_some() && !self.permanent
    }

    /// Records a failure (the unwritten bytes are already in `held`) and returns the
    /// cause that `-MISCONF` and the logs show: the first one while failed.
    fn fail(&mut self, err: io::Error) -> Arc<str> {
        if let Some(cause) = &self.failed {
            return Arc::clone(cause);
        }
        if self.shared.cfg.fsync == AppendFsync::Always {
            self.permanent = true;
        }
        let cause: Arc<str> = os_cause(&err).into();
        if self.permanent {
            tracing::error!(cause = %cause, "append-only log write failed; no change will \
                be acknowledged from now on");
        } else {
            tracing::error!(cause = %cause, "append-only log write failed; writes are \
                refused (-MISCONF) until a retry succeeds, retrying every second");
        }
        self.last_attempt = Instant::now();
        self.failed = Some(Arc::clone(&cause));
        cause
    }

    /// Under a retried failure: writes what was held back and `batch`, then syncs, when
    /// the retry is due; otherwise only holds `batch` back.
    fn retry(&mut self, batch: &[u8], cause: &Arc<str>) -> io::Result<()> {
        self.held.extend_from_slice(batch);
        if self.last_attempt.elapsed() < RETRY {
            return Err(io::Error::other(cause.to_string()));
        }
        self.last_attempt = Instant::now();
        if !self.held.is_empty() {
            // A failed write may have written part of its bytes: cut them off first.
            self.file.set_len(self.good_len)?;
            let held = std::mem::take(&mut self.held);
            if let Err(err) = self.write(&held) {
                self.held = held;
                return Err(err);
            }
        }
        self.unsynced = true;
        self.sync()
    }

    /// How long to let the waiters just woken append again before taking the next batch.
    ///
    /// Without it, batches alternate between the few records that came in during the sync
    /// and all the rest, and each reply waits for two syncs. A fraction of the sync time,
    /// only after a synced batch of more than one record (a lone client never waits).
    fn gather_pause(&self, records: u64, ok: bool) -> Option<Duration> {
        (ok && records > 1 && self.shared.cfg.fsync == AppendFsync::Always)
            .then(|| (self.last_sync_took / 8).min(MAX_GATHER))
            .filter(|pause| !pause.is_zero())
    }

    /// Writes one batch (switching files at rotations) and syncs as the policy asks.
    /// On a failed write the bytes not written are kept in `held`.
    fn serve(
        &mut self,
        batch: &[u8],
        rotations: Vec<Rotation>,
        force_sync: bool,
    ) -> io::Result<()> {
        let mut start = 0;
        for rotation in rotations {
            let offset = rotation.offset;
            let rotated = self.rotate(&batch[start..offset], rotation.generation);
            let _ = rotation.done.send(match &rotated {
                Ok(()) => Ok(()),
                Err(err) => Err(LogError::Failed(err.to_string().into())),
            });
            if rotated.is_err() {
                // Which file the records went to is unclear: never retried.
                self.permanent = true;
            }
            rotated?;
            start = offset;
        }
        if let Err(err) = self.write(&batch[start..]) {
            self.held.extend_from_slice(&batch[start..]);
            return Err(err);
        }
        let due = match self.shared.cfg.fsync {
            AppendFsync::Always => true,
            AppendFsync::Everysec => self.last_sync.elapsed() >= EVERYSEC,
            AppendFsync::No => false,
        };
        if due || force_sync {
            self.sync()?;
        }
        Ok(())
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        let (after, done) = (self.fault.fault.write_fail_after, self.fault.writes);
        self.fault.check(after, done, ENOSPC)?;
        self.file.write_all(bytes)?;
        self.fault.writes += 1;
        self.unsynced = true;
        self.good_len += bytes.len() as u64;
        self.shared.writes.fetch_add(1, Ordering::Relaxed);
        self.shared
            .log_bytes
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        if !self.unsynced {
            return Ok(());
        }
        let started = Instant::now();
        let (after, done) = (self.fault.fault.fsync_fail_after, self.fault.syncs);
        self.fault.check(after, done, EIO)?;
        self.file.sync_data()?;
        self.fault.syncs += 1;
        self.unsynced = false;
        self.last_sync = Instant::now();
        self.last_sync_took = self.last_sync - started;
        crate::metrics::log_fsync(self.last_sync_took);
        self.shared.syncs.fetch_add(1, Ordering::Relaxed);
        self.shared
            .last_sync_ms
            .store(crate::clock::wall_ms(), Ordering::Relaxed);
        Ok(())
    }

    /// Finishes the current log with `tail`, syncs it (whatever the policy: recovery
    /// treats only the newest log as possibly torn) and continues in a new file.
    fn rotate(&mut self, tail: &[u8], generation: u64) -> io::Result<()> {
        self.write(tail)?;
        self.sync()?;
        self.file = files::create_log(&self.shared.cfg.dir, generation)?;
        self.good_len = HEADER_LEN as u64;
        self.shared
            .log_bytes
            .store(HEADER_LEN as u64, Ordering::Relaxed);
        self.shared.generation.store(generation, Ordering::Relaxed);
        Ok(())
    }
}

/// An I/O error as Redis words it (`strerror`): "No space left on device", without
/// Rust's " (os error 28)".
fn os_cause(err: &io::Error) -> String {
    let text = err.to_string();
    match text.rsplit_once(" (os error ") {
        Some((cause, _)) => cause.to_string(),
        None => text,
    }
}
