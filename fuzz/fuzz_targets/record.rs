//! Fuzz target: bytes → the durable log's decoders; the body is in `record_driver.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "record_driver.rs"]
mod driver;

fuzz_target!(|data: &[u8]| driver::run(data));
