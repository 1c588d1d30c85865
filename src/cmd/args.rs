//! An argument cursor over a request, with Redis's exact error texts.
//!
//! Checks run in docs/protocol.md's order: arity (by the caller, from the command table), then
//! each argument left to right (not an integer, then its range), then unknown options. A
//! parser records an unknown option with [`Args::unknown_option`] and keeps validating;
//! [`Args::finish`] reports it last.

use std::time::Duration;

use bytes::Bytes;

use super::Wait;
use crate::error::RespError;

/// Limits that argument checks enforce.
#[derive(Debug, Clone, Copy)]
pub struct ArgLimits {
    /// Longest key in bytes.
    pub max_key_bytes: usize,
    /// Longest lease in ms.
    pub max_ttl_ms: u64,
}

/// Longest owner, in bytes.
pub const MAX_OWNER_BYTES: usize = 256;

/// A cursor over a command's arguments (the name excluded).
#[derive(Debug)]
pub struct Args<'a> {
    args: &'a [Bytes],
    pos: usize,
    limits: ArgLimits,
    deferred: Option<RespError>,
}

impl<'a> Args<'a> {
    /// A cursor over `args` (without the command name).
    pub fn new(args: &'a [Bytes], limits: ArgLimits) -> Self {
        Args {
            args,
            pos: 0,
            limits,
            deferred: None,
        }
    }

    /// Arguments not consumed yet.
    pub fn remaining(&self) -> usize {
        self.args.len() - self.pos
    }

    /// Every argument not consumed yet, raw; consumes them.
    pub fn rest(&mut self) -> &'a [Bytes] {
        let rest = self.args.get(self.pos..).unwrap_or_default();
        self.pos = self.args.len();
        rest
    }

    /// The next argument, raw.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<&'a Bytes> {
        let arg = self.args.get(self.pos)?;
        self.pos += 1;
        Some(arg)
    }

    /// The next argument; a syntax error if there is none.
    ///
    /// # Errors
    /// `-ERR syntax error` when the arguments ran out.
    pub fn bytes(&mut self) -> Result<Bytes, RespError> {
        self.next().cloned().ok_or(RespError::SYNTAX)
    }

    /// The next argument upper-cased, for option names.
    pub fn peek_upper(&self) -> Option<Vec<u8>> {
        self.args.get(self.pos).map(|a| a.to_ascii_uppercase())
    }

    /// A key: 1..=max-key-bytes.
    ///
    /// # Errors
    /// `-ERR invalid key`; syntax error when missing.
    pub fn key(&mut self) -> Result<Bytes, RespError> {
        let key = self.bytes()?;
        check_key(&key, self.limits.max_key_bytes)?;
        Ok(key)
    }

    /// An owner: 1..=256 bytes.
    ///
    /// # Errors
    /// `-ERR invalid owner`; syntax error when missing.
    pub fn owner(&mut self) -> Result<Bytes, RespError> {
        let owner = self.bytes()?;
        if owner.is_empty() || owner.len() > MAX_OWNER_BYTES {
            return Err(RespError::INVALID_OWNER);
        }
        Ok(owner)
    }

    /// An integer argument.
    ///
    /// # Errors
    /// `-ERR value is not an integer or out of range`; syntax error when missing.
    pub fn int(&mut self) -> Result<i64, RespError> {
        parse_int(&self.bytes()?)
    }

    /// A lease: 1..=max-ttl-ms.
    ///
    /// # Errors
    /// Not an integer, then `-ERR invalid ttl`.
    pub fn ttl_ms(&mut self) -> Result<u64, RespError> {
        let ttl = self.int()?;
        if ttl < 1 || ttl as u64 > self.limits.max_ttl_ms {
            return Err(RespError::INVALID_TTL);
        }
        Ok(ttl as u64)
    }

    /// A WAIT value: ms ≥ 0, where 0 waits forever.
    ///
    /// # Errors
    /// Not an integer, then `-ERR invalid wait`.
    pub fn wait(&mut self) -> Result<Wait, RespError> {
        let ms = self.int()?;
        match u64::try_from(ms) {
            Ok(0) => Ok(Wait::Forever),
            Ok(ms) => Ok(Wait::For(Duration::from_millis(ms))),
            Err(_) => Err(RespError::INVALID_WAIT),
        }
    }

    /// Remembers a syntax error for an unknown option, reported by [`finish`](Self::finish)
    /// only if every other argument is valid.
    pub fn unknown_option(&mut self) {
        if self.deferred.is_none() {
            self.deferred = Some(RespError::SYNTAX);
        }
    }

    /// Ends parsing: leftover arguments or a remembered unknown option are a syntax error.
    ///
    /// # Errors
    /// `-ERR syntax error`.
    pub fn finish(self) -> Result<(), RespError> {
        if let Some(err) = self.deferred {
            return Err(err);
        }
        if self.pos < self.args.len() {
            return Err(RespError::SYNTAX);
        }
        Ok(())
    }

    /// Like [`finish`](Self::finish) without consuming the cursor.
    ///
    /// # Errors
    /// `-ERR syntax error`.
    pub fn finish_ref(&mut self) -> Result<(), RespError> {
        if let Some(err) = self.deferred.take() {
            return Err(err);
        }
        if self.pos < self.args.len() {
            return Err(RespError::SYNTAX);
        }
        Ok(())
    }

    /// The limits in force.
    pub fn limits(&self) -> ArgLimits {
        self.limits
    }
}

