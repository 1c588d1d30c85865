//! Cluster administration: CLUSTER ADDNODE, REMOVENODE, NODES.
//!
//! ```text
//! CLUSTER ADDNODE id peer-addr   +OK once the change is committed by a majority
//! CLUSTER REMOVENODE id          +OK once the change is committed by a majority
//! CLUSTER NODES                  bulk string, one line per member: "<id> <addr> <flags>"
//! ```
//!
//! Answered by the serving leader (a follower forwards them like any command); the
//! membership logic is in `crate::cluster` (docs/replication.md, "Membership").

use std::sync::Arc;

use super::args::Args;
use super::{Effect, Executed, Pending, Shared};
use crate::cluster::MemberChange;
use crate::error::RespError;
use crate::resp::Reply;

/// `CLUSTER ...` on a single-node server (Redis's text when cluster mode is off).
pub const DISABLED: RespError = RespError::fixed("ERR This instance has cluster support disabled");

/// A parsed CLUSTER command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterCommand {
    /// CLUSTER ADDNODE / REMOVENODE.
    Change(MemberChange),
    /// CLUSTER NODES.
    Nodes,
}

impl ClusterCommand {
    /// Parses the arguments after `CLUSTER`.
    ///
    /// # Errors
    /// Redis's texts for an unknown subcommand and arity; `-ERR invalid node id` and
    /// `-ERR invalid peer address` for bad values.
    pub fn parse(args: &mut Args<'_>) -> Result<Self, RespError> {
        let raw_sub = args.bytes()?;
        let sub = raw_sub.to_ascii_uppercase();
        let cmd = match sub.as_slice() {
            b"ADDNODE" => {
                let id = node_id(args.next(), "cluster|addnode")?;
                let addr = args
                    .next()
                    .ok_or_else(|| RespError::arity("cluster|addnode"))?;
                let addr = std::str::from_utf8(addr)
                    .ok()
                    .filter(|a| crate::cluster::valid_peer_addr(a))
                    .ok_or_else(|| {
                        RespError::new(format!(
                            "ERR invalid peer address '{}' (host:port)",
                            crate::error::printable(addr, 64)
                        ))
                    })?;
                ClusterCommand::Change(MemberChange::Add {
                    id,
                    addr: addr.to_owned(),
                })
            }
            b"REMOVENODE" => ClusterCommand::Change(MemberChange::Remove {
                id: node_id(args.next(), "cluster|removenode")?,
            }),
            b"NODES" => ClusterCommand::Nodes,
            _ => {
                return Err(RespError::new(format!(
                    "ERR unknown subcommand '{}'. Try CLUSTER HELP.",
                    crate::error::printable(&raw_sub, 64)
                )))
            }
        };
        if args.next().is_some() {
            return Err(RespError::arity(match cmd {
                ClusterCommand::Change(MemberChange::Add { .. }) => "cluster|addnode",
                ClusterCommand::Change(MemberChange::Remove { .. }) => "cluster|removenode",
                ClusterCommand::Nodes => "cluster|nodes",
            }));
        }
        Ok(cmd)
    }

    /// Runs the command: NODES at once, a change once it is committed.
    pub fn apply(self, server: &Shared) -> Executed {
        let Some(cluster) = server.cluster.as_ref().map(Arc::clone) else {
            return Executed::reply(DISABLED.into());
        };
        match self {
            ClusterCommand::Nodes => Executed::reply(Reply::bulk_string(cluster.nodes_text())),
            ClusterCommand::Change(change) => Executed {
                effect: Effect::Await(Pending::new(async move {
                    match cluster.change_membership(change).await {
                        Ok(()) => Reply::ok(),
                        Err(err) => Reply::Error(err),
                    }
                })),
                lsn: 0,
            },
        }
    }
}

/// A node id argument: an integer of 1 or more.
fn node_id(arg: Option<&bytes::Bytes>, name: &'static str) -> Result<u64, RespError> {
    let arg = arg.ok_or_else(|| RespError::arity(name))?;
    std::str::from_utf8(arg)
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|&id| id > 0)
        .ok_or_else(|| {
            RespError::new(format!(
                "ERR invalid node id '{}' (an integer of 1 or more)",
                crate::error::printable(arg, 64)
            ))
        })
}
