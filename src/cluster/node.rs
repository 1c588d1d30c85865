//! The node loop: one OS thread that drives raft-rs (tick, step, propose, ready).
//!
//! Each turn: take the peer messages and the pending records, tick when due, propose
//! the pending records as ONE entry (group commit: every record appended since the last
//! turn), then handle the `Ready` in raft-rs's order: send the messages that need no
//! local persistence, apply committed entries, append the new entries and the hard state
//! to disk with one fdatasync, send the messages that needed it, advance. A leader's
//! own entries are already in its table (it executed them); a committed entry is applied
//! only when it is not one of them. A thread rather than a task: the fdatasync blocks.
//!
//! Leadership:
//! - a new leader serves (executes commands) only once its term's first entry is applied,
//!   so every entry of earlier terms is in its table first; it may end leases only after
//!   the lease extension (twice the election timeout) from then on;
//! - a leader that steps down (check-quorum, a higher term) stops serving at once, marks
//!   every LSN not seen committed as lost (their waiters fail), and rebuilds its table
//!   from the committed log: the effects it applied ahead of the commit are dropped and
//!   every blocked WAIT gets `-TRYAGAIN`.

use std::collections::{HashMap, VecDeque};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use raft::eraftpb::{ConfState, Snapshot};
use raft::eraftpb::{EntryType, Message};
use raft::{RawNode, StateRole, Storage as _};
use tokio::sync::mpsc as amp;

use super::storage::{DiskStorage, RaftStore};
use super::{Cluster, Role, Status};
use crate::cmd::Server;
use crate::error::{RespError, StartupError};
use crate::table::{LockTable, TableConfig};

/// What the node loop is told.
pub(crate) enum Input {
    /// A message from a peer.
    Msg(Box<Message>),
    /// Records are pending in the sink.
    Propose,
    /// Stop the loop.
    Stop,
}

/// The running node loop.
pub struct NodeHandle {
    inbox: mpsc::Sender<Input>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for NodeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeHandle").finish_non_exhaustive()
    }
}

