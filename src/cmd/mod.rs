//! Commands: parse a [`Request`] into a typed command, then apply it.
//!
//! One file per family; each holds its command types, their parser and their `apply`:
//! `lock.rs` (LOCK WLOCK RLOCK REFRESH UNLOCK LOCK.INFO MLOCK MUNLOCK), `sem.rs` (SEM.*),
//! `string.rs` (SET GET DELIFEQ DELEX EXPIRE... PERSIST), `keyspace.rs` (DEL EXISTS TYPE PTTL
//! KEYS SCAN DBSIZE FLUSHALL), `connection.rs` (PING HELLO AUTH CLIENT SELECT QUIT RESET; the
//! password checks in `auth.rs`),
//! `admin.rs` (INFO COMMAND CONFIG TIME), `script.rs` (EVAL EVALSHA SCRIPT), `cluster.rs`
//! (CLUSTER ADDNODE REMOVENODE NODES).
//!
//! Commands that touch keys implement [`TxCommand`]: they name their keys and apply inside
//! a [`Tx`] of the lock table, so the same code serves a client and a script's
//! `redis.call`. Parsing takes no lock; apply never parses. Metadata (arity, flags, docs)
//! is data in `spec.rs`.

pub mod acl;
pub mod admin;
pub mod args;
pub mod auth;
pub mod cluster;
pub mod connection;
pub mod context;
pub mod keyspace;
pub mod lock;
pub mod script;
pub mod sem;
pub mod spec;
pub mod stats;
pub mod string;

use std::time::{Duration, Instant};

use bytes::Bytes;

pub use context::{ClientInfo, Clients, KillSwitch, Session, Shared};

use crate::error::RespError;
use crate::resp::{Reply, Request};
use crate::table::{Blocked, Outcome, Tx};
use args::{ArgLimits, Args};
use spec::CommandId;

/// A command that runs inside a lock-table section over the keys it names.
pub trait TxCommand {
    /// The keys whose shards must be held.
    fn keys(&self) -> Vec<&[u8]>;
    /// How long the request may stay queued for its grant.
    fn wait(&self) -> Wait {
        Wait::No
    }
    /// Applies the command.
    ///
    /// # Errors
    /// The command's error reply.
    fn apply(&self, tx: &mut Tx<'_>) -> Result<Outcome, RespError>;
}

/// How long a request may stay queued for its grant (`WAIT ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// No WAIT: answered at once, never queued.
    No,
    /// `WAIT 0`: queued until granted.
    Forever,
    /// `WAIT ms` (ms > 0): queued until granted or this long has passed.
    For(Duration),
}

impl Wait {
    /// Whether the request queues when it cannot be granted at once.
    pub fn queues(self) -> bool {
        self != Wait::No
    }
}

/// A parsed command.
#[derive(Debug)]
pub enum Command {
    /// Lock commands.
    Lock(lock::LockCommand),
    /// Semaphore commands.
    Sem(sem::SemCommand),
    /// String commands.
    Str(string::StrCommand),
    /// Keyspace commands on named keys.
    Key(keyspace::KeyCommand),
    /// Keyspace commands over the whole table.
    Table(keyspace::TableCommand),
    /// Connection commands.
    Conn(connection::ConnCommand),
    /// Admin commands: INFO, COMMAND, CONFIG, TIME.
    Admin(admin::AdminCommand),
    /// Scripting commands.
    Script(script::ScriptCommand),
    /// Cluster administration.
    Cluster(cluster::ClusterCommand),
    /// ACL users.
    Acl(acl::AclCommand),
}

impl Command {
    /// The key-touching part of this command, if it has one.
    pub fn as_tx(&self) -> Option<&dyn TxCommand> {
        match self {
            Command::Lock(c) => Some(c),
            Command::Sem(c) => Some(c),
            Command::Str(c) => Some(c),
            Command::Key(c) => Some(c),
            _ => None,
        }
    }
}

/// What the connection does after a command.
#[derive(Debug)]
pub enum Effect {
    /// Send this reply.
    Reply(Reply),
    /// Wait for the grant until `deadline` (None: forever).
    Blocked {
        /// The queued request.
        blocked: Blocked,
        /// When the WAIT runs out.
        deadline: Option<Instant>,
    },
    /// Send this reply, then close (QUIT).
    Close(Reply),
    /// Run this on a script thread, then do what it returns (scripts, KEYS, SCAN).
    Offload(Offload),
    /// Send the reply this resolves to (a membership change, once committed).
    Await(Pending),
}

