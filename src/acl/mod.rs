//! ACL users as tenants: the user registry ([`Acl`], owned once by `cmd::Shared`), one
//! user's rules ([`rules`]), the command ids and categories they name ([`commands`]) and
//! the `--aclfile` format ([`mod@file`]).
//!
//! # The per-command check
//! A connection keeps the `Arc<User>` it authenticated as (`cmd::Session`). [`check_command`]
//! and [`check_keys`] run in `cmd::execute` (and from scripts' `redis.call`). A user with
//! every command and every key (`default`, `+@all ~*`) pays two flag reads; a restricted
//! user pays a bit test, and one glob match per key. No lock is taken: a change of the
//! registry bumps [`Acl::generation`], and a session re-reads its user when it sees a new
//! generation (one atomic load per command).
//!
//! # Semantics (Redis 7's, where they apply)
//! `default` always exists; `--requirepass` sets its password; a `default` line in the
//! file wins over it. A connection starts as `default`, authenticated when `default` is
//! `on nopass`. Passwords are kept as SHA-256 digests and compared in constant time.

pub mod commands;
pub mod file;
pub mod held;
pub mod rules;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};

pub use rules::{Limits, User};

use crate::error::RespError;

/// `-NOPERM No permissions to access a key`.
pub const NOPERM_KEY: RespError = RespError::fixed("NOPERM No permissions to access a key");

/// ACL SAVE / LOAD without `--aclfile` (Redis's text).
pub const NO_ACL_FILE: RespError = RespError::fixed(
    "ERR This Redis instance is not configured to use an ACL file. You may want to specify users via the ACL SETUSER command and then issue a CONFIG REWRITE (assuming you have a Redis configuration file set) in order to store users in the Redis configuration.",
);

/// `-NOPERM User <name> has no permissions to run the '<cmd>' command`.
pub fn noperm_command(user: &str, command: &str) -> RespError {
    RespError::new(format!(
        "NOPERM User {user} has no permissions to run the '{command}' command"
    ))
}

/// The user registry.
#[derive(Debug)]
pub struct Acl {
    users: RwLock<BTreeMap<String, Arc<User>>>,
    generation: AtomicU64,
    default_nopass: AtomicBool,
    requirepass: Option<String>,
    file: Option<PathBuf>,
    /// Serializes the AUTHs of users with `max-connections`, so two cannot both take the
    /// last place.
    pub auth_gate: Mutex<()>,
    /// The keys of users with `max-held-keys` that may be held (checked per grant).
    pub held: held::HeldKeys,
    /// Requests waiting in queues, per user with `max-waiters` (touched only for them).
    waiting: Mutex<std::collections::HashMap<String, Arc<AtomicU64>>>,
}

/// A place among a user's waiting requests (`max-waiters`), given back when dropped.
#[derive(Debug)]
pub struct WaitSlot(Arc<AtomicU64>);

impl Drop for WaitSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Acl {
    /// The registry: `default` from `requirepass`, then the users of `file` (if any).
    ///
    /// # Errors
    /// The file cannot be read, or lines of it are bad: Redis's texts, naming each line.
    pub fn new(requirepass: Option<&str>, file: Option<&Path>) -> Result<Acl, String> {
        let acl = Acl {
            users: RwLock::new(BTreeMap::new()),
            generation: AtomicU64::new(1),
            default_nopass: AtomicBool::new(true),
            requirepass: requirepass.map(str::to_string),
            file: file.map(Path::to_path_buf),
            auth_gate: Mutex::new(()),
            waiting: Mutex::new(std::collections::HashMap::new()),
            held: held::HeldKeys::default(),
        };
        let users = match file {
            Some(path) => acl.read_file(path)?,
            None => acl.with_default(Vec::new()),
        };
        acl.install(users);
        Ok(acl)
    }

