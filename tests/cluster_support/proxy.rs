//! A TCP proxy for one directed link between two cluster nodes, with a switch that
//! passes, cuts, delays or blackholes the traffic.
//!
//! Node A reaches node B through the proxy of link A->B (A's `--peers` names the proxy
//! as B's address), so every TCP connection that A opens to B runs through it, in both
//! byte directions. The modes act on those connections:
//! - `Pass`: bytes are forwarded as they come.
//! - `Cut`: open connections are closed at once and new ones are accepted and closed
//!   (the peer sees a reset or an EOF right away, as with a refused connection).
//! - `Delay(d)`: bytes from A to B are held for `d` before they are forwarded (the reply
//!   direction is not delayed); order is kept.
//! - `Blackhole`: connections stay open (and new ones are accepted) but nothing is
//!   forwarded in either direction: a half-open link, as when a cable is pulled and no
//!   RST ever comes.
//!
//! tokio is used because the harness already runs on it; the proxy is a handful of
//! tasks per connection, small enough that a proxy crate would not pay for itself.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// What a link does with its traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkMode {
    /// Forward bytes as they come.
    Pass,
    /// Close open connections and refuse new ones (accept, then close).
    Cut,
    /// Forward bytes from the link's source to its target after this delay.
    Delay(Duration),
    /// Keep connections open but forward nothing (half-open).
    Blackhole,
}

/// One running proxy; dropping it stops accepting and closes its connections.
pub struct Proxy {
    /// Where the proxy listens (the address the source node dials).
    pub listen: SocketAddr,
    mode: Arc<watch::Sender<LinkMode>>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Starts a proxy on a free loopback port that forwards to `target`.
    pub async fn start(target: SocketAddr) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let listen = listener.local_addr()?;
        let (mode, _) = watch::channel(LinkMode::Pass);
        let mode = Arc::new(mode);
        let accept_mode = Arc::clone(&mode);
        let task = tokio::spawn(async move {
            loop {
                let Ok((conn, _)) = listener.accept().await else {
                    continue;
                };
                let rx = accept_mode.subscribe();
                if *rx.borrow() == LinkMode::Cut {
                    drop(conn);
                    continue;
                }
                tokio::spawn(serve(conn, target, rx));
            }
        });
        Ok(Proxy { listen, mode, task })
    }

    /// Switches the link to `mode`; open connections follow at once.
    pub fn set(&self, mode: LinkMode) {
        self.mode.send_replace(mode);
    }

    /// The current mode.
    pub fn mode(&self) -> LinkMode {
        *self.mode.borrow()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // Closes every open connection (their tasks watch for Cut) and stops accepting.
        self.mode.send_replace(LinkMode::Cut);
        self.task.abort();
    }
}

/// Carries one accepted connection until either side closes or the link is cut.
async fn serve(client: TcpStream, target: SocketAddr, mode: watch::Receiver<LinkMode>) {
    let Ok(server) = TcpStream::connect(target).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let mut cut = mode.clone();
    tokio::select! {
        _ = pump(client_read, server_write, mode.clone(), true) => {}
        _ = pump(server_read, client_write, mode, false) => {}
        _ = cut.wait_for(|m| *m == LinkMode::Cut) => {}
    }
}

/// Copies one byte direction under the link's mode; returns when either end closes.
/// `forward` is the source-to-target direction, the only one `Delay` holds back.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mode: watch::Receiver<LinkMode>,
    forward: bool,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let writer = async move {
        while let Some((due, bytes)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&bytes).await.is_err() {
                return;
            }
        }
    };
    let reader = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let current = *mode.borrow();
            let delay = match current {
                LinkMode::Pass => Duration::ZERO,
                LinkMode::Delay(d) if forward => d,
                LinkMode::Delay(_) => Duration::ZERO,
                LinkMode::Blackhole => continue,
                LinkMode::Cut => return,
            };
            if tx
                .send((Instant::now() + delay, buf[..n].to_vec()))
                .is_err()
            {
                return;
            }
        }
    };
    // The reader ending drops `tx`, so the writer drains what is queued, then ends.
    tokio::join!(reader, writer);
}
