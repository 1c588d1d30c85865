//! Request decoding: RESP arrays of bulk strings and inline commands.
//!
//! The connection task calls [`Decoder::decode`] in a loop on its read buffer: every call
//! takes at most one request off the front, and `Ok(None)` means "read more".
//!
//! What a client may send (the same in RESP2 and RESP3 connections):
//! - a multibulk request `*N\r\n$len\r\n<len bytes>\r\n...`. `*0` and any negative count
//!   are consumed and ignored, as in Redis;
//! - an inline command: a line not starting with `*`, ended by `\n` (a `\r` before it is
//!   dropped), split on whitespace with Redis's `sdssplitargs` quoting rules. Blank lines
//!   are skipped.
//!
//! Limits ([`DecodeLimits`]) are checked on the *announced* lengths, as soon as a header
//! line is in the buffer, before any byte of the payload is waited for; nothing is ever
//! reserved for data that has not arrived. The error texts are Redis's (`networking.c`).
//!
//! Why not `redis-protocol` here: a request has one fixed shape (an array of bulk
//! strings), and the header pre-scan that the limits need (mini-redis's `Frame::check`)
//! already finds every argument's range. Handing the frame to `redis_protocol::resp3`
//! afterwards would parse it a second time and build a `Vec<RangeFrame>` per request only
//! to be turned into the same `Vec<Bytes>`, and its number parsing is laxer than Redis's
//! (`+5`, `007`). The crate is used in the tests instead, as an independent encoder and
//! decoder to check this one against.
//!
//! The decoder keeps a little state between calls (how far the front frame was scanned),
//! so a frame that arrives one byte at a time costs linear, not quadratic, work. That state
//! assumes the caller only appends to `buf` between calls, which is what a read loop does.

use bytes::{Buf, Bytes, BytesMut};

use super::Request;
pub use crate::config::DecodeLimits;
use crate::error::ProtoError;

/// Longest `*`/`$` header line without `\r\n` before it is an error (Redis's
/// `PROTO_INLINE_MAX_SIZE`; a valid header is at most 22 bytes).
const MAX_COUNT_LINE: usize = 64 * 1024;

/// Redis's `LONG_STR_SIZE`: a number string this long or longer is never valid.
const LONG_STR_SIZE: usize = 21;

/// Largest `Decoder::ranges` capacity kept between requests (64 KiB of ranges).
const RANGES_KEPT: usize = 4096;

/// Where the scan of the request at the front of the buffer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scan {
    /// Nothing is known about the front of the buffer.
    Start,
    /// An inline line; the first `searched` bytes hold no `\n`.
    Inline {
        /// Bytes already known to hold no `\n`.
        searched: usize,
    },
    /// A `*` header line; the first `searched` bytes hold no `\r`.
    Header {
        /// Bytes already known to hold no `\r`.
        searched: usize,
    },
    /// Inside a multibulk request of `count` arguments; the ones already complete are in
    /// `Decoder::ranges`, the next bulk header starts at `pos`.
    Bulks {
        /// Arguments announced by the `*` header (1..=max_args).
        count: usize,
        /// Offset of the next `$` header.
        pos: usize,
        /// Offset up to which the next header line holds no `\r`.
        searched: usize,
    },
}

/// What one step of the scan found.
enum Step {
    /// More bytes are needed.
    Incomplete,
    /// The first `n` bytes are an empty request (`*0`, `*-1`, a blank line): drop them.
    Skip(usize),
    /// A request was taken off the buffer.
    Done(Request),
}

/// Turns a connection's read buffer into requests.
#[derive(Debug, Clone)]
pub struct Decoder {
    limits: DecodeLimits,
    scan: Scan,
    /// `(start, end)` of each complete argument of the front multibulk request. Kept across
    /// requests so that its capacity is reused; it grows only with bytes received.
    ranges: Vec<(usize, usize)>,
}

impl Decoder {
    /// A decoder enforcing `limits`.
    pub fn new(limits: DecodeLimits) -> Self {
        Decoder {
            limits,
            scan: Scan::Start,
            ranges: Vec::new(),
        }
    }

