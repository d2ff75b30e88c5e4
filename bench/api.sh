#!/usr/bin/env bash
# Issue 15's targets for `berth system service`, side by side with a dockerd of the bench's
# own (Debian's docker.io: its own --data-root, --exec-root, socket, --bridge=none,
# --iptables=false) in one run, both driven by the same `docker` CLI:
#   - `docker run --rm busybox true`: >= 8x faster through berth's socket (hyperfine);
#   - `docker ps -a` with 200 containers: <= 0.5x dockerd's time;
#   - the service's idle RSS <= 15 MB;
#   - 16 concurrent clients listing containers for 10 s: no error.
#
#   sudo bench/api.sh        # RUNS=20 by default; BERTH=path to use a given binary
#
# Everything lives under a temp dir removed at the end; both daemons are stopped and their
# containers removed.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-20}
[ "$(id -u)" = 0 ] || { echo "error: run as root (namespaces, cgroups, overlayfs)" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "error: hyperfine missing: apt-get install hyperfine" >&2; exit 1; }
command -v docker >/dev/null || { echo "error: the docker CLI is missing" >&2; exit 1; }
if [ -z "${BERTH:-}" ]; then
  (cd "$REPO" && cargo build --release -p berth >/dev/null)
  BERTH="$REPO/target/release/berth"
fi
work=$(mktemp -d /tmp/berth-bench-api.XXXXXX)
B=("$BERTH" --root "$work/root" --runroot "$work/run")
svc_pid="" dockerd_pid=""
cleanup() {
  [ -n "$svc_pid" ] && kill "$svc_pid" 2>/dev/null && wait "$svc_pid" 2>/dev/null || true
  for id in $("${B[@]}" ps -a -q --no-trunc 2>/dev/null); do "${B[@]}" rm -f "$id" >/dev/null 2>&1 || true; done
  if [ -n "$dockerd_pid" ]; then
    DOCKER_HOST=unix://$work/docker.sock docker ps -aq | xargs -r env DOCKER_HOST=unix://$work/docker.sock docker rm -f >/dev/null 2>&1 || true
    kill "$dockerd_pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.1; done
    umount -R "$work/docker-data" 2>/dev/null || true
    umount -R "$work/docker-exec" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

bash "$REPO/scripts/mk-busybox-rootfs.sh" "$work/busybox.tar"
"${B[@]}" import "$work/busybox.tar" busybox:latest >/dev/null
"${B[@]}" system service --host "unix://$work/berth.sock" >"$work/service.log" 2>&1 &
svc_pid=$!
for _ in $(seq 100); do [ -S "$work/berth.sock" ] && break; sleep 0.05; done
BERTH_SOCK=unix://$work/berth.sock

have_dockerd=0
if command -v dockerd >/dev/null; then
  dockerd --data-root "$work/docker-data" --exec-root "$work/docker-exec" \
    --pidfile "$work/docker.pid" -H "unix://$work/docker.sock" --bridge=none --iptables=false \
    --ip6tables=false >"$work/dockerd.log" 2>&1 &
  dockerd_pid=$!
  for _ in $(seq 200); do DOCKER_HOST=unix://$work/docker.sock docker version >/dev/null 2>&1 && break; sleep 0.1; done
  if DOCKER_HOST=unix://$work/docker.sock docker version >/dev/null 2>&1; then
    have_dockerd=1
    DOCKER_HOST=unix://$work/docker.sock docker import "$work/busybox.tar" busybox:latest >/dev/null
  else
    echo "dockerd did not start; measuring berth alone (see $work/dockerd.log)" >&2
  fi
else
  echo "dockerd missing (apt-get install docker.io); measuring berth alone" >&2
fi

echo "== docker run --rm busybox true"
cmds=(-n berth "DOCKER_HOST=$BERTH_SOCK docker run --rm --network none busybox true")
[ $have_dockerd = 1 ] && cmds+=(-n dockerd "DOCKER_HOST=unix://$work/docker.sock docker run --rm --network none busybox true")
hyperfine --shell=bash -w 3 -r "$RUNS" "${cmds[@]}" 2>&1 | grep -vE "^\s*$" || true

echo "== docker ps -a with 200 containers"
for i in $(seq 200); do echo "busybox true"; done | while read -r img cmd; do
  DOCKER_HOST=$BERTH_SOCK docker create --network none "$img" "$cmd" >/dev/null
  [ $have_dockerd = 1 ] && DOCKER_HOST=unix://$work/docker.sock docker create --network none "$img" "$cmd" >/dev/null
  true
done
cmds=(-n berth "DOCKER_HOST=$BERTH_SOCK docker ps -a")
[ $have_dockerd = 1 ] && cmds+=(-n dockerd "DOCKER_HOST=unix://$work/docker.sock docker ps -a")
hyperfine --shell=bash -w 2 -r "$RUNS" "${cmds[@]}" 2>&1 | grep -vE "^\s*$" || true

echo "== idle RSS of the service"
sleep 2
rss=$(awk '/VmRSS/ {print $2}' "/proc/$svc_pid/status")
echo "berth system service: ${rss} kB (target <= 15360 kB)"

echo "== 16 concurrent clients listing containers for 10 s"
python3 - "$work/berth.sock" <<'PY'
import socket, sys, threading, time
sock = sys.argv[1]
stop = time.monotonic() + 10
counts = [0] * 16
errors = [0] * 16
def client(i):
    while time.monotonic() < stop:
        try:
            s = socket.socket(socket.AF_UNIX)
            s.connect(sock)
            s.sendall(b"GET /v1.47/containers/json?all=1 HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                d = s.recv(65536)
                if not d:
                    break
                data += d
            s.close()
            if not data.startswith(b"HTTP/1.1 200"):
                errors[i] += 1
            else:
                counts[i] += 1
        except Exception:
            errors[i] += 1
ts = [threading.Thread(target=client, args=(i,)) for i in range(16)]
[t.start() for t in ts]
[t.join() for t in ts]
print(f"requests: {sum(counts)} ({sum(counts)/10:.1f}/s), errors: {sum(errors)} (target 0)")
PY
