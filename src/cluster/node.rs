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
//!
//! Membership (see `membership`): the serving leader proposes one conf change at a time
//! (`CLUSTER ADDNODE` / `REMOVENODE`, refused while another is not yet applied) and
//! answers it once the entry is committed and applied. Every node applies a committed
//! conf change to raft-rs, to its list of members and peer links, and, for an added
//! node, writes a snapshot at once: the new node, which starts with an empty log and no
//! membership (`--join`), must start from a snapshot that names it (raft-rs drops one
//! that does not), never from entries older than its addition. A node that applies its
//! own removal stops taking part: it drops its peer links, stops ticking and ignores peer
//! messages; a leader first stops serving, hands the leadership over and keeps
//! replicating for one election timeout, so that the others learn the commit.

use std::collections::{HashMap, VecDeque};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use protobuf::Message as _;
use raft::eraftpb::{ConfChange, ConfChangeType, Snapshot};
use raft::eraftpb::{EntryType, Message};
use raft::{RawNode, StateRole, Storage as _};
use tokio::runtime::Handle;
use tokio::sync::{mpsc as amp, oneshot};

use super::storage::{DiskStorage, RaftStore};
use super::{membership, transport, Cluster, MemberChange, Role, Status};
use crate::cmd::Shared;
use crate::error::{RespError, StartupError};
use crate::table::{LockTable, TableConfig};

/// What the node loop is told.
pub(crate) enum Input {
    /// A message from a peer.
    Msg(Box<Message>),
    /// Records are pending in the sink.
    Propose,
    /// A membership change to propose; the answer once it is applied (or refused).
    Member(MemberChange, MemberReply),
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

/// Where a membership change's outcome goes.
type MemberReply = oneshot::Sender<Result<(), RespError>>;

/// The answer to a membership change whose commit was not seen before this node stopped
/// leading.
pub(crate) const LEADERSHIP_LOST_CHANGE: RespError = RespError::fixed(
    "TRYAGAIN leadership changed before the membership change was committed (it may still be)",
);

/// `CLUSTER ADDNODE` / `REMOVENODE` while another change is not yet applied.
const CHANGE_IN_PROGRESS: RespError =
    RespError::fixed("TRYAGAIN a membership change is in progress");

pub(crate) fn spawn(
    server: Arc<Shared>,
    cluster: Arc<Cluster>,
    storage: DiskStorage,
    inbox_rx: mpsc::Receiver<Input>,
    rt: Handle,
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
        outboxes: HashMap::new(),
        rt,
        applied: 0,
        own: VecDeque::new(),
        serving_term: None,
        leading: None,
        removed: false,
        leaving: None,
        member_wait: None,
        force_snapshot: false,
        snapshots: 0,
    };
    node.members_changed();
    // The snapshot's state first: raft-rs hands over the entries after it.
    node.replay(membership::split(&snapshot.data).1);
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
    server: Arc<Shared>,
    cluster: Arc<Cluster>,
    raw: RawNode<RaftStore>,
    storage: DiskStorage,
    /// A queue to each other member's sender task.
    outboxes: HashMap<u64, amp::UnboundedSender<Message>>,
    /// The runtime the sender tasks run on.
    rt: Handle,
    /// Last log index applied to the table (or skipped as this leader's own).
    applied: u64,
    /// This leader's proposed entries not yet seen committed: (index, term, last LSN).
    own: VecDeque<(u64, u64, u64)>,
    /// The term in which this node serves, if it does.
    serving_term: Option<u64>,
    /// While leader: the term and the index of its first entry.
    leading: Option<(u64, u64)>,
    /// This node applied its own removal: it takes no part any more.
    removed: bool,
    /// This leader applied its own removal: it serves nothing, hands the leadership to
    /// the most caught-up member and keeps replicating (so that the others learn the
    /// commit) until then; afterwards it is `removed`.
    leaving: Option<Instant>,
    /// The membership change this leader proposed: its index, term and whom to answer.
    member_wait: Option<(u64, u64, MemberReply)>,
    /// Write a snapshot at the end of this turn (a node was added).
    force_snapshot: bool,
    /// Snapshots written or installed since start.
    snapshots: u64,
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
            if self.leaving.is_some_and(|at| now >= at) {
                self.leaving = None;
                self.leave();
            }
            if now >= next_tick {
                if !self.removed {
                    self.raw.tick();
                }
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
                if self.removed {
                    return true;
                }
                if msg.get_msg_type() == raft::eraftpb::MessageType::MsgAppend
                    && msg.index == 0
                    && !msg.entries.is_empty()
                    && self.cluster.members().is_empty()
                {
                    // A joining node takes its membership from a snapshot that names it;
                    // the log from its start would not name the bootstrap members. Every
                    // node snapshots when it adds one, so this is not expected: refuse
                    // rather than believe a wrong membership.
                    tracing::warn!(
                        from = msg.from,
                        "a joining node got log entries from index 1; waiting for a snapshot"
                    );
                    return true;
                }
                let _ = self.raw.step(*msg);
                true
            }
            Input::Propose => true,
            Input::Member(change, reply) => {
                match self.propose_member(change) {
                    Ok(index) => self.member_wait = Some((index, self.raw.raft.term, reply)),
                    Err(err) => {
                        let _ = reply.send(Err(err));
                    }
                }
                true
            }
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

