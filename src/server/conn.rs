//! One task per connection: read → decode every whole frame → execute in order → one write
//! per batch. A blocked WAIT keeps reading (to notice the peer closing and to bound
//! buffered input) while it waits for its grant, its deadline or shutdown.
//!
//! Memory: the read buffer grows to the pending-input limit at most (not past it by
//! doubling), replies are written every `WRITE_BATCH` bytes, large buffers are dropped
//! once empty and given back to the OS, requests before AUTH are kept small, and every
//! connection reports its buffers to the server's client budget (`--maxmemory-clients`,
//! see `budget.rs`), which may close it. Scripts, KEYS and SCAN run on the script threads
//! (`Effect::Offload`) while the connection awaits them.
//!
//! The loop is generic over the stream's read and write halves: a plain connection runs
//! on `TcpStream::into_split`'s halves (no lock between them), a TLS one on
//! `tokio::io::split` of its `TlsStream` (see `tls.rs`); each is compiled for its own.

use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

use super::budget::{self, ConnMemory};
use super::shutdown::Shutdown;
use crate::cmd::{self, ClientInfo, Effect, KillSwitch, Session, Shared};
use crate::error::{ProtoError, RespError};
use crate::resp::{Decoder, Reply};
use crate::table::{Blocked, WaitResult};

/// Read buffer headroom of a new connection. Small, because most connections are idle
/// or send short commands (10k connections cost 35 KB each with 16 KB buffers up front
/// under mimalloc); a connection whose reads fill the buffer gets more, up to
/// [`READ_CHUNK_MAX`].
const READ_CHUNK_MIN: usize = 1024;
/// Largest read buffer headroom (pipelined clients).
const READ_CHUNK_MAX: usize = 16 * 1024;
/// Up to this many buffered bytes, buffers grow as `BytesMut` likes (doubling); beyond,
/// they grow exactly, capped by the connection's limit (see `make_room`), and they are
/// dropped once empty.
const SMALL_BUFFER: usize = 64 * 1024;
/// Replies are written once this many are pending (or at the end of a batch), so the
/// write buffer stays near this size plus one reply whatever the client reads.
const WRITE_BATCH: usize = 1024 * 1024;

/// Before AUTH (with --requirepass), requests are kept small, as Redis does since
/// CVE-2021-32675: at most 10 arguments of at most 16 KiB each.
const PRE_AUTH_MAX_ARGS: usize = 10;
const PRE_AUTH_MAX_BULK: usize = 16 * 1024;

/// Serves one client until it closes, breaks the protocol or the server shuts down.
pub async fn serve(stream: TcpStream, server: Arc<Shared>, shutdown: Shutdown) {
    serve_buffered(stream, server, shutdown, BytesMut::new()).await;
}

/// Like [`serve`], with `input` already read from the client (cluster mode: a connection
/// that waited for a leader and found this node leading).
pub async fn serve_buffered(
    stream: TcpStream,
    server: Arc<Shared>,
    shutdown: Shutdown,
    input: BytesMut,
) {
    let _ = stream.set_nodelay(true);
    let info = server.clients.register_stream(&stream);
    let (rd, wr) = stream.into_split();
    serve_halves(rd, wr, info, server, shutdown, input).await;
}

/// Serves one client of the TLS port: the handshake (bounded by `tls::HANDSHAKE_TIMEOUT`,
/// and cut short by shutdown), then the same loop as [`serve`]. A client that fails the
/// handshake (plain RESP, a certificate from another CA, no certificate where one is
/// required) is closed without ever being registered.
pub async fn serve_tls(
    stream: TcpStream,
    acceptor: TlsAcceptor,
    server: Arc<Shared>,
    mut shutdown: Shutdown,
) {
    let _ = stream.set_nodelay(true);
    let name =
        |a: std::io::Result<std::net::SocketAddr>| a.map(|a| a.to_string()).unwrap_or_default();
    let (addr, laddr) = (name(stream.peer_addr()), name(stream.local_addr()));
    let stream = tokio::select! {
        handshake = super::tls::handshake(&acceptor, stream) => match handshake {
            Ok(stream) => stream,
            Err(why) => {
                tracing::debug!(%addr, "{why}");
                return;
            }
        },
        _ = shutdown.started() => return,
    };
    let info = server.clients.register(addr, laddr);
    let (rd, wr) = tokio::io::split(stream);
    serve_halves(rd, wr, info, server, shutdown, BytesMut::new()).await;
}

