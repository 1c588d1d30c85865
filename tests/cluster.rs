//! Cluster mode end to end: three real `baton` processes on loopback, redis-rs clients.
//!
//! Run: `cargo test --test cluster` (each test starts its own three nodes on free ports;
//! the membership tests add a fourth with `--join`).

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{eventually, lock, unlock};

/// One node: its process, client port, HTTP port and data directory.
struct Node {
    port: u16,
    http: u16,
    dir: PathBuf,
    child: Option<Child>,
    /// A node started after the cluster: its own `--peers`, and it is started with
    /// `--join`.
    joiner_peers: Option<String>,
}

/// Three nodes of one cluster; killed on drop.
struct Cluster {
    nodes: Vec<Node>,
    peers: String,
    extra: Vec<String>,
    _tmp: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

impl Cluster {
    fn start(n: u64) -> Cluster {
        Cluster::start_with(n, &[])
    }

    fn start_with(n: u64, extra: &[&str]) -> Cluster {
        let tmp = tempfile::tempdir().expect("tempdir");
        let peers = (1..=n)
            .map(|id| format!("{id}=127.0.0.1:{}", free_port()))
            .collect::<Vec<_>>()
            .join(",");
        let nodes = (1..=n)
            .map(|id| Node {
                port: free_port(),
                http: free_port(),
                dir: tmp.path().join(format!("d{id}")),
                child: None,
                joiner_peers: None,
            })
            .collect();
        let mut cluster = Cluster {
            nodes,
            peers,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            _tmp: tmp,
        };
        for id in 1..=n {
            cluster.spawn(id);
        }
        cluster
    }

    fn node(&self, id: u64) -> &Node {
        &self.nodes[(id - 1) as usize]
    }

    /// Starts a new node with `--join` (the next id; its `--peers` is the cluster's plus
    /// its own entry); returns its id and peer address, for `CLUSTER ADDNODE`.
    fn spawn_joiner(&mut self) -> (u64, String) {
        let id = self.nodes.len() as u64 + 1;
        let addr = format!("127.0.0.1:{}", free_port());
        let dir = self._tmp.path().join(format!("d{id}"));
        self.nodes.push(Node {
            port: free_port(),
            http: free_port(),
            dir,
            child: None,
            joiner_peers: Some(format!("{},{id}={addr}", self.peers)),
        });
        self.spawn(id);
        (id, addr)
    }

    fn spawn(&mut self, id: u64) {
        let node = &self.nodes[(id - 1) as usize];
        let peers = node
            .joiner_peers
            .clone()
            .unwrap_or_else(|| self.peers.clone());
        let join: &[&str] = if node.joiner_peers.is_some() {
            &["--join"]
        } else {
            &[]
        };
        let child = Command::new(env!("CARGO_BIN_EXE_baton"))
            .args(["--node-id", &id.to_string(), "--peers", &peers])
            .args(join)
            .args(["--port", &node.port.to_string()])
            .args(["--http-port", &node.http.to_string(), "--dir"])
            .arg(&node.dir)
            .args(["--log-level", "warn"])
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn baton");
        self.nodes[(id - 1) as usize].child = Some(child);
    }

