//! Recovery: reads the data directory back into the records to replay.
//!
//! Owns the decoding of whole files ([`decode_log_bytes`], pure, shared with the fuzz
//! target) and the start-up walk over the directory (`recover`, called by
//! [`Log::open`](super::Log::open)): newest complete snapshot, then every log of its
//! generation and later, in order.
//!
//! Damage rules, the same for every file:
//! - a torn tail (a bad or partial frame with no valid frame after it) in the newest log is
//!   what a crash during a write leaves: it is cut off with a warning;
//! - anything else (a bad frame followed by a valid one, a torn older log or snapshot, a
//!   missing generation) stops start-up with [`StartupError::CorruptLog`] naming the file,
//!   the offset and the remedy, unless `repair` is set: then the file is cut at the damage
//!   and every later log is deleted, with a warning.
//!
//! To add a check, extend `scan` (per file) or `recover` (across files) and add a
//! crafted-file test below.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::files::{self, DataFile, FileKind, HEADER_LEN, LOG_MAGIC, SNAPSHOT_MAGIC};
use super::record::{DecodeError, Record, FRAME_HEADER_LEN};
use super::LogConfig;
use crate::error::StartupError;

/// Largest frame payload accepted when reading (a bulk string is capped at 8 MiB by
/// default; this leaves room for a raised `--max-bulk-bytes`).
pub const MAX_FRAME_LEN: u32 = 1 << 30;

/// What recovery found: the records to replay, in order, and what it did.
#[derive(Debug, Clone, Default)]
pub struct Recovered {
    /// Snapshot records first, then log records, in the order they were written.
    pub records: Vec<Record>,
    /// Counts for the start-up log line and `INFO persistence`.
    pub stats: RecoveryStats,
}

impl Recovered {
    /// The highest fencing token that may have been handed out: the largest
    /// `TokenHighWater::upto` or `Grant::token` seen, 0 when there is none.
    pub fn token_high_water(&self) -> i64 {
        self.records
            .iter()
            .filter_map(Record::token)
            .fold(0, i64::max)
    }
}

/// What recovery read, cut and dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryStats {
    /// Records returned for replay (snapshot plus logs).
    pub records_replayed: u64,
    /// Of those, records that came from the snapshot.
    pub snapshot_records: u64,
    /// Bytes of valid data read (headers included).
    pub bytes_read: u64,
    /// Bytes of a torn tail cut off the newest log (0: none).
    pub torn_tail_bytes: u64,
    /// Bytes dropped by `repair` at damage (0: none), later logs included.
    pub repaired_bytes: u64,
    /// The snapshot that was loaded, if any.
    pub snapshot_loaded: Option<PathBuf>,
    /// Log files replayed.
    pub log_files: usize,
}

/// Why a file's bytes are not a log (or snapshot) this build can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogDecodeError {
    /// The file does not start with baton's magic.
    #[error("not a baton data file (bad magic)")]
    BadMagic,
    /// The file was written by a format version this build does not know.
    #[error("unsupported format version {0}")]
    UnsupportedVersion(u32),
    /// A bad frame at `offset` is followed by valid data: not a torn write.
    #[error("damaged record at byte offset {offset}: {reason}")]
    Corrupt {
        /// File offset of the first bad frame.
        offset: usize,
        /// What is wrong with it.
        reason: FrameError,
    },
}

/// What is wrong with one frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Fewer bytes left than a frame header or its announced payload.
    #[error("truncated frame")]
    Truncated,
    /// The length field is 0 or over [`MAX_FRAME_LEN`].
    #[error("impossible length {0}")]
    BadLength(u32),
    /// The payload does not match its checksum.
    #[error("checksum mismatch")]
    BadChecksum,
    /// The checksum matches but the payload is not a record.
    #[error("{0}")]
    Record(#[from] DecodeError),
}

