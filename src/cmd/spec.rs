//! Command metadata as data: name, arity, flags, key positions, group, summary and argument
//! docs. It drives arity errors and `COMMAND COUNT|INFO|DOCS|LIST` (so redis-cli shows
//! hints). Add a command here when you add its parser.

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

/// A command's metadata.
#[derive(Debug)]
pub struct Spec {
    /// Upper-case name as matched.
    pub name: &'static str,
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
        arity: -4,
        flags: WB,
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "lock",
        summary: "Acquires an exclusive lock with a lease; returns a fencing token or nil.",
        args: LOCK_ARGS,
    },
    Spec {
        name: "WLOCK",
        arity: -4,
        flags: WB,
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "lock",
        summary: "Acquires a write lock (SHARED: a shared write) with a lease.",
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
        arity: -4,
        flags: WB,
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "lock",
        summary: "Acquires a read lock, shared with other readers, with a lease.",
        args: LOCK_ARGS,
    },
    Spec {
        name: "REFRESH",
        arity: 4,
        flags: W,
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "lock",
        summary: "Renews the owner's lease on a lock or semaphore; 1 or 0.",
        args: &[
            arg("key", "key"),
            arg("owner", "string"),
            arg("ttl", "integer"),
        ],
    },
    Spec {
        name: "UNLOCK",
        arity: 3,
        flags: W,
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "lock",
        summary: "Releases the owner's hold on a lock or semaphore; 1 or 0.",
        args: &[arg("key", "key"), arg("owner", "string")],
    },
    Spec {
        name: "MLOCK",
        arity: -5,
        flags: WB,
        first_key: 2,
        last_key: -3,
        step: 1,
        group: "lock",
        summary: "Locks several keys exclusively, all or none; an array of tokens or nil.",
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
        arity: -4,
        flags: W,
        first_key: 2,
        last_key: -2,
        step: 1,
        group: "lock",
        summary: "Releases the owner's holds on several keys; how many it held.",
        args: &[
            arg("numkeys", "integer"),
            many("key", "key"),
            arg("owner", "string"),
        ],
    },
    Spec {
        name: "LOCK.INFO",
        arity: 2,
        flags: R,
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "lock",
        summary: "Shows a lock's mode, holders and waiters.",
        args: &[arg("key", "key")],
    },
    Spec {
        name: "SEM.CREATE",
        arity: 3,
        flags: W,
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "semaphore",
        summary: "Creates a semaphore or sets its capacity.",
        args: &[arg("key", "key"), arg("capacity", "integer")],
    },
    Spec {
        name: "SEM.ACQUIRE",
        arity: -4,
        flags: WB,
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "semaphore",
        summary: "Acquires permits of a semaphore with a lease; a token or nil.",
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
        arity: 3,
        flags: W,
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "semaphore",
        summary: "Releases all the owner's permits; how many.",
        args: &[arg("key", "key"), arg("owner", "string")],
    },
    Spec {
        name: "SEM.INFO",
        arity: 2,
        flags: R,
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "semaphore",
        summary: "Shows a semaphore's capacity, holders and waiters.",
        args: &[arg("key", "key")],
    },
    Spec {
        name: "SEM.DELETE",
        arity: 2,
        flags: W,
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "semaphore",
        summary: "Deletes a semaphore; its waiters get an error.",
        args: &[arg("key", "key")],
    },
    Spec {
        name: "SET",
        arity: -3,
        flags: &["write"],
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "string",
        summary: "Sets a string value, with conditions and expiry.",
        args: &[
            arg("key", "key"),
            arg("value", "string"),
            opt_many("options", "string"),
        ],
    },
    Spec {
        name: "GET",
        arity: 2,
        flags: R,
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "string",
        summary: "Gets a string value.",
        args: &[arg("key", "key")],
    },
    Spec {
        name: "DELIFEQ",
        arity: 3,
        flags: W,
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "string",
        summary: "Deletes the key if its value equals the given one.",
        args: &[arg("key", "key"), arg("value", "string")],
    },
    Spec {
        name: "DELEX",
        arity: -2,
        flags: W,
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "string",
        summary: "Deletes the key, optionally only if its value matches (IFEQ/IFNE).",
        args: &[arg("key", "key"), opt("value", "string", "IFEQ")],
    },
    Spec {
        name: "EXPIRE",
        arity: -3,
        flags: W,
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "generic",
        summary: "Sets a string's time to live in seconds.",
        args: &[arg("key", "key"), arg("seconds", "integer")],
    },
    Spec {
        name: "PEXPIRE",
        arity: -3,
        flags: W,
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "generic",
        summary: "Sets a string's time to live in ms.",
        args: &[arg("key", "key"), arg("milliseconds", "integer")],
    },
    Spec {
        name: "EXPIREAT",
        arity: -3,
        flags: W,
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "generic",
        summary: "Sets a string's expiry as a Unix time in seconds.",
        args: &[arg("key", "key"), arg("unix-time-seconds", "integer")],
    },
    Spec {
        name: "PEXPIREAT",
        arity: -3,
        flags: W,
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "generic",
        summary: "Sets a string's expiry as a Unix time in ms.",
        args: &[arg("key", "key"), arg("unix-time-milliseconds", "integer")],
    },
    Spec {
        name: "PERSIST",
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
        arity: 2,
        flags: R,
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "generic",
        summary: "Time to live in ms (a lock: its longest lease).",
        args: &[arg("key", "key")],
    },
    Spec {
        name: "TTL",
        arity: 2,
        flags: R,
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "generic",
        summary: "Time to live in seconds (a lock: its longest lease).",
        args: &[arg("key", "key")],
    },
    Spec {
        name: "DEL",
        arity: -2,
        flags: &["write"],
        first_key: 1,
        last_key: -1,
        step: 1,
        group: "generic",
        summary: "Deletes keys; on a lock it force-releases every holder.",
        args: &[many("key", "key")],
    },
    Spec {
        name: "UNLINK",
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
        arity: -2,
        flags: R,
        first_key: 1,
        last_key: -1,
        step: 1,
        group: "generic",
        summary: "Counts the keys that exist.",
        args: &[many("key", "key")],
    },
    Spec {
        name: "TYPE",
        arity: 2,
        flags: R,
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "generic",
        summary: "lock, semaphore, string or none.",
        args: &[arg("key", "key")],
    },
    Spec {
        name: "KEYS",
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
        arity: -2,
        flags: &["readonly"],
        first_key: 0,
        last_key: 0,
        step: 0,
        group: "generic",
        summary: "Iterates the keyspace.",
        args: &[
            arg("cursor", "integer"),
            opt("pattern", "pattern", "MATCH"),
            opt("count", "integer", "COUNT"),
            opt("type", "string", "TYPE"),
        ],
    },
    Spec {
        name: "DBSIZE",
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
        arity: -1,
        flags: &["write"],
        first_key: 0,
        last_key: 0,
        step: 0,
        group: "server",
        summary: "Removes every key; waiters get an error.",
        args: &[],
    },
    Spec {
        name: "FLUSHDB",
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
        arity: -3,
        flags: &["noscript"],
        first_key: 0,
        last_key: 0,
        step: 0,
        group: "scripting",
        summary: "Runs a Lua script.",
        args: &[
            arg("script", "string"),
            arg("numkeys", "integer"),
            opt_many("key", "key"),
            opt_many("arg", "string"),
        ],
    },
    Spec {
        name: "EVALSHA",
        arity: -3,
        flags: &["noscript"],
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
        arity: -2,
        flags: &["noscript"],
        first_key: 0,
        last_key: 0,
        step: 0,
        group: "scripting",
        summary: "LOAD, EXISTS or FLUSH the script cache.",
        args: &[],
    },
    Spec {
        name: "PING",
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
        arity: -1,
        flags: C,
        first_key: 0,
        last_key: 0,
        step: 0,
        group: "connection",
        summary: "Handshake: protocol version, AUTH, SETNAME.",
        args: &[opt_many("arguments", "string")],
    },
    Spec {
        name: "AUTH",
        arity: -2,
        flags: C,
        first_key: 0,
        last_key: 0,
        step: 0,
        group: "connection",
        summary: "Authenticates the connection.",
        args: &[arg("password", "string")],
    },
    Spec {
        name: "SELECT",
        arity: 2,
        flags: C,
        first_key: 0,
        last_key: 0,
        step: 0,
        group: "connection",
        summary: "Only database 0 exists.",
        args: &[arg("index", "integer")],
    },
    Spec {
        name: "CLIENT",
        arity: -2,
        flags: C,
        first_key: 0,
        last_key: 0,
        step: 0,
        group: "connection",
        summary: "SETNAME, GETNAME, ID, SETINFO, INFO, LIST.",
        args: &[],
    },
    Spec {
        name: "QUIT",
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
        arity: -1,
        flags: A,
        first_key: 0,
        last_key: 0,
        step: 0,
        group: "server",
        summary: "COUNT, INFO, DOCS, LIST of the commands.",
        args: &[],
    },
    Spec {
        name: "INFO",
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
        arity: -2,
        flags: A,
        first_key: 0,
        last_key: 0,
        step: 0,
        group: "server",
        summary:
            "CONFIG GET of the effective settings; CONFIG SET of those that change at run time.",
        args: &[],
    },
    Spec {
        name: "TIME",
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

/// The spec of `upper_name` (already upper-case): one hash lookup.
pub fn lookup(upper_name: &[u8]) -> Option<&'static Spec> {
    type ByName =
        std::collections::HashMap<&'static [u8], &'static Spec, foldhash::fast::FixedState>;
    static BY_NAME: std::sync::OnceLock<ByName> = std::sync::OnceLock::new();
    BY_NAME
        .get_or_init(|| COMMANDS.iter().map(|s| (s.name.as_bytes(), s)).collect())
        .get(upper_name)
        .copied()
}
