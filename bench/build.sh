#!/usr/bin/env bash
# The build benchmark of issue 5, berth alone (bench/run.sh build puts it side by side with
# podman and docker): the reference Dockerfile (FROM busybox, COPY a 20 MiB file,
# RUN echo hi > /x, ENTRYPOINT) built cold (--no-cache) and warm (all cached).
# Targets: cold median <= 250 ms, warm <= 20 ms.
#
#   sudo bench/build.sh            # RUNS=15 by default; BERTH=path to use another binary
#
# Everything lives under a temp dir (its own --root and --runroot), removed at the end.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-15}
[ "$(id -u)" = 0 ] || { echo "run as root: RUN steps need namespaces and overlayfs" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "hyperfine is missing: apt-get install hyperfine" >&2; exit 1; }
if [ -z "${BERTH:-}" ]; then
  (cd "$REPO" && cargo build --release -q -p berth)
  BERTH=$REPO/target/release/berth
fi
work=$(mktemp -d /tmp/berth-bench-build.XXXXXX)
cleanup() {
  awk -v w="$work" '$2 ~ "^"w {print $2}' /proc/self/mounts | sort -r | xargs -r umount -l
  rm -rf "$work"
}
trap cleanup EXIT
b() { "$BERTH" --root "$work/root" --runroot "$work/run" "$@"; }

bash "$REPO/scripts/mk-busybox-rootfs.sh" "$work/busybox.tar"
b import "$work/busybox.tar" busybox >/dev/null
mkdir -p "$work/ctx"
head -c $((20 * 1024 * 1024)) /dev/urandom >"$work/ctx/big.bin"
cat >"$work/ctx/Dockerfile" <<'D'
FROM busybox
COPY big.bin /big.bin
RUN echo hi > /x
ENTRYPOINT ["/bin/cat", "/x"]
D
b build -q -t bench-ref "$work/ctx" >/dev/null

common=(--root "$work/root" --runroot "$work/run")
hyperfine -N --warmup 2 --runs "$RUNS" --export-json "$work/cold.json" \
  -n "berth build, cold (--no-cache)" "$BERTH ${common[*]} build -q --no-cache -t bench-ref $work/ctx"
hyperfine -N --warmup 3 --runs "$RUNS" --export-json "$work/warm.json" \
  -n "berth build, warm (all cached)" "$BERTH ${common[*]} build -q -t bench-ref $work/ctx"

python3 - "$work/cold.json" "$work/warm.json" <<'PY'
import json, sys
targets = {"cold": 0.250, "warm": 0.020}
for name, path in zip(("cold", "warm"), sys.argv[1:]):
    r = json.load(open(path))["results"][0]
    med, lo, hi = r["median"], r["min"], r["max"]
    ok = "met" if med <= targets[name] else "NOT met"
    print(f"{name}: median {med*1000:.1f} ms (min {lo*1000:.1f}, max {hi*1000:.1f}); target <= {targets[name]*1000:.0f} ms: {ok}")
PY
