//! The harness of the fault campaign (tests/faults.rs): a TCP proxy between clients and
//! baton that injects faults per connection, and the raw-socket attackers.
#![allow(dead_code)]

pub mod attackers;
pub mod chaos;
