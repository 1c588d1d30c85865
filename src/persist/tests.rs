//! Tests across log, snapshot and recovery, on real files in temp directories.
//!
//! Crash states are crafted with [`write_data_file`] (the files a crash leaves), then
//! opened with [`Log::open`] like a restarting server would.

use std::fs;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use proptest::prelude::*;

use super::files::{DataFile, FileKind, HEADER_LEN};
use super::record::tests::record_strategy;
use super::*;
use crate::config::AppendFsync;
use crate::error::StartupError;

const POLICIES: [AppendFsync; 3] = [AppendFsync::Always, AppendFsync::Everysec, AppendFsync::No];

fn grant(i: u64) -> Record {
    Record::Grant {
        key: Bytes::from(format!("key:{i}")),
        owner: Bytes::from(format!("owner-{}", i % 7)),
        hold: match i % 4 {
            0 => HoldKind::Exclusive,
            1 => HoldKind::SharedWrite,
            2 => HoldKind::Read,
            _ => HoldKind::Permits(i),
        },
        token: i as i64 + 1,
        deadline_ms: 1_700_000_000_000 + i,
    }
}

/// A mix of every kind of record.
fn sample(i: u64) -> Record {
    let key = Bytes::from(format!("k{i}"));
    match i % 9 {
        0 => grant(i),
        1 => Record::Refresh {
            key,
            owner: Bytes::from_static(b"o"),
            deadline_ms: i,
        },
        2 => Record::Release {
            key,
            owner: Bytes::from_static(b"o"),
        },
        3 => Record::SemCreate { key, capacity: i },
        4 => Record::Delete { key },
        5 => Record::StrSet {
            key,
            value: Bytes::from(vec![i as u8; (i % 17) as usize]),
            deadline_ms: Some(i),
        },
        6 => Record::StrExpire {
            key,
            deadline_ms: None,
        },
        7 => Record::FlushAll,
        _ => Record::TokenHighWater { upto: i as i64 },
    }
}

fn config(dir: &Path, fsync: AppendFsync) -> LogConfig {
    LogConfig::new(dir, fsync)
}

/// Writes a data file as baton would: header, then framed records.
fn write_data_file(dir: &Path, file: DataFile, records: &[Record]) -> Vec<u8> {
    let kind = match file {
        DataFile::Log(_) => FileKind::Log,
        DataFile::Snapshot(_) | DataFile::SnapshotTmp(_) => FileKind::Snapshot,
    };
    let bytes = encode_file(kind, records);
    fs::write(dir.join(file.name()), &bytes).unwrap();
    bytes
}

fn encode_file(kind: FileKind, records: &[Record]) -> Vec<u8> {
    let mut bytes = kind.header().to_vec();
    for record in records {
        record.encode_frame(&mut bytes);
    }
    bytes
}

/// Byte offsets where each frame of a file starts, plus the end.
fn frame_offsets(records: &[Record]) -> Vec<usize> {
    let mut offsets = vec![HEADER_LEN];
    let mut buf = Vec::new();
    for record in records {
        record.encode_frame(&mut buf);
        offsets.push(HEADER_LEN + buf.len());
    }
    offsets
}

/// The data files of `dir` (not the LOCK file), sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != super::files::LOCK_NAME)
        .collect();
    names.sort();
    names
}

async fn open(cfg: LogConfig) -> (Arc<Log>, Recovered) {
    match Log::open(cfg).await {
        Ok(opened) => opened,
        Err(err) => panic!("open failed: {err}"),
    }
}

async fn reopen_records(dir: &Path) -> Vec<Record> {
    let (log, recovered) = open(config(dir, AppendFsync::Always)).await;
    log.shutdown().await;
    recovered.records
}