    fn kill(&mut self, id: u64) {
        if let Some(mut child) = self.nodes[(id - 1) as usize].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn signal(&self, id: u64, sig: &str) {
        let pid = self.node(id).child.as_ref().expect("running").id();
        let status = Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    fn conn(&self, id: u64) -> redis::Connection {
        let port = self.node(id).port;
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).expect("client");
        let mut con = None;
        eventually("node accepts", Duration::from_secs(20), || {
            con = client.get_connection().ok();
            con.is_some()
        });
        let con = con.expect("connected");
        con.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        con
    }

    /// `INFO replication` of a node as a map (None if it does not answer).
    fn replication(&self, id: u64) -> Option<HashMap<String, String>> {
        use redis::IntoConnectionInfo;
        let port = self.node(id).port;
        // No CLIENT SETINFO at connect: a node that knows no leader answers only INFO.
        let info = format!("redis://127.0.0.1:{port}/")
            .into_connection_info()
            .ok()?;
        let settings = info.redis_settings().clone().set_skip_set_lib_name();
        let client = redis::Client::open(info.set_redis_settings(settings)).ok()?;
        let mut con = client
            .get_connection_with_timeout(Duration::from_millis(300))
            .ok()?;
        con.set_read_timeout(Some(Duration::from_millis(500)))
            .ok()?;
        let text: String = redis::cmd("INFO").arg("replication").query(&mut con).ok()?;
        Some(fields(&text))
    }

    /// Waits until exactly one of `alive` serves as leader and the others follow it.
    fn leader(&self, alive: &[u64]) -> u64 {
        let mut leader = 0;
        eventually("one serving leader", Duration::from_secs(20), || {
            let infos: Vec<_> = alive.iter().map(|&id| (id, self.replication(id))).collect();
            let serving: Vec<u64> = infos
                .iter()
                .filter(|(_, i)| {
                    i.as_ref().is_some_and(|i| {
                        i.get("role").map(String::as_str) == Some("leader")
                            && i.get("serving").map(String::as_str) == Some("1")
                    })
                })
                .map(|(id, _)| *id)
                .collect();
            if serving.len() != 1 {
                return false;
            }
            leader = serving[0];
            infos.iter().all(|(_, i)| {
                i.as_ref()
                    .is_some_and(|i| i.get("leader_id") == Some(&leader.to_string()))
            })
        });
        leader
    }

    /// GET `path` on a node's HTTP port: (status, body), or None while nothing answers.
    fn http(&self, id: u64, path: &str) -> Option<(u16, String)> {
        use std::io::{Read, Write};
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], self.node(id).http));
        let mut stream =
            std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: baton\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        let status = response.split(' ').nth(1)?.parse().ok()?;
        let body = response.split_once("\r\n\r\n")?.1.to_string();
        Some((status, body))
    }

    fn info_locks(&self, id: u64) -> HashMap<String, String> {
        let mut con = self.conn(id);
        let text: String = redis::cmd("INFO")
            .arg("locks")
            .query(&mut con)
            .expect("INFO");
        fields(&text)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = Command::new("kill")
                    .args(["-CONT", &child.id().to_string()])
                    .status();
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

fn fields(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.trim().split_once(':'))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn others(leader: u64, n: u64) -> Vec<u64> {
    (1..=n).filter(|&id| id != leader).collect()
}

#[test]
fn three_nodes_elect_a_leader_and_every_node_applies_a_grant() {
    let cluster = Cluster::start(3);
    let leader = cluster.leader(&[1, 2, 3]);
    let info = cluster.replication(leader).expect("leader info");
    assert!(info["term"].parse::<u64>().expect("term") >= 1);
    for id in others(leader, 3) {
        let info = cluster.replication(id).expect("follower info");
        assert_eq!(info["role"], "follower");
    }

    let mut con = cluster.conn(leader);
    let token = lock(&mut con, "k", "alice", 60_000).expect("granted");
    assert!(token > 0);
    // The reply came after a majority committed it; every node applies it.
    for id in 1..=3 {
        eventually(
            "grant applied on every node",
            Duration::from_secs(5),
            || cluster.info_locks(id).get("holders").map(String::as_str) == Some("1"),
        );
    }
    let commit: Vec<String> = (1..=3)
        .map(|id| cluster.replication(id).expect("info")["commit_index"].clone())
        .collect();
    assert!(commit.iter().all(|c| c.parse::<u64>().expect("index") >= 2));
}

#[test]
fn a_follower_forwards_commands_to_the_leader_in_order() {
    let cluster = Cluster::start(3);
    let leader = cluster.leader(&[1, 2, 3]);
    let follower = others(leader, 3)[0];
    let mut con = cluster.conn(follower);

    let t1 = lock(&mut con, "f", "bob", 60_000).expect("granted through the follower");
    assert_eq!(lock(&mut con, "f", "carol", 60_000), None);
    // Pipelined, with a local INFO in the middle: replies keep the request order.
    let (a, info, b): (Option<i64>, String, i64) = redis::pipe()
        .cmd("LOCK")
        .arg("g")
        .arg("bob")
        .arg(60_000)
        .cmd("INFO")
        .arg("replication")
        .cmd("UNLOCK")
        .arg("f")
        .arg("bob")
        .query(&mut con)
        .expect("pipeline");
    assert!(a.expect("g granted") > t1);
    assert_eq!(
        fields(&info)["role"],
        "follower",
        "INFO is the follower's own"
    );
    assert_eq!(b, 1);
    assert_eq!(unlock(&mut con, "g", "bob"), 1);

    // What a follower's client did is on the leader.
    let mut on_leader = cluster.conn(leader);
    let t3 = lock(&mut on_leader, "f", "carol", 60_000).expect("f was released");
    assert!(t3 > t1);
}

#[test]
fn after_kill_9_of_the_leader_a_new_leader_keeps_holds_and_grants_higher_tokens() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.leader(&[1, 2, 3]);
    let mut con = cluster.conn(leader);
    let t1 = lock(&mut con, "held", "alice", 60_000).expect("granted");
    let t2 = lock(&mut con, "other", "alice", 60_000).expect("granted");
    drop(con);

    let killed = Instant::now();
    cluster.kill(leader);
    let alive = others(leader, 3);
    // First grant on the new leader, through whichever node answers.
    let mut first_grant = None;
    eventually(
        "a grant after the failover",
        Duration::from_secs(20),
        || {
            for &id in &alive {
                let Ok(client) =
                    redis::Client::open(format!("redis://127.0.0.1:{}/", cluster.node(id).port))
                else {
                    continue;
                };
                let Ok(mut c) = client.get_connection_with_timeout(Duration::from_millis(300))
                else {
                    continue;
                };
                let _ = c.set_read_timeout(Some(Duration::from_secs(3)));
                let got: redis::RedisResult<Option<i64>> = redis::cmd("LOCK")
                    .arg("fresh")
                    .arg("dave")
                    .arg(60_000)
                    .query(&mut c);
                if let Ok(Some(token)) = got {
                    first_grant = Some(token);
                    return true;
                }
            }
            false
        },
    );
    let failover = killed.elapsed();
    eprintln!("failover: kill -9 of the leader to the first grant: {failover:?}");
    let t3 = first_grant.expect("granted");
    assert!(
        t3 > t2,
        "tokens keep rising across the failover: {t3} > {t2}"
    );

    let new_leader = cluster.leader(&alive);
    assert_ne!(new_leader, leader);
    let mut con = cluster.conn(new_leader);
    // The hold made before the failover survived: nobody else gets it.
    assert_eq!(lock(&mut con, "held", "bob", 60_000), None);
    assert_eq!(unlock(&mut con, "held", "alice"), 1);
    let t4 = lock(&mut con, "held", "bob", 60_000).expect("granted after release");
    assert!(t4 > t3 && t4 > t1);

    // The old leader comes back as a follower and catches up from the log.
    cluster.spawn(leader);
    let again = cluster.leader(&[1, 2, 3]);
    assert_eq!(again, new_leader);
    eventually("restarted node caught up", Duration::from_secs(10), || {
        cluster
            .info_locks(leader)
            .get("holders")
            .map(String::as_str)
            == Some("3")
    });
}

