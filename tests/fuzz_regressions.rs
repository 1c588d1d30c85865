//! The fuzzers' kept corpus cases (`fuzz/seeds/`), replayed in `cargo test`: decoding and
//! command application must not panic and the table's invariants must hold.

#[path = "../fuzz/fuzz_targets/command_driver.rs"]
mod driver;

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
