//! Raft's durable state: the log entries and the hard state, in one append-only file.
//!
//! raft-rs reads its log through the `Storage` trait; [`DiskStorage`] keeps that view in a
//! `MemStorage` and makes every change durable first in `<dir>/raft.log`:
//!
//! ```text
//! frame = len: u32 LE | crc32: u32 LE (of kind and payload) | kind: u8 | payload
//! kind 1: an Entry (protobuf)      kind 2: the HardState (protobuf)
//! ```
//!
//! Entries are written as raft-rs hands them over; an entry at an index already in the
//! file replaces it and every later one (a leader overwrote a follower's uncommitted
//! tail), both in memory and at replay. Start-up replays the file in order and cuts a
//! torn tail (a crash during a write). The membership is the static `--peers` list, set
//! at every start. The log is not compacted (no snapshots yet): it grows with the
//! history, and a node that restarts replays all of it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState};
use raft::storage::MemStorage;

use crate::error::StartupError;

/// The file name inside `--dir`.
pub(crate) const FILE_NAME: &str = "raft.log";

const KIND_ENTRY: u8 = 1;
const KIND_HARD_STATE: u8 = 2;
const FRAME_HEADER: usize = 8;
/// Largest frame accepted at replay.
const MAX_FRAME: usize = 1 << 30;

/// Raft's log and hard state, in memory for raft-rs and on disk for restarts.
pub(crate) struct DiskStorage {
    /// What raft-rs reads.
    pub(crate) mem: MemStorage,
    file: File,
    path: PathBuf,
    buf: Vec<u8>,
}

impl DiskStorage {
    /// Opens (creating) `<dir>/raft.log`, replays it and sets the voters.
    pub(crate) fn open(dir: &Path, voters: &[u64]) -> Result<DiskStorage, StartupError> {
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StartupError::DataDir { path, source }
        };
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let path = dir.join(FILE_NAME);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(err) => return Err(io_err(&path)(err)),
        };
        let mem = MemStorage::new();
        let valid = {
            let mut core = mem.wl();
            core.set_conf_state(ConfState::from((voters.to_vec(), Vec::new())));
            let mut offset = 0;
            let mut last = 0;
            while let Some((kind, payload, next)) = frame_at(&bytes, offset) {
                match kind {
                    KIND_ENTRY => {
                        let entry = Entry::parse_from_bytes(payload).map_err(|e| bad(&path, e))?;
                        if entry.index == 0 || entry.index > last + 1 {
                            return Err(StartupError::Persistence(format!(
                                "{}: entry {} after entry {last}: the log has a gap",
                                path.display(),
                                entry.index
                            )));
                        }
                        let index = entry.index;
                        core.append(&[entry]).map_err(|e| bad(&path, e))?;
                        last = index;
                    }
                    KIND_HARD_STATE => {
                        let hs = HardState::parse_from_bytes(payload).map_err(|e| bad(&path, e))?;
                        core.set_hardstate(hs);
                    }
                    other => {
                        return Err(StartupError::Persistence(format!(
                            "{}: unknown frame kind {other} at offset {offset}",
                            path.display()
                        )))
                    }
                }
                offset = next;
            }
            // The commit index may have been written ahead of entries cut with a torn tail.
            if core.hard_state().commit > last {
                core.mut_hard_state().commit = last;
            }
            offset
        };
        if valid < bytes.len() {
            tracing::warn!(file = %path.display(), offset = valid,
                torn_bytes = bytes.len() - valid, "cutting off a torn tail of the raft log");
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_err(&path))?;
        file.set_len(valid as u64).map_err(io_err(&path))?;
        file.sync_all().map_err(io_err(&path))?;
        {
            use raft::Storage as _;
            let hs = mem.rl().hard_state().clone();
            tracing::info!(
                entries = mem.last_index().unwrap_or(0),
                term = hs.term,
                commit = hs.commit,
                "opened the raft log"
            );
        }
        Ok(DiskStorage {
            mem,
            file,
            path,
            buf: Vec::new(),
        })
    }

    /// Appends `entries` (replacing any at their indexes and after) to memory and file.
    pub(crate) fn append(&mut self, entries: &[Entry]) -> io::Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        for entry in entries {
            push_frame(&mut self.buf, KIND_ENTRY, entry)?;
        }
        self.mem.wl().append(entries).map_err(io::Error::other)?;
        Ok(())
    }

    /// Records the hard state (term, vote, commit).
    pub(crate) fn set_hard_state(&mut self, hs: &HardState) -> io::Result<()> {
        push_frame(&mut self.buf, KIND_HARD_STATE, hs)?;
        self.mem.wl().set_hardstate(hs.clone());
        Ok(())
    }

    /// Raises the commit index (a light ready's); durable with the next write.
    pub(crate) fn set_commit(&mut self, commit: u64) -> io::Result<()> {
        let hs = {
            let mut core = self.mem.wl();
            core.mut_hard_state().commit = commit;
            core.hard_state().clone()
        };
        push_frame(&mut self.buf, KIND_HARD_STATE, &hs)
    }

    /// Writes what was queued and, when `sync`, fdatasyncs it.
    pub(crate) fn flush(&mut self, sync: bool) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.file.write_all(&self.buf)?;
            self.buf.clear();
            if sync {
                self.file.sync_data()?;
            }
        }
        Ok(())
    }

    /// The entries `lo..=hi` (for rebuilding the table from the committed log).
    pub(crate) fn entries(&self, lo: u64, hi: u64) -> Vec<Entry> {
        use raft::Storage as _;
        if hi < lo {
            return Vec::new();
        }
        match self
            .mem
            .entries(lo, hi + 1, None, raft::GetEntriesContext::empty(false))
        {
            Ok(entries) => entries,
            Err(err) => {
                tracing::error!(%err, path = %self.path.display(), lo, hi,
                    "cannot read committed entries back");
                Vec::new()
            }
        }
    }
}

