//! Configuration: every flag also comes from an environment variable `BATON_<FLAG>` and
//! from the `--config` TOML file (flag > env > file > default; see `crate::settings`).
//!
//! Each limit documents its default, its worst case and the error a client gets at it.
//! Add a setting by adding a field here with `#[arg(long, env = "BATON_...")]`; `Config` is
//! passed by `Arc` to everything that needs it.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// The protocol limits that request decoding (`resp::decode`) enforces (see
/// docs/protocol.md "Errors"); defined here, beside the flags that set them, so that the
/// configuration depends on nothing above it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest bulk string, in bytes (exactly this size is allowed). Default 8 MiB.
    pub max_bulk_bytes: usize,
    /// Most arguments in one command (name included). Default 1 048 576.
    pub max_args: usize,
    /// Longest inline command line, in bytes. Default 64 KiB.
    pub max_inline_bytes: usize,
}

impl DecodeLimits {
    /// The defaults, also the flags' defaults.
    pub const DEFAULT: DecodeLimits = DecodeLimits {
        max_bulk_bytes: 8 * 1024 * 1024,
        max_args: 1024 * 1024,
        max_inline_bytes: 64 * 1024,
    };
}

/// The decode limits' defaults, short for the flags below.
const LIMITS: DecodeLimits = DecodeLimits::DEFAULT;

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits::DEFAULT
    }
}

/// When the append-only log is flushed to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum AppendFsync {
    /// Every acknowledged change is on disk before its reply (group commit).
    #[default]
    Always,
    /// Flushed once a second: up to about a second of changes can be lost in a crash.
    Everysec,
    /// Flushing is left to the OS.
    No,
}

/// On or off, for `--persistence`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Switch {
    /// Enabled.
    #[default]
    On,
    /// Disabled.
    Off,
}

/// Yes or no, for the flags Redis spells that way (`--protected-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum YesNo {
    /// Enabled.
    Yes,
    /// Disabled.
    No,
}

/// Whether TLS clients must present a certificate, for `--tls-auth-clients` (Redis's
/// `tls-auth-clients`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TlsAuthClients {
    /// A certificate signed by `--tls-ca-cert-file` is required (mutual TLS).
    Yes,
    /// No certificate is asked for.
    No,
    /// A certificate is verified if the client presents one; clients without one connect.
    Optional,
}