/// A reply that comes once something outside the table is done (a membership change is
/// committed): the connection awaits it, after sending the replies before it.
pub struct Pending {
    work: std::pin::Pin<Box<dyn std::future::Future<Output = Reply> + Send>>,
    /// Whether the reply is known to be an error (counted as a failed call).
    error: bool,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pending")
    }
}

impl Pending {
    /// A reply that `work` resolves to.
    pub fn new(work: impl std::future::Future<Output = Reply> + Send + 'static) -> Self {
        Pending {
            work: Box::pin(work),
            error: false,
        }
    }

    /// An error reply that `work` resolves to (a WRONGPASS sent after its delay).
    pub fn failing(work: impl std::future::Future<Output = Reply> + Send + 'static) -> Self {
        Pending {
            work: Box::pin(work),
            error: true,
        }
    }

    /// Whether the reply is known to be an error.
    pub fn is_error(&self) -> bool {
        self.error
    }

    /// Waits for the reply.
    pub async fn reply(self) -> Reply {
        self.work.await
    }
}

/// Work that may take long (a script, a walk of the whole keyspace): it runs on a script
/// thread (see [`crate::lua::pool`]) while the connection awaits it, so that the I/O
/// workers keep serving every other connection.
pub struct Offload(Box<dyn FnOnce(&Shared) -> Executed + Send + 'static>);

impl std::fmt::Debug for Offload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Offload")
    }
}

impl Offload {
    /// Work to run off the I/O workers.
    pub fn new(work: impl FnOnce(&Shared) -> Executed + Send + 'static) -> Self {
        Offload(Box::new(work))
    }

    /// Runs the work on a script thread and returns its outcome.
    pub async fn run(self, server: std::sync::Arc<Shared>) -> Executed {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let shared = server.clone();
        let work = self.0;
        let submitted = server.lua.offload(Box::new(move || {
            let _ = tx.send(work(&shared));
        }));
        let lost = || Executed::reply(Reply::Error(RespError::fixed("ERR script thread failed")));
        if !submitted {
            return lost();
        }
        rx.await.unwrap_or_else(|_| lost())
    }
}

/// A command's effect plus the log position that must be durable before its reply.
#[derive(Debug)]
pub struct Executed {
    /// What to do.
    pub effect: Effect,
    /// Highest log sequence number the command produced (0: none).
    pub lsn: u64,
}

impl Executed {
    fn reply(reply: Reply) -> Self {
        Executed {
            effect: Effect::Reply(reply),
            lsn: 0,
        }
    }
}

/// Longest command name baton knows (`SEM.ACQUIRE`); longer names are unknown.
const MAX_NAME: usize = 16;

/// Upper-cases a command name into a stack buffer, so the hot path allocates nothing.
/// None when the name is longer than any known command.
fn upper_name<'b>(name: &[u8], buf: &'b mut [u8; MAX_NAME]) -> Option<&'b [u8]> {
    let out = buf.get_mut(..name.len())?;
    out.copy_from_slice(name);
    out.make_ascii_uppercase();
    Some(out)
}

/// Parses `req` into a command.
///
/// # Errors
/// Unknown command, wrong arity, or the first bad argument, with Redis's texts.
pub fn parse(req: &Request, limits: ArgLimits) -> Result<Command, RespError> {
    parse_with(lookup(req)?, req, limits)
}

/// The metadata of `req`'s command.
///
/// # Errors
/// `ERR unknown command ...`.
fn lookup(req: &Request) -> Result<&'static spec::Spec, RespError> {
    let Some((name, rest)) = req.args.split_first() else {
        return Err(RespError::unknown_command(b"", &[]));
    };
    let mut buf = [0u8; MAX_NAME];
    upper_name(name, &mut buf)
        .and_then(spec::lookup)
        .ok_or_else(|| RespError::unknown_command(name, rest))
}

