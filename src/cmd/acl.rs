//! ACL: users as tenants (the registry and the rules are in `crate::acl`).
//!
//! ```text
//! ACL WHOAMI | LIST | USERS | CAT [category] | GETUSER name
//!     | SETUSER name [rule ...] | DELUSER name [name ...] | SAVE | LOAD
//! ```
//!
//! Deleting or disabling a user closes its connections, as Redis does.

use bytes::Bytes;

use super::args::Args;
use super::spec::{ArgDoc, Spec};
use super::{Executed, Session, Shared};
use crate::acl::commands;
use crate::error::RespError;
use crate::resp::Reply;

/// ACL's entry in the command table (kept here so the ACL is one module; `COMMAND`
/// lists it with the others).
pub static SPEC: Spec = Spec {
    name: "ACL",
    id: super::spec::CommandId::Acl,
    arity: -2,
    flags: &["admin", "noscript", "loading", "stale"],
    first_key: 0,
    last_key: 0,
    step: 0,
    group: "server",
    summary: "Users: WHOAMI, LIST (one `user NAME rule...` line each), USERS, CAT \
              [category], GETUSER name, SETUSER name [rule ...], DELUSER name [name ...], \
              SAVE and LOAD (--aclfile). Deleting or disabling a user closes its connections.",
    args: &[
        ArgDoc {
            name: "subcommand",
            kind: "string",
            token: None,
            optional: false,
            multiple: false,
            args: &[],
        },
        ArgDoc {
            name: "arg",
            kind: "string",
            token: None,
            optional: true,
            multiple: true,
            args: &[],
        },
    ],
};

/// A parsed ACL subcommand.
#[derive(Debug, Clone)]
pub enum AclCommand {
    /// WHOAMI.
    WhoAmI,
    /// LIST.
    List,
    /// USERS.
    Users,
    /// `CAT [category]`.
    Cat(Option<Bytes>),
    /// GETUSER name.
    GetUser(Bytes),
    /// SETUSER name rule...
    SetUser(Bytes, Vec<Bytes>),
    /// DELUSER name...
    DelUser(Vec<Bytes>),
    /// SAVE.
    Save,
    /// LOAD.
    Load,
}

impl AclCommand {
    /// Parses the arguments after `ACL`.
    ///
    /// # Errors
    /// Redis's texts for an unknown subcommand or a wrong argument count.
    pub fn parse(args: &mut Args<'_>) -> Result<Self, RespError> {
        let raw = args.bytes()?;
        let sub = raw.to_ascii_lowercase();
        let mut rest = Vec::new();
        while let Some(a) = args.next() {
            rest.push(a.clone());
        }
        let sub_name = String::from_utf8_lossy(&sub).into_owned();
        let arity = |ok: bool| {
            if ok {
                Ok(())
            } else {
                Err(RespError::new(format!(
                    "ERR wrong number of arguments for 'acl|{sub_name}' command"
                )))
            }
        };
        let cmd = match sub.as_slice() {
            b"whoami" => arity(rest.is_empty()).map(|()| AclCommand::WhoAmI)?,
            b"list" => arity(rest.is_empty()).map(|()| AclCommand::List)?,
            b"users" => arity(rest.is_empty()).map(|()| AclCommand::Users)?,
            b"save" => arity(rest.is_empty()).map(|()| AclCommand::Save)?,
            b"load" => arity(rest.is_empty()).map(|()| AclCommand::Load)?,
            b"cat" => {
                arity(rest.len() <= 1)?;
                AclCommand::Cat(rest.pop())
            }
            b"getuser" => {
                arity(rest.len() == 1)?;
                AclCommand::GetUser(rest.remove(0))
            }
            b"setuser" => {
                arity(!rest.is_empty())?;
                let name = rest.remove(0);
                AclCommand::SetUser(name, rest)
            }
            b"deluser" => {
                arity(!rest.is_empty())?;
                AclCommand::DelUser(rest)
            }
            _ => {
                return Err(RespError::new(format!(
                    "ERR unknown subcommand '{}'. Try ACL HELP.",
                    crate::error::printable(&raw, 64)
                )))
            }
        };
        Ok(cmd)
    }

