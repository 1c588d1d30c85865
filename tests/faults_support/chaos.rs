//! A TCP proxy between clients and one baton that injects faults into single
//! connections: delays, cuts, half-closes and half-open stalls, at random or on demand.
//!
//! Every accepted client connection gets its own connection to the target and two pumps,
//! one per byte direction ("up": client to server, "down": server to client). A fault
//! changes that connection's state, and both pumps follow at once:
//! - `Delay`: bytes of one or both directions are held for a while (order kept).
//! - `Cut`: both sockets are closed at once.
//! - `HalfCloseUp` / `HalfCloseDown`: a FIN in one direction (`shutdown(Write)` towards
//!   the server, or towards the client); the other direction keeps flowing.
//! - `StallUp` / `StallDown`: one direction silently drops its bytes while both sockets
//!   stay open: half-open, as when a cable is pulled and no RST ever comes.
//!
//! tests/cluster_support/proxy.rs switches whole links between cluster nodes; this one
//! picks single client connections, which is what a flaky client network does. tokio is
//! used because the clients of the checker already run on it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// A fault applied to one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Hold the bytes of the chosen directions for this long from now on.
    Delay {
        /// Client to server.
        up: Duration,
        /// Server to client.
        down: Duration,
    },
    /// Close both sockets.
    Cut,
    /// FIN towards the server; replies still flow.
    HalfCloseUp,
    /// FIN towards the client; requests still flow.
    HalfCloseDown,
    /// Drop client-to-server bytes, sockets stay open.
    StallUp,
    /// Drop server-to-client bytes, sockets stay open.
    StallDown,
}

impl Fault {
    /// The kinds, as counted in the figures.
    pub const KINDS: [&'static str; 6] = [
        "delay",
        "cut",
        "half_close_up",
        "half_close_down",
        "stall_up",
        "stall_down",
    ];

    /// This fault's kind.
    pub fn kind(self) -> &'static str {
        match self {
            Fault::Delay { .. } => "delay",
            Fault::Cut => "cut",
            Fault::HalfCloseUp => "half_close_up",
            Fault::HalfCloseDown => "half_close_down",
            Fault::StallUp => "stall_up",
            Fault::StallDown => "stall_down",
        }
    }

    /// A random fault: delays (up to `max_delay`) half of the time, the others evenly.
    pub fn random(rng: &mut fastrand::Rng, max_delay: Duration) -> Fault {
        let max = max_delay.as_millis() as u64;
        match rng.u8(..10) {
            0..5 => Fault::Delay {
                up: Duration::from_millis(rng.u64(0..=max)),
                down: Duration::from_millis(rng.u64(0..=max)),
            },
            5 => Fault::Cut,
            6 => Fault::HalfCloseUp,
            7 => Fault::HalfCloseDown,
            8 => Fault::StallUp,
            _ => Fault::StallDown,
        }
    }
}

/// What one connection currently does, per direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct State {
    cut: bool,
    up: Dir,
    down: Dir,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Dir {
    delay: Duration,
    closed: bool,
    stalled: bool,
}

impl State {
    fn apply(&mut self, fault: Fault) {
        match fault {
            Fault::Delay { up, down } => {
                self.up.delay = up;
                self.down.delay = down;
            }
            Fault::Cut => self.cut = true,
            Fault::HalfCloseUp => self.up.closed = true,
            Fault::HalfCloseDown => self.down.closed = true,
            Fault::StallUp => self.up.stalled = true,
            Fault::StallDown => self.down.stalled = true,
        }
    }
}

