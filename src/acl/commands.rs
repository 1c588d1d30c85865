//! Command ids and categories for the ACL, derived from the command table
//! (`cmd::spec`): one id per command, and one per subcommand of the commands that have
//! them (`client|kill`, `config|set`, ...). A user's permissions are a bitset over these
//! ids ([`Bits`]).
//!
//! Categories come from each command's spec: its flags (`write` → `@write`, `readonly` →
//! `@read`, `fast` → `@fast`, else `@slow`, `blocking` → `@blocking`) and its group
//! (`lock` → `@lock`, `semaphore` → `@semaphore`, `string` → `@string`, `generic` →
//! `@keyspace`, `connection` → `@connection`, `scripting` → `@scripting`), plus the
//! table [`ADMIN_COMMANDS`] of what is `@admin @dangerous`. A container command (CLIENT)
//! is in the categories all its subcommands share; its id stands for subcommands this
//! table does not know.

use std::collections::HashMap;
use std::sync::OnceLock;

use bytes::Bytes;

use crate::cmd::spec::{Spec, COMMANDS};

/// `@admin`.
pub const ADMIN: u32 = 1 << 0;
/// `@dangerous`.
pub const DANGEROUS: u32 = 1 << 1;
/// `@read`.
pub const READ: u32 = 1 << 2;
/// `@write`.
pub const WRITE: u32 = 1 << 3;
/// `@keyspace`.
pub const KEYSPACE: u32 = 1 << 4;
/// `@fast`.
pub const FAST: u32 = 1 << 5;
/// `@slow`.
pub const SLOW: u32 = 1 << 6;
/// `@connection`.
pub const CONNECTION: u32 = 1 << 7;
/// `@scripting`.
pub const SCRIPTING: u32 = 1 << 8;
/// `@string`.
pub const STRING: u32 = 1 << 9;
/// `@lock`: LOCK WLOCK RLOCK REFRESH UNLOCK LOCK.INFO MLOCK MUNLOCK.
pub const LOCK: u32 = 1 << 10;
/// `@semaphore`: SEM.*.
pub const SEMAPHORE: u32 = 1 << 11;
/// `@blocking`.
pub const BLOCKING: u32 = 1 << 12;

/// Every category by name (ACL CAT), `all` apart.
pub const CATEGORIES: &[(&str, u32)] = &[
    ("keyspace", KEYSPACE),
    ("read", READ),
    ("write", WRITE),
    ("string", STRING),
    ("lock", LOCK),
    ("semaphore", SEMAPHORE),
    ("admin", ADMIN),
    ("fast", FAST),
    ("slow", SLOW),
    ("blocking", BLOCKING),
    ("dangerous", DANGEROUS),
    ("connection", CONNECTION),
    ("scripting", SCRIPTING),
];

/// Subcommands the ACL knows, by command (upper case).
const SUBCOMMANDS: &[(&str, &[&str])] = &[
    (
        "CLIENT",
        &[
            "SETNAME", "GETNAME", "ID", "SETINFO", "INFO", "LIST", "KILL", "NO-EVICT", "NO-TOUCH",
        ],
    ),
    ("SCRIPT", &["LOAD", "EXISTS", "FLUSH", "KILL"]),
    ("CONFIG", &["GET", "SET", "RESETSTAT", "REWRITE"]),
    ("COMMAND", &["COUNT", "LIST", "INFO", "DOCS"]),
    ("CLUSTER", &["ADDNODE", "REMOVENODE", "NODES"]),
    (
        "ACL",
        &[
            "WHOAMI", "LIST", "USERS", "SETUSER", "DELUSER", "GETUSER", "CAT", "SAVE", "LOAD",
        ],
    ),
];

/// What is `@admin @dangerous` (lower case, `command|subcommand` for subcommands):
/// commands that act on every tenant at once or on the server itself.
pub const ADMIN_COMMANDS: &[&str] = &[
    "flushall",
    "flushdb",
    "config|get",
    "config|set",
    "config|resetstat",
    "config|rewrite",
    "script|flush",
    "script|kill",
    "client|kill",
    "acl|list",
    "acl|users",
    "acl|setuser",
    "acl|deluser",
    "acl|getuser",
    "acl|save",
    "acl|load",
    "cluster|addnode",
    "cluster|removenode",
];

/// A set of command ids.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bits([u64; 4]);

