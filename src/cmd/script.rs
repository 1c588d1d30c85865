//! Scripting commands: parsing here, execution in [`crate::lua::Engine`].
//!
//! ```text
//! EVAL script numkeys [key ...] [arg ...]
//! EVALSHA sha1 numkeys [key ...] [arg ...]
//! SCRIPT LOAD script | EXISTS sha1 [sha1 ...] | FLUSH [ASYNC|SYNC]
//! ```
//!
//! A script is atomic over the keys it declares: their shards are held (in shard order) for
//! the whole run, and every `redis.call` applies its command inside that section. A script
//! that declares no keys holds no shard. Touching a key it did not declare is an error, as
//! in a Redis cluster. A blocking command inside a script never waits. Scripts run on the
//! script threads ([`crate::lua::pool`]), never on the I/O workers.

use bytes::Bytes;

use super::args::Args;
use super::{Command, Executed, Session, Shared};
use crate::error::RespError;
use crate::lua::{split_keys, Script};
use crate::resp::Reply;
use crate::table::{Outcome, Tx};

/// The commands of this family, as the command table names them:
/// [`ScriptCommand::parse`] matches every one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptId {
    /// EVAL.
    Eval,
    /// EVALSHA.
    EvalSha,
    /// SCRIPT.
    Script,
}

/// A parsed scripting command.
#[derive(Debug, Clone)]
pub enum ScriptCommand {
    /// EVAL / EVALSHA.
    Eval(Eval),
    /// SCRIPT LOAD.
    Load(Bytes),
    /// SCRIPT EXISTS.
    Exists(Vec<Bytes>),
    /// SCRIPT FLUSH.
    Flush,
}

/// EVAL / EVALSHA's arguments, kept as the client sent them (one vector, not three: this
/// is the hot path of the Redlock release).
#[derive(Debug, Clone)]
pub struct Eval {
    /// EVALSHA rather than EVAL.
    pub sha: bool,
    /// The arguments after the command name: script or sha, numkeys, keys, argv. The
    /// parser checked that the first two and `numkeys` keys are there.
    args: Vec<Bytes>,
    /// How many keys follow numkeys.
    numkeys: usize,
}

impl Eval {
    /// The script body (EVAL) or sha (EVALSHA).
    pub fn script(&self) -> &Bytes {
        &self.args[0]
    }

    /// The declared keys.
    pub fn keys(&self) -> &[Bytes] {
        &self.args[2..2 + self.numkeys]
    }

    /// The arguments after the keys.
    pub fn argv(&self) -> &[Bytes] {
        &self.args[2 + self.numkeys..]
    }
}

impl ScriptCommand {
    /// Parses the arguments of command `id` (arity already checked).
    ///
    /// # Errors
    /// Redis's texts for numkeys and SCRIPT subcommands; `invalid key` for a declared key.
    pub fn parse(id: ScriptId, args: &mut Args<'_>) -> Result<Self, RespError> {
        let max_key_bytes = args.limits().max_key_bytes;
        let rest = args.rest();
        match id {
            ScriptId::Eval | ScriptId::EvalSha => {
                let sha = id == ScriptId::EvalSha;
                let tail = rest
                    .get(1..)
                    .ok_or_else(|| RespError::arity(if sha { "evalsha" } else { "eval" }))?;
                let (keys, _) = split_keys(tail)?;
                for key in keys {
                    super::args::check_key(key, max_key_bytes)?;
                }
                Ok(ScriptCommand::Eval(Eval {
                    sha,
                    args: rest.to_vec(),
                    numkeys: keys.len(),
                }))
            }
            ScriptId::Script => {
                let (sub, tail) = rest
                    .split_first()
                    .ok_or_else(|| RespError::arity("script"))?;
                match sub.to_ascii_uppercase().as_slice() {
                    b"LOAD" if tail.len() == 1 => Ok(ScriptCommand::Load(tail[0].clone())),
                    b"LOAD" => Err(RespError::arity("script|load")),
                    b"EXISTS" if !tail.is_empty() => Ok(ScriptCommand::Exists(tail.to_vec())),
                    b"EXISTS" => Err(RespError::arity("script|exists")),
                    b"FLUSH" if tail.len() <= 1 => Ok(ScriptCommand::Flush),
                    other => Err(RespError::new(format!(
                        "ERR unknown subcommand '{}'. Try SCRIPT HELP.",
                        crate::error::printable(other, 64)
                    ))),
                }
            }
        }
    }