/// The connection loop on a stream's halves, for a client registered as `info`.
async fn serve_halves<R, W>(
    rd: R,
    wr: W,
    info: Arc<Mutex<ClientInfo>>,
    server: Arc<Shared>,
    mut shutdown: Shutdown,
    input: BytesMut,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let kill = info.lock().kill.clone();
    let mut session = Session::new(info, &server.acl);
    let mem = server.budget.register(session.id);
    let mut conn = Conn {
        rd,
        wr,
        rbuf: if input.is_empty() {
            BytesMut::with_capacity(READ_CHUNK_MIN)
        } else {
            input
        },
        read_chunk: READ_CHUNK_MIN,
        // Grows to the largest batch of replies (written at WRITE_BATCH) and keeps that
        // capacity while it is small.
        wbuf: BytesMut::new(),
        decoder: Decoder::new(decode_limits(&server, &session)),
        server: server.clone(),
        mem: mem.clone(),
        killed: {
            let kill = kill.clone();
            Box::pin(async move { kill.killed().await })
        },
        kill,
        accounted: 0,
        peak: 0,
        grown: false,
    };
    if let Err(why) = conn.run(&mut session, &mut shutdown).await {
        tracing::debug!(client = session.id, "connection closed: {why}");
    }
    let peak = conn.peak;
    drop(conn);
    server.budget.unregister(session.id, &mem);
    server.clients.unregister(session.id);
    if peak >= budget::GIVE_BACK_BYTES {
        budget::give_back();
    }
}

/// Resolves after `secs` seconds (`--timeout`), or never when it is 0. A client is idle
/// while the server waits for its next request; one blocked in a WAIT is not (as Redis
/// leaves blocked clients to their own timeout).
async fn idle_timeout(secs: u64) {
    if secs == 0 {
        return std::future::pending().await;
    }
    tokio::time::sleep(std::time::Duration::from_secs(secs)).await;
}

/// The decoder's limits: small before AUTH, the configured ones after.
fn decode_limits(server: &Shared, session: &Session) -> crate::resp::DecodeLimits {
    let limits = server.config.decode_limits();
    if session.authenticated {
        return limits;
    }
    crate::resp::DecodeLimits {
        max_args: limits.max_args.min(PRE_AUTH_MAX_ARGS),
        max_bulk_bytes: limits.max_bulk_bytes.min(PRE_AUTH_MAX_BULK),
        ..limits
    }
}

struct Conn<R, W> {
    rd: R,
    wr: W,
    rbuf: BytesMut,
    /// Headroom to reserve before a read: doubles while reads fill it.
    read_chunk: usize,
    wbuf: BytesMut,
    decoder: Decoder,
    server: Arc<Shared>,
    /// This connection's share of `--maxmemory-clients`.
    mem: Arc<ConnMemory>,
    /// Set by CLIENT KILL.
    kill: Arc<KillSwitch>,
    /// Resolves when CLIENT KILL chose this connection. One future for the connection's
    /// life, so it registers with the switch once, not on every read (a registration per
    /// read cost CPU per request, as the budget's did). Never polled after it resolves:
    /// every branch that sees it resolve closes the connection.
    killed: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
    /// The buffer bytes last reported to the budget.
    accounted: usize,
    /// The most buffer bytes this connection held.
    peak: usize,
    /// The read buffer grew past [`SMALL_BUFFER`]: drop it once it is empty.
    grown: bool,
}

/// Why a connection chosen by `--maxmemory-clients` closes.
const EVICTED: &str = "client buffers over --maxmemory-clients";
/// Why a connection closes on CLIENT KILL.
const KILLED: &str = "closed by CLIENT KILL";
/// Why an idle connection closes.
const IDLE: &str = "idle longer than --timeout";

