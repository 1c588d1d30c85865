//! Command metadata as data: name, arity, flags, key positions, group, summary and argument
//! docs. It drives arity errors and `COMMAND COUNT|INFO|DOCS|LIST` (so redis-cli shows
//! hints), and its [`CommandId`] routes the parse. To add a command: a variant in its
//! family's id enum (the family's `parse` then fails to compile until it handles it) and an
//! entry here.

use super::admin::AdminId;
use super::connection::ConnId;
use super::keyspace::{KeyId, TableId};
use super::lock::LockId;
use super::script::ScriptId;
use super::sem::SemId;
use super::string::StrId;

/// One argument's documentation, as COMMAND DOCS shows it.
#[derive(Debug)]
pub struct ArgDoc {
    /// Argument name.
    pub name: &'static str,
    /// `key`, `string`, `integer`, `pure-token`, `block` or `oneof`.
    pub kind: &'static str,
    /// The literal token before the value (`WAIT`), if any.
    pub token: Option<&'static str>,
    /// May be left out.
    pub optional: bool,
    /// May repeat.
    pub multiple: bool,
    /// Nested arguments of a `block` or `oneof`.
    pub args: &'static [ArgDoc],
}

/// Which command a [`Spec`] describes, by family: the family's parser takes the inner id
/// and matches it exhaustively, and `cmd::parse` routes on the outer variant, so no string
/// is compared to dispatch and a command without a parser does not compile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandId {
    /// `lock.rs`.
    Lock(LockId),
    /// `sem.rs`.
    Sem(SemId),
    /// `string.rs`.
    Str(StrId),
    /// `keyspace.rs`, commands on named keys.
    Key(KeyId),
    /// `keyspace.rs`, commands over the whole table.
    Table(TableId),
    /// `connection.rs`.
    Conn(ConnId),
    /// `admin.rs`.
    Admin(AdminId),
    /// `script.rs`.
    Script(ScriptId),
    /// `cluster.rs` (CLUSTER, one command with subcommands).
    Cluster,
    /// `acl.rs` (ACL, one command with subcommands; its spec lives there).
    Acl,
}

/// A command's metadata.
#[derive(Debug)]
pub struct Spec {
    /// Upper-case name as matched.
    pub name: &'static str,
    /// Which parser reads its arguments.
    pub id: CommandId,
    /// Redis arity: positive = exact count with the name, negative = at least -arity.
    pub arity: i32,
    /// Flags (`write`, `readonly`, `fast`, `blocking`, ...).
    pub flags: &'static [&'static str],
    /// First key position (0: none).
    pub first_key: i32,
    /// Last key position (-1: the last argument).
    pub last_key: i32,
    /// Step between keys.
    pub step: i32,
    /// Group for COMMAND DOCS.
    pub group: &'static str,
    /// One-line summary.
    pub summary: &'static str,
    /// Argument docs.
    pub args: &'static [ArgDoc],
}

impl Spec {
    /// Whether `argc` (name included) satisfies the arity.
    pub fn arity_ok(&self, argc: usize) -> bool {
        let argc = argc as i64;
        let arity = i64::from(self.arity);
        if arity >= 0 {
            argc == arity
        } else {
            argc >= -arity
        }
    }
}

const fn arg(name: &'static str, kind: &'static str) -> ArgDoc {
    ArgDoc {
        name,
        kind,
        token: None,
        optional: false,
        multiple: false,
        args: &[],
    }
}

const fn opt(name: &'static str, kind: &'static str, token: &'static str) -> ArgDoc {
    ArgDoc {
        name,
        kind,
        token: Some(token),
        optional: true,
        multiple: false,
        args: &[],
    }
}

const fn flag(token: &'static str) -> ArgDoc {
    ArgDoc {
        name: token,
        kind: "pure-token",
        token: Some(token),
        optional: true,
        multiple: false,
        args: &[],
    }
}

