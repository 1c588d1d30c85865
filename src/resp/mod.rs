//! The wire: request decoding and reply encoding.
//!
//! - [`decode`]: bytes from the socket → [`Request`]s (RESP arrays of bulk strings, or inline
//!   commands), with every limit checked before anything is allocated.
//! - [`reply`]: [`Reply`] and its RESP2/RESP3 encoding.

pub mod decode;
pub mod reply;

pub use decode::{DecodeLimits, Decoder};
pub use reply::{Protocol, Reply};

use bytes::Bytes;

/// One command as the client sent it: the name first, then its arguments, all binary-safe.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Request {
    /// `args[0]` is the command name (any case); never empty.
    pub args: Vec<Bytes>,
}
