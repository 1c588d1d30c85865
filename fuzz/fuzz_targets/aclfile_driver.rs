//! The body of the `aclfile` fuzz target, shared with `tests/fuzz_regressions.rs` so the
//! corpus cases kept under `fuzz/seeds/aclfile/` run in `cargo test` as regression tests.
//!
//! Bytes → `acl::file::parse` (what `--aclfile` and ACL LOAD read). Checks: no panic; an
//! error names a line (`FILE:N...`) or a duplicate; what is accepted, rendered in the
//! ACL LIST form (what ACL SAVE writes), parses back to the same users.

use baton::acl::file;

/// Runs one input; panics when a check fails.
pub fn run(data: &[u8]) {
    match file::parse("fuzz.acl", data) {
        Ok(users) => {
            let text = file::render(&users);
            let again = file::parse("fuzz.acl", text.as_bytes())
                .unwrap_or_else(|err| panic!("rendered users do not parse: {err}\n{text}"));
            assert_eq!(
                users, again,
                "rendered users differ after a round trip:\n{text}"
            );
        }
        Err(err) => assert!(
            err.starts_with("fuzz.acl:") || err.starts_with("WARNING: Duplicate user"),
            "an error that names no line: {err}"
        ),
    }
}
