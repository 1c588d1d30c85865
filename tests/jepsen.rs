//! Cluster mode (issue 17): 3 real baton processes on loopback, wired through per-link
//! TCP proxies, under kill -9, SIGSTOP/SIGCONT and partitions, with a Jepsen-style
//! mutual-exclusion checker over the clients' history.
//!
//! The tests that start clusters run one at a time (a 2-core machine cannot keep
//! election timeouts with two clusters and a build running at once).
//!
//! Run: `cargo test --test jepsen` (about 3 min: proxy and checker self-tests, the
//! single-node baseline and its negative control, the cluster tests and the 3-node
//! randomized run, which alone is `cargo test --test jepsen jepsen_mutual -- --nocapture`).
//!
//! Environment:
//! - `BATON_CLUSTER_SECS=N`: length of the randomized run (default 60 s);
//!   `BATON_CLUSTER_LONG=1`: 600 s.
//! - `BATON_CLUSTER_SEED=N`: the clients' and the faults' random seed (printed by each
//!   run; it fixes the choices, not the timing).
//! - `BATON_CLUSTER_HISTORY=DIR`: where a failed run keeps its history and node logs
//!   (default `target/tmp/cluster-history`).

mod cluster_support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster_support::checker::{self, SLACK};
use cluster_support::cluster::{connect, connect_bare, failure_dir, write_file, Cluster, ReplInfo};
use cluster_support::history::{Call, History, Holder, Op, Outcome};
use cluster_support::nemesis::{self, Fault};
use cluster_support::proxy::{LinkMode, Proxy};
use cluster_support::workload::{self, Workload};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One cluster test at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How long an election may take on a loaded 2-core machine before a test gives up.
const ELECTION: Duration = Duration::from_secs(15);