#[test]
fn a_paused_leader_is_deposed_fails_its_waiter_and_grants_nothing() {
    let cluster = Cluster::start(3);
    let leader = cluster.leader(&[1, 2, 3]);
    let mut con = cluster.conn(leader);
    lock(&mut con, "w", "alice", 60_000).expect("granted");
    // A WAIT queued on the leader.
    let mut waiter = cluster.conn(leader);
    let mut waiting = redis::cmd("LOCK");
    waiting
        .arg("w")
        .arg("bob")
        .arg(60_000)
        .arg("WAIT")
        .arg(30_000);
    let packed = waiting.get_packed_command();
    let mut raw =
        std::net::TcpStream::connect(("127.0.0.1", cluster.node(leader).port)).expect("connect");
    raw.set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    std::io::Write::write_all(&mut raw, &packed).expect("send WAIT");
    eventually("waiter queued", Duration::from_secs(5), || {
        common::waiters(&mut waiter, "w") == 1
    });

    cluster.signal(leader, "-STOP");
    let alive = others(leader, 3);
    let new_leader = cluster.leader(&alive);
    let mut on_new = cluster.conn(new_leader);
    // The new leader has the hold; it grants another key.
    assert_eq!(lock(&mut on_new, "w", "carol", 60_000), None);
    lock(&mut on_new, "x", "carol", 60_000).expect("granted by the new leader");
    cluster.signal(leader, "-CONT");

    // The old leader learns the new term, steps down and fails its waiter.
    let mut reply = Vec::new();
    let mut buf = [0u8; 256];
    let got = std::io::Read::read(&mut raw, &mut buf);
    if let Ok(n) = got {
        reply.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&reply).to_string();
    eprintln!("the deposed leader's waiter got {text:?}");
    assert!(
        text.is_empty() || text.starts_with("-TRYAGAIN"),
        "the deposed leader's waiter gets -TRYAGAIN or a closed connection, got {text:?}"
    );
    // Once a follower, it answers through the new leader: bob did not get `w`.
    eventually("old leader follows", Duration::from_secs(10), || {
        cluster
            .replication(leader)
            .is_some_and(|i| i["role"] == "follower" && i["leader_id"] == new_leader.to_string())
    });
    let mut back = cluster.conn(leader);
    let owner = common::info_field(&mut back, "LOCK.INFO", "w", "holders");
    let text = format!("{owner:?}");
    assert!(text.contains("alice") && !text.contains("bob"), "{text}");
}

