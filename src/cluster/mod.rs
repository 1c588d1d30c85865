//! Cluster mode: the lock table replicated by Raft (`--node-id` and `--peers`).
//!
//! Consensus is tikv's `raft` crate (raft-rs, the etcd Raft design): a sans-IO state
//! machine driven by one loop (`node`) that owns storage (`storage`), ticks, steps peer
//! messages (`transport`) and applies committed entries. Why raft-rs and not openraft,
//! and what is guaranteed: docs/replication.md.
//!
//! ```text
//! conn ─► cmd ─► table (shard mutex) ─ append(Record) ─► RaftSink { frames, last_lsn }
//!                                                              │ (no I/O)
//! conn ─ wait_committed(lsn) ◄─ watch<Progress> ◄─ node thread ┘ one entry per batch:
//!                                              propose, fsync, replicate, commit
//! ```
//!
//! The table stays the one state machine. The leader executes commands as in single-node
//! mode; the records its table emits are batched into one Raft entry per turn of the node
//! loop (group commit), and a reply waits for the commit of the entry covering its records
//! ([`Cluster::wait_committed`]) instead of a local fsync. Followers apply committed
//! entries through the replay path (`LockTable::replay`), in log order, and never expire
//! leases: in cluster mode replay keeps a lease whose deadline passed (as due now,
//! `LockTable::set_ends_by_log`), and only the serving leader's expirer ends it, by
//! proposing a Release that every node applies once committed. A leader that loses its leadership rebuilds its table from the committed log
//! (its uncommitted effects are dropped) and fails its waiters with `-TRYAGAIN`.
//!
//! [`forward`] makes a follower relay a client's commands to the leader.
//!
//! Membership starts from `--peers` and changes online, one node at a time
//! ([`Cluster::change_membership`], `CLUSTER ADDNODE` / `REMOVENODE`): `membership` holds
//! the encodings, `node` applies conf changes, `storage` keeps the membership across
//! restarts.

pub mod forward;
mod membership;
mod node;
mod storage;
mod transport;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::watch;

use crate::cmd::Shared;
use crate::config::Config;
use crate::error::{RespError, StartupError};
use crate::persist::{LogError, Record};
use crate::table::RecordSink;

pub(crate) use node::Input;

/// The reply to a command that needs the leader on a node that cannot reach one.
pub const NO_LEADER: crate::error::RespError = crate::error::RespError::fixed("TRYAGAIN no leader");

/// Nodes by id with a peer address each.
pub type Peers = BTreeMap<u64, String>;

/// A membership change asked for by `CLUSTER ADDNODE` / `CLUSTER REMOVENODE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberChange {
    /// Add node `id`, reached at `addr` (its peer port).
    Add {
        /// The new node's id.
        id: u64,
        /// Its peer address (`host:port`).
        addr: String,
    },
    /// Remove node `id`.
    Remove {
        /// The node's id.
        id: u64,
    },
}

/// How long `CLUSTER ADDNODE` / `REMOVENODE` waits for its change to commit.
const MEMBER_CHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// Parses `--peers` (`1=127.0.0.1:7101,2=...`).
///
/// # Errors
/// A text naming the bad item.
pub fn parse_peers(text: &str) -> Result<Peers, String> {
    let mut peers = Peers::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (id, addr) = item
            .split_once('=')
            .ok_or_else(|| format!("--peers: '{item}' is not id=host:port"))?;
        let id: u64 = id
            .trim()
            .parse()
            .ok()
            .filter(|&id| id > 0)
            .ok_or_else(|| format!("--peers: '{id}' is not a node id (1 or more)"))?;
        if peers.insert(id, addr.trim().to_owned()).is_some() {
            return Err(format!("--peers: node {id} is named twice"));
        }
    }
    Ok(peers)
}

/// Whether `addr` is a peer address `CLUSTER ADDNODE` accepts (`host:port`).
pub fn valid_peer_addr(addr: &str) -> bool {
    membership::valid_addr(addr)
}

/// This node's Raft role, for `INFO replication`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Role {
    /// Follows a leader (or waits for one).
    #[default]
    Follower,
    /// Campaigns for leadership.
    Candidate,
    /// Leads.
    Leader,
    /// Was removed from the cluster: takes no part any more.
    Removed,
}

