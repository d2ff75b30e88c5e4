#!/usr/bin/env bash
# What Docker's device rules (issue #3) cost a container start: `berth runtime run` of one
# busybox bundle running `true`, three ways, interleaved run by run (medians):
#   - no device rules (what berth did before: every device open to the container),
#   - deny-all + the standard nodes through the v1 devices controller (the default here),
#   - the same through a cgroup v2 BPF device program (BERTH_CGROUP_DEVICES=bpf, the path of
#     a v2 host; needs a cgroup2 mount, /sys/fs/cgroup or /sys/fs/cgroup/unified).
#   bench/devices.sh [RUNS]     (root; BERTH_BIN names a berth binary, else it builds --release)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-100}
[ "$(id -u)" = 0 ] || { echo "error: run as root" >&2; exit 1; }
if [ -n "${BERTH_BIN:-}" ]; then berth=$BERTH_BIN; else
  cargo build --release -q --bin berth --bin berth-monitor
  berth=$PWD/target/release/berth
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bash scripts/mk-busybox-rootfs.sh "$work/busybox.tar" >/dev/null
for v in none deny; do
  mkdir -p "$work/$v/rootfs"
  tar -C "$work/$v/rootfs" -xf "$work/busybox.tar"
  "$berth" runtime spec --bundle "$work/$v"
done
python3 - "$work" <<'PY'
import json, sys
for v in ["none", "deny"]:
    p = f"{sys.argv[1]}/{v}/config.json"
    c = json.load(open(p))
    c["process"]["terminal"] = False
    c["process"]["args"] = ["true"]
    res = c["linux"].setdefault("resources", {})
    if v == "none":
        res.pop("devices", None)
    else:
        res["devices"] = [{"allow": False, "access": "rwm"}]
    json.dump(c, open(p, "w"))
PY
python3 - "$berth" "$work" "$runs" <<'PY'
import os, statistics, subprocess, sys, time
berth, work, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
variants = [
    ("no device rules (before)", "none", None),
    ("deny-all, v1 devices controller", "deny", None),
    ("deny-all, cgroup v2 BPF program", "deny", "bpf"),
]
times = {name: [] for name, _, _ in variants}
for i in range(runs + 5):
    for n, (name, bundle, env) in enumerate(variants):
        e = dict(os.environ)
        e.pop("BERTH_CGROUP_DEVICES", None)
        if env:
            e["BERTH_CGROUP_DEVICES"] = env
        t = time.perf_counter()
        subprocess.run([berth, "--runroot", f"{work}/run", "runtime", "run", f"dev{n}"],
                       cwd=f"{work}/{bundle}", env=e, check=True)
        if i >= 5:
            times[name].append((time.perf_counter() - t) * 1000)
for name, v in times.items():
    v.sort()
    print(f"{name:34s} median {statistics.median(v):6.2f} ms  min {v[0]:6.2f}  max {v[-1]:6.2f}  (n={len(v)})")
PY