    /// The users of `users` plus `default` from `--requirepass` when they lack it.
    fn with_default(&self, users: Vec<User>) -> BTreeMap<String, Arc<User>> {
        let mut map: BTreeMap<String, Arc<User>> = users
            .into_iter()
            .map(|u| (u.name().to_string(), Arc::new(u)))
            .collect();
        map.entry("default".to_string())
            .or_insert_with(|| Arc::new(User::default_user(self.requirepass.as_deref())));
        map
    }

    fn read_file(&self, path: &Path) -> Result<BTreeMap<String, Arc<User>>, String> {
        let shown = path.display().to_string();
        let text = std::fs::read(path)
            .map_err(|e| format!("Error loading ACLs, opening file '{shown}': {e}"))?;
        if text.len() > file::MAX_FILE_BYTES {
            return Err(format!(
                "Error loading ACLs, file '{shown}' is larger than {} bytes",
                file::MAX_FILE_BYTES
            ));
        }
        Ok(self.with_default(file::parse(&shown, &text)?))
    }

    fn install(&self, users: BTreeMap<String, Arc<User>>) {
        let nopass = users
            .get("default")
            .is_some_and(|u| u.nopass() && u.enabled());
        *self.users.write() = users;
        self.default_nopass.store(nopass, Ordering::Release);
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Bumped by every change; sessions re-read their user when it moves.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The user called `name`.
    pub fn user(&self, name: &str) -> Option<Arc<User>> {
        self.users.read().get(name).cloned()
    }

    /// The `default` user.
    pub fn default_user(&self) -> Arc<User> {
        self.user("default")
            .unwrap_or_else(|| Arc::new(User::new("default")))
    }

    /// Whether a new connection must AUTH first: unless `default` is `on nopass`.
    pub fn needs_auth(&self) -> bool {
        !self.default_nopass.load(Ordering::Acquire)
    }

    /// Whether protected mode applies: `default` is `nopass` (Redis's rule).
    pub fn default_is_open(&self) -> bool {
        self.default_nopass.load(Ordering::Acquire)
    }

    /// Takes one of `user`'s `max` places among waiting requests; None when all are taken.
    pub fn reserve_wait(&self, user: &str, max: u64) -> Option<WaitSlot> {
        let count = self
            .waiting
            .lock()
            .entry(user.to_string())
            .or_default()
            .clone();
        count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| WaitSlot(count))
    }

    /// Every user, by name.
    pub fn users(&self) -> Vec<Arc<User>> {
        self.users.read().values().cloned().collect()
    }

    /// Whether `--aclfile` is set.
    pub fn has_file(&self) -> bool {
        self.file.is_some()
    }

    /// ACL SETUSER: applies `rules` to `name` (created if new), all or nothing.
    ///
    /// # Errors
    /// Redis's texts: a bad name, or the first rule that does not apply.
    pub fn set_user(&self, name: &[u8], rules: &[Bytes]) -> Result<Arc<User>, RespError> {
        if !file::valid_name(name) {
            return Err(RespError::fixed(
                "ERR Usernames can't contain spaces or null characters",
            ));
        }
        let name = String::from_utf8_lossy(name).into_owned();
        let mut users = self.users.write();
        let mut user = users
            .get(&name)
            .map_or_else(|| User::new(&name), |u| (**u).clone());
        for rule in rules {
            user.apply(rule).map_err(|err| {
                RespError::new(format!(
                    "ERR Error in ACL SETUSER modifier '{}': {err}",
                    crate::error::printable(rule, 128)
                ))
            })?;
        }
        let user = Arc::new(user);
        users.insert(name, user.clone());
        let nopass = users
            .get("default")
            .is_some_and(|u| u.nopass() && u.enabled());
        drop(users);
        self.default_nopass.store(nopass, Ordering::Release);
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(user)
    }

    /// ACL DELUSER: removes the users named; returns the names removed.
    ///
    /// # Errors
    /// `default` among them (nothing is removed then).
    pub fn del_users(&self, names: &[Bytes]) -> Result<Vec<String>, RespError> {
        if names.iter().any(|n| n.as_ref() == b"default") {
            return Err(RespError::fixed("ERR The 'default' user cannot be removed"));
        }
        let mut users = self.users.write();
        let removed: Vec<String> = names
            .iter()
            .filter_map(|n| users.remove(String::from_utf8_lossy(n).as_ref()))
            .map(|u| u.name().to_string())
            .collect();
        drop(users);
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(removed)
    }