/// baton's configuration (flags, `BATON_*` env vars, embedded defaults).
#[derive(Debug, Clone, Parser)]
#[command(
    name = "baton",
    version,
    about = "A fair, fenced, durable lock server that speaks RESP"
)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "BATON_BIND", default_value = "127.0.0.1")]
    pub bind: String,

    /// TCP port to listen on (0 picks a free one; with --tls-port set, 0 turns the plain
    /// port off).
    #[arg(long, env = "BATON_PORT", default_value_t = 6379)]
    pub port: u16,

    /// TLS port for clients, on the --bind address beside the plain port (unset: no TLS;
    /// 0 picks a free one). Needs --tls-cert-file and --tls-key-file. Not in cluster mode.
    #[arg(long, env = "BATON_TLS_PORT")]
    pub tls_port: Option<u16>,

    /// The server's certificate chain (PEM), for --tls-port.
    #[arg(long, env = "BATON_TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,

    /// The server certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1), for --tls-port.
    #[arg(long, env = "BATON_TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,

    /// CA certificates (PEM) that sign the clients' certificates, for --tls-auth-clients.
    #[arg(long, env = "BATON_TLS_CA_CERT_FILE")]
    pub tls_ca_cert_file: Option<PathBuf>,

    /// Client certificates on the TLS port: `yes` requires one signed by
    /// --tls-ca-cert-file (mutual TLS), `optional` verifies one if presented, `no` asks for
    /// none (unset: `yes` when --tls-ca-cert-file is given, else `no`).
    #[arg(long, env = "BATON_TLS_AUTH_CLIENTS", value_enum)]
    pub tls_auth_clients: Option<TlsAuthClients>,

    /// Listen backlog (Redis's tcp-backlog; the kernel caps it at net.core.somaxconn).
    /// tokio's 1024 overflowed when thousands of clients connected at once: dropped SYNs
    /// are retried only after a second.
    #[arg(long, env = "BATON_TCP_BACKLOG", default_value_t = 4096)]
    pub tcp_backlog: u32,

    /// Lock table shards, a power of two (0: 16 per core, rounded up to a power of two).
    #[arg(long, env = "BATON_SHARDS", default_value_t = 0)]
    pub shards: usize,

    /// Worker threads of the runtime (0: one per core).
    #[arg(long, env = "BATON_THREADS", default_value_t = 0)]
    pub threads: usize,

    /// Most open client connections. At the limit a new connection gets
    /// `-ERR max clients reached` and is closed. Worst case about 70 KiB per idle connection.
    #[arg(long, env = "BATON_MAX_CLIENTS", default_value_t = 10_000)]
    pub max_clients: usize,

    /// Most blocked requests (WAIT) server-wide; over it: `-ERR max waiters reached`.
    /// An MLOCK counts as one. Worst case about 300 bytes per waiter.
    #[arg(long, env = "BATON_MAX_WAITERS", default_value_t = 1_000_000)]
    pub max_waiters: usize,

    /// Longest key, in bytes; longer or empty keys get `-ERR invalid key`.
    #[arg(long, env = "BATON_MAX_KEY_BYTES", default_value_t = 1024)]
    pub max_key_bytes: usize,

    /// Longest lease, in ms; longer (or below 1) gets `-ERR invalid ttl`.
    #[arg(long, env = "BATON_MAX_TTL_MS", default_value_t = 86_400_000)]
    pub max_ttl_ms: u64,

    /// Largest bulk string in a request (exactly this size is allowed); over it the
    /// connection gets `-ERR Protocol error: invalid bulk length` and is closed.
    #[arg(long, env = "BATON_MAX_BULK_BYTES", default_value_t = LIMITS.max_bulk_bytes)]
    pub max_bulk_bytes: usize,

    /// Most arguments in one command; over it: `-ERR Protocol error: invalid multibulk
    /// length` and the connection is closed.
    #[arg(long, env = "BATON_MAX_ARGS", default_value_t = LIMITS.max_args)]
    pub max_args: usize,

    /// Longest inline command line; over it: `-ERR Protocol error: too big inline request`.
    #[arg(long, env = "BATON_MAX_INLINE_BYTES", default_value_t = LIMITS.max_inline_bytes)]
    pub max_inline_bytes: usize,

    /// Input read but not yet executed per connection (pipelined behind a blocked WAIT);
    /// over it the connection is closed. Worst case memory per connection.
    #[arg(long, env = "BATON_MAX_PENDING_INPUT_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub max_pending_input_bytes: usize,

    /// Replies a client does not read, per connection; over it the connection is closed.
    #[arg(long, env = "BATON_MAX_UNREAD_REPLY_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub max_unread_reply_bytes: usize,

    /// Data directory for the append-only log and snapshots.
    #[arg(long, env = "BATON_DIR", default_value = "./data")]
    pub dir: PathBuf,

    /// Keep state on disk (`off`: a restart forgets every hold; see --restart-delay-ms).
    #[arg(long, env = "BATON_PERSISTENCE", value_enum, default_value_t = Switch::On)]
    pub persistence: Switch,

    /// When the log is flushed to disk.
    #[arg(long, env = "BATON_APPENDFSYNC", value_enum, default_value_t = AppendFsync::Always)]
    pub appendfsync: AppendFsync,

    /// Refuse grants for this long after start (with persistence off), so holds given out
    /// before a crash run out first.
    #[arg(long, env = "BATON_RESTART_DELAY_MS")]
    pub restart_delay_ms: Option<u64>,

    /// Start even if the log is damaged in the middle, dropping what follows the damage.
    #[arg(long, env = "BATON_REPAIR", default_value_t = false)]
    pub repair: bool,

    /// Password clients must give with AUTH or HELLO ... AUTH.
    #[arg(long, env = "BATON_REQUIREPASS")]
    pub requirepass: Option<String>,

    /// File whose first line is the password (instead of --requirepass, which other users
    /// can read in `ps`). Read once at start, into `requirepass`: an unreadable or empty
    /// file stops the start.
    #[arg(long, env = "BATON_REQUIREPASS_FILE", conflicts_with = "requirepass")]
    pub requirepass_file: Option<PathBuf>,

    /// ACL users, one `user NAME rule...` line each (Redis's ACL file syntax); ACL SAVE
    /// writes it and ACL LOAD reads it again. A bad line stops the start, named.
    #[arg(long, env = "BATON_ACLFILE")]
    pub aclfile: Option<PathBuf>,

    /// A script running longer than this is stopped with
    /// `-ERR Script killed: exceeded the time limit of N ms`.
    #[arg(long, env = "BATON_LUA_TIME_LIMIT_MS", default_value_t = 5_000)]
    pub lua_time_limit_ms: u64,

    /// Memory all scripts together may use (bytes, split equally between the
    /// --lua-threads VMs); past its share a script fails with `not enough memory`.
    /// 0: no limit.
    #[arg(long, env = "BATON_LUA_MEMORY_BYTES", default_value_t = 256 * 1024 * 1024)]
    pub lua_memory_bytes: usize,

    /// Threads that run scripts (and KEYS/SCAN), apart from the I/O workers (0: one per
    /// core, at least 2). At most this many scripts run at once; more wait their turn.
    #[arg(long, env = "BATON_LUA_THREADS", default_value_t = 0)]
    pub lua_threads: usize,

    /// Most keys one command may name (MLOCK, MUNLOCK, DEL, EXISTS, EVAL's numkeys); more
    /// get `-ERR too many keys (max N)`. Bounds the time one command holds shards (0: no
    /// limit).
    #[arg(long, env = "BATON_MAX_KEYS_PER_COMMAND", default_value_t = 1024)]
    pub max_keys_per_command: usize,

    /// TCP keepalive interval in seconds for client connections, as Redis's tcp-keepalive
    /// (0: off). A vanished client is noticed after about twice this time and its waits
    /// and undelivered grants are undone.
    #[arg(long, env = "BATON_TCP_KEEPALIVE", default_value_t = 300)]
    pub tcp_keepalive: u64,

    /// Close a client after this many seconds without a request, as Redis's `timeout`
    /// (0: never). A client blocked in a WAIT is not idle.
    #[arg(long, env = "BATON_TIMEOUT", default_value_t = 0)]
    pub timeout: u64,

    /// Protected mode, as Redis's: with no password set, only loopback clients are served;
    /// others get `-DENIED ...` (why, and how to change it) and are closed.
    #[arg(long, env = "BATON_PROTECTED_MODE", value_enum, default_value_t = YesNo::Yes)]
    pub protected_mode: YesNo,

    /// Budget for all client connections' buffers together (bytes, 0: none). Beyond it the
    /// connection with the largest buffers is closed, as Redis 7's maxmemory-clients.
    #[arg(long, env = "BATON_MAXMEMORY_CLIENTS", default_value_t = 0)]
    pub maxmemory_clients: usize,

    /// Memory limit for the keyspace (bytes, 0: none): while the server's memory, less
    /// client buffers, is over it, new grants and SETs get
    /// `-OOM command not allowed when used memory > 'maxmemory'.` Held locks are never
    /// evicted; releases always work.
    #[arg(long, env = "BATON_MAXMEMORY", default_value_t = 0)]
    pub maxmemory: usize,

    /// Cluster mode: this node's id in `--peers` (needs `--peers`; see docs/replication.md).
    #[arg(long, env = "BATON_NODE_ID", requires = "peers")]
    pub node_id: Option<u64>,

    /// Cluster mode: every node as `id=host:port`, comma-separated. The address of this
    /// node's own id is where it listens for its peers; the others are where it reaches them.
    /// Names the members only when a new data directory bootstraps; afterwards the
    /// membership is in the Raft storage (CLUSTER ADDNODE / REMOVENODE change it).
    #[arg(long, env = "BATON_PEERS", requires = "node_id")]
    pub peers: Option<String>,

    /// Cluster mode: this node joins a running cluster (after `CLUSTER ADDNODE` on it)
    /// instead of bootstrapping one from `--peers`: it starts with no membership, never
    /// campaigns on its own, and takes its state from the leader's snapshot. Ignored once
    /// the data directory holds a Raft state.
    #[arg(long, env = "BATON_JOIN", requires = "node_id")]
    pub join: bool,

    /// Cluster mode: Raft heartbeat interval in ms (one Raft tick).
    #[arg(long, env = "BATON_HEARTBEAT_MS", default_value_t = 50)]
    pub heartbeat_ms: u64,

    /// Cluster mode: election timeout in ms; a follower that hears no leader for a random
    /// time between this and twice this starts an election.
    #[arg(long, env = "BATON_ELECTION_TIMEOUT_MS", default_value_t = 500)]
    pub election_timeout_ms: u64,

    /// Cluster mode: a snapshot of the table replaces the Raft log every this many entries.
    #[arg(long, env = "BATON_RAFT_SNAPSHOT_ENTRIES", default_value_t = 10_000)]
    pub raft_snapshot_entries: u64,

    /// Log filter (error, warn, info, debug, trace or a tracing directive).
    #[arg(long, env = "BATON_LOG_LEVEL", default_value = "info")]
    pub log_level: String,

    /// TOML file of settings, keyed by these flags' long names (`max-clients = 500`).
    /// Precedence: flag > BATON_* variable > file > default (see docs/operations.md).
    #[arg(long, env = "BATON_CONFIG")]
    pub config: Option<PathBuf>,

    /// Port of the HTTP listener for /metrics, /health and /ready, on the --bind address
    /// (unset: no listener; 0 picks a free one).
    #[arg(long, env = "BATON_HTTP_PORT")]
    pub http_port: Option<u16>,

    /// Every setting's effective value and source (filled by `settings::load`; empty when
    /// the config was built in code).
    #[arg(skip)]
    pub effective: Vec<crate::settings::Setting>,
}

