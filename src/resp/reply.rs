//! [`Reply`]: what a command answers, and its RESP2 / RESP3 encoding.
//!
//! Commands build a `Reply` and never touch the socket; the connection encodes every reply
//! of a pipelined batch into one buffer and writes it once. RESP3-only shapes degrade to
//! RESP2 as Redis does: a map becomes a flat array, a boolean an integer, a double a bulk
//! string, nil becomes `$-1` (or `*-1` for [`Reply::NilArray`]).

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::RespError;

/// The protocol version a connection speaks, chosen by `HELLO`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// RESP2, the default of every new connection.
    #[default]
    Resp2,
    /// RESP3, after `HELLO 3`.
    Resp3,
}

/// A reply to one command.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `+text`.
    Simple(Bytes),
    /// `-text` (the text carries its prefix).
    Error(RespError),
    /// `:n`.
    Int(i64),
    /// `$len\r\nbytes`.
    Bulk(Bytes),
    /// Nil: `$-1` in RESP2, `_` in RESP3.
    Nil,
    /// A nil array: `*-1` in RESP2, `_` in RESP3 (MLOCK's "not granted").
    NilArray,
    /// `*n` followed by n replies.
    Array(Vec<Reply>),
    /// A RESP3 map (`%n`); a flat array of 2n elements in RESP2.
    Map(Vec<(Reply, Reply)>),
    /// A RESP3 set (`~n`); an array in RESP2.
    Set(Vec<Reply>),
    /// A RESP3 boolean (`#t`/`#f`); `:1`/`:0` in RESP2.
    Bool(bool),
    /// A RESP3 double (`,`); a bulk string in RESP2.
    Double(f64),
    /// A RESP3 verbatim string (`=len\r\ntxt:...`); a bulk string in RESP2 (INFO's reply).
    Verbatim(Bytes),
}

impl Reply {
    /// `+OK`.
    pub fn ok() -> Reply {
        Reply::Simple(Bytes::from_static(b"OK"))
    }

    /// A simple string from static text.
    pub fn simple(text: &'static str) -> Reply {
        Reply::Simple(Bytes::from_static(text.as_bytes()))
    }

    /// A bulk string from static text.
    pub fn bulk_static(text: &'static str) -> Reply {
        Reply::Bulk(Bytes::from_static(text.as_bytes()))
    }

    /// A bulk string copied from a `String`.
    pub fn bulk_string(text: String) -> Reply {
        Reply::Bulk(Bytes::from(text))
    }

    /// A map whose names are static strings (LOCK.INFO, SEM.INFO, HELLO).
    pub fn map_static(fields: Vec<(&'static str, Reply)>) -> Reply {
        Reply::Map(
            fields
                .into_iter()
                .map(|(name, value)| (Reply::bulk_static(name), value))
                .collect(),
        )
    }

    /// True when this reply is an error.
    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }

