#!/usr/bin/env bash
# Benchmarks berth's own OCI runtime against runc on the same bundle (a `runc spec` bundle
# with a busybox rootfs running `true`, no terminal): `berth runtime run` vs `runc run`.
#   bench/runtime.sh [RUNS]        (root; needs hyperfine and runc; builds berth --release
#                                   unless BERTH_BIN names a berth binary)
# Prints hyperfine's table and writes bench/results/runtime.json (median, min, max per tool).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-100}
[ "$(id -u)" = 0 ] || { echo "error: run as root" >&2; exit 1; }
for t in hyperfine runc; do command -v $t >/dev/null || { echo "error: $t missing (apt-get install $t)" >&2; exit 1; }; done
if [ -n "${BERTH_BIN:-}" ]; then berth=$BERTH_BIN; else
  cargo build --release -q -p berth
  berth=$PWD/target/release/berth
fi
work=$(mktemp -d)
cleanup() {
  runc --root "$work/runc" delete -f bench-runc >/dev/null 2>&1 || true
  "$berth" --runroot "$work/berth" runtime delete -f bench-berth >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/bundle/rootfs" bench/results
bash scripts/mk-busybox-rootfs.sh "$work/busybox.tar"
tar -C "$work/bundle/rootfs" -xf "$work/busybox.tar"
(cd "$work/bundle" && runc spec)
python3 - "$work/bundle/config.json" <<'PY'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["process"]["terminal"] = False
c["process"]["args"] = ["true"]
json.dump(c, open(p, "w"))
PY
cd "$work/bundle"
hyperfine -N --warmup 10 --runs "$runs" --export-json "$work/hf.json" \
  -n "berth runtime run" "$berth --runroot $work/berth runtime run bench-berth" \
  -n "runc run" "runc --root $work/runc run bench-runc"
cd - >/dev/null
python3 - "$work/hf.json" bench/results/runtime.json <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
out = {r["command"]: {"median_ms": round(r["median"] * 1000, 2), "min_ms": round(r["min"] * 1000, 2),
                      "max_ms": round(r["max"] * 1000, 2), "mean_ms": round(r["mean"] * 1000, 2)} for r in d["results"]}
json.dump(out, open(sys.argv[2], "w"), indent=2)
for k, v in out.items():
    print(f"{k:20s} median {v['median_ms']:7.2f} ms  min {v['min_ms']:7.2f}  max {v['max_ms']:7.2f}")
PY
