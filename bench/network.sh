#!/usr/bin/env bash
# Network benchmarks (issue 4), berth alone (bench/run.sh puts peers beside it):
#  1. `run -d -p H:80 busybox httpd` to the first HTTP 200 through the published port
#     (target: median <= 30 ms; podman about 141 ms, docker about 237 ms here);
#  2. `berth run --rm busybox true` on the default bridge (target: median <= 20 ms), with
#     `--network none` beside it for the cost of the network alone;
#  3. a 1 GiB download through the published port vs straight to the container's address
#     (target: >= 80 %);
#  4. what berth's nftables rules (outbound NAT and isolation, on by default) cost on the
#     start path: `run --rm busybox true` on a root with them and on one with
#     `nftables = false` (hyperfine, one after the other), and a container's 1 GiB
#     download from a namespace playing the internet through the masquerade.
#
#   sudo bench/network.sh          # RUNS=15 by default; BERTH=path to use another binary;
#                                  # SECTIONS=3 for the download only, PAIRS=7 its pairs
#
# Everything lives under a temp dir (own --root/--runroot, own bridge and subnet); the
# containers, the bridge and the dir are removed at the end. Traffic stays on this host.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-15}
SECTIONS=${SECTIONS:-1234}  # e.g. SECTIONS=3: the download only
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
  # prune takes the default bridge and its elements of berth's nftables table down.
  b network prune -f >/dev/null 2>&1 || true
  ip link del "$bridge" 2>/dev/null || true
  if [ -n "${ns4:-}" ]; then ip netns del "$ns4" 2>/dev/null || true; ip netns del "$ns4i" 2>/dev/null || true; fi
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

if [[ $SECTIONS == *1* ]]; then
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

fi

if [[ $SECTIONS == *2* ]]; then
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

fi

if [[ $SECTIONS == *3* ]]; then
echo "== 3. 1 GiB download: through the published port vs straight to the container"
# Like with like: the same curl, the same file, the same httpd process; only the path
# differs (127.0.0.1:PORT through the monitor's forwarder, or the container's address
# through the bridge). One warm-up download of each fills the page cache, then PAIRS
# alternating pairs; the figure is the median of the pair ratios (the machine is noisy,
# and a pair shares its moment's noise), with each path's best beside it.
PAIRS=${PAIRS:-7}
port=$(free_port)
id=$(b run -d -p "$port:80" -v "$work/www:/www:ro" busybox httpd -f -p 80 -h /www)
ip=$(b network inspect bridge | python3 -c "import json,sys; c=json.load(sys.stdin)[0]['Containers']; print(c['$id']['IPv4Address'].split('/')[0])")
until curl -sf -o /dev/null "http://$ip:80/"; do sleep 0.05; done
speed() { curl -s -o /dev/null -w '%{speed_download}\n' "$1"; }
speed "http://$ip:80/big" >/dev/null; speed "http://127.0.0.1:$port/big" >/dev/null
for i in $(seq "$PAIRS"); do
  if ((i % 2)); then
    d=$(speed "http://$ip:80/big"); p=$(speed "http://127.0.0.1:$port/big")
  else
    p=$(speed "http://127.0.0.1:$port/big"); d=$(speed "http://$ip:80/big")
  fi
  echo "$d $p"
