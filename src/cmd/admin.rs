//! Admin commands: INFO, COMMAND, CONFIG, TIME (the file is not `server.rs`: `crate::server`
//! is the socket layer; three of the four carry the `admin` flag).
//!
//! ```text
//! INFO [section ...]
//! COMMAND [COUNT | LIST | INFO [name ...] | DOCS [name ...]]
//! CONFIG GET pattern [pattern ...] | CONFIG SET name value [name value ...] | CONFIG RESETSTAT
//! TIME
//! ```

use std::fmt::Write;
use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::args::Args;
use super::spec::{lookup, ArgDoc, Spec};
use super::{Session, Shared};
use crate::error::RespError;
use crate::resp::Reply;
use crate::table::{glob_match, TableStats};

/// The commands of this family, as the command table names them: [`AdminCommand::parse`]
/// matches every one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminId {
    /// INFO.
    Info,
    /// COMMAND.
    Command,
    /// CONFIG.
    Config,
    /// TIME.
    Time,
}

/// A parsed admin command.
#[derive(Debug, Clone)]
pub enum AdminCommand {
    /// INFO with its sections (lower case; empty: default).
    Info(Vec<String>),
    /// COMMAND (all infos).
    CommandAll,
    /// COMMAND COUNT.
    CommandCount,
    /// COMMAND LIST.
    CommandList,
    /// COMMAND INFO names.
    CommandInfo(Vec<Bytes>),
    /// COMMAND DOCS names.
    CommandDocs(Vec<Bytes>),
    /// CONFIG GET patterns.
    ConfigGet(Vec<Bytes>),
    /// CONFIG SET name/value pairs.
    ConfigSet(Vec<(Bytes, Bytes)>),
    /// CONFIG RESETSTAT.
    ConfigResetStat,
    /// TIME.
    Time,
}

impl AdminCommand {
    /// Parses the arguments of command `id` (arity already checked).
    ///
    /// # Errors
    /// Redis's texts for unknown subcommands and arity.
    pub fn parse(id: AdminId, args: &mut Args<'_>) -> Result<Self, RespError> {
        let mut rest = Vec::new();
        let cmd = match id {
            AdminId::Info => {
                let mut sections = Vec::new();
                while let Some(a) = args.next() {
                    sections.push(String::from_utf8_lossy(a).to_ascii_lowercase());
                }
                AdminCommand::Info(sections)
            }
            AdminId::Time => AdminCommand::Time,
            AdminId::Command => {
                let Some(raw_sub) = args.next() else {
                    return Ok(AdminCommand::CommandAll);
                };
                let sub = raw_sub.to_ascii_uppercase();
                while let Some(a) = args.next() {
                    rest.push(a.clone());
                }
                match sub.as_slice() {
                    b"COUNT" => AdminCommand::CommandCount,
                    b"LIST" => AdminCommand::CommandList,
                    b"INFO" => AdminCommand::CommandInfo(rest),
                    b"DOCS" => AdminCommand::CommandDocs(rest),
                    _ => return Err(unknown_sub(raw_sub, "COMMAND")),
                }
            }
            AdminId::Config => {
                let raw_sub = args.bytes()?;
                let sub = raw_sub.to_ascii_uppercase();
                while let Some(a) = args.next() {
                    rest.push(a.clone());
                }
                match sub.as_slice() {
                    b"GET" if !rest.is_empty() => AdminCommand::ConfigGet(rest),
                    b"GET" => return Err(RespError::arity("config|get")),
                    b"RESETSTAT" => AdminCommand::ConfigResetStat,
                    b"SET" if !rest.is_empty() && rest.len() % 2 == 0 => AdminCommand::ConfigSet(
                        rest.chunks_exact(2)
                            .map(|pair| (pair[0].clone(), pair[1].clone()))
                            .collect(),
                    ),
                    b"SET" => return Err(RespError::arity("config|set")),
                    _ => return Err(unknown_sub(&raw_sub, "CONFIG")),
                }
            }
        };
        Ok(cmd)
    }

    /// TIME's reply (also for scripts).
    pub fn apply_static(&self) -> Reply {
        let now = crate::clock::since_epoch();
        Reply::Array(vec![
            Reply::bulk_string(now.as_secs().to_string()),
            Reply::bulk_string(now.subsec_micros().to_string()),
        ])
    }