/// What the node loop publishes after each turn.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// The role.
    pub role: Role,
    /// The leader's id as this node knows it (0: none).
    pub leader_id: u64,
    /// The Raft term.
    pub term: u64,
    /// The highest log index known committed.
    pub commit_index: u64,
    /// The highest log index applied to the table.
    pub applied_index: u64,
    /// Whether this node executes commands (leader, caught up with its term's first entry).
    pub serving: bool,
    /// The first index still in the Raft log (after the last compaction).
    pub first_index: u64,
    /// The last index in the Raft log.
    pub last_index: u64,
    /// The index of the last snapshot (0: none).
    pub snapshot_index: u64,
    /// Snapshots written or installed since start.
    pub snapshots: u64,
    /// The size of `raft.log` in bytes.
    pub log_bytes: u64,
}

/// Which LSNs are decided: committed, or lost with a leadership.
#[derive(Debug, Clone, Default)]
struct Progress {
    /// Every LSN up to this one is committed, except those in `lost`.
    committed: u64,
    /// Ranges of LSNs (inclusive) that were appended but will never be reported committed
    /// (leadership lost before their commit was seen). The newest few are kept.
    lost: Vec<(u64, u64)>,
}

impl Progress {
    fn is_lost(&self, lsn: u64) -> bool {
        self.lost.iter().any(|&(lo, hi)| lo <= lsn && lsn <= hi)
    }
}

/// Lost ranges kept: a waiter older than that many leadership changes is long gone.
const LOST_KEPT: usize = 64;

/// The records of the table not yet taken into a Raft entry.
#[derive(Debug, Default)]
struct Pending {
    /// Framed records (`Record::encode_frame`).
    buf: Vec<u8>,
    /// The last LSN handed out (a record or a read barrier).
    last_lsn: u64,
    /// The last LSN taken by the node loop.
    taken_lsn: u64,
    /// Whether the node loop was told that there is something to take.
    woken: bool,
}

/// The table's record sink in cluster mode: batches records for the next Raft entry.
pub(crate) struct RaftSink {
    pending: Mutex<Pending>,
    inbox: mpsc::Sender<Input>,
}

impl RaftSink {
    /// Queues `record`; no I/O (called under a shard mutex).
    fn push(&self, record: Option<&Record>) -> u64 {
        let mut p = self.pending.lock();
        if let Some(record) = record {
            record.encode_frame(&mut p.buf);
        }
        p.last_lsn += 1;
        let lsn = p.last_lsn;
        let wake = !p.woken;
        p.woken = true;
        drop(p);
        if wake {
            let _ = self.inbox.send(Input::Propose);
        }
        lsn
    }

    /// Takes what is pending: the frames and the last LSN they cover.
    fn take(&self) -> Option<(Vec<u8>, u64)> {
        let mut p = self.pending.lock();
        p.woken = false;
        if p.last_lsn == p.taken_lsn {
            return None;
        }
        p.taken_lsn = p.last_lsn;
        Some((std::mem::take(&mut p.buf), p.last_lsn))
    }
}

impl RecordSink for RaftSink {
    fn append(&self, record: &Record) -> u64 {
        self.push(Some(record))
    }
}

/// The cluster side of a node, shared by the server, the connections and the node loop.
pub struct Cluster {
    /// This node's id.
    pub id: u64,
    /// `--peers`: the bootstrap membership of a new cluster, and afterwards how this node
    /// reaches the nodes it names (an address here wins over the replicated one, so a
    /// node can reach a peer through a proxy); its own entry is where it listens.
    peers_flag: Peers,
    /// `--join`: a new node that waits to be added instead of bootstrapping.
    join: bool,
    /// The current members and the addresses they were added with (set by the node loop).
    members: Mutex<Peers>,
    /// Heartbeat interval (one Raft tick).
    pub heartbeat: Duration,
    /// The configured election timeout (followers wait between it and twice it).
    pub election_timeout: Duration,
    /// Entries applied between two snapshots (log compactions).
    pub snapshot_entries: u64,
    pub(crate) sink: Arc<RaftSink>,
    serving: AtomicBool,
    /// `serving` as a watch, for the expirer (which must not wake at every commit).
    serving_watch: watch::Sender<bool>,
    status: watch::Sender<Status>,
    /// The known leader's id alone (0: none), for waiters that care only about it.
    leader: watch::Sender<u64>,
    progress: watch::Sender<Progress>,
    /// When a new leader may start ending leases (promotion + the lease extension).
    expiry_from: Mutex<Option<Instant>>,
    inbox: mpsc::Sender<Input>,
    /// The node loop's end of the inbox, until [`start`] takes it.
    inbox_rx: Mutex<Option<mpsc::Receiver<Input>>>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("id", &self.id)
            .field("status", &*self.status.borrow())
            .finish()
    }
}