fn seed() -> u64 {
    std::env::var("BATON_CLUSTER_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..))
}

fn run_length() -> Duration {
    if let Some(secs) = std::env::var("BATON_CLUSTER_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return Duration::from_secs(secs);
    }
    if std::env::var("BATON_CLUSTER_LONG").is_ok_and(|v| v == "1") {
        return Duration::from_secs(600);
    }
    Duration::from_secs(60)
}

async fn query<T: redis::FromRedisValue>(
    addr: std::net::SocketAddr,
    cmd: &redis::Cmd,
) -> redis::RedisResult<T> {
    let mut con = connect(addr, Duration::from_secs(2)).await?;
    match tokio::time::timeout(Duration::from_secs(5), cmd.query_async(&mut con)).await {
        Ok(r) => r,
        Err(_) => Err(redis::RedisError::from((redis::ErrorKind::Io, "timeout"))),
    }
}

fn lock(key: &str, owner: &str, ttl: u64) -> redis::Cmd {
    let mut c = redis::cmd("LOCK");
    c.arg(key).arg(owner).arg(ttl);
    c
}

// ---------------------------------------------------------------------------------------
// The harness itself (no cluster needed).

/// An echo server on loopback; returns its address.
async fn echo_server() -> std::net::SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if s.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

/// Sends `msg` and reads its echo within `within`; None when nothing (or EOF) came.
async fn echo(s: &mut tokio::net::TcpStream, msg: &[u8], within: Duration) -> Option<Vec<u8>> {
    s.write_all(msg).await.ok()?;
    let mut got = vec![0u8; msg.len()];
    match tokio::time::timeout(within, s.read_exact(&mut got)).await {
        Ok(Ok(_)) => Some(got),
        _ => None,
    }
}

#[tokio::test]
async fn proxy_passes_delays_blackholes_and_cuts() {
    let target = echo_server().await;
    let proxy = Proxy::start(target).await.unwrap();
    let mut s = tokio::net::TcpStream::connect(proxy.listen).await.unwrap();
    assert_eq!(
        echo(&mut s, b"hello", Duration::from_secs(2))
            .await
            .as_deref(),
        Some(&b"hello"[..])
    );

    proxy.set(LinkMode::Delay(Duration::from_millis(150)));
    let t = Instant::now();
    assert!(echo(&mut s, b"slow", Duration::from_secs(2))
        .await
        .is_some());
    assert!(
        t.elapsed() >= Duration::from_millis(150),
        "{:?}",
        t.elapsed()
    );

    proxy.set(LinkMode::Blackhole);
    assert_eq!(
        echo(&mut s, b"lost", Duration::from_millis(300)).await,
        None
    );
    // Half-open: a new connection is accepted but carries nothing.
    let mut s2 = tokio::net::TcpStream::connect(proxy.listen).await.unwrap();
    assert_eq!(
        echo(&mut s2, b"lost", Duration::from_millis(300)).await,
        None
    );

    proxy.set(LinkMode::Pass);
    let mut s3 = tokio::net::TcpStream::connect(proxy.listen).await.unwrap();
    assert!(echo(&mut s3, b"back", Duration::from_secs(2))
        .await
        .is_some());

    proxy.set(LinkMode::Cut);
    // The open connection is closed: a read sees EOF (or a reset) at once.
    let mut buf = [0u8; 8];
    let r = tokio::time::timeout(Duration::from_secs(2), s3.read(&mut buf)).await;
    assert!(matches!(r, Ok(Ok(0)) | Ok(Err(_))), "{r:?}");
    // New connections are closed right after accept.
    let mut s4 = tokio::net::TcpStream::connect(proxy.listen).await.unwrap();
    let r = tokio::time::timeout(Duration::from_secs(2), s4.read(&mut buf)).await;
    assert!(matches!(r, Ok(Ok(0)) | Ok(Err(_))), "{r:?}");
}

#[test]
fn info_replication_is_parsed() {
    let text = "# Replication\r\nrole:leader\r\nleader_id:2\r\nterm:7\r\ncommit_index:42\r\n";
    assert_eq!(
        ReplInfo::parse(text),
        Some(ReplInfo {
            role: "leader".into(),
            leader_id: 2,
            term: 7,
            commit_index: 42
        })
    );
    assert_eq!(ReplInfo::parse("role:master\r\n"), None);
}

fn op(
    client: usize,
    key: &str,
    owner: &str,
    call: Call,
    inv: u64,
    done: u64,
    outcome: Outcome,
) -> Op {
    Op {
        client,
        node: 1,
        key: key.into(),
        owner: owner.into(),
        call,
        invoke: Duration::from_millis(inv),
        complete: Duration::from_millis(done),
        outcome,
    }
}

const L1000: Call = Call::Lock {
    ttl: 1000,
    wait: None,
};

#[test]
fn checker_accepts_a_clean_history() {
    let ops = vec![
        op(0, "k", "a", L1000, 0, 5, Outcome::Granted(10)),
        op(0, "k", "a", Call::Unlock, 100, 105, Outcome::Int(1)),
        // b asked while a held, got it after a's UNLOCK was sent.
        op(1, "k", "b", L1000, 50, 103, Outcome::Granted(11)),
        // c asked while b held: nil.
        op(2, "k", "c", L1000, 110, 112, Outcome::NotGranted),
        // b's lease runs out (no UNLOCK); d gets it after the lease could have ended.
        op(3, "k", "d", L1000, 1051, 1060, Outcome::Granted(12)),
        op(
            4,
            "k",
            "",
            Call::Info,
            1070,
            1072,
            Outcome::Holders(vec![holder("d", 12)]),
        ),
        // An unknown LOCK proves nothing by itself.
        op(
            5,
            "k",
            "e",
            L1000,
            1080,
            3000,
            Outcome::Unknown("timeout".into()),
        ),
    ];
    let r = checker::check(&ops);
    assert!(r.violations.is_empty(), "{:?}", r.violations);
}

fn holder(owner: &str, token: i64) -> Holder {
    Holder {
        owner: owner.into(),
        mode: "exclusive".into(),
        token,
    }
}

#[test]
fn checker_flags_a_double_grant() {
    // b is granted while a's lease surely still runs (a asked at 0 with 1000 ms).
    let ops = vec![
        op(0, "k", "a", L1000, 0, 5, Outcome::Granted(10)),
        op(1, "k", "b", L1000, 500, 510, Outcome::Granted(11)),
    ];
    let r = checker::check(&ops);
    assert!(
        r.violations.iter().any(|v| v.contains("double grant")),
        "{:?}",
        r.violations
    );
    // Also when the later token's interval ended before the earlier one's reply came.
    let ops = vec![
        op(0, "k", "a", L1000, 0, 900, Outcome::Granted(10)),
        op(
            1,
            "k",
            "b",
            Call::Lock {
                ttl: 10,
                wait: None,
            },
            100,
            110,
            Outcome::Granted(11),
        ),
        op(1, "k", "b", Call::Unlock, 120, 130, Outcome::Int(1)),
    ];
    let r = checker::check(&ops);
    assert!(
        r.violations.iter().any(|v| v.contains("double grant")),
        "{:?}",
        r.violations
    );
    // But not with the slack of a whole-ms deadline on disk.
    let ops = vec![
        op(0, "k", "a", L1000, 0, 5, Outcome::Granted(10)),
        op(1, "k", "b", L1000, 990, 999, Outcome::Granted(11)),
    ];
    assert!(SLACK >= Duration::from_millis(1));
    assert!(checker::check(&ops).violations.is_empty());
}

#[test]
fn checker_flags_tokens_out_of_order_and_reused() {
    let ops = vec![
        op(
            0,
            "k",
            "a",
            Call::Lock {
                ttl: 10,
                wait: None,
            },
            0,
            5,
            Outcome::Granted(20),
        ),
        op(0, "k", "a", Call::Unlock, 6, 7, Outcome::Int(1)),
        op(
            1,
            "k",
            "b",
            Call::Lock {
                ttl: 10,
                wait: None,
            },
            100,
            105,
            Outcome::Granted(19),
        ),
    ];
    let r = checker::check(&ops);
    assert!(
        r.violations
            .iter()
            .any(|v| v.contains("out of real-time order")),
        "{:?}",
        r.violations
    );
    let ops = vec![
        op(
            0,
            "k",
            "a",
            Call::Lock {
                ttl: 10,
                wait: None,
            },
            0,
            5,
            Outcome::Granted(20),
        ),
        op(
            1,
            "k",
            "b",
            Call::Lock {
                ttl: 10,
                wait: None,
            },
            100,
            105,
            Outcome::Granted(20),
        ),
    ];
    let r = checker::check(&ops);
    assert!(
        r.violations.iter().any(|v| v.contains("two owners")),
        "{:?}",
        r.violations
    );
}

#[test]
fn checker_flags_lost_and_phantom_holds() {
    let ops = vec![
        op(0, "k", "a", L1000, 0, 5, Outcome::Granted(10)),
        // The leader changed and a's hold is gone although its lease runs until 1000.
        op(9, "k", "", Call::Info, 300, 305, Outcome::Holders(vec![])),
        op(
            0,
            "k",
            "a",
            Call::Refresh { ttl: 1000 },
            400,
            405,
            Outcome::Int(0),
        ),
        // x was answered nil but shows up as a holder.
        op(1, "k", "x", L1000, 10, 12, Outcome::NotGranted),
        op(
            9,
            "k",
            "",
            Call::Info,
            20,
            22,
            Outcome::Holders(vec![holder("a", 10), holder("x", 11)]),
        ),
    ];
    let r = checker::check(&ops);
    let all = r.violations.join("\n");
    assert!(all.contains("acknowledged grant missing"), "{all}");
    assert!(all.contains("lost hold"), "{all}");
    assert!(all.contains("answered nil"), "{all}");
    assert!(all.contains("exclusive holders"), "{all}");
}

#[test]
fn checker_learns_unknown_grants_from_lock_info() {
    // e's LOCK timed out, but LOCK.INFO shows it holding while a's acknowledged lease ran.
    let ops = vec![
        op(0, "k", "a", L1000, 0, 5, Outcome::Granted(10)),
        op(
            1,
            "k",
            "e",
            L1000,
            1,
            700,
            Outcome::Unknown("timeout".into()),
        ),
        op(
            9,
            "k",
            "",
            Call::Info,
            600,
            602,
            Outcome::Holders(vec![holder("e", 11)]),
        ),
    ];
    let r = checker::check(&ops);
    let all = r.violations.join("\n");
    assert!(all.contains("double grant"), "{all}");
    assert!(all.contains("acknowledged grant missing"), "{all}");
}

// ---------------------------------------------------------------------------------------
// Cluster mode.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_elect_one_leader_and_followers_forward() {
    let _serial = SERIAL.lock().await;
    let cluster = Cluster::start(3).await;
    let leader = cluster
        .wait_for_leader(ELECTION)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs(30)));
    let follower = cluster.ids().into_iter().find(|&i| i != leader).unwrap();
    let other = cluster
        .ids()
        .into_iter()
        .find(|&i| i != leader && i != follower)
        .unwrap();

    // A grant through a follower is made by the leader and seen on every node.
    let token: Option<i64> = query(cluster.node(follower).client, &lock("fwd", "o1", 30_000))
        .await
        .expect("LOCK through a follower");
    let token = token.expect("granted");
    for id in cluster.ids() {
        let mut info = redis::cmd("LOCK.INFO");
        info.arg("fwd");
        let v: redis::Value = query(cluster.node(id).client, &info)
            .await
            .expect("LOCK.INFO");
        let text = format!("{v:?}");
        assert!(
            text.contains("o1") && text.contains(&token.to_string()),
            "n{id}: {text}"
        );
    }
    // Exclusion across nodes: another owner through the other follower gets nil.
    let none: Option<i64> = query(cluster.node(other).client, &lock("fwd", "o2", 30_000))
        .await
        .expect("LOCK");
    assert_eq!(none, None);
    let mut unlock = redis::cmd("UNLOCK");
    unlock.arg("fwd").arg("o1");
    let n: i64 = query(cluster.node(other).client, &unlock)
        .await
        .expect("UNLOCK");
    assert_eq!(n, 1);
    let t2: Option<i64> = query(cluster.node(leader).client, &lock("fwd", "o2", 30_000))
        .await
        .expect("LOCK");
    assert!(t2.expect("granted after unlock") > token);

    // Every node reports the same term and leader; commit indexes converge.
    let infos: Vec<ReplInfo> = {
        let mut v = Vec::new();
        for id in cluster.ids() {
            v.push(cluster.info(id).await.expect("INFO replication"));
        }
        v
    };
    assert!(infos.iter().all(|i| i.term == infos[0].term), "{infos:?}");
    let roles: Vec<&str> = infos.iter().map(|i| i.role.as_str()).collect();
    assert_eq!(
        roles.iter().filter(|r| **r == "leader").count(),
        1,
        "{roles:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_time_from_kill_of_the_leader() {
    let _serial = SERIAL.lock().await;
    let mut cluster = Cluster::start(3).await;
    let leader = cluster
        .wait_for_leader(ELECTION)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs(30)));
    let mut rng = fastrand::Rng::with_seed(seed());
    let nodes: Vec<_> = cluster.nodes.iter().map(|n| (n.id, n.client)).collect();
    // Warm: a grant works before the kill.
    nemesis::probe_grant(&nodes, "failover:warm", "w", ELECTION, &mut rng)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs(30)));

    let survivors: Vec<_> = nodes
        .iter()
        .copied()
        .filter(|(id, _)| *id != leader)
        .collect();
    let killed = Instant::now();
    cluster.kill(leader);
    let first_grant = nemesis::probe_grant(
        &survivors,
        "failover:k",
        "f",
        Duration::from_secs(30),
        &mut rng,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs(40)));
    let new_leader = cluster.wait_for_leader(ELECTION).await.expect("new leader");
    let to_leader = killed.elapsed();
    println!(
        "failover: kill -9 of leader n{leader} -> first grant through the survivors in {:.0} ms \
         (new leader n{new_leader}; agreed view {:.0} ms after the kill); goal < 2000 ms",
        first_grant.as_secs_f64() * 1000.0,
        to_leader.as_secs_f64() * 1000.0
    );
    assert_ne!(new_leader, leader);
    // A sanity bound only: the figure is the printed one.
    assert!(first_grant < Duration::from_secs(20), "{first_grant:?}");

    // The old leader comes back as a follower and catches up.
    cluster.restart(leader).await;
    let again = cluster
        .wait_for_leader(ELECTION)
        .await
        .expect("leader after restart");
    let lead = cluster.info(again).await.expect("INFO");
    let deadline = Instant::now() + ELECTION;
    loop {
        let back = cluster.info(leader).await;
        if back
            .as_ref()
            .is_some_and(|b| b.commit_index >= lead.commit_index)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "n{leader} did not catch up: {back:?} vs {lead:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolated_leader_stops_granting_and_a_new_one_takes_over() {
    let _serial = SERIAL.lock().await;
    let cluster = Cluster::start(3).await;
    let leader = cluster
        .wait_for_leader(ELECTION)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs(30)));
    let lease = 8_000;
    let t0: Option<i64> = query(cluster.node(leader).client, &lock("iso", "before", lease))
        .await
        .expect("LOCK");
    let t0 = t0.expect("granted");
    let granted_at = Instant::now();

    cluster.isolate(leader, LinkMode::Cut);
    // The isolated leader must not grant: a LOCK on a fresh key through it gets no token.
    let r: redis::RedisResult<Option<i64>> =
        query(cluster.node(leader).client, &lock("iso2", "stale", 1_000)).await;
    assert!(
        !matches!(r, Ok(Some(_))),
        "an isolated leader granted a lock: {r:?}"
    );
    // Check-quorum: within a few election timeouts it no longer says it leads.
    let deadline = Instant::now() + ELECTION;
    loop {
        let info = cluster.info(leader).await;
        if info.as_ref().is_some_and(|i| i.role != "leader") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "isolated n{leader} still says leader: {info:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The majority elects another leader, which keeps the hold and does not grant the key
    // to someone else while the lease can still run.
    let others: Vec<u64> = cluster.ids().into_iter().filter(|&i| i != leader).collect();
    let deadline = Instant::now() + ELECTION;
    let new_leader = loop {
        let mut found = None;
        for &id in &others {
            if cluster.info(id).await.is_some_and(|i| i.role == "leader") {
                found = Some(id);
            }
        }
        if let Some(l) = found {
            break l;
        }
        assert!(Instant::now() < deadline, "no new leader among {others:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let r: Option<i64> = query(
        cluster.node(new_leader).client,
        &lock("iso", "after", 1_000),
    )
    .await
    .expect("LOCK on the new leader");
    if granted_at.elapsed() < Duration::from_millis(lease) {
        assert_eq!(
            r, None,
            "granted while the old hold's lease could still run"
        );
    }
    cluster.heal();
    let back = cluster
        .wait_for_leader(ELECTION)
        .await
        .expect("one leader after heal");
    let mut info = redis::cmd("LOCK.INFO");
    info.arg("iso");
    let v: redis::Value = query(cluster.node(back).client, &info)
        .await
        .expect("LOCK.INFO");
    if granted_at.elapsed() < Duration::from_millis(lease) {
        assert!(format!("{v:?}").contains(&t0.to_string()), "{v:?}");
    }
}

/// The randomized mutual-exclusion run: workers, an auditor, and a nemesis that cycles
/// through `faults` for `length`; then a quiet phase, a final audit of every node, and
/// the checker. Returns the problems found; when there are any, the history and the node
/// logs are kept (see `failure_dir`).
async fn jepsen(
    name: &str,
    cluster: &mut Cluster,
    faults: &[Fault],
    length: Duration,
) -> Vec<String> {
    let seed = seed();
    println!("{name}: seed {seed} (BATON_CLUSTER_SEED), length {length:?}");
    let mut rng = fastrand::Rng::with_seed(seed);
    let nodes: Vec<_> = cluster.nodes.iter().map(|n| (n.id, n.client)).collect();
    let wl = Arc::new(Workload {
        clients: 10,
        keys: 4,
        nodes: nodes.clone(),
        reply_timeout: Duration::from_millis(2_000),
    });
    let history = History::new();
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for c in 0..wl.clients {
        tasks.push(tokio::spawn(workload::worker(
            Arc::clone(&wl),
            history.clone(),
            c,
            seed.wrapping_add(c as u64 + 1),
            Arc::clone(&stop),
        )));
    }
    tasks.push(tokio::spawn(workload::auditor(
        Arc::clone(&wl),
        history.clone(),
        seed ^ 0xa0d1,
        Duration::from_millis(250),
        Arc::clone(&stop),
    )));

    let mut liveness = Vec::new();
    let mut recoveries = Vec::new();
    let start = Instant::now();
    let mut round = 0u64;
    while start.elapsed() < length {
        tokio::time::sleep(Duration::from_millis(rng.u64(800..2_000))).await;
        let fault = faults[rng.usize(..faults.len())];
        let what = nemesis::inject(cluster, fault, &mut rng).await;
        history.event(format!("fault: {what}"));
        tokio::time::sleep(Duration::from_millis(rng.u64(1_000..3_500))).await;
        nemesis::heal(cluster, &history).await;
        round += 1;
        let probe = nemesis::probe_grant(
            &nodes,
            "jepsen:probe",
            &format!("probe-{round}"),
            Duration::from_secs(20),
            &mut rng,
        )
        .await;
        match probe {
            Ok(took) => {
                history.event(format!("recovered: probe granted {took:?} after heal"));
                recoveries.push((what, took));
            }
            Err(e) => {
                history.event(format!("NOT recovered: {e}"));
                liveness.push(format!("after '{what}': {e}"));
                break;
            }
        }
        workload::audit_every_node(&wl, &history).await;
    }
    // Quiet phase: no faults, then a final audit on every node.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(15), t).await;
    }
    history.event("workers stopped");
    let answered = workload::audit_every_node(&wl, &history).await;

    let report = checker::check(&history.ops());
    println!("{name}: {round} fault rounds; {}", report.summary());
    for (what, took) in &recoveries {
        println!(
            "{name}: a grant {:.0} ms after healing '{what}'",
            took.as_secs_f64() * 1000.0
        );
    }
    let mut problems = report.violations.clone();
    problems.extend(liveness);
    if answered == 0 {
        problems.push("final audit: no node answered LOCK.INFO".into());
    }
    let grants = report.stats.get("lock_ok").copied().unwrap_or(0);
    if grants < 20 {
        problems.push(format!("too few grants to mean anything: {grants}"));
    }
    if !problems.is_empty() {
        let dir = failure_dir(name);
        write_file(&dir.join("history.txt"), &history.render());
        write_file(&dir.join("violations.txt"), &problems.join("\n"));
        cluster.keep_logs(&dir);
        println!(
            "{name}: {} problem(s) (seed {seed}); history and logs in {}",
            problems.len(),
            dir.display()
        );
    }
    problems
}

