//! The body of the `auth_hello` fuzz target, shared with `tests/fuzz_regressions.rs` so the
//! corpus cases kept under `fuzz/seeds/auth_hello/` run in `cargo test` as regression tests.
//!
//! Arbitrary arguments → `AUTH` or `HELLO` → the command parser (`cmd::parse`, the path
//! every request takes, before and after authentication). The first byte picks the
//! command name and its case; the rest is split on `0x00` into at most 8 arguments.
//!
//! Checks: no panic; both commands are allowed before AUTH in any case of their name (the
//! check reads the command's spec, never its arguments); an error is one line of bounded
//! length that starts with an upper-case code (an error text that echoed a CR or LF from a
//! client's argument would let that client write its own replies into the stream).

use baton::cmd::{self, args::ArgLimits, connection::allowed_before_auth, spec};
use baton::resp::Request;
use bytes::Bytes;

/// Runs one input; panics when a check fails.
pub fn run(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let name: &'static [u8] = match mode % 4 {
        0 => b"AUTH",
        1 => b"HELLO",
        2 => b"auth",
        _ => b"Hello",
    };
    let mut args = vec![Bytes::from_static(name)];
    if !rest.is_empty() {
        args.extend(rest.split(|b| *b == 0).take(8).map(Bytes::copy_from_slice));
    }
    let spec = spec::lookup(&name.to_ascii_uppercase()).expect("AUTH and HELLO have specs");
    assert!(allowed_before_auth(spec), "{name:?} refused before AUTH");
    let req = Request { args };
    let limits = ArgLimits {
        max_key_bytes: 64,
        max_ttl_ms: 10_000,
    };
    if let Err(e) = cmd::parse(&req, limits) {
        let text = e.text();
        assert!(
            !text.contains(['\r', '\n']),
            "an error reply spans lines: {text:?}"
        );
        assert!(text.len() <= 512, "an error of {} bytes", text.len());
        let code = text.split(' ').next().unwrap_or_default();
        assert!(
            !code.is_empty() && code.bytes().all(|b| b.is_ascii_uppercase()),
            "no error code: {text:?}"
        );
    }
}