    /// Runs the command.
    pub fn apply(&self, server: &Shared, session: &mut Session) -> Executed {
        let engine = &server.lua;
        match self {
            ScriptCommand::Load(source) => Executed::reply(match engine.load(source) {
                Ok(sha) => Reply::bulk_string(sha),
                Err(err) => Reply::Error(err),
            }),
            ScriptCommand::Exists(shas) => Executed::reply(Reply::Array(
                shas.iter()
                    .map(|s| Reply::Int(i64::from(engine.exists(s))))
                    .collect(),
            )),
            ScriptCommand::Flush => {
                engine.flush();
                Executed::reply(Reply::ok())
            }
            ScriptCommand::Eval(eval) => {
                let max = server.config.max_keys_per_command;
                if max > 0 && eval.numkeys > max {
                    return Executed::reply(Reply::Error(super::too_many_keys(max)));
                }
                let eval = eval.clone();
                let user = session.user.clone();
                Executed {
                    effect: super::Effect::Offload(super::Offload::new(move |server| {
                        run_script(server, &eval, &user)
                    })),
                    lsn: 0,
                }
            }
        }
    }
}

/// Runs a script (on a script thread) holding the shards of its declared keys, and only
/// those: a script without keys holds none.
fn run_script(server: &Shared, eval: &Eval, user: &crate::acl::User) -> Executed {
    let now = server.now();
    let (keys, argv) = (eval.keys(), eval.argv());
    let script = if eval.sha {
        Script::Sha(eval.script())
    } else {
        Script::Source(eval.script())
    };
    let key_refs: smallvec::SmallVec<[&[u8]; 4]> = keys.iter().map(|k| k.as_ref()).collect();
    let ran = server.table.run(&key_refs, now, |tx| {
        let mut call = |args: Vec<Bytes>| script_call(server, tx, keys, args, user);
        server.lua.eval(script, keys, argv, &mut call)
    });
    Executed {
        effect: super::Effect::Reply(ran.value),
        lsn: ran.lsn,
    }
}

/// A script named a key it did not declare (Redis Cluster's text; the engine appends
/// ` script: SHA, on @user_script:LINE.`).
const NON_LOCAL_KEY: RespError =
    RespError::fixed("ERR Script attempted to access a non local key in a cluster node");

/// A script passed a command an argument longer than `--max-bulk-bytes` (Redis's text for
/// a string over `proto-max-bulk-len`).
const STRING_TOO_LONG: RespError =
    RespError::fixed("ERR string exceeds maximum allowed size (proto-max-bulk-len)");

/// A `redis.call` the script's user may not make: Redis 7's `ACL failure in script: `
/// before the NOPERM text, counted as the refusal it is.
fn acl_failure(server: &Shared, err: &RespError) -> RespError {
    server.connections.count_denial(err);
    let text = err.text();
    RespError::new(format!(
        "ERR ACL failure in script: {}",
        text.strip_prefix("NOPERM ").unwrap_or(text)
    ))
}

/// One `redis.call` from a script: parse, check the user's permissions and that the keys
/// are held, apply in the section.
fn script_call(
    server: &Shared,
    tx: &mut Tx<'_>,
    declared: &[Bytes],
    args: Vec<Bytes>,
    user: &crate::acl::User,
) -> Reply {
    // A client's request is bounded by the decoder; a script's arguments only by Lua.
    if args.iter().any(|a| a.len() > server.config.max_bulk_bytes) {
        return Reply::Error(STRING_TOO_LONG);
    }
    let req = crate::resp::Request { args };
    let cmd = match super::lookup(&req).and_then(|spec| {
        crate::acl::check_command(user, spec, &req.args).map_err(|e| acl_failure(server, &e))?;
        let mut cmd = super::parse_with(spec, &req, server.arg_limits())?;
        super::permit_keys(user, &mut cmd).map_err(|e| acl_failure(server, &e))?;
        Ok((spec, cmd))
    }) {
        Ok((spec, cmd)) => match super::refusal(spec, &cmd, server) {
            Some(err) => return Reply::Error(err),
            None => cmd,
        },
        Err(err) => return Reply::Error(err),
    };
    let Some(txc) = cmd.as_tx() else {
        return match cmd {
            Command::Conn(super::connection::ConnCommand::Ping(None)) => Reply::simple("PONG"),
            Command::Admin(super::admin::AdminCommand::Time) => {
                super::admin::AdminCommand::Time.apply_static()
            }
            _ => Reply::Error(crate::lua::NOT_FROM_SCRIPT),
        };
    };
    // Only declared keys, whatever shard they hash to, so the rule does not depend on the
    // shard layout (and only their shards are held).
    if !txc
        .keys()
        .iter()
        .all(|k| declared.iter().any(|d| d.as_ref() == *k))
    {
        return Reply::Error(NON_LOCAL_KEY);
    }
    if server.budget.over_maxmemory() && super::denied_when_full(&cmd) {
        return Reply::Error(crate::server::budget::OOM);
    }
    match txc.apply(tx) {
        Ok(Outcome::Reply(reply)) => reply,
        Ok(Outcome::Blocked(blocked)) => {
            // Scripts never wait: leave the queue at once and answer as without WAIT.
            tx.cancel_in_place(&blocked.waiter);
            if blocked.waiter.multi {
                Reply::NilArray
            } else {
                Reply::Nil
            }
        }
        Err(err) if err.text().starts_with("NOPERM ") => Reply::Error(acl_failure(server, &err)),
        Err(err) => Reply::Error(err),
    }
}