const fn many(name: &'static str, kind: &'static str) -> ArgDoc {
    ArgDoc {
        name,
        kind,
        token: None,
        optional: false,
        multiple: true,
        args: &[],
    }
}

const fn opt_many(name: &'static str, kind: &'static str) -> ArgDoc {
    ArgDoc {
        name,
        kind,
        token: None,
        optional: true,
        multiple: true,
        args: &[],
    }
}

/// An argument introduced by a token inside a `oneof` (`IFEQ value`), not optional itself.
const fn tok(name: &'static str, kind: &'static str, token: &'static str) -> ArgDoc {
    ArgDoc {
        name,
        kind,
        token: Some(token),
        optional: false,
        multiple: false,
        args: &[],
    }
}

/// A bare token inside a `oneof` (`NX`), not optional itself.
const fn word(token: &'static str) -> ArgDoc {
    ArgDoc {
        name: token,
        kind: "pure-token",
        token: Some(token),
        optional: false,
        multiple: false,
        args: &[],
    }
}

/// An optional choice of one of `args`.
const fn oneof(name: &'static str, args: &'static [ArgDoc]) -> ArgDoc {
    ArgDoc {
        name,
        kind: "oneof",
        token: None,
        optional: true,
        multiple: false,
        args,
    }
}

/// EXPIRE and friends: `NX | XX | GT | LT`.
const EXPIRE_CONDITION: ArgDoc = oneof(
    "condition",
    &[word("NX"), word("XX"), word("GT"), word("LT")],
);

const W: &[&str] = &["write", "fast"];
const WB: &[&str] = &["write", "blocking"];
const R: &[&str] = &["readonly", "fast"];
const C: &[&str] = &["fast", "loading", "stale"];
const A: &[&str] = &["admin", "loading", "stale"];

const LOCK_ARGS: &[ArgDoc] = &[
    arg("key", "key"),
    arg("owner", "string"),
    arg("ttl", "integer"),
    opt("ms", "integer", "WAIT"),
];

