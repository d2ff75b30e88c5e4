#!/usr/bin/env bash
# berth as containerd's runc, side by side with runc (and crun where it runs), in one run:
#   1. `ctr run --rm IMAGE true` through containerd 1.6's io.containerd.runc.v2 shim with
#      BinaryName = berth-runc vs runc (target: berth <= 0.7x runc);
#   2. `berth runtime run` vs `runc run` vs `crun run` of one `runc spec` bundle running
#      `true` (target: berth <= 0.5x runc, <= 1.2x crun).
#   bench/containerd.sh [RUNS]     (root; needs hyperfine, containerd, runc; crun optional;
#                                   builds berth --release unless BERTH_BIN names a binary)
# containerd gets its own root, state, socket and namespace under a temp dir; the image is
# berth's busybox base (berth import + save, then ctr image import). Everything it made
# (daemon, shims, mounts, cgroups, files) is removed at the end.
# Writes bench/results/containerd.json (median, min, max per command; ratios).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-30}
[ "$(id -u)" = 0 ] || { echo "error: run as root" >&2; exit 1; }
for t in hyperfine runc containerd ctr; do
  command -v $t >/dev/null || { echo "error: $t missing (apt-get install $t)" >&2; exit 1; }
done
if [ -n "${BERTH_BIN:-}" ]; then berth=$BERTH_BIN; else
  cargo build --release -q -p berth
  berth=$PWD/target/release/berth
fi
work=$(mktemp -d /tmp/berth-bench-containerd.XXXXXX)
ns=bench-$$
sock=$work/containerd.sock
cpid=""
cleanup() {
  set +e
  for id in $(ctr --address "$sock" -n "$ns" task ls -q 2>/dev/null); do
    ctr --address "$sock" -n "$ns" task kill -s SIGKILL "$id" >/dev/null 2>&1
    ctr --address "$sock" -n "$ns" task rm -f "$id" >/dev/null 2>&1
  done
  for id in $(ctr --address "$sock" -n "$ns" c ls -q 2>/dev/null); do
    ctr --address "$sock" -n "$ns" c rm "$id" >/dev/null 2>&1
  done
  [ -n "$cpid" ] && kill "$cpid" 2>/dev/null && wait "$cpid" 2>/dev/null
  # Shims of this containerd name its socket on their command line.
  for p in $(grep -l -a -- "$sock" /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3); do
    kill -9 "$p" 2>/dev/null
  done
  runc --root "$work/runc-state" delete -f bench-runc >/dev/null 2>&1
  crun --root "$work/crun-state" delete -f bench-crun >/dev/null 2>&1
  "$berth" --runroot "$work/berth-run" runtime delete -f bench-berth >/dev/null 2>&1
  grep -F "$work" /proc/self/mountinfo | awk '{print $5}' | sort -r | while read -r m; do
    umount -l "$m" 2>/dev/null
  done
  for d in /sys/fs/cgroup/*/"$ns" /sys/fs/cgroup/"$ns"; do [ -d "$d" ] && rmdir "$d" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p bench/results "$work/bin"

# containerd of our own.
cat >"$work/config.toml" <<T
version = 2
root = "$work/root"
state = "$work/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.opt"]
[grpc]
  address = "$sock"
[ttrpc]
  address = "$sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
T
containerd --config "$work/config.toml" >"$work/containerd.log" 2>&1 &
cpid=$!
for _ in $(seq 100); do ctr --address "$sock" version >/dev/null 2>&1 && break; sleep 0.1; done
ctr --address "$sock" version >/dev/null

# The image: berth's busybox base, saved by berth, imported by ctr.
bash scripts/mk-busybox-rootfs.sh "$work/busybox.tar"
"$berth" --root "$work/berth-root" --runroot "$work/berth-run" import "$work/busybox.tar" busybox:latest >/dev/null
"$berth" --root "$work/berth-root" --runroot "$work/berth-run" save -o "$work/busybox-image.tar" busybox:latest
ctr --address "$sock" -n "$ns" image import "$work/busybox-image.tar" >/dev/null
image=docker.io/library/busybox:latest
"$berth" runtime install --dir "$work/bin" >/dev/null
ctr_run() { echo "ctr --address $sock -n $ns run --rm --runc-binary $1 --runc-root $work/shim-$2 $image bench-$2 true"; }
# Warm the snapshot (the first run unpacks the image).
$(ctr_run "$(command -v runc)" warm) >/dev/null

hyperfine -N --warmup 3 --runs "$runs" --export-json "$work/ctr.json" \
  -n "containerd + berth-runc" "$(ctr_run "$work/bin/berth-runc" berth)" \
  -n "containerd + runc" "$(ctr_run "$(command -v runc)" runc)"

# One `runc spec` bundle for the runtimes alone.
mkdir -p "$work/bundle/rootfs"
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
cmds=(-n "berth runtime run" "$berth --runroot $work/berth-run runtime run -b $work/bundle bench-berth"
      -n "runc run" "runc --root $work/runc-state run -b $work/bundle bench-runc")
crun_note=""
if command -v crun >/dev/null; then
  if crun --root "$work/crun-state" run -b "$work/bundle" bench-crun >/dev/null 2>"$work/crun.err"; then
    cmds+=(-n "crun run" "crun --root $work/crun-state run -b $work/bundle bench-crun")
  else
    crun_note="crun refused: $(tail -n1 "$work/crun.err")"
    echo "$crun_note" >&2
  fi
fi
hyperfine -N --warmup 5 --runs "$runs" --export-json "$work/rt.json" "${cmds[@]}"

python3 - "$work/ctr.json" "$work/rt.json" bench/results/containerd.json "$crun_note" "$berth" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'PY'
import json, sys
out = {}
for f in sys.argv[1:3]:
    for r in json.load(open(f))["results"]:
        out[r["command"]] = {"median_ms": round(r["median"] * 1000, 2), "min_ms": round(r["min"] * 1000, 2),
                             "max_ms": round(r["max"] * 1000, 2)}
def ratio(a, b):
    return round(out[a]["median_ms"] / out[b]["median_ms"], 3) if a in out and b in out else None
res = {"results": out, "ratios": {
    "ctr run: berth-runc / runc (target <= 0.7)": ratio("containerd + berth-runc", "containerd + runc"),
    "runtime run: berth / runc (target <= 0.5)": ratio("berth runtime run", "runc run"),
    "runtime run: berth / crun (target <= 1.2)": ratio("berth runtime run", "crun run"),
}, "crun": sys.argv[4] or "measured", "berth_bin": sys.argv[5], "cpus": sys.argv[6],
    "loadavg_at_end": sys.argv[7]}
json.dump(res, open(sys.argv[3], "w"), indent=2)
for k, v in out.items():
    print(f"{k:26s} median {v['median_ms']:8.2f} ms  min {v['min_ms']:8.2f}  max {v['max_ms']:8.2f}")
for k, v in res["ratios"].items():
    print(f"{k:45s} {v}")
if sys.argv[4]:
    print(sys.argv[4])
PY
