#!/usr/bin/env bash
# The test command: installs what the tests need (the default model, through pip),
# then runs every test in release mode (tests share the release build with the binary,
# so candle compiles once). Slow tests stay behind `--ignored`.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
cargo build --release --locked -p r1-cli
"${CARGO_TARGET_DIR:-target}/release/r1" setup
export R1_REQUIRE_DEFAULT_MODEL=1
cargo test --release --locked --workspace "$@"