/// Every command baton answers.
pub static COMMANDS: &[Spec] = &[
    Spec {
        name: "LOCK",
        id: CommandId::Lock(LockId::Lock),
        arity: -4,
        flags: WB,
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "lock",
        summary: "Acquires an exclusive lock for ttl ms (1 to --max-ttl-ms, default 86400000 = \
                  24 h). Without WAIT it never blocks; WAIT ms queues first-come-first-served \
                  (0 = no limit). Returns a fencing token, or nil when not granted.",
        args: LOCK_ARGS,
    },
    Spec {
        name: "WLOCK",
        id: CommandId::Lock(LockId::WLock),
        arity: -4,
        flags: WB,
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "lock",
        summary: "Acquires a write lock for ttl ms, as LOCK; with SHARED a shared write that \
                  coexists with other SHARED writers but not with readers or exclusive \
                  holders. WAIT ms as LOCK (0 = no limit). A fencing token, or nil.",
        args: &[
            arg("key", "key"),
            arg("owner", "string"),
            arg("ttl", "integer"),
            opt("ms", "integer", "WAIT"),
            flag("SHARED"),
        ],
    },
    Spec {
        name: "RLOCK",
        id: CommandId::Lock(LockId::RLock),
        arity: -4,
        flags: WB,
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "lock",
        summary: "Acquires a read lock for ttl ms, shared with other readers. WAIT ms as LOCK \
                  (0 = no limit). A fencing token, or nil.",
        args: LOCK_ARGS,
    },
    Spec {
        name: "REFRESH",
        id: CommandId::Lock(LockId::Refresh),
        arity: 4,
        flags: W,
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "lock",
        summary: "Renews the owner's lease on a lock or semaphore to ttl ms from now (1 to \
                  --max-ttl-ms). 1 when renewed, 0 when the owner holds nothing there (lease \
                  lost).",
        args: &[
            arg("key", "key"),
            arg("owner", "string"),
            arg("ttl", "integer"),
        ],
    },
    Spec {
        name: "UNLOCK",
        id: CommandId::Lock(LockId::Unlock),
        arity: 3,
        flags: W,
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "lock",
        summary: "Releases the owner's hold on a lock (or all its permits of a semaphore) and \
                  hands the key to the next waiter. 1 when released, 0 when it held nothing.",
        args: &[arg("key", "key"), arg("owner", "string")],
    },
    Spec {
        name: "MLOCK",
        id: CommandId::Lock(LockId::MLock),
        arity: -5,
        // Options follow the keys, so no fixed range finds them (`WAIT ms` would shift
        // it): 0 0 0 and movablekeys, as Redis gives its commands that count their keys.
        flags: &["write", "blocking", "movablekeys"],
        first_key: 0,
        last_key: 0,
        step: 0,
        group: "lock",
        summary: "Locks numkeys keys exclusively for ttl ms each, all or none, never \
                  deadlocking. WAIT ms as LOCK (0 = no limit). An array of tokens in key \
                  order, or nil.",
        args: &[
            arg("numkeys", "integer"),
            many("key", "key"),
            arg("owner", "string"),
            arg("ttl", "integer"),
            opt("ms", "integer", "WAIT"),
        ],
    },
    Spec {
        name: "MUNLOCK",
        id: CommandId::Lock(LockId::MUnlock),
        arity: -4,
        flags: W,
        first_key: 2,
        last_key: -2,
        step: 1,
        group: "lock",
        summary: "Releases the owner's holds on numkeys keys; how many of them it held.",
        args: &[
            arg("numkeys", "integer"),
            many("key", "key"),
            arg("owner", "string"),
        ],
    },
    Spec {
        name: "LOCK.INFO",
        id: CommandId::Lock(LockId::Info),
        arity: 2,
        flags: R,
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "lock",
        summary: "A lock's mode, holders (owner, mode, token, ttl = ms left) and waiter count, \
                  or nil when nobody holds or waits.",
        args: &[arg("key", "key")],
    },
    Spec {
        name: "SEM.CREATE",
        id: CommandId::Sem(SemId::Create),
        arity: 3,
        flags: W,
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "semaphore",
        summary: "Creates a semaphore with capacity permits (at least 1), or sets the capacity \
                  of an existing one (shrinking never revokes holders).",
        args: &[arg("key", "key"), arg("capacity", "integer")],
    },
    Spec {
        name: "SEM.ACQUIRE",
        id: CommandId::Sem(SemId::Acquire),
        arity: -4,
        flags: WB,
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "semaphore",
        summary: "Acquires n permits (default 1) for ttl ms (1 to --max-ttl-ms). CAPACITY c \
                  creates a missing semaphore; WAIT ms queues first-come-first-served (0 = no \
                  limit). A fencing token, or nil.",
        args: &[
            arg("key", "key"),
            arg("owner", "string"),
            arg("ttl", "integer"),
            opt("n", "integer", "PERMITS"),
            opt("c", "integer", "CAPACITY"),
            opt("ms", "integer", "WAIT"),
        ],
    },
    Spec {
        name: "SEM.RELEASE",
        id: CommandId::Sem(SemId::Release),
        arity: 3,
        flags: W,
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "semaphore",
        summary: "Releases all the owner's permits of a semaphore; how many it held.",
        args: &[arg("key", "key"), arg("owner", "string")],
    },
    Spec {
        name: "SEM.INFO",
        id: CommandId::Sem(SemId::Info),
        arity: 2,
        flags: R,
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "semaphore",
        summary: "A semaphore's capacity, used permits, holders (owner, permits, token, ttl = \
                  ms left) and waiter count, or nil.",
        args: &[arg("key", "key")],
    },
    Spec {
        name: "SEM.DELETE",
        id: CommandId::Sem(SemId::Delete),
        arity: 2,
        flags: W,
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "semaphore",
        summary: "Deletes a semaphore: holders lose their leases, waiters get -ERR semaphore \
                  deleted. 1 or 0.",
        args: &[arg("key", "key")],
    },
    Spec {
        name: "SET",
        id: CommandId::Str(StrId::Set),
        arity: -3,
        flags: &["write"],
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "string",
        summary: "Sets a string value. NX: only if missing, XX: only if present, IFEQ v / \
                  IFNE v: only if the value equals / differs from v; GET: reply the old \
                  value; expiry EX seconds, PX ms, EXAT / PXAT Unix time, KEEPTTL. On a lock \
                  or semaphore: WRONGTYPE.",
        args: &[
            arg("key", "key"),
            arg("value", "string"),
            oneof(
                "condition",
                &[
                    word("NX"),
                    word("XX"),
                    tok("ifeq-value", "string", "IFEQ"),
                    tok("ifne-value", "string", "IFNE"),
                ],
            ),
            flag("GET"),
            oneof(
                "expiration",
                &[
                    tok("seconds", "integer", "EX"),
                    tok("milliseconds", "integer", "PX"),
                    tok("unix-time-seconds", "unix-time", "EXAT"),
                    tok("unix-time-milliseconds", "unix-time", "PXAT"),
                    word("KEEPTTL"),
                ],
            ),
        ],
    },
    Spec {
        name: "GET",
        id: CommandId::Str(StrId::Get),
        arity: 2,
        flags: R,
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "string",
        summary: "A string's value, or nil. On a lock or semaphore: WRONGTYPE.",
        args: &[arg("key", "key")],
    },
    Spec {
        name: "DELIFEQ",
        id: CommandId::Str(StrId::DelIfEq),
        arity: 3,
        flags: W,
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "string",
        summary: "Deletes a string key if its value equals value (Valkey's compare-and-delete); \
                  1 or 0.",
        args: &[arg("key", "key"), arg("value", "string")],
    },
    Spec {
        name: "DELEX",
        id: CommandId::Str(StrId::DelEx),
        arity: -2,
        flags: W,
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "string",
        summary: "Deletes the key; with IFEQ v only if its string value equals v, with IFNE v \
                  only if it differs (Redis 8.4). 1 or 0.",
        args: &[
            arg("key", "key"),
            oneof(
                "condition",
                &[
                    tok("ifeq-value", "string", "IFEQ"),
                    tok("ifne-value", "string", "IFNE"),
                ],
            ),
        ],
    },
    Spec {
        name: "EXPIRE",
        id: CommandId::Str(StrId::Expire),
        arity: -3,
        flags: W,
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "generic",
        summary: "Sets a string's time to live in seconds (NX: only without one, XX: only with \
                  one, GT / LT: only longer / shorter). On a lock or semaphore: WRONGTYPE.",
        args: &[
            arg("key", "key"),
            arg("seconds", "integer"),
            EXPIRE_CONDITION,
        ],
    },
    Spec {
        name: "PEXPIRE",
        id: CommandId::Str(StrId::PExpire),
        arity: -3,
        flags: W,
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "generic",
        summary: "Sets a string's time to live in milliseconds (conditions as EXPIRE).",
        args: &[
            arg("key", "key"),
            arg("milliseconds", "integer"),
            EXPIRE_CONDITION,
        ],
    },
    Spec {
        name: "EXPIREAT",
        id: CommandId::Str(StrId::ExpireAt),
        arity: -3,
        flags: W,
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "generic",
        summary: "Sets a string's expiry as a Unix time in seconds (conditions as EXPIRE).",
        args: &[
            arg("key", "key"),
            arg("unix-time-seconds", "integer"),
            EXPIRE_CONDITION,
        ],
    },
    Spec {
        name: "PEXPIREAT",
        id: CommandId::Str(StrId::PExpireAt),
        arity: -3,
        flags: W,
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "generic",
        summary: "Sets a string's expiry as a Unix time in milliseconds (conditions as EXPIRE).",
        args: &[
            arg("key", "key"),
            arg("unix-time-milliseconds", "integer"),
            EXPIRE_CONDITION,
        ],
    },
    Spec {
        name: "PERSIST",
        id: CommandId::Str(StrId::Persist),
        arity: 2,
        flags: W,
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "generic",
        summary: "Removes a string's expiry.",
        args: &[arg("key", "key")],
    },
    Spec {
        name: "PTTL",
        id: CommandId::Key(KeyId::Pttl),
        arity: 2,
        flags: R,
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "generic",
        summary: "Time to live in ms; a lock: its longest lease (-1 while it only has waiters), \
                  a semaphore: -1; -2 when the key is missing.",
        args: &[arg("key", "key")],
    },
    Spec {
        name: "TTL",
        id: CommandId::Key(KeyId::Ttl),
        arity: 2,
        flags: R,
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "generic",
        summary: "Time to live in seconds, as PTTL.",
        args: &[arg("key", "key")],
    },
    Spec {
        name: "DEL",
        id: CommandId::Key(KeyId::Del),
        arity: -2,
        flags: &["write"],
        first_key: 1,
        last_key: -1,
        step: 1,
        group: "generic",
        summary: "Deletes keys; on a lock a force-release (holders lose their leases, waiters \
                  are served in order), on a semaphore SEM.DELETE. How many existed.",
        args: &[many("key", "key")],
    },
    Spec {
        name: "UNLINK",
        id: CommandId::Key(KeyId::Unlink),
        arity: -2,
        flags: &["write", "fast"],
        first_key: 1,
        last_key: -1,
        step: 1,
        group: "generic",
        summary: "Same as DEL.",
        args: &[many("key", "key")],
    },
    Spec {
        name: "EXISTS",
        id: CommandId::Key(KeyId::Exists),
        arity: -2,
        flags: R,
        first_key: 1,
        last_key: -1,
        step: 1,
        group: "generic",
        summary: "How many of the keys exist (of any kind).",
        args: &[many("key", "key")],
    },
    Spec {
        name: "TYPE",
        id: CommandId::Key(KeyId::Type),
        arity: 2,
        flags: R,
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "generic",
        summary: "The key's kind: lock, semaphore, string or none.",
        args: &[arg("key", "key")],
    },
    Spec {
        name: "KEYS",
        id: CommandId::Table(TableId::Keys),
        arity: 2,
        flags: &["readonly"],
        first_key: 0,
        last_key: 0,
        step: 0,
        group: "generic",
        summary: "Keys matching a glob pattern.",
        args: &[arg("pattern", "pattern")],
    },
    Spec {
        name: "SCAN",
        id: CommandId::Table(TableId::Scan),
        arity: -2,
        flags: &["readonly"],
        first_key: 0,
        last_key: 0,
        step: 0,
        group: "generic",
        summary: "Iterates the keyspace; the cursor is a shard index, 0 starts and ends.",
        args: &[
            arg("cursor", "integer"),
            opt("pattern", "pattern", "MATCH"),
            opt("count", "integer", "COUNT"),
            opt("type", "string", "TYPE"),
        ],
    },
    Spec {
        name: "DBSIZE",
        id: CommandId::Table(TableId::Dbsize),
        arity: 1,
        flags: R,
        first_key: 0,
        last_key: 0,
        step: 0,
        group: "server",
        summary: "Number of keys.",
        args: &[],
    },
    Spec {
        name: "FLUSHALL",
        id: CommandId::Table(TableId::FlushAll),
        arity: -1,
        flags: &["write"],
        first_key: 0,
        last_key: 0,
        step: 0,
        group: "server",
        summary: "Removes every key: holders lose their leases, waiters get -ERR keyspace \
                  flushed. ASYNC / SYNC are accepted and ignored.",
        args: &[],
    },
    Spec {
        name: "FLUSHDB",
        id: CommandId::Table(TableId::FlushDb),
        arity: -1,
        flags: &["write"],
        first_key: 0,
        last_key: 0,
        step: 0,
        group: "server",
        summary: "Same as FLUSHALL.",
        args: &[],
    },
    Spec {
        name: "EVAL",
        id: CommandId::Script(ScriptId::Eval),
        arity: -3,
        flags: &["noscript", "movablekeys"],
        first_key: 0,
        last_key: 0,
        step: 0,
        group: "scripting",
        summary: "Runs a Lua 5.1 script with Redis's redis.call API. It may touch only the keys \
                  it declares; it never waits, and is stopped after --lua-time-limit-ms.",
        args: &[
            arg("script", "string"),
            arg("numkeys", "integer"),
            opt_many("key", "key"),
            opt_many("arg", "string"),
        ],
    },
    Spec {
        name: "EVALSHA",
        id: CommandId::Script(ScriptId::EvalSha),
        arity: -3,
        flags: &["noscript", "movablekeys"],
        first_key: 0,
        last_key: 0,
        step: 0,
        group: "scripting",
        summary: "Runs a cached Lua script by its SHA1.",
        args: &[
            arg("sha1", "string"),
            arg("numkeys", "integer"),
            opt_many("key", "key"),
            opt_many("arg", "string"),
        ],
    },
    Spec {
        name: "SCRIPT",
        id: CommandId::Script(ScriptId::Script),
        arity: -2,
        flags: &["noscript"],
        first_key: 0,
        last_key: 0,
        step: 0,
        group: "scripting",
        summary: "The script cache: LOAD script (its SHA1), EXISTS sha1 [sha1 ...], FLUSH \
                  [ASYNC|SYNC].",
        args: &[arg("subcommand", "string"), opt_many("arg", "string")],
    },
    Spec {
        name: "PING",
        id: CommandId::Conn(ConnId::Ping),
        arity: -1,
        flags: C,
        first_key: 0,
        last_key: 0,
        step: 0,
        group: "connection",
        summary: "PONG, or the message.",
        args: &[opt_many("message", "string")],
    },
    Spec {
        name: "ECHO",
        id: CommandId::Conn(ConnId::Echo),
        arity: 2,
        flags: C,
        first_key: 0,
        last_key: 0,
        step: 0,
        group: "connection",
        summary: "Returns the message.",
        args: &[arg("message", "string")],
    },
    Spec {
        name: "HELLO",
        id: CommandId::Conn(ConnId::Hello),
        arity: -1,
        flags: C,
        first_key: 0,
        last_key: 0,
        step: 0,
        group: "connection",
        summary: "Handshake: HELLO [2|3] [AUTH username password] [SETNAME name]; answers \
                  server, version, proto, id, mode, role, modules.",
        args: &[opt_many("arguments", "string")],
    },
    Spec {
        name: "AUTH",
        id: CommandId::Conn(ConnId::Auth),
        arity: -2,
        flags: C,
        first_key: 0,
        last_key: 0,
        step: 0,
        group: "connection",
        summary: "Authenticates the connection: AUTH password or AUTH username password \
                  (--requirepass or --requirepass-file). After a failure the next attempt \
                  on the connection is answered after a delay (100 ms, doubling to 2 s).",
        args: &[arg("password", "string")],
    },
    Spec {
        name: "SELECT",
        id: CommandId::Conn(ConnId::Select),
        arity: 2,
        flags: C,
        first_key: 0,
        last_key: 0,
        step: 0,
        group: "connection",
        summary: "Selects database 0, the only one.",
        args: &[arg("index", "integer")],
    },
    Spec {
        name: "CLIENT",
        id: CommandId::Conn(ConnId::Client),
        arity: -2,
        flags: C,
        first_key: 0,
        last_key: 0,
        step: 0,
        group: "connection",
        summary: "Connection settings: SETNAME name, GETNAME, ID, SETINFO LIB-NAME|LIB-VER \
                  value, INFO, LIST, KILL ip:port | KILL ID|ADDR|LADDR|USER|TYPE|MAXAGE|SKIPME \
                  value ... (NO-EVICT, NO-TOUCH are accepted and ignored).",
        args: &[arg("subcommand", "string"), opt_many("arg", "string")],
    },
    Spec {
        name: "QUIT",
        id: CommandId::Conn(ConnId::Quit),
        arity: -1,
        flags: C,
        first_key: 0,
        last_key: 0,
        step: 0,
        group: "connection",
        summary: "Closes the connection.",
        args: &[],
    },
    Spec {
        name: "RESET",
        id: CommandId::Conn(ConnId::Reset),
        arity: 1,
        flags: C,
        first_key: 0,
        last_key: 0,
        step: 0,
        group: "connection",
        summary: "Resets the connection's state.",
        args: &[],
    },
    Spec {
        name: "COMMAND",
        id: CommandId::Admin(AdminId::Command),
        arity: -1,
        flags: A,
        first_key: 0,
        last_key: 0,
        step: 0,
        group: "server",
        summary: "The command table: COUNT, LIST, INFO [name ...], DOCS [name ...] (what \
                  redis-cli uses for hints and HELP).",
        args: &[opt_many("subcommand", "string")],
    },
    Spec {
        name: "INFO",
        id: CommandId::Admin(AdminId::Info),
        arity: -1,
        flags: A,
        first_key: 0,
        last_key: 0,
        step: 0,
        group: "server",
        summary: "Server information by section.",
        args: &[opt_many("section", "string")],
    },
    Spec {
        name: "CONFIG",
        id: CommandId::Admin(AdminId::Config),
        arity: -2,
        flags: A,
        first_key: 0,
        last_key: 0,
        step: 0,
        group: "server",
        summary: "CONFIG GET pattern [pattern ...] of the effective settings (Redis's names \
                  such as maxclients and appendfsync, and every flag's name); CONFIG SET \
                  name value [name value ...] of those that change at run time \
                  (max-clients, max-waiters, log-level); CONFIG RESETSTAT.",
        args: &[arg("subcommand", "string"), opt_many("arg", "string")],
    },
    Spec {
        name: "CLUSTER",
        id: CommandId::Cluster,
        arity: -2,
        flags: &["admin"],
        first_key: 0,
        last_key: 0,
        step: 0,
        group: "cluster",
        summary: "Cluster membership: ADDNODE id peer-addr and REMOVENODE id (+OK once a \
                  majority committed the change), NODES (one line per member: id, peer \
                  address, flags).",
        args: &[arg("subcommand", "string"), opt_many("argument", "string")],
    },
    Spec {
        name: "TIME",
        id: CommandId::Admin(AdminId::Time),
        arity: 1,
        flags: C,
        first_key: 0,
        last_key: 0,
        step: 0,
        group: "server",
        summary: "The server's wall-clock time.",
        args: &[],
    },
];

/// Every command's spec: the table above plus ACL's (kept in `cmd::acl` so the ACL is one
/// module). COMMAND, the ACL categories and docs/commands.md's test list these.
pub fn all() -> impl Iterator<Item = &'static Spec> {
    COMMANDS.iter().chain(std::iter::once(&super::acl::SPEC))
}

/// The spec of `upper_name` (already upper-case): one hash lookup.
pub fn lookup(upper_name: &[u8]) -> Option<&'static Spec> {
    type ByName =
        std::collections::HashMap<&'static [u8], &'static Spec, foldhash::fast::FixedState>;
    static BY_NAME: std::sync::OnceLock<ByName> = std::sync::OnceLock::new();
    BY_NAME
        .get_or_init(|| all().map(|s| (s.name.as_bytes(), s)).collect())
        .get(upper_name)
        .copied()
}