    /// Takes the next complete request off the front of `buf`.
    ///
    /// Returns `Ok(None)` when `buf` holds no complete request yet (nothing is consumed
    /// except empty requests before it), `Ok(Some(req))` after splitting one request off.
    /// Empty requests (`*0`, `*-1`, blank inline lines) are consumed and skipped. The
    /// arguments are zero-copy slices of the request's bytes (inline arguments with quotes
    /// are copied).
    ///
    /// # Errors
    /// A [`ProtoError`] for a malformed frame or one over the limits; the caller replies
    /// `-ERR Protocol error: ...` and closes the connection. Nothing of the bad request is
    /// consumed.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Request>, ProtoError> {
        loop {
            let step = self.step(buf);
            match step {
                Ok(Step::Incomplete) => return Ok(None),
                Ok(Step::Skip(n)) => {
                    self.scan = Scan::Start;
                    buf.advance(n);
                }
                Ok(Step::Done(req)) => {
                    self.scan = Scan::Start;
                    return Ok(Some(req));
                }
                Err(e) => {
                    self.scan = Scan::Start;
                    return Err(e);
                }
            }
        }
    }

    /// One step of the scan of the request at the front of `buf`.
    fn step(&mut self, buf: &mut BytesMut) -> Result<Step, ProtoError> {
        // State from a previous call that does not fit this buffer (the caller did not only
        // append) is dropped: rescanning is always correct.
        let fits = match self.scan {
            Scan::Start => true,
            Scan::Inline { searched } | Scan::Header { searched } => searched <= buf.len(),
            Scan::Bulks { pos, searched, .. } => {
                pos <= buf.len() && searched <= buf.len() && buf.first() == Some(&b'*')
            }
        };
        if !fits {
            self.scan = Scan::Start;
        }
        if self.scan == Scan::Start {
            self.scan = match buf.first() {
                None => return Ok(Step::Incomplete),
                Some(b'*') => Scan::Header { searched: 1 },
                Some(_) => Scan::Inline { searched: 0 },
            };
        }
        match self.scan {
            Scan::Start => Ok(Step::Incomplete),
            Scan::Inline { searched } => self.step_inline(buf, searched),
            Scan::Header { searched } => self.step_header(buf, searched),
            Scan::Bulks {
                count,
                pos,
                searched,
            } => self.step_bulks(buf, count, pos, searched),
        }
    }

    /// The `*N\r\n` header: fail on a bad or too large count, skip `N <= 0`.
    fn step_header(&mut self, buf: &mut BytesMut, searched: usize) -> Result<Step, ProtoError> {
        let Some(cr) = find(buf, searched.max(1), b'\r') else {
            if buf.len() > MAX_COUNT_LINE {
                return Err(ProtoError::MultibulkCountTooBig);
            }
            self.scan = Scan::Header {
                searched: buf.len(),
            };
            return Ok(Step::Incomplete);
        };
        match buf.get(cr + 1) {
            None => {
                self.scan = Scan::Header { searched: cr };
                return Ok(Step::Incomplete);
            }
            Some(b'\n') => {}
            Some(_) => return Err(ProtoError::InvalidMultibulkLength),
        }
        let count = buf
            .get(1..cr)
            .and_then(parse_ll)
            .ok_or(ProtoError::InvalidMultibulkLength)?;
        if count <= 0 {
            return Ok(Step::Skip(cr + 2));
        }
        let count = usize::try_from(count).map_err(|_| ProtoError::InvalidMultibulkLength)?;
        if count > self.limits.max_args || count > i32::MAX as usize {
            return Err(ProtoError::InvalidMultibulkLength);
        }
        self.ranges.clear();
        let pos = cr + 2;
        self.scan = Scan::Bulks {
            count,
            pos,
            searched: pos,
        };
        self.step_bulks(buf, count, pos, pos)
    }

    /// The bulk strings of a multibulk request, from the one whose header is at `pos`.
    fn step_bulks(
        &mut self,
        buf: &mut BytesMut,
        count: usize,
        mut pos: usize,
        mut searched: usize,
    ) -> Result<Step, ProtoError> {
        while self.ranges.len() < count {
            let Some(&kind) = buf.get(pos) else {
                self.scan = Scan::Bulks {
                    count,
                    pos,
                    searched,
                };
                return Ok(Step::Incomplete);
            };
            if kind != b'$' {
                return Err(ProtoError::ExpectedBulk(shown(kind)));
            }
            let Some(cr) = find(buf, searched.max(pos + 1), b'\r') else {
                if buf.len() - pos > MAX_COUNT_LINE {
                    return Err(ProtoError::BulkCountTooBig);
                }
                self.scan = Scan::Bulks {
                    count,
                    pos,
                    searched: buf.len(),
                };
                return Ok(Step::Incomplete);
            };
            match buf.get(cr + 1) {
                None => {
                    self.scan = Scan::Bulks {
                        count,
                        pos,
                        searched: cr,
                    };
                    return Ok(Step::Incomplete);
                }
                Some(b'\n') => {}
                Some(_) => return Err(ProtoError::InvalidBulkLength),
            }
            let len = buf
                .get(pos + 1..cr)
                .and_then(parse_ll)
                .and_then(|n| usize::try_from(n).ok())
                .filter(|&n| n <= self.limits.max_bulk_bytes)
                .ok_or(ProtoError::InvalidBulkLength)?;
            // The header is valid: from here on only bytes that arrived are looked at.
            let start = cr + 2;
            let end = start.saturating_add(len);
            let Some(trailer) = buf.get(end..end.saturating_add(2)) else {
                // Resume at this header; finding its `\r` again is immediate.
                self.scan = Scan::Bulks {
                    count,
                    pos,
                    searched: cr,
                };
                return Ok(Step::Incomplete);
            };
            if trailer != b"\r\n" {
                return Err(ProtoError::Malformed(
                    "expected '\\r\\n' after bulk string".to_owned(),
                ));
            }
            self.ranges.push((start, end));
            pos = end + 2;
            searched = pos;
        }
        let frame = buf.split_to(pos).freeze();
        let args = self
            .ranges
            .iter()
            .map(|&(start, end)| frame.slice(start..end))
            .collect();
        self.ranges.clear();
        // Keep the capacity for the next small request, not after a giant one.
        if self.ranges.capacity() > RANGES_KEPT {
            self.ranges = Vec::new();
        }
        Ok(Step::Done(Request { args }))
    }

    /// An inline command line.
    fn step_inline(&mut self, buf: &mut BytesMut, searched: usize) -> Result<Step, ProtoError> {
        let max = self.limits.max_inline_bytes;
        let Some(nl) = find(buf, searched, b'\n') else {
            if buf.len() > max {
                return Err(ProtoError::InlineTooBig);
            }
            self.scan = Scan::Inline {
                searched: buf.len(),
            };
            return Ok(Step::Incomplete);
        };
        if nl > max {
            return Err(ProtoError::InlineTooBig);
        }
        let line = &buf[..nl];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let tokens = split_args(line)?;
        if tokens.is_empty() {
            return Ok(Step::Skip(nl + 1));
        }
        // Redis needs no such checks (its inline limit is far below the others), but with
        // `--max-inline-bytes` set high the per-request limits must still hold.
        if tokens.len() > self.limits.max_args {
            return Err(ProtoError::InvalidMultibulkLength);
        }
        if tokens.iter().any(|t| t.len() > self.limits.max_bulk_bytes) {
            return Err(ProtoError::InvalidBulkLength);
        }
        let frame = buf.split_to(nl + 1).freeze();
        let args = tokens
            .into_iter()
            .map(|token| match token {
                Token::Raw(start, end) => frame.slice(start..end),
                Token::Owned(bytes) => Bytes::from(bytes),
            })
            .collect();
        Ok(Step::Done(Request { args }))
    }
}

