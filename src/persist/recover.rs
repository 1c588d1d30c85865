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
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use super::files::{self, DataFile, DirLock, FileKind, HEADER_LEN, LOG_MAGIC, SNAPSHOT_MAGIC};
use super::record::{DecodeError, Record, FRAME_HEADER_LEN};
use super::LogConfig;
use crate::error::StartupError;

/// Largest frame payload accepted when reading (a bulk string is capped at 8 MiB by
/// default; this leaves room for a raised `--max-bulk-bytes`).
pub const MAX_FRAME_LEN: u32 = 1 << 30;

/// What recovery found: the records to replay, in order, and what it did.
#[derive(Debug, Clone, Default)]
pub struct Recovered {
    /// Snapshot records first, then log records, in the order they were written (empty
    /// when they were streamed to a callback, see [`Log::open_with`](super::Log::open_with)).
    pub records: Vec<Record>,
    /// Counts for the start-up log line and `INFO persistence`.
    pub stats: RecoveryStats,
    /// The largest `TokenHighWater::upto` or `Grant::token` read, 0 when there is none.
    pub high_water: i64,
}

impl Recovered {
    /// The highest fencing token that may have been handed out: the largest
    /// `TokenHighWater::upto` or `Grant::token` seen, 0 when there is none.
    pub fn token_high_water(&self) -> i64 {
        self.records
            .iter()
            .filter_map(Record::token)
            .fold(self.high_water, i64::max)
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

/// Where and why a streamed file stops.
#[derive(Debug)]
pub(crate) struct ScanEnd {
    /// End of the last valid frame (or of the header).
    pub(crate) valid_len: usize,
    /// A bad frame at this offset with valid data after it (then `valid_len` is the offset).
    pub(crate) damage: Option<(usize, FrameError)>,
}

/// Reads frames until the end or the first bad one; then looks whether valid frames
/// follow, which tells a torn tail from damage in the middle. In memory.
pub(crate) fn scan(bytes: &[u8], kind: FileKind) -> Result<Scan, LogDecodeError> {
    let mut records = Vec::new();
    let end =
        scan_reader(bytes, bytes.len(), kind, &mut |r| records.push(r)).map_err(|e| match e {
            ScanError::Decode(e) => e,
            // Reading a slice cannot fail.
            ScanError::Io(_) => LogDecodeError::BadMagic,
        })?;
    Ok(Scan {
        records,
        valid_len: end.valid_len,
        damage: end.damage,
    })
}

/// Why a file could not be scanned.
#[derive(Debug)]
pub(crate) enum ScanError {
    /// Not a file this build reads.
    Decode(LogDecodeError),
    /// Reading failed.
    Io(io::Error),
}

/// Reads as much of `buf` as the reader has: fewer bytes only at its end.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match reader.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Streams a file of `file_len` bytes from `reader`: each valid record goes to
/// `on_record` as it is read, so memory holds one frame, not the file. At the first bad
/// frame the rest of the file (the tail) is read to tell a torn tail from damage.
pub(crate) fn scan_reader(
    mut reader: impl Read,
    file_len: usize,
    kind: FileKind,
    on_record: &mut dyn FnMut(Record),
) -> Result<ScanEnd, ScanError> {
    let header = kind.header();
    let mut head = [0u8; HEADER_LEN];
    let got = read_full(&mut reader, &mut head).map_err(ScanError::Io)?;
    if got < HEADER_LEN {
        if header.starts_with(&head[..got]) {
            return Ok(ScanEnd {
                valid_len: 0,
                damage: None,
            });
        }
        return Err(ScanError::Decode(LogDecodeError::BadMagic));
    }
    let magic = match kind {
        FileKind::Log => LOG_MAGIC,
        FileKind::Snapshot => SNAPSHOT_MAGIC,
    };
    if head[..8] != magic {
        return Err(ScanError::Decode(LogDecodeError::BadMagic));
    }
    let version = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);
    if version != files::FORMAT_VERSION {
        return Err(ScanError::Decode(LogDecodeError::UnsupportedVersion(
            version,
        )));
    }

    let mut offset = HEADER_LEN;
    let mut frame = vec![0; FRAME_HEADER_LEN];
    loop {
        frame.clear();
        frame.extend_from_slice(&[0; FRAME_HEADER_LEN]);
        let got = read_full(&mut reader, &mut frame).map_err(ScanError::Io)?;
        if got == 0 {
            return Ok(ScanEnd {
                valid_len: offset,
                damage: None,
            });
        }
        frame.truncate(got);
        let reason = if got < FRAME_HEADER_LEN {
            FrameError::Truncated
        } else {
            let len = u32::from_le_bytes([frame[0], frame[1], frame[2], frame[3]]);
            let crc = u32::from_le_bytes([frame[4], frame[5], frame[6], frame[7]]);
            let end = offset + FRAME_HEADER_LEN + len as usize;
            if len == 0 || len > MAX_FRAME_LEN {
                FrameError::BadLength(len)
            } else if end > file_len {
                FrameError::Truncated
            } else {
                frame.resize(FRAME_HEADER_LEN + len as usize, 0);
                let got = read_full(&mut reader, &mut frame[FRAME_HEADER_LEN..])
                    .map_err(ScanError::Io)?;
                frame.truncate(FRAME_HEADER_LEN + got);
                let payload = &frame[FRAME_HEADER_LEN..];
                if got < len as usize {
                    FrameError::Truncated
                } else if crc32fast::hash(payload) != crc {
                    FrameError::BadChecksum
                } else {
                    match Record::decode(payload) {
                        Ok(record) => {
                            on_record(record);
                            offset = end;
                            continue;
                        }
                        Err(err) => FrameError::Record(err),
                    }
                }
            }
        };
        // The bad frame's bytes read so far, then the rest of the file.
        let mut tail = std::mem::take(&mut frame);
        reader.read_to_end(&mut tail).map_err(ScanError::Io)?;
        let damage = (!is_torn_tail(&tail, 0)).then_some((offset, reason));
        return Ok(ScanEnd {
            valid_len: offset,
            damage,
        });
    }
}

/// Whether the bytes from the bad frame at `bad` on are a torn tail, the end of a write
/// that a crash cut short, rather than damage with valid data after it. In time linear
/// in the tail.
///
/// It is damage only when valid frames follow that run exactly to the end of the file:
/// a frame that is not followed by valid frames to the end is part of the tail (so a
/// client's value holding bytes that look like frames, cut by a crash, is a tail). Such
/// a run exists exactly when one valid frame after `bad` ends at the end of the file, so
/// only the offsets whose length field points there are candidates; their checksums come
/// from [`suffix_crcs`] in one pass. Decoding a payload whose checksum matches is capped
/// at a few times the tail; past the cap the answer is "damage" (start-up stops and names
/// `--repair`: data is never dropped silently).
fn is_torn_tail(bytes: &[u8], bad: usize) -> bool {
    let end = bytes.len();
    let field =
        |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    // Frame starts whose length points exactly at the end, in ascending order.
    let starts: Vec<usize> = (bad + 1..end.saturating_sub(FRAME_HEADER_LEN - 1))
        .filter(|&start| {
            let len = field(start);
            len != 0 && len <= MAX_FRAME_LEN && start + FRAME_HEADER_LEN + len as usize == end
        })
        .collect();
    let payloads: Vec<usize> = starts.iter().map(|s| s + FRAME_HEADER_LEN).collect();
    let crcs = suffix_crcs(bytes, &payloads);
    let mut decode_budget = 4 * (end - bad) + (1 << 20);
    for ((&start, &payload), crc) in starts.iter().zip(&payloads).zip(crcs) {
        if crc != field(start + 4) {
            continue;
        }
        let Some(left) = decode_budget.checked_sub(end - payload) else {
            return false;
        };
        decode_budget = left;
        if Record::decode(&bytes[payload..]).is_ok() {
            return false;
        }
    }
    true
}

/// The CRC-32 (crc32fast's) of `bytes[at..]` for every offset of `ats` (ascending), in
/// time linear in the bytes plus a constant per offset.
///
/// With `Q(i)` the CRC of `bytes[ats[0]..i]`, the CRC combination rule
/// `crc(A ‖ B) = crc(A)·x^(8|B|) ⊕ crc(B)` (mod the CRC polynomial; the rule behind
/// `crc32fast::Hasher::combine`) gives `crc(bytes[a..]) = Q(end) ⊕ Q(a)·x^(8(end-a))`.
/// `Q` comes from one forward pass; `x^(8(end-a))` from one backward pass, one
/// table step per byte (processing a zero byte multiplies by x^8); then one 32-step
/// multiplication per offset. `Hasher::combine` itself computes the power anew each
/// time (about 30 multiplications), which for a tail full of candidates was the cost.
fn suffix_crcs(bytes: &[u8], ats: &[usize]) -> Vec<u32> {
    /// CRC-32's polynomial, reflected (as crc32fast and zlib).
    const POLY: u32 = 0xEDB8_8320;
    /// x^0 in the reflected representation.
    const ONE: u32 = 1 << 31;
    let Some(&first) = ats.first() else {
        return Vec::new();
    };
    let end = bytes.len();
    let mut table = [0u32; 256];
    for (n, slot) in table.iter_mut().enumerate() {
        let mut c = n as u32;
        for _ in 0..8 {
            c = if c & 1 == 1 { (c >> 1) ^ POLY } else { c >> 1 };
        }
        *slot = c;
    }
    // a·b mod POLY, reflected (zlib's multmodp).
    let mul = |a: u32, mut b: u32| {
        let mut product = 0;
        let mut m = ONE;
        while m != 0 {
            if a & m != 0 {
                product ^= b;
            }
            m >>= 1;
            b = if b & 1 == 1 { (b >> 1) ^ POLY } else { b >> 1 };
        }
        product
    };
    // Forward: Q at each offset, and at the end.
    let mut prefix = Vec::with_capacity(ats.len());
    let mut hasher = crc32fast::Hasher::new();
    let mut at = first;
    for &next in ats {
        hasher.update(&bytes[at..next]);
        prefix.push(hasher.clone().finalize());
        at = next;
    }
    hasher.update(&bytes[at..end]);
    let total = hasher.finalize();
    // Backward: x^(8(end-a)) at each offset.
    let mut out = vec![0; ats.len()];
    let mut power = ONE;
    let mut pos = end;
    for (i, &a) in ats.iter().enumerate().rev() {
        for _ in a..pos {
            power = table[(power & 0xFF) as usize] ^ (power >> 8);
        }
        pos = a;
        out[i] = total ^ mul(prefix[i], power);
    }
    out
}

#[cfg(test)]
mod suffix_crc_tests {
    use super::suffix_crcs;

