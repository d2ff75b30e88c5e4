#!/usr/bin/env bash
# Network benchmarks (issue 4), berth alone (bench/run.sh puts peers beside it):
#  1. `run -d -p H:80 busybox httpd` to the first HTTP 200 through the published port
#     (target: median <= 30 ms; podman about 141 ms, docker about 237 ms here);
#  2. `berth run --rm busybox true` on the default bridge (target: median <= 20 ms), with
#     `--network none` beside it for the cost of the network alone;
#  3. a 1 GiB download through the published port vs straight to the container's address
#     (target: >= 80 %).
#
#   sudo bench/network.sh          # RUNS=15 by default; BERTH=path to use another binary
#
# Everything lives under a temp dir (own --root/--runroot, own bridge and subnet); the
# containers, the bridge and the dir are removed at the end. Traffic stays on this host.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-15}
[ "$(id -u)" = 0 ] || { echo "run as root: containers need namespaces and bridges" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "hyperfine is missing: apt-get install hyperfine" >&2; exit 1; }
command -v curl >/dev/null || { echo "curl is missing: apt-get install curl" >&2; exit 1; }
if [ -z "${BERTH:-}" ]; then
  (cd "$REPO" && cargo build --release -q -p berth)
  BERTH=$REPO/target/release/berth
fi
work=$(mktemp -d /tmp/berth-bench-net.XXXXXX)
bridge=bbench$$
bridge=${bridge:0:15}
b() { "$BERTH" --root "$work/root" --runroot "$work/run" "$@"; }
cleanup() {
  for c in $(b ps -aq 2>/dev/null); do b rm -f "$c" >/dev/null 2>&1 || true; done
  ip link del "$bridge" 2>/dev/null || true
  awk -v w="$work" '$5 ~ "^"w {print $5}' /proc/self/mountinfo | sort -r | xargs -r umount -l
  rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/root" "$work/www"
printf '[network]\nsubnet = "10.216.%d.0/24"\nbridge = "%s"\n' $(($$ % 250)) "$bridge" >"$work/root/berth.toml"
bash "$REPO/scripts/mk-busybox-rootfs.sh" "$work/busybox.tar"
b import "$work/busybox.tar" busybox >/dev/null
echo ok >"$work/www/index.html"
truncate -s 1G "$work/www/big"   # sparse: the disk is not what is measured

free_port() { python3 -c 'import socket; s=socket.socket(socket.AF_INET6); s.bind(("::",0)); print(s.getsockname()[1])'; }
now_ns() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "== 1. run -d -p to the first HTTP 200 ($RUNS runs)"
b run --rm busybox true >/dev/null   # creates the bridge once, as any first run does
times=()
for i in $(seq "$RUNS"); do
  port=$(free_port)
  t0=$(now_ns)
  id=$(b run -d -p "$port:80" -v "$work/www:/www:ro" busybox httpd -f -p 80 -h /www)
  # bash's /dev/tcp in a subshell (a failed `exec` redirection may end the shell itself).
  until (exec 3<>"/dev/tcp/127.0.0.1/$port" && printf 'GET / HTTP/1.0\r\n\r\n' >&3 &&
         IFS= read -r -t 1 line <&3 && [[ $line == *" 200 "* ]]) 2>/dev/null; do :; done
  t1=$(now_ns)
  times+=($(( (t1 - t0) / 1000 )))
  b rm -f "$id" >/dev/null
done
med=$(printf '%s\n' "${times[@]}" | median)
min=$(printf '%s\n' "${times[@]}" | sort -n | head -1)
max=$(printf '%s\n' "${times[@]}" | sort -n | tail -1)
echo "run -d -p -> first 200: median $((med / 1000)).$(( (med % 1000) / 100 )) ms (min $((min / 1000)) ms, max $((max / 1000)) ms; target <= 30 ms)"

echo "== 2. run --rm busybox true: default bridge vs --network none"
hyperfine --style basic --warmup 2 --runs "$RUNS" -N --export-json "$work/start.json" \
  -n bridge "$BERTH --root $work/root --runroot $work/run run --rm busybox true" \
  -n none "$BERTH --root $work/root --runroot $work/run run --rm --network none busybox true"
python3 - "$work/start.json" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    target = " (target <= 20 ms)" if r["command"] == "bridge" else ""
    print(f"run --rm true, {r['command']}: median {1000 * r['median']:.1f} ms "
          f"(min {1000 * r['min']:.1f}, max {1000 * r['max']:.1f}){target}")
PY

echo "== 3. 1 GiB download: through the published port vs straight to the container"
port=$(free_port)
id=$(b run -d -p "$port:80" -v "$work/www:/www:ro" busybox httpd -f -p 80 -h /www)
ip=$(b network inspect bridge | python3 -c "import json,sys; c=json.load(sys.stdin)[0]['Containers']; print(c['$id']['IPv4Address'].split('/')[0])")
until curl -sf -o /dev/null "http://$ip:80/"; do sleep 0.05; done
speed() { curl -s -o /dev/null -w '%{speed_download}' "$1"; }
direct=0; published=0
for i in 1 2 3; do
  d=$(speed "http://$ip:80/big"); p=$(speed "http://127.0.0.1:$port/big")
  direct=$(python3 -c "print(max($direct, $d))"); published=$(python3 -c "print(max($published, $p))")
done
python3 - "$direct" "$published" <<'PY'
import sys
d, p = float(sys.argv[1]), float(sys.argv[2])
print(f"straight to the container: {d / 2**20:.0f} MiB/s (best of 3)")
print(f"through the published port: {p / 2**20:.0f} MiB/s (best of 3)")
print(f"ratio: {100 * p / d:.0f} % (target >= 80 %)")
PY
b rm -f "$id" >/dev/null