    /// Answers the command.
    pub fn apply(&self, server: &Shared, session: &mut Session) -> Reply {
        match self {
            AdminCommand::Info(sections) if !session.user.all_keys() => {
                // A tenant's keyspace line counts only its keys.
                let user = session.user.clone();
                let mut text = info(server, sections);
                if let Some(at) = text.find("# Keyspace\r\n") {
                    let keys = super::keyspace::count_keys_of(server, &user);
                    let line = if keys > 0 {
                        format!("# Keyspace\r\ndb0:keys={keys},expires=0,avg_ttl=0\r\n")
                    } else {
                        "# Keyspace\r\n".to_string()
                    };
                    let end = text[at..]
                        .find("\r\n\r\n")
                        .map_or(text.len(), |e| at + e + 2);
                    text.replace_range(at..end, &line);
                }
                Reply::Verbatim(Bytes::from(text))
            }
            AdminCommand::Info(sections) => Reply::Verbatim(Bytes::from(info(server, sections))),
            AdminCommand::Time => self.apply_static(),
            AdminCommand::CommandAll => {
                Reply::Array(super::spec::all().map(command_info).collect())
            }
            AdminCommand::CommandCount => Reply::Int(super::spec::all().count() as i64),
            AdminCommand::CommandList => Reply::Array(
                super::spec::all()
                    .map(|s| Reply::bulk_string(s.name.to_ascii_lowercase()))
                    .collect(),
            ),
            AdminCommand::CommandInfo(names) => Reply::Array(
                names
                    .iter()
                    .map(|n| lookup(&n.to_ascii_uppercase()).map_or(Reply::Nil, command_info))
                    .collect(),
            ),
            AdminCommand::CommandDocs(names) => {
                let specs: Vec<&Spec> = if names.is_empty() {
                    super::spec::all().collect()
                } else {
                    names
                        .iter()
                        .filter_map(|n| lookup(&n.to_ascii_uppercase()))
                        .collect()
                };
                Reply::Map(
                    specs
                        .into_iter()
                        .map(|s| {
                            (
                                Reply::bulk_string(s.name.to_ascii_lowercase()),
                                command_docs(s),
                            )
                        })
                        .collect(),
                )
            }
            AdminCommand::ConfigGet(patterns) => {
                let known = config_values(server);
                Reply::Map(
                    known
                        .into_iter()
                        .filter(|(name, _)| {
                            patterns
                                .iter()
                                .any(|p| glob_match(&p.to_ascii_lowercase(), name.as_bytes()))
                        })
                        .map(|(name, value)| (Reply::bulk_string(name), Reply::bulk_string(value)))
                        .collect(),
                )
            }
            AdminCommand::ConfigSet(pairs) => match config_set(server, pairs) {
                Ok(()) => Reply::ok(),
                Err(err) => Reply::Error(err),
            },
            AdminCommand::ConfigResetStat => {
                server.commands.reset();
                Reply::ok()
            }
        }
    }
}

fn unknown_sub(sub: &[u8], cmd: &str) -> RespError {
    RespError::new(format!(
        "ERR unknown subcommand '{}'. Try {} HELP.",
        crate::error::printable(sub, 64),
        cmd
    ))
}

fn command_info(s: &Spec) -> Reply {
    let flags = s.flags.iter().map(|f| Reply::simple(f)).collect();
    Reply::Array(vec![
        Reply::bulk_string(s.name.to_ascii_lowercase()),
        Reply::Int(i64::from(s.arity)),
        Reply::Set(flags),
        Reply::Int(i64::from(s.first_key)),
        Reply::Int(i64::from(s.last_key)),
        Reply::Int(i64::from(s.step)),
        Reply::Set(vec![Reply::bulk_string(format!("@{}", s.group))]),
        Reply::Set(Vec::new()),
        Reply::Array(Vec::new()),
        Reply::Array(Vec::new()),
    ])
}

fn arg_doc(a: &ArgDoc) -> Reply {
    let mut fields = vec![
        ("name", Reply::bulk_static(a.name)),
        ("type", Reply::bulk_static(a.kind)),
    ];
    if a.kind == "key" {
        fields.push(("key_spec_index", Reply::Int(0)));
    }
    if let Some(token) = a.token {
        fields.push(("token", Reply::bulk_static(token)));
    }
    let mut flags = Vec::new();
    if a.optional {
        flags.push(Reply::simple("optional"));
    }
    if a.multiple {
        flags.push(Reply::simple("multiple"));
    }
    if !flags.is_empty() {
        fields.push(("flags", Reply::Set(flags)));
    }
    if !a.args.is_empty() {
        fields.push((
            "arguments",
            Reply::Array(a.args.iter().map(arg_doc).collect()),
        ));
    }
    Reply::map_static(fields)
}