    /// Appends this reply's encoding in `proto` to `out`.
    pub fn encode(&self, proto: Protocol, out: &mut BytesMut) {
        match self {
            Reply::Simple(text) => line(out, b'+', text),
            Reply::Error(err) => line(out, b'-', err.text().as_bytes()),
            Reply::Int(n) => int_line(out, b':', *n),
            Reply::Bulk(bytes) => bulk(out, b'$', bytes),
            Reply::Nil => match proto {
                Protocol::Resp2 => out.put_slice(b"$-1\r\n"),
                Protocol::Resp3 => out.put_slice(b"_\r\n"),
            },
            Reply::NilArray => match proto {
                Protocol::Resp2 => out.put_slice(b"*-1\r\n"),
                Protocol::Resp3 => out.put_slice(b"_\r\n"),
            },
            Reply::Array(items) => {
                int_line(out, b'*', items.len() as i64);
                for item in items {
                    item.encode(proto, out);
                }
            }
            Reply::Set(items) => {
                let tag = if proto == Protocol::Resp3 { b'~' } else { b'*' };
                int_line(out, tag, items.len() as i64);
                for item in items {
                    item.encode(proto, out);
                }
            }
            Reply::Map(pairs) => {
                match proto {
                    Protocol::Resp3 => int_line(out, b'%', pairs.len() as i64),
                    Protocol::Resp2 => int_line(out, b'*', 2 * pairs.len() as i64),
                }
                for (name, value) in pairs {
                    name.encode(proto, out);
                    value.encode(proto, out);
                }
            }
            Reply::Bool(b) => match proto {
                Protocol::Resp3 => out.put_slice(if *b { b"#t\r\n" } else { b"#f\r\n" }),
                Protocol::Resp2 => int_line(out, b':', i64::from(*b)),
            },
            Reply::Double(d) => {
                let text = format_double(*d);
                match proto {
                    Protocol::Resp3 => line(out, b',', text.as_bytes()),
                    Protocol::Resp2 => bulk(out, b'$', text.as_bytes()),
                }
            }
            Reply::Verbatim(bytes) => match proto {
                Protocol::Resp3 => {
                    int_line(out, b'=', bytes.len() as i64 + 4);
                    out.put_slice(b"txt:");
                    out.put_slice(bytes);
                    out.put_slice(b"\r\n");
                }
                Protocol::Resp2 => bulk(out, b'$', bytes),
            },
        }
    }
}

impl From<RespError> for Reply {
    fn from(err: RespError) -> Reply {
        Reply::Error(err)
    }
}

fn line(out: &mut BytesMut, tag: u8, text: &[u8]) {
    out.reserve(text.len() + 3);
    out.put_u8(tag);
    out.put_slice(text);
    out.put_slice(b"\r\n");
}

fn int_line(out: &mut BytesMut, tag: u8, n: i64) {
    let mut buf = itoa::Buffer::new();
    line(out, tag, buf.format(n).as_bytes());
}

fn bulk(out: &mut BytesMut, tag: u8, bytes: &[u8]) {
    int_line(out, tag, bytes.len() as i64);
    out.reserve(bytes.len() + 2);
    out.put_slice(bytes);
    out.put_slice(b"\r\n");
}

/// The text of a double as RESP2 and RESP3 send it (`inf`, `-inf`, `nan`, else Rust's
/// shortest form), and as a script sees one in RESP2.
pub fn format_double(d: f64) -> String {
    if d.is_infinite() {
        if d > 0.0 { "inf" } else { "-inf" }.to_string()
    } else if d.is_nan() {
        "nan".to_string()
    } else {
        format!("{d}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(reply: &Reply, proto: Protocol) -> Vec<u8> {
        let mut out = BytesMut::new();
        reply.encode(proto, &mut out);
        out.to_vec()
    }

    #[test]
    fn nil_shapes_follow_the_protocol() {
        assert_eq!(enc(&Reply::Nil, Protocol::Resp2), b"$-1\r\n");
        assert_eq!(enc(&Reply::Nil, Protocol::Resp3), b"_\r\n");
        assert_eq!(enc(&Reply::NilArray, Protocol::Resp2), b"*-1\r\n");
        assert_eq!(enc(&Reply::NilArray, Protocol::Resp3), b"_\r\n");
    }

    #[test]
    fn map_is_flat_in_resp2() {
        let map = Reply::map_static(vec![("a", Reply::Int(1))]);
        assert_eq!(enc(&map, Protocol::Resp2), b"*2\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(enc(&map, Protocol::Resp3), b"%1\r\n$1\r\na\r\n:1\r\n");
    }

    #[test]
    fn errors_and_bulk() {
        assert_eq!(
            enc(&Reply::Error(RespError::SYNTAX), Protocol::Resp2),
            b"-ERR syntax error\r\n"
        );
        assert_eq!(
            enc(
                &Reply::Bulk(Bytes::from_static(b"\x00\r\n")),
                Protocol::Resp2
            ),
            b"$3\r\n\x00\r\n\r\n"
        );
    }
}