/// Decodes a whole log file (header and frames); pure, for recovery and fuzzing.
///
/// Returns the records of the valid prefix and its length in bytes: when that is less
/// than `bytes.len()`, the rest is a torn tail (no valid frame follows the first bad one).
/// A file shorter than the header that starts like one is torn at 0.
///
/// # Errors
///
/// [`LogDecodeError`]: a foreign or newer file, or a bad frame followed by valid data.
pub fn decode_log_bytes(bytes: &[u8]) -> Result<(Vec<Record>, usize), LogDecodeError> {
    let scan = scan(bytes, FileKind::Log)?;
    match scan.damage {
        Some((offset, reason)) => Err(LogDecodeError::Corrupt { offset, reason }),
        None => Ok((scan.records, scan.valid_len)),
    }
}

/// Decodes a buffer of frames with no file header (a replicated batch of records).
///
/// # Errors
/// The first frame that is torn or damaged: a batch is written whole or not at all.
pub fn decode_frames(bytes: &[u8]) -> Result<Vec<Record>, FrameError> {
    let mut records = Vec::new();
    let mut offset = 0;
    while offset < bytes.len() {
        let (record, next) = frame_at(bytes, offset)?;
        records.push(record);
        offset = next;
    }
    Ok(records)
}

/// One file's decoded prefix and where and why it stops.
#[derive(Debug)]
pub(crate) struct Scan {
    /// Records before `valid_len`.
    pub(crate) records: Vec<Record>,
    /// End of the last valid frame (or of the header).
    pub(crate) valid_len: usize,
    /// A bad frame at this offset with valid data after it (then `valid_len` is the offset).
    pub(crate) damage: Option<(usize, FrameError)>,
}

/// Reads frames until the end or the first bad one; then looks whether any valid frame
/// follows, which tells a torn tail from damage in the middle.
pub(crate) fn scan(bytes: &[u8], kind: FileKind) -> Result<Scan, LogDecodeError> {
    let header = kind.header();
    if bytes.len() < HEADER_LEN {
        if header.starts_with(bytes) {
            return Ok(Scan {
                records: Vec::new(),
                valid_len: 0,
                damage: None,
            });
        }
        return Err(LogDecodeError::BadMagic);
    }
    let magic = match kind {
        FileKind::Log => LOG_MAGIC,
        FileKind::Snapshot => SNAPSHOT_MAGIC,
    };
    if bytes[..8] != magic {
        return Err(LogDecodeError::BadMagic);
    }
    let mut version = [0; 4];
    version.copy_from_slice(&bytes[8..HEADER_LEN]);
    let version = u32::from_le_bytes(version);
    if version != files::FORMAT_VERSION {
        return Err(LogDecodeError::UnsupportedVersion(version));
    }

    let mut records = Vec::new();
    let mut offset = HEADER_LEN;
    while offset < bytes.len() {
        match frame_at(bytes, offset) {
            Ok((record, next)) => {
                records.push(record);
                offset = next;
            }
            Err(reason) => {
                let damage = ((offset + 1)..bytes.len())
                    .any(|later| frame_at(bytes, later).is_ok())
                    .then_some((offset, reason));
                return Ok(Scan {
                    records,
                    valid_len: offset,
                    damage,
                });
            }
        }
    }
    Ok(Scan {
        records,
        valid_len: offset,
        damage: None,
    })
}

/// The frame starting at `offset` and the offset after it.
fn frame_at(bytes: &[u8], offset: usize) -> Result<(Record, usize), FrameError> {
    let rest = bytes.get(offset..).unwrap_or_default();
    if rest.len() < FRAME_HEADER_LEN {
        return Err(FrameError::Truncated);
    }
    let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
    let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
    if len == 0 || len > MAX_FRAME_LEN {
        return Err(FrameError::BadLength(len));
    }
    let end = FRAME_HEADER_LEN + len as usize;
    let payload = rest
        .get(FRAME_HEADER_LEN..end)
        .ok_or(FrameError::Truncated)?;
    if crc32fast::hash(payload) != crc {
        return Err(FrameError::BadChecksum);
    }
    Ok((Record::decode(payload)?, offset + end))
}

