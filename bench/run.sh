#!/usr/bin/env bash
# berth's benchmarks, side by side with runc, crun, podman, docker and the distribution registry.
#
#   sudo bench/run.sh [suite...]      # suites: start publish build registry import memory (default: all)
#
# Installs missing peers from Debian, sets each up with its state under a temp dir, imports the
# same busybox base into each, runs the suites (tools alternate run by run; medians with min and
# max), then writes bench/results/latest.md, latest.json and one PNG chart per suite, and
# restores the host: it compares daemons, mounts, bridges, veths, netns, nft tables, iptables
# rules and the peers' config files before and after, and fails if anything is left behind.
# A peer that cannot be set up is reported clearly and berth is measured anyway.
#
# Environment: RUNS (timed runs per tool, default 20), BERTH (a berth binary to use instead
# of building one), KEEP_WORK=1 (keep the temp dir for a post-mortem).
# Never run in CI: it installs daemons and takes minutes.
set -euo pipefail

BENCH_HOME=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$BENCH_HOME/.." && pwd)
export REPO BENCH_HOME
# shellcheck source=lib/common.sh
source "$BENCH_HOME/lib/common.sh"
# shellcheck source=lib/peers.sh
source "$BENCH_HOME/lib/peers.sh"
# shellcheck source=lib/suites.sh
source "$BENCH_HOME/lib/suites.sh"

ALL_SUITES=(start publish build registry import memory)
# Suites whose area script (bench/<suite>.sh) records side by side through $BENCH and so
# replaces the built-in one; any other bench/<name>.sh runs when named (e.g. `run.sh images`).
AREA_SUITES=(registry)
uses_area_script() {
  [ -f "$BENCH_HOME/$1.sh" ] || return 1
  [[ " ${AREA_SUITES[*]} " == *" $1 "* ]] || ! declare -F "suite_$1" >/dev/null
}
suites=("$@")
[ ${#suites[@]} -eq 0 ] && suites=("${ALL_SUITES[@]}")
for s in "${suites[@]}"; do
  [[ " ${ALL_SUITES[*]} " == *" $s "* ]] || [ -f "$BENCH_HOME/$s.sh" ] || die "unknown suite '$s' (known: ${ALL_SUITES[*]})"
done
[ -z "${CI:-}" ] || die "benchmarks do not run in CI (they install daemons and take minutes)"
[ "$(id -u)" = 0 ] || die "run as root: containers need namespaces, mounts and cgroups"

export RUNS=${RUNS:-20}
BENCH_WORK=$(mktemp -d /tmp/berth-bench.XXXXXX)
export BENCH_WORK
snapshot_host "$BENCH_WORK/host-before.txt"

finish() {
  local rc=$? status=0
  set +e
  trap - EXIT INT TERM
  log "restoring the host"
  "${BERTH:-true}" rm -f bench-pub bench-mon >/dev/null 2>&1
  peers_teardown
  restore_nft_tables "$BENCH_WORK/host-before.txt"
  restore_cgroups "$BENCH_WORK/host-before.txt"
  # berth's own leftovers: its default bridge, if this run created it.
  if ! grep -qx 'berth0' <(sed -n '/^## bridges/,/^## /p' "$BENCH_WORK/host-before.txt") \
     && ip link show berth0 >/dev/null 2>&1; then
    ip link del berth0 && log "removed the berth0 bridge this run created"
  fi
  # netavark (podman's bridge) turns /run/netns into a mount point of its own; undo it when it
  # was not one before and nothing is mounted beneath it any more.
  if ! grep -q '^/run/netns ' "$BENCH_WORK/host-before.txt" && awk '$2 == "/run/netns"' /proc/self/mounts | grep -q . \
     && ! awk '$2 ~ "^/run/netns/"' /proc/self/mounts | grep -q .; then
    umount /run/netns 2>/dev/null && log "unmounted /run/netns (made a mount point by a peer)"
  fi
  awk -v w="$BENCH_WORK" '$2 ~ "^"w {print $2}' /proc/self/mounts | sort -r | while read -r m; do
    warn "still mounted: $m (unmounting)"; umount -l "$m"
  done
  snapshot_host "$BENCH_WORK/host-after.txt"
  diff -u "$BENCH_WORK/host-before.txt" "$BENCH_WORK/host-after.txt" >"$BENCH_WORK/host.diff"
  # Something new is a leftover; something gone was ended by someone else (on a shared machine).
  if grep -qE '^-[^-]' "$BENCH_WORK/host.diff"; then
    log "gone since the start (not this run's doing):"
    grep -E '^-[^-]' "$BENCH_WORK/host.diff" | sed 's/^-/    /' >&2
  fi
  if grep -qE '^\+[^+]' "$BENCH_WORK/host.diff"; then
    warn "left behind on the host:"
    grep -E '^\+[^+]' "$BENCH_WORK/host.diff" | sed 's/^+/    /' >&2
    status=1
  else
    log "host restored: no daemon, mount, bridge, veth, netns, nft table, iptables rule or config left behind"
  fi
  if [ "${KEEP_WORK:-0}" = 1 ]; then
    log "kept $BENCH_WORK"
  else
    rm -rf --one-file-system "$BENCH_WORK"
  fi
  if [ ${#PEER_ERRORS[@]} -gt 0 ]; then
    warn "peers that could not be set up:"
    printf '    %s\n' "${PEER_ERRORS[@]}" >&2
    status=1
  fi
  [ "$rc" != 0 ] && status=$rc
  exit "$status"
}
trap finish EXIT
trap 'die "interrupted"' INT TERM

# ------------------------------------------------------------------ tools and peers
want=(hyperfine wrk curl busybox skopeo docker-registry)
for s in "${suites[@]}"; do
  for p in $(suite_peers "$s"); do
    case $p in
      docker) want+=(dockerd containerd) ;;
      registry) want+=(docker-registry skopeo) ;;
      podman) want+=(podman buildah) ;;
      *) want+=("$p") ;;
    esac
  done