impl Default for Config {
    fn default() -> Self {
        Config::parse_from(["baton"])
    }
}

impl Config {
    /// Defaults for tests and embedding: port 0 on loopback, persistence off.
    pub fn ephemeral() -> Self {
        Config {
            port: 0,
            persistence: Switch::Off,
            ..Config::default()
        }
    }

    /// The shard count actually used: `--shards`, or 16 per core rounded to a power of two.
    pub fn shard_count(&self) -> usize {
        let wanted = if self.shards == 0 {
            16 * std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            self.shards
        };
        wanted.next_power_of_two()
    }

    /// The number of script threads: `--lua-threads`, or one per core and at least 2.
    pub fn lua_thread_count(&self) -> usize {
        if self.lua_threads > 0 {
            return self.lua_threads;
        }
        std::thread::available_parallelism().map_or(2, |n| n.get().max(2))
    }

    /// The client-certificate policy in force: `--tls-auth-clients`, or Redis's default
    /// (`yes` when a CA is given, else `no`).
    pub fn tls_auth_clients(&self) -> TlsAuthClients {
        match (self.tls_auth_clients, &self.tls_ca_cert_file) {
            (Some(auth), _) => auth,
            (None, Some(_)) => TlsAuthClients::Yes,
            (None, None) => TlsAuthClients::No,
        }
    }

    /// Whether the plain port is served: always, except `--port 0` with `--tls-port` set.
    pub fn plain_port_on(&self) -> bool {
        self.port != 0 || self.tls_port.is_none()
    }

    /// The limits the request decoder enforces.
    pub fn decode_limits(&self) -> DecodeLimits {
        DecodeLimits {
            max_bulk_bytes: self.max_bulk_bytes,
            max_args: self.max_args,
            max_inline_bytes: self.max_inline_bytes,
        }
    }
}
