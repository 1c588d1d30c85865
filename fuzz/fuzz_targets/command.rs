//! Fuzz target: bytes → decoder → parser → lock table; the body is in `command_driver.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "command_driver.rs"]
mod driver;

fuzz_target!(|data: &[u8]| driver::run(data));