#[test]
fn a_node_behind_the_compacted_log_catches_up_from_a_snapshot() {
    let mut cluster = Cluster::start_with(3, &["--raft-snapshot-entries", "20"]);
    let leader = cluster.leader(&[1, 2, 3]);
    let behind = others(leader, 3)[0];
    cluster.kill(behind);
    let mut con = cluster.conn(leader);
    let mut last = 0;
    for i in 0..60 {
        let key = format!("s{}", i % 7);
        last = lock(&mut con, &key, "alice", 60_000).expect("granted");
        assert_eq!(unlock(&mut con, &key, "alice"), 1);
    }
    let kept = lock(&mut con, "kept", "alice", 60_000).expect("granted");
    assert!(kept > last);
    // The leader compacted past what `behind` has: it must install a snapshot.
    cluster.spawn(behind);
    eventually(
        "snapshot installed and log caught up",
        Duration::from_secs(15),
        || {
            cluster
                .info_locks(behind)
                .get("holders")
                .map(String::as_str)
                == Some("1")
        },
    );
    // Restarting every node loads its own snapshot plus the log after it.
    for id in 1..=3 {
        cluster.kill(id);
    }
    for id in 1..=3 {
        cluster.spawn(id);
    }
    let leader = cluster.leader(&[1, 2, 3]);
    let mut con = cluster.conn(leader);
    assert_eq!(
        lock(&mut con, "kept", "bob", 60_000),
        None,
        "the hold survived"
    );
    let next = lock(&mut con, "new", "bob", 60_000).expect("granted");
    assert!(next > kept, "tokens rise across snapshots and restarts");
}

/// The value of the sample `series` (name and labels as rendered) in a scrape.
fn sample(scrape: &str, series: &str) -> Option<f64> {
    scrape.lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok()).flatten()
    })
}

#[test]
fn ready_follows_the_leader_and_metrics_show_role_term_and_commit_lag() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.leader(&[1, 2, 3]);
    let term: f64 = cluster.replication(leader).expect("info")["term"]
        .parse()
        .expect("term");
    for id in 1..=3 {
        // A follower that knows the leader is ready: it forwards.
        eventually("ready", Duration::from_secs(5), || {
            cluster.http(id, "/ready") == Some((200, "ready\n".into()))
        });
        let (status, scrape) = cluster.http(id, "/metrics").expect("scrape");
        assert_eq!(status, 200);
        let role = if id == leader { "leader" } else { "follower" };
        let series = format!("baton_cluster_role{{role=\"{role}\"}}");
        assert_eq!(sample(&scrape, &series), Some(1.0), "{scrape}");
        assert_eq!(
            sample(&scrape, "baton_cluster_term"),
            Some(term),
            "{scrape}"
        );
        assert!(
            sample(&scrape, "baton_cluster_commit_lag").is_some(),
            "{scrape}"
        );
        assert_eq!(sample(&scrape, "baton_ready"), Some(1.0), "{scrape}");
    }

    // Alone, the leader steps down (check-quorum) and no election can succeed.
    let followers = others(leader, 3);
    for &id in &followers {
        cluster.kill(id);
    }
    eventually("no leader", Duration::from_secs(20), || {
        cluster.http(leader, "/ready") == Some((503, "no leader\n".into()))
    });
    let (_, scrape) = cluster.http(leader, "/metrics").expect("scrape");
    assert_eq!(sample(&scrape, "baton_ready"), Some(0.0), "{scrape}");
    assert_eq!(
        sample(&scrape, "baton_cluster_role{role=\"leader\"}"),
        Some(0.0),
        "{scrape}"
    );

    // A majority again: a leader, and the node is ready again.
    cluster.spawn(followers[0]);
    eventually("ready again", Duration::from_secs(20), || {
        cluster.http(leader, "/ready") == Some((200, "ready\n".into()))
    });
}