/// Parses `req`, whose command `spec` describes.
fn parse_with(
    spec: &'static spec::Spec,
    req: &Request,
    limits: ArgLimits,
) -> Result<Command, RespError> {
    if !spec.arity_ok(req.args.len()) {
        return Err(RespError::arity(spec.name));
    }
    let rest = req.args.get(1..).unwrap_or_default();
    let mut args = Args::new(rest, limits);
    let cmd = match spec.id {
        CommandId::Lock(id) => Command::Lock(lock::LockCommand::parse(id, &mut args)?),
        CommandId::Sem(id) => Command::Sem(sem::SemCommand::parse(id, &mut args)?),
        CommandId::Str(id) => Command::Str(string::StrCommand::parse(id, spec.name, &mut args)?),
        CommandId::Key(id) => Command::Key(keyspace::KeyCommand::parse(id, &mut args)?),
        CommandId::Table(id) => Command::Table(keyspace::TableCommand::parse(id, &mut args)?),
        CommandId::Conn(id) => Command::Conn(connection::ConnCommand::parse(id, &mut args)?),
        CommandId::Admin(id) => Command::Admin(admin::AdminCommand::parse(id, &mut args)?),
        CommandId::Script(id) => Command::Script(script::ScriptCommand::parse(id, &mut args)?),
        CommandId::Acl => Command::Acl(acl::AclCommand::parse(&mut args)?),
        CommandId::Cluster => Command::Cluster(cluster::ClusterCommand::parse(&mut args)?),
    };
    Ok(cmd)
}

/// Parses and executes one request for a connection.
///
/// Every request is counted here, by command and result, with the time it took
/// ([`stats::CommandStats`]): the dispatch point of INFO commandstats and
/// `baton_commands_total`.
pub fn execute(req: &Request, server: &Shared, session: &mut Session) -> Executed {
    let started = stats::Started::now();
    // One lookup and one lock of the client's info per command (this runs for every
    // request): the spec found here serves the parse, the stats and CLIENT LIST.
    let spec = lookup(req);
    let known = spec.as_ref().ok().copied();
    session.info.lock().last_cmd = known.map(|spec| spec.name);
    // AUTH, HELLO, QUIT and RESET run before AUTH and whoever the user is (Redis's no-auth
    // commands).
    let no_auth = known.is_some_and(connection::allowed_before_auth);
    let (executed, result) = if !session.authenticated && !no_auth {
        (
            Executed::reply(RespError::NOAUTH.into()),
            stats::CallResult::Rejected,
        )
    } else {
        session.refresh_user(&server.acl);
        let user = &session.user;
        let permitted = |spec: &'static spec::Spec| {
            if !user.all_commands() && !no_auth {
                crate::acl::check_command(user, spec, &req.args)?;
            }
            let mut cmd = parse_with(spec, req, server.arg_limits())?;
            permit_keys(user, &mut cmd)?;
            Ok((spec, cmd))
        };
        match spec.and_then(permitted) {
            // -MISCONF and -TRYAGAIN refusals are not executed: rejected, as Redis counts
            // its -MISCONF and -OOM refusals in rejected_calls.
            Ok((spec, cmd)) => match refusal(spec, &cmd, server) {
                Some(err) => (Executed::reply(err.into()), stats::CallResult::Rejected),
                None => match admit_and_apply(cmd, server, session) {
                    Ok(executed) => {
                        let result = match &executed.effect {
                            Effect::Reply(Reply::Error(_)) => stats::CallResult::Failed,
                            Effect::Await(pending) if pending.is_error() => {
                                stats::CallResult::Failed
                            }
                            Effect::Blocked { .. } => stats::CallResult::Blocked,
                            _ => stats::CallResult::Ok,
                        };
                        (executed, result)
                    }
                    Err(err) => (Executed::reply(err.into()), stats::CallResult::Failed),
                },
            },
            Err(err) => (Executed::reply(err.into()), stats::CallResult::Rejected),
        }
    };
    if let Effect::Reply(Reply::Error(err)) = &executed.effect {
        server.connections.count_denial(err);
    }
    server.commands.record(known, result, started.elapsed());
    executed
}