impl Cluster {
    /// The cluster handle of `config`, or None in single-node mode.
    ///
    /// # Errors
    /// [`StartupError::Config`] for a bad `--peers` or a `--node-id` not in it.
    pub fn from_config(config: &Config) -> Result<Option<Arc<Cluster>>, StartupError> {
        let (Some(id), Some(peers)) = (config.node_id, config.peers.as_deref()) else {
            return Ok(None);
        };
        let peers = parse_peers(peers).map_err(StartupError::Config)?;
        if !peers.contains_key(&id) {
            return Err(StartupError::Config(format!(
                "--node-id {id} is not in --peers"
            )));
        }
        if config.heartbeat_ms == 0 || config.election_timeout_ms < 2 * config.heartbeat_ms {
            return Err(StartupError::Config(
                "--election-timeout-ms must be at least twice --heartbeat-ms (and that above 0)"
                    .into(),
            ));
        }
        let (inbox, inbox_rx) = mpsc::channel();
        Ok(Some(Arc::new(Cluster {
            id,
            members: Mutex::new(peers.clone()),
            peers_flag: peers,
            join: config.join,
            heartbeat: Duration::from_millis(config.heartbeat_ms),
            election_timeout: Duration::from_millis(config.election_timeout_ms),
            snapshot_entries: config.raft_snapshot_entries.max(1),
            sink: Arc::new(RaftSink {
                pending: Mutex::new(Pending::default()),
                inbox: inbox.clone(),
            }),
            serving: AtomicBool::new(false),
            serving_watch: watch::channel(false).0,
            status: watch::channel(Status::default()).0,
            leader: watch::channel(0).0,
            progress: watch::channel(Progress::default()).0,
            expiry_from: Mutex::new(None),
            inbox,
            inbox_rx: Mutex::new(Some(inbox_rx)),
        })))
    }

    /// The table's record sink.
    pub fn record_sink(&self) -> Arc<dyn RecordSink> {
        self.sink.clone()
    }

    /// Whether this node executes commands now (it leads and has applied its log).
    pub fn is_serving(&self) -> bool {
        self.serving.load(Ordering::Acquire)
    }

    /// The node loop's last published status.
    pub fn status(&self) -> Status {
        self.status.borrow().clone()
    }

    /// A receiver of status changes.
    pub fn watch_status(&self) -> watch::Receiver<Status> {
        self.status.subscribe()
    }

    /// An LSN whose commit proves that every change visible now is committed and that this
    /// node still led when it was proposed (a read barrier: an entry, possibly empty).
    pub fn barrier(&self) -> u64 {
        self.sink.push(None)
    }

    /// Resolves once `lsn` is committed by a majority.
    ///
    /// # Errors
    /// [`LogError::Failed`] when the leadership was lost before `lsn` was seen committed:
    /// the change may or may not take effect, and must not be acknowledged.
    pub async fn wait_committed(&self, lsn: u64) -> Result<(), LogError> {
        if lsn == 0 {
            return Ok(());
        }
        let mut rx = self.progress.subscribe();
        let seen = rx
            .wait_for(|p| p.committed >= lsn || p.is_lost(lsn))
            .await
            .map_err(|_| LogError::Closed)?;
        if seen.is_lost(lsn) {
            Err(LogError::Failed(
                "TRYAGAIN leadership changed before the change was committed".into(),
            ))
        } else {
            Ok(())
        }
    }