/// How a blocked wait ended.
enum WaitEnd {
    /// Send this reply (after `lsn` is durable).
    Reply(Reply, u64),
    /// The connection is gone or the server stops.
    Closed,
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> Conn<R, W> {
    async fn run(&mut self, session: &mut Session, shutdown: &mut Shutdown) -> Result<(), String> {
        loop {
            let mut lsn = 0;
            loop {
                let req = match self.decoder.decode(&mut self.rbuf) {
                    Ok(Some(req)) => req,
                    Ok(None) => break,
                    Err(err) => return self.protocol_error(session, err, lsn).await,
                };
                let authenticated = session.authenticated;
                let mut executed = cmd::execute(&req, &self.server, session);
                if let Effect::Offload(work) = executed.effect {
                    executed = work.run(self.server.clone()).await;
                }
                if session.authenticated != authenticated {
                    // Between requests the decoder holds no state: new limits apply from
                    // the next request on.
                    self.decoder = Decoder::new(decode_limits(&self.server, session));
                }
                lsn = lsn.max(executed.lsn);
                match executed.effect {
                    Effect::Reply(reply) => reply.encode(session.proto, &mut self.wbuf),
                    Effect::Offload(_) => {
                        // Offloaded work returns a reply, never more work.
                        Reply::Error(RespError::fixed("ERR internal error"))
                            .encode(session.proto, &mut self.wbuf);
                    }
                    Effect::Close(reply) => {
                        reply.encode(session.proto, &mut self.wbuf);
                        self.flush(lsn).await?;
                        return Ok(());
                    }
                    Effect::Await(pending) => {
                        // Earlier replies of the pipeline go out before the wait.
                        self.flush(lsn).await?;
                        tokio::select! {
                            reply = pending.reply() => reply.encode(session.proto, &mut self.wbuf),
                            _ = shutdown.started() => return Ok(()),
                        }
                    }
                    Effect::Blocked { blocked, deadline } => {
                        // Earlier replies of the pipeline go out before the wait.
                        self.flush(lsn).await?;
                        let ended = self.wait(blocked, deadline, shutdown).await;
                        session.end_wait();
                        match ended {
                            WaitEnd::Reply(reply, grant_lsn) => {
                                lsn = grant_lsn;
                                reply.encode(session.proto, &mut self.wbuf);
                            }
                            WaitEnd::Closed => return Ok(()),
                        }
                    }
                }
                if self.wbuf.len() >= WRITE_BATCH.min(self.server.config.max_unread_reply_bytes) {
                    self.flush(lsn).await?;
                    lsn = 0;
                }
            }
            self.flush(lsn).await?;
            if self.rbuf.is_empty() && self.grown {
                self.rbuf = BytesMut::with_capacity(READ_CHUNK_MIN);
                self.grown = false;
            }
            self.account();
            if shutdown.is_started() {
                return Ok(());
            }
            if self.kill.is_killed() {
                return Err(KILLED.into());
            }
            let Some(room) = self.make_room() else {
                return Err(EVICTED.into());
            };
            self.account();
            tokio::select! {
                read = self.rd.read_buf(&mut self.rbuf) => match read {
                    Ok(0) => return Ok(()),
                    Ok(n) => self.note_read(n, room),
                    Err(err) => return Err(err.to_string()),
                },
                _ = shutdown.started() => return Ok(()),
                _ = self.mem.evicted() => return Err(EVICTED.into()),
                () = &mut self.killed => return Err(KILLED.into()),
                () = idle_timeout(self.server.config.timeout) => return Err(IDLE.into()),
            }
            if self.rbuf.len() > self.server.config.max_pending_input_bytes {
                let err =
                    ProtoError::Malformed("too big request: pending input over the limit".into());
                return self.protocol_error(session, err, 0).await;
            }
        }
    }

    /// Reserves read headroom when less than a quarter of `read_chunk` is left; returns the
    /// headroom, or None when the client budget chose this connection to close.
    ///
    /// A large buffer grows to exactly what is needed, doubling but never past the
    /// pending-input limit plus one read: `BytesMut::reserve` doubles its capacity, which
    /// made a connection at the limit cost twice the limit. Before it grows, the new buffer
    /// and the old one (both live while the bytes are copied) are reported to the budget,
    /// so `--maxmemory-clients` closes the largest connections before the allocation rather
    /// than after it.
    fn make_room(&mut self) -> Option<usize> {
        if self.rbuf.capacity() - self.rbuf.len() < self.read_chunk / 4 {
            let len = self.rbuf.len();
            if len < SMALL_BUFFER {
                self.rbuf.reserve(self.read_chunk);
            } else {
                let ceiling = self.server.config.max_pending_input_bytes + self.read_chunk;
                let target = (len + self.read_chunk).max((len * 2).min(ceiling));
                let during = self.rbuf.capacity() + target + self.wbuf.capacity();
                self.accounted = during;
                self.server.budget.account(&self.mem, during);
                if self.mem.is_evicted() {
                    return None;
                }
                let mut grown = BytesMut::with_capacity(target);
                grown.extend_from_slice(&self.rbuf);
                let old = std::mem::replace(&mut self.rbuf, grown);
                self.grown = true;
                if old.capacity() >= budget::GIVE_BACK_BYTES {
                    // mimalloc would keep the old buffer resident for its purge delay: a
                    // connection growing to its limit held about twice the limit.
                    drop(old);
                    budget::give_back();
                }
            }
        }
        Some(self.rbuf.capacity() - self.rbuf.len())
    }

    /// Reports the buffers' size to the client budget when it changed.
    fn account(&mut self) {
        let bytes = self.rbuf.capacity() + self.wbuf.capacity();
        if bytes != self.accounted {
            self.accounted = bytes;
            self.peak = self.peak.max(bytes);
            self.server.budget.account(&self.mem, bytes);
        }
    }

    /// A read of `n` bytes that filled the `room` it had asks for a larger buffer next time.
    fn note_read(&mut self, n: usize, room: usize) {
        if n >= room {
            self.read_chunk = (self.read_chunk * 2).min(READ_CHUNK_MAX);
        }
    }

    /// Replies `-ERR Protocol error: ...` after the replies before it, once `lsn` (their
    /// changes) is durable, and closes.
    async fn protocol_error(
        &mut self,
        session: &Session,
        err: ProtoError,
        lsn: u64,
    ) -> Result<(), String> {
        let reply = Reply::Error(RespError::new(format!("ERR Protocol error: {err}")));
        reply.encode(session.proto, &mut self.wbuf);
        let _ = self.flush(lsn).await;
        Err(format!("protocol error: {err}"))
    }

    /// Writes the pending replies in one write, once `lsn` is durable.
    async fn flush(&mut self, lsn: u64) -> Result<(), String> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        if let Err(err) = self.server.wait_durable(lsn).await {
            // Never acknowledge what is not on disk: drop the connection instead.
            self.wbuf.clear();
            return Err(format!("log failed: {err}"));
        }
        self.account();
        // Biased: replies that fit the socket go out even when the connection was just
        // killed (CLIENT KILL ... SKIPME no answers its caller, then closes it).
        let result = tokio::select! {
            biased;
            // The flush matters for TLS only (records rustls could not write yet); on a TCP
            // half it returns at once.
            result = async {
                self.wr.write_all(&self.wbuf).await?;
                self.wr.flush().await
            } => result.map_err(|e| e.to_string()),
            _ = self.mem.evicted() => Err(EVICTED.to_string()),
            () = &mut self.killed => Err(KILLED.to_string()),
        };
        self.wbuf.clear();
        if self.wbuf.capacity() > SMALL_BUFFER {
            self.wbuf = BytesMut::new();
        }
        result
    }

