#!/usr/bin/env bash
# `cp` of a 1 GiB directory into and out of a running container (issue 14), side by side:
#   - berth cp                         (target: >= 0.8x tar, >= 3x docker)
#   - tar -c | tar -x between the same directories (the container's root through
#     /proc/PID/root, as berth reaches it)
#   - docker cp against a dockerd of the bench's own (Debian's docker.io: its own
#     --data-root, --exec-root and socket, --bridge=none --iptables=false), busybox loaded
#     into it with `docker load` from `berth save`.
# Tools alternate run by run; the data is in the page cache; each run starts from an empty
# destination after a sync (untimed). Prints medians and ratios.
#
#   sudo bench/cp.sh          # RUNS=5 by default; BERTH=path to use a given binary; SIZE_MB=1024
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-5}
SIZE_MB=${SIZE_MB:-1024}
[ "$(id -u)" = 0 ] || { echo "error: run as root" >&2; exit 1; }
source "$REPO/bench/lib/common.sh"
install_missing dockerd containerd
if [ -z "${BERTH:-}" ]; then
  (cd "$REPO" && cargo build --release -q -p berth)
  BERTH="$REPO/target/release/berth"
fi
work=$(mktemp -d /var/tmp/berth-bench-cp.XXXXXX)
B=("$BERTH" --root "$work/root" --runroot "$work/run")
DOCKER=$(command -v docker || true)
dpid=
run_docker_existed=0; [ -e /run/docker ] && run_docker_existed=1
cleanup() {
  set +e
  for id in $("${B[@]}" ps -a -q --no-trunc 2>/dev/null); do "${B[@]}" rm -f "$id" >/dev/null 2>&1; done
  if [ -n "$dpid" ]; then
    "$DOCKER" rm -f dcp >/dev/null 2>&1
    kids=$(pgrep -P "$dpid")
    kill "$dpid"; for _ in $(seq 100); do kill -0 "$dpid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$dpid" 2>/dev/null; for k in $kids; do kill "$k" 2>/dev/null; done
    awk -v w="$work" '$2 ~ "^"w {print $2}' /proc/self/mounts | sort -r | xargs -r umount -l
    if [ "$run_docker_existed" = 0 ]; then
      awk '$2 ~ "^/run/docker/" {print $2}' /proc/self/mounts | sort -r | xargs -r umount -l
      rm -rf /run/docker
    fi
  fi
  rm -rf "$work"
}
trap cleanup EXIT

log "making ${SIZE_MB} MiB of data (3/4 in 64 MiB files, 1/4 in 64 KiB files)"
data=$work/data
mkdir -p "$data/big" "$data/small"
for i in $(seq 1 $((SIZE_MB * 3 / 4 / 64))); do head -c 64M /dev/urandom >"$data/big/f$i"; done
for d in $(seq 1 $((SIZE_MB / 4 / 64))); do
  mkdir -p "$data/small/d$d"
  head -c 64M /dev/urandom | split -b 64K -a 4 - "$data/small/d$d/s"
done
du -sh --apparent-size "$data" >&2

bash "$REPO/scripts/mk-busybox-rootfs.sh" "$work/busybox.tar"
"${B[@]}" import "$work/busybox.tar" busybox:latest >/dev/null
"${B[@]}" run -d --name cpb --network none busybox sleep 1000000 >/dev/null
pid=$("${B[@]}" inspect -f '{{.State.Pid}}' cpb)
croot=/proc/$pid/root

have_docker=0
if [ -n "$DOCKER" ] && command -v dockerd >/dev/null; then
  mkdir -p "$work/docker"
  export DOCKER_HOST=unix://$work/docker/docker.sock
  dockerd --data-root "$work/docker/data" --exec-root "$work/docker/exec" \
    --pidfile "$work/docker/dockerd.pid" -H "$DOCKER_HOST" --bridge=none --iptables=false \
    --ip6tables=false >"$work/docker/dockerd.log" 2>&1 &
  dpid=$!
  for _ in $(seq 150); do "$DOCKER" version >/dev/null 2>&1 && break; sleep 0.2; done
  if "${B[@]}" save busybox:latest | "$DOCKER" load >/dev/null &&
    "$DOCKER" run -d --name dcp --network none busybox:latest sleep 1000000 >/dev/null; then
    have_docker=1
  else
    warn "docker could not be set up: $(tail -n 3 "$work/docker/dockerd.log" | tr '\n' ' ')"
  fi
else
  warn "docker (docker.io) is missing: measured without it"
fi

now() { date +%s%N; }
# time_it PREP CMD: prints the seconds CMD took, PREP (and a sync) untimed before it.
time_it() {
  bash -c "$1" >/dev/null 2>&1; sync
  local t0; t0=$(now)
  bash -c "$2" >/dev/null 2>"$work/err" || { echo "FAILED: $2: $(cat "$work/err")" >&2; return 1; }
  echo "scale=3; ($(now) - t0) / 1000000000" | sed "s/t0/$t0/" | bc
}
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2}'; }

declare -A T
measure() { # measure LABEL TOOL PREP CMD
  T["$1|$2"]+="$(time_it "$3" "$4") "
}
Bs="${B[*]}"
for r in $(seq 1 "$RUNS"); do
  log "run $r/$RUNS"
  measure in berth "$Bs exec cpb rm -rf /data" "$Bs cp $data cpb:/data"
  measure in tar "rm -rf $croot/data; mkdir $croot/data" "tar -C $data -cf - . | tar -C $croot/data -xf -"
  [ $have_docker = 1 ] && measure in docker "$DOCKER exec dcp rm -rf /data" "$DOCKER cp $data dcp:/data"
  measure out berth "rm -rf $work/out" "$Bs cp cpb:/data $work/out"
  measure out tar "rm -rf $work/out; mkdir $work/out" "tar -C $croot/data -cf - . | tar -C $work/out -xf -"
  [ $have_docker = 1 ] && measure out docker "rm -rf $work/out" "$DOCKER cp dcp:/data $work/out"
done
rm -rf "$work/out"

echo
echo "cp of ${SIZE_MB} MiB ($(find "$data" -type f | wc -l) files), median of $RUNS runs, seconds (min-max):"
for dir in in out; do
  for tool in berth tar docker; do
    v=${T["$dir|$tool"]:-}
    [ -z "$v" ] && continue
    m=$(tr ' ' '\n' <<<"$v" | grep . | median)
    lo=$(tr ' ' '\n' <<<"$v" | grep . | sort -n | head -1)
    hi=$(tr ' ' '\n' <<<"$v" | grep . | sort -n | tail -1)
    eval "M_${dir}_${tool}=$m"
    printf '  %-4s %-7s %7.3f  (%s-%s)\n' "$dir" "$tool" "$m" "$lo" "$hi"
  done
  bm=$(eval echo "\$M_${dir}_berth"); tm=$(eval echo "\$M_${dir}_tar")
  printf '  %-4s berth vs tar:    %.2fx as fast (target >= 0.8x)\n' "$dir" "$(echo "$tm / $bm" | bc -l)"
  if [ $have_docker = 1 ]; then
    dm=$(eval echo "\$M_${dir}_docker")
    printf '  %-4s berth vs docker: %.2fx as fast (target >= 3x)\n' "$dir" "$(echo "$dm / $bm" | bc -l)"
  fi
done