/// `CLUSTER args...`: Ok(reply text) or Err(error text).
fn cluster_cmd(con: &mut redis::Connection, args: &[&str]) -> Result<String, String> {
    redis::cmd("CLUSTER")
        .arg(args)
        .query::<String>(con)
        .map_err(|e| e.to_string())
}

#[test]
fn a_node_added_online_takes_the_holds_votes_and_keeps_the_membership_across_restarts() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.leader(&[1, 2, 3]);
    let mut con = cluster.conn(leader);
    let t1 = lock(&mut con, "held", "alice", 60_000).expect("granted");

    let (new, addr) = cluster.spawn_joiner();
    // Before it is added, the new node has no membership and does not elect itself.
    let mut before = None;
    eventually("the joiner answers INFO", Duration::from_secs(20), || {
        before = cluster.replication(new);
        before.is_some()
    });
    let before = before.expect("info");
    assert_eq!(before["cluster_members"], "", "{before:?}");
    assert_ne!(before["role"], "leader");

    // Added through a follower, which forwards it to the leader.
    let follower = others(leader, 3)[0];
    let mut fcon = cluster.conn(follower);
    let added = cluster_cmd(&mut fcon, &["ADDNODE", &new.to_string(), &addr]);
    assert_eq!(added.as_deref(), Ok("OK"));
    let again = cluster_cmd(&mut fcon, &["ADDNODE", &new.to_string(), &addr]);
    assert!(
        again
            .as_ref()
            .is_err_and(|e| e.contains("already a member")),
        "{again:?}"
    );

    // It catches up from the leader's snapshot and follows the leader.
    eventually(
        "the new node took the holds",
        Duration::from_secs(15),
        || cluster.info_locks(new).get("holders").map(String::as_str) == Some("1"),
    );
    eventually("the new node follows", Duration::from_secs(10), || {
        cluster.replication(new).is_some_and(|i| {
            i["cluster_members"] == "1,2,3,4" && i["leader_id"] == leader.to_string()
        })
    });
    let mut c4 = cluster.conn(new);
    // Its persistence is the Raft log, started from the leader's snapshot (INFO shows it
    // once the node loop's turn that installed it has ended).
    let mut text = String::new();
    eventually(
        "INFO persistence shows the snapshot",
        Duration::from_secs(10),
        || {
            text = redis::cmd("INFO")
                .arg("persistence")
                .query(&mut c4)
                .expect("INFO");
            fields(&text)
                .get("raft_snapshot_index")
                .and_then(|i| i.parse::<u64>().ok())
                .is_some_and(|i| i > 0)
        },
    );
    assert_eq!(fields(&text)["aof_enabled"], "1", "{text}");
    assert_eq!(
        lock(&mut c4, "held", "bob", 60_000),
        None,
        "a read through it"
    );
    let holders = common::info_field(&mut c4, "LOCK.INFO", "held", "holders");
    assert!(format!("{holders:?}").contains("alice"), "{holders:?}");
    let nodes = cluster_cmd(&mut con, &["NODES"]).expect("CLUSTER NODES");
    assert_eq!(nodes.lines().count(), 4, "{nodes}");
    assert!(
        nodes
            .lines()
            .any(|l| l.starts_with(&format!("{new} {addr} "))),
        "{nodes}"
    );

    // Four voters: with one of the first three down, three of four still commit.
    cluster.kill(follower);
    let t2 = lock(&mut c4, "after", "bob", 60_000).expect("granted by 3 of 4");
    assert!(t2 > t1);

    // A node restarted with the old --peers (no node 4) keeps the changed membership.
    cluster.spawn(follower);
    eventually(
        "the restarted node knows four members",
        Duration::from_secs(20),
        || {
            cluster
                .replication(follower)
                .is_some_and(|i| i["cluster_members"] == "1,2,3,4")
        },
    );
    // All four restart; they elect a leader among themselves and the holds survive.
    for id in 1..=4 {
        cluster.kill(id);
    }
    for id in 1..=4 {
        cluster.spawn(id);
    }
    let leader = cluster.leader(&[1, 2, 3, 4]);
    let mut con = cluster.conn(leader);
    assert_eq!(lock(&mut con, "held", "carol", 60_000), None);
    assert_eq!(lock(&mut con, "after", "carol", 60_000), None);
    for id in 1..=4 {
        let info = cluster.replication(id).expect("info");
        assert_eq!(info["cluster_members"], "1,2,3,4", "node {id}: {info:?}");
    }
}

