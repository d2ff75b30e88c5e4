# Setting up and tearing down the peers berth is measured against (sourced by bench/run.sh).
# Every peer keeps its state under $BENCH_WORK and is configured through environment
# variables (CONTAINERS_CONF, CONTAINERS_STORAGE_CONF, DOCKER_HOST), not files in /etc.
# A peer that cannot be set up is left out with a clear message; berth is measured anyway.
# shellcheck shell=bash

PEERS=""           # peers ready to measure, space-separated
PEER_ERRORS=()     # "peer: why" for those that are not
TEARDOWN=()        # commands run in reverse order by peers_teardown

peer_ok() { PEERS="$PEERS $1"; PEERS=${PEERS# }; log "peer ready: $1"; }
peer_fail() { PEER_ERRORS+=("$1: $2"); warn "peer $1 cannot be set up: $2 (berth is measured without it)"; }
has_peer() { [[ " $PEERS " == *" $1 "* ]]; }
on_teardown() { TEARDOWN+=("$1"); }

peers_teardown() {
  local i
  for ((i = ${#TEARDOWN[@]} - 1; i >= 0; i--)); do
    eval "${TEARDOWN[$i]}" >/dev/null 2>&1 || warn "teardown step failed: ${TEARDOWN[$i]}"
  done
  TEARDOWN=()
}

# A rootfs directory of the busybox base, shared by the runc and crun bundles.
make_bundle() { # make_bundle DIR
  local dir=$1
  mkdir -p "$dir/rootfs"
  tar -C "$dir/rootfs" -xf "$BUSYBOX_TAR"
  (cd "$dir" && runc spec)
  # Same process as `berth run --rm --network none IMAGE true`: no terminal, `true`, a new netns.
  python3 - "$dir/config.json" <<'PY'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["process"]["terminal"] = False
c["process"]["args"] = ["true"]
c["hostname"] = "bench"
json.dump(c, open(p, "w"), indent=1)
PY
}

setup_runc() {
  command -v runc >/dev/null || { peer_fail runc "runc is not installed"; return 0; }
  export RUNC_BUNDLE=$BENCH_WORK/bundle
  [ -d "$RUNC_BUNDLE" ] || make_bundle "$RUNC_BUNDLE" || { peer_fail runc "could not make an OCI bundle"; return 0; }
  mkdir -p "$BENCH_WORK/runc-state"
  export RUNC_ROOT=$BENCH_WORK/runc-state
  if runc --root "$RUNC_ROOT" run -b "$RUNC_BUNDLE" bench-probe >/dev/null 2>"$BENCH_WORK/runc.err"; then
    peer_ok runc
  else
    peer_fail runc "$(tail -n1 "$BENCH_WORK/runc.err")"
  fi
}

# crun refuses the hybrid cgroup layout while the cgroup v2 mount holds a controller. Binding
# each such controller to a v1 hierarchy of our own (mounted under $BENCH_WORK, unmounted at
# teardown, which hands the controller back to v2) empties it.
#
# The host must get its controller back: a v1 hierarchy outlives its unmount while it has
# child cgroups, and then the v2 mount lacks the controller for good (dockerd's and
# containerd's stats read 0B). Any engine running meanwhile may make cgroups in our hierarchy
# (runc finds it in mountinfo), so: refused while a daemon that was running before the bench
# could use it; at teardown every process in a child cgroup is moved to the hierarchy's root,
# the children removed deepest first, the hierarchy unmounted, and the controller's return to
# the v2 mount checked (check_cgroup_layout fails loudly otherwise).
CGROUP_FIXED=0
CGROUP_ERR=""
empty_cgroup_v2() {
  [ "$CGROUP_FIXED" = 1 ] && return 0
  local unified=/sys/fs/cgroup/unified c
  if [ -f "$unified/cgroup.controllers" ] && [ -n "$(cat "$unified/cgroup.controllers")" ]; then
    if ! cgroup_move_is_undoable; then
      return 1
    fi
    cgroup_layout >"$BENCH_WORK/cgroup-layout-before.txt"
    # Teardown runs last-in first-out: this check runs after every controller is given back.
    on_teardown "check_cgroup_layout '$BENCH_WORK/cgroup-layout-before.txt'"
    for c in $(cat "$unified/cgroup.controllers"); do
      mkdir -p "$BENCH_WORK/cgroup-v1-$c"
      if mount -t cgroup -o "$c" "bench-$c" "$BENCH_WORK/cgroup-v1-$c" 2>/dev/null; then
        on_teardown "give_back_cgroup_controller '$c' '$BENCH_WORK/cgroup-v1-$c'"
        log "moved cgroup controller $c from the v2 mount to a v1 hierarchy for crun (undone at the end)"
      else
        rmdir "$BENCH_WORK/cgroup-v1-$c" 2>/dev/null
        CGROUP_ERR="the cgroup v2 mount holds controller $c and it cannot be moved to v1 (crun refuses hybrid mode)"
        return 1
      fi
    done
  fi
  CGROUP_FIXED=1
}

# cgroup_move_is_undoable [SNAPSHOT]: whether the v2 mount's controllers may be moved to a v1
# hierarchy for the length of the bench: not while a container engine that the bench did not
# start runs (it would make cgroups there, with processes the bench must not touch); not when
# the controller is bound to a v1 hierarchy already. Sets CGROUP_ERR when not.
cgroup_move_is_undoable() {
  local snap=${1:-$BENCH_WORK/host-before.txt} d c
  for d in dockerd containerd podman conmon crio; do
    if grep -qx "running: $d" <(sed -n '/^## daemons/,/^## /p' "$snap" 2>/dev/null); then
      CGROUP_ERR="$d was running before the bench: moving the cgroup v2 mount's controllers to a v1 hierarchy for crun could not be undone once it makes cgroups there (refused; stop $d or leave out crun and podman)"
      return 1
    fi
  done
  for c in $(cat /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null); do
    if awk -v c="$c" '$1 == c && $2 != 0 {f=1} END {exit !f}' /proc/cgroups; then
      CGROUP_ERR="controller $c is bound to a v1 hierarchy already"
      return 1
    fi
  done
  return 0
}

# give_back_cgroup_controller C DIR: undoes the v1 hierarchy of controller C mounted at DIR
# (see empty_cgroup_v2) and checks that the v2 mount holds C again.
give_back_cgroup_controller() {
  local c=$1 dir=$2 try
  for try in 1 2 3; do
    # A hierarchy that outlived an unmount (a child cgroup was still dying) is mounted again
    # by the same options: emptied and unmounted once more.
    if ! mountpoint -q "$dir"; then
      awk -v c="$c" '$1 == c && $2 != 0 {f=1} END {exit !f}' /proc/cgroups || break
      mkdir -p "$dir"
      mount -t cgroup -o "$c" "bench-$c" "$dir" || break
    fi
    empty_cgroup_hierarchy "$c" "$dir"
    umount "$dir" || { warn "cgroup: could not unmount $dir"; return 1; }
    cgroup_back_in_v2 "$c" && break
  done
  rmdir "$dir" 2>/dev/null
  cgroup_back_in_v2 "$c" && return 0
  warn "cgroup controller $c did not return to the v2 mount (/sys/fs/cgroup/unified): its v1 hierarchy lives on with $(awk -v c="$c" '$1 == c {print $3 - 1}' /proc/cgroups) child cgroups"
  return 1
}

# empty_cgroup_hierarchy C DIR: moves the processes of every child cgroup of the v1 hierarchy
# at DIR (a peer's, or another engine's) to its root, which holds every process anyway, then
# removes the children deepest first, until the kernel counts none (a removed cgroup stays
# counted while it dies, and an unmount then would leave the hierarchy alive).
empty_cgroup_hierarchy() {
  local c=$1 dir=$2 cg pid i
  for i in $(seq 100); do
    find "$dir" -mindepth 2 -name cgroup.procs 2>/dev/null | while read -r cg; do
      while read -r pid; do echo "$pid" >"$dir/cgroup.procs" 2>/dev/null; done <"$cg"
    done
    find "$dir" -mindepth 1 -depth -type d -exec rmdir {} \; 2>/dev/null
    [ "$(awk -v c="$c" '$1 == c {print $3}' /proc/cgroups)" = 1 ] && return 0
    sleep 0.05
  done
  return 1
}

# cgroup_back_in_v2 C: waits up to 2 s for the v2 mount to list controller C again.
cgroup_back_in_v2() {
  local i
  for i in $(seq 20); do
    grep -qw "$1" /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

setup_crun() {
  command -v crun >/dev/null || { peer_fail crun "crun is not installed"; return 0; }
  [ -d "${RUNC_BUNDLE:-}" ] || { export RUNC_BUNDLE=$BENCH_WORK/bundle; make_bundle "$RUNC_BUNDLE"; }
  export CRUN_ROOT=$BENCH_WORK/crun-state
  mkdir -p "$CRUN_ROOT"
  empty_cgroup_v2 || { peer_fail crun "$CGROUP_ERR"; return 0; }
  if crun --root "$CRUN_ROOT" run -b "$RUNC_BUNDLE" bench-probe >/dev/null 2>"$BENCH_WORK/crun.err"; then
    peer_ok crun
  else
    peer_fail crun "$(tail -n1 "$BENCH_WORK/crun.err")"
  fi
}

# podman with its own storage and configuration; containers.conf sets default_ulimits because
# podman would raise nofile/nproc and CAP_SYS_RESOURCE is missing here.
setup_podman() {
  command -v podman >/dev/null || { peer_fail podman "podman is not installed"; return 0; }
  local d=$BENCH_WORK/podman
  mkdir -p "$d"
  cat >"$d/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$d/root"
runroot = "$d/run"
EOF
  podman_conf "$d" 1024 1024
  export CONTAINERS_CONF=$d/containers.conf CONTAINERS_STORAGE_CONF=$d/storage.conf
  # podman runs containers with crun, which refuses the hybrid layout (see empty_cgroup_v2).
  empty_cgroup_v2 || { peer_fail podman "$CGROUP_ERR"; return 0; }
  [ -e /run/containers ] || on_teardown "rm -rf /run/containers"
  on_teardown "podman rm -af -t 0; podman network prune -f; podman system reset -f; rm -rf '$d'"
  if ! podman import -q "$BUSYBOX_TAR" localhost/busybox-bench >/dev/null 2>"$d/import.err"; then
    peer_fail podman "import failed: $(tail -n1 "$d/import.err")"; return 0
  fi
  # The limits podman's runtime may set without CAP_SYS_RESOURCE: this shell's hard limits are
  # not always allowed (conmon runs under its own), so try from high to low.
  local hn hu pair
  hn=$(ulimit -Hn); hu=$(ulimit -Hu)
  [ "$hn" = unlimited ] && hn=1048576
  [ "$hu" = unlimited ] && hu=1048576
  for pair in "$hn $hu" "16384 32768" "4096 4096" "1024 1024"; do
    set -- $pair
    podman_conf "$d" "$1" "$2"
    if podman run --rm --network none localhost/busybox-bench true >/dev/null 2>"$d/run.err"; then
      log "podman: default_ulimits nofile=$1 nproc=$2"
      peer_ok podman
      return 0
    fi
    grep -q 'setrlimit' "$d/run.err" || break
  done
  peer_fail podman "$(tail -n1 "$d/run.err")"
}

podman_conf() { # podman_conf DIR NOFILE NPROC
  local d=$1
  cat >"$d/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$2:$2", "nproc=$3:$3"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
[network]
network_config_dir = "$d/networks"
# podman's default 10.88.0.0/16 is berth's default bridge subnet too: two bridges with one
# subnet break routing to both.
default_subnet = "10.89.0.0/16"
EOF
}

# dockerd (Debian's docker.io) with its data, exec root and socket under $BENCH_WORK; it
# starts its own containerd. Its bridge and iptables rules are removed at teardown.
setup_docker() {
  command -v dockerd >/dev/null || { peer_fail docker "dockerd is not installed (docker.io)"; return 0; }
  local d=$BENCH_WORK/docker
  mkdir -p "$d"
  export DOCKER=/usr/bin/docker
  [ -x "$DOCKER" ] || DOCKER=$(command -v docker)
  export DOCKER_HOST=unix://$d/docker.sock
  echo '{}' >"$d/daemon.json"
  # dockerd makes /run/docker (plugins, netns) whatever its exec root: remove it if it is new.
  [ -e /run/docker ] || on_teardown "awk '\$2 ~ \"^/run/docker/\" {print \$2}' /proc/self/mounts | sort -r | xargs -r umount -l; rm -rf /run/docker"
  dockerd --data-root "$d/data" --exec-root "$d/exec" --pidfile "$d/dockerd.pid" \
    -H "$DOCKER_HOST" --config-file "$d/daemon.json" >"$d/dockerd.log" 2>&1 &
  local pid=$!
  on_teardown "docker_stop $pid"
  local t0=$SECONDS
  until "$DOCKER" version >/dev/null 2>&1; do
    if ! kill -0 "$pid" 2>/dev/null || [ $((SECONDS - t0)) -gt 30 ]; then
      peer_fail docker "dockerd did not start: $(tail -n2 "$d/dockerd.log" | tr '\n' ' ')"; return 0
    fi
    sleep 0.2
  done
  log "dockerd up in $((SECONDS - t0)) s"
  if ! "$DOCKER" import "$BUSYBOX_TAR" busybox-bench >/dev/null 2>"$d/import.err"; then
    peer_fail docker "import failed: $(tail -n1 "$d/import.err")"; return 0
  fi
  if "$DOCKER" run --rm --network none busybox-bench true >/dev/null 2>"$d/run.err"; then
    peer_ok docker
  else
    peer_fail docker "$(tail -n1 "$d/run.err")"
  fi
}

docker_stop() {
  local pid=$1 children c
  "$DOCKER" rm -f $("$DOCKER" ps -aq 2>/dev/null) >/dev/null 2>&1 || true
  # dockerd's own containerd is its child: remember it, in case it outlives dockerd.
  children=$(pgrep -P "$pid" 2>/dev/null || true)
  kill "$pid" 2>/dev/null
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  for c in $children; do kill "$c" 2>/dev/null; done
  ip link del docker0 2>/dev/null || true
  # dockerd's iptables chains (iptables-nft on Debian): delete the ones it made.
  if command -v iptables >/dev/null 2>&1; then
    local t c
    for t in nat filter; do
      for c in DOCKER-USER DOCKER-ISOLATION-STAGE-1 DOCKER-ISOLATION-STAGE-2 DOCKER; do
        iptables -t "$t" -S 2>/dev/null | grep -E "^-A [A-Z-]+ .*-j $c( |$)" | sed 's/^-A/-D/' | while read -r rule; do
          eval "iptables -t $t $rule" 2>/dev/null
        done
      done
      for c in DOCKER-USER DOCKER-ISOLATION-STAGE-1 DOCKER-ISOLATION-STAGE-2 DOCKER; do
        iptables -t "$t" -F "$c" 2>/dev/null; iptables -t "$t" -X "$c" 2>/dev/null
      done
    done
    iptables -t nat -S POSTROUTING 2>/dev/null | grep -- '-o docker0\|! -o docker0' | sed 's/^-A/-D/' | while read -r rule; do
      eval "iptables -t nat $rule" 2>/dev/null
    done
  fi
  umount -R "$BENCH_WORK/docker/exec" 2>/dev/null || true
  umount -R "$BENCH_WORK/docker/data" 2>/dev/null || true
}

# Parent cgroups the engines create (docker, libpod_parent, berth) and leave behind: removed,
# deepest first, when they did not exist before and are empty by now.
restore_cgroups() { # restore_cgroups BEFORE_SNAPSHOT
  local before=$1 d
  for d in /sys/fs/cgroup/*/docker /sys/fs/cgroup/*/libpod_parent /sys/fs/cgroup/*/machine.slice /sys/fs/cgroup/*/berth; do
    [ -d "$d" ] || continue
    grep -qx "$d" "$before" && continue
    find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
  return 0
}

# The nft tables and iptables rules that did not exist before are removed at the very end
# (docker's iptables-nft leaves empty ip/ip6 filter and nat tables behind).
restore_nft_tables() { # restore_nft_tables BEFORE_SNAPSHOT
  local before=$1 line fam name
  nft list tables 2>/dev/null | while read -r _ fam name; do
    # Only iptables-nft's tables; anything else belongs to someone else.
    case "$fam:$name" in ip:filter|ip:nat|ip6:filter|ip6:nat|ip:mangle|ip6:mangle|ip:raw|ip6:raw) ;; *) continue ;; esac
    grep -qx "table $fam $name" <(sed -n '/^## nft tables/,/^## /p' "$before") || {
      nft delete table "$fam" "$name" 2>/dev/null && log "removed nft table $fam $name left by a peer"
    }
  done
}