/// Checks a key's length.
///
/// # Errors
/// `-ERR invalid key` when empty or over `max`.
pub fn check_key(key: &[u8], max: usize) -> Result<(), RespError> {
    if key.is_empty() || key.len() > max {
        return Err(RespError::INVALID_KEY);
    }
    Ok(())
}

/// Parses a signed 64-bit integer as Redis's `string2ll`: optional `-`, digits, no leading
/// zeros, no spaces or `+`.
///
/// # Errors
/// `-ERR value is not an integer or out of range`.
pub fn parse_int(bytes: &[u8]) -> Result<i64, RespError> {
    let err = RespError::NOT_INTEGER;
    if bytes.is_empty() || bytes.len() > 20 {
        return Err(err);
    }
    if bytes == b"0" {
        return Ok(0);
    }
    let (neg, digits) = match bytes[0] {
        b'-' => (true, &bytes[1..]),
        _ => (false, bytes),
    };
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return Err(err),
    }
    let mut value: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return Err(err);
        }
        let digit = i64::from(d - b'0');
        value = value
            .checked_mul(10)
            .and_then(|v| {
                if neg {
                    v.checked_sub(digit)
                } else {
                    v.checked_add(digit)
                }
            })
            .ok_or(RespError::NOT_INTEGER)?;
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_follow_string2ll() {
        assert_eq!(parse_int(b"0"), Ok(0));
        assert_eq!(parse_int(b"-12"), Ok(-12));
        assert_eq!(parse_int(b"9223372036854775807"), Ok(i64::MAX));
        assert_eq!(parse_int(b"-9223372036854775808"), Ok(i64::MIN));
        for bad in [
            &b"01"[..],
            b"+1",
            b" 1",
            b"1 ",
            b"",
            b"-",
            b"-0",
            b"9223372036854775808",
            b"1.5",
            b"abc",
        ] {
            assert_eq!(parse_int(bad), Err(RespError::NOT_INTEGER), "{bad:?}");
        }
    }

    #[test]
    fn unknown_options_come_last() {
        let args: Vec<Bytes> = ["FOO", "x"].iter().map(|s| Bytes::from(*s)).collect();
        let limits = ArgLimits {
            max_key_bytes: 10,
            max_ttl_ms: 100,
        };
        let mut a = Args::new(&args, limits);
        a.next();
        a.unknown_option();
        assert_eq!(a.int(), Err(RespError::NOT_INTEGER));
    }
}
