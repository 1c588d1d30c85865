//! Forwarding: a client of a follower is served by the leader, unchanged.
//!
//! Every client connection of a cluster node starts here. On the serving leader it is an
//! ordinary connection (`server::conn`). On a follower it is relayed: the follower opens
//! one upstream connection per client to the leader's peer port (as this node reaches it
//! in `--peers`, so a cut link cuts forwarding too), tagged as a client stream, and
//! relays the commands and the replies in order, pipelined. `INFO` is answered by this
//! node itself (its own role, term and table), in its place in the reply order. With no
//! leader known, a command waits up to twice the election timeout for one, then gets
//! `-TRYAGAIN no leader`. When the upstream connection ends (the leader died or stepped
//! down), or this node stops following that leader (it moved, or this node was cut off),
//! the client's connection is closed: the client reconnects and is routed again.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use tokio::sync::watch;

use super::transport::STREAM_CLIENT;
use crate::cmd::{self, Effect, Session, Shared};
use crate::resp::{Decoder, Protocol, Reply, Request};
use crate::server::shutdown::Shutdown;

/// How long connecting to the leader may take before the client is told to retry.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Serves a client connection of a cluster node until it closes.
pub async fn serve(stream: TcpStream, server: Arc<Shared>, mut shutdown: Shutdown) {
    let Some(cluster) = server.cluster.clone() else {
        return crate::server::conn::serve(stream, server, shutdown).await;
    };
    let _ = stream.set_nodelay(true);
    let mut stream = stream;
    let mut input = BytesMut::new();
    let mut local = LocalSession::new(&server, &stream);
    let mut decoder = Decoder::new(server.config.decode_limits());
    let mut status = cluster.watch_status();
    loop {
        if cluster.is_serving() {
            local.close(&server);
            return crate::server::conn::serve_buffered(stream, server, shutdown, input).await;
        }
        let leader = cluster.status().leader_id;
        if let Some(addr) = cluster.leader_addr() {
            if let Ok(Ok(mut up)) =
                tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&addr)).await
            {
                let _ = up.set_nodelay(true);
                if up.write_all(&[STREAM_CLIENT]).await.is_ok() {
                    let relay = Relay::new(&server, decoder, local);
                    relay.run(stream, input, up, leader, &mut shutdown).await;
                    return;
                }
            }
        }
        // No leader to reach: answer what is local, hold the rest until a leader appears.
        let mut out = BytesMut::new();
        let mut waiting = false;
        loop {
            let mut peek = input.clone();
            match decoder.decode(&mut peek) {
                Ok(Some(req)) if is_local(&req) => {
                    input = peek;
                    local.execute(&req, &server, &mut out);
                }
                Ok(Some(_)) => {
                    waiting = true;
                    break;
                }
                Ok(None) => break,
                Err(err) => {
                    Reply::Error(crate::error::RespError::new(format!(
                        "ERR Protocol error: {err}"
                    )))
                    .encode(local.proto, &mut out);
                    let _ = stream.write_all(&out).await;
                    local.close(&server);
                    return;
                }
            }
        }
        if !out.is_empty() && stream.write_all(&out).await.is_err() {
            local.close(&server);
            return;
        }
        let patience = tokio::time::sleep(cluster.election_timeout * 2);
        tokio::select! {
            read = stream.read_buf(&mut input) => {
                if matches!(read, Ok(0) | Err(_)) {
                    local.close(&server);
                    return;
                }
            }
            _ = status.changed() => {}
            _ = patience, if waiting => {
                // Still no leader: the first held command is refused.
                let mut out = BytesMut::new();
                if let Ok(Some(_)) = decoder.decode(&mut input) {
                    Reply::Error(super::NO_LEADER).encode(local.proto, &mut out);
                }
                if stream.write_all(&out).await.is_err() {
                    local.close(&server);
                    return;
                }
            }
            _ = shutdown.started() => {
                local.close(&server);
                return;
            }
        }
    }
}

/// Whether this node answers `req` itself on a follower (INFO: its own role and state).
fn is_local(req: &Request) -> bool {
    req.args
        .first()
        .is_some_and(|name| name.eq_ignore_ascii_case(b"INFO"))
}

/// The follower's own session for the commands it answers itself.
struct LocalSession {
    session: Session,
    proto: Protocol,
}

impl LocalSession {
    fn new(server: &Shared, stream: &TcpStream) -> Self {
        let info = server.clients.register_stream(stream);
        LocalSession {
            session: Session::new(info, &server.acl),
            proto: Protocol::Resp2,
        }
    }

    fn execute(&mut self, req: &Request, server: &Shared, out: &mut BytesMut) {
        self.session.proto = self.proto;
        let reply = match cmd::execute(req, server, &mut self.session).effect {
            Effect::Reply(reply) | Effect::Close(reply) => reply,
            // Only INFO, AUTH and HELLO run here; blocking or offloaded work is the leader's.
            Effect::Blocked { .. } | Effect::Offload(_) | Effect::Await(_) => {
                Reply::Error(super::NO_LEADER)
            }
        };
        reply.encode(self.proto, out);
    }

