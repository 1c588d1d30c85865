//! The clients of the Jepsen-style run: workers that take exclusive locks on a few keys
//! with short leases, WAIT, refreshes, LOCK.INFO checks and random disconnects, against
//! random nodes, and an auditor that reads LOCK.INFO of every key; all recorded in a
//! `History`.
//!
//! Every LOCK uses a fresh owner (`c<client>-<n>`), so that a grant names the request
//! that made it. After a LOCK with an unknown outcome the worker either retries it with
//! the same owner (LOCK is idempotent per owner: same token, lease reset) or sends
//! UNLOCK for that owner, on a new connection to a random node; both answers feed the
//! checker.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::Value;

use super::cluster::connect;
use super::history::{Call, History, Holder, Op, Outcome};

/// The shape of a run.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Concurrent workers.
    pub clients: usize,
    /// Keys they share (`jepsen:k0` ...).
    pub keys: usize,
    /// The client ports of the nodes, by node id.
    pub nodes: Vec<(u64, SocketAddr)>,
    /// How long a worker waits for any reply beyond the command's own WAIT.
    pub reply_timeout: Duration,
}

impl Workload {
    /// The key names.
    pub fn key_names(&self) -> Vec<String> {
        (0..self.keys).map(|k| format!("jepsen:k{k}")).collect()
    }
}

/// A connection a worker holds, and the node it goes to.
struct Link {
    node: u64,
    con: MultiplexedConnection,
}

/// Runs one command on `link` within `timeout` and records it. On an unknown outcome the
/// connection is dropped (a late reply must not be read as the next command's).
#[allow(clippy::too_many_arguments)]
async fn run(
    history: &History,
    client: usize,
    link: &mut Option<Link>,
    key: &str,
    owner: &str,
    call: Call,
    cmd: redis::Cmd,
    timeout: Duration,
) -> Outcome {
    let Some(l) = link.as_mut() else {
        return Outcome::Unknown("no connection".into());
    };
    let node = l.node;
    let invoke = history.now();
    let reply = tokio::time::timeout(timeout, cmd.query_async::<Value>(&mut l.con)).await;
    let complete = history.now();
    let outcome = match reply {
        Err(_) => Outcome::Unknown("timeout".into()),
        Ok(Err(e)) => Outcome::Unknown(error_text(&e)),
        Ok(Ok(v)) => interpret(&call, v),
    };
    if matches!(outcome, Outcome::Unknown(_)) {
        *link = None;
    }
    history.push(Op {
        client,
        node,
        key: key.to_string(),
        owner: owner.to_string(),
        call,
        invoke,
        complete,
        outcome: outcome.clone(),
    });
    outcome
}

/// An error as `CODE detail` for server errors, else the error's text.
fn error_text(e: &redis::RedisError) -> String {
    match (e.code(), e.detail()) {
        (Some(code), detail) => format!("{code} {}", detail.unwrap_or("")),
        _ if e.is_io_error() || e.is_connection_dropped() => format!("connection: {e}"),
        _ => e.to_string(),
    }
}

/// What a reply means for `call`.
fn interpret(call: &Call, v: Value) -> Outcome {
    match (call, v) {
        (_, Value::ServerError(e)) => {
            Outcome::Unknown(format!("{} {}", e.code(), e.details().unwrap_or_default()))
        }
        (Call::Lock { .. }, Value::Int(t)) => Outcome::Granted(t),
        (Call::Lock { .. }, Value::Nil) => Outcome::NotGranted,
        (Call::Refresh { .. } | Call::Unlock, Value::Int(i)) => Outcome::Int(i),
        (Call::Info, Value::Nil) => Outcome::Holders(Vec::new()),
        (Call::Info, v) => match holders(&v) {
            Some(h) => Outcome::Holders(h),
            None => Outcome::Unknown(format!("unexpected LOCK.INFO reply {v:?}")),
        },
        (_, v) => Outcome::Unknown(format!("unexpected reply {v:?}")),
    }
}