fn command_docs(s: &Spec) -> Reply {
    let mut fields = vec![
        ("summary", Reply::bulk_static(s.summary)),
        ("since", Reply::bulk_static("0.1.0")),
        ("group", Reply::bulk_static(s.group)),
    ];
    if !s.args.is_empty() {
        fields.push((
            "arguments",
            Reply::Array(s.args.iter().map(arg_doc).collect()),
        ));
    }
    Reply::map_static(fields)
}

/// CONFIG GET's answers: Redis's names that clients probe, then every setting under its
/// flag's name, with the values changed at run time read live.
fn config_values(server: &Shared) -> Vec<(String, String)> {
    let c = &server.config;
    let persistent = c.persistence == crate::config::Switch::On;
    let max_clients = server.max_clients.load(Ordering::Relaxed).to_string();
    let log_level = crate::settings::log_level().unwrap_or_else(|| c.log_level.clone());
    let mut values: Vec<(String, String)> = vec![
        ("save".into(), String::new()),
        (
            "appendonly".into(),
            if persistent { "yes" } else { "no" }.to_string(),
        ),
        (
            "appendfsync".into(),
            format!("{:?}", c.appendfsync).to_ascii_lowercase(),
        ),
        ("maxclients".into(), max_clients.clone()),
        (
            "port".into(),
            server.port.load(Ordering::Relaxed).to_string(),
        ),
        ("bind".into(), c.bind.clone()),
        ("databases".into(), "1".to_string()),
        ("timeout".into(), "0".to_string()),
        ("dir".into(), c.dir.display().to_string()),
        ("proto-max-bulk-len".into(), c.max_bulk_bytes.to_string()),
        ("maxmemory".into(), c.maxmemory.to_string()),
        ("cluster-enabled".into(), "no".to_string()),
        ("loglevel".into(), log_level.clone()),
        // The settings CONFIG SET changes, also when the config was built in code.
        ("max-clients".into(), max_clients),
        ("max-waiters".into(), server.table.max_waiters().to_string()),
        ("log-level".into(), log_level),
    ];
    for setting in &c.effective {
        if !values.iter().any(|(name, _)| *name == setting.name) {
            values.push((setting.name.clone(), setting.value.clone()));
        }
    }
    values
}

/// A setting CONFIG SET can change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mutable {
    MaxClients,
    MaxWaiters,
    LogLevel,
    /// Redis's `loglevel`, with Redis's level names.
    RedisLogLevel,
}

fn mutable(name: &str) -> Option<Mutable> {
    match name {
        "max-clients" | "maxclients" => Some(Mutable::MaxClients),
        "max-waiters" => Some(Mutable::MaxWaiters),
        "log-level" => Some(Mutable::LogLevel),
        "loglevel" => Some(Mutable::RedisLogLevel),
        _ => None,
    }
}

/// A parsed CONFIG SET value.
enum NewValue {
    Count(usize),
    Filter(String),
}

/// CONFIG SET: every pair is checked before any is applied, with Redis's error texts
/// (unknown name first, then immutable, duplicate, and bad values).
fn config_set(server: &Shared, pairs: &[(Bytes, Bytes)]) -> Result<(), RespError> {
    let names: Vec<String> = pairs
        .iter()
        .map(|(name, _)| String::from_utf8_lossy(name).to_ascii_lowercase())
        .collect();
    let known = config_values(server);
    if let Some((raw, _)) = pairs
        .iter()
        .zip(&names)
        .map(|(p, n)| (&p.0, n))
        .find(|(_, n)| mutable(n).is_none() && !known.iter().any(|(k, _)| k == *n))
    {
        return Err(RespError::new(format!(
            "ERR Unknown option or number of arguments for CONFIG SET - '{}'",
            crate::error::printable(raw, 128)
        )));
    }
    let failed = |name: &str, why: &str| {
        RespError::new(format!(
            "ERR CONFIG SET failed (possibly related to argument '{name}') - {why}"
        ))
    };
    let mut changes = Vec::with_capacity(pairs.len());
    for (i, ((_, value), name)) in pairs.iter().zip(&names).enumerate() {
        let Some(which) = mutable(name) else {
            return Err(failed(name, "can't set immutable config"));
        };
        if changes.iter().any(|(w, _, _)| *w == which) || names[..i].contains(name) {
            return Err(failed(name, "duplicate parameter"));
        }
        let text = String::from_utf8_lossy(value);
        let new = match which {
            Mutable::MaxClients | Mutable::MaxWaiters => {
                let n: usize = text
                    .parse()
                    .map_err(|_| failed(name, "argument couldn't be parsed into an integer"))?;
                if n < 1 {
                    return Err(failed(
                        name,
                        &format!("argument must be between 1 and {} inclusive", usize::MAX),
                    ));
                }
                NewValue::Count(n)
            }
            Mutable::LogLevel => NewValue::Filter(text.into_owned()),
            Mutable::RedisLogLevel => NewValue::Filter(
                match text.to_ascii_lowercase().as_str() {
                    "debug" | "verbose" => "debug",
                    "notice" => "info",
                    "warning" => "warn",
                    "nothing" => "off",
                    _ => return Err(failed(name, "argument(s) must be one of the following: debug, verbose, notice, warning, nothing")),
                }
                .to_string(),
            ),
        };
        changes.push((which, new, name.as_str()));
    }
    // The one change that can fail goes first, so a failure leaves everything as it was.
    for (_, new, name) in &changes {
        if let NewValue::Filter(filter) = new {
            crate::settings::reload_log_level(filter).map_err(|why| failed(name, &why))?;
        }
    }
    for (which, new, _) in changes {
        match (which, new) {
            (Mutable::MaxClients, NewValue::Count(n)) => {
                server.max_clients.store(n, Ordering::Relaxed);
            }
            (Mutable::MaxWaiters, NewValue::Count(n)) => server.table.set_max_waiters(n),
            _ => {}
        }
    }
    Ok(())
}