/// Applies `cmd` once the user's limits admit it: a place among its waiting requests
/// (`max-waiters`) and its held keys (`max-held-keys`).
///
/// # Errors
/// A limit's `-ERR max ... reached` text; nothing is applied then.
fn admit_and_apply(
    cmd: Command,
    server: &Shared,
    session: &mut Session,
) -> Result<Executed, RespError> {
    let slot = reserve_wait(server, session, &cmd)?;
    let held_gate = held_keys_gate(server, &session.user, &cmd)?;
    let executed = apply(cmd, server, session);
    drop(held_gate);
    if matches!(executed.effect, Effect::Blocked { .. }) {
        // Held until the wait ends (`Session::end_wait`) or the connection goes; any
        // other outcome gives the place back at once.
        session.wait_slot = slot;
    }
    Ok(executed)
}

/// Checks the keys of `cmd` (a key-taking command's, EVAL's declared ones) against
/// `user`'s patterns, and marks a DEL by a user without `@admin` so that it refuses keys
/// with live holders. Nothing to do for a user with every key and `@admin`.
///
/// # Errors
/// `-NOPERM No permissions to access a key`.
pub(crate) fn permit_keys(user: &crate::acl::User, cmd: &mut Command) -> Result<(), RespError> {
    if !user.all_keys() {
        match cmd {
            Command::Script(script::ScriptCommand::Eval(eval)) => {
                crate::acl::check_keys(user, eval.keys().iter().map(|k| k.as_ref()))?;
            }
            _ => {
                if let Some(txc) = cmd.as_tx() {
                    crate::acl::check_keys(user, txc.keys())?;
                }
            }
        }
    }
    if !user.is_admin() {
        if let Command::Key(keyspace::KeyCommand::Del { held_guard, .. }) = cmd {
            *held_guard = Some(user.name().into());
        }
    }
    Ok(())
}

/// Whether `user` may run `req` (command and keys), as `execute` checks it: None when it
/// may or when the request does not parse (the node that runs it answers that).
pub fn acl_refusal(req: &Request, server: &Shared, user: &crate::acl::User) -> Option<RespError> {
    if user.all_commands() && user.all_keys() {
        return None;
    }
    let spec = lookup(req).ok()?;
    if !connection::allowed_before_auth(spec) {
        if let Err(err) = crate::acl::check_command(user, spec, &req.args) {
            return Some(err);
        }
    }
    let mut cmd = parse_with(spec, req, server.arg_limits()).ok()?;
    permit_keys(user, &mut cmd).err()
}

/// For a user with `max-held-keys:N` and a command that takes holds (LOCK, WLOCK, RLOCK,
/// MLOCK, SEM.ACQUIRE): checks the user's held keys (`acl::held`) and returns the gate to
/// keep while the command runs. A WAIT is checked when it is asked, not again when it is
/// granted later.
///
/// # Errors
/// `-ERR max held keys reached for user '<name>' (max N)`.
fn held_keys_gate<'s>(
    server: &'s Shared,
    user: &std::sync::Arc<crate::acl::User>,
    cmd: &Command,
) -> Result<Option<crate::acl::held::HeldGate<'s>>, RespError> {
    let takes_holds = matches!(
        cmd,
        Command::Lock(lock::LockCommand::Acquire(_) | lock::LockCommand::MLock(_))
            | Command::Sem(sem::SemCommand::Acquire { .. })
    );
    match cmd.as_tx() {
        Some(txc) if takes_holds && user.limits().max_held_keys > 0 => server
            .acl
            .held
            .admit(&server.table, server.now(), user, &txc.keys())
            .map(Some),
        _ => Ok(None),
    }
}

/// For a user with `max-waiters:N`, a place among its waiting requests for `cmd` if it
/// may wait (None when it cannot wait or the user has no limit).
///
/// # Errors
/// `-ERR max waiters reached for user '<name>' (max N)` when all N are taken: the request
/// is answered at once rather than queued.
fn reserve_wait(
    server: &Shared,
    session: &Session,
    cmd: &Command,
) -> Result<Option<crate::acl::WaitSlot>, RespError> {
    let max = session.user.limits().max_waiters;
    if max == 0 || !cmd.as_tx().is_some_and(|t| t.wait().queues()) {
        return Ok(None);
    }
    server
        .acl
        .reserve_wait(session.user.name(), max)
        .map(Some)
        .ok_or_else(|| {
            RespError::new(format!(
                "ERR max waiters reached for user '{}' (max {max})",
                session.user.name()
            ))
        })
}

