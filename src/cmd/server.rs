//! Server commands: INFO, COMMAND, CONFIG, TIME.
//!
//! ```text
//! INFO [section ...]
//! COMMAND [COUNT | LIST | INFO [name ...] | DOCS [name ...]]
//! CONFIG GET pattern [pattern ...] | CONFIG RESETSTAT
//! TIME
//! ```

use std::fmt::Write;

use bytes::Bytes;

use super::args::Args;
use super::spec::{lookup, ArgDoc, Spec, COMMANDS};
use super::{Server, Session};
use crate::error::RespError;
use crate::resp::Reply;
use crate::table::glob_match;

/// A parsed server command.
#[derive(Debug, Clone)]
pub enum ServerCommand {
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
    /// CONFIG RESETSTAT.
    ConfigResetStat,
    /// TIME.
    Time,
}

impl ServerCommand {
    /// Parses the arguments of `name` (upper case, arity already checked).
    ///
    /// # Errors
    /// Redis's texts for unknown subcommands and arity.
    pub fn parse(name: &str, args: &mut Args<'_>) -> Result<Self, RespError> {
        let mut rest = Vec::new();
        let cmd = match name {
            "INFO" => {
                let mut sections = Vec::new();
                while let Some(a) = args.next() {
                    sections.push(String::from_utf8_lossy(a).to_ascii_lowercase());
                }
                ServerCommand::Info(sections)
            }
            "TIME" => ServerCommand::Time,
            "COMMAND" => {
                let Some(raw_sub) = args.next() else {
                    return Ok(ServerCommand::CommandAll);
                };
                let sub = raw_sub.to_ascii_uppercase();
                while let Some(a) = args.next() {
                    rest.push(a.clone());
                }
                match sub.as_slice() {
                    b"COUNT" => ServerCommand::CommandCount,
                    b"LIST" => ServerCommand::CommandList,
                    b"INFO" => ServerCommand::CommandInfo(rest),
                    b"DOCS" => ServerCommand::CommandDocs(rest),
                    _ => return Err(unknown_sub(raw_sub, "COMMAND")),
                }
            }
            "CONFIG" => {
                let raw_sub = args.bytes()?;
                let sub = raw_sub.to_ascii_uppercase();
                while let Some(a) = args.next() {
                    rest.push(a.clone());
                }
                match sub.as_slice() {
                    b"GET" if !rest.is_empty() => ServerCommand::ConfigGet(rest),
                    b"GET" => return Err(RespError::arity("config|get")),
                    b"RESETSTAT" => ServerCommand::ConfigResetStat,
                    b"SET" => {
                        return Err(RespError::fixed(
                            "ERR CONFIG SET is not supported: baton is configured by flags and BATON_* variables",
                        ))
                    }
                    _ => return Err(unknown_sub(&raw_sub, "CONFIG")),
                }
            }
            _ => return Err(RespError::SYNTAX),
        };
        Ok(cmd)
    }

    /// TIME's reply (also for scripts).
    pub fn apply_static(&self) -> Reply {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Reply::Array(vec![
            Reply::bulk_string(now.as_secs().to_string()),
            Reply::bulk_string(now.subsec_micros().to_string()),
        ])
    }

