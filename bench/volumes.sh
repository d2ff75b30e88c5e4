#!/usr/bin/env bash
# Volumes (issue 14), side by side with docker (a dockerd of the bench's own, as cp.sh):
#   - run --rm with a named volume that exists:  berth vs docker
#   - run --rm of an image whose VOLUME holds SIZE_MB of files (a new anonymous volume each
#     run, filled from the image, removed with the container):  berth vs docker
# Tools alternate run by run (hyperfine); prints medians and ratios.
#
#   sudo bench/volumes.sh     # RUNS=10 by default; BERTH=path to use a given binary; SIZE_MB=64
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-10}
SIZE_MB=${SIZE_MB:-64}
[ "$(id -u)" = 0 ] || { echo "error: run as root" >&2; exit 1; }
source "$REPO/bench/lib/common.sh"
install_missing dockerd containerd hyperfine
if [ -z "${BERTH:-}" ]; then
  (cd "$REPO" && cargo build --release -q -p berth)
  BERTH="$REPO/target/release/berth"
fi
work=$(mktemp -d /var/tmp/berth-bench-vol.XXXXXX)
B="$BERTH --root $work/root --runroot $work/run"
DOCKER=$(command -v docker || true)
dpid=
run_docker_existed=0; [ -e /run/docker ] && run_docker_existed=1
cleanup() {
  set +e
  for id in $($B ps -a -q --no-trunc 2>/dev/null); do $B rm -f -v "$id" >/dev/null 2>&1; done
  if [ -n "$dpid" ]; then
    kids=$(pgrep -P "$dpid")
    kill "$dpid"; for _ in $(seq 100); do kill -0 "$dpid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$dpid" 2>/dev/null; for k in $kids; do kill "$k" 2>/dev/null; done
    if [ "$run_docker_existed" = 0 ]; then
      awk '$2 ~ "^/run/docker/" {print $2}' /proc/self/mounts | sort -r | xargs -r umount -l
      rm -rf /run/docker
    fi
  fi
  awk -v w="$work" '$2 ~ "^"w {print $2}' /proc/self/mounts | sort -r | xargs -r umount -l
  rm -rf "$work"
}
trap cleanup EXIT

bash "$REPO/scripts/mk-busybox-rootfs.sh" "$work/busybox.tar"
$B import "$work/busybox.tar" busybox:latest >/dev/null
mkdir -p "$work/ctx"
cat >"$work/ctx/Dockerfile" <<EOF
FROM busybox
RUN mkdir -p /data && for i in \$(seq 1 $((SIZE_MB / 4))); do head -c 4194304 /dev/urandom > /data/f\$i; done \
 && mkdir -p /data/small && for i in \$(seq 1 256); do echo \$i > /data/small/s\$i; done
VOLUME /data
EOF
$B build -q -t volbench "$work/ctx" >/dev/null
$B volume create benchvol >/dev/null

cmds=(
  "$B run --rm --network none -v benchvol:/d busybox true"
  "$B run --rm --network none volbench true"
)
names=(berth-named berth-copyup)
if [ -n "$DOCKER" ] && command -v dockerd >/dev/null; then
  mkdir -p "$work/docker"
  export DOCKER_HOST=unix://$work/docker/docker.sock
  dockerd --data-root "$work/docker/data" --exec-root "$work/docker/exec" \
    --pidfile "$work/docker/dockerd.pid" -H "$DOCKER_HOST" --bridge=none --iptables=false \
    --ip6tables=false >"$work/docker/dockerd.log" 2>&1 &
  dpid=$!
  for _ in $(seq 150); do "$DOCKER" version >/dev/null 2>&1 && break; sleep 0.2; done
  if $B save busybox:latest volbench:latest | "$DOCKER" load >/dev/null &&
    "$DOCKER" volume create benchvol >/dev/null; then
    cmds+=("$DOCKER run --rm --network none -v benchvol:/d busybox:latest true"
      "$DOCKER run --rm --network none volbench:latest true")
    names+=(docker-named docker-copyup)
  else
    warn "docker could not be set up: $(tail -n 3 "$work/docker/dockerd.log" | tr '\n' ' ')"
  fi
else
  warn "docker (docker.io) is missing: measured without it"
fi

hyperfine -N --warmup 2 --runs "$RUNS" --export-json "$work/h.json" "${cmds[@]}" >&2
python3 - "$work/h.json" "${names[@]}" <<'PY'
import json, sys
res = json.load(open(sys.argv[1]))["results"]
names = sys.argv[2:]
med = {n: r["median"] * 1000 for n, r in zip(names, res)}
for n in names:
    print(f"{n:15s} median {med[n]:8.1f} ms")
for kind in ("named", "copyup"):
    b, d = med.get(f"berth-{kind}"), med.get(f"docker-{kind}")
    if b and d:
        print(f"{kind:15s} docker/berth = {d / b:.2f}x")
PY
# Nothing left: every anonymous volume went with its --rm container.
left=$($B volume ls -q | grep -vc '^benchvol$' || true)
[ "$left" = 0 ] || { echo "error: $left anonymous volumes left" >&2; exit 1; }