    /// Runs the subcommand.
    pub fn apply(&self, server: &Shared, session: &mut Session) -> Executed {
        let acl = &server.acl;
        let reply = match self {
            AclCommand::WhoAmI => Reply::bulk_string(session.user.name().to_string()),
            AclCommand::List => Reply::Array(
                acl.users()
                    .iter()
                    .map(|u| Reply::bulk_string(u.describe()))
                    .collect(),
            ),
            AclCommand::Users => Reply::Array(
                acl.users()
                    .iter()
                    .map(|u| Reply::bulk_string(u.name().to_string()))
                    .collect(),
            ),
            AclCommand::Cat(None) => Reply::Array(
                commands::CATEGORIES
                    .iter()
                    .map(|(name, _)| Reply::bulk_static(name))
                    .collect(),
            ),
            AclCommand::Cat(Some(cat)) => {
                let name = String::from_utf8_lossy(cat).to_ascii_lowercase();
                match commands::category(&name) {
                    Some(bit) => Reply::Array(
                        commands::table()
                            .in_category(bit)
                            .into_iter()
                            .map(|n| Reply::bulk_string(n.to_string()))
                            .collect(),
                    ),
                    None => RespError::new(format!(
                        "ERR Unknown category '{}'",
                        crate::error::printable(cat, 64)
                    ))
                    .into(),
                }
            }
            AclCommand::GetUser(name) => match acl.user(&String::from_utf8_lossy(name)) {
                Some(user) => getuser(&user),
                None => Reply::Nil,
            },
            AclCommand::SetUser(name, rules) => match acl.set_user(name, rules) {
                Ok(user) => {
                    if !user.enabled() {
                        close_connections_of(server, &[user.name().to_string()], session);
                    }
                    Reply::ok()
                }
                Err(err) => err.into(),
            },
            AclCommand::DelUser(names) => match acl.del_users(names) {
                Ok(removed) => {
                    close_connections_of(server, &removed, session);
                    Reply::Int(removed.len() as i64)
                }
                Err(err) => err.into(),
            },
            AclCommand::Save => match acl.save() {
                Ok(()) => Reply::ok(),
                Err(err) => err.into(),
            },
            AclCommand::Load => match acl.load() {
                Ok(gone) => {
                    close_connections_of(server, &gone, session);
                    Reply::ok()
                }
                Err(err) => err.into(),
            },
        };
        Executed::reply(reply)
    }
}

/// Closes every connection authenticated as one of `names` (the caller's too: its reply
/// goes out first).
fn close_connections_of(server: &Shared, names: &[String], _session: &Session) {
    if names.is_empty() {
        return;
    }
    server
        .clients
        .kill_where(|c| names.iter().any(|n| **n == *c.user));
}

/// ACL GETUSER's map, as Redis 7's (flags, passwords, commands, keys, channels,
/// selectors) plus baton's limits.
fn getuser(user: &crate::acl::User) -> Reply {
    let mut flags = vec![Reply::bulk_static(if user.enabled() {
        "on"
    } else {
        "off"
    })];
    if user.nopass() {
        flags.push(Reply::bulk_static("nopass"));
    }
    let keys = if user.all_keys() {
        "~*".to_string()
    } else {
        user.patterns()
            .iter()
            .map(|p| format!("~{}", String::from_utf8_lossy(p)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let limits = user.limits();
    Reply::map_static(vec![
        ("flags", Reply::Array(flags)),
        (
            "passwords",
            Reply::Array(
                user.password_hashes()
                    .iter()
                    .map(|d| Reply::bulk_string(crate::acl::rules::hex(d)))
                    .collect(),
            ),
        ),
        (
            "commands",
            Reply::bulk_string(user.command_rules().join(" ")),
        ),
        ("keys", Reply::bulk_string(keys)),
        ("channels", Reply::bulk_static("")),
        ("selectors", Reply::Array(Vec::new())),
        (
            "limits",
            Reply::map_static(vec![
                ("max-held-keys", Reply::Int(limits.max_held_keys as i64)),
                ("max-waiters", Reply::Int(limits.max_waiters as i64)),
                ("max-connections", Reply::Int(limits.max_connections as i64)),
            ]),
        ),
    ])
}
