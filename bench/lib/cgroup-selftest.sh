#!/usr/bin/env bash
# Self-test of the cgroup handling of bench/run.sh (peers.sh: empty_cgroup_v2 and its undo;
# common.sh: cgroup_layout, check_cgroup_layout), without running a benchmark:
#   bash bench/lib/cgroup-selftest.sh        (root; a hybrid host whose v2 mount holds a
#                                             controller, e.g. hugetlb in /sys/fs/cgroup/unified)
# It moves the v2 mount's controllers to v1 hierarchies as crun's setup does, checks that the
# change is seen, makes a child cgroup with a process in it as another engine would, tears
# down, and checks that the host's layout is exactly as before; then that the move is refused
# while an engine that ran before the bench runs. Exit 0 when all held.
set -u
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=common.sh
source "$here/common.sh"
# shellcheck source=peers.sh
source "$here/peers.sh"
[ "$(id -u)" = 0 ] || die "run as root"
v2=/sys/fs/cgroup/unified/cgroup.controllers
[ -n "$(cat "$v2" 2>/dev/null)" ] || { log "the cgroup v2 mount holds no controller here: nothing to move, nothing to test"; exit 0; }
BENCH_WORK=$(mktemp -d /tmp/berth-bench-cgtest.XXXXXX)
export BENCH_WORK
trap 'rm -rf "$BENCH_WORK"' EXIT
fail=0
c=$(awk '{print $1}' "$v2")
snapshot_host "$BENCH_WORK/host-before.txt"
cgroup_layout >"$BENCH_WORK/layout-before.txt"
empty_cgroup_v2 || die "refused: $CGROUP_ERR"
if check_cgroup_layout "$BENCH_WORK/layout-before.txt" 2>/dev/null; then
  warn "the move was not seen by check_cgroup_layout"; fail=1
fi
mkdir "$BENCH_WORK/cgroup-v1-$c/other-engine"
sleep 30 & sp=$!
echo "$sp" >"$BENCH_WORK/cgroup-v1-$c/other-engine/cgroup.procs"
peers_teardown
kill "$sp" 2>/dev/null
check_cgroup_layout "$BENCH_WORK/layout-before.txt" || fail=1
printf '## daemons\nrunning: dockerd\n## mounts\n' >"$BENCH_WORK/fake-before.txt"
if cgroup_move_is_undoable "$BENCH_WORK/fake-before.txt"; then
  warn "the move was not refused while a dockerd ran"; fail=1
fi
[ "$fail" = 0 ] && log "cgroup self-test passed: the layout is as it was ($(cat "$v2"))"
exit "$fail"
