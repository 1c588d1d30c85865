#!/usr/bin/env bash
# The whole test suite: unit, integration and property tests of every workspace member
# (the server, baton-client, the bench tools), then the interop suites with real client
# libraries against a real Redis and against baton.
set -euo pipefail
cd "$(dirname "$0")/.."
# A fixed seed keeps CI reproducible; `PROPTEST_RNG_SEED=$RANDOM bash tests/run-all.sh`
# (or plain `cargo test`) explores new cases. Shrunk failures become plain tests in
# tests/model.rs.
export PROPTEST_RNG_SEED="${PROPTEST_RNG_SEED:-20261201}"
cargo test --workspace --all-targets
cargo build --bin baton
bash tests/interop/setup.sh
bash tests/interop/run.sh redis
bash tests/interop/run.sh baton "$PWD/target/debug/baton"
