#!/usr/bin/env bash
# Installs the system packages berth's tests use as real peers and base-image sources.
# Idempotent: does nothing when everything is present.
set -euo pipefail
need=()
for pair in busybox:busybox-static skopeo:skopeo umoci:umoci runc:runc \
            docker-registry:docker-registry htpasswd:apache2-utils ip:iproute2 nft:nftables \
            chromium:chromium curl:curl wrk:wrk containerd:containerd script:bsdutils; do
  cmd=${pair%%:*}; pkg=${pair#*:}
  command -v "$cmd" >/dev/null 2>&1 || need+=("$pkg")
done
[ -e /bin/busybox ] || need+=(busybox-static)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# S3-compatible servers for the registry's S3 storage tests (crates/berth-registry/tests/
# storage_suite.rs, s3_*.rs) and bench/registry-s3.sh; wrk for the bench.
if ! command -v moto_server >/dev/null 2>&1; then
  echo "installing: moto[server] (PyPI)"
  python3 -m pip install -q --break-system-packages 'moto[server]'
fi
if ! command -v s3s-fs >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/s3s-fs" ]; then
  # 0.14.1: the newest release whose rust-version (1.92) this toolchain meets.
  echo "installing: s3s-fs 0.14.1 (crates.io)"
  cargo install -q s3s-fs --version 0.14.1 --locked --features binary
fi
# Docker's Python SDK for the Engine API tests (tests/python/test_docker_sdk.py, run by
# crates/berth/tests/engine_api.rs against `berth system service`).
if ! python3 -c 'import docker' >/dev/null 2>&1; then
  echo "installing: docker (PyPI, Docker's Python SDK)"
  python3 -m pip install -q --break-system-packages docker
fi
