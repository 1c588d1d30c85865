//! Request decoding: RESP arrays of bulk strings and inline commands.
//! (Placeholder: implemented on the `decode` branch.)

use bytes::BytesMut;

use super::Request;
use crate::error::ProtoError;

/// The protocol limits that decoding enforces (see PROTOCOL.md "Errors").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest bulk string, in bytes (exactly this size is allowed). Default 8 MiB.
    pub max_bulk_bytes: usize,
    /// Most arguments in one command (name included). Default 1 048 576.
    pub max_args: usize,
    /// Longest inline command line, in bytes. Default 64 KiB.
    pub max_inline_bytes: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_bulk_bytes: 8 * 1024 * 1024,
            max_args: 1024 * 1024,
            max_inline_bytes: 64 * 1024,
        }
    }
}

/// Turns a connection's read buffer into requests.
#[derive(Debug, Clone)]
pub struct Decoder {
    limits: DecodeLimits,
}

impl Decoder {
    /// A decoder enforcing `limits`.
    pub fn new(limits: DecodeLimits) -> Self {
        Decoder { limits }
    }

    /// Takes the next complete request off the front of `buf`.
    ///
    /// Returns `Ok(None)` when `buf` holds no complete request yet (nothing is consumed),
    /// `Ok(Some(req))` after splitting one request off. Empty requests (`*0`, `*-1`, blank
    /// inline lines) are consumed and skipped.
    ///
    /// # Errors
    /// A [`ProtoError`] for a malformed frame or one over the limits; the caller replies
    /// `-ERR Protocol error: ...` and closes the connection.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Request>, ProtoError> {
        let _ = (&self.limits, buf);
        Ok(None)
    }
}