/// One INFO section: its name, whether the default set (`INFO`, `INFO default`) has it,
/// and what writes it.
struct Section {
    name: &'static str,
    default: bool,
    write: fn(&Shared, &TableStats, &mut String),
}

/// INFO's sections, in Redis's order.
const SECTIONS: &[Section] = &[
    Section {
        name: "server",
        default: true,
        write: info_server,
    },
    Section {
        name: "clients",
        default: true,
        write: info_clients,
    },
    Section {
        name: "memory",
        default: true,
        write: info_memory,
    },
    Section {
        name: "persistence",
        default: true,
        write: info_persistence,
    },
    Section {
        name: "stats",
        default: true,
        write: info_stats,
    },
    // Not in the default set, as in Redis: only for `commandstats`, `all`, `everything`.
    Section {
        name: "commandstats",
        default: false,
        write: info_commandstats,
    },
    Section {
        name: "replication",
        default: true,
        write: info_replication,
    },
    Section {
        name: "locks",
        default: true,
        write: info_locks,
    },
    Section {
        name: "keyspace",
        default: true,
        write: info_keyspace,
    },
];

/// The INFO text for `sections` (empty: the default set).
pub fn info(server: &Shared, sections: &[String]) -> String {
    let asked = |name: &str| sections.iter().any(|s| s == name);
    let every = asked("all") || asked("everything");
    let default = sections.is_empty() || asked("default");
    let stats = server.table.stats();
    let mut out = String::new();
    for section in SECTIONS {
        if every || asked(section.name) || (default && section.default) {
            (section.write)(server, &stats, &mut out);
        }
    }
    if out.ends_with("\r\n\r\n") {
        out.truncate(out.len() - 2);
    }
    out
}

fn info_server(server: &Shared, _: &TableStats, out: &mut String) {
    let uptime = server.started.elapsed().as_secs();
    let _ = write!(
        out,
        "# Server\r\nredis_version:7.2.0\r\nbaton_version:{}\r\nredis_mode:standalone\r\nos:{} {}\r\narch_bits:64\r\nprocess_id:{}\r\ntcp_port:{}\r\nuptime_in_seconds:{}\r\nuptime_in_days:{}\r\nexecutable:baton\r\n\r\n",
        crate::VERSION,
        std::env::consts::OS,
        std::env::consts::ARCH,
        std::process::id(),
        server.port.load(Ordering::Relaxed),
        uptime,
        uptime / 86_400,
    );
}

fn info_clients(server: &Shared, stats: &TableStats, out: &mut String) {
    let _ = write!(
        out,
        "# Clients\r\nconnected_clients:{}\r\nblocked_clients:{}\r\nmaxclients:{}\r\n\r\n",
        server.clients.len(),
        stats.waiters,
        server.max_clients.load(Ordering::Relaxed),
    );
}

fn info_memory(server: &Shared, _: &TableStats, out: &mut String) {
    let rss = crate::metrics::rss_bytes();
    let _ = write!(
        out,
        "# Memory\r\nused_memory:{rss}\r\nused_memory_rss:{rss}\r\nmaxmemory:{}\r\n\r\n",
        server.config.maxmemory,
    );
}

