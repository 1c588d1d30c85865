//! The harness of the cluster tests (tests/jepsen.rs): real baton processes in cluster
//! mode, per-link TCP proxies for partitions, process faults, and a Jepsen-style
//! history checker for mutual exclusion.
#![allow(dead_code)]

pub mod checker;
pub mod cluster;
pub mod history;
pub mod nemesis;
pub mod proxy;
pub mod workload;
