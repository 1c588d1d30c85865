//! Fuzz target: bytes as an ACL file → the file and rules parser; the body is in
//! `aclfile_driver.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "aclfile_driver.rs"]
mod driver;

fuzz_target!(|data: &[u8]| driver::run(data));
