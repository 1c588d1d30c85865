//! Typed errors, one enum per layer.
//!
//! - [`RespError`]: a reply with a Redis prefix (`ERR`, `WRONGTYPE`, `NOSCRIPT`, ...); the
//!   connection stays open.
//! - [`ProtoError`]: a malformed or oversized frame; the connection gets
//!   `-ERR Protocol error: ...` and is closed.
//! - [`StartupError`]: the server cannot start (bad config, port in use, damaged data dir).

use std::borrow::Cow;

/// An error reply, sent to the client as `-<text>\r\n`. `text` starts with its Redis prefix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text}")]
pub struct RespError {
    text: Cow<'static, str>,
}

impl RespError {
    /// An error whose full text (prefix included) is a static string.
    pub const fn fixed(text: &'static str) -> Self {
        RespError {
            text: Cow::Borrowed(text),
        }
    }

    /// An error with a computed text; `text` must start with its prefix (`ERR ...`).
    pub fn new(text: impl Into<Cow<'static, str>>) -> Self {
        RespError { text: text.into() }
    }

    /// The full text, prefix included, without the leading `-`.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// `-ERR syntax error`.
    pub const SYNTAX: RespError = RespError::fixed("ERR syntax error");
    /// `-ERR value is not an integer or out of range`.
    pub const NOT_INTEGER: RespError =
        RespError::fixed("ERR value is not an integer or out of range");
    /// `-WRONGTYPE ...`: a command against a key of another kind.
    pub const WRONGTYPE: RespError =
        RespError::fixed("WRONGTYPE Operation against a key holding the wrong kind of value");
    /// `-ERR invalid ttl`.
    pub const INVALID_TTL: RespError = RespError::fixed("ERR invalid ttl");
    /// `-ERR invalid owner`.
    pub const INVALID_OWNER: RespError = RespError::fixed("ERR invalid owner");
    /// `-ERR invalid key`.
    pub const INVALID_KEY: RespError = RespError::fixed("ERR invalid key");
    /// `-ERR invalid wait`.
    pub const INVALID_WAIT: RespError = RespError::fixed("ERR invalid wait");
    /// `-ERR invalid numkeys`.
    pub const INVALID_NUMKEYS: RespError = RespError::fixed("ERR invalid numkeys");
    /// `-ERR owner already holds this key in another mode`.
    pub const OTHER_MODE: RespError =
        RespError::fixed("ERR owner already holds this key in another mode");
    /// `-ERR max waiters reached`.
    pub const MAX_WAITERS: RespError = RespError::fixed("ERR max waiters reached");
    /// `-ERR max clients reached`.
    pub const MAX_CLIENTS: RespError = RespError::fixed("ERR max clients reached");
    /// `-ERR keyspace flushed`: the reply of every waiter when FLUSHALL/FLUSHDB runs.
    pub const FLUSHED: RespError = RespError::fixed("ERR keyspace flushed");
    /// `-ERR semaphore deleted`: the reply of every waiter of a deleted semaphore.
    pub const SEM_DELETED: RespError = RespError::fixed("ERR semaphore deleted");
    /// `-ERR no such semaphore`.
    pub const NO_SUCH_SEM: RespError = RespError::fixed("ERR no such semaphore");
    /// `-ERR permits exceed capacity`.
    pub const PERMITS_EXCEED: RespError = RespError::fixed("ERR permits exceed capacity");
    /// `-ERR owner already holds other permits`.
    pub const OTHER_PERMITS: RespError = RespError::fixed("ERR owner already holds other permits");
    /// `-ERR invalid capacity`.
    pub const INVALID_CAPACITY: RespError = RespError::fixed("ERR invalid capacity");
    /// `-ERR invalid permits`.
    pub const INVALID_PERMITS: RespError = RespError::fixed("ERR invalid permits");
    /// `-NOAUTH Authentication required.`
    pub const NOAUTH: RespError = RespError::fixed("NOAUTH Authentication required.");

    /// `-ERR wrong number of arguments for 'name' command` (name in lower case, as Redis).
    pub fn arity(name: &str) -> Self {
        RespError::new(format!(
            "ERR wrong number of arguments for '{}' command",
            name.to_ascii_lowercase()
        ))
    }

    /// `-ERR unknown command 'X', with args beginning with: 'a' 'b' ` as Redis words it.
    pub fn unknown_command(name: &[u8], args: &[bytes::Bytes]) -> Self {
        let mut text = format!(
            "ERR unknown command '{}', with args beginning with: ",
            printable(name, 128)
        );
        for arg in args.iter().take(16) {
            text.push('\'');
            text.push_str(&printable(arg, 128));
            text.push_str("' ");
        }
        RespError::new(text)
    }
}

/// Lossy, single-line rendering of client bytes for an error text (Redis cuts at 128 bytes
/// and never lets a newline into an error line).
pub fn printable(bytes: &[u8], max: usize) -> String {
    let cut = &bytes[..bytes.len().min(max)];
    String::from_utf8_lossy(cut)
        .chars()
        .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
        .collect()
}