/// What start-up hands to the writer: the log to append to and the token mark so far.
#[derive(Debug)]
pub(crate) struct Resume {
    /// Generation of the log to append to.
    pub(crate) generation: u64,
    /// That log, opened for appending, its valid content on disk.
    pub(crate) file: File,
    /// Its length in bytes.
    pub(crate) len: u64,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StartupError + '_ {
    move |source| StartupError::DataDir {
        path: path.to_path_buf(),
        source,
    }
}

/// Walks the data directory (creating it if missing), cuts torn tails, applies `repair`,
/// deletes leftovers of interrupted snapshots and opens the log to append to.
pub(crate) fn recover(cfg: &LogConfig) -> Result<(Recovered, Resume), StartupError> {
    let dir = cfg.dir.as_path();
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let mut logs = Vec::new();
    let mut snapshots = Vec::new();
    let mut leftovers = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let Some(name) = entry.file_name().to_str().and_then(DataFile::parse) else {
            continue;
        };
        match name {
            DataFile::Log(gen) => logs.push(gen),
            DataFile::Snapshot(gen) => snapshots.push(gen),
            DataFile::SnapshotTmp(_) => leftovers.push(name),
        }
    }
    logs.sort_unstable();
    snapshots.sort_unstable();

    let mut out = Recovered::default();
    let snapshot_gen = snapshots.last().copied();
    // Older snapshots and logs below the newest snapshot are covered by it.
    leftovers.extend(
        snapshots
            .iter()
            .filter(|&&g| Some(g) != snapshot_gen)
            .map(|&g| DataFile::Snapshot(g)),
    );
    if let Some(s) = snapshot_gen {
        leftovers.extend(logs.iter().filter(|&&g| g < s).map(|&g| DataFile::Log(g)));
        logs.retain(|&g| g >= s);
        let path = dir.join(DataFile::Snapshot(s).name());
        let bytes = fs::read(&path).map_err(io_err(&path))?;
        let scan = scan(&bytes, FileKind::Snapshot).map_err(|e| bad_file(&path, e))?;
        // A snapshot is renamed into place only once complete: any cut is damage.
        let damage = scan.damage.clone().or_else(|| {
            (scan.valid_len < bytes.len()).then_some((scan.valid_len, FrameError::Truncated))
        });
        if let Some((offset, reason)) = damage {
            if !cfg.repair {
                return Err(corrupt(&path, offset, reason));
            }
            tracing::warn!(file = %path.display(), offset, %reason,
                "repair: snapshot damaged, keeping only the records before the damage");
            out.stats.repaired_bytes += (bytes.len() - offset) as u64;
            cut(&path, offset)?;
        }
        out.stats.snapshot_records = scan.records.len() as u64;
        out.stats.bytes_read += scan.valid_len as u64;
        out.stats.snapshot_loaded = Some(path);
        out.records = scan.records;
    }

    // The logs to replay must be consecutive generations starting at the snapshot's.
    let first_expected = snapshot_gen.unwrap_or(1);
    let mut expected = first_expected;
    for &gen in &logs {
        if gen != expected {
            let missing = dir.join(DataFile::Log(expected).name());
            let msg = format!(
                "{}: missing (found {}); start with --repair to replay the data directory \
                 as it is",
                missing.display(),
                DataFile::Log(gen).name()
            );
            if !cfg.repair {
                return Err(StartupError::Persistence(msg));
            }
            tracing::warn!("repair: {msg}");
        }
        expected = gen + 1;
    }

    let mut index = 0;
    while index < logs.len() {
        let gen = logs[index];
        let is_last = index + 1 == logs.len();
        let path = dir.join(DataFile::Log(gen).name());
        let bytes = fs::read(&path).map_err(io_err(&path))?;
        let scan = scan(&bytes, FileKind::Log).map_err(|e| bad_file(&path, e))?;
        // Only the newest log can be torn by a crash: older ones were synced before the
        // next one was created, so a cut there is damage with valid data after it.
        let damage = scan.damage.clone().or_else(|| {
            (!is_last && scan.valid_len < bytes.len())
                .then_some((scan.valid_len, FrameError::Truncated))
        });
        let mut cut_to = None;
        if let Some((offset, reason)) = damage {
            if !cfg.repair {
                return Err(corrupt(&path, offset, reason));
            }
            let mut dropped = (bytes.len() - offset) as u64;
            for &later in &logs[index + 1..] {
                let later_path = dir.join(DataFile::Log(later).name());
                dropped += fs::metadata(&later_path).map(|m| m.len()).unwrap_or(0);
                fs::remove_file(&later_path).map_err(io_err(&later_path))?;
            }
            tracing::warn!(file = %path.display(), offset, %reason, dropped_bytes = dropped,
                "repair: dropping everything after the damage");
            out.stats.repaired_bytes += dropped;
            logs.truncate(index + 1);
            cut_to = Some(offset);
        } else if scan.valid_len < bytes.len() {
            let torn = bytes.len() - scan.valid_len;
            tracing::warn!(file = %path.display(), offset = scan.valid_len, torn_bytes = torn,
                "cutting off a torn tail left by a crash during a write");
            out.stats.torn_tail_bytes += torn as u64;
            cut_to = Some(scan.valid_len);
        }
        // A log cut inside its header (a crash right after its creation) gets a new one.
        if scan.valid_len < HEADER_LEN {
            cut_to = Some(0);
        }
        if let Some(len) = cut_to {
            cut(&path, len)?;
        }
        out.stats.bytes_read += scan.valid_len as u64;
        out.stats.log_files += 1;
        out.records.extend(scan.records);
        index += 1;
    }
    out.stats.records_replayed = out.records.len() as u64;

    let resume = match logs.last() {
        Some(&gen) => {
            let path = dir.join(DataFile::Log(gen).name());
            let file = OpenOptions::new()
                .append(true)
                .open(&path)
                .map_err(io_err(&path))?;
            let len = file.metadata().map_err(io_err(&path))?.len();
            Resume {
                generation: gen,
                file,
                len,
            }
        }
        None => {
            let gen = first_expected;
            let path = dir.join(DataFile::Log(gen).name());
            let file = files::create_log(dir, gen).map_err(io_err(&path))?;
            Resume {
                generation: gen,
                file,
                len: HEADER_LEN as u64,
            }
        }
    };

    if !leftovers.is_empty() {
        for file in &leftovers {
            let path = dir.join(file.name());
            tracing::info!(file = %path.display(), "deleting a leftover of an earlier snapshot");
            fs::remove_file(&path).map_err(io_err(&path))?;
        }
        files::sync_dir(dir).map_err(io_err(dir))?;
    }
    Ok((out, resume))
}

/// Truncates `path` to `len` and syncs it; a log cut inside its header gets a fresh header.
fn cut(path: &Path, len: usize) -> Result<(), StartupError> {
    let mut file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_err(path))?;
    if len < HEADER_LEN {
        file.set_len(0).map_err(io_err(path))?;
        file.write_all(&FileKind::Log.header())
            .map_err(io_err(path))?;
    } else {
        file.set_len(len as u64).map_err(io_err(path))?;
    }
    file.sync_all().map_err(io_err(path))
}

fn corrupt(path: &Path, offset: usize, reason: FrameError) -> StartupError {
    StartupError::CorruptLog {
        file: path.to_path_buf(),
        offset: offset as u64,
        reason: reason.to_string(),
    }
}

fn bad_file(path: &Path, err: LogDecodeError) -> StartupError {
    match err {
        LogDecodeError::Corrupt { offset, reason } => corrupt(path, offset, reason),
        other => StartupError::Persistence(format!("{}: {other}", path.display())),
    }
}