    /// Waits until this node may end leases: it serves, and the lease extension after its
    /// promotion has passed (the previous leader's leases could have run out by then).
    pub async fn expiry_allowed(&self) {
        let mut serving = self.serving_watch.subscribe();
        loop {
            let from = *self.expiry_from.lock();
            match from {
                Some(at) if self.is_serving() => {
                    if Instant::now() >= at {
                        return;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep_until(at.into()) => {}
                        _ = serving.changed() => {}
                    }
                }
                _ => {
                    if serving.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
            }
        }
    }

    /// The `# Replication` section of INFO.
    pub fn info(&self) -> String {
        let s = self.status();
        let role = match s.role {
            Role::Leader => "leader",
            Role::Candidate => "candidate",
            Role::Follower => "follower",
            Role::Removed => "removed",
        };
        let members = self.members();
        let ids: Vec<String> = members.keys().map(u64::to_string).collect();
        let mut out = String::from("# Replication\r\n");
        let _ = write!(
            out,
            "role:{role}\r\nnode_id:{}\r\nleader_id:{}\r\nterm:{}\r\ncommit_index:{}\r\n\
             applied_index:{}\r\nserving:{}\r\ncluster_nodes:{}\r\ncluster_members:{}\r\n\r\n",
            self.id,
            s.leader_id,
            s.term,
            s.commit_index,
            s.applied_index,
            u8::from(s.serving),
            members.len(),
            ids.join(","),
        );
        out
    }

    /// The `# Persistence` section of INFO in cluster mode: the Raft log and snapshot, which
    /// replace the single-node append-only log (every change is on disk before it counts
    /// towards a commit).
    pub fn persistence_info(&self) -> String {
        let s = self.status();
        format!(
            "# Persistence\r\nloading:0\r\naof_enabled:1\r\npersistence:raft\r\n\
             appendfsync:always\r\nraft_log_bytes:{}\r\nraft_first_index:{}\r\n\
             raft_last_index:{}\r\nraft_commit_index:{}\r\nraft_applied_index:{}\r\n\
             raft_snapshot_index:{}\r\nraft_snapshots:{}\r\naof_last_write_status:ok\r\n\r\n",
            s.log_bytes,
            s.first_index,
            s.last_index,
            s.commit_index,
            s.applied_index,
            s.snapshot_index,
            s.snapshots,
        )
    }

    /// The current members (ids and the addresses they were added with).
    pub fn members(&self) -> Peers {
        self.members.lock().clone()
    }

    /// Where this node reaches node `id`: its `--peers` entry, else the address the node
    /// was added with.
    pub fn address_of(&self, id: u64) -> Option<String> {
        self.peers_flag
            .get(&id)
            .cloned()
            .or_else(|| self.members.lock().get(&id).cloned())
    }

    /// `CLUSTER NODES`: one line per member, `<id> <peer-addr> <flags>`, flags among
    /// `myself`, `leader`, `follower` (comma-separated), addresses as this node reaches
    /// them.
    pub fn nodes_text(&self) -> String {
        let leader = self.status().leader_id;
        let members = self.members();
        let mut out = String::new();
        for id in members.keys() {
            let addr = self.address_of(*id).unwrap_or_default();
            let mut flags = Vec::new();
            if *id == self.id {
                flags.push("myself");
            }
            flags.push(if *id == leader { "leader" } else { "follower" });
            let _ = writeln!(out, "{id} {addr} {}", flags.join(","));
        }
        out
    }

    /// Proposes a membership change and waits until it is committed and applied on this
    /// node (the leader).
    ///
    /// # Errors
    /// The Redis-style refusal: not the leader, a change already in progress, an unknown
    /// or duplicate id, the last node, or the leadership lost before the commit.
    pub async fn change_membership(&self, change: MemberChange) -> Result<(), RespError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.inbox.send(Input::Member(change, tx)).is_err() {
            return Err(NO_LEADER);
        }
        match tokio::time::timeout(MEMBER_CHANGE_TIMEOUT, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(node::LEADERSHIP_LOST_CHANGE),
            Err(_) => Err(RespError::fixed(
                "TRYAGAIN the membership change was not committed within 10 s (it may still be)",
            )),
        }
    }

