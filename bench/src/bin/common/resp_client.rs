//! The minimal async RESP2 client `baton-bench` and `baton-scenarios` share.
//!
//! Both tools drive baton and Redis with pipelined batches and blocking commands, which a
//! general client library hides, so they speak RESP2 by hand: [`encode`] / [`Conn::push`]
//! write requests as arrays of bulk strings, [`Conn::flush`] sends them, and
//! [`Conn::read`] parses one reply into a [`Reply`] (array contents are skipped).
//!
//! Each binary includes this file as a module (`#[path = "common/resp_client.rs"] mod
//! resp_client;`), so it stays out of the server library's API; it sits in a directory
//! without a `main.rs`, so cargo does not take it for a binary of its own. A helper that
//! only one tool needs belongs in that tool (an `impl Conn` block there works too).

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf, ReuniteError};
use tokio::net::TcpStream;

/// Errors of these tools: I/O, protocol surprises and setup failures, all as text.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Largest bulk reply accepted: a guard against a corrupt length, far above any reply the
/// tools expect (INFO is the biggest).
const MAX_BULK: usize = 64 * 1024 * 1024;

/// One parsed reply; array contents are read and discarded (no caller needs them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    /// `+...`
    Status(Vec<u8>),
    /// `-...`
    Error(String),
    /// `:n`
    Int(i64),
    /// `$n` with its bytes.
    Bulk(Vec<u8>),
    /// `$-1` or `*-1`.
    Nil,
    /// `*n`: only the element count is kept.
    Array(usize),
}

/// Makes an `InvalidData` error for a reply this client cannot read.
fn protocol_error(what: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.into())
}

/// Parses the decimal integer of a RESP header line.
fn parse_int(digits: &[u8]) -> std::io::Result<i64> {
    std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| protocol_error(format!("bad integer {:?}", String::from_utf8_lossy(digits))))
}

/// Appends one command as a RESP array of bulk strings to `out`.
pub(crate) fn encode(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.push(b'*');
    out.extend_from_slice(itoa::Buffer::new().format(args.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    for arg in args {
        out.push(b'$');
        out.extend_from_slice(itoa::Buffer::new().format(arg.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// Opens a TCP connection with Nagle off (the requests are small and latency matters).
///
/// # Errors
///
/// The connect error, prefixed with the address; or a failure to set `TCP_NODELAY`.
pub(crate) async fn dial(addr: &str) -> Result<TcpStream, BoxError> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// One connection: a buffered reader for replies and an output buffer for requests.
pub(crate) struct Conn {
    /// Reply side.
    rd: BufReader<OwnedReadHalf>,
    /// Request side.
    wr: OwnedWriteHalf,
    /// Requests encoded but not yet written.
    out: Vec<u8>,
    /// Scratch buffer for header lines.
    line: Vec<u8>,
}

impl Conn {
    /// Connects with Nagle off (see [`dial`]).
    ///
    /// # Errors
    ///
    /// Those of [`dial`].
    pub(crate) async fn connect(addr: &str) -> Result<Self, BoxError> {
        let (rd, wr) = dial(addr).await?.into_split();
        Ok(Conn {
            rd: BufReader::with_capacity(64 * 1024, rd),
            wr,
            out: Vec::with_capacity(16 * 1024),
            line: Vec::with_capacity(128),
        })
    }

    /// Gives the socket back, dropping the buffers (replies not yet read are lost).
    ///
    /// # Errors
    ///
    /// None in practice: the two halves always come from the same stream.
    #[allow(dead_code, reason = "only baton-scenarios keeps idle sockets")]
    pub(crate) fn into_stream(self) -> Result<TcpStream, ReuniteError> {
        self.rd.into_inner().reunite(self.wr)
    }

    /// Encodes one command into the output buffer.
    pub(crate) fn push(&mut self, args: &[&[u8]]) {
        encode(&mut self.out, args);
    }

    /// Writes every encoded request.
    ///
    /// # Errors
    ///
    /// The socket's write error.
    pub(crate) async fn flush(&mut self) -> std::io::Result<()> {
        self.wr.write_all(&self.out).await?;
        self.out.clear();
        Ok(())
    }

    /// Reads one header line (`\r\n` stripped) into `self.line`.
    async fn read_line(&mut self) -> std::io::Result<()> {
        self.line.clear();
        let n = self.rd.read_until(b'\n', &mut self.line).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "server closed the connection",
            ));
        }
        if self.line.len() < 3 || !self.line.ends_with(b"\r\n") {
            return Err(protocol_error("reply line without CRLF"));
        }
        self.line.truncate(self.line.len() - 2);
        Ok(())
    }

    /// Reads one complete reply (arrays are skipped element by element, nested too).
    ///
    /// # Errors
    ///
    /// `UnexpectedEof` when the server closes the connection, `InvalidData` for a reply
    /// that is not RESP2 (or a bulk longer than 64 MiB), and the socket's read error.
    pub(crate) async fn read(&mut self) -> std::io::Result<Reply> {
        let top = self.read_one().await?;
        let mut pending = match top {
            Reply::Array(n) => n,
            _ => return Ok(top),
        };
        while pending > 0 {
            pending -= 1;
            if let Reply::Array(n) = self.read_one().await? {
                pending = pending.saturating_add(n);
            }
        }
        Ok(top)
    }

    /// Reads one RESP2 value; for an array only its header.
    async fn read_one(&mut self) -> std::io::Result<Reply> {
        self.read_line().await?;
        let kind = self.line[0];
        let body = &self.line[1..];
        match kind {
            b'+' => Ok(Reply::Status(body.to_vec())),
            b'-' => Ok(Reply::Error(String::from_utf8_lossy(body).into_owned())),
            b':' => Ok(Reply::Int(parse_int(body)?)),
            b'$' => {
                let len = parse_int(body)?;
                if len < 0 {
                    return Ok(Reply::Nil);
                }
                let len = usize::try_from(len)
                    .ok()
                    .filter(|&l| l <= MAX_BULK)
                    .ok_or_else(|| protocol_error("bulk reply too long"))?;
                let mut data = vec![0u8; len + 2];
                self.rd.read_exact(&mut data).await?;
                if !data.ends_with(b"\r\n") {
                    return Err(protocol_error("bulk reply without CRLF"));
                }
                data.truncate(len);
                Ok(Reply::Bulk(data))
            }
            b'*' => {
                let len = parse_int(body)?;
                if len < 0 {
                    return Ok(Reply::Nil);
                }
                let len = usize::try_from(len).map_err(|_| protocol_error("bad array length"))?;
                Ok(Reply::Array(len))
            }
            other => Err(protocol_error(format!(
                "unexpected reply type byte {:?}",
                char::from(other)
            ))),
        }
    }

    /// Sends one command and reads its reply.
    ///
    /// # Errors
    ///
    /// Those of [`Conn::flush`] and [`Conn::read`].
    pub(crate) async fn call(&mut self, args: &[&[u8]]) -> std::io::Result<Reply> {
        self.push(args);
        self.flush().await?;
        self.read().await
    }
}
