//! The peer port: Raft messages between nodes, and clients tunnelled from followers.
//!
//! A connection to a peer port starts with one byte that says what follows:
//! - `R`: Raft messages, each framed as `len: u32 LE | protobuf Message`, one way (every
//!   node keeps one outgoing connection per peer and reads the ones it accepts);
//! - `C`: a client connection a follower forwards (see [`super::forward`]); RESP follows,
//!   served as if the client had connected here.
//!
//! Sending never blocks the node loop: each peer has a queue and a task that (re)connects
//! and writes whatever is queued in one write. Messages to an unreachable peer are
//! dropped (Raft resends); the queue is bounded by dropping while disconnected.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use protobuf::Message as _;
use raft::eraftpb::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc as amp;

use super::Input;
use crate::cmd::Shared;
use crate::server::shutdown::Shutdown;

/// First byte of a Raft message stream.
pub(crate) const STREAM_RAFT: u8 = b'R';
/// First byte of a forwarded client connection.
pub(crate) const STREAM_CLIENT: u8 = b'C';
/// Largest message accepted (a batch of entries).
const MAX_MESSAGE: usize = 256 << 20;
/// Pause between connection attempts to a peer that is down.
const RECONNECT: Duration = Duration::from_millis(50);

/// Accepts peer connections until shutdown.
pub(crate) async fn listen(
    listener: TcpListener,
    server: Arc<Shared>,
    inbox: mpsc::Sender<Input>,
    mut shutdown: Shutdown,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.started() => return,
        };
        let Ok((stream, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let server = server.clone();
        let inbox = inbox.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let mut stream = stream;
            match stream.read_u8().await {
                Ok(STREAM_RAFT) => read_messages(stream, inbox).await,
                Ok(STREAM_CLIENT) => crate::server::conn::serve(stream, server, shutdown).await,
                _ => {}
            }
        });
    }
}

/// Reads framed messages into the node loop's inbox until the peer closes.
async fn read_messages(stream: TcpStream, inbox: mpsc::Sender<Input>) {
    let mut rd = tokio::io::BufReader::with_capacity(64 * 1024, stream);
    let mut buf = Vec::new();
    loop {
        let Ok(len) = rd.read_u32_le().await else {
            return;
        };
        let len = len as usize;
        if len > MAX_MESSAGE {
            tracing::warn!(
                len,
                "peer sent an oversized message; closing its connection"
            );
            return;
        }
        buf.resize(len, 0);
        if rd.read_exact(&mut buf).await.is_err() {
            return;
        }
        match Message::parse_from_bytes(&buf) {
            Ok(msg) => {
                if inbox.send(Input::Msg(Box::new(msg))).is_err() {
                    return;
                }
            }
            Err(err) => {
                tracing::warn!(%err, "undecodable raft message; closing the peer connection");
                return;
            }
        }
    }
}

/// Starts the sender task of peer `id` at `addr`; returns its queue.
pub(crate) fn spawn_sender(id: u64, addr: String) -> amp::UnboundedSender<Message> {
    let (tx, rx) = amp::unbounded_channel();
    tokio::spawn(send_loop(id, addr, rx));
    tx
}

async fn send_loop(id: u64, addr: String, mut rx: amp::UnboundedReceiver<Message>) {
    let mut out = Vec::new();
    let mut logged_down = false;
    loop {
        let mut stream = match TcpStream::connect(&addr).await {
            Ok(stream) => stream,
            Err(err) => {
                if !logged_down {
                    tracing::debug!(peer = id, %addr, %err, "peer unreachable");
                    logged_down = true;
                }
                // Drop what was queued: Raft resends what still matters.
                loop {
                    match rx.try_recv() {
                        Ok(_) => {}
                        Err(amp::error::TryRecvError::Empty) => break,
                        Err(amp::error::TryRecvError::Disconnected) => return,
                    }
                }
                tokio::time::sleep(RECONNECT).await;
                continue;
            }
        };
        logged_down = false;
        let _ = stream.set_nodelay(true);
        if stream.write_all(&[STREAM_RAFT]).await.is_err() {
            continue;
        }
        loop {
            let Some(first) = rx.recv().await else {
                return;
            };
            out.clear();
            encode(&first, &mut out);
            while out.len() < (4 << 20) {
                match rx.try_recv() {
                    Ok(msg) => encode(&msg, &mut out),
                    Err(_) => break,
                }
            }
            if stream.write_all(&out).await.is_err() {
                break;
            }
        }
    }
}

fn encode(msg: &Message, out: &mut Vec<u8>) {
    match msg.write_to_bytes() {
        Ok(bytes) => {
            out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            out.extend_from_slice(&bytes);
        }
        Err(err) => tracing::error!(%err, "cannot encode a raft message"),
    }
}