#[test]
fn removing_a_follower_then_the_leader_keeps_the_cluster_granting() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.leader(&[1, 2, 3]);
    let mut con = cluster.conn(leader);
    let t1 = lock(&mut con, "held", "alice", 60_000).expect("granted");

    // Bad requests get Redis-style errors.
    for (args, want) in [
        (vec!["REMOVENODE", "9"], "unknown node id 9"),
        (vec!["ADDNODE", "0", "127.0.0.1:1"], "invalid node id"),
        (vec!["ADDNODE", "5", "nonsense"], "invalid peer address"),
        (vec!["ADDNODE", "5"], "wrong number of arguments"),
        (vec!["FROB"], "unknown subcommand"),
    ] {
        let got = cluster_cmd(&mut con, &args);
        assert!(
            got.as_ref().is_err_and(|e| e.contains(want)),
            "{args:?}: {got:?}"
        );
    }

    let gone = others(leader, 3)[0];
    let stay = others(leader, 3)[1];
    let removed = cluster_cmd(&mut con, &["REMOVENODE", &gone.to_string()]);
    assert_eq!(removed.as_deref(), Ok("OK"));
    eventually("the removed node knows", Duration::from_secs(10), || {
        cluster
            .replication(gone)
            .is_some_and(|i| i["role"] == "removed")
    });
    // Two members left: both must commit, and they do.
    let t2 = lock(&mut con, "k2", "alice", 60_000).expect("granted by the two left");
    assert!(t2 > t1);
    // The removed node stays out after a restart.
    cluster.kill(gone);
    cluster.spawn(gone);
    eventually(
        "the removed node restarts removed",
        Duration::from_secs(20),
        || {
            cluster.replication(gone).is_some_and(|i| {
                i["role"] == "removed" && !i["cluster_members"].contains(&gone.to_string())
            })
        },
    );

    // The leader removes itself: it hands over, the last node leads alone.
    let removed = cluster_cmd(&mut con, &["REMOVENODE", &leader.to_string()]);
    assert_eq!(removed.as_deref(), Ok("OK"));
    let new_leader = cluster.leader(&[stay]);
    assert_eq!(new_leader, stay);
    let mut con = cluster.conn(stay);
    assert_eq!(
        lock(&mut con, "held", "bob", 60_000),
        None,
        "the hold survived"
    );
    assert_eq!(unlock(&mut con, "held", "alice"), 1);
    let t3 = lock(&mut con, "held", "bob", 60_000).expect("granted after release");
    assert!(t3 > t2);
    let last = cluster_cmd(&mut con, &["REMOVENODE", &stay.to_string()]);
    assert!(
        last.as_ref().is_err_and(|e| e.contains("last node")),
        "{last:?}"
    );
    let info = cluster.replication(leader).expect("old leader info");
    assert_eq!(info["role"], "removed");
}

