//! Raft's durable state: the log entries, the hard state and the last snapshot.
//!
//! raft-rs reads its log through the `Storage` trait; [`RaftStore`] serves it from a
//! `MemStorage` plus the last snapshot, and [`DiskStorage`] makes every change durable
//! first, in two files of `--dir`:
//!
//! ```text
//! frame = len: u32 LE | crc32: u32 LE (of kind and payload) | kind: u8 | payload
//! raft.log:  kind 1 an Entry, kind 2 the HardState (protobuf), appended;
//!            kind 4 the bootstrap membership ("1=host:port,..."), once, in a new log
//! raft.snap: one kind 3 frame, the Snapshot (its data: the membership envelope, then
//!            the table as persist records; its metadata: index, term, ConfState)
//! ```
//!
//! Entries are written as raft-rs hands them over; an entry at an index already in the
//! file replaces it and every later one (a leader overwrote a follower's uncommitted
//! tail), both in memory and at replay. Start-up loads `raft.snap`, then replays
//! `raft.log` in order (skipping entries the snapshot covers) and cuts a torn tail (a
//! crash during a write).
//!
//! The membership at start: the last snapshot's (its `ConfState` and the addresses in its
//! data), else the bootstrap frame of `raft.log`, else, for a new log, `--peers` (written
//! as the bootstrap frame), or none at all for a node started with `--join` (it waits for
//! the leader's snapshot, which names it). Conf-change entries after that point are applied
//! again by the node loop as raft-rs hands the committed entries over, so `--peers` names
//! the members only once, at bootstrap.
//!
//! Compaction ([`DiskStorage::compact`]) and a snapshot from the leader
//! ([`DiskStorage::install`]): the snapshot file is replaced (temp file, sync, rename,
//! directory sync) before `raft.log` is rewritten without the entries it covers (same
//! steps), so a crash between the two leaves a snapshot and a longer log, which loads the
//! same.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::storage::MemStorage;
use raft::{GetEntriesContext, RaftState, Storage, StorageError};

use super::{membership, Peers};
use crate::error::StartupError;

/// The log's file name inside `--dir`.
pub(crate) const FILE_NAME: &str = "raft.log";
/// The snapshot's file name inside `--dir`.
pub(crate) const SNAP_NAME: &str = "raft.snap";

const KIND_ENTRY: u8 = 1;
const KIND_HARD_STATE: u8 = 2;
const KIND_SNAPSHOT: u8 = 3;
const KIND_MEMBERSHIP: u8 = 4;
const FRAME_HEADER: usize = 8;
/// Largest frame accepted at replay.
const MAX_FRAME: usize = 1 << 30;

/// What raft-rs reads: the in-memory log and the last snapshot.
#[derive(Clone, Default)]
pub(crate) struct RaftStore {
    /// The entries after the compaction point and the hard state.
    pub(crate) mem: MemStorage,
    /// The last snapshot (index 0: none), and the (index, term) just before the first
    /// entry the last compaction kept (raft-rs asks for that term).
    snap: Arc<RwLock<(Snapshot, (u64, u64))>>,
    /// Set when raft-rs asked for a snapshot to send to a node that the last snapshot
    /// does not name (a node just added): the node loop then makes a new one.
    wanted: Arc<AtomicBool>,
}

impl RaftStore {
    /// The last snapshot (index 0: none).
    pub(crate) fn snapshot_now(&self) -> Snapshot {
        self.snap.read().0.clone()
    }

    /// The last snapshot's index (0: none), without copying it.
    pub(crate) fn snapshot_index(&self) -> u64 {
        self.snap.read().0.get_metadata().index
    }

    /// Whether a snapshot naming a newly added node was asked for (and clears the flag).
    pub(crate) fn take_wanted(&self) -> bool {
        self.wanted.swap(false, Ordering::AcqRel)
    }
}

impl Storage for RaftStore {
    fn initial_state(&self) -> raft::Result<RaftState> {
        self.mem.initial_state()
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        self.mem.entries(low, high, max_size, context)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        {
            let snap = self.snap.read();
            let meta = snap.0.get_metadata();
            if idx > 0 && idx == meta.index {
                return Ok(meta.term);
            }
            let (boundary, term) = snap.1;
            if idx > 0 && idx == boundary {
                return Ok(term);
            }
        }
        self.mem.term(idx)
    }

