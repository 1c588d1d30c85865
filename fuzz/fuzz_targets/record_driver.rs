//! The body of the `record` fuzz target, shared with `tests/fuzz_regressions.rs` so the
//! corpus cases kept under `fuzz/seeds/record/` run in `cargo test` as regression tests.
//!
//! Arbitrary bytes → the durable log's decoders (`persist::record` and `persist::recover`):
//! what recovery reads after a crash, a disk fault or a foreign file. The first byte picks
//! the decoder:
//! - 0: one record payload (`Record::decode`);
//! - 1: a batch of frames with no header (`decode_frames`, the replicated batches);
//! - 2: a whole log file (`decode_log_bytes`);
//! - 3: a whole log file behind a valid header, so that frames are reached at once.
//!
//! Checks: no panic, and whatever decodes re-encodes to exactly the bytes it came from
//! (the encoding is canonical, so a decoder that accepted anything else would be
//! reading bytes it did not check).

use baton::persist::{decode_frames, decode_log_bytes, Record, FORMAT_VERSION, HEADER_LEN};

/// The header of a log file: magic, then the format version (`persist::files`).
fn log_header() -> Vec<u8> {
    let mut out = b"BATONLOG".to_vec();
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    assert_eq!(out.len(), HEADER_LEN, "the header layout changed");
    out
}

/// Runs one input; panics when a decoder panics or accepts bytes it cannot give back.
pub fn run(data: &[u8]) {
    let Some((&mode, input)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        0 => payload(input),
        1 => frames(input),
        2 => log_file(input),
        _ => {
            let mut file = log_header();
            file.extend_from_slice(input);
            log_file(&file);
        }
    }
}

fn payload(input: &[u8]) {
    if let Ok(record) = Record::decode(input) {
        let mut out = Vec::new();
        record.encode(&mut out);
        assert_eq!(out, input, "{record:?} decoded from other bytes");
    }
}

fn frames(input: &[u8]) {
    if let Ok(records) = decode_frames(input) {
        let mut out = Vec::new();
        for record in &records {
            record.encode_frame(&mut out);
        }
        assert_eq!(out, input, "frames decoded from other bytes");
    }
}

fn log_file(input: &[u8]) {
    let Ok((records, valid_len)) = decode_log_bytes(input) else {
        return;
    };
    assert!(valid_len <= input.len(), "valid prefix past the end");
    if valid_len == 0 {
        // Torn inside the header: nothing was read.
        assert!(records.is_empty(), "records from a torn header");
        return;
    }
    let mut out = log_header();
    for record in &records {
        record.encode_frame(&mut out);
    }
    assert_eq!(
        out,
        &input[..valid_len],
        "the valid prefix is not the records read"
    );
}