/// The first `byte` in `buf` at or after `from`.
fn find(buf: &[u8], from: usize, byte: u8) -> Option<usize> {
    let rest = buf.get(from..)?;
    rest.iter().position(|&b| b == byte).map(|i| from + i)
}

/// A byte as it may appear in a one-line error text.
fn shown(byte: u8) -> char {
    if byte.is_ascii_graphic() || byte == b' ' {
        char::from(byte)
    } else {
        '?'
    }
}

/// Redis's `string2ll`: an optional `-`, then `0` alone or digits without a leading zero,
/// shorter than 21 bytes and within `i64`. Anything else (`+5`, `007`, `-0`, ``) is `None`.
fn parse_ll(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() >= LONG_STR_SIZE {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (negative, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    let mut v: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    if negative {
        0i64.checked_sub_unsigned(v)
    } else {
        i64::try_from(v).ok()
    }
}

/// One inline argument: a plain slice of the line, or bytes rebuilt from quotes/escapes.
#[derive(Debug, PartialEq, Eq)]
enum Token {
    /// `line[start..end]` as it is.
    Raw(usize, usize),
    /// The argument after removing quotes and resolving escapes.
    Owned(Vec<u8>),
}

impl Token {
    /// The argument's length in bytes.
    fn len(&self) -> usize {
        match self {
            Token::Raw(start, end) => end - start,
            Token::Owned(bytes) => bytes.len(),
        }
    }
}

/// Redis's `isspace` (C locale).
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

/// Value of one hex digit.
fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Redis's `sdssplitargs` on one line. As in Redis (a C string), a NUL byte ends the line.
///
/// # Errors
/// [`ProtoError::UnbalancedQuotes`] for an unterminated quote or a closing quote that is
/// not followed by a space or the end of the line.
fn split_args(line: &[u8]) -> Result<Vec<Token>, ProtoError> {
    // Past the end reads as NUL, like the terminator of Redis's C string.
    let at = |i: usize| line.get(i).copied().unwrap_or(0);
    let mut tokens = Vec::new();
    let mut p = 0;
    loop {
        while at(p) != 0 && is_space(at(p)) {
            p += 1;
        }
        if at(p) == 0 {
            return Ok(tokens);
        }
        let start = p;
        // `None` while the token is a plain run of bytes that can be sliced.
        let mut owned: Option<Vec<u8>> = None;
        let (mut in_double, mut in_single) = (false, false);
        loop {
            let c = at(p);
            if in_double {
                let buf = owned.get_or_insert_with(Vec::new);
                if c == b'\\' && at(p + 1) == b'x' {
                    if let (Some(hi), Some(lo)) = (hex_value(at(p + 2)), hex_value(at(p + 3))) {
                        buf.push(hi * 16 + lo);
                        p += 4;
                        continue;
                    }
                }
                if c == b'\\' && at(p + 1) != 0 {
                    p += 1;
                    buf.push(match at(p) {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => b'\x08',
                        b'a' => b'\x07',
                        other => other,
                    });
                } else if c == b'"' {
                    if at(p + 1) != 0 && !is_space(at(p + 1)) {
                        return Err(ProtoError::UnbalancedQuotes);
                    }
                    p += 1;
                    break;
                } else if c == 0 {
                    return Err(ProtoError::UnbalancedQuotes);
                } else {
                    buf.push(c);
                }
            } else if in_single {
                let buf = owned.get_or_insert_with(Vec::new);
                if c == b'\\' && at(p + 1) == b'\'' {
                    p += 1;
                    buf.push(b'\'');
                } else if c == b'\'' {
                    if at(p + 1) != 0 && !is_space(at(p + 1)) {
                        return Err(ProtoError::UnbalancedQuotes);
                    }
                    p += 1;
                    break;
                } else if c == 0 {
                    return Err(ProtoError::UnbalancedQuotes);
                } else {
                    buf.push(c);
                }
            } else {
                match c {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => break,
                    b'"' | b'\'' => {
                        // A quote opens inside or at the start of the token (a closing
                        // quote always ends it), so all before it is plain: copy that.
                        owned = Some(line.get(start..p).unwrap_or_default().to_vec());
                        if c == b'"' {
                            in_double = true;
                        } else {
                            in_single = true;
                        }
                    }
                    // Plain bytes stay in the line; the token is sliced at its end.
                    _ => {}
                }
            }
            p += 1;
        }
        tokens.push(match owned {
            Some(bytes) => Token::Owned(bytes),
            None => Token::Raw(start, p),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use redis_protocol::resp3::types::BytesFrame;
    use redis_protocol::resp3::{decode::complete as r3decode, encode::complete as r3encode};

    fn small() -> DecodeLimits {
        DecodeLimits {
            max_bulk_bytes: 16,
            max_args: 4,
            max_inline_bytes: 32,
        }
    }

    /// Decodes every request in `input` (fed at once); the error, if any, ends the list.
    fn all(limits: DecodeLimits, input: &[u8]) -> (Vec<Vec<Vec<u8>>>, Option<ProtoError>, usize) {
        let mut dec = Decoder::new(limits);
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(req)) => out.push(req.args.iter().map(|a| a.to_vec()).collect()),
                Ok(None) => return (out, None, buf.len()),
                Err(e) => return (out, Some(e), buf.len()),
            }
        }
    }

    /// Like [`all`] but appends one byte at a time, draining after each.
    fn bytewise(limits: DecodeLimits, input: &[u8]) -> (Vec<Vec<Vec<u8>>>, Option<ProtoError>) {
        let mut dec = Decoder::new(limits);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for &b in input {
            buf.extend_from_slice(&[b]);
            loop {
                match dec.decode(&mut buf) {
                    Ok(Some(req)) => out.push(req.args.iter().map(|a| a.to_vec()).collect()),
                    Ok(None) => break,
                    Err(e) => return (out, Some(e)),
                }
            }
        }
        (out, None)
    }

    fn one(input: &[u8]) -> Result<Option<Vec<Vec<u8>>>, ProtoError> {
        let mut buf = BytesMut::from(input);
        Decoder::new(DecodeLimits::default())
            .decode(&mut buf)
            .map(|r| r.map(|r| r.args.iter().map(|a| a.to_vec()).collect()))
    }

    fn err(input: &[u8]) -> String {
        match one(input) {
            Err(e) => e.to_string(),
            other => panic!("expected an error for {input:?}, got {other:?}"),
        }
    }

    fn v(args: &[&str]) -> Vec<Vec<u8>> {
        args.iter().map(|a| a.as_bytes().to_vec()).collect()
    }

    fn encode(args: &[Vec<u8>]) -> Vec<u8> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    #[test]
    fn pipelined_multibulk_requests() {
        let mut input = Vec::new();
        for i in 0..40 {
            input.extend(encode(&v(&["LOCK", &format!("k{i}"), "owner", "30000"])));
        }
        input.extend_from_slice(b"*2\r\n$4\r\nPING"); // a partial one at the end
        let (reqs, e, left) = all(DecodeLimits::default(), &input);
        assert_eq!(e, None);
        assert_eq!(reqs.len(), 40);
        assert_eq!(reqs[7], v(&["LOCK", "k7", "owner", "30000"]));
        assert_eq!(left, b"*2\r\n$4\r\nPING".len(), "the partial request stays");
    }

    #[test]
    fn args_are_slices_of_one_chunk() {
        let mut buf = BytesMut::from(&b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"[..]);
        let req = Decoder::new(DecodeLimits::default())
            .decode(&mut buf)
            .unwrap()
            .unwrap();
        let gap = req.args[1].as_ptr() as usize - req.args[0].as_ptr() as usize;
        assert_eq!(gap, b"GET\r\n$1\r\n".len());
        assert!(buf.is_empty());
    }

    #[test]
    fn byte_at_a_time_equals_all_at_once() {
        let mut input = encode(&v(&["SET", "key", "", "a\r\nb"]));
        input.extend_from_slice(b"*0\r\n*-1\r\n\r\n  \t \r\nPING \"a b\" 'c'\r\n");
        input.extend(encode(&v(&["UNLOCK", "k", "o"])));
        let (a, e, left) = all(DecodeLimits::default(), &input);
        assert_eq!((e, left), (None, 0));
        assert_eq!(bytewise(DecodeLimits::default(), &input), (a.clone(), None));
        assert_eq!(
            a,
            vec![
                v(&["SET", "key", "", "a\r\nb"]),
                v(&["PING", "a b", "c"]),
                v(&["UNLOCK", "k", "o"]),
            ]
        );
    }

    #[test]
    fn empty_and_negative_counts_are_skipped() {
        assert_eq!(one(b"*0\r\n"), Ok(None));
        assert_eq!(one(b"*-1\r\n"), Ok(None));
        assert_eq!(
            one(b"*-7\r\n*0\r\n*1\r\n$4\r\nPING\r\n"),
            Ok(Some(v(&["PING"])))
        );
        let (_, e, left) = all(DecodeLimits::default(), b"*0\r\n*-1\r\n");
        assert_eq!((e, left), (None, 0), "skipped frames are consumed");
    }

    #[test]
    fn incomplete_consumes_nothing() {
        for input in [
            &b"*"[..],
            b"*2",
            b"*2\r",
            b"*2\r\n$",
            b"*2\r\n$3\r\nGE",
            b"*1\r\n$3\r\nGET\r",
        ] {
            let (reqs, e, left) = all(DecodeLimits::default(), input);
            assert_eq!((reqs.len(), e, left), (0, None, input.len()), "{input:?}");
        }
    }

    #[test]
    fn inline_commands() {
        assert_eq!(one(b"PING\r\n"), Ok(Some(v(&["PING"]))));
        assert_eq!(one(b"PING\n"), Ok(Some(v(&["PING"]))));
        assert_eq!(one(b"PING"), Ok(None));
        assert_eq!(one(b"  set  k\tv  \r\n"), Ok(Some(v(&["set", "k", "v"]))));
        assert_eq!(one(b"\r\n\n   \r\nPING\r\n"), Ok(Some(v(&["PING"]))));
        // Redis's C string: a NUL byte ends the line.
        assert_eq!(one(b"a b\0c d\n"), Ok(Some(v(&["a", "b"]))));
        // \v and \f are blanks between tokens but not inside them, as in sdssplitargs.
        assert_eq!(one(b"\x0ba\x0bb\n"), Ok(Some(vec![b"a\x0bb".to_vec()])));
    }

    #[test]
    fn inline_quotes_and_escapes() {
        assert_eq!(
            one(b"SET \"a b\" \"\\n\\r\\t\\b\\a\\\\\\\"\\q\"\r\n"),
            Ok(Some(vec![
                b"SET".to_vec(),
                b"a b".to_vec(),
                b"\n\r\t\x08\x07\\\"q".to_vec()
            ]))
        );
        assert_eq!(
            one(b"x \"\\x41\\x7a\\xff\\x4\\xZZ\"\n"),
            Ok(Some(vec![
                b"x".to_vec(),
                b"Az\xffx4xZZ".to_vec() // `\x` without two hex digits: an unknown escape, `x`
            ]))
        );
        assert_eq!(
            one(b"x 'it\\'s' 'a\\nb' '' \"\"\n"),
            Ok(Some(vec![
                b"x".to_vec(),
                b"it's".to_vec(),
                b"a\\nb".to_vec(),
                b"".to_vec(),
                b"".to_vec()
            ]))
        );
        // A quote may open inside a token; everything joins into one argument.
        assert_eq!(one(b"ab\"c d\"\n"), Ok(Some(v(&["abc d"]))));
        assert_eq!(one(b"ab'c d'\n"), Ok(Some(v(&["abc d"]))));
    }

    #[test]
    fn unbalanced_quotes() {
        for line in [
            &b"SET \"abc\n"[..],
            b"SET 'abc\n",
            b"SET \"a\"b\n",
            b"SET 'a'b\n",
            b"SET \"a\\\"\n",
            b"SET \"a\\\n",
            b"SET \"a\0b\"\n",
        ] {
            assert_eq!(err(line), "unbalanced quotes in request", "{line:?}");
        }
        // Followed by a blank or the end is fine.
        assert_eq!(one(b"\"a\"\t'b'\r\n"), Ok(Some(v(&["a", "b"]))));
    }

    #[test]
    fn inline_too_big() {
        let limits = DecodeLimits {
            max_bulk_bytes: 64,
            ..small() // 32 bytes inline
        };
        let line = [b'a'; 32];
        let mut ok = line.to_vec();
        ok.push(b'\n');
        assert_eq!(all(limits, &ok).0, vec![vec![line.to_vec()]]);
        // With no newline yet: fails as soon as it is longer than the limit.
        assert_eq!(all(limits, &line).1, None);
        let long = [b'a'; 33];
        assert_eq!(all(limits, &long).1, Some(ProtoError::InlineTooBig));
        assert_eq!(bytewise(limits, &long).1, Some(ProtoError::InlineTooBig));
        let mut complete = long.to_vec();
        complete.push(b'\n');
        assert_eq!(all(limits, &complete).1, Some(ProtoError::InlineTooBig));
        assert_eq!(
            ProtoError::InlineTooBig.to_string(),
            "too big inline request"
        );
    }

    #[test]
    fn inline_obeys_the_arg_limits() {
        let limits = DecodeLimits {
            max_bulk_bytes: 4,
            max_args: 3,
            max_inline_bytes: 64,
        };
        assert_eq!(all(limits, b"a b c\n").0, vec![v(&["a", "b", "c"])]);
        assert_eq!(
            all(limits, b"a b c d\n").1,
            Some(ProtoError::InvalidMultibulkLength)
        );
        assert_eq!(all(limits, b"abcd\n").0, vec![v(&["abcd"])]);
        assert_eq!(
            all(limits, b"abcde\n").1,
            Some(ProtoError::InvalidBulkLength)
        );
        assert_eq!(
            all(limits, b"'abcde'\n").1,
            Some(ProtoError::InvalidBulkLength)
        );
    }

    #[test]
    fn multibulk_count_errors() {
        for input in [
            &b"*abc\r\n"[..],
            b"*\r\n",
            b"*+1\r\n",
            b"*01\r\n",
            b"*-0\r\n",
            b"*1 \r\n",
            b"*1\rX",
            b"*99999999999999999999\r\n",
            b"*1048577\r\n",
            b"*2147483648\r\n",
        ] {
            assert_eq!(err(input), "invalid multibulk length", "{input:?}");
        }
        // Exactly max_args is fine (the request just is not complete yet).
        assert_eq!(one(b"*1048576\r\n"), Ok(None));
        let mut line = b"*".to_vec();
        line.extend(std::iter::repeat_n(b'1', MAX_COUNT_LINE - 1));
        assert_eq!(one(&line), Ok(None));
        line.push(b'1');
        assert_eq!(err(&line), "too big mbulk count string");
    }

    #[test]
    fn small_max_args() {
        let limits = small(); // 4 args
        assert_eq!(all(limits, b"*4\r\n").1, None);
        assert_eq!(
            all(limits, b"*5\r\n").1,
            Some(ProtoError::InvalidMultibulkLength)
        );
    }

    #[test]
    fn bulk_errors() {
        for input in [
            &b"*1\r\n$abc\r\n"[..],
            b"*1\r\n$\r\n",
            b"*1\r\n$-1\r\n",
            b"*1\r\n$-5\r\n",
            b"*1\r\n$+3\r\n",
            b"*1\r\n$03\r\n",
            b"*1\r\n$3\rX",
            b"*1\r\n$9999999999\r\n",
            b"*1\r\n$99999999999999999999999\r\n",
            b"*1\r\n$8388609\r\n",
        ] {
            assert_eq!(err(input), "invalid bulk length", "{input:?}");
        }
        assert_eq!(err(b"*1\r\n:1\r\n"), "expected '$', got ':'");
        assert_eq!(err(b"*2\r\n$1\r\na\r\n+OK\r\n"), "expected '$', got '+'");
        assert_eq!(
            err(b"*1\r\n\r\n"),
            "expected '$', got '?'",
            "control bytes stay off the line"
        );
        assert_eq!(err(b"*1\r\n\xff"), "expected '$', got '?'");
        assert_eq!(
            err(b"*1\r\n$3\r\nGETxx"),
            "expected '\\r\\n' after bulk string"
        );
        let mut line = b"*1\r\n$".to_vec();
        line.extend(std::iter::repeat_n(b'1', MAX_COUNT_LINE - 1));
        assert_eq!(one(&line), Ok(None));
        line.push(b'1');
        assert_eq!(err(&line), "too big bulk count string");
    }

    #[test]
    fn huge_announced_length_fails_before_the_data() {
        // Only the header is there; the error comes at once and nothing is reserved.
        let mut buf = BytesMut::from(&b"*1\r\n$9999999999\r\n"[..]);
        let cap = buf.capacity();
        let mut dec = Decoder::new(DecodeLimits::default());
        assert_eq!(dec.decode(&mut buf), Err(ProtoError::InvalidBulkLength));
        assert_eq!(buf.capacity(), cap);
        // Also byte by byte: the error is reported the moment the `\n` arrives.
        let input = b"*1\r\n$9999999999\r\n";
        let mut buf = BytesMut::new();
        let mut dec = Decoder::new(DecodeLimits::default());
        for (i, &b) in input.iter().enumerate() {
            buf.extend_from_slice(&[b]);
            let r = dec.decode(&mut buf);
            if i + 1 < input.len() {
                assert_eq!(r, Ok(None));
            } else {
                assert_eq!(r, Err(ProtoError::InvalidBulkLength));
            }
        }
    }

    #[test]
    fn bulk_limit_boundary_with_small_limit() {
        let limits = small(); // 16 bytes
        let ok = encode(&[vec![b'x'; 16]]);
        assert_eq!(all(limits, &ok).0, vec![vec![vec![b'x'; 16]]]);
        assert_eq!(
            all(limits, b"*1\r\n$17\r\n").1,
            Some(ProtoError::InvalidBulkLength)
        );
    }

    #[test]
    fn eight_mib_boundary() {
        let max = DecodeLimits::default().max_bulk_bytes;
        assert_eq!(max, 8 * 1024 * 1024);
        // max + 1 fails from the header alone.
        assert_eq!(
            one(format!("*1\r\n${}\r\n", max + 1).as_bytes()),
            Err(ProtoError::InvalidBulkLength)
        );
        // Exactly max: the header is accepted and waits for the data...
        let header = format!("*2\r\n$3\r\nSET\r\n${max}\r\n");
        assert_eq!(one(header.as_bytes()), Ok(None));
        // ...and one real 8 MiB argument decodes (the one big allocation of the tests).
        let mut input = header.into_bytes();
        input.resize(input.len() + max, b'v');
        input.extend_from_slice(b"\r\n");
        let mut buf = BytesMut::from(&input[..]);
        let req = Decoder::new(DecodeLimits::default())
            .decode(&mut buf)
            .unwrap()
            .unwrap();
        assert_eq!(req.args.len(), 2);
        assert_eq!(req.args[1].len(), max);
        assert!(buf.is_empty());
    }

    #[test]
    fn parse_ll_follows_string2ll() {
        assert_eq!(parse_ll(b"0"), Some(0));
        assert_eq!(parse_ll(b"-1"), Some(-1));
        assert_eq!(parse_ll(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_ll(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"-",
            b"-0",
            b"00",
            b"01",
            b"+1",
            b" 1",
            b"1a",
            b"9223372036854775808",
        ] {
            assert_eq!(parse_ll(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn state_survives_a_buffer_that_was_not_only_appended_to() {
        let mut dec = Decoder::new(DecodeLimits::default());
        let mut buf = BytesMut::from(&b"*2\r\n$3\r\nGET\r\n"[..]);
        assert_eq!(dec.decode(&mut buf), Ok(None));
        // The caller swaps in another buffer: no panic, a fresh scan.
        let mut other = BytesMut::from(&b"PING\r\n"[..]);
        assert_eq!(
            dec.decode(&mut other).unwrap().unwrap().args,
            vec![Bytes::from("PING")]
        );
    }

    #[test]
    fn error_texts() {
        let texts = [
            (
                ProtoError::InvalidMultibulkLength,
                "invalid multibulk length",
            ),
            (ProtoError::InvalidBulkLength, "invalid bulk length"),
            (ProtoError::ExpectedBulk(':'), "expected '$', got ':'"),
            (ProtoError::InlineTooBig, "too big inline request"),
            (ProtoError::UnbalancedQuotes, "unbalanced quotes in request"),
            (
                ProtoError::MultibulkCountTooBig,
                "too big mbulk count string",
            ),
            (ProtoError::BulkCountTooBig, "too big bulk count string"),
        ];
        for (e, text) in texts {
            assert_eq!(e.to_string(), text);
        }
    }

    /// Encodes a request with redis-protocol, an independent implementation.
    fn encode_with_crate(buf: &mut BytesMut, args: &[Vec<u8>]) {
        let frame = BytesFrame::Array {
            data: args
                .iter()
                .map(|a| BytesFrame::BlobString {
                    data: Bytes::copy_from_slice(a),
                    attributes: None,
                })
                .collect(),
            attributes: None,
        };
        r3encode::extend_encode(buf, &frame, false).unwrap();
    }

    proptest! {
        #[test]
        fn roundtrip_split_at_random_points(
            reqs in prop::collection::vec(
                prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 1..6),
                1..12,
            ),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            let mut wire = BytesMut::new();
            for args in &reqs {
                encode_with_crate(&mut wire, args);
            }
            prop_assert_eq!(&wire[..], &reqs.iter().flat_map(|a| encode(a)).collect::<Vec<_>>()[..]);
            let mut points: Vec<usize> = cuts.iter().map(|c| c.index(wire.len() + 1)).collect();
            points.push(wire.len());
            points.sort_unstable();
            let mut dec = Decoder::new(DecodeLimits::default());
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            let mut from = 0;
            for p in points {
                buf.extend_from_slice(&wire[from..p]);
                from = p;
                while let Some(req) = dec.decode(&mut buf).unwrap() {
                    got.push(req.args.iter().map(|a| a.to_vec()).collect::<Vec<_>>());
                }
            }
            prop_assert!(buf.is_empty());
            prop_assert_eq!(got, reqs);
        }

        /// On arbitrary bytes, whatever this decoder accepts as a multibulk request the
        /// crate's decoder reads as the same array of blob strings.
        #[test]
        fn agrees_with_redis_protocol(
            args in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..20), 1..5),
            noise in prop::collection::vec(any::<u8>(), 0..6),
            at in any::<prop::sample::Index>(),
        ) {
            let mut wire = encode(&args);
            let i = at.index(wire.len());
            wire.splice(i..i, noise);
            let mut buf = BytesMut::from(&wire[..]);
            let ours = Decoder::new(DecodeLimits::default()).decode(&mut buf);
            if let (Ok(Some(req)), Some(b'*')) = (ours, wire.first()) {
                let consumed = wire.len() - buf.len();
                let theirs = r3decode::decode_bytes(&Bytes::copy_from_slice(&wire[..consumed]));
                let Ok(Some((BytesFrame::Array { data, .. }, amt))) = theirs else {
                    return Err(TestCaseError::fail(format!("crate: {theirs:?}")));
                };
                prop_assert_eq!(amt, consumed);
                let theirs: Vec<Bytes> = data
                    .into_iter()
                    .map(|f| match f {
                        BytesFrame::BlobString { data, .. } => data,
                        other => Bytes::from(format!("{other:?}")),
                    })
                    .collect();
                prop_assert_eq!(req.args, theirs);
            }
        }
    }
}