#[tokio::test]
async fn fresh_directory_is_created_empty() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data/nested");
    let (log, recovered) = open(config(&dir, AppendFsync::Always)).await;
    assert!(recovered.records.is_empty());
    assert_eq!(recovered.stats, RecoveryStats::default());
    assert_eq!(recovered.token_high_water(), 0);
    assert_eq!(names(&dir), vec![DataFile::Log(1).name()]);
    assert_eq!(log.appended_lsn(), 0);
    log.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_wait_reopen_round_trips_for_each_policy() {
    for fsync in POLICIES {
        let tmp = tempfile::tempdir().unwrap();
        let records: Vec<Record> = (0..200).map(sample).collect();
        let (log, _) = open(config(tmp.path(), fsync)).await;
        let mut last = 0;
        for record in &records {
            last = log.append(record);
        }
        assert_eq!(last, 200);
        assert_eq!(log.appended_lsn(), 200);
        log.wait_durable(last).await.unwrap();
        log.shutdown().await;
        assert_eq!(log.stats().durable_lsn, 200, "{fsync:?}");
        assert!(log.stats().syncs >= 1, "shutdown syncs under {fsync:?}");
        assert_eq!(
            log.wait_durable(last + 1).await.is_ok(),
            fsync != AppendFsync::Always
        );

        let (log, recovered) = open(config(tmp.path(), fsync)).await;
        assert_eq!(recovered.records, records, "{fsync:?}");
        assert_eq!(recovered.stats.records_replayed, 200);
        assert_eq!(log.stats().records_replayed, 200);
        // Appending after a reopen continues the same file.
        log.wait_durable(log.append(&Record::FlushAll))
            .await
            .unwrap();
        log.shutdown().await;
        let mut expected = records.clone();
        expected.push(Record::FlushAll);
        assert_eq!(reopen_records(tmp.path()).await, expected, "{fsync:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_is_synced_before_wait_durable_returns() {
    let tmp = tempfile::tempdir().unwrap();
    let (log, _) = open(config(tmp.path(), AppendFsync::Always)).await;
    let lsn = log.append(&grant(1));
    log.wait_durable(lsn).await.unwrap();
    let stats = log.stats();
    assert!(stats.syncs >= 1 && stats.durable_lsn >= lsn && stats.last_sync_unix_ms > 0);
    // Read the file while the log is still open: the record is there.
    let bytes = fs::read(tmp.path().join(DataFile::Log(1).name())).unwrap();
    assert_eq!(decode_log_bytes(&bytes).unwrap().0, vec![grant(1)]);
    log.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_shares_syncs() {
    let tmp = tempfile::tempdir().unwrap();
    let (log, _) = open(config(tmp.path(), AppendFsync::Always)).await;

    // Pipelined: many appends before anyone waits.
    let lsns: Vec<Lsn> = (0..1000).map(|i| log.append(&grant(i))).collect();
    for lsn in lsns {
        log.wait_durable(lsn).await.unwrap();
    }
    let pipelined_syncs = log.stats().syncs;
    assert!(
        pipelined_syncs < 100,
        "1000 pipelined records took {pipelined_syncs} syncs"
    );

    // Concurrent: 100 tasks, each append then wait, 10 times.
    let tasks: Vec<_> = (0..100u64)
        .map(|t| {
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                for i in 0..10 {
                    let lsn = log.append(&grant(t * 10 + i));
                    log.wait_durable(lsn).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let concurrent_syncs = log.stats().syncs - pipelined_syncs;
    assert!(
        concurrent_syncs < 1000,
        "1000 concurrent records took {concurrent_syncs} syncs"
    );
    log.shutdown().await;
    assert_eq!(reopen_records(tmp.path()).await.len(), 2000);
}

#[tokio::test]
async fn torn_tail_at_every_offset_recovers_the_complete_prefix() {
    let records: Vec<Record> = (0..12).map(sample).collect();
    let offsets = frame_offsets(&records);
    let full = encode_file(FileKind::Log, &records);
    let start = offsets[records.len() - 3];
    let tmp = tempfile::tempdir().unwrap();
    for cut in (0..HEADER_LEN).chain(start..full.len()) {
        let dir = tmp.path().join(format!("cut{cut}"));
        fs::create_dir(&dir).unwrap();
        let path = dir.join(DataFile::Log(1).name());
        fs::write(&path, &full[..cut]).unwrap();
        let complete = offsets
            .iter()
            .filter(|&&o| o <= cut)
            .count()
            .saturating_sub(1);

        let (log, recovered) = open(config(&dir, AppendFsync::Always)).await;
        assert_eq!(recovered.records, records[..complete], "cut at {cut}");
        let (valid, torn) = if cut < HEADER_LEN {
            (HEADER_LEN, cut)
        } else {
            (offsets[complete], cut - offsets[complete])
        };
        assert_eq!(recovered.stats.torn_tail_bytes, torn as u64, "cut at {cut}");
        assert_eq!(
            fs::metadata(&path).unwrap().len(),
            valid as u64,
            "cut at {cut}"
        );
        // The cut file takes new records cleanly.
        log.wait_durable(log.append(&Record::FlushAll))
            .await
            .unwrap();
        log.shutdown().await;
        drop(log);
        let mut expected = records[..complete].to_vec();
        expected.push(Record::FlushAll);
        assert_eq!(reopen_records(&dir).await, expected, "cut at {cut}");
        fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn decode_log_bytes_on_every_prefix() {
    let records: Vec<Record> = (0..9).map(sample).collect();
    let offsets = frame_offsets(&records);
    let full = encode_file(FileKind::Log, &records);
    for cut in 0..=full.len() {
        let (decoded, valid) = decode_log_bytes(&full[..cut]).unwrap();
        let complete = offsets
            .iter()
            .filter(|&&o| o <= cut)
            .count()
            .saturating_sub(1);
        assert_eq!(decoded, records[..complete]);
        assert_eq!(
            valid,
            if cut < HEADER_LEN {
                0
            } else {
                offsets[complete]
            }
        );
    }
    assert_eq!(
        decode_log_bytes(b"BATONSNP\x01\0\0\0"),
        Err(LogDecodeError::BadMagic)
    );
    assert_eq!(
        decode_log_bytes(b"BATONLOG\x02\0\0\0"),
        Err(LogDecodeError::UnsupportedVersion(2))
    );
    assert_eq!(decode_log_bytes(b"BATX"), Err(LogDecodeError::BadMagic));
}

#[tokio::test]
async fn damage_in_the_middle_stops_start_up_unless_repair() {
    let records: Vec<Record> = (0..10).map(sample).collect();
    let offsets = frame_offsets(&records);
    let tmp = tempfile::tempdir().unwrap();
    let mut bytes = write_data_file(tmp.path(), DataFile::Log(1), &records);
    let path = tmp.path().join(DataFile::Log(1).name());
    // Flip a payload byte of record 5: its checksum fails, records 6.. are still valid.
    bytes[offsets[5] + 9] ^= 0x40;
    fs::write(&path, &bytes).unwrap();

    let err = Log::open(config(tmp.path(), AppendFsync::Always))
        .await
        .expect_err("damage must stop start-up");
    match &err {
        StartupError::CorruptLog { file, offset, .. } => {
            assert_eq!(file, &path);
            assert_eq!(*offset, offsets[5] as u64);
        }
        other => panic!("unexpected error {other}"),
    }
    let text = err.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(
        text.contains(&format!(
            "start with --repair to drop everything after offset {}",
            offsets[5]
        )),
        "{text}"
    );
    assert_eq!(
        fs::read(&path).unwrap(),
        bytes,
        "a refused start changes nothing"
    );

    let mut cfg = config(tmp.path(), AppendFsync::Always);
    cfg.repair = true;
    let (log, recovered) = open(cfg).await;
    assert_eq!(recovered.records, records[..5]);
    assert_eq!(
        recovered.stats.repaired_bytes,
        (bytes.len() - offsets[5]) as u64
    );
    log.shutdown().await;
    assert_eq!(fs::metadata(&path).unwrap().len(), offsets[5] as u64);
    assert_eq!(reopen_records(tmp.path()).await, records[..5]);
}

#[tokio::test]
async fn a_bad_length_in_the_middle_is_damage_too() {
    let records: Vec<Record> = (0..6).map(sample).collect();
    let offsets = frame_offsets(&records);
    let tmp = tempfile::tempdir().unwrap();
    let mut bytes = write_data_file(tmp.path(), DataFile::Log(1), &records);
    bytes[offsets[2]..offsets[2] + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    fs::write(tmp.path().join(DataFile::Log(1).name()), &bytes).unwrap();
    let err = Log::open(config(tmp.path(), AppendFsync::Always))
        .await
        .err();
    assert!(
        matches!(err, Some(StartupError::CorruptLog { offset, .. }) if offset == offsets[2] as u64),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_then_appends_then_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let (log, _) = open(config(tmp.path(), AppendFsync::Always)).await;
    for i in 0..50 {
        log.append(&grant(i));
    }
    let live: Vec<Record> = (0..5).map(grant).collect();
    let emitted = live.clone();
    log.snapshot(move |emit| emitted.into_iter().for_each(emit))
        .await
        .unwrap();
    assert_eq!(
        names(tmp.path()),
        vec![DataFile::Log(2).name(), DataFile::Snapshot(2).name()]
    );
    let stats = log.stats();
    assert_eq!((stats.snapshots, stats.generation), (1, 2));
    assert!(stats.last_snapshot_unix_ms > 0);
    assert_eq!(stats.log_bytes, HEADER_LEN as u64);
    let suffix: Vec<Record> = (100..110).map(sample).collect();
    for record in &suffix {
        log.append(record);
    }
    log.shutdown().await;

    let (log, recovered) = open(config(tmp.path(), AppendFsync::Always)).await;
    let mut expected = live;
    // The snapshot carries the largest token appended so far (grant(49) has token 50).
    expected.push(Record::TokenHighWater { upto: 50 });
    expected.extend(suffix);
    assert_eq!(recovered.records, expected);
    assert_eq!(recovered.stats.snapshot_records, 6);
    assert!(recovered.stats.snapshot_loaded.is_some());
    // sample(108) is grant(108), token 109.
    assert_eq!(recovered.token_high_water(), 109);

    // A second snapshot replaces the first.
    log.snapshot(|emit| emit(Record::FlushAll)).await.unwrap();
    log.shutdown().await;
    assert_eq!(
        names(tmp.path()),
        vec![DataFile::Log(3).name(), DataFile::Snapshot(3).name()]
    );
    assert_eq!(
        reopen_records(tmp.path()).await,
        vec![Record::FlushAll, Record::TokenHighWater { upto: 109 }]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_appended_during_the_snapshot_land_in_the_new_log() {
    let tmp = tempfile::tempdir().unwrap();
    let (log, _) = open(config(tmp.path(), AppendFsync::No)).await;
    log.append(&grant(1));
    let during = Arc::clone(&log);
    log.snapshot(move |emit| {
        // The table changes while it is iterated: that change is in log.2.
        during.append(&grant(2));
        emit(grant(1));
    })
    .await
    .unwrap();
    // The barrier synced log.2 even under `no`; kill the process here (no shutdown).
    let log2 = fs::read(tmp.path().join(DataFile::Log(2).name())).unwrap();
    assert_eq!(decode_log_bytes(&log2).unwrap().0, vec![grant(2)]);
    drop(log);
    assert_eq!(
        reopen_records(tmp.path()).await,
        vec![grant(1), Record::TokenHighWater { upto: 3 }, grant(2)]
    );
}

#[tokio::test]
async fn crash_after_rotation_before_snapshot() {
    // log.2 created (maybe only part of its header), snapshot.2.tmp half written.
    for log2_len in [0, 5, HEADER_LEN] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        write_data_file(dir, DataFile::Log(1), &[grant(1), grant(2)]);
        let header = FileKind::Log.header();
        fs::write(dir.join(DataFile::Log(2).name()), &header[..log2_len]).unwrap();
        let tmp_bytes = write_data_file(dir, DataFile::SnapshotTmp(2), &[grant(2)]);
        fs::write(
            dir.join(DataFile::SnapshotTmp(2).name()),
            &tmp_bytes[..tmp_bytes.len() - 3],
        )
        .unwrap();

        let (log, recovered) = open(config(dir, AppendFsync::Always)).await;
        assert_eq!(
            recovered.records,
            vec![grant(1), grant(2)],
            "log.2 of {log2_len} bytes"
        );
        assert_eq!(
            names(dir),
            vec![DataFile::Log(1).name(), DataFile::Log(2).name()]
        );
        log.wait_durable(log.append(&grant(3))).await.unwrap();
        log.shutdown().await;
        assert_eq!(
            reopen_records(dir).await,
            vec![grant(1), grant(2), grant(3)]
        );
    }
}

#[tokio::test]
async fn crash_after_rename_before_deleting_the_old_log() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_data_file(dir, DataFile::Snapshot(1), &[grant(0)]);
    write_data_file(dir, DataFile::Log(1), &[grant(1), grant(2)]);
    write_data_file(dir, DataFile::Snapshot(2), &[grant(2)]);
    // log.2 overlaps the snapshot (appended while `live` ran) and goes on.
    write_data_file(dir, DataFile::Log(2), &[grant(2), grant(3)]);

    let (log, recovered) = open(config(dir, AppendFsync::Always)).await;
    assert_eq!(recovered.records, vec![grant(2), grant(2), grant(3)]);
    assert_eq!(recovered.token_high_water(), 4);
    assert_eq!(
        names(dir),
        vec![DataFile::Log(2).name(), DataFile::Snapshot(2).name()]
    );
    log.shutdown().await;
}

#[tokio::test]
async fn a_snapshot_without_its_log_starts_that_log() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_data_file(dir, DataFile::Snapshot(4), &[grant(7)]);
    let (log, recovered) = open(config(dir, AppendFsync::Always)).await;
    assert_eq!(recovered.records, vec![grant(7)]);
    assert_eq!(log.stats().generation, 4);
    log.shutdown().await;
    assert_eq!(
        names(dir),
        vec![DataFile::Log(4).name(), DataFile::Snapshot(4).name()]
    );
}

#[tokio::test]
async fn a_missing_generation_stops_start_up_unless_repair() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_data_file(dir, DataFile::Snapshot(2), &[grant(1)]);
    write_data_file(dir, DataFile::Log(3), &[grant(3)]);
    let err = Log::open(config(dir, AppendFsync::Always)).await.err();
    assert!(
        matches!(&err, Some(StartupError::Persistence(msg)) if msg.contains("--repair")),
        "{err:?}"
    );
    let mut cfg = config(dir, AppendFsync::Always);
    cfg.repair = true;
    let (log, recovered) = open(cfg).await;
    assert_eq!(recovered.records, vec![grant(1), grant(3)]);
    log.shutdown().await;
}

#[tokio::test]
async fn a_torn_older_log_is_damage() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let bytes = write_data_file(dir, DataFile::Log(1), &[grant(1), grant(2)]);
    fs::write(dir.join(DataFile::Log(1).name()), &bytes[..bytes.len() - 2]).unwrap();
    write_data_file(dir, DataFile::Log(2), &[grant(3)]);
    let err = Log::open(config(dir, AppendFsync::Always)).await.err();
    assert!(
        matches!(err, Some(StartupError::CorruptLog { .. })),
        "{err:?}"
    );

    let mut cfg = config(dir, AppendFsync::Always);
    cfg.repair = true;
    let (log, recovered) = open(cfg).await;
    assert_eq!(recovered.records, vec![grant(1)]);
    log.shutdown().await;
    assert_eq!(names(dir), vec![DataFile::Log(1).name()]);
}

#[tokio::test]
async fn a_cut_snapshot_is_damage() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let bytes = write_data_file(dir, DataFile::Snapshot(1), &[grant(1), grant(2)]);
    fs::write(
        dir.join(DataFile::Snapshot(1).name()),
        &bytes[..bytes.len() - 1],
    )
    .unwrap();
    let err = Log::open(config(dir, AppendFsync::Always)).await.err();
    assert!(
        matches!(err, Some(StartupError::CorruptLog { .. })),
        "{err:?}"
    );
}

#[tokio::test]
async fn foreign_files_are_refused_even_with_repair() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fs::write(dir.join(DataFile::Log(1).name()), b"not a baton log at all").unwrap();
    let mut cfg = config(dir, AppendFsync::Always);
    cfg.repair = true;
    let err = Log::open(cfg).await.err();
    assert!(
        matches!(&err, Some(StartupError::Persistence(msg)) if msg.contains("bad magic")),
        "{err:?}"
    );
    // Other names in the directory are left alone.
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("notes.txt"), b"x").unwrap();
    let (log, _) = open(config(tmp.path(), AppendFsync::Always)).await;
    log.shutdown().await;
    assert!(names(tmp.path()).contains(&"notes.txt".to_owned()));
}

#[tokio::test]
async fn wants_snapshot_after_the_threshold() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(tmp.path(), AppendFsync::Always);
    cfg.snapshot_after_bytes = 1000;
    let (log, _) = open(cfg).await;
    assert!(!log.wants_snapshot());
    let mut lsn = 0;
    for i in 0..40 {
        lsn = log.append(&grant(i));
    }
    log.wait_durable(lsn).await.unwrap();
    assert!(log.wants_snapshot());
    log.snapshot(|_| {}).await.unwrap();
    assert!(!log.wants_snapshot());
    log.shutdown().await;
}

#[tokio::test]
async fn after_shutdown_nothing_more_is_durable() {
    let tmp = tempfile::tempdir().unwrap();
    let (log, _) = open(config(tmp.path(), AppendFsync::Always)).await;
    log.shutdown().await;
    log.shutdown().await;
    let lsn = log.append(&grant(1));
    assert_eq!(log.wait_durable(lsn).await, Err(LogError::Closed));
    assert!(log.snapshot(|_| {}).await.is_err());
}

#[test]
fn token_high_water_takes_grants_and_marks() {
    let recovered = Recovered {
        records: vec![
            Record::TokenHighWater { upto: 10_000 },
            grant(20_000),
            Record::TokenHighWater { upto: 20_000 },
            Record::FlushAll,
        ],
        stats: RecoveryStats::default(),
        high_water: 0,
    };
    assert_eq!(recovered.token_high_water(), 20_001);
}

#[tokio::test]
async fn a_second_open_of_a_locked_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(config(dir.path(), AppendFsync::Always)).await;
    let err = Log::open(config(dir.path(), AppendFsync::Always))
        .await
        .expect_err("locked");
    let text = err.to_string();
    assert!(matches!(err, StartupError::DirInUse { .. }), "{text}");
    assert!(
        text.contains(&format!("pid {}", std::process::id())),
        "{text}"
    );
    drop(log);
    // Free again once the first log is gone.
    let _again = open(config(dir.path(), AppendFsync::Always)).await;
}

#[tokio::test]
async fn files_are_created_0600_in_a_0700_directory() {
    use std::os::unix::fs::PermissionsExt;
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("data");
    let (log, _) = open(config(&dir, AppendFsync::Always)).await;
    let lsn = log.append(&grant(1));
    log.wait_durable(lsn).await.unwrap();
    log.snapshot(|emit| emit(grant(2))).await.unwrap();
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    for entry in fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
    }
}

/// A log whose last frame is a string holding `inner` frames, cut `cut` bytes short.
fn log_with_embedded_frames(inner: &[Record], cut: usize) -> Vec<u8> {
    let mut value = vec![b'x'; 33];
    for record in inner {
        record.encode_frame(&mut value);
    }
    value.extend_from_slice(&[b'y'; 700]);
    let mut bytes = encode_file(
        FileKind::Log,
        &[
            grant(1),
            Record::StrSet {
                key: Bytes::from_static(b"v"),
                value: Bytes::from(value),
                deadline_ms: None,
            },
        ],
    );
    bytes.truncate(bytes.len() - cut);
    bytes
}

#[test]
fn a_torn_value_holding_valid_frames_is_a_torn_tail() {
    let inner = [grant(7), grant(8)];
    for cut in [1, 100, 699] {
        let bytes = log_with_embedded_frames(&inner, cut);
        let (records, valid) = decode_log_bytes(&bytes).expect("a torn tail, not damage");
        assert_eq!(records, vec![grant(1)], "cut {cut}");
        assert!(valid < bytes.len());
    }
}

#[test]
fn a_bad_frame_followed_by_frames_to_the_end_is_damage() {
    let records: Vec<Record> = (0..5).map(grant).collect();
    let mut bytes = encode_file(FileKind::Log, &records);
    let offsets = frame_offsets(&records);
    // Flip a payload byte of the second frame: the frames after it run to the end.
    bytes[HEADER_LEN + offsets[1] + 12] ^= 0xff;
    assert!(matches!(
        decode_log_bytes(&bytes),
        Err(LogDecodeError::Corrupt { .. })
    ));
}

#[test]
fn a_crafted_tail_of_frame_headers_is_a_torn_tail_found_in_linear_time() {
    // Every 8 bytes a length field pointing exactly at the end of the file, none valid:
    // checking each on its own would hash the rest of the tail each time (quadratic).
    let mut bytes = encode_file(FileKind::Log, &[grant(1)]);
    let start = bytes.len();
    let tail = 6 << 20;
    bytes.resize(start + tail, 0);
    let end = bytes.len();
    let mut at = start + 1;
    while at + 8 <= end {
        let len = (end - at - 8) as u32;
        bytes[at..at + 4].copy_from_slice(&len.to_le_bytes());
        at += 8;
    }
    let (records, valid) = decode_log_bytes(&bytes).expect("a torn tail");
    assert_eq!((records, valid), (vec![grant(1)], start));
    // A zero-filled tail is torn too.
    let mut zeros = encode_file(FileKind::Log, &[grant(1)]);
    zeros.resize(zeros.len() + tail, 0);
    assert!(decode_log_bytes(&zeros).is_ok());
}

#[test]
fn a_valid_frame_ending_the_file_after_a_bad_one_is_damage() {
    // Garbage, then one valid frame up to the end: damage, whatever the garbage holds.
    let mut bytes = encode_file(FileKind::Log, &[grant(1)]);
    let bad = bytes.len();
    bytes.extend_from_slice(&[0xAB; 1000]);
    grant(2).encode_frame(&mut bytes);
    match decode_log_bytes(&bytes) {
        Err(LogDecodeError::Corrupt { offset, .. }) => assert_eq!(offset, bad),
        other => panic!("expected damage, got {other:?}"),
    }
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_log_bytes(&bytes);
    }

    #[test]
    fn random_bytes_after_a_header_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut file = FileKind::Log.header().to_vec();
        file.extend(bytes);
        if let Ok((_, valid)) = decode_log_bytes(&file) {
            prop_assert!(valid <= file.len());
        }
    }

    #[test]
    fn valid_logs_with_flipped_bytes_never_panic(
        records in proptest::collection::vec(record_strategy(), 0..8),
        flip in any::<prop::sample::Index>(),
        mask in 1u8..,
    ) {
        let mut file = encode_file(FileKind::Log, &records);
        let at = flip.index(file.len());
        file[at] ^= mask;
        if let Ok((decoded, valid)) = decode_log_bytes(&file) {
            prop_assert!(valid <= file.len());
            prop_assert!(decoded.len() <= records.len());
            prop_assert_eq!(&decoded[..], &records[..decoded.len()]);
        }
    }

    #[test]
    fn a_cut_valid_log_gives_its_complete_prefix(
        records in proptest::collection::vec(record_strategy(), 0..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let file = encode_file(FileKind::Log, &records);
        let cut = cut.index(file.len() + 1);
        let offsets = frame_offsets(&records);
        let complete = offsets.iter().filter(|&&o| o <= cut).count().saturating_sub(1);
        let (decoded, _) = decode_log_bytes(&file[..cut]).unwrap();
        prop_assert_eq!(&decoded[..], &records[..complete]);
    }
}

