//! The faults of the Jepsen-style run and how they are healed: kill -9 and restart of
//! the leader or a follower, SIGSTOP/SIGCONT, and partitions (whole, one-way, half-open,
//! slow) through the link proxies.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::cluster::{connect, Cluster};
use super::history::History;
use super::proxy::LinkMode;

/// One fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// kill -9 of the leader (restarted at heal).
    KillLeader,
    /// kill -9 of a follower (restarted at heal).
    KillFollower,
    /// kill -9 of the leader and a follower: no quorum until heal.
    KillTwo,
    /// SIGSTOP of the leader (SIGCONT at heal).
    PauseLeader,
    /// SIGSTOP of a follower.
    PauseFollower,
    /// The leader cut off both ways (connections closed and refused).
    IsolateLeader,
    /// The leader cut off both ways by blackholes (half-open connections).
    BlackholeLeader,
    /// A follower cut off both ways by blackholes.
    BlackholeFollower,
    /// Nothing the leader sends arrives; it still hears the others.
    LeaderCannotSend,
    /// The leader hears nothing; what it sends arrives.
    LeaderCannotHear,
    /// Every link delays by tens of ms.
    SlowNetwork,
}

impl Fault {
    /// Every fault, for random choice.
    pub const ALL: [Fault; 11] = [
        Fault::KillLeader,
        Fault::KillFollower,
        Fault::KillTwo,
        Fault::PauseLeader,
        Fault::PauseFollower,
        Fault::IsolateLeader,
        Fault::BlackholeLeader,
        Fault::BlackholeFollower,
        Fault::LeaderCannotSend,
        Fault::LeaderCannotHear,
        Fault::SlowNetwork,
    ];
}

/// The node that says it leads (without waiting for agreement), if any answers so.
pub async fn current_leader(cluster: &Cluster) -> Option<u64> {
    for id in cluster.ids() {
        if let Some(info) = cluster.info(id).await {
            if info.role == "leader" {
                return Some(id);
            }
        }
    }
    None
}

/// Applies `fault`; returns what was done, for the history.
pub async fn inject(cluster: &mut Cluster, fault: Fault, rng: &mut fastrand::Rng) -> String {
    let ids = cluster.ids();
    let leader = match current_leader(cluster).await {
        Some(l) => l,
        None => ids[rng.usize(..ids.len())],
    };
    let followers: Vec<u64> = ids.iter().copied().filter(|&i| i != leader).collect();
    // A single node is its own "follower" (kill and pause then hit the one node).
    let follower = if followers.is_empty() {
        leader
    } else {
        followers[rng.usize(..followers.len())]
    };
    match fault {
        Fault::KillLeader => {
            cluster.kill(leader);
            format!("kill -9 leader n{leader}")
        }
        Fault::KillFollower => {
            cluster.kill(follower);
            format!("kill -9 follower n{follower}")
        }
        Fault::KillTwo => {
            cluster.kill(leader);
            cluster.kill(follower);
            format!("kill -9 leader n{leader} and follower n{follower}")
        }
        Fault::PauseLeader => {
            cluster.pause(leader);
            format!("SIGSTOP leader n{leader}")
        }
        Fault::PauseFollower => {
            cluster.pause(follower);
            format!("SIGSTOP follower n{follower}")
        }
        Fault::IsolateLeader => {
            cluster.isolate(leader, LinkMode::Cut);
            format!("cut leader n{leader} off (both ways)")
        }
        Fault::BlackholeLeader => {
            cluster.isolate(leader, LinkMode::Blackhole);
            format!("blackhole leader n{leader} (both ways, half-open)")
        }
        Fault::BlackholeFollower => {
            cluster.isolate(follower, LinkMode::Blackhole);
            format!("blackhole follower n{follower} (both ways, half-open)")
        }
        Fault::LeaderCannotSend => {
            for &f in &followers {
                cluster.set_link(leader, f, LinkMode::Cut);
            }
            format!("cut links n{leader}->* (leader cannot send)")
        }
        Fault::LeaderCannotHear => {
            for &f in &followers {
                cluster.set_link(f, leader, LinkMode::Cut);
            }
            format!("cut links *->n{leader} (leader cannot hear)")
        }
        Fault::SlowNetwork => {
            let d = Duration::from_millis(rng.u64(20..120));
            for &a in &ids {
                for &b in &ids {
                    if a != b {
                        cluster.set_link(a, b, LinkMode::Delay(d));
                    }
                }
            }
            format!("delay every link by {d:?}")
        }
    }
}

/// A LOCK that must be granted once the cluster has healed: retried through random nodes
/// with one owner (idempotent) until granted or `within` passes; returns the time it took.
pub async fn probe_grant(
    nodes: &[(u64, SocketAddr)],
    key: &str,
    owner: &str,
    within: Duration,
    rng: &mut fastrand::Rng,
) -> Result<Duration, String> {
    let start = Instant::now();
    let mut last = String::from("no attempt");
    while start.elapsed() < within {
        let (node, addr) = nodes[rng.usize(..nodes.len())];
        let attempt = tokio::time::timeout(Duration::from_millis(700), async {
            let mut con = connect(addr, Duration::from_millis(300)).await?;
            redis::cmd("LOCK")
                .arg(key)
                .arg(owner)
                .arg(500)
                .query_async::<Option<i64>>(&mut con)
                .await
        })
        .await;
        match attempt {
            Ok(Ok(Some(_))) => {
                let took = start.elapsed();
                if let Ok(Ok(mut con)) = tokio::time::timeout(
                    Duration::from_millis(700),
                    connect(addr, Duration::from_millis(300)),
                )
                .await
                {
                    let _ = tokio::time::timeout(
                        Duration::from_millis(700),
                        redis::cmd("UNLOCK")
                            .arg(key)
                            .arg(owner)
                            .query_async::<i64>(&mut con),
                    )
                    .await;
                }
                return Ok(took);
            }
            Ok(Ok(None)) => last = format!("n{node}: nil"),
            Ok(Err(e)) => last = format!("n{node}: {e}"),
            Err(_) => last = format!("n{node}: timeout"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(format!("no grant within {within:?}; last: {last}"))
}

/// Heals everything and notes it in the history.
pub async fn heal(cluster: &mut Cluster, history: &History) {
    cluster.recover_all().await;
    history.event("heal: links pass, paused nodes continued, killed nodes restarted");
}