    fn first_index(&self) -> raft::Result<u64> {
        self.mem.first_index()
    }

    fn last_index(&self) -> raft::Result<u64> {
        self.mem.last_index()
    }

    fn snapshot(&self, _request_index: u64, to: u64) -> raft::Result<Snapshot> {
        let snap = self.snapshot_now();
        let cs = snap.get_metadata().get_conf_state();
        let names_to = cs.get_voters().contains(&to) || cs.get_learners().contains(&to);
        if !names_to {
            // raft-rs would make `to` drop it (a node restores only a snapshot that names
            // it): ask for a fresh one and let raft-rs retry at the next heartbeat.
            self.wanted.store(true, Ordering::Release);
        }
        if snap.get_metadata().index == 0 || !names_to {
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        Ok(snap)
    }
}

/// Raft's log, hard state and snapshot, in memory for raft-rs and on disk for restarts.
pub(crate) struct DiskStorage {
    /// What raft-rs reads.
    pub(crate) store: RaftStore,
    file: File,
    /// The length of `raft.log` (for INFO persistence).
    pub(crate) file_len: u64,
    path: PathBuf,
    dir: PathBuf,
    buf: Vec<u8>,
    /// The members (and their addresses) at the start point: the snapshot's, the
    /// bootstrap's, or none (a joining node).
    pub(crate) membership: Peers,
}

impl DiskStorage {
    /// Opens (creating) the raft files in `dir` and loads them. `bootstrap` (`--peers`)
    /// becomes the membership of a new log unless `join`; see the module doc.
    pub(crate) fn open(
        dir: &Path,
        bootstrap: &Peers,
        join: bool,
    ) -> Result<DiskStorage, StartupError> {
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StartupError::DataDir { path, source }
        };
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let snap_path = dir.join(SNAP_NAME);
        let snapshot = match fs::read(&snap_path) {
            Ok(bytes) => match frame_at(&bytes, 0) {
                Some((KIND_SNAPSHOT, payload, _)) => {
                    Snapshot::parse_from_bytes(payload).map_err(|e| bad(&snap_path, e))?
                }
                _ => {
                    return Err(StartupError::Persistence(format!(
                        "{}: damaged raft snapshot",
                        snap_path.display()
                    )))
                }
            },
            Err(err) if err.kind() == io::ErrorKind::NotFound => Snapshot::default(),
            Err(err) => return Err(io_err(&snap_path)(err)),
        };
        let snap_index = snapshot.get_metadata().index;
        let path = dir.join(FILE_NAME);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(err) => return Err(io_err(&path)(err)),
        };
        let mem = MemStorage::new();
        let mut logged_membership = None;
        let valid = {
            let mut core = mem.wl();
            if snap_index > 0 {
                core.apply_snapshot(snapshot.clone())
                    .map_err(|e| bad(&snap_path, e))?;
            }
            let mut offset = 0;
            let mut last = snap_index;
            while let Some((kind, payload, next)) = frame_at(&bytes, offset) {
                match kind {
                    KIND_ENTRY => {
                        let entry = Entry::parse_from_bytes(payload).map_err(|e| bad(&path, e))?;
                        // Entries the snapshot covers: a crash before the log was rewritten.
                        if entry.index > snap_index {
                            if entry.index > last + 1 {
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
                    }
                    KIND_HARD_STATE => {
                        let mut hs =
                            HardState::parse_from_bytes(payload).map_err(|e| bad(&path, e))?;
                        hs.commit = hs.commit.max(snap_index);
                        core.set_hardstate(hs);
                    }
                    KIND_MEMBERSHIP => {
                        let text = std::str::from_utf8(payload).map_err(|e| bad(&path, e))?;
                        logged_membership =
                            Some(super::parse_peers(text).map_err(|e| bad(&path, e))?);
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
        let membership = if snap_index > 0 {
            let voters = snapshot.get_metadata().get_conf_state().get_voters();
            match membership::split(&snapshot.data).0 {
                Some(members) => members,
                // A snapshot written before membership changes: the voters at --peers.
                None => voters
                    .iter()
                    .map(|id| (*id, bootstrap.get(id).cloned().unwrap_or_default()))
                    .collect(),
            }
        } else if let Some(members) = logged_membership {
            members
        } else if join {
            Peers::new()
        } else {
            let mut frame = Vec::new();
            push_raw(
                &mut frame,
                KIND_MEMBERSHIP,
                membership::encode(bootstrap).as_bytes(),
            )
            .map_err(io_err(&path))?;
            (&file).write_all(&frame).map_err(io_err(&path))?;
            bootstrap.clone()
        };
        if snap_index == 0 {
            let voters: Vec<u64> = membership.keys().copied().collect();
            mem.wl()
                .set_conf_state(ConfState::from((voters, Vec::new())));
        }
        file.sync_all().map_err(io_err(&path))?;
        let hs = mem.rl().hard_state().clone();
        tracing::info!(
            snapshot_index = snap_index,
            last_index = mem.last_index().unwrap_or(0),
            term = hs.term,
            commit = hs.commit,
            "opened the raft log"
        );
        Ok(DiskStorage {
            store: RaftStore {
                mem,
                snap: Arc::new(RwLock::new((snapshot, (0, 0)))),
                wanted: Arc::default(),
            },
            file_len: fs::metadata(&path).map(|m| m.len()).unwrap_or(0),
            file,
            path,
            dir: dir.to_path_buf(),
            buf: Vec::new(),
            membership,
        })
    }

    /// The in-memory log.
    pub(crate) fn mem(&self) -> &MemStorage {
        &self.store.mem
    }

    /// Appends `entries` (replacing any at their indexes and after) to memory and file.
    pub(crate) fn append(&mut self, entries: &[Entry]) -> io::Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        for entry in entries {
            push_frame(&mut self.buf, KIND_ENTRY, entry)?;
        }
        self.mem().wl().append(entries).map_err(io::Error::other)?;
        Ok(())
    }

    /// Records the hard state (term, vote, commit).
    pub(crate) fn set_hard_state(&mut self, hs: &HardState) -> io::Result<()> {
        push_frame(&mut self.buf, KIND_HARD_STATE, hs)?;
        self.mem().wl().set_hardstate(hs.clone());
        Ok(())
    }

    /// Raises the commit index (a light ready's); durable with the next write.
    pub(crate) fn set_commit(&mut self, commit: u64) -> io::Result<()> {
        let hs = {
            let mut core = self.mem().wl();
            core.mut_hard_state().commit = commit;
            core.hard_state().clone()
        };
        push_frame(&mut self.buf, KIND_HARD_STATE, &hs)
    }

    /// Writes what was queued and, when `sync`, fdatasyncs it.
    pub(crate) fn flush(&mut self, sync: bool) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.file.write_all(&self.buf)?;
            self.file_len += self.buf.len() as u64;
            self.buf.clear();
            if sync {
                self.file.sync_data()?;
            }
        }
        Ok(())
    }

    /// Makes `snapshot` (of the state at an applied index) the last snapshot and drops the
    /// entries it covers, on disk too.
    pub(crate) fn compact(&mut self, snapshot: Snapshot) -> io::Result<()> {
        let index = snapshot.get_metadata().index;
        self.write_snapshot(&snapshot)?;
        let last = self.store.last_index().map_err(io::Error::other)?;
        // Keep at least one entry: an empty MemStorage forgets where its log starts.
        let keep_from = (index + 1).min(last).max(1);
        let boundary = keep_from - 1;
        let boundary_term = self.store.term(boundary).unwrap_or(0);
        self.mem()
            .wl()
            .compact(keep_from)
            .map_err(io::Error::other)?;
        *self.store.snap.write() = (snapshot, (boundary, boundary_term));
        self.rewrite_log()
    }

    /// Installs a snapshot received from the leader: the log restarts after it.
    pub(crate) fn install(&mut self, snapshot: Snapshot) -> io::Result<()> {
        self.write_snapshot(&snapshot)?;
        self.mem()
            .wl()
            .apply_snapshot(snapshot.clone())
            .map_err(io::Error::other)?;
        *self.store.snap.write() = (snapshot, (0, 0));
        self.rewrite_log()
    }

    fn write_snapshot(&self, snapshot: &Snapshot) -> io::Result<()> {
        let mut body = Vec::new();
        push_frame(&mut body, KIND_SNAPSHOT, snapshot)?;
        replace_file(&self.dir, SNAP_NAME, &body)
    }

    /// Rewrites `raft.log` as the hard state and the entries kept in memory.
    fn rewrite_log(&mut self) -> io::Result<()> {
        self.flush(false)?;
        let mut body = Vec::new();
        let hs = self.mem().rl().hard_state().clone();
        push_frame(&mut body, KIND_HARD_STATE, &hs)?;
        let first = self.store.first_index().map_err(io::Error::other)?;
        let last = self.store.last_index().map_err(io::Error::other)?;
        for entry in self.entries(first, last) {
            push_frame(&mut body, KIND_ENTRY, &entry)?;
        }
        replace_file(&self.dir, FILE_NAME, &body)?;
        self.file = OpenOptions::new().append(true).open(&self.path)?;
        self.file_len = body.len() as u64;
        Ok(())
    }

    /// The entries `lo..=hi` still in the log (for rebuilding the table).
    pub(crate) fn entries(&self, lo: u64, hi: u64) -> Vec<Entry> {
        if hi < lo {
            return Vec::new();
        }
        match self
            .store
            .entries(lo, hi + 1, None, GetEntriesContext::empty(false))
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

/// Replaces `dir/name` by `body` atomically and durably (temp file, sync, rename, dir sync).
fn replace_file(dir: &Path, name: &str, body: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut file = File::create(&tmp)?;
    file.write_all(body)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, dir.join(name))?;
    File::open(dir)?.sync_all()
}

fn bad(path: &Path, err: impl std::fmt::Display) -> StartupError {
    StartupError::Persistence(format!("{}: {err}", path.display()))
}

fn push_frame(out: &mut Vec<u8>, kind: u8, msg: &dyn protobuf::Message) -> io::Result<()> {
    let payload = msg.write_to_bytes().map_err(io::Error::other)?;
    push_raw(out, kind, &payload)
}

fn push_raw(out: &mut Vec<u8>, kind: u8, payload: &[u8]) -> io::Result<()> {
    let len = u32::try_from(payload.len() + 1).map_err(io::Error::other)?;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&[kind]);
    crc.update(payload);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.push(kind);
    out.extend_from_slice(payload);
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

    pub(super) fn three() -> Peers {
        (1..=3)
            .map(|id| (id, format!("127.0.0.1:710{id}")))
            .collect()
    }

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
            let mut s = DiskStorage::open(dir.path(), &three(), false).expect("open");
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
        let s = DiskStorage::open(dir.path(), &three(), false).expect("reopen");
        assert_eq!(s.store.last_index().expect("last"), 2);
        let core = s.mem().rl();
        assert_eq!(core.hard_state().term, 2);
        assert_eq!(core.hard_state().vote, 3);
        drop(core);
        let entries = s.entries(1, 2);
        assert_eq!(entries.len(), 2);
        assert_eq!(&entries[1].data[..], b"x");
        assert_eq!(entries[1].term, 2);
    }
}

#[cfg(test)]
mod compaction_tests {
    use super::tests::three;
    use super::*;

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            data: vec![index as u8].into(),
            ..Default::default()
        }
    }

    fn snapshot(index: u64, term: u64) -> Snapshot {
        let mut snap = Snapshot {
            data: b"state".to_vec().into(),
            ..Default::default()
        };
        snap.mut_metadata().index = index;
        snap.mut_metadata().term = term;
        snap.mut_metadata()
            .set_conf_state(ConfState::from((vec![1, 2, 3], Vec::new())));
        snap
    }

    #[test]
    fn compaction_keeps_the_tail_and_reopens_from_the_snapshot() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let mut s = DiskStorage::open(dir.path(), &three(), false).expect("open");
            s.append(&(1..=10).map(|i| entry(i, 1)).collect::<Vec<_>>())
                .expect("append");
            let hs = HardState {
                term: 1,
                commit: 10,
                ..Default::default()
            };
            s.set_hard_state(&hs).expect("hs");
            s.flush(true).expect("flush");
            s.compact(snapshot(7, 1)).expect("compact");
            assert_eq!(s.store.first_index().expect("first"), 8);
            assert_eq!(s.store.term(7).expect("term of the snapshot"), 1);
            assert_eq!(
                s.store
                    .snapshot(0, 2)
                    .expect("snapshot")
                    .get_metadata()
                    .index,
                7
            );
            s.append(&[entry(11, 2)]).expect("append");
            s.flush(true).expect("flush");
        }
        let s = DiskStorage::open(dir.path(), &three(), false).expect("reopen");
        assert_eq!(s.store.first_index().expect("first"), 8);
        assert_eq!(s.store.last_index().expect("last"), 11);
        assert_eq!(s.store.term(7).expect("term"), 1);
        assert_eq!(&s.store.snapshot_now().data[..], b"state");
        assert_eq!(s.mem().rl().hard_state().commit, 10);
    }

    #[test]
    fn an_installed_snapshot_replaces_the_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let mut s = DiskStorage::open(dir.path(), &three(), false).expect("open");
            s.append(&[entry(1, 1), entry(2, 1)]).expect("append");
            s.flush(true).expect("flush");
            s.install(snapshot(50, 3)).expect("install");
            assert_eq!(s.store.first_index().expect("first"), 51);
            s.append(&[entry(51, 3)]).expect("append");
            s.flush(true).expect("flush");
        }
        let s = DiskStorage::open(dir.path(), &three(), false).expect("reopen");
        assert_eq!(s.store.first_index().expect("first"), 51);
        assert_eq!(s.store.last_index().expect("last"), 51);
        assert_eq!(s.mem().rl().hard_state().commit, 50);
    }
}

