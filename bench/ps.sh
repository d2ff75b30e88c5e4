#!/usr/bin/env bash
# `ps -a` with 200 containers (10 of them running with a healthcheck), berth against the
# target of issue #14 (< 30 ms) and, when a dockerd is at hand (DOCKER_HOST), against it.
#   RUNS=20 BERTH=target/release/berth bash bench/ps.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BERTH=${BERTH:-target/release/berth}
RUNS=${RUNS:-20}
N=${N:-200}
dir=$(mktemp -d /tmp/berth-bench-ps.XXXXXX)
b() { "$BERTH" --root "$dir/root" --runroot "$dir/run" "$@"; }
cleanup() {
  b rm -f $(b ps -aq 2>/dev/null) >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT
bash scripts/mk-busybox-rootfs.sh "$dir/bb.tar" >/dev/null
b import "$dir/bb.tar" busybox >/dev/null
for i in $(seq 1 10); do
  b run -d --network none --name hc$i --health-cmd true --health-interval 1s busybox sleep 600 >/dev/null
done
for i in $(seq 11 "$N"); do b create --network none --name c$i busybox true >/dev/null; done
sleep 2
command -v hyperfine >/dev/null || { echo "hyperfine missing" >&2; exit 1; }
hyperfine -N --warmup 3 --runs "$RUNS" --export-json "$dir/ps.json" \
  "$BERTH --root $dir/root --runroot $dir/run ps -a" >&2
python3 - "$dir/ps.json" "$N" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
print(f"ps -a with {sys.argv[2]} containers (10 healthchecked): median {r['median']*1000:.1f} ms (target < 30 ms)")
PY