/// Appends/s with `always` at 1 and 50 concurrent appenders on the disk under `target/`.
/// Run: `cargo test --lib persist::tests::bench_always_appenders -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark; run by name"]
async fn bench_always_appenders() {
    for appenders in [1, 50] {
        bench_always(appenders).await;
    }
}

async fn bench_always(appenders: u64) {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    fs::create_dir_all(&base).unwrap();
    let tmp = tempfile::tempdir_in(&base).unwrap();
    let (log, _) = open(config(tmp.path(), AppendFsync::Always)).await;
    let run_for = std::time::Duration::from_secs(3);
    let started = std::time::Instant::now();
    let tasks: Vec<_> = (0..appenders)
        .map(|t| {
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                let mut done = 0u64;
                while started.elapsed() < run_for {
                    let lsn = log.append(&grant(t * 1_000_000 + done));
                    log.wait_durable(lsn).await.unwrap();
                    done += 1;
                }
                done
            })
        })
        .collect();
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    let stats = log.stats();
    log.shutdown().await;
    println!(
        "always, {appenders} appenders: {total} records in {secs:.2} s = {:.0} appends/s, {} syncs \
         ({:.1} records/sync, {:.0} syncs/s)",
        total as f64 / secs,
        stats.syncs,
        total as f64 / stats.syncs.max(1) as f64,
        stats.syncs as f64 / secs
    );
}