impl NodeHandle {
    /// Stops the loop (its storage is flushed) and waits for it.
    pub async fn stop(mut self) {
        let _ = self.inbox.send(Input::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

/// The error every waiter gets when this node stops leading.
const LEADERSHIP_LOST: RespError =
    RespError::fixed("TRYAGAIN leadership changed: retry (the wait was not granted)");

pub(crate) fn spawn(
    server: Arc<Server>,
    cluster: Arc<Cluster>,
    storage: DiskStorage,
    inbox_rx: mpsc::Receiver<Input>,
    outboxes: HashMap<u64, amp::UnboundedSender<Message>>,
) -> Result<NodeHandle, StartupError> {
    let ticks = (cluster.election_timeout.as_millis() / cluster.heartbeat.as_millis().max(1)).max(2)
        as usize;
    let config = raft::Config {
        id: cluster.id,
        election_tick: ticks,
        heartbeat_tick: 1,
        applied: 0,
        check_quorum: true,
        pre_vote: true,
        max_size_per_msg: 1 << 20,
        max_inflight_msgs: 256,
        ..raft::Config::default()
    };
    config
        .validate()
        .map_err(|e| StartupError::Config(format!("raft: {e}")))?;
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    let raw = RawNode::new(&config, storage.store.clone(), &logger)
        .map_err(|e| StartupError::Config(format!("raft: {e}")))?;
    let inbox = cluster.inbox.clone();
    let snapshot = storage.store.snapshot_now();
    let mut node = Node {
        server,
        cluster,
        raw,
        storage,
        outboxes,
        applied: 0,
        own: VecDeque::new(),
        serving_term: None,
        leading: None,
    };
    // The snapshot's state first: raft-rs hands over the entries after it.
    node.replay(&snapshot.data);
    node.applied = snapshot.get_metadata().index;
    let thread = std::thread::Builder::new()
        .name("baton-raft".into())
        .spawn(move || node.run(inbox_rx))
        .map_err(|e| StartupError::Config(format!("cannot start the raft thread: {e}")))?;
    Ok(NodeHandle {
        inbox,
        thread: Some(thread),
    })
}

struct Node {
    server: Arc<Server>,
    cluster: Arc<Cluster>,
    raw: RawNode<RaftStore>,
    storage: DiskStorage,
    outboxes: HashMap<u64, amp::UnboundedSender<Message>>,
    /// Last log index applied to the table (or skipped as this leader's own).
    applied: u64,
    /// This leader's proposed entries not yet seen committed: (index, term, last LSN).
    own: VecDeque<(u64, u64, u64)>,
    /// The term in which this node serves, if it does.
    serving_term: Option<u64>,
    /// While leader: the term and the index of its first entry.
    leading: Option<(u64, u64)>,
}

impl Node {
    fn run(mut self, rx: mpsc::Receiver<Input>) {
        let tick = self.cluster.heartbeat;
        let mut next_tick = Instant::now() + tick;
        loop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            match rx.recv_timeout(wait) {
                Ok(input) => {
                    if !self.handle(input) {
                        break;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            let mut stop = false;
            while let Ok(input) = rx.try_recv() {
                if !self.handle(input) {
                    stop = true;
                    break;
                }
            }
            if stop {
                break;
            }
            let now = Instant::now();
            if now >= next_tick {
                self.raw.tick();
                next_tick = now + tick;
            }
            self.turn();
        }
        if let Err(err) = self.storage.flush(true) {
            tracing::error!(%err, "raft log flush at shutdown failed");
        }
        self.serving_term = None;
        self.cluster.lose_uncommitted();
        self.publish();
    }

    /// False on Stop.
    fn handle(&mut self, input: Input) -> bool {
        match input {
            Input::Msg(msg) => {
                let _ = self.raw.step(*msg);
                true
            }
            Input::Propose => true,
            Input::Stop => false,
        }
    }

    fn turn(&mut self) {
        self.track_role();
        if self.serving_term.is_some() {
            self.propose();
        } else if self.cluster.has_untaken() {
            // A command raced the loss (or before the start) of this node's leadership.
            self.cluster.lose_uncommitted();
            self.rebuild();
        }
        for _ in 0..4 {
            if !self.raw.has_ready() {
                break;
            }
            self.handle_ready();
            self.track_role();
        }
        self.maybe_compact();
        self.publish();
    }

    /// Proposes everything pending as one entry.
    fn propose(&mut self) {
        let Some((data, lsn)) = self.cluster.sink.take() else {
            return;
        };
        let term = self.raw.raft.term;
        let before = self.raw.raft.raft_log.last_index();
        match self.raw.propose(Vec::new(), data) {
            Ok(()) if self.raw.raft.raft_log.last_index() > before => {
                let index = self.raw.raft.raft_log.last_index();
                self.own.push_back((index, term, lsn));
            }
            Ok(()) | Err(_) => {
                tracing::warn!("proposal dropped; giving up the leadership's pending changes");
                self.step_down();
            }
        }
    }

    fn handle_ready(&mut self) {
        let mut rd = self.raw.ready();
        self.send(rd.take_messages());
        if !rd.snapshot().is_empty() {
            self.install(rd.snapshot().clone());
        }
        let committed = rd.take_committed_entries();
        self.apply(committed);
        let written = self
            .storage
            .append(rd.entries())
            .and_then(|()| match rd.hs() {
                Some(hs) => self.storage.set_hard_state(hs),
                None => Ok(()),
            })
            .and_then(|()| self.storage.flush(rd.must_sync()));
        if let Err(err) = written {
            // Never acknowledge what is not on disk: this node stops.
            tracing::error!(%err, "raft log write failed; stopping");
            std::process::exit(70);
        }
        self.send(rd.take_persisted_messages());
        let mut light = self.raw.advance(rd);
        if let Some(commit) = light.commit_index() {
            if let Err(err) = self.storage.set_commit(commit) {
                tracing::error!(%err, "cannot record the commit index");
            }
        }
        self.send(light.take_messages());
        let committed = light.take_committed_entries();
        self.apply(committed);
        self.raw.advance_apply();
    }

    fn send(&self, msgs: Vec<Message>) {
        for msg in msgs {
            if let Some(tx) = self.outboxes.get(&msg.to) {
                let _ = tx.send(msg);
            }
        }
    }

    fn apply(&mut self, entries: Vec<raft::eraftpb::Entry>) {
        for entry in entries {
            if entry.index <= self.applied {
                continue;
            }
            self.applied = entry.index;
            if entry.get_entry_type() != EntryType::EntryNormal {
                // Membership is the static --peers list: conf changes are never proposed.
                continue;
            }
            let mut own = false;
            while let Some(&(index, term, lsn)) = self.own.front() {
                if index < entry.index {
                    self.own.pop_front();
                    continue;
                }
                if index == entry.index && term == entry.term {
                    self.own.pop_front();
                    self.cluster.publish_committed(lsn);
                    own = true;
                }
                break;
            }
            if !own {
                self.replay(&entry.data);
            }
        }
    }

    /// Applies a committed batch of records to the table.
    fn replay(&self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        match crate::persist::decode_frames(data) {
            Ok(records) => {
                let now = self.server.now();
                for record in &records {
                    self.server.table.replay(record, now);
                }
            }
            Err(err) => tracing::error!(%err, "undecodable committed entry skipped"),
        }
    }

    fn track_role(&mut self) {
        let leader = self.raw.raft.state == StateRole::Leader;
        let term = self.raw.raft.term;
        if let Some(serving) = self.serving_term {
            if !leader || serving != term {
                self.step_down();
            }
        }
        if leader {
            if self.leading.map(|(t, _)| t) != Some(term) {
                let first = self.raw.raft.raft_log.last_index();
                tracing::info!(term, first_index = first, "elected leader");
                self.leading = Some((term, first));
            }
        } else {
            self.leading = None;
        }
        if let Some((term, first)) = self.leading {
            if self.serving_term.is_none() && self.applied >= first {
                self.start_serving(term);
            }
        }
    }

    fn start_serving(&mut self, term: u64) {
        if self.cluster.has_untaken() {
            self.cluster.lose_uncommitted();
            self.rebuild();
        }
        self.serving_term = Some(term);
        let extension = self.cluster.election_timeout * 2;
        self.cluster
            .set_expiry_from(Some(Instant::now() + extension));
        tracing::info!(term, applied = self.applied, "serving as leader");
        self.publish();
    }

    fn step_down(&mut self) {
        let Some(term) = self.serving_term.take() else {
            return;
        };
        tracing::warn!(
            term,
            "stepping down: rebuilding the table from the committed log"
        );
        self.cluster.set_expiry_from(None);
        self.publish();
        self.own.clear();
        self.cluster.lose_uncommitted();
        self.rebuild();
    }

    /// Resets the table to the committed log: drops every effect applied ahead of the
    /// commit and fails every waiter.
    fn rebuild(&mut self) {
        let started = Instant::now();
        self.server.table.reset(LEADERSHIP_LOST);
        let snapshot = self.storage.store.snapshot_now();
        let from = snapshot.get_metadata().index + 1;
        self.replay(&snapshot.data);
        let first = self.storage.store.first_index().unwrap_or(1).max(from);
        let entries = self.storage.entries(first, self.applied);
        for entry in &entries {
            if entry.get_entry_type() == EntryType::EntryNormal {
                self.replay(&entry.data);
            }
        }
        tracing::info!(
            entries = entries.len(),
            took_ms = started.elapsed().as_millis() as u64,
            "table rebuilt from the committed log"
        );
    }

    /// A snapshot from the leader: this node was too far behind for the log.
    fn install(&mut self, snapshot: Snapshot) {
        let index = snapshot.get_metadata().index;
        if let Err(err) = self.storage.install(snapshot.clone()) {
            tracing::error!(%err, "cannot store the leader's snapshot; stopping");
            std::process::exit(70);
        }
        self.server.table.reset(LEADERSHIP_LOST);
        self.replay(&snapshot.data);
        self.applied = index;
        self.own.clear();
        tracing::info!(index, "installed the leader's snapshot");
    }

    /// Compacts the log once `snapshot_entries` entries were applied since the last
    /// snapshot: the committed state at the applied index, built in a scratch table from
    /// the last snapshot and the entries after it (never from this node's own table, which
    /// on a leader holds changes not yet committed).
    fn maybe_compact(&mut self) {
        let last = self.storage.store.snapshot_now();
        let from = last.get_metadata().index;
        if self.applied < from + self.cluster.snapshot_entries {
            return;
        }
        let started = Instant::now();
        let upto = self.applied;
        let scratch = LockTable::new(
            TableConfig {
                shards: 16,
                max_waiters: 0,
                origin: Instant::now(),
                token_seed: 0,
            },
            None,
        );
        scratch.set_ends_by_log(true);
        let now = self.server.now();
        let replay = |data: &[u8]| match crate::persist::decode_frames(data) {
            Ok(records) => records.iter().for_each(|r| scratch.replay(r, now)),
            Err(err) => tracing::error!(%err, "undecodable committed entry skipped"),
        };
        replay(&last.data);
        let first = self.storage.store.first_index().unwrap_or(1).max(from + 1);
        for entry in self.storage.entries(first, upto) {
            if entry.get_entry_type() == EntryType::EntryNormal && !entry.data.is_empty() {
                replay(&entry.data);
            }
        }
        let mut data = Vec::new();
        scratch.dump_with_ghosts(now, &mut |record| record.encode_frame(&mut data));
        let mut snapshot = Snapshot {
            data: data.into(),
            ..Default::default()
        };
        let meta = snapshot.mut_metadata();
        meta.index = upto;
        meta.term = self.storage.store.term(upto).unwrap_or(0);
        meta.set_conf_state(ConfState::from((
            self.cluster.peers.keys().copied().collect::<Vec<_>>(),
            Vec::new(),
        )));
        let bytes = snapshot.data.len();
        if let Err(err) = self.storage.compact(snapshot) {
            tracing::error!(%err, "raft log compaction failed; stopping");
            std::process::exit(70);
        }
        tracing::info!(
            index = upto,
            bytes,
            took_ms = started.elapsed().as_millis() as u64,
            "raft snapshot written, log compacted"
        );
    }

    fn publish(&self) {
        let raft = &self.raw.raft;
        let role = match raft.state {
            StateRole::Leader => Role::Leader,
            StateRole::Candidate | StateRole::PreCandidate => Role::Candidate,
            StateRole::Follower => Role::Follower,
        };
        self.cluster.publish_status(Status {
            role,
            leader_id: raft.leader_id,
            term: raft.term,
            commit_index: raft.raft_log.committed,
            applied_index: self.applied,
            serving: self.serving_term.is_some(),
        });
    }
}