    /// ACL SAVE: writes every user to `--aclfile` (a temporary file, synced, renamed over).
    ///
    /// # Errors
    /// No `--aclfile`, or the file cannot be written (Redis's texts).
    pub fn save(&self) -> Result<(), RespError> {
        let Some(path) = &self.file else {
            return Err(NO_ACL_FILE);
        };
        let text = file::render(self.users().iter().map(|u| &**u));
        let tmp = path.with_extension("tmp-acl");
        let written = (|| -> std::io::Result<()> {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        })();
        written.map_err(|err| {
            tracing::warn!("ACL SAVE to {} failed: {err}", path.display());
            RespError::fixed(
                "ERR There was an error trying to save the ACLs. Please check the server logs for more information",
            )
        })
    }

    /// ACL LOAD: replaces every user with the file's, all or nothing. Returns the names of
    /// the users that are gone or disabled now (their connections are to be closed).
    ///
    /// # Errors
    /// No `--aclfile`, or the file is unreadable or bad (nothing changes then).
    pub fn load(&self) -> Result<Vec<String>, RespError> {
        let Some(path) = &self.file else {
            return Err(NO_ACL_FILE);
        };
        let users = self.read_file(path).map_err(|errors| {
            RespError::new(format!(
                "ERR {errors} WARNING: ACL errors detected, no change to the previously active ACL rules was performed"
            ))
        })?;
        let gone: Vec<String> = self
            .users
            .read()
            .keys()
            .filter(|name| !users.get(*name).is_some_and(|u| u.enabled()))
            .cloned()
            .collect();
        self.install(users);
        Ok(gone)
    }
}

/// Checks that `user` may run the command `spec` with `args` (the request, name
/// included).
///
/// # Errors
/// `-NOPERM User <name> has no permissions to run the '<cmd>' command`.
pub fn check_command(
    user: &User,
    spec: &'static crate::cmd::spec::Spec,
    args: &[Bytes],
) -> Result<(), RespError> {
    if user.all_commands() {
        return Ok(());
    }
    let table = commands::table();
    match table.command_id(spec, args) {
        Some(id) if user.allows(id) => Ok(()),
        Some(id) => Err(noperm_command(user.name(), table.name(id))),
        None => Err(noperm_command(user.name(), &spec.name.to_ascii_lowercase())),
    }
}

