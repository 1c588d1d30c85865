//! The data directory's layout: file names, file headers and the fsync helpers.
//!
//! ```text
//! <dir>/log.<gen>            append-only log of generation <gen> (20 decimal digits)
//! <dir>/snapshot.<gen>       full state as of the start of log.<gen> (or later)
//! <dir>/snapshot.<gen>.tmp   a snapshot being written; never read, deleted at start
//! <dir>/LOCK                 flock'ed by the running server, holds its PID
//! ```
//!
//! Files are created 0600 and the directory 0700: they hold owners and values of clients.
//! The directory lock is `flock` (as etcd and PostgreSQL lock theirs), taken through
//! `rustix` (a safe wrapper; std's `File::try_lock` needs a newer Rust than ours); the
//! kernel drops it when the process dies, so a crash never leaves a stale lock.
//!
//! Every file starts with an 8-byte magic and a `u32 LE` format version, then frames
//! (see [`super::record`]). Recovery uses the newest snapshot and the logs of its generation
//! and later; older files are leftovers of an interrupted snapshot and are deleted.
//! A new file kind gets its own magic here and its own arm in [`DataFile::parse`].

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use crate::error::StartupError;

/// Name of the lock file inside the data directory.
pub(crate) const LOCK_NAME: &str = "LOCK";
/// Permissions of every file baton creates.
pub(crate) const FILE_MODE: u32 = 0o600;
/// Permissions of a data directory baton creates.
pub(crate) const DIR_MODE: u32 = 0o700;

/// Magic at the start of a log file.
pub(crate) const LOG_MAGIC: [u8; 8] = *b"BATONLOG";
/// Magic at the start of a snapshot file.
pub(crate) const SNAPSHOT_MAGIC: [u8; 8] = *b"BATONSNP";
/// The format version this build writes and reads. Bump it when a layout changes.
pub const FORMAT_VERSION: u32 = 1;
/// Bytes of a file header: magic then version.
pub const HEADER_LEN: usize = 12;

/// Which kind of data file a header belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileKind {
    /// `log.<gen>`.
    Log,
    /// `snapshot.<gen>`.
    Snapshot,
}

impl FileKind {
    /// The header that starts a file of this kind.
    pub(crate) fn header(self) -> [u8; HEADER_LEN] {
        let magic = match self {
            FileKind::Log => LOG_MAGIC,
            FileKind::Snapshot => SNAPSHOT_MAGIC,
        };
        let mut out = [0; HEADER_LEN];
        out[..8].copy_from_slice(&magic);
        out[8..].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        out
    }
}

/// A file of the data directory, recognised by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DataFile {
    /// `log.<gen>`.
    Log(u64),
    /// `snapshot.<gen>`.
    Snapshot(u64),
    /// `snapshot.<gen>.tmp`.
    SnapshotTmp(u64),
}

impl DataFile {
    /// Recognises one of baton's file names; anything else is `None` (and left alone).
    pub(crate) fn parse(name: &str) -> Option<DataFile> {
        let gen = |digits: &str| {
            (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
                .then(|| digits.parse::<u64>().ok())
                .flatten()
        };
        if let Some(rest) = name.strip_prefix("log.") {
            return gen(rest).map(DataFile::Log);
        }
        let rest = name.strip_prefix("snapshot.")?;
        match rest.strip_suffix(".tmp") {
            Some(digits) => gen(digits).map(DataFile::SnapshotTmp),
            None => gen(rest).map(DataFile::Snapshot),
        }
    }

    /// The file's name inside the data directory.
    pub(crate) fn name(self) -> String {
        match self {
            DataFile::Log(gen) => format!("log.{gen:020}"),
            DataFile::Snapshot(gen) => format!("snapshot.{gen:020}"),
            DataFile::SnapshotTmp(gen) => format!("snapshot.{gen:020}.tmp"),
        }
    }
}

/// Creates the data directory (and its parents) 0700 if it is missing; an existing one
/// keeps its permissions.
pub(crate) fn create_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir)
}

/// Options that create a file 0600.
pub(crate) fn private_file() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.mode(FILE_MODE);
    options
}

/// The data directory's exclusive lock, held while the value lives (and by the kernel
/// until the process exits).
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

impl DirLock {
    /// Locks `dir` (which must exist) and writes this process's PID into its LOCK file.
    ///
    /// # Errors
    /// [`StartupError::DirInUse`] naming the other process when it is locked already.
    pub(crate) fn acquire(dir: &Path) -> Result<DirLock, StartupError> {
        let path = dir.join(LOCK_NAME);
        let io_err = |source| StartupError::DataDir {
            path: path.clone(),
            source,
        };
        let mut file = private_file()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err)?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(err) if err == rustix::io::Errno::WOULDBLOCK => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let pid = text.trim();
                return Err(StartupError::DirInUse {
                    dir: dir.to_path_buf(),
                    pid: if pid.is_empty() { "unknown" } else { pid }.to_string(),
                });
            }
            Err(err) => return Err(io_err(err.into())),
        }
        file.set_len(0).map_err(io_err)?;
        file.write_all(format!("{}\n", std::process::id()).as_bytes())
            .map_err(io_err)?;
        Ok(DirLock { _file: file })
    }
}

/// Makes the directory's entries (creates, renames, deletes) durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates a new, empty log of generation `gen` with its header on disk and in the
/// directory. Fails if the file exists: generations are never reused.
pub(crate) fn create_log(dir: &Path, gen: u64) -> io::Result<File> {
    let path = dir.join(DataFile::Log(gen).name());
    let mut file = private_file().append(true).create_new(true).open(&path)?;
    file.write_all(&FileKind::Log.header())?;
    file.sync_data()?;
    sync_dir(dir)?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for file in [
            DataFile::Log(1),
            DataFile::Snapshot(42),
            DataFile::SnapshotTmp(u64::MAX),
        ] {
            assert_eq!(DataFile::parse(&file.name()), Some(file));
        }
        assert_eq!(DataFile::parse("log."), None);
        assert_eq!(DataFile::parse("log.12a"), None);
        assert_eq!(DataFile::parse("log.+1"), None);
        assert_eq!(DataFile::parse("snapshot.1.tmp.x"), None);
        assert_eq!(DataFile::parse("README"), None);
    }

    #[test]
    fn names_sort_by_generation() {
        assert!(DataFile::Log(9).name() < DataFile::Log(10).name());
    }
}