/// The log's figures; in cluster mode the Raft storage's (`cluster::persistence_info`).
fn info_persistence(server: &Shared, _: &TableStats, out: &mut String) {
    if let Some(cluster) = &server.cluster {
        out.push_str(&cluster.persistence_info());
        return;
    }
    out.push_str("# Persistence\r\nloading:0\r\n");
    let Some(log) = &server.log else {
        out.push_str("aof_enabled:0\r\npersistence:off\r\n\r\n");
        return;
    };
    let st = log.stats();
    let _ = write!(
        out,
        "aof_enabled:1\r\nappendfsync:{}\r\nlog_bytes:{}\r\nlog_generation:{}\r\nlog_appended_lsn:{}\r\nlog_durable_lsn:{}\r\nlog_writes:{}\r\nlog_syncs:{}\r\nlast_sync_unix_ms:{}\r\nlast_snapshot_unix_ms:{}\r\nsnapshots:{}\r\nrecords_replayed:{}\r\naof_last_write_status:{}\r\n\r\n",
        format!("{:?}", st.fsync).to_ascii_lowercase(),
        st.log_bytes,
        st.generation,
        st.appended_lsn,
        st.durable_lsn,
        st.writes,
        st.syncs,
        st.last_sync_unix_ms,
        st.last_snapshot_unix_ms,
        st.snapshots,
        st.records_replayed,
        if st.failed.is_some() { "err" } else { "ok" },
    );
}

fn info_stats(server: &Shared, stats: &TableStats, out: &mut String) {
    let grants: u64 = stats.grants.iter().sum();
    let _ = write!(
        out,
        "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\nrejected_connections:{}\r\nacl_access_denied_auth:{}\r\nacl_access_denied_cmd:{}\r\nacl_access_denied_key:{}\r\nacl_access_denied_channel:0\r\ngrants:{}\r\ngrants_exclusive:{}\r\ngrants_shared_write:{}\r\ngrants_read:{}\r\ngrants_permits:{}\r\nrefreshes:{}\r\nexpired_leases:{}\r\n\r\n",
        server.connections.accepted.load(Ordering::Relaxed),
        server.commands_processed(),
        server.connections.rejected.load(Ordering::Relaxed),
        server.connections.auth_failures.load(Ordering::Relaxed),
        server.connections.denied_commands.load(Ordering::Relaxed),
        server.connections.denied_keys.load(Ordering::Relaxed),
        grants,
        stats.grants[0],
        stats.grants[1],
        stats.grants[2],
        stats.grants[3],
        stats.refreshes,
        stats.expired,
    );
}

fn info_commandstats(server: &Shared, _: &TableStats, out: &mut String) {
    out.push_str("# Commandstats\r\n");
    for (spec, count) in server.commands.counts() {
        let calls = count.calls();
        if calls + count.rejected == 0 {
            continue;
        }
        let per_call = if calls == 0 {
            0.0
        } else {
            count.usec as f64 / calls as f64
        };
        let _ = write!(
            out,
            "cmdstat_{}:calls={},usec={},usec_per_call={:.2},rejected_calls={},failed_calls={}\r\n",
            spec.name.to_ascii_lowercase(),
            calls,
            count.usec,
            per_call,
            count.rejected,
            count.failed,
        );
    }
    out.push_str("\r\n");
}

fn info_replication(server: &Shared, _: &TableStats, out: &mut String) {
    match &server.cluster {
        Some(cluster) => out.push_str(&cluster.info()),
        None => out.push_str("# Replication\r\nrole:master\r\nconnected_slaves:0\r\n\r\n"),
    }
}

fn info_locks(server: &Shared, stats: &TableStats, out: &mut String) {
    let _ = write!(
        out,
        "# Locks\r\nlocks:{}\r\nsemaphores:{}\r\nstrings:{}\r\nholders:{}\r\nheld_exclusive:{}\r\nheld_shared_write:{}\r\nheld_read:{}\r\nheld_permits:{}\r\nwaiters:{}\r\nmax_waiters:{}\r\nleases:{}\r\nlast_token:{}\r\nshards:{}\r\n\r\n",
        stats.locks,
        stats.semaphores,
        stats.strings,
        stats.holders,
        stats.held[0],
        stats.held[1],
        stats.held[2],
        stats.held[3],
        stats.waiters,
        server.table.max_waiters(),
        stats.timers,
        stats.last_token,
        server.table.shard_count(),
    );
}

fn info_keyspace(server: &Shared, stats: &TableStats, out: &mut String) {
    out.push_str("# Keyspace\r\n");
    if stats.keys() > 0 {
        let ttl = server.table.ttl_stats(server.now());
        let _ = write!(
            out,
            "db0:keys={},expires={},avg_ttl={}\r\n",
            stats.keys(),
            ttl.expires,
            ttl.avg_ttl_ms
        );
    }
    out.push_str("\r\n");
}