/// A frame that breaks the protocol or its limits. The connection replies
/// `-ERR Protocol error: <self>` and closes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    /// A bulk length that is not a number, negative (`$-1` included: a request has no
    /// nil arguments) or over `--max-bulk-bytes`.
    #[error("invalid bulk length")]
    InvalidBulkLength,
    /// An array count that is not a number or over `--max-args`.
    #[error("invalid multibulk length")]
    InvalidMultibulkLength,
    /// The byte where a `$` was expected inside a command array (a byte that is not
    /// printable ASCII shows as `?`, so the error stays one line).
    #[error("expected '$', got '{0}'")]
    ExpectedBulk(char),
    /// An inline command line longer than `--max-inline-bytes`.
    #[error("too big inline request")]
    InlineTooBig,
    /// Quotes in an inline command that do not balance.
    #[error("unbalanced quotes in request")]
    UnbalancedQuotes,
    /// A `*` header line with no `\r\n` in its first 64 KiB.
    #[error("too big mbulk count string")]
    MultibulkCountTooBig,
    /// A `$` header line with no `\r\n` in its first 64 KiB.
    #[error("too big bulk count string")]
    BulkCountTooBig,
    /// Any other malformed frame, with the decoder's words.
    #[error("{0}")]
    Malformed(String),
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The listening socket could not be bound. The text ends with what to do about it
    /// (a busy port names the port and `--port`).
    #[error(
        "cannot listen on {addr}: {source}{hint}",
        hint = bind_hint(.addr, .source, "--port")
    )]
    Bind {
        /// The address asked for.
        addr: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The HTTP listener (`--http-port`) could not be bound; the text ends with what to do
    /// about it (a busy port names the port and `--http-port`).
    #[error(
        "cannot listen for HTTP (/metrics, /health, /ready) on {addr}: {source}{hint}",
        hint = bind_hint(.addr, .source, "--http-port")
    )]
    HttpBind {
        /// The address asked for.
        addr: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A TLS certificate or key file is missing or invalid (`--tls-cert-file`,
    /// `--tls-key-file`, `--tls-ca-cert-file`).
    #[error("TLS: {}: {reason}", file.display())]
    Tls {
        /// The file.
        file: std::path::PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The `--aclfile` cannot be read or has bad lines (each named `FILE:LINE: what.`).
    #[error("Aborting startup because of ACL errors: {0}")]
    Acl(String),
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The data directory could not be read or is damaged.
    #[error("{0}")]
    Persistence(String),
    /// A data file is damaged before its end (not a torn tail that a crash leaves).
    #[error(
        "{}: {reason} at byte offset {offset}; start with --repair to drop everything after \
         offset {offset}",
        file.display()
    )]
    CorruptLog {
        /// The damaged file.
        file: std::path::PathBuf,
        /// Offset of the first bad record in it.
        offset: u64,
        /// What is wrong with that record.
        reason: String,
    },
    /// Another process holds the data directory's lock.
    #[error(
        "data directory {} is in use by another process (pid {pid}, see {}/LOCK): two \
         servers on one directory would grant the same lock twice; give each server its \
         own --dir",
        dir.display(),
        dir.display()
    )]
    DirInUse {
        /// The data directory.
        dir: std::path::PathBuf,
        /// The PID the other process wrote into the lock file (`unknown` if none).
        pid: String,
    },
    /// The append-only log failed under `--appendfsync always`: the server stops rather
    /// than serve a state it could not persist.
    #[error("append-only log failed under appendfsync always: {0}; stopping")]
    LogFailed(String),
    /// A file or directory of the data directory could not be read or written.
    #[error("{}: {source}", path.display())]
    DataDir {
        /// The file or directory.
        path: std::path::PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// What a person can do when `addr` cannot be bound, as a `; ...` suffix (empty when there
/// is nothing useful to add). `flag` is the flag that chose the port.
fn bind_hint(addr: &str, source: &std::io::Error, flag: &str) -> String {
    let port = addr.rsplit_once(':').map_or(addr, |(_, port)| port);
    let env = format!("BATON_{}", flag.trim_start_matches('-').replace('-', "_")).to_uppercase();
    match source.kind() {
        std::io::ErrorKind::AddrInUse => format!(
            "; another process (a Redis server?) already listens on port {port}: stop it, \
             or start baton on another port with {flag} (or {env})"
        ),
        std::io::ErrorKind::PermissionDenied => format!(
            "; port {port} needs privileges (ports below 1024 need root or \
             CAP_NET_BIND_SERVICE): choose another one with {flag}"
        ),
        std::io::ErrorKind::AddrNotAvailable => {
            "; that address is not one of this machine's: choose another with --bind".into()
        }
        _ => String::new(),
    }
}