/// Panics listing `problems` when there are any.
fn assert_clean(problems: &[String]) {
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// The checker's baseline: today's single-node baton (durable, `--appendfsync always`)
/// under kill -9 + restart and SIGSTOP/SIGCONT. Every acknowledged hold must come back
/// after a crash, and no grant may overlap another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jepsen_single_node_under_kill_and_pause() {
    let _serial = SERIAL.lock().await;
    let mut cluster = Cluster::start_single().await;
    let length = run_length().min(Duration::from_secs(20));
    let problems = jepsen(
        "jepsen-single",
        &mut cluster,
        &[Fault::KillLeader, Fault::PauseLeader],
        length,
    )
    .await;
    assert_clean(&problems);
}

/// The checker must catch a server that forgets acknowledged holds: single-node baton
/// with `--persistence off` under kill -9 loses every hold at each restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jepsen_catches_a_server_that_forgets_holds() {
    let _serial = SERIAL.lock().await;
    let mut cluster = Cluster::start_single_with(&["--persistence", "off"]).await;
    let problems = jepsen(
        "jepsen-negative-control",
        &mut cluster,
        &[Fault::KillLeader],
        Duration::from_secs(12),
    )
    .await;
    assert!(
        problems.iter().any(|p| p.contains("missing")
            || p.contains("double grant")
            || p.contains("lost hold")),
        "the checker found nothing wrong with a server that forgets holds: {problems:?}"
    );
}