    /// Waits for a queued request's grant, its WAIT deadline, the peer closing or shutdown.
    async fn wait(
        &mut self,
        blocked: Blocked,
        deadline: Option<Instant>,
        shutdown: &mut Shutdown,
    ) -> WaitEnd {
        let Blocked { waiter, mut rx } = blocked;
        let nil = if waiter.multi {
            Reply::NilArray
        } else {
            Reply::Nil
        };
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(sleep);
        let server = self.server.clone();
        let result = loop {
            if self.make_room().is_none() {
                Self::abandon(&server, &waiter, &mut rx);
                return WaitEnd::Closed;
            }
            tokio::select! {
                got = &mut rx => break Some(got.ok()),
                _ = &mut sleep => break None,
                read = self.rd.read_buf(&mut self.rbuf) => {
                    let gone = match read {
                        Ok(0) | Err(_) => true,
                        Ok(_) => self.rbuf.len() > server.config.max_pending_input_bytes,
                    };
                    if gone {
                        Self::abandon(&server, &waiter, &mut rx);
                        return WaitEnd::Closed;
                    }
                }
                _ = shutdown.started() => {
                    Self::abandon(&server, &waiter, &mut rx);
                    return WaitEnd::Closed;
                }
                _ = self.mem.evicted() => {
                    Self::abandon(&server, &waiter, &mut rx);
                    return WaitEnd::Closed;
                }
                () = &mut self.killed => {
                    Self::abandon(&server, &waiter, &mut rx);
                    return WaitEnd::Closed;
                }
            }
            self.account();
        };
        let outcome = match result {
            Some(outcome) => outcome,
            None => {
                // Deadline: leave the queue, unless the grant came first.
                if server.table.cancel(&waiter, server.now()).value {
                    return WaitEnd::Reply(nil, 0);
                }
                rx.try_recv().ok()
            }
        };
        match outcome {
            Some(WaitResult::Granted { reply, lsn, .. }) => WaitEnd::Reply(reply, lsn),
            Some(WaitResult::Failed(err)) => WaitEnd::Reply(Reply::Error(err), 0),
            None => WaitEnd::Reply(nil, 0),
        }
    }

    /// The connection is gone while waiting: the table withdraws the wait (and undoes a
    /// grant that can no longer be delivered).
    fn abandon(
        server: &Shared,
        waiter: &Arc<crate::table::Waiter>,
        rx: &mut tokio::sync::oneshot::Receiver<WaitResult>,
    ) {
        server.table.withdraw(waiter, rx, server.now());
    }
}
