//! N real baton processes in cluster mode on loopback, wired through per-link proxies,
//! with the faults the Jepsen-style tests inject: kill -9 and restart (same data
//! directory), SIGSTOP/SIGCONT, and link modes (cut, delay, blackhole) per direction.
//!
//! Node i is started as
//! `baton --node-id i --peers 1=...,2=...,3=... --port P --dir DIR --bind 127.0.0.1`.
//! In node i's `--peers` its own entry is the address it listens on for peers; the entry
//! of every other node j is the proxy of link i->j, so that each directed link can be
//! switched on its own (asymmetric partitions). Clients talk to `--port` directly.
//! Signals go through `nix` (kill -9 through std's `Child::kill`, which is SIGKILL).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::proxy::{LinkMode, Proxy};

/// The baton binary that cargo built for this test run.
pub const BATON: &str = env!("CARGO_BIN_EXE_baton");

/// What `INFO replication` says about a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplInfo {
    /// `role:` (`leader`, `follower`, or whatever else the node says, e.g. `candidate`).
    pub role: String,
    /// `leader_id:` (0 or absent when the node knows no leader).
    pub leader_id: u64,
    /// `term:`.
    pub term: u64,
    /// `commit_index:`.
    pub commit_index: u64,
}

impl ReplInfo {
    /// Parses the text of `INFO replication`; None when a field is missing.
    pub fn parse(text: &str) -> Option<ReplInfo> {
        let mut fields = BTreeMap::new();
        for line in text.lines() {
            if let Some((k, v)) = line.trim().split_once(':') {
                fields.insert(k.to_string(), v.to_string());
            }
        }
        Some(ReplInfo {
            role: fields.get("role")?.clone(),
            leader_id: fields
                .get("leader_id")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            term: fields.get("term")?.parse().ok()?,
            commit_index: fields.get("commit_index")?.parse().ok()?,
        })
    }
}

/// One node: its ports, its directory, and its process while it runs.
pub struct Node {
    /// The node id (1-based).
    pub id: u64,
    /// Where clients connect.
    pub client: SocketAddr,
    /// Where the node listens for its peers.
    pub peer: SocketAddr,
    /// Its data directory (kept across restarts).
    pub dir: PathBuf,
    /// Its log (stdout and stderr of every run, appended).
    pub log: PathBuf,
    child: Option<Child>,
    paused: bool,
}

/// A cluster of baton processes and the proxies between them.
pub struct Cluster {
    /// The nodes, index i holds node id i + 1.
    pub nodes: Vec<Node>,
    links: BTreeMap<(u64, u64), Proxy>,
    root: tempfile::TempDir,
    extra_args: Vec<String>,
    clustered: bool,
}

/// A free loopback port (bound, read and released; the OS does not hand it out again at
/// once, which is as good as it gets without the server binding port 0).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

impl Cluster {
    /// Starts `n` nodes (ids 1..=n) and their links; returns once every node answers
    /// INFO (not yet once a leader is elected: see `wait_for_leader`).
    pub async fn start(n: usize) -> Cluster {
        Cluster::start_with(n, &[]).await
    }

    /// One baton in today's single-node mode (no `--node-id`/`--peers`), under the same
    /// controls (kill -9, restart, SIGSTOP), as a baseline for the checker.
    pub async fn start_single() -> Cluster {
        Cluster::start_inner(1, &[], false).await
    }

    /// As `start_single`, with extra command-line arguments.
    pub async fn start_single_with(extra_args: &[&str]) -> Cluster {
        Cluster::start_inner(1, extra_args, false).await
    }

    /// As `start`, with extra command-line arguments for every node.
    pub async fn start_with(n: usize, extra_args: &[&str]) -> Cluster {
        Cluster::start_inner(n, extra_args, true).await
    }

    async fn start_inner(n: usize, extra_args: &[&str], clustered: bool) -> Cluster {
        let root = tempfile::Builder::new()
            .prefix("baton-cluster-")
            .tempdir()
            .expect("temp dir");
        let mut nodes = Vec::new();
        for id in 1..=n as u64 {
            let dir = root.path().join(format!("d{id}"));
            std::fs::create_dir_all(&dir).expect("node dir");
            nodes.push(Node {
                id,
                client: SocketAddr::from(([127, 0, 0, 1], free_port())),
                peer: SocketAddr::from(([127, 0, 0, 1], free_port())),
                log: root.path().join(format!("node{id}.log")),
                dir,
                child: None,
                paused: false,
            });
        }
        let mut links = BTreeMap::new();
        for from in &nodes {
            for to in &nodes {
                if from.id != to.id {
                    let proxy = Proxy::start(to.peer).await.expect("proxy");
                    links.insert((from.id, to.id), proxy);
                }
            }
        }
        let mut cluster = Cluster {
            nodes,
            links,
            root,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            clustered,
        };
        for id in 1..=n as u64 {
            cluster.spawn(id);
        }
        for id in 1..=n as u64 {
            cluster.wait_up(id, Duration::from_secs(20)).await;
        }
        cluster
    }