impl Bits {
    /// Most ids a set holds.
    pub const CAPACITY: usize = 256;

    /// Whether `id` is in the set.
    pub fn has(&self, id: usize) -> bool {
        self.0
            .get(id / 64)
            .is_some_and(|word| word & (1 << (id % 64)) != 0)
    }

    /// Adds (`on`) or removes `id`.
    pub fn set(&mut self, id: usize, on: bool) {
        if let Some(word) = self.0.get_mut(id / 64) {
            if on {
                *word |= 1 << (id % 64);
            } else {
                *word &= !(1 << (id % 64));
            }
        }
    }
}

/// The ids, their names and categories.
#[derive(Debug)]
pub struct Table {
    names: Vec<String>,
    cats: Vec<u32>,
    /// The id of each spec, in [`specs`] order.
    spec_ids: Vec<usize>,
    /// Each spec's subcommands (upper case) and their ids.
    subs: Vec<Vec<(&'static str, usize)>>,
    by_name: HashMap<String, usize>,
}

/// Every command spec: the command table plus ACL's own.
pub fn specs() -> impl Iterator<Item = &'static Spec> {
    crate::cmd::spec::all()
}

/// The position of `spec` in [`specs`].
fn spec_index(spec: &'static Spec) -> Option<usize> {
    if std::ptr::eq(spec, &crate::cmd::acl::SPEC) {
        return Some(COMMANDS.len());
    }
    let base = COMMANDS.as_ptr() as usize;
    let at = spec as *const Spec as usize;
    let i = at.checked_sub(base)? / std::mem::size_of::<Spec>();
    COMMANDS
        .get(i)
        .filter(|s| std::ptr::eq(*s, spec))
        .map(|_| i)
}

fn spec_categories(spec: &Spec) -> u32 {
    let mut cats = 0;
    for flag in spec.flags {
        cats |= match *flag {
            "write" => WRITE,
            "readonly" => READ,
            "fast" => FAST,
            "blocking" => BLOCKING,
            _ => 0,
        };
    }
    if cats & FAST == 0 {
        cats |= SLOW;
    }
    cats |= match spec.group {
        "lock" => LOCK,
        "semaphore" => SEMAPHORE,
        "string" => STRING,
        "generic" => KEYSPACE,
        "connection" => CONNECTION,
        "scripting" => SCRIPTING,
        _ => 0,
    };
    cats |= match spec.name {
        "KEYS" => KEYSPACE | DANGEROUS,
        "SCAN" | "DBSIZE" | "FLUSHALL" | "FLUSHDB" => KEYSPACE,
        "INFO" => DANGEROUS,
        "COMMAND" => CONNECTION,
        _ => 0,
    };
    cats
}

fn admin(name: &str) -> u32 {
    if ADMIN_COMMANDS.contains(&name) {
        ADMIN | DANGEROUS
    } else {
        0
    }
}

/// The table, built on first use.
pub fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = Table {
            names: Vec::new(),
            cats: Vec::new(),
            spec_ids: Vec::new(),
            subs: Vec::new(),
            by_name: HashMap::new(),
        };
        for spec in specs() {
            let name = spec.name.to_ascii_lowercase();
            let own = spec_categories(spec) | admin(&name);
            let id = t.push(name.clone(), own);
            t.spec_ids.push(id);
            let mut subs = Vec::new();
            if let Some((_, list)) = SUBCOMMANDS.iter().find(|(n, _)| *n == spec.name) {
                let base = (own & !(FAST | READ | WRITE | BLOCKING)) | SLOW;
                let mut shared = u32::MAX;
                for sub in *list {
                    let full = format!("{name}|{}", sub.to_ascii_lowercase());
                    let cats = base | admin(&full);
                    shared &= cats;
                    subs.push((*sub, t.push(full, cats)));
                }
                if let Some(c) = t.cats.get_mut(id) {
                    *c = shared;
                }
            }
            t.subs.push(subs);
        }
        t
    })
}

impl Table {
    fn push(&mut self, name: String, cats: u32) -> usize {
        let id = self.names.len();
        self.by_name.insert(name.clone(), id);
        self.names.push(name);
        self.cats.push(cats);
        id
    }

    /// How many ids there are.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether there are none (never).
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The name of `id` (`lock`, `client|kill`).
    pub fn name(&self, id: usize) -> &str {
        self.names.get(id).map_or("", String::as_str)
    }