#[cfg(test)]
mod membership_tests {
    use super::tests::three;
    use super::*;

    #[test]
    fn peers_name_the_members_only_at_bootstrap() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let s = DiskStorage::open(dir.path(), &three(), false).expect("open");
            assert_eq!(s.membership, three());
            let voters = s.store.initial_state().expect("state").conf_state.voters;
            assert_eq!(voters, vec![1, 2, 3]);
        }
        // A restart with other --peers keeps the recorded membership.
        let other: Peers = [(1, "127.0.0.1:9".to_string())].into();
        let s = DiskStorage::open(dir.path(), &other, false).expect("reopen");
        assert_eq!(s.membership, three());
        assert_eq!(
            s.store.initial_state().expect("state").conf_state.voters,
            vec![1, 2, 3]
        );
    }

    #[test]
    fn a_joining_node_has_no_membership_until_a_snapshot_names_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut four = three();
        four.insert(4, "127.0.0.1:7104".into());
        {
            let mut s = DiskStorage::open(dir.path(), &four, true).expect("open");
            assert!(s.membership.is_empty());
            assert!(s
                .store
                .initial_state()
                .expect("state")
                .conf_state
                .voters
                .is_empty());
            let mut snap = Snapshot {
                data: membership::wrap(&four, b"").into(),
                ..Default::default()
            };
            snap.mut_metadata().index = 9;
            snap.mut_metadata().term = 2;
            snap.mut_metadata()
                .set_conf_state(ConfState::from((vec![1, 2, 3, 4], Vec::new())));
            s.install(snap).expect("install");
        }
        let s = DiskStorage::open(dir.path(), &four, true).expect("reopen");
        assert_eq!(s.membership, four);
        assert_eq!(
            s.store.initial_state().expect("state").conf_state.voters,
            vec![1, 2, 3, 4]
        );
        // A snapshot is sent only to a node it names.
        assert!(s.store.snapshot(0, 4).is_ok());
        assert!(s.store.snapshot(0, 5).is_err());
        assert!(s.store.take_wanted());
        assert!(!s.store.take_wanted());
    }
}