/// Issue 17's Jepsen-style run: 3 nodes, every fault of `Fault::ALL`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jepsen_mutual_exclusion_under_faults() {
    let _serial = SERIAL.lock().await;
    let mut cluster = Cluster::start(3).await;
    cluster
        .wait_for_leader(ELECTION)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs(30)));
    let problems = jepsen("jepsen", &mut cluster, &Fault::ALL, run_length()).await;
    assert_clean(&problems);
}

/// `holders:` of `INFO locks` on node `id`: its own table, not the leader's.
async fn local_holders(cluster: &Cluster, id: u64) -> Option<u64> {
    let mut cmd = redis::cmd("INFO");
    cmd.arg("locks");
    let text: String = tokio::time::timeout(Duration::from_secs(2), async {
        let mut con = connect_bare(cluster.node(id).client, Duration::from_secs(1)).await?;
        cmd.query_async::<String>(&mut con).await
    })
    .await
    .ok()?
    .ok()?;
    text.lines()
        .find_map(|l| l.trim().strip_prefix("holders:"))
        .and_then(|v| v.parse().ok())
}

/// The double holder that the Jepsen-style run found (seed 15762744583689913744), made
/// deterministic: a hold committed on the leader and follower F, then kill -9 of the
/// leader and the other follower while F stays up; the lease runs out during the outage.
/// The restarted nodes (F paused so that one of them leads) drop the expired hold and
/// grant the key to another owner; F, which never restarted, must end up with the same
/// table (one holder), or it lists both once it leads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_that_expired_during_an_outage_ends_on_every_node() {
    let _serial = SERIAL.lock().await;
    let mut cluster = Cluster::start(3).await;
    let leader = cluster
        .wait_for_leader(ELECTION)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs(30)));
    let addr = cluster.node(leader).client;
    let t1: Option<i64> = query(addr, &lock("exp", "o1", 400)).await.expect("LOCK o1");
    assert!(t1.is_some());
    let followers: Vec<u64> = cluster.ids().into_iter().filter(|&i| i != leader).collect();
    let (stay, other) = (followers[0], followers[1]);
    // Both followers have applied the grant before the outage.
    let deadline = Instant::now() + ELECTION;
    while local_holders(&cluster, stay).await != Some(1)
        || local_holders(&cluster, other).await != Some(1)
    {
        assert!(
            Instant::now() < deadline,
            "the followers did not apply the grant"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cluster.kill(leader);
    cluster.kill(other);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    cluster.pause(stay);
    cluster.restart(leader).await;
    cluster.restart(other).await;
    let mut t2: Option<i64> = None;
    let deadline = Instant::now() + ELECTION;
    while t2.is_none() {
        assert!(
            Instant::now() < deadline,
            "no grant to o2 on the restarted pair"
        );
        if let Ok(Some(t)) = query::<Option<i64>>(addr, &lock("exp", "o2", 60_000)).await {
            t2 = Some(t);
        } else {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    cluster.resume(stay);
    let t2 = t2.expect("granted");
    // Make F the leader: kill whoever else leads until F wins an election.
    let mut killed: Option<u64> = None;
    for _ in 0..6 {
        let now = cluster
            .wait_for_leader(ELECTION)
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs(30)));
        if now == stay {
            break;
        }
        if let Some(k) = killed.take() {
            cluster.restart(k).await;
            // Let the restarted node catch up before the next kill.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        cluster.kill(now);
        killed = Some(now);
    }
    let now = cluster.wait_for_leader(ELECTION).await.expect("leader");
    if now != stay {
        println!("n{stay} did not win an election in 6 tries; nothing checked");
        return;
    }
    let mut info = redis::cmd("LOCK.INFO");
    info.arg("exp");
    let v: redis::Value = query(cluster.node(stay).client, &info)
        .await
        .expect("LOCK.INFO");
    let text = format!("{v:?}");
    assert!(
        text.contains(&t2.to_string()) && !text.contains("o1"),
        "n{stay} (up through the outage, now leader) lists: {text}; expected o2 (token {t2}) alone"
    );
}