    /// A receiver of changes of the known leader (its id; 0: none).
    pub fn watch_leader(&self) -> watch::Receiver<u64> {
        self.leader.subscribe()
    }

    /// The address of the leader's peer port as this node reaches it, if another node leads.
    pub fn leader_addr(&self) -> Option<String> {
        let leader = self.status.borrow().leader_id;
        (leader != 0 && leader != self.id)
            .then(|| self.address_of(leader))
            .flatten()
    }

    // ---- for the node loop ----

    fn publish_status(&self, status: Status) {
        self.serving.store(status.serving, Ordering::Release);
        self.serving_watch.send_if_modified(|s| {
            let changed = *s != status.serving;
            *s = status.serving;
            changed
        });
        self.leader.send_if_modified(|l| {
            let changed = *l != status.leader_id;
            *l = status.leader_id;
            changed
        });
        self.status.send_if_modified(|s| {
            let changed = *s != status;
            *s = status;
            changed
        });
    }

    fn set_members(&self, members: Peers) {
        *self.members.lock() = members;
    }

    fn set_expiry_from(&self, at: Option<Instant>) {
        *self.expiry_from.lock() = at;
    }

    fn publish_committed(&self, lsn: u64) {
        self.progress.send_if_modified(|p| {
            let changed = lsn > p.committed;
            p.committed = p.committed.max(lsn);
            changed
        });
    }

    /// Marks every LSN handed out and not yet reported committed as lost, and drops what
    /// is pending. True if anything was.
    fn lose_uncommitted(&self) -> bool {
        let last = {
            let mut p = self.sink.pending.lock();
            p.buf.clear();
            p.taken_lsn = p.last_lsn;
            p.last_lsn
        };
        let mut any = false;
        self.progress.send_if_modified(|p| {
            if last > p.committed && !p.is_lost(last) {
                p.lost.push((p.committed + 1, last));
                if p.lost.len() > LOST_KEPT {
                    p.lost.remove(0);
                }
                any = true;
            }
            any
        });
        any
    }

    /// Whether anything was appended and not yet taken (a table change on a node that
    /// does not serve: a command that raced a leadership change).
    fn has_untaken(&self) -> bool {
        let p = self.sink.pending.lock();
        p.last_lsn != p.taken_lsn
    }
}

/// Starts the node: opens the Raft storage, binds the peer port and runs the node loop
/// on its own thread. Call once, inside the runtime, after the server is built.
///
/// # Errors
/// [`StartupError`] when the Raft storage cannot be read or the peer port cannot be bound.
pub async fn start(
    server: &Arc<Shared>,
    cluster: &Arc<Cluster>,
    shutdown: crate::server::shutdown::Shutdown,
) -> Result<node::NodeHandle, StartupError> {
    let Some(inbox_rx) = cluster.inbox_rx.lock().take() else {
        return Err(StartupError::Config("cluster already started".into()));
    };
    let dir = server.config.dir.clone();
    let bootstrap = cluster.peers_flag.clone();
    let join = cluster.join;
    let storage =
        tokio::task::spawn_blocking(move || storage::DiskStorage::open(&dir, &bootstrap, join))
            .await
            .map_err(|e| StartupError::Persistence(format!("raft storage: {e}")))??;
    cluster.set_members(storage.membership.clone());
    let own = cluster
        .peers_flag
        .get(&cluster.id)
        .cloned()
        .unwrap_or_default();
    let listener = tokio::net::TcpListener::bind(&own)
        .await
        .map_err(|source| StartupError::Bind {
            addr: own.clone(),
            source,
        })?;
    tracing::info!(node_id = cluster.id, peer_addr = %own,
        members = %membership::encode(&storage.membership), "cluster peer port ready");
    tokio::spawn(transport::listen(
        listener,
        server.clone(),
        cluster.inbox.clone(),
        shutdown,
    ));
    node::spawn(
        server.clone(),
        cluster.clone(),
        storage,
        inbox_rx,
        tokio::runtime::Handle::current(),
    )
}