    /// Follows a forwarded HELLO's protocol version, so local replies match the leader's,
    /// and runs a forwarded AUTH or HELLO here too (reply dropped), so that the local INFO
    /// asks for the same password as the leader.
    fn note_forwarded(&mut self, req: &Request, server: &Shared) {
        let is_hello = req
            .args
            .first()
            .is_some_and(|name| name.eq_ignore_ascii_case(b"HELLO"));
        let is_auth = req
            .args
            .first()
            .is_some_and(|name| name.eq_ignore_ascii_case(b"AUTH"));
        let hello_auth = is_hello && req.args.iter().any(|a| a.eq_ignore_ascii_case(b"AUTH"));
        if is_auth || hello_auth || (is_hello && !self.session.authenticated) {
            let _ = cmd::execute(req, server, &mut self.session);
        }
        match req.args.get(1).map(|v| &v[..]) {
            Some(b"3") if is_hello => self.proto = Protocol::Resp3,
            Some(b"2") if is_hello => self.proto = Protocol::Resp2,
            _ => {}
        }
    }

    /// The ACL's answer on this node, before forwarding: a command or key the connection's
    /// user may not use is refused here (the leader checks again under its own ACL).
    fn acl_refusal(&mut self, req: &Request, server: &Shared) -> Option<crate::error::RespError> {
        if !self.session.authenticated {
            return None;
        }
        self.session.refresh_user(&server.acl);
        let refusal = cmd::acl_refusal(req, server, &self.session.user);
        if let Some(err) = &refusal {
            server.connections.count_denial(err);
        }
        refusal
    }

    fn close(&self, server: &Shared) {
        server.clients.unregister(self.session.id);
    }
}

/// One reply to send to the client, in request order.
enum Slot {
    /// Answered here.
    Ready(BytesMut),
    /// Forwarded; the leader's reply once it came.
    Upstream(Option<BytesMut>),
}

/// A client relayed to the leader.
struct Relay {
    server: Arc<Shared>,
    decoder: Decoder,
    local: LocalSession,
    slots: VecDeque<Slot>,
}

impl Relay {
    fn new(server: &Arc<Shared>, decoder: Decoder, local: LocalSession) -> Self {
        Relay {
            server: server.clone(),
            decoder,
            local,
            slots: VecDeque::new(),
        }
    }

    async fn run(
        mut self,
        client: TcpStream,
        mut input: BytesMut,
        up: TcpStream,
        leader: u64,
        shutdown: &mut Shutdown,
    ) {
        let mut status = self.server.cluster.as_ref().map(|c| c.watch_leader());
        let (mut crd, mut cwr) = client.into_split();
        let (mut urd, mut uwr) = up.into_split();
        let mut from_up = BytesMut::with_capacity(4096);
        let mut to_up = Vec::new();
        let mut to_client = Vec::new();
        let max_input = self.server.config.max_pending_input_bytes;
        loop {
            let mut broken = false;
            loop {
                match self.decoder.decode(&mut input) {
                    Ok(Some(req)) => {
                        if is_local(&req) {
                            let mut out = BytesMut::new();
                            self.local.execute(&req, &self.server, &mut out);
                            self.slots.push_back(Slot::Ready(out));
                        } else if let Some(err) = self.local.acl_refusal(&req, &self.server) {
                            let mut out = BytesMut::new();
                            Reply::Error(err).encode(self.local.proto, &mut out);
                            self.slots.push_back(Slot::Ready(out));
                        } else {
                            self.local.note_forwarded(&req, &self.server);
                            encode_request(&req, &mut to_up);
                            self.slots.push_back(Slot::Upstream(None));
                        }
                    }
                    Ok(None) => break,
                    Err(err) => {
                        let mut out = BytesMut::new();
                        Reply::Error(crate::error::RespError::new(format!(
                            "ERR Protocol error: {err}"
                        )))
                        .encode(self.local.proto, &mut out);
                        self.slots.push_back(Slot::Ready(out));
                        broken = true;
                        break;
                    }
                }
            }
            if !to_up.is_empty() {
                if uwr.write_all(&to_up).await.is_err() {
                    break;
                }
                to_up.clear();
            }
            while let Some(slot) = self.slots.front_mut() {
                match slot {
                    Slot::Ready(bytes) | Slot::Upstream(Some(bytes)) => {
                        to_client.extend_from_slice(bytes);
                        self.slots.pop_front();
                    }
                    Slot::Upstream(None) => break,
                }
            }
            if !to_client.is_empty() {
                if cwr.write_all(&to_client).await.is_err() {
                    break;
                }
                to_client.clear();
            }
            if broken {
                break;
            }
            tokio::select! {
                read = crd.read_buf(&mut input) => {
                    if matches!(read, Ok(0) | Err(_)) || input.len() > max_input {
                        break;
                    }
                }
                read = urd.read_buf(&mut from_up) => {
                    if matches!(read, Ok(0) | Err(_)) {
                        break;
                    }
                    loop {
                        match reply_len(&from_up, 0) {
                            Ok(Some(len)) => {
                                let reply = from_up.split_to(len);
                                self.fill(reply);
                            }
                            Ok(None) => break,
                            Err(()) => {
                                tracing::warn!("leader sent an unparsable reply; closing");
                                self.local.close(&self.server);
                                return;
                            }
                        }
                    }
                    if from_up.capacity() - from_up.len() < 1024 {
                        from_up.reserve(4096);
                    }
                }
                // This node no longer follows that leader (it moved, or this node was cut
                // off): close, so that the client reconnects and is routed again.
                moved = leader_moved(&mut status, leader) => if moved { break },
                _ = shutdown.started() => break,
            }
        }
        self.local.close(&self.server);
    }