    #[test]
    fn suffix_crcs_match_crc32fast() {
        // A fixed pseudo-random sequence (xorshift), so failures reproduce.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut byte = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        };
        for len in [0usize, 1, 2, 7, 64, 1000, 4099] {
            let bytes: Vec<u8> = (0..len).map(|_| byte()).collect();
            let ats: Vec<usize> = (0..=len).filter(|_| byte() < 64).collect();
            let got = suffix_crcs(&bytes, &ats);
            let want: Vec<u32> = ats.iter().map(|&a| crc32fast::hash(&bytes[a..])).collect();
            assert_eq!(got, want, "len {len}");
        }
    }
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
    /// The data directory's lock, held by the writer for the server's lifetime.
    pub(crate) dir_lock: DirLock,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StartupError + '_ {
    move |source| StartupError::DataDir {
        path: path.to_path_buf(),
        source,
    }
}

/// Walks the data directory (creating it if missing), cuts torn tails, applies `repair`,
/// deletes leftovers of interrupted snapshots and opens the log to append to.
pub(crate) fn recover(
    cfg: &LogConfig,
    on_record: &mut dyn FnMut(Record),
) -> Result<(Recovered, Resume), StartupError> {
    let dir = cfg.dir.as_path();
    files::create_dir(dir).map_err(io_err(dir))?;
    // Before anything is read or written: a second server on this directory stops here.
    let dir_lock = DirLock::acquire(dir)?;
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
        let mut count = 0u64;
        let (scan, file_len) = scan_file(&path, FileKind::Snapshot, &mut |record| {
            count += 1;
            out.high_water = out.high_water.max(record.token().unwrap_or(0));
            on_record(record);
        })?;
        // A snapshot is renamed into place only once complete: any cut is damage.
        let damage = scan.damage.clone().or_else(|| {
            (scan.valid_len < file_len).then_some((scan.valid_len, FrameError::Truncated))
        });
        if let Some((offset, reason)) = damage {
            if !cfg.repair {
                return Err(corrupt(&path, offset, reason));
            }
            tracing::warn!(file = %path.display(), offset, %reason,
                "repair: snapshot damaged, keeping only the records before the damage");
            out.stats.repaired_bytes += (file_len - offset) as u64;
            cut(&path, offset)?;
        }
        out.stats.snapshot_records = count;
        out.stats.records_replayed += count;
        out.stats.bytes_read += scan.valid_len as u64;
        out.stats.snapshot_loaded = Some(path);
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
        let mut count = 0u64;
        let (scan, file_len) = scan_file(&path, FileKind::Log, &mut |record| {
            count += 1;
            out.high_water = out.high_water.max(record.token().unwrap_or(0));
            on_record(record);
        })?;
        out.stats.records_replayed += count;
        // Only the newest log can be torn by a crash: older ones were synced before the
        // next one was created, so a cut there is damage with valid data after it.
        let damage = scan.damage.clone().or_else(|| {
            (!is_last && scan.valid_len < file_len)
                .then_some((scan.valid_len, FrameError::Truncated))
        });
        let mut cut_to = None;
        if let Some((offset, reason)) = damage {
            if !cfg.repair {
                return Err(corrupt(&path, offset, reason));
            }
            let mut dropped = (file_len - offset) as u64;
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
        } else if scan.valid_len < file_len {
            let torn = file_len - scan.valid_len;
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
        index += 1;
    }

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
                dir_lock,
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
                dir_lock,
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

/// Streams the file at `path` into `on_record` (see [`scan_reader`]); returns where it
/// stops and the file's length.
fn scan_file(
    path: &Path,
    kind: FileKind,
    on_record: &mut dyn FnMut(Record),
) -> Result<(ScanEnd, usize), StartupError> {
    let file = File::open(path).map_err(io_err(path))?;
    let len = file.metadata().map_err(io_err(path))?.len();
    let len = usize::try_from(len)
        .map_err(|_| StartupError::Persistence(format!("{}: file too large", path.display())))?;
    let reader = BufReader::with_capacity(1 << 20, file);
    match scan_reader(reader, len, kind, on_record) {
        Ok(end) => Ok((end, len)),
        Err(ScanError::Io(err)) => Err(io_err(path)(err)),
        Err(ScanError::Decode(err)) => Err(bad_file(path, err)),
    }
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