/// The proxy; dropping it stops accepting and closes every connection.
pub struct ChaosProxy {
    /// Where clients connect.
    pub listen: SocketAddr,
    conns: Arc<Mutex<BTreeMap<u64, watch::Sender<State>>>>,
    counts: Mutex<BTreeMap<&'static str, u64>>,
    accepted: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl ChaosProxy {
    /// Starts a proxy on a free loopback port that forwards to `target`.
    pub async fn start(target: SocketAddr) -> std::io::Result<ChaosProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let listen = listener.local_addr()?;
        let conns: Arc<Mutex<BTreeMap<u64, watch::Sender<State>>>> = Arc::default();
        let accepted = Arc::new(AtomicU64::new(0));
        let (registry, count) = (Arc::clone(&conns), Arc::clone(&accepted));
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let id = count.fetch_add(1, Ordering::Relaxed);
                let (tx, rx) = watch::channel(State::default());
                registry.lock().insert(id, tx);
                let registry = Arc::clone(&registry);
                tokio::spawn(async move {
                    serve(client, target, rx).await;
                    registry.lock().remove(&id);
                });
            }
        });
        Ok(ChaosProxy {
            listen,
            conns,
            counts: Mutex::default(),
            accepted,
            task,
        })
    }

    /// Ids of the connections open now, oldest first.
    pub fn open(&self) -> Vec<u64> {
        self.conns.lock().keys().copied().collect()
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Applies `fault` to connection `id`; false when it is already gone.
    pub fn inject(&self, id: u64, fault: Fault) -> bool {
        let applied = match self.conns.lock().get(&id) {
            Some(tx) => {
                tx.send_modify(|s| s.apply(fault));
                true
            }
            None => false,
        };
        if applied {
            *self.counts.lock().entry(fault.kind()).or_default() += 1;
        }
        applied
    }

    /// Applies `fault` to a random open connection; its id, None when none is open.
    pub fn inject_random(&self, rng: &mut fastrand::Rng, fault: Fault) -> Option<u64> {
        let open = self.open();
        if open.is_empty() {
            return None;
        }
        let id = open[rng.usize(..open.len())];
        self.inject(id, fault).then_some(id)
    }

    /// Faults injected so far, by kind (every kind listed, zero or not).
    pub fn counts(&self) -> BTreeMap<&'static str, u64> {
        let counts = self.counts.lock();
        Fault::KINDS
            .iter()
            .map(|k| (*k, counts.get(k).copied().unwrap_or(0)))
            .collect()
    }
}

impl Drop for ChaosProxy {
    fn drop(&mut self) {
        self.task.abort();
        for tx in self.conns.lock().values() {
            tx.send_modify(|s| s.cut = true);
        }
    }
}

/// How a pump ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// Its source sent EOF, which was passed on as a FIN.
    Eof,
    /// A write failed: the connection is broken.
    Broken,
}

/// Carries one client connection until both directions ended, one broke, or it is cut.
async fn serve(client: TcpStream, target: SocketAddr, state: watch::Receiver<State>) {
    let Ok(server) = TcpStream::connect(target).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let mut cut = state.clone();
    let up = pump(client_read, server_write, state.clone(), |s| s.up);
    let down = pump(server_read, client_write, state, |s| s.down);
    tokio::pin!(up, down);
    let (mut up_done, mut down_done) = (false, false);
    while !(up_done && down_done) {
        tokio::select! {
            ended = &mut up, if !up_done => {
                if ended == Ended::Broken {
                    return;
                }
                up_done = true;
            }
            ended = &mut down, if !down_done => {
                if ended == Ended::Broken {
                    return;
                }
                down_done = true;
            }
            _ = cut.wait_for(|s| s.cut) => return,
        }
    }
}

/// Copies one direction under the connection's state: delays, drops (stall) or sends a
/// FIN (closed) as the state says, at once when it changes. Ends once the source's EOF
/// was passed on as a FIN after the queued bytes, or when a write fails.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut state: watch::Receiver<State>,
    dir: fn(&State) -> Dir,
) -> Ended {
    // None: send a FIN now (a half-close fault).
    let (tx, mut rx) = mpsc::unbounded_channel::<Option<(Instant, Vec<u8>)>>();
    let writer = async move {
        let mut fin_sent = false;
        while let Some(item) = rx.recv().await {
            match item {
                Some((due, bytes)) => {
                    tokio::time::sleep_until(due).await;
                    if to.write_all(&bytes).await.is_err() {
                        return Ended::Broken;
                    }
                }
                None => {
                    fin_sent = true;
                    let _ = to.shutdown().await;
                }
            }
        }
        if !fin_sent {
            let _ = to.shutdown().await;
        }
        Ended::Eof
    };
    let reader = async move {
        let mut buf = vec![0u8; 64 * 1024];
        let mut fin_queued = false;
        loop {
            let now = dir(&state.borrow_and_update());
            if now.closed && !fin_queued {
                fin_queued = true;
                if tx.send(None).is_err() {
                    return;
                }
            }
            let n = tokio::select! {
                read = from.read(&mut buf) => match read {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                },
                changed = state.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    continue;
                }
            };
            let now = dir(&state.borrow());
            if now.stalled || now.closed {
                continue;
            }
            if tx
                .send(Some((Instant::now() + now.delay, buf[..n].to_vec())))
                .is_err()
            {
                return;
            }
        }
    };
    tokio::pin!(writer);
    tokio::select! {
        // The writer ends before the reader only when a write failed.
        ended = &mut writer => return ended,
        _ = reader => {}
    }
    // The reader dropped its sender: the writer drains the queue, then sends the FIN.
    writer.await
}
