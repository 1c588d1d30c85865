//! The fuzzers' kept corpus cases (`fuzz/seeds/`), replayed in `cargo test`: decoding and
//! command application must not panic and the table's invariants must hold; the durable
//! log's decoders must not panic and must give back exactly the bytes they accepted; AUTH
//! and HELLO must parse or fail with a one-line error; ACL files must parse and round-trip, or fail
//! naming a line.

#[path = "../fuzz/fuzz_targets/command_driver.rs"]
mod driver;

#[path = "../fuzz/fuzz_targets/record_driver.rs"]
mod record_driver;

#[path = "../fuzz/fuzz_targets/auth_hello_driver.rs"]
mod auth_hello_driver;

#[path = "../fuzz/fuzz_targets/aclfile_driver.rs"]
mod aclfile_driver;

use std::path::Path;

fn seeds(dir: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(dir);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| std::fs::read(p).expect("read seed"))
        .collect()
}

#[test]
fn command_corpus_cases_keep_the_table_consistent() {
    let cases = seeds("command");
    assert!(cases.len() >= 10, "the kept corpus is there");
    for case in &cases {
        driver::run(case);
    }
}

#[test]
fn decode_corpus_cases_go_through_the_command_path_too() {
    for case in seeds("decode") {
        driver::run(&case);
    }
}

#[test]
fn record_corpus_cases_decode_or_fail_cleanly() {
    let cases = seeds("record");
    assert!(cases.len() >= 10, "the kept corpus is there");
    for case in &cases {
        record_driver::run(case);
    }
}

/// The seeds are not all rejected: the valid ones reach the re-encoding checks.
#[test]
fn record_corpus_holds_valid_records_of_every_kind() {
    let mut kinds = std::collections::BTreeSet::new();
    for case in seeds("record") {
        if let [0, payload @ ..] = case.as_slice() {
            if let Ok(record) = baton::persist::Record::decode(payload) {
                kinds.insert(
                    format!("{record:?}")
                        .split([' ', '{'])
                        .next()
                        .map(str::to_string),
                );
            }
        }
    }
    assert!(kinds.len() >= 9, "record kinds in the corpus: {kinds:?}");
}

#[test]
fn auth_hello_corpus_cases_parse_or_fail_with_one_line() {
    let cases = seeds("auth_hello");
    assert!(cases.len() >= 10, "the kept corpus is there");
    for case in &cases {
        auth_hello_driver::run(case);
    }
}

#[test]
fn aclfile_corpus_cases_round_trip_or_name_a_line() {
    let cases = seeds("aclfile");
    assert!(cases.len() >= 10, "the kept corpus is there");
    for case in &cases {
        aclfile_driver::run(case);
    }
}
