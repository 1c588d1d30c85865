//! baton-client against a three-node baton cluster (real processes on loopback): a lock
//! held through a failover of the leader stays held (the watchdog renews it through a
//! surviving node), and the client works through any node.
//!
//! Skipped (with a note on stderr) when the server binary has no cluster mode
//! (`--node-id`).

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use baton_client::{Client, Error};

const MS: Duration = Duration::from_millis(1);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("free port")
        .port()
}

fn has_cluster_mode() -> bool {
    Command::new(common::binary())
        .arg("--help")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).contains("--node-id"))
        .unwrap_or(false)
}

/// Three nodes; killed on drop.
struct Cluster {
    ports: Vec<u16>,
    children: Vec<Option<Child>>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    fn start() -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let peers = (1..=3)
            .map(|id| format!("{id}=127.0.0.1:{}", free_port()))
            .collect::<Vec<_>>()
            .join(",");
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let children = (1..=3)
            .map(|id| {
                Some(spawn(
                    id,
                    &peers,
                    ports[id - 1],
                    &dir.path().join(format!("d{id}")),
                ))
            })
            .collect();
        Cluster {
            ports,
            children,
            _dir: dir,
        }
    }

    fn url(&self, index: usize) -> String {
        format!("redis://127.0.0.1:{}/", self.ports[index])
    }

    /// The index of the node whose `INFO replication` says `role:leader`, once one does.
    fn leader(&self, within: Duration) -> usize {
        let end = Instant::now() + within;
        loop {
            for (index, child) in self.children.iter().enumerate() {
                if child.is_some() && role(&self.url(index)).as_deref() == Some("leader") {
                    return index;
                }
            }
            assert!(Instant::now() < end, "no leader within {within:?}");
            std::thread::sleep(50 * MS);
        }
    }

    fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.children[index].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for index in 0..self.children.len() {
            self.kill(index);
        }
    }
}

fn spawn(id: usize, peers: &str, port: u16, dir: &Path) -> Child {
    Command::new(common::binary())
        .args(["--node-id", &id.to_string(), "--peers", peers])
        .args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--dir"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start a baton node")
}

/// `role` from a node's `INFO replication`, if it answers.
fn role(url: &str) -> Option<String> {
    let client = redis::Client::open(url).ok()?;
    let mut con = client
        .get_connection_with_timeout(Duration::from_millis(300))
        .ok()?;
    con.set_read_timeout(Some(Duration::from_millis(500)))
        .ok()?;
    let text: String = redis::cmd("INFO").arg("replication").query(&mut con).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("role:"))
        .map(|role| role.trim().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_survives_a_failover_of_the_leader() {
    if !has_cluster_mode() {
        eprintln!("skipped: this baton has no cluster mode (--node-id)");
        return;
    }
    let mut cluster = Cluster::start();
    let leader = tokio::task::block_in_place(|| cluster.leader(Duration::from_secs(20)));
    // The client starts on a follower (forwarded to the leader) and knows every node.
    let follower = (leader + 1) % 3;
    let mut builder = Client::builder();
    for index in [follower, (follower + 1) % 3, (follower + 2) % 3] {
        builder = builder.node(cluster.url(index));
    }
    let client = builder.build().await.expect("connect");
    let other = Client::connect(&cluster.url((leader + 2) % 3))
        .await
        .expect("connect");

    let guard = client.lock("k", 3000 * MS).await.expect("granted");
    let token = guard.token();

    tokio::task::block_in_place(|| cluster.kill(leader));
    let new_leader = tokio::task::block_in_place(|| cluster.leader(Duration::from_secs(20)));
    assert_ne!(new_leader, leader);
    // Two more leases' worth of time: the watchdog renews through the survivors.
    tokio::time::sleep(Duration::from_secs(4)).await;
    guard.ensure_held().expect("held across the failover");
    let info = client.lock_info("k").await.expect("info").expect("held");
    assert_eq!(info.holders.len(), 1);
    assert_eq!(info.holders[0].token, token);
    assert!(matches!(
        other.lock("k", 1000 * MS).await,
        Err(Error::NotGranted)
    ));
    guard
        .unlock()
        .await
        .expect("released through the new leader");
    let next = other
        .lock("k", 1000 * MS)
        .wait(Duration::from_secs(5))
        .await
        .expect("granted after the release");
    assert!(next.token() > token, "tokens increase across the failover");
    next.unlock().await.expect("unlock");
}
