#!/usr/bin/env bash
# The container lifecycle's performance targets (issue 3), side by side in one run:
#   - `berth run --rm --network none busybox true` median (target <= 12 ms) against
#     `runc run` of an equivalent bundle (the same busybox rootfs, runc's default spec);
#   - peak RSS of `berth run --rm` (target <= 15 MB);
#   - RSS of the per-container monitor of a `run -d` container (target <= 2 MB).
#
#   sudo bench/lifecycle.sh            # RUNS=50 by default; BERTH=path to use a given binary
#
# Everything lives under a temp dir that is removed at the end; containers are removed.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-50}
[ "$(id -u)" = 0 ] || { echo "error: run as root (namespaces, cgroups, overlayfs)" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "error: hyperfine missing: apt-get install hyperfine" >&2; exit 1; }
if [ -z "${BERTH:-}" ]; then
  (cd "$REPO" && cargo build --release -p berth >/dev/null)
  BERTH="$REPO/target/release/berth"
fi
work=$(mktemp -d /tmp/berth-bench-lifecycle.XXXXXX)
B=("$BERTH" --root "$work/root" --runroot "$work/run")
cleanup() {
  for id in $("${B[@]}" ps -a -q --no-trunc 2>/dev/null); do "${B[@]}" rm -f "$id" >/dev/null 2>&1 || true; done
  [ -n "${RUNC_OK:-}" ] && runc --root "$work/runc-state" delete -f bench >/dev/null 2>&1 || true
  umount "$work/bundle/rootfs" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

bash "$REPO/scripts/mk-busybox-rootfs.sh" "$work/busybox.tar"
"${B[@]}" import "$work/busybox.tar" busybox:latest >/dev/null
"${B[@]}" run --rm --network none busybox true   # warm the page cache

echo "== start: run --rm --network none busybox true (berth) vs runc run (same rootfs) =="
cmds=("${B[*]} run --rm --network none busybox true")
if command -v runc >/dev/null; then
  mkdir -p "$work/bundle/rootfs" "$work/runc-state"
  tar -xf "$work/busybox.tar" -C "$work/bundle/rootfs"
  (cd "$work/bundle" && runc spec)
  # Non-interactive, `true`, no terminal: the same work as berth's run.
  python3 - "$work/bundle/config.json" <<'PY'
import json, sys
p = sys.argv[1]
s = json.load(open(p))
s["process"]["terminal"] = False
s["process"]["args"] = ["true"]
s["root"]["readonly"] = False
json.dump(s, open(p, "w"))
PY
  RUNC_OK=1
  cmds+=("runc --root $work/runc-state run --bundle $work/bundle bench")
fi
hyperfine -N --warmup 5 --runs "$RUNS" --export-json "$work/start.json" "${cmds[@]}"
python3 - "$work/start.json" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    t = sorted(r["times"])
    print(f"  median {r['median']*1000:6.2f} ms  min {t[0]*1000:6.2f}  max {t[-1]*1000:6.2f}  {r['command'][:70]}")
PY

echo "== memory: peak RSS of berth run --rm (CLI; foreground: no monitor) =="
python3 - "${B[@]}" <<'PY'
import resource, subprocess, sys
subprocess.run(sys.argv[1:] + ["run", "--rm", "--network", "none", "busybox", "true"], check=True)
print(f"  peak RSS {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss/1024:.1f} MB")
PY

echo "== memory: RSS of the monitor of a run -d container =="
id=$("${B[@]}" run -d --network none busybox sleep 30)
sleep 0.5
mon=$(pgrep -f "_monitor $id" | head -1 || true)
if [ -n "$mon" ]; then
  grep -E 'VmRSS|VmHWM' "/proc/$mon/status" | sed 's/^/  monitor /'
else
  echo "  monitor not found"
fi
"${B[@]}" rm -f "$id" >/dev/null