fn bad(path: &Path, err: impl std::fmt::Display) -> StartupError {
    StartupError::Persistence(format!("{}: {err}", path.display()))
}

fn push_frame(out: &mut Vec<u8>, kind: u8, msg: &dyn protobuf::Message) -> io::Result<()> {
    let payload = msg.write_to_bytes().map_err(io::Error::other)?;
    let len = u32::try_from(payload.len() + 1).map_err(io::Error::other)?;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&[kind]);
    crc.update(&payload);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.push(kind);
    out.extend_from_slice(&payload);
    Ok(())
}

/// The frame at `offset`: its kind, payload and the next offset; None at the end or at
/// a torn or damaged frame.
fn frame_at(bytes: &[u8], offset: usize) -> Option<(u8, &[u8], usize)> {
    let rest = bytes.get(offset..)?;
    let header = rest.get(..FRAME_HEADER)?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len == 0 || len > MAX_FRAME {
        return None;
    }
    let body = rest.get(FRAME_HEADER..FRAME_HEADER + len)?;
    if crc32fast::hash(body) != crc {
        return None;
    }
    Some((body[0], &body[1..], offset + FRAME_HEADER + len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, term: u64, data: &[u8]) -> Entry {
        Entry {
            index,
            term,
            data: data.to_vec().into(),
            ..Default::default()
        }
    }

    #[test]
    fn reopens_entries_overwrites_and_hard_state() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let mut s = DiskStorage::open(dir.path(), &[1, 2, 3]).expect("open");
            s.append(&[entry(1, 1, b"a"), entry(2, 1, b"b"), entry(3, 1, b"c")])
                .expect("append");
            // A new leader overwrites the uncommitted tail from index 2 on.
            s.append(&[entry(2, 2, b"x")]).expect("append");
            let hs = HardState {
                term: 2,
                vote: 3,
                commit: 2,
                ..Default::default()
            };
            s.set_hard_state(&hs).expect("hs");
            s.flush(true).expect("flush");
        }
        // A torn frame at the end is cut.
        let path = dir.path().join(FILE_NAME);
        let mut bytes = fs::read(&path).expect("read");
        bytes.extend_from_slice(&[9, 0, 0, 0, 1]);
        fs::write(&path, &bytes).expect("write");
        let s = DiskStorage::open(dir.path(), &[1, 2, 3]).expect("reopen");
        assert_eq!(raft::Storage::last_index(&s.mem).expect("last"), 2);
        let core = s.mem.rl();
        assert_eq!(core.hard_state().term, 2);
        assert_eq!(core.hard_state().vote, 3);
        drop(core);
        let entries = s.entries(1, 2);
        assert_eq!(entries.len(), 2);
        assert_eq!(&entries[1].data[..], b"x");
        assert_eq!(entries[1].term, 2);
    }
}
