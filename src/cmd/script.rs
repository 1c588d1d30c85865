//! Scripting commands (EVAL, EVALSHA, SCRIPT): parsing here, execution in `lua`.
//! (Execution lands with the Lua engine.)

use bytes::Bytes;

use super::args::Args;
use super::{Executed, Server, Session};
use crate::error::RespError;

/// A parsed scripting command.
#[derive(Debug, Clone)]
pub enum ScriptCommand {
    /// EVAL / EVALSHA with their raw arguments.
    Eval {
        /// EVALSHA rather than EVAL.
        sha: bool,
        /// Script body or sha.
        script: Bytes,
        /// Declared keys.
        keys: Vec<Bytes>,
        /// Other arguments.
        argv: Vec<Bytes>,
    },
}

impl ScriptCommand {
    /// Parses the arguments of `name` (upper case, arity already checked).
    ///
    /// # Errors
    /// Redis's texts for numkeys.
    pub fn parse(_name: &str, _args: &mut Args<'_>) -> Result<Self, RespError> {
        Err(RespError::fixed("ERR scripting is not available yet"))
    }

    /// Runs the command.
    pub fn apply(&self, _server: &Server, _session: &mut Session) -> Executed {
        Executed::reply(RespError::fixed("ERR scripting is not available yet").into())
    }
}