    /// The ids of all nodes.
    pub fn ids(&self) -> Vec<u64> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    /// Node `id`.
    pub fn node(&self, id: u64) -> &Node {
        &self.nodes[(id - 1) as usize]
    }

    fn node_mut(&mut self, id: u64) -> &mut Node {
        &mut self.nodes[(id - 1) as usize]
    }

    /// The temp dir that holds the node directories and logs.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// The `--peers` value node `id` is started with.
    pub fn peers_arg(&self, id: u64) -> String {
        self.nodes
            .iter()
            .map(|n| {
                let addr = if n.id == id {
                    n.peer
                } else {
                    self.links[&(id, n.id)].listen
                };
                format!("{}={}", n.id, addr)
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The full argument list node `id` is started with.
    pub fn args(&self, id: u64) -> Vec<String> {
        let node = self.node(id);
        let mut args = Vec::new();
        if self.clustered {
            args.extend([
                "--node-id".to_string(),
                id.to_string(),
                "--peers".to_string(),
                self.peers_arg(id),
            ]);
        }
        args.extend([
            "--port".to_string(),
            node.client.port().to_string(),
            "--bind".to_string(),
            "127.0.0.1".to_string(),
            "--dir".to_string(),
            node.dir.display().to_string(),
        ]);
        args.extend(self.extra_args.iter().cloned());
        args
    }

    fn spawn(&mut self, id: u64) {
        let args = self.args(id);
        let node = self.node_mut(id);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .expect("node log");
        let log2 = log.try_clone().expect("log clone");
        let child = Command::new(BATON)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .spawn()
            .expect("spawn baton");
        node.child = Some(child);
        node.paused = false;
    }

    /// Waits until node `id` answers INFO on its client port; panics after `within`.
    pub async fn wait_up(&mut self, id: u64, within: Duration) {
        let addr = self.node(id).client;
        let deadline = Instant::now() + within;
        loop {
            if ping(addr).await {
                return;
            }
            if let Some(child) = self.node_mut(id).child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "node {id} exited with {status} at start; log:\n{}",
                        tail(&self.node(id).log, 40)
                    );
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "node {id} did not answer INFO within {within:?}; log:\n{}",
                    tail(&self.node(id).log, 40)
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Whether node `id` has a process (killed nodes have none).
    pub fn is_running(&self, id: u64) -> bool {
        self.node(id).child.is_some()
    }

    /// Whether node `id` is stopped by SIGSTOP.
    pub fn is_paused(&self, id: u64) -> bool {
        self.node(id).paused
    }

    /// kill -9 of node `id`; returns once the process is reaped.
    pub fn kill(&mut self, id: u64) {
        let node = self.node_mut(id);
        if let Some(mut child) = node.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        node.paused = false;
    }

    /// Starts node `id` again on the same ports and directory (it must be killed first);
    /// returns once it answers INFO.
    pub async fn restart(&mut self, id: u64) {
        assert!(!self.is_running(id), "restart of a running node {id}");
        self.spawn(id);
        self.wait_up(id, Duration::from_secs(20)).await;
    }

    /// SIGSTOP of node `id`.
    pub fn pause(&mut self, id: u64) {
        self.signal(id, Signal::SIGSTOP);
        self.node_mut(id).paused = true;
    }

    /// SIGCONT of node `id`.
    pub fn resume(&mut self, id: u64) {
        self.signal(id, Signal::SIGCONT);
        self.node_mut(id).paused = false;
    }

    fn signal(&self, id: u64, signal: Signal) {
        if let Some(child) = self.node(id).child.as_ref() {
            let pid = Pid::from_raw(child.id() as i32);
            kill(pid, signal).expect("signal a node");
        }
    }

    /// The proxy of the directed link `from` -> `to`.
    pub fn link(&self, from: u64, to: u64) -> &Proxy {
        &self.links[&(from, to)]
    }

    /// Sets the mode of the directed link `from` -> `to`.
    pub fn set_link(&self, from: u64, to: u64, mode: LinkMode) {
        self.link(from, to).set(mode);
    }

    /// Sets both directions between `a` and `b`.
    pub fn set_both(&self, a: u64, b: u64, mode: LinkMode) {
        self.set_link(a, b, mode);
        self.set_link(b, a, mode);
    }

    /// Cuts node `id` off from every other node, both directions, with `mode`
    /// (`Cut` or `Blackhole`).
    pub fn isolate(&self, id: u64, mode: LinkMode) {
        for other in self.ids() {
            if other != id {
                self.set_both(id, other, mode);
            }
        }
    }

    /// Every link back to `Pass`.
    pub fn heal(&self) {
        for proxy in self.links.values() {
            proxy.set(LinkMode::Pass);
        }
    }

    /// SIGCONT of every paused node, restart of every killed one, every link to Pass.
    pub async fn recover_all(&mut self) {
        self.heal();
        for id in self.ids() {
            if self.is_paused(id) {
                self.resume(id);
            }
            if !self.is_running(id) {
                self.restart(id).await;
            }
        }
    }

    /// `INFO replication` of node `id`, or None when it does not answer within 500 ms.
    pub async fn info(&self, id: u64) -> Option<ReplInfo> {
        if !self.is_running(id) || self.is_paused(id) {
            return None;
        }
        let addr = self.node(id).client;
        let text = tokio::time::timeout(Duration::from_millis(500), async move {
            let mut con = connect_bare(addr, Duration::from_millis(300)).await.ok()?;
            redis::cmd("INFO")
                .arg("replication")
                .query_async::<String>(&mut con)
                .await
                .ok()
        })
        .await
        .ok()??;
        ReplInfo::parse(&text)
    }

    /// Waits until exactly one running node says `role:leader` and every other running,
    /// unpaused node that answers names it as `leader_id` in the same term; returns its id.
    pub async fn wait_for_leader(&self, within: Duration) -> Result<u64, String> {
        let deadline = Instant::now() + within;
        loop {
            let mut infos = Vec::new();
            for id in self.ids() {
                if let Some(info) = self.info(id).await {
                    infos.push((id, info));
                }
            }
            let leaders: Vec<_> = infos.iter().filter(|(_, i)| i.role == "leader").collect();
            if let [(leader, linfo)] = leaders.as_slice() {
                let agreed = infos.iter().all(|(id, i)| {
                    id == leader || (i.leader_id == *leader && i.term == linfo.term)
                });
                if agreed && infos.len() * 2 > self.nodes.len() {
                    return Ok(*leader);
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no agreed leader within {within:?}; last view: {infos:?}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The last `lines` lines of every node's log, for a failure message.
    pub fn logs(&self, lines: usize) -> String {
        let mut out = String::new();
        for n in &self.nodes {
            out.push_str(&format!("--- node {} ({}) ---\n", n.id, n.log.display()));
            out.push_str(&tail(&n.log, lines));
        }
        out
    }

    /// Copies the node logs into `dest` (for a failed run).
    pub fn keep_logs(&self, dest: &Path) {
        let _ = std::fs::create_dir_all(dest);
        for n in &self.nodes {
            let _ = std::fs::copy(&n.log, dest.join(format!("node{}.log", n.id)));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for id in self.ids() {
            if self.is_paused(id) {
                self.resume(id);
            }
            self.kill(id);
        }
    }
}

/// A `redis` connection to `addr` (RESP2) with no response timeout of the crate's own:
/// callers bound each call themselves. Fails after `connect_timeout`.
pub async fn connect(
    addr: SocketAddr,
    connect_timeout: Duration,
) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
    let client = redis::Client::open(format!("redis://{addr}/"))?;
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(connect_timeout))
        .set_response_timeout(None);
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

/// As `connect`, without the `CLIENT SETINFO` that the crate pipelines at connect time:
/// a node with no leader holds every command but INFO until one is elected, so the
/// harness's own `INFO replication` probes must not depend on that handshake.
pub async fn connect_bare(
    addr: SocketAddr,
    connect_timeout: Duration,
) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
    use redis::IntoConnectionInfo;
    let info = format!("redis://{addr}/").into_connection_info()?;
    let settings = info.redis_settings().clone().set_skip_set_lib_name();
    let client = redis::Client::open(info.set_redis_settings(settings))?;
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(connect_timeout))
        .set_response_timeout(None);
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

/// Whether `addr` answers `INFO server` within 300 ms (INFO is the one command a node
/// answers itself while it knows no leader).
pub async fn ping(addr: SocketAddr) -> bool {
    tokio::time::timeout(Duration::from_millis(300), async {
        let mut con = connect_bare(addr, Duration::from_millis(200)).await.ok()?;
        redis::cmd("INFO")
            .arg("server")
            .query_async::<String>(&mut con)
            .await
            .ok()
    })
    .await
    .ok()
    .flatten()
    .is_some()
}

/// The last `lines` lines of a file.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    let mut out = all[start..].join("\n");
    out.push('\n');
    out
}

/// Where a failed run's history and logs go: `$BATON_CLUSTER_HISTORY` or
/// `target/tmp/cluster-history`, in a folder named after `test` and the time.
pub fn failure_dir(test: &str) -> PathBuf {
    let base = std::env::var_os("BATON_CLUSTER_HISTORY")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cluster-history"));
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    base.join(format!("{test}-{stamp}"))
}

/// Writes `text` to `path`, creating its folder.
pub fn write_file(path: &Path, text: &str) {
    if let Some(parent) = path.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    if let Ok(mut f) = File::create(path) {
        use std::io::Write;
        let _ = f.write_all(text.as_bytes());
    }
}
