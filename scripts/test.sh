#!/usr/bin/env bash
# Runs every test of berth: installs the peers the tests need, builds, runs the suite.
# Tests run as root (namespaces, overlayfs, cgroups); with CI set, root-only tests fail
# instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-deps.sh
cargo build --workspace --bins
export BERTH_TEST_BIN="$PWD/target/debug/berth"
# Docker Hub is served by a closed loopback port: a test that names a missing Hub image sees
# its pull fail at once, and nothing leaves the machine (berth.toml: docker-hub).
export BERTH_DOCKER_HUB="${BERTH_DOCKER_HUB:-127.0.0.1:9}"
if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  cargo test --workspace --no-fail-fast "$@"
fi