done
install_missing "${want[@]}"
if [ ! -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]; then  # the charts' font
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends fonts-dejavu-core >/dev/null 2>&1 \
    || warn "fonts-dejavu-core could not be installed: charts will fail"
fi

log "building berth (release) and the bench tool"
if [ -z "${BERTH:-}" ]; then
  (cd "$REPO" && cargo build --release -q -p berth) || die "cargo build -p berth failed"
  BERTH=$REPO/target/release/berth
fi
# Its own target dir: no waiting on the workspace's build lock.
(cd "$BENCH_HOME/report" && CARGO_TARGET_DIR=$REPO/target/bench-report cargo build --release -q) || die "building bench/report failed"
BENCH=$REPO/target/bench-report/release/berth-bench
export BERTH BENCH
mkdir -p "$BENCH_HOME/results"
export BENCH_RESULTS=$BENCH_HOME/results/results.jsonl

export BERTH_ROOT=$BENCH_WORK/berth-root BERTH_RUNROOT=$BENCH_WORK/berth-run
export BUSYBOX_TAR=$BENCH_WORK/busybox.tar
bash "$REPO/scripts/mk-busybox-rootfs.sh" "$BUSYBOX_TAR"
"$BERTH" import "$BUSYBOX_TAR" busybox-bench >/dev/null || die "berth import of the busybox base failed"
"$BERTH" save -o "$BENCH_WORK/busybox-image.tar" busybox-bench >/dev/null 2>&1 || warn "berth save failed (registry suite's peer will lack an image)"

needed=" "
for s in "${suites[@]}"; do needed+="$(suite_peers "$s") "; done
[[ $needed == *" runc "* ]] && setup_runc
[[ $needed == *" crun "* ]] && setup_crun
[[ $needed == *" podman "* ]] && setup_podman
[[ $needed == *" docker "* ]] && setup_docker
export PEERS RUNC_BUNDLE RUNC_ROOT CRUN_ROOT DOCKER DOCKER_HOST CONTAINERS_CONF CONTAINERS_STORAGE_CONF 2>/dev/null || true

# ------------------------------------------------------------------ suites
failed_suites=()
for s in "${suites[@]}"; do
  log "suite: $s"
  mkdir -p "$BENCH_WORK/suite-$s"
  if uses_area_script "$s"; then
    # An area's own script: same environment, its own scratch dir; it records through $BENCH.
    BENCH_WORK=$BENCH_WORK/suite-$s bash "$BENCH_HOME/$s.sh" || failed_suites+=("$s")
  else
    ( "suite_$s" ) || failed_suites+=("$s")
  fi
done

log "writing bench/results"
"$BENCH" report --out "$BENCH_HOME/results"
[ ${#failed_suites[@]} -eq 0 ] || die "suites that failed: ${failed_suites[*]}"