/// `-TRYAGAIN` of a grant during `--restart-delay-ms`.
pub const RESTART_DELAY: RespError = RespError::fixed(
    "TRYAGAIN restart delay: grants are refused until the leases of before the restart have run out",
);

/// Why `cmd` (described by `spec`) must not run now, from a client or a script: a write
/// (or PING, as Redis) while the log cannot write answers `-MISCONF` without being
/// applied; a grant during the restart delay answers `-TRYAGAIN`.
pub(crate) fn refusal(spec: &spec::Spec, cmd: &Command, server: &Shared) -> Option<RespError> {
    if spec.flags.contains(&"write") || spec.id == CommandId::Conn(connection::ConnId::Ping) {
        if let Some(err) = server.misconf() {
            return Some(err);
        }
    }
    (server.refusing_grants() && is_grant(cmd)).then_some(RESTART_DELAY)
}

/// Applies a parsed command.
///
/// In cluster mode a command that touches the table runs only on the serving leader
/// (elsewhere: `-TRYAGAIN no leader`), and one that changed nothing still waits for a
/// read barrier: its reply goes out once every change it saw is committed and this node
/// was still the leader (linearizable reads; see docs/replication.md).
pub fn apply(cmd: Command, server: &Shared, session: &mut Session) -> Executed {
    if let Some(cluster) = &server.cluster {
        if cmd.as_tx().is_some() || matches!(cmd, Command::Table(_) | Command::Script(_)) {
            if !cluster.is_serving() {
                return Executed::reply(crate::cluster::NO_LEADER.into());
            }
            let mut executed = apply_local(cmd, server, session);
            if executed.lsn == 0 && matches!(executed.effect, Effect::Reply(_)) {
                executed.lsn = cluster.barrier();
            }
            return executed;
        }
    }
    apply_local(cmd, server, session)
}

fn apply_local(cmd: Command, server: &Shared, session: &mut Session) -> Executed {
    if let Some(txc) = cmd.as_tx() {
        if server.budget.over_maxmemory() && denied_when_full(&cmd) {
            return Executed::reply(Reply::Error(crate::server::budget::OOM));
        }
        let now = server.now();
        let keys = txc.keys();
        let max_keys = server.config.max_keys_per_command;
        if max_keys > 0 && keys.len() > max_keys {
            return Executed::reply(Reply::Error(too_many_keys(max_keys)));
        }
        let ran = server.table.run(&keys, now, |tx| txc.apply(tx));
        let effect = match ran.value {
            Ok(Outcome::Reply(reply)) => Effect::Reply(reply),
            Ok(Outcome::Blocked(blocked)) => {
                let deadline = match txc.wait() {
                    Wait::No | Wait::Forever => None,
                    Wait::For(wait) => now.mono.checked_add(wait),
                };
                Effect::Blocked { blocked, deadline }
            }
            Err(err) => Effect::Reply(err.into()),
        };
        return Executed {
            effect,
            lsn: ran.lsn,
        };
    }
    match cmd {
        Command::Table(c) => c.apply(server, session),
        Command::Conn(c) => c.apply(server, session),
        Command::Admin(c) => Executed::reply(c.apply(server, session)),
        Command::Script(c) => c.apply(server, session),
        Command::Cluster(c) => c.apply(server),
        Command::Acl(c) => c.apply(server, session),
        _ => Executed::reply(RespError::SYNTAX.into()),
    }
}

/// Whether `cmd` can create a hold or a string with an expiry (what a Redlock acquire
/// is): LOCK, WLOCK, RLOCK, MLOCK, SEM.ACQUIRE, SET with EX/PX/EXAT/PXAT and the EXPIRE
/// family.
fn is_grant(cmd: &Command) -> bool {
    use string::{ExpirySpec, StrCommand};
    match cmd {
        Command::Lock(lock::LockCommand::Acquire(_) | lock::LockCommand::MLock(_)) => true,
        Command::Sem(sem::SemCommand::Acquire { .. }) => true,
        Command::Str(StrCommand::Set { expiry, .. }) => {
            matches!(expiry, ExpirySpec::In(_) | ExpirySpec::At(_))
        }
        Command::Str(StrCommand::Expire { .. }) => true,
        _ => false,
    }
}