    /// The categories of `id`.
    pub fn categories(&self, id: usize) -> u32 {
        self.cats.get(id).copied().unwrap_or(0)
    }

    /// The id of a command or `command|subcommand` (lower case).
    pub fn id(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// The ids a rule's target covers: `@category` (or `@all`), a command with its
    /// subcommands, or one `command|subcommand`. None when unknown.
    pub fn ids_of(&self, target: &str) -> Option<Vec<usize>> {
        if let Some(cat) = target.strip_prefix('@') {
            if cat == "all" {
                return Some((0..self.len()).collect());
            }
            let bit = category(cat)?;
            return Some(
                (0..self.len())
                    .filter(|&id| self.categories(id) & bit != 0)
                    .collect(),
            );
        }
        let id = self.id(target)?;
        let mut ids = vec![id];
        if !target.contains('|') {
            let spec_pos = self.spec_ids.iter().position(|&s| s == id)?;
            ids.extend(self.subs.get(spec_pos)?.iter().map(|(_, sub)| *sub));
        }
        Some(ids)
    }

    /// The id a request runs as: its command's, or its subcommand's when the command has
    /// subcommands and `args[1]` names one this table knows.
    pub fn command_id(&self, spec: &'static Spec, args: &[Bytes]) -> Option<usize> {
        let pos = spec_index(spec)?;
        let id = *self.spec_ids.get(pos)?;
        let subs = self.subs.get(pos)?;
        if subs.is_empty() {
            return Some(id);
        }
        let sub = args.get(1).and_then(|given| {
            subs.iter()
                .find(|(name, _)| given.eq_ignore_ascii_case(name.as_bytes()))
        });
        Some(sub.map_or(id, |(_, sub_id)| *sub_id))
    }

    /// The commands in `category` (ACL CAT name), by name.
    pub fn in_category(&self, bit: u32) -> Vec<&str> {
        (0..self.len())
            .filter(|&id| self.categories(id) & bit != 0)
            .map(|id| self.name(id))
            .collect()
    }
}

/// The bit of a category name (without `@`, lower case).
pub fn category(name: &str) -> Option<u32> {
    CATEGORIES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, bit)| *bit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_id_fits_the_bitset() {
        assert!(table().len() <= Bits::CAPACITY, "{}", table().len());
    }

    #[test]
    fn categories_follow_the_specs_and_the_admin_table() {
        let t = table();
        let cats = |n: &str| t.categories(t.id(n).expect(n));
        assert_ne!(cats("lock") & (LOCK | WRITE | BLOCKING), 0);
        assert_eq!(cats("lock") & ADMIN, 0);
        assert_ne!(cats("lock.info") & READ, 0);
        assert_ne!(cats("sem.acquire") & SEMAPHORE, 0);
        assert_ne!(cats("get") & STRING, 0);
        assert_ne!(cats("del") & KEYSPACE, 0);
        for admin in ADMIN_COMMANDS {
            assert_eq!(
                cats(admin) & (ADMIN | DANGEROUS),
                ADMIN | DANGEROUS,
                "{admin}"
            );
        }
        for plain in [
            "client|list",
            "client|setname",
            "script|load",
            "acl|whoami",
            "acl|cat",
        ] {
            assert_eq!(cats(plain) & ADMIN, 0, "{plain}");
        }
        // CONFIG has only admin subcommands; CLIENT has only one.
        assert_ne!(cats("config") & ADMIN, 0);
        assert_eq!(cats("client") & ADMIN, 0);
    }

    #[test]
    fn requests_map_to_their_subcommand() {
        let t = table();
        let spec = crate::cmd::spec::lookup(b"CLIENT").expect("CLIENT");
        let args = |v: &[&str]| {
            v.iter()
                .map(|a| Bytes::from(a.to_string()))
                .collect::<Vec<_>>()
        };
        let id = t.command_id(spec, &args(&["client", "kill", "id", "1"]));
        assert_eq!(id.map(|i| t.name(i)), Some("client|kill"));
        let id = t.command_id(spec, &args(&["client", "bogus"]));
        assert_eq!(id.map(|i| t.name(i)), Some("client"));
        let lock = crate::cmd::spec::lookup(b"LOCK").expect("LOCK");
        let id = t.command_id(lock, &args(&["lock", "k", "o", "1"]));
        assert_eq!(id.map(|i| t.name(i)), Some("lock"));
    }
}
