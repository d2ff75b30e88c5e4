#!/usr/bin/env bash
# What the sealed exec stub (issue 13 §1) costs on the start path: `run --rm --network none
# busybox true` with berth before and after the change, side by side in one run, the two
# binaries alternating run by run (so that the machine's drift hits both alike).
# The budget: at most 1 ms more than before.
#
#   sudo BEFORE=/var/tmp/berth-before AFTER=/var/tmp/berth-after bench/exe-seal.sh
#   RUNS=200 (default) runs of each; WARMUP=10 of each first, not counted.
#
# Each binary is copied into a temp dir of its own with a root and runroot of its own and
# busybox imported; BEFORE_MONITOR / AFTER_MONITOR, when set, are copied beside it as
# berth-monitor (as installed: a foreground `run --rm` then starts its guard), else neither
# gets one. Everything is removed at the end.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-200}
WARMUP=${WARMUP:-10}
[ "$(id -u)" = 0 ] || { echo "error: run as root (namespaces, cgroups, overlayfs)" >&2; exit 1; }
: "${BEFORE:?set BEFORE to the berth binary without the change}"
: "${AFTER:?set AFTER to the berth binary with the change}"
work=$(mktemp -d /tmp/berth-bench-exe-seal.XXXXXX)
trap 'rm -rf "$work"' EXIT

bash "$REPO/scripts/mk-busybox-rootfs.sh" "$work/busybox.tar"
for side in before after; do
  bin=$BEFORE; [ "$side" = after ] && bin=$AFTER
  mkdir -p "$work/$side/bin"
  cp "$bin" "$work/$side/bin/berth"
  mon=${BEFORE_MONITOR:-}; [ "$side" = after ] && mon=${AFTER_MONITOR:-}
  [ -z "$mon" ] || cp "$mon" "$work/$side/bin/berth-monitor"
  "$work/$side/bin/berth" --root "$work/$side/root" --runroot "$work/$side/run" \
    import "$work/busybox.tar" busybox:latest >/dev/null
done

python3 - "$work" "$RUNS" "$WARMUP" <<'PY'
import statistics, subprocess, sys, time
work, runs, warmup = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def cmd(side):
    return [f"{work}/{side}/bin/berth", "--root", f"{work}/{side}/root",
            "--runroot", f"{work}/{side}/run",
            "run", "--rm", "--network", "none", "busybox", "true"]
sides = ("before", "after")
times = {s: [] for s in sides}
for i in range(warmup + runs):
    # Alternate which goes first, so neither always follows the other.
    order = sides if i % 2 == 0 else sides[::-1]
    for s in order:
        t0 = time.perf_counter()
        subprocess.run(cmd(s), check=True, stdout=subprocess.DEVNULL)
        t = time.perf_counter() - t0
        if i >= warmup:
            times[s].append(t * 1000)
print(f"run --rm --network none busybox true, {runs} runs each, alternating:")
for s in sides:
    t = sorted(times[s])
    print(f"  {s:6}  median {statistics.median(t):6.2f} ms  min {t[0]:6.2f}  max {t[-1]:6.2f}"
          f"  p90 {t[int(len(t) * 0.9)]:6.2f}")
d = statistics.median(times["after"]) - statistics.median(times["before"])
dmin = min(times["after"]) - min(times["before"])
print(f"  difference (after - before): median {d:+.2f} ms, min {dmin:+.2f} ms"
      f"  (budget: +1.00 ms) {'OK' if d <= 1.0 else 'OVER BUDGET'}")
PY