done >"$work/speeds"
python3 - "$work/speeds" <<'PY'
import statistics, sys
pairs = [tuple(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
d = [a for a, _ in pairs]; p = [b for _, b in pairs]
mib = 2**20
print(f"straight to the container: median {statistics.median(d) / mib:.0f} MiB/s, best {max(d) / mib:.0f}")
print(f"through the published port: median {statistics.median(p) / mib:.0f} MiB/s, best {max(p) / mib:.0f}")
ratios = sorted(100 * b / a for a, b in pairs)
print(f"ratio: median {statistics.median(ratios):.0f} % of {len(pairs)} pairs "
      f"(best/best {100 * max(p) / max(d):.0f} %; pairs {' '.join(f'{r:.0f}' for r in ratios)}; target >= 80 %)")
PY
b rm -f "$id" >/dev/null
fi

[[ $SECTIONS == *4* ]] || exit 0
echo "== 4. berth's nftables rules: start path and outbound NAT"
# Inside a namespace of its own ("the host"), so the table and forwarding are its own; a
# second namespace plays the internet (198.18.K.0/30 link, 198.19.K.1 behind it).
k=$(( $$ % 250 ))
ns4=berthbench-h$k; ns4i=berthbench-i$k
ip netns del "$ns4" 2>/dev/null || true; ip netns del "$ns4i" 2>/dev/null || true
ip netns add "$ns4"; ip netns add "$ns4i"
ip -n "$ns4" link set lo up; ip -n "$ns4i" link set lo up
ip -n "$ns4" link add vbh$k type veth peer name vbi$k netns "$ns4i"
ip -n "$ns4" addr add 198.18.$k.1/30 dev vbh$k; ip -n "$ns4" link set vbh$k up
ip -n "$ns4i" addr add 198.18.$k.2/30 dev vbi$k; ip -n "$ns4i" link set vbi$k up
ip -n "$ns4i" addr add 198.19.$k.1/32 dev lo
ip -n "$ns4" route add 198.19.$k.0/24 via 198.18.$k.2
ip netns exec "$ns4i" busybox httpd -f -p 198.19.$k.1:80 -h "$work/www" &
httpd4=$!
for v in on off; do
  mkdir -p "$work/r4$v"
  nft=true; [ $v = off ] && nft=false
  printf '[network]\nsubnet = "10.217.%d.%d/25"\nbridge = "bn4%s%d"\nnftables = %s\n' \
    "$k" "$([ $v = on ] && echo 0 || echo 128)" "$v" "$k" "$nft" >"$work/r4$v/berth.toml"
  "$BERTH" --root "$work/r4$v" --runroot "$work/run4$v" import "$work/busybox.tar" busybox >/dev/null
done
# nsenter --net only: `ip netns exec` would remount /sys without its cgroup file system.
b4() { v=$1; shift; nsenter --net=/run/netns/$ns4 "$BERTH" --root "$work/r4$v" --runroot "$work/run4$v" "$@"; }
b4 on run --rm busybox true 2>/dev/null; b4 off run --rm busybox true 2>/dev/null
hyperfine --style basic --warmup 2 --runs "$RUNS" -N --export-json "$work/nft.json" \
  -n nftables "nsenter --net=/run/netns/$ns4 $BERTH --root $work/r4on --runroot $work/run4on run --rm busybox true" \
  -n no-nftables "nsenter --net=/run/netns/$ns4 $BERTH --root $work/r4off --runroot $work/run4off run --rm busybox true"
python3 - "$work/nft.json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
on, off = r["nftables"]["median"], r["no-nftables"]["median"]
print(f"run --rm true: nftables on {1000*on:.1f} ms, off {1000*off:.1f} ms (median; +{1000*(on-off):.1f} ms, {100*on/off:.0f} %)")
PY
# A running container fetches the 1 GiB file with exec, timed from outside (the exec's own
# few ms are noise beside the download).
c4=$(b4 on run -d busybox sleep 600)
for i in 1 2 3; do
  t0=$(now_ns)
  b4 on exec "$c4" wget -q -O /dev/null "http://198.19.$k.1/big"
  t1=$(now_ns)
  echo $(( 1024 * 1000000000 / (t1 - t0) ))
done | sort -n | awk '{a[NR]=$1} END {print "1 GiB from the internet namespace through the masquerade: median " a[int((NR+1)/2)] " MiB/s"}'
b4 on rm -f "$c4" >/dev/null
for v in on off; do
  b4 $v network prune -f >/dev/null 2>&1 || true
  for c in $(b4 $v ps -aq); do b4 $v rm -f "$c" >/dev/null; done
done
echo "left in the bench's host namespace: [$(ip netns exec "$ns4" nft list tables)] [$(ip -n "$ns4" -br link show type bridge)]"
kill $httpd4 2>/dev/null || true
