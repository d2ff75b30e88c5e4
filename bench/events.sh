#!/usr/bin/env bash
# Issue 14's targets for events and info, side by side in one run:
#   - a waiting `events` sees the `start` of a `run -d` within 50 ms of the run returning
#     (berth, and docker against the bench's dockerd when DOCKER/DOCKER_HOST are set);
#   - `info` < 20 ms, beside `ps` (hyperfine; docker info when available).
#
#   sudo bench/events.sh         # RUNS=30 by default; BERTH=path to use a given binary
#
# Everything lives under a temp dir that is removed at the end; containers are removed.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-30}
[ "$(id -u)" = 0 ] || { echo "error: run as root (namespaces, cgroups, overlayfs)" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "error: hyperfine missing: apt-get install hyperfine" >&2; exit 1; }
if [ -z "${BERTH:-}" ]; then
  (cd "$REPO" && cargo build --release -p berth >/dev/null)
  BERTH="$REPO/target/release/berth"
fi
work=$(mktemp -d /tmp/berth-bench-events.XXXXXX)
B=("$BERTH" --root "$work/root" --runroot "$work/run")
cleanup() {
  for id in $("${B[@]}" ps -a -q --no-trunc 2>/dev/null); do "${B[@]}" rm -f "$id" >/dev/null 2>&1 || true; done
  if [ -n "${DOCKER:-}" ] && [ -s "$work/docker-ids" ]; then
    xargs -r "$DOCKER" rm -f <"$work/docker-ids" >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

bash "$REPO/scripts/mk-busybox-rootfs.sh" "$work/busybox.tar"
"${B[@]}" import "$work/busybox.tar" busybox:latest >/dev/null

# One measurement: start WATCH (an events follower printing one line per start), then
# RUNS times: `run -d`, note when it returned, wait for the follower's line.
latency() { # name, ids-file, events command..., --, run command...
  python3 - "$RUNS" "$@" <<'PY'
import subprocess, sys, time, statistics, select
runs = int(sys.argv[1]); name = sys.argv[2]; ids = sys.argv[3]
rest = sys.argv[4:]; sep = rest.index("--")
watch, run = rest[:sep], rest[sep + 1:]
w = subprocess.Popen(watch, stdout=subprocess.PIPE, bufsize=0)
time.sleep(1.0)
lat = []
buf = b""
with open(ids, "a") as idf:
    for i in range(runs):
        out = subprocess.run(run, capture_output=True, check=True)
        returned = time.monotonic()
        idf.write(out.stdout.decode().strip() + "\n")
        seen = None
        deadline = returned + 5
        while seen is None and time.monotonic() < deadline:
            if b"\n" in buf:
                _, buf = buf.split(b"\n", 1)
                seen = time.monotonic()
                break
            r, _, _ = select.select([w.stdout], [], [], 0.5)
            if r:
                buf += w.stdout.read1(4096) if hasattr(w.stdout, "read1") else w.stdout.read(4096)
        if seen is None:
            print(f"  {name}: no start event within 5 s (run {i})"); break
        # The event may be in the journal before `run` returns (it is for berth): 0 then.
        lat.append(max(0.0, seen - returned) * 1000)
w.kill()
if lat:
    s = sorted(lat)
    print(f"  {name:7s} start seen after run returned: median {statistics.median(s):6.2f} ms  min {s[0]:6.2f}  max {s[-1]:6.2f}  ({len(s)} runs)")
PY
}

echo "== events: a waiting follower sees the start of run -d (target: within 50 ms) =="
latency berth "$work/berth-ids" "${B[@]}" events --filter event=start --format '{{.ID}}' -- \
  "${B[@]}" run -d --network none busybox sleep 600
if [ -n "${DOCKER:-}" ] && "$DOCKER" info >/dev/null 2>&1; then
  latency docker "$work/docker-ids" "$DOCKER" events --filter event=start --format '{{.ID}}' -- \
    "$DOCKER" run -d --network none busybox-bench sleep 600 || true
fi

echo "== info (target < 20 ms) beside ps, with $("${B[@]}" ps -q | wc -l) containers running =="
cmds=("${B[*]} info" "${B[*]} ps")
if [ -n "${DOCKER:-}" ] && "$DOCKER" info >/dev/null 2>&1; then cmds+=("$DOCKER info"); fi
hyperfine -N --warmup 3 --runs "$RUNS" --export-json "$work/info.json" "${cmds[@]}" >/dev/null 2>&1
python3 - "$work/info.json" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    t = sorted(r["times"])
    print(f"  median {r['median']*1000:6.2f} ms  min {t[0]*1000:6.2f}  max {t[-1]*1000:6.2f}  {r['command'].split(' --runroot ')[-1][:60]}")
PY