/// Name/value pairs of a RESP2 flat array or a RESP3 map.
fn pairs(v: &Value) -> Option<Vec<(String, &Value)>> {
    let mut out = Vec::new();
    match v {
        Value::Array(items) => {
            for kv in items.chunks(2) {
                if let [k, v] = kv {
                    out.push((text(k)?, v));
                }
            }
        }
        Value::Map(items) => {
            for (k, v) in items {
                out.push((text(k)?, v));
            }
        }
        _ => return None,
    }
    Some(out)
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

/// The holders of a LOCK.INFO reply.
fn holders(v: &Value) -> Option<Vec<Holder>> {
    let fields = pairs(v)?;
    let (_, list) = fields.into_iter().find(|(k, _)| k == "holders")?;
    let Value::Array(list) = list else {
        return None;
    };
    let mut out = Vec::new();
    for h in list {
        let f = pairs(h)?;
        let get = |name: &str| f.iter().find(|(k, _)| k == name).map(|(_, v)| *v);
        let token = match get("token")? {
            Value::Int(t) => *t,
            other => text(other)?.parse().ok()?,
        };
        out.push(Holder {
            owner: text(get("owner")?)?,
            mode: text(get("mode")?)?,
            token,
        });
    }
    Some(out)
}

/// Opens a connection to a random node (tries each node once, in random order).
async fn open(workload: &Workload, rng: &mut fastrand::Rng) -> Option<Link> {
    let mut order = workload.nodes.clone();
    rng.shuffle(&mut order);
    for (node, addr) in order {
        if let Ok(Ok(con)) = tokio::time::timeout(
            Duration::from_millis(400),
            connect(addr, Duration::from_millis(300)),
        )
        .await
        {
            return Some(Link { node, con });
        }
    }
    None
}

fn lock_cmd(key: &str, owner: &str, ttl: u64, wait: Option<u64>) -> redis::Cmd {
    let mut cmd = redis::cmd("LOCK");
    cmd.arg(key).arg(owner).arg(ttl);
    if let Some(w) = wait {
        cmd.arg("WAIT").arg(w);
    }
    cmd
}

/// One worker: runs until `stop` is set.
pub async fn worker(
    workload: Arc<Workload>,
    history: History,
    client: usize,
    seed: u64,
    stop: Arc<AtomicBool>,
) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let keys = workload.key_names();
    let mut link: Option<Link> = None;
    let mut seq = 0u64;
    let t = workload.reply_timeout;
    while !stop.load(Ordering::Relaxed) {
        if link.is_none() {
            link = open(&workload, &mut rng).await;
            if link.is_none() {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        }
        let key = keys[rng.usize(..keys.len())].clone();
        seq += 1;
        let owner = format!("c{client}-{seq}");
        // Mostly short leases; some long ones that outlive a fault and its recovery.
        let ttl = if rng.u8(..100) < 15 {
            rng.u64(3_000..6_000)
        } else {
            rng.u64(200..1_200)
        };
        let wait = match rng.u8(..100) {
            0..40 => None,
            40..90 => Some(rng.u64(50..1_500)),
            _ => Some(rng.u64(1_500..4_000)),
        };
        // A random disconnect: give up on the reply early (inside the WAIT).
        let timeout = if rng.u8(..100) < 5 {
            Duration::from_millis(rng.u64(1..=wait.unwrap_or(50).max(2)))
        } else {
            Duration::from_millis(wait.unwrap_or(0)) + t
        };
        let outcome = run(
            &history,
            client,
            &mut link,
            &key,
            &owner,
            Call::Lock { ttl, wait },
            lock_cmd(&key, &owner, ttl, wait),
            timeout,
        )
        .await;
        match outcome {
            Outcome::Granted(_) => {
                hold(&history, client, &mut link, &key, &owner, ttl, &mut rng).await
            }
            Outcome::NotGranted => {}
            Outcome::Unknown(_) => {
                // Learn what happened, on a fresh connection to a random node.
                link = open(&workload, &mut rng).await;
                if rng.bool() {
                    let again = run(
                        &history,
                        client,
                        &mut link,
                        &key,
                        &owner,
                        Call::Lock { ttl, wait: None },
                        lock_cmd(&key, &owner, ttl, None),
                        t,
                    )
                    .await;
                    if let Outcome::Granted(_) = again {
                        hold(&history, client, &mut link, &key, &owner, ttl, &mut rng).await;
                    }
                } else {
                    let mut cmd = redis::cmd("UNLOCK");
                    cmd.arg(&key).arg(&owner);
                    run(
                        &history,
                        client,
                        &mut link,
                        &key,
                        &owner,
                        Call::Unlock,
                        cmd,
                        t,
                    )
                    .await;
                }
            }
            Outcome::Int(_) | Outcome::Holders(_) => {}
        }
    }
}

/// Holds a granted lock for a while: maybe LOCK.INFO, maybe REFRESH, then UNLOCK (or, now
/// and then, a disconnect that leaves the lease to run out).
async fn hold(
    history: &History,
    client: usize,
    link: &mut Option<Link>,
    key: &str,
    owner: &str,
    ttl: u64,
    rng: &mut fastrand::Rng,
) {
    let t = Duration::from_millis(1_500);
    // Sometimes past the lease, so that expiry hands the key on.
    let dwell = rng.u64(0..=ttl * 6 / 5);
    tokio::time::sleep(Duration::from_millis(dwell / 2)).await;
    if rng.u8(..100) < 30 {
        let mut cmd = redis::cmd("LOCK.INFO");
        cmd.arg(key);
        run(history, client, link, key, "", Call::Info, cmd, t).await;
    }
    if rng.u8(..100) < 25 {
        let mut cmd = redis::cmd("REFRESH");
        cmd.arg(key).arg(owner).arg(ttl);
        run(
            history,
            client,
            link,
            key,
            owner,
            Call::Refresh { ttl },
            cmd,
            t,
        )
        .await;
    }
    tokio::time::sleep(Duration::from_millis(dwell / 2)).await;
    if rng.u8(..100) < 8 {
        *link = None;
        return;
    }
    let mut cmd = redis::cmd("UNLOCK");
    cmd.arg(key).arg(owner);
    run(history, client, link, key, owner, Call::Unlock, cmd, t).await;
}

/// Reads LOCK.INFO of every key through a random node, every `every`, until `stop`.
pub async fn auditor(
    workload: Arc<Workload>,
    history: History,
    seed: u64,
    every: Duration,
    stop: Arc<AtomicBool>,
) {
    let mut rng = fastrand::Rng::with_seed(seed);
    while !stop.load(Ordering::Relaxed) {
        audit_once(&workload, &history, &mut rng).await;
        tokio::time::sleep(every).await;
    }
}

/// One LOCK.INFO of every key through a random node; returns how many answered.
pub async fn audit_once(workload: &Workload, history: &History, rng: &mut fastrand::Rng) -> usize {
    let mut link = open(workload, rng).await;
    let mut answered = 0;
    for key in workload.key_names() {
        if link.is_none() {
            link = open(workload, rng).await;
        }
        let mut cmd = redis::cmd("LOCK.INFO");
        cmd.arg(&key);
        let out = run(
            history,
            usize::MAX,
            &mut link,
            &key,
            "",
            Call::Info,
            cmd,
            Duration::from_millis(1_500),
        )
        .await;
        if matches!(out, Outcome::Holders(_)) {
            answered += 1;
        }
    }
    answered
}

/// One LOCK.INFO of every key on every node in `nodes`; returns how many answered.
pub async fn audit_every_node(workload: &Workload, history: &History) -> usize {
    let mut answered = 0;
    for (node, addr) in &workload.nodes {
        let Ok(con) = connect(*addr, Duration::from_millis(500)).await else {
            continue;
        };
        let mut link = Some(Link { node: *node, con });
        for key in workload.key_names() {
            if link.is_none() {
                break;
            }
            let mut cmd = redis::cmd("LOCK.INFO");
            cmd.arg(&key);
            let out = run(
                history,
                usize::MAX,
                &mut link,
                &key,
                "",
                Call::Info,
                cmd,
                Duration::from_millis(2_000),
            )
            .await;
            if matches!(out, Outcome::Holders(_)) {
                answered += 1;
            }
        }
    }
    answered
}