    /// Queues each message to its peer's link; a link to a node that is not (yet) a
    /// member is made on demand (a joining node answers the leader before it knows any
    /// membership).
    fn send(&mut self, msgs: Vec<Message>) {
        for msg in msgs {
            if self.removed {
                return;
            }
            if !self.outboxes.contains_key(&msg.to) {
                let Some(addr) = self.cluster.address_of(msg.to) else {
                    continue;
                };
                let _guard = self.rt.enter();
                self.outboxes
                    .insert(msg.to, transport::spawn_sender(msg.to, addr));
            }
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
            let conf_change = entry.get_entry_type() == EntryType::EntryConfChange;
            if let Some((index, term, reply)) = self.member_wait.take() {
                if index == entry.index {
                    let result = if conf_change && term == entry.term {
                        Ok(())
                    } else {
                        Err(LEADERSHIP_LOST_CHANGE)
                    };
                    // Answered once applied below: the change is in effect here by then.
                    if conf_change {
                        self.apply_conf_change(&entry);
                    }
                    let _ = reply.send(result);
                    continue;
                }
                self.member_wait = Some((index, term, reply));
            }
            if conf_change {
                self.apply_conf_change(&entry);
                continue;
            }
            if entry.get_entry_type() != EntryType::EntryNormal {
                // Joint consensus (ConfChangeV2) is never proposed.
                tracing::warn!(
                    index = entry.index,
                    "unexpected conf change v2 entry skipped"
                );
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
        if self.removed || self.leaving.is_some() {
            self.leading = None;
            return;
        }
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
        if let Some((_, _, reply)) = self.member_wait.take() {
            let _ = reply.send(Err(LEADERSHIP_LOST_CHANGE));
        }
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
        self.replay(membership::split(&snapshot.data).1);
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
        let (members, records) = membership::split(&snapshot.data);
        self.replay(records);
        self.applied = index;
        self.own.clear();
        if let Some(members) = members {
            self.cluster.set_members(members);
            self.members_changed();
        }
        self.snapshots += 1;
        self.publish();
        tracing::info!(index, "installed the leader's snapshot");
    }

    /// Compacts the log once `snapshot_entries` entries were applied since the last
    /// snapshot: the committed state at the applied index, built in a scratch table from
    /// the last snapshot and the entries after it (never from this node's own table, which
    /// on a leader holds changes not yet committed).
    fn maybe_compact(&mut self) {
        let from = self.storage.store.snapshot_index();
        let forced = std::mem::take(&mut self.force_snapshot) | self.storage.store.take_wanted();
        if self.applied < from + self.cluster.snapshot_entries && !(forced && self.applied > from) {
            return;
        }
        let last = self.storage.store.snapshot_now();
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
        replay(membership::split(&last.data).1);
        let first = self.storage.store.first_index().unwrap_or(1).max(from + 1);
        for entry in self.storage.entries(first, upto) {
            if entry.get_entry_type() == EntryType::EntryNormal && !entry.data.is_empty() {
                replay(&entry.data);
            }
        }
        let mut records = Vec::new();
        scratch.dump_with_ghosts(now, &mut |record| record.encode_frame(&mut records));
        let mut snapshot = Snapshot {
            data: membership::wrap(&self.cluster.members(), &records).into(),
            ..Default::default()
        };
        let meta = snapshot.mut_metadata();
        meta.index = upto;
        meta.term = self.storage.store.term(upto).unwrap_or(0);
        // Conf changes take effect when applied: raft-rs's configuration is the one at
        // the applied index.
        meta.set_conf_state(self.raw.raft.prs().conf().to_conf_state());
        let bytes = snapshot.data.len();
        if let Err(err) = self.storage.compact(snapshot) {
            tracing::error!(%err, "raft log compaction failed; stopping");
            std::process::exit(70);
        }
        self.snapshots += 1;
        tracing::info!(
            index = upto,
            bytes,
            took_ms = started.elapsed().as_millis() as u64,
            "raft snapshot written, log compacted"
        );
    }

    /// Checks and proposes a membership change; the index of its entry.
    fn propose_member(&mut self, change: MemberChange) -> Result<u64, RespError> {
        if self.removed || self.serving_term.is_none() || self.raw.raft.state != StateRole::Leader {
            return Err(super::NO_LEADER);
        }
        if self.member_wait.is_some() || self.raw.raft.has_pending_conf() {
            return Err(CHANGE_IN_PROGRESS);
        }
        let members = self.cluster.members();
        let mut cc = ConfChange::default();
        match &change {
            MemberChange::Add { id, addr } => {
                if members.contains_key(id) {
                    return Err(RespError::new(format!("ERR node {id} is already a member")));
                }
                cc.set_change_type(ConfChangeType::AddNode);
                cc.node_id = *id;
                cc.context = addr.clone().into_bytes().into();
            }
            MemberChange::Remove { id } => {
                if !members.contains_key(id) {
                    return Err(RespError::new(format!("ERR unknown node id {id}")));
                }
                if members.len() == 1 {
                    return Err(RespError::fixed(
                        "ERR cannot remove the last node of the cluster",
                    ));
                }
                cc.set_change_type(ConfChangeType::RemoveNode);
                cc.node_id = *id;
            }
        }
        let before = self.raw.raft.raft_log.last_index();
        match self.raw.propose_conf_change(Vec::new(), cc) {
            Ok(()) if self.raw.raft.raft_log.last_index() > before => {
                tracing::info!(?change, "membership change proposed");
                Ok(self.raw.raft.raft_log.last_index())
            }
            Ok(()) | Err(_) => Err(CHANGE_IN_PROGRESS),
        }
    }

    /// Applies a committed conf change: to raft-rs, to the members and the peer links; a
    /// snapshot follows an addition (the new node starts from it).
    fn apply_conf_change(&mut self, entry: &raft::eraftpb::Entry) {
        let cc = match ConfChange::parse_from_bytes(&entry.data) {
            Ok(cc) => cc,
            Err(err) => {
                tracing::error!(%err, index = entry.index, "undecodable conf change skipped");
                return;
            }
        };
        let cs = match self.raw.apply_conf_change(&cc) {
            Ok(cs) => cs,
            Err(err) => {
                tracing::error!(%err, index = entry.index, "conf change not applied");
                return;
            }
        };
        self.storage.mem().wl().set_conf_state(cs);
        let mut members = self.cluster.members();
        match cc.get_change_type() {
            ConfChangeType::AddNode | ConfChangeType::AddLearnerNode => {
                let addr = String::from_utf8_lossy(&cc.context).into_owned();
                members.insert(cc.node_id, addr);
                self.force_snapshot = true;
            }
            ConfChangeType::RemoveNode => {
                members.remove(&cc.node_id);
            }
        }
        tracing::info!(index = entry.index, change = ?cc.get_change_type(), node = cc.node_id,
            members = %membership::encode(&members), "membership changed");
        self.cluster.set_members(members);
        self.members_changed();
    }

    /// Matches the peer links to the members; starts leaving when this node is not one
    /// any more.
    fn members_changed(&mut self) {
        let members = self.cluster.members();
        if self.removed {
            return;
        }
        self.outboxes.retain(|id, _| members.contains_key(id));
        for &id in members.keys() {
            if id == self.cluster.id || self.outboxes.contains_key(&id) {
                continue;
            }
            if let Some(addr) = self.cluster.address_of(id) {
                let _guard = self.rt.enter();
                self.outboxes.insert(id, transport::spawn_sender(id, addr));
            }
        }
        // A joining node has no members yet; it is not removed.
        let is_member = members.is_empty() || members.contains_key(&self.cluster.id);
        if !is_member && self.leaving.is_none() {
            if self.raw.raft.state == StateRole::Leader {
                self.start_leaving();
            } else {
                self.leave();
            }
        }
    }

    /// This leader applied its own removal: it stops serving and hands the leadership to
    /// the member with the longest log, and leaves after one election timeout.
    fn start_leaving(&mut self) {
        self.step_down();
        self.leading = None;
        let me = self.cluster.id;
        let best = self
            .raw
            .raft
            .prs()
            .iter()
            .filter(|(id, _)| **id != me)
            .max_by_key(|(_, pr)| pr.matched)
            .map(|(id, _)| *id);
        if let Some(to) = best {
            self.raw.transfer_leader(to);
        }
        tracing::warn!(node_id = me, transferee = ?best,
            "removed from the cluster while leading: handing the leadership over");
        self.leaving = Some(Instant::now() + self.cluster.election_timeout);
        self.publish();
    }

    /// This node applied its own removal: it takes no part any more (no ticks, no peer
    /// messages, no links).
    fn leave(&mut self) {
        tracing::warn!(
            node_id = self.cluster.id,
            "removed from the cluster: taking no part any more"
        );
        self.step_down();
        self.removed = true;
        self.leading = None;
        self.outboxes.clear();
        self.publish();
    }

    fn publish(&self) {
        let raft = &self.raw.raft;
        let role = match raft.state {
            _ if self.removed || self.leaving.is_some() => Role::Removed,
            StateRole::Leader => Role::Leader,
            StateRole::Candidate | StateRole::PreCandidate => Role::Candidate,
            StateRole::Follower => Role::Follower,
        };
        self.cluster.publish_status(Status {
            role,
            leader_id: if self.removed || self.leaving.is_some() {
                0
            } else {
                raft.leader_id
            },
            term: raft.term,
            commit_index: raft.raft_log.committed,
            applied_index: self.applied,
            serving: self.serving_term.is_some(),
            first_index: self.storage.store.first_index().unwrap_or(0),
            last_index: raft.raft_log.last_index(),
            snapshot_index: self.storage.store.snapshot_index(),
            snapshots: self.snapshots,
            log_bytes: self.storage.file_len,
        });
    }
}
