//! Fuzz target: arguments → AUTH / HELLO → the command parser; the body is in
//! `auth_hello_driver.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "auth_hello_driver.rs"]
mod driver;

fuzz_target!(|data: &[u8]| driver::run(data));