#[test]
fn one_membership_change_at_a_time() {
    let cluster = Cluster::start(3);
    let leader = cluster.leader(&[1, 2, 3]);
    // With both followers paused the leader cannot commit: the first change stays
    // pending, so of two changes sent at once one is refused as in progress.
    for id in others(leader, 3) {
        cluster.signal(id, "-STOP");
    }
    let send = |args: &[&str]| {
        let mut cmd = redis::cmd("CLUSTER");
        cmd.arg(args);
        let mut raw = std::net::TcpStream::connect(("127.0.0.1", cluster.node(leader).port))
            .expect("connect");
        raw.set_read_timeout(Some(Duration::from_secs(15)))
            .expect("timeout");
        std::io::Write::write_all(&mut raw, &cmd.get_packed_command()).expect("send");
        raw
    };
    let mut a = send(&["ADDNODE", "4", "127.0.0.1:1"]);
    let mut b = send(&["ADDNODE", "5", "127.0.0.1:2"]);
    let read = |raw: &mut std::net::TcpStream| {
        let mut buf = [0u8; 256];
        let n = std::io::Read::read(raw, &mut buf).unwrap_or(0);
        String::from_utf8_lossy(&buf[..n]).to_string()
    };
    // The refused one answers at once; the pending one once the leader steps down
    // (check-quorum) or, if it kept its quorum after all, once committed.
    let (ra, rb) = (read(&mut a), read(&mut b));
    for id in others(leader, 3) {
        cluster.signal(id, "-CONT");
    }
    let replies = [ra, rb];
    let refused = replies
        .iter()
        .filter(|r| r.starts_with("-TRYAGAIN a membership change is in progress"))
        .count();
    assert_eq!(refused, 1, "{replies:?}");
    assert!(
        replies
            .iter()
            .all(|r| r.starts_with("-TRYAGAIN") || r == "+OK\r\n"),
        "{replies:?}"
    );
    // The cluster serves again.
    let leader = cluster.leader(&[1, 2, 3]);
    let mut con = cluster.conn(leader);
    lock(&mut con, "after", "alice", 60_000).expect("granted");
}

#[test]
fn tenants_stay_apart_through_a_follower_and_the_follower_counts_its_refusals() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("users.acl");
    std::fs::write(
        &path,
        "user default on nopass ~* +@all\n\
         user alice on >alicepw ~app:a:* +@all -@admin\n\
         user bob on >bobpw ~app:b:* +@all -@admin\n",
    )
    .expect("write acl file");
    let path = path.to_string_lossy().into_owned();
    let cluster = Cluster::start_with(3, &["--aclfile", &path]);
    let leader = cluster.leader(&[1, 2, 3]);
    let follower = others(leader, 3)[0];
    let as_user = |id: u64, user: &str, pass: &str| {
        let port = cluster.node(id).port;
        let client = redis::Client::open(format!("redis://{user}:{pass}@127.0.0.1:{port}/"))
            .expect("client");
        let con = client.get_connection().expect("AUTH as a tenant");
        con.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        con
    };
    let mut alice = as_user(follower, "alice", "alicepw");
    let mut bob = as_user(follower, "bob", "bobpw");
    lock(&mut alice, "app:a:1", "alice-1", 60_000).expect("alice's grant, forwarded");
    lock(&mut bob, "app:b:1", "bob-1", 60_000).expect("bob's grant, forwarded");

    // Refused on the follower, before forwarding.
    let err = redis::cmd("UNLOCK")
        .arg("app:b:1")
        .arg("bob-1")
        .query::<i64>(&mut alice)
        .expect_err("another tenant's key");
    assert!(
        err.to_string().contains("No permissions to access a key"),
        "{err}"
    );
    let err = redis::cmd("FLUSHALL")
        .query::<String>(&mut alice)
        .expect_err("FLUSHALL needs @admin");
    assert!(
        err.to_string()
            .contains("User alice has no permissions to run the 'flushall' command"),
        "{err}"
    );
    // Forwarded, and filtered by the leader for the connection's user.
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut alice).expect("KEYS");
    assert_eq!(keys, vec!["app:a:1".to_string()]);
    let n: i64 = redis::cmd("DBSIZE").query(&mut alice).expect("DBSIZE");
    assert_eq!(n, 1);

    // Bob's hold is untouched on the leader; the admin sees both keys.
    let mut admin = cluster.conn(leader);
    let n: i64 = redis::cmd("DBSIZE").query(&mut admin).expect("DBSIZE");
    assert_eq!(n, 2);
    assert_eq!(lock(&mut admin, "app:b:1", "someone", 60_000), None);
    let stats: String = redis::cmd("INFO")
        .arg("stats")
        .query(&mut cluster.conn(follower))
        .expect("INFO stats");
    let stats = fields(&stats);
    assert_eq!(stats["acl_access_denied_key"], "1");
    assert_eq!(stats["acl_access_denied_cmd"], "1");
}