/// Whether `cmd` is refused while the server is over `--maxmemory`: what adds a hold or a
/// value (LOCK, MLOCK, SEM.ACQUIRE, SET). Releases, refreshes and reads always run.
pub fn denied_when_full(cmd: &Command) -> bool {
    is_grant(cmd) || matches!(cmd, Command::Str(string::StrCommand::Set { .. }))
}

/// `-ERR too many keys (max N)`: a command names more keys than `--max-keys-per-command`.
pub fn too_many_keys(max: usize) -> RespError {
    RespError::new(format!("ERR too many keys (max {max})"))
}

/// Checks that a list of keys has no duplicates (MLOCK, MUNLOCK).
///
/// # Errors
/// `err` when a key repeats.
pub fn no_duplicates(keys: &[Bytes], err: RespError) -> Result<(), RespError> {
    let mut seen = std::collections::HashSet::with_capacity(keys.len());
    for key in keys {
        if !seen.insert(key) {
            return Err(err);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_name_fits_the_name_buffer() {
        for spec in spec::COMMANDS {
            let mut buf = [0u8; MAX_NAME];
            let upper = upper_name(spec.name.as_bytes(), &mut buf);
            assert_eq!(upper, Some(spec.name.as_bytes()), "{}", spec.name);
        }
    }

    /// Requests for [`keys_agree_with_the_spec`]: at least one per command in
    /// `spec::COMMANDS`, and for a command with options after its keys one with them too
    /// (they must not shift the positions COMMAND INFO announces).
    const SAMPLES: &[&[&str]] = &[
        &["LOCK", "k", "o", "1000"],
        &["LOCK", "k", "o", "1000", "WAIT", "5"],
        &["WLOCK", "k", "o", "1000", "WAIT", "5", "SHARED"],
        &["RLOCK", "k", "o", "1000", "WAIT", "0"],
        &["REFRESH", "k", "o", "1000"],
        &["UNLOCK", "k", "o"],
        &["MLOCK", "2", "a", "b", "o", "1000"],
        &["MLOCK", "3", "a", "b", "c", "o", "1000", "WAIT", "5"],
        &["MUNLOCK", "2", "a", "b", "o"],
        &["LOCK.INFO", "k"],
        &["SEM.CREATE", "s", "3"],
        &["SEM.ACQUIRE", "s", "o", "1000"],
        &[
            "SEM.ACQUIRE",
            "s",
            "o",
            "1000",
            "PERMITS",
            "2",
            "CAPACITY",
            "3",
            "WAIT",
            "5",
        ],
        &["SEM.RELEASE", "s", "o"],
        &["SEM.INFO", "s"],
        &["SEM.DELETE", "s"],
        &["SET", "k", "v"],
        &["SET", "k", "v", "NX", "GET", "PX", "100"],
        &["GET", "k"],
        &["DELIFEQ", "k", "v"],
        &["DELEX", "k"],
        &["DELEX", "k", "IFEQ", "v"],
        &["EXPIRE", "k", "10", "NX"],
        &["PEXPIRE", "k", "10"],
        &["EXPIREAT", "k", "10"],
        &["PEXPIREAT", "k", "10", "GT"],
        &["PERSIST", "k"],
        &["PTTL", "k"],
        &["TTL", "k"],
        &["DEL", "a", "b", "c"],
        &["UNLINK", "a"],
        &["EXISTS", "a", "b", "a"],
        &["TYPE", "k"],
        &["KEYS", "*"],
        &["SCAN", "0", "MATCH", "*", "COUNT", "5"],
        &["DBSIZE"],
        &["FLUSHALL"],
        &["FLUSHDB", "ASYNC"],
        &["EVAL", "return 1", "2", "a", "b", "x"],
        &[
            "EVALSHA",
            "0123456789012345678901234567890123456789",
            "1",
            "a",
        ],
        &["SCRIPT", "FLUSH"],
        &["PING"],
        &["ECHO", "m"],
        &["HELLO", "3"],
        &["AUTH", "p"],
        &["SELECT", "0"],
        &["CLIENT", "ID"],
        &["QUIT"],
        &["RESET"],
        &["COMMAND", "COUNT"],
        &["INFO"],
        &["CONFIG", "GET", "*"],
        &["CLUSTER", "NODES"],
        &["TIME"],
    ];

    /// The keys that `spec` says `args` (name first) names: its first/last/step range, or
    /// for a `movablekeys` command (whose range is 0 0 0, as Redis gives for commands that
    /// count their keys) the `numkeys` keys after its `numkeys` argument.
    fn keys_by_spec<'a>(spec: &spec::Spec, args: &'a [Bytes]) -> Vec<&'a [u8]> {
        if spec.flags.contains(&"movablekeys") {
            assert_eq!((spec.first_key, spec.last_key, spec.step), (0, 0, 0));
            let at = 1 + spec
                .args
                .iter()
                .position(|a| a.name == "numkeys")
                .expect("a movablekeys command has a numkeys argument");
            let n: usize = std::str::from_utf8(&args[at]).unwrap().parse().unwrap();
            return args[at + 1..at + 1 + n]
                .iter()
                .map(|k| k.as_ref())
                .collect();
        }
        if spec.first_key == 0 {
            return Vec::new();
        }
        let last = if spec.last_key < 0 {
            args.len() as i32 + spec.last_key
        } else {
            spec.last_key
        };
        (spec.first_key..=last)
            .step_by(spec.step as usize)
            .map(|i| args[i as usize].as_ref())
            .collect()
    }

    /// COMMAND INFO's key positions (what redis-cli and cluster clients read) and the keys
    /// a command locks (`TxCommand::keys`, a script's declared keys) agree, for every
    /// command in the table.
    #[test]
    fn keys_agree_with_the_spec() {
        let limits = ArgLimits {
            max_key_bytes: 512,
            max_ttl_ms: 86_400_000,
        };
        for spec in spec::COMMANDS {
            let samples: Vec<_> = SAMPLES.iter().filter(|s| s[0] == spec.name).collect();
            assert!(!samples.is_empty(), "no sample request for {}", spec.name);
            for sample in samples {
                let req = Request {
                    args: sample.iter().map(|a| Bytes::from(*a)).collect(),
                };
                let cmd = parse(&req, limits)
                    .unwrap_or_else(|e| panic!("{sample:?} does not parse: {e:?}"));
                let keys: Vec<&[u8]> = match &cmd {
                    Command::Script(script::ScriptCommand::Eval(eval)) => {
                        eval.keys().iter().map(|k| k.as_ref()).collect()
                    }
                    cmd => cmd.as_tx().map(|tx| tx.keys()).unwrap_or_default(),
                };
                assert_eq!(keys, keys_by_spec(spec, &req.args), "{sample:?}");
            }
        }
    }

    #[test]
    fn wait_says_how_long() {
        let limits = ArgLimits {
            max_key_bytes: 512,
            max_ttl_ms: 86_400_000,
        };
        let wait = |extra: &[&'static str]| {
            let args = ["LOCK", "k", "o", "1000"].iter().chain(extra);
            let req = Request {
                args: args.map(|a| Bytes::from_static(a.as_bytes())).collect(),
            };
            parse(&req, limits).map(|cmd| cmd.as_tx().map(|tx| tx.wait()))
        };
        assert_eq!(wait(&[]), Ok(Some(Wait::No)));
        assert_eq!(wait(&["WAIT", "0"]), Ok(Some(Wait::Forever)));
        assert_eq!(
            wait(&["WAIT", "5"]),
            Ok(Some(Wait::For(Duration::from_millis(5))))
        );
        assert_eq!(wait(&["WAIT", "-1"]), Err(RespError::INVALID_WAIT));
    }

    /// Two entries with one id would send the second to the first's parser: each command
    /// has its own id (and its own name).
    #[test]
    fn every_command_has_its_own_id() {
        for (i, a) in spec::COMMANDS.iter().enumerate() {
            for b in &spec::COMMANDS[i + 1..] {
                assert_ne!(a.id, b.id, "{} and {} share an id", a.name, b.name);
                assert_ne!(a.name, b.name);
            }
        }
    }
}
