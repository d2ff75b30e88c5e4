#!/usr/bin/env bash
# Runs every test of berth: installs the peers the tests need, builds, runs the suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-deps.sh
cargo build --workspace --release --bins
export BERTH_TEST_BIN="$PWD/target/release/berth"
if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --workspace --release --no-fail-fast "$@"
else
  cargo test --workspace --release --no-fail-fast "$@"
fi
