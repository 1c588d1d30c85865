//! Snapshots: the table's live state written as records, so the log can start over.
//!
//! Owns [`Log::snapshot`] and the file steps behind it. The sequence, for a log now at
//! generation `G`:
//!
//! 1. rotate: records appended from now on go to a new `log.G+1` (created, header synced,
//!    directory synced); `log.G` is written to its end and synced first;
//! 2. the caller's `live` closure emits the table's state (it iterates its shards after
//!    the rotation), encoded in memory; a `TokenHighWater` record with the largest token
//!    the log has seen is added, so tokens never go backwards even if `live` omits it;
//! 3. sync barrier: every record appended before `live` returned is synced in `log.G+1`,
//!    whatever the policy;
//! 4. `snapshot.G+1.tmp` is written and synced, renamed to `snapshot.G+1`, the directory
//!    synced;
//! 5. logs and snapshots of generations below `G+1` are deleted.
//!
//! Why a crash anywhere recovers: recovery takes the newest `snapshot.S` and replays the
//! logs `S, S+1, ...`. Before step 4's rename there is no `snapshot.G+1`, so the previous
//! snapshot (if any) and all logs up to `G+1` are replayed, which lose nothing (a `.tmp`
//! is ignored and deleted). After the rename, `snapshot.G+1` holds, for every key, the
//! state at some point of `log.G+1` at or after its start; step 3 made sure that point is
//! inside the synced part of `log.G+1`, so replaying `log.G+1` over it re-applies records
//! whose effect is already there (records are idempotent "set state" changes) and then
//! the ones after: the state at the log's end. Leftover older files are deleted at start.
//!
//! To snapshot more kinds of state, have `live` emit more record kinds; nothing here
//! changes.

use std::fs;
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::Ordering;

use super::files::{self, DataFile, FileKind};
use super::log::{Log, LogError, Rotation};
use super::record::Record;

impl Log {
    /// Writes a snapshot of `live` (the table's state, emitted record by record into the
    /// callback after the rotation) and drops the older log; see the module doc for the
    /// steps. One snapshot runs at a time; a second call waits for the first.
    ///
    /// # Errors
    ///
    /// The I/O error of a failed step (the previous snapshot and logs stay valid), or a
    /// [`LogError`] (wrapped as `io::Error`) when the log has failed or is shut down.
    pub async fn snapshot(
        &self,
        live: impl FnOnce(&mut dyn FnMut(Record)) + Send,
    ) -> Result<(), io::Error> {
        let _one_at_a_time = self.snapshot_lock.lock().await;
        self.snapshot_running.store(true, Ordering::Relaxed);
        let result = self.snapshot_locked(live).await;
        self.snapshot_running.store(false, Ordering::Relaxed);
        result
    }

    async fn snapshot_locked(
        &self,
        live: impl FnOnce(&mut dyn FnMut(Record)) + Send,
    ) -> Result<(), io::Error> {
        let shared = &self.shared;
        // 1. Rotation.
        let (generation, rotated) = {
            let mut pending = shared.pending.lock();
            if pending.stop {
                return Err(io::Error::other(LogError::Closed));
            }
            pending.generation += 1;
            let generation = pending.generation;
            let (done, rotated) = tokio::sync::oneshot::channel();
            let offset = pending.buffered_len();
            pending.rotations.push(Rotation {
                offset,
                generation,
                done,
            });
            (generation, rotated)
        };
        shared.wake.notify_one();
        if let Err(err) = answered(rotated.await) {
            // The new log was not started: the next snapshot must not skip a generation
            // (recovery refuses a missing one). Snapshots run one at a time.
            let mut pending = shared.pending.lock();
            if pending.generation == generation {
                pending.generation -= 1;
            }
            return Err(err);
        }

        // 2. The live state, in memory: `live` may hold shard locks while it emits.
        let mut body = Vec::new();
        let mut count = 0u64;
        live(&mut |record: Record| {
            record.encode_frame(&mut body);
            count += 1;
        });

        // 3. Sync barrier for everything appended while `live` ran.
        let (max_token, synced) = {
            let mut pending = shared.pending.lock();
            let synced = pending.request_sync().map_err(io::Error::other)?;
            (pending.max_token, synced)
        };
        shared.wake.notify_one();
        Record::TokenHighWater { upto: max_token }.encode_frame(&mut body);
        answered(synced.await)?;

        // 4. and 5. on a blocking thread.
        let dir = shared.cfg.dir.clone();
        tokio::task::spawn_blocking(move || write_snapshot(&dir, generation, &body))
            .await
            .map_err(io::Error::other)??;
        shared
            .last_snapshot_ms
            .store(crate::clock::wall_ms(), Ordering::Relaxed);
        shared.snapshots.fetch_add(1, Ordering::Relaxed);
        tracing::info!(generation, records = count, "snapshot written");
        Ok(())
    }
}

fn answered(
    answer: Result<Result<(), LogError>, tokio::sync::oneshot::error::RecvError>,
) -> Result<(), io::Error> {
    match answer {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) => Err(io::Error::other(err)),
        Err(_) => Err(io::Error::other(LogError::Closed)),
    }
}

/// Steps 4 and 5: temp file, sync, rename, directory sync, delete what it supersedes.
pub(crate) fn write_snapshot(dir: &Path, generation: u64, body: &[u8]) -> io::Result<()> {
    let tmp = dir.join(DataFile::SnapshotTmp(generation).name());
    let mut file = files::private_file()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)?;
    file.write_all(&FileKind::Snapshot.header())?;
    file.write_all(body)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, dir.join(DataFile::Snapshot(generation).name()))?;
    files::sync_dir(dir)?;
    delete_older(dir, generation)
}

/// Deletes logs, snapshots and temp files of generations below `generation`.
pub(crate) fn delete_older(dir: &Path, generation: u64) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let older = match entry.file_name().to_str().and_then(DataFile::parse) {
            Some(DataFile::Log(g) | DataFile::Snapshot(g) | DataFile::SnapshotTmp(g)) => {
                g < generation
            }
            None => false,
        };
        if older {
            fs::remove_file(entry.path())?;
        }
    }
    files::sync_dir(dir)
}