/// Checks that `user` may touch every key of `keys`.
///
/// # Errors
/// `-NOPERM No permissions to access a key`.
pub fn check_keys<'k>(
    user: &User,
    keys: impl IntoIterator<Item = &'k [u8]>,
) -> Result<(), RespError> {
    if user.all_keys() || keys.into_iter().all(|k| user.key_allowed(k)) {
        Ok(())
    } else {
        Err(NOPERM_KEY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<Bytes> {
        v.iter().map(|a| Bytes::from(a.to_string())).collect()
    }

    #[test]
    fn default_takes_requirepass_unless_the_file_defines_it() {
        let acl = Acl::new(Some("pw"), None).expect("acl");
        assert!(acl.needs_auth() && !acl.default_is_open());
        assert!(acl.default_user().password_ok(b"pw"));
        let open = Acl::new(None, None).expect("acl");
        assert!(!open.needs_auth() && open.default_is_open());

        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("users.acl");
        std::fs::write(&path, "user default on >fromfile ~* +@all\n").expect("write");
        let acl = Acl::new(Some("pw"), Some(&path)).expect("acl");
        assert!(acl.default_user().password_ok(b"fromfile"));
        assert!(!acl.default_user().password_ok(b"pw"));
        std::fs::write(&path, "user alice on >a\n").expect("write");
        let acl = Acl::new(Some("pw"), Some(&path)).expect("acl");
        assert!(acl.default_user().password_ok(b"pw"));
        assert!(acl.user("alice").is_some());
    }

    #[test]
    fn a_bad_file_names_its_line() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("users.acl");
        std::fs::write(&path, "user a on\nuser b on +@bogus\n").expect("write");
        let err = Acl::new(None, Some(&path)).unwrap_err();
        assert!(
            err.contains("users.acl:2: Unknown command or category name in ACL."),
            "{err}"
        );
        let missing = Acl::new(None, Some(&dir.path().join("nope"))).unwrap_err();
        assert!(
            missing.starts_with("Error loading ACLs, opening file"),
            "{missing}"
        );
    }

    #[test]
    fn setuser_is_all_or_nothing_and_deluser_spares_default() {
        let acl = Acl::new(None, None).expect("acl");
        let before = acl.generation();
        acl.set_user(b"alice", &args(&["on", ">a", "~app:*", "+@lock"]))
            .expect("set");
        assert!(acl.generation() > before);
        let err = acl
            .set_user(b"alice", &args(&["off", "+bogus"]))
            .unwrap_err();
        assert_eq!(
            err.text(),
            "ERR Error in ACL SETUSER modifier '+bogus': Unknown command or category name in ACL"
        );
        assert!(acl.user("alice").expect("alice").enabled());
        assert!(acl.set_user(b"a b", &[]).is_err());
        assert_eq!(
            acl.del_users(&args(&["default"])).unwrap_err().text(),
            "ERR The 'default' user cannot be removed"
        );
        assert_eq!(
            acl.del_users(&args(&["alice", "nobody"])).expect("del"),
            vec!["alice".to_string()]
        );
        assert_eq!(acl.save().unwrap_err(), NO_ACL_FILE);
        assert_eq!(acl.load().unwrap_err(), NO_ACL_FILE);
    }

    #[test]
    fn load_is_all_or_nothing_and_save_round_trips() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("users.acl");
        std::fs::write(&path, "").expect("write");
        let acl = Acl::new(None, Some(&path)).expect("acl");
        acl.set_user(b"alice", &args(&["on", ">a", "~app:*", "-@all", "+@lock"]))
            .expect("set");
        acl.save().expect("save");
        let again = Acl::new(None, Some(&path)).expect("reload");
        assert_eq!(again.user("alice"), acl.user("alice"));
        std::fs::write(&path, "user alice on\nbroken\n").expect("write");
        let err = acl.load().unwrap_err();
        assert!(
            err.text().contains(":2 should start with user keyword."),
            "{err}"
        );
        assert!(acl.user("alice").expect("kept").password_ok(b"a"));
        std::fs::write(&path, "user alice off\n").expect("write");
        assert_eq!(acl.load().expect("load"), vec!["alice".to_string()]);
    }

    #[test]
    fn checks_answer_redis_texts() {
        let acl = Acl::new(None, None).expect("acl");
        let alice = acl
            .set_user(
                b"alice",
                &args(&["on", "nopass", "~app:*", "-@all", "+@lock", "+client|list"]),
            )
            .expect("set");
        let spec = |n: &[u8]| crate::cmd::spec::lookup(n).expect("spec");
        assert!(check_command(&alice, spec(b"LOCK"), &args(&["LOCK", "k", "o", "1"])).is_ok());
        assert_eq!(
            check_command(&alice, spec(b"FLUSHALL"), &args(&["FLUSHALL"]))
                .unwrap_err()
                .text(),
            "NOPERM User alice has no permissions to run the 'flushall' command"
        );
        assert_eq!(
            check_command(
                &alice,
                spec(b"CLIENT"),
                &args(&["client", "KILL", "ID", "1"])
            )
            .unwrap_err()
            .text(),
            "NOPERM User alice has no permissions to run the 'client|kill' command"
        );
        assert!(check_command(&alice, spec(b"CLIENT"), &args(&["client", "list"])).is_ok());
        assert!(check_keys(&alice, [&b"app:1"[..]]).is_ok());
        assert_eq!(check_keys(&alice, [&b"app:1"[..], b"x"]), Err(NOPERM_KEY));
    }
}
