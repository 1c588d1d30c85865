//! The data directory's layout: file names, file headers and the fsync helpers.
//!
//! ```text
//! <dir>/log.<gen>            append-only log of generation <gen> (20 decimal digits)
//! <dir>/snapshot.<gen>       full state as of the start of log.<gen> (or later)
//! <dir>/snapshot.<gen>.tmp   a snapshot being written; never read, deleted at start
//! ```
//!
//! Every file starts with an 8-byte magic and a `u32 LE` format version, then frames
//! (see [`super::record`]). Recovery uses the newest snapshot and the logs of its generation
//! and later; older files are leftovers of an interrupted snapshot and are deleted.
//! A new file kind gets its own magic here and its own arm in [`DataFile::parse`].

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

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

/// Makes the directory's entries (creates, renames, deletes) durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates a new, empty log of generation `gen` with its header on disk and in the
/// directory. Fails if the file exists: generations are never reused.
pub(crate) fn create_log(dir: &Path, gen: u64) -> io::Result<File> {
    let path = dir.join(DataFile::Log(gen).name());
    let mut file = OpenOptions::new()
        .append(true)
        .create_new(true)
        .open(&path)?;
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
