//! One task per connection: read → decode every whole frame → execute in order → one write
//! per batch. A blocked WAIT keeps reading (to notice the peer closing and to bound
//! buffered input) while it waits for its grant, its deadline or shutdown.

use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use super::shutdown::Shutdown;
use crate::cmd::{self, Effect, Server, Session};
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

/// Serves one client until it closes, breaks the protocol or the server shuts down.
pub async fn serve(stream: TcpStream, server: Arc<Server>, shutdown: Shutdown) {
    serve_buffered(stream, server, shutdown, BytesMut::new()).await;
}

/// Like [`serve`], with `input` already read from the client (cluster mode: a connection
/// that waited for a leader and found this node leading).
pub async fn serve_buffered(
    stream: TcpStream,
    server: Arc<Server>,
    mut shutdown: Shutdown,
    input: BytesMut,
) {
    let _ = stream.set_nodelay(true);
    let addr = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let laddr = stream
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let info = server.clients.register(addr, laddr);
    let mut session = Session::new(info, server.config.requirepass.is_some());
    let (rd, wr) = stream.into_split();
    let mut conn = Conn {
        rd,
        wr,
        rbuf: if input.is_empty() {
            BytesMut::with_capacity(READ_CHUNK_MIN)
        } else {
            input
        },
        read_chunk: READ_CHUNK_MIN,
        // Grows to the largest batch of replies and keeps that capacity.
        wbuf: BytesMut::new(),
        decoder: Decoder::new(server.config.decode_limits()),
        server: server.clone(),
    };
    if let Err(why) = conn.run(&mut session, &mut shutdown).await {
        tracing::debug!(client = session.id, "connection closed: {why}");
    }
    server.clients.unregister(session.id);
}

struct Conn {
    rd: OwnedReadHalf,
    wr: OwnedWriteHalf,
    rbuf: BytesMut,
    /// Headroom to reserve before a read: doubles while reads fill it.
    read_chunk: usize,
    wbuf: BytesMut,
    decoder: Decoder,
    server: Arc<Server>,
}

/// How a blocked wait ended.
enum WaitEnd {
    /// Send this reply (after `lsn` is durable).
    Reply(Reply, u64),
    /// The connection is gone or the server stops.
    Closed,
}

impl Conn {
    async fn run(&mut self, session: &mut Session, shutdown: &mut Shutdown) -> Result<(), String> {
        loop {
            let mut lsn = 0;
            loop {
                let req = match self.decoder.decode(&mut self.rbuf) {
                    Ok(Some(req)) => req,
                    Ok(None) => break,
                    Err(err) => return self.protocol_error(session, err).await,
                };
                let executed = cmd::execute(&req, &self.server, session);
                lsn = lsn.max(executed.lsn);
                match executed.effect {
                    Effect::Reply(reply) => reply.encode(session.proto, &mut self.wbuf),
                    Effect::Close(reply) => {
                        reply.encode(session.proto, &mut self.wbuf);
                        self.flush(lsn).await?;
                        return Ok(());
                    }
                    Effect::Blocked { blocked, deadline } => {
                        // Earlier replies of the pipeline go out before the wait.
                        self.flush(lsn).await?;
                        match self.wait(blocked, deadline, shutdown).await {
                            WaitEnd::Reply(reply, grant_lsn) => {
                                lsn = grant_lsn;
                                reply.encode(session.proto, &mut self.wbuf);
                            }
                            WaitEnd::Closed => return Ok(()),
                        }
                    }
                }
                if self.wbuf.len() >= self.server.config.max_unread_reply_bytes {
                    self.flush(lsn).await?;
                    lsn = 0;
                }
            }
            self.flush(lsn).await?;
            if shutdown.is_started() {
                return Ok(());
            }
            let room = self.make_room();
            tokio::select! {
                read = self.rd.read_buf(&mut self.rbuf) => match read {
                    Ok(0) => return Ok(()),
                    Ok(n) => self.note_read(n, room),
                    Err(err) => return Err(err.to_string()),
                },
                _ = shutdown.started() => return Ok(()),
            }
            if self.rbuf.len() > self.server.config.max_pending_input_bytes {
                let err =
                    ProtoError::Malformed("too big request: pending input over the limit".into());
                return self.protocol_error(session, err).await;
            }
        }
    }

    /// Reserves read headroom when less than a quarter of `read_chunk` is left; returns the
    /// headroom.
    fn make_room(&mut self) -> usize {
        if self.rbuf.capacity() - self.rbuf.len() < self.read_chunk / 4 {
            self.rbuf.reserve(self.read_chunk);
        }
        self.rbuf.capacity() - self.rbuf.len()
    }

    /// A read of `n` bytes that filled the `room` it had asks for a larger buffer next time.
    fn note_read(&mut self, n: usize, room: usize) {
        if n >= room {
            self.read_chunk = (self.read_chunk * 2).min(READ_CHUNK_MAX);
        }
    }

    /// Replies `-ERR Protocol error: ...` and closes.
    async fn protocol_error(&mut self, session: &Session, err: ProtoError) -> Result<(), String> {
        let reply = Reply::Error(RespError::new(format!("ERR Protocol error: {err}")));
        reply.encode(session.proto, &mut self.wbuf);
        let _ = self.flush(0).await;
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
        let result = self.wr.write_all(&self.wbuf).await;
        self.wbuf.clear();
        result.map_err(|e| e.to_string())
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
            self.make_room();
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
            }
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
            Some(WaitResult::Granted { reply, lsn }) => WaitEnd::Reply(reply, lsn),
            Some(WaitResult::Failed(err)) => WaitEnd::Reply(Reply::Error(err), 0),
            None => WaitEnd::Reply(nil, 0),
        }
    }

    /// The connection is gone while waiting: leave the queue, and undo a grant that was
    /// made but cannot be delivered any more.
    fn abandon(
        server: &Server,
        waiter: &Arc<crate::table::Waiter>,
        rx: &mut tokio::sync::oneshot::Receiver<WaitResult>,
    ) {
        let now = server.now();
        if server.table.cancel(waiter, now).value {
            return;
        }
        if let Ok(WaitResult::Granted { .. }) = rx.try_recv() {
            let keys: Vec<&[u8]> = waiter.keys.iter().map(|k| k.as_ref()).collect();
            server.table.run(&keys, now, |tx| {
                for key in &waiter.keys {
                    let _ = tx.unlock(key, &waiter.owner);
                }
            });
        }
    }
}