    /// Puts a reply of the leader into the first forwarded slot without one.
    fn fill(&mut self, reply: BytesMut) {
        if let Some(slot) = self
            .slots
            .iter_mut()
            .find(|s| matches!(s, Slot::Upstream(None)))
        {
            *slot = Slot::Upstream(Some(reply));
        }
    }
}

/// Resolves with true once the known leader is no longer `leader`.
async fn leader_moved(status: &mut Option<watch::Receiver<u64>>, leader: u64) -> bool {
    let Some(rx) = status else {
        return std::future::pending().await;
    };
    match rx.changed().await {
        Ok(()) => *rx.borrow() != leader,
        Err(_) => std::future::pending().await,
    }
}

/// Encodes `req` as a RESP array of bulk strings.
fn encode_request(req: &Request, out: &mut Vec<u8>) {
    out.push(b'*');
    out.extend_from_slice(itoa::Buffer::new().format(req.args.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    for arg in &req.args {
        out.push(b'$');
        out.extend_from_slice(itoa::Buffer::new().format(arg.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// The length of the one RESP2/RESP3 value at `at..` of `buf`: Ok(None) while incomplete,
/// Err for bytes that are no RESP value.
fn reply_len(buf: &[u8], at: usize) -> Result<Option<usize>, ()> {
    let Some(&kind) = buf.get(at) else {
        return Ok(None);
    };
    let Some(eol) = buf[at..].windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    let line = &buf[at + 1..at + eol];
    let after = at + eol + 2;
    let number = || -> Result<i64, ()> {
        std::str::from_utf8(line)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(())
    };
    match kind {
        b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => Ok(Some(after - at)),
        b'$' | b'!' | b'=' => {
            let n = number()?;
            if n < 0 {
                return Ok(Some(after - at));
            }
            let end = after + n as usize + 2;
            Ok((buf.len() >= end).then_some(end - at))
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let n = number()?;
            if n < 0 {
                return Ok(Some(after - at));
            }
            let items = if matches!(kind, b'%' | b'|') {
                n as usize * 2
            } else {
                n as usize
            };
            let mut pos = after;
            for _ in 0..items {
                match reply_len(buf, pos)? {
                    Some(len) => pos += len,
                    None => return Ok(None),
                }
            }
            if kind == b'|' {
                // An attribute map precedes the value it describes.
                return Ok(reply_len(buf, pos)?.map(|len| pos + len - at));
            }
            Ok(Some(pos - at))
        }
        _ => Err(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_lengths() {
        assert_eq!(reply_len(b"+OK\r\n", 0), Ok(Some(5)));
        assert_eq!(reply_len(b"+OK\r", 0), Ok(None));
        assert_eq!(reply_len(b"$-1\r\n", 0), Ok(Some(5)));
        assert_eq!(reply_len(b"$3\r\nabc\r\n:1\r\n", 0), Ok(Some(9)));
        assert_eq!(reply_len(b"$3\r\nab", 0), Ok(None));
        assert_eq!(reply_len(b"*2\r\n:1\r\n$1\r\nx\r\n", 0), Ok(Some(15)));
        assert_eq!(reply_len(b"*2\r\n:1\r\n", 0), Ok(None));
        assert_eq!(reply_len(b"%1\r\n+a\r\n:1\r\n", 0), Ok(Some(12)));
        assert_eq!(reply_len(b"*-1\r\n", 0), Ok(Some(5)));
        assert_eq!(reply_len(b"?\r\n", 0), Err(()));
    }

    #[test]
    fn requests_encode_as_bulk_arrays() {
        let req = Request {
            args: vec![
                bytes::Bytes::from_static(b"GET"),
                bytes::Bytes::from_static(b"k"),
            ],
        };
        let mut out = Vec::new();
        encode_request(&req, &mut out);
        assert_eq!(out, b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
    }
}