    /// Answers the command.
    pub fn apply(&self, server: &Server, _session: &mut Session) -> Reply {
        match self {
            ServerCommand::Info(sections) => Reply::Verbatim(Bytes::from(info(server, sections))),
            ServerCommand::Time => self.apply_static(),
            ServerCommand::CommandAll => Reply::Array(COMMANDS.iter().map(command_info).collect()),
            ServerCommand::CommandCount => Reply::Int(COMMANDS.len() as i64),
            ServerCommand::CommandList => Reply::Array(
                COMMANDS
                    .iter()
                    .map(|s| Reply::bulk_string(s.name.to_ascii_lowercase()))
                    .collect(),
            ),
            ServerCommand::CommandInfo(names) => Reply::Array(
                names
                    .iter()
                    .map(|n| lookup(&n.to_ascii_uppercase()).map_or(Reply::Nil, command_info))
                    .collect(),
            ),
            ServerCommand::CommandDocs(names) => {
                let specs: Vec<&Spec> = if names.is_empty() {
                    COMMANDS.iter().collect()
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
            ServerCommand::ConfigGet(patterns) => {
                let known = config_values(server);
                Reply::Map(
                    known
                        .into_iter()
                        .filter(|(name, _)| {
                            patterns
                                .iter()
                                .any(|p| glob_match(&p.to_ascii_lowercase(), name.as_bytes()))
                        })
                        .map(|(name, value)| (Reply::bulk_static(name), Reply::bulk_string(value)))
                        .collect(),
                )
            }
            ServerCommand::ConfigResetStat => Reply::ok(),
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

fn config_values(server: &Server) -> Vec<(&'static str, String)> {
    let c = &server.config;
    let persistent = c.persistence == crate::config::Switch::On;
    vec![
        ("save", String::new()),
        (
            "appendonly",
            if persistent { "yes" } else { "no" }.to_string(),
        ),
        (
            "appendfsync",
            format!("{:?}", c.appendfsync).to_ascii_lowercase(),
        ),
        ("maxclients", c.max_clients.to_string()),
        (
            "port",
            server
                .port
                .load(std::sync::atomic::Ordering::Relaxed)
                .to_string(),
        ),
        ("bind", c.bind.clone()),
        ("databases", "1".to_string()),
        ("timeout", "0".to_string()),
        ("dir", c.dir.display().to_string()),
        ("proto-max-bulk-len", c.max_bulk_bytes.to_string()),
        ("maxmemory", "0".to_string()),
        ("cluster-enabled", "no".to_string()),
    ]
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * 4096)
}

/// The INFO text for `sections` (empty: the default set).
pub fn info(server: &Server, sections: &[String]) -> String {
    let all = sections.is_empty()
        || sections
            .iter()
            .any(|s| s == "all" || s == "everything" || s == "default");
    let want = |name: &str| all || sections.iter().any(|s| s == name);
    let stats = server.table.stats();
    let mut out = String::new();
    let uptime = server.started.elapsed().as_secs();
    if want("server") {
        let _ = write!(
            out,
            "# Server\r\nredis_version:7.2.0\r\nbaton_version:{}\r\nredis_mode:standalone\r\nos:{} {}\r\narch_bits:64\r\nprocess_id:{}\r\ntcp_port:{}\r\nuptime_in_seconds:{}\r\nuptime_in_days:{}\r\nexecutable:baton\r\n\r\n",
            crate::VERSION,
            std::env::consts::OS,
            std::env::consts::ARCH,
            std::process::id(),
            server.port.load(std::sync::atomic::Ordering::Relaxed),
            uptime,
            uptime / 86_400,
        );
    }
    if want("clients") {
        let _ = write!(
            out,
            "# Clients\r\nconnected_clients:{}\r\nblocked_clients:{}\r\nmaxclients:{}\r\n\r\n",
            server.clients.len(),
            stats.waiters,
            server.config.max_clients,
        );
    }
    if want("memory") {
        let rss = rss_bytes();
        let _ = write!(
            out,
            "# Memory\r\nused_memory:{rss}\r\nused_memory_rss:{rss}\r\nmaxmemory:{}\r\n\r\n",
            server.config.maxmemory,
        );
    }
    if want("persistence") {
        if let Some(cluster) = &server.cluster {
            out.push_str(&cluster.persistence_info());
        }
    }
    if want("persistence") && server.cluster.is_none() {
        let _ = write!(out, "# Persistence\r\nloading:0\r\n");
        match &server.log {
            Some(log) => {
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
            None => out.push_str("aof_enabled:0\r\npersistence:off\r\n\r\n"),
        }
    }
    if want("stats") {
        let _ = write!(
            out,
            "# Stats\r\ntotal_commands_processed:{}\r\n\r\n",
            server.commands_processed(),
        );
    }
    if want("replication") {
        match &server.cluster {
            Some(cluster) => out.push_str(&cluster.info()),
            None => out.push_str("# Replication\r\nrole:master\r\nconnected_slaves:0\r\n\r\n"),
        }
    }
    if want("locks") {
        let _ = write!(
            out,
            "# Locks\r\nlocks:{}\r\nsemaphores:{}\r\nstrings:{}\r\nholders:{}\r\nwaiters:{}\r\nleases:{}\r\nlast_token:{}\r\nshards:{}\r\n\r\n",
            stats.locks,
            stats.semaphores,
            stats.strings,
            stats.holders,
            stats.waiters,
            stats.timers,
            stats.last_token,
            server.table.shard_count(),
        );
    }
    if want("keyspace") {
        out.push_str("# Keyspace\r\n");
        if stats.keys() > 0 {
            let _ = write!(out, "db0:keys={},expires=0,avg_ttl=0\r\n", stats.keys());
        }
        out.push_str("\r\n");
    }
    if out.ends_with("\r\n\r\n") {
        out.truncate(out.len() - 2);
    }
    out
}
