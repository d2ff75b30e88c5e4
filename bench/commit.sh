#!/usr/bin/env bash
# `commit` of a container with 200 MB of changes vs berth's own `import` of a 200 MB tar of
# the same files (issue 14; target: commit <= 1.2x import). Runs alternate; each commit or
# import is removed (untimed) before the next.
#
#   sudo bench/commit.sh      # RUNS=5 by default; BERTH=path to use a given binary; SIZE_MB=200
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-5}
SIZE_MB=${SIZE_MB:-200}
[ "$(id -u)" = 0 ] || { echo "error: run as root" >&2; exit 1; }
if [ -z "${BERTH:-}" ]; then
  (cd "$REPO" && cargo build --release -q -p berth)
  BERTH="$REPO/target/release/berth"
fi
work=$(mktemp -d /var/tmp/berth-bench-commit.XXXXXX)
B=("$BERTH" --root "$work/root" --runroot "$work/run")
cleanup() {
  for id in $("${B[@]}" ps -a -q --no-trunc 2>/dev/null); do "${B[@]}" rm -f "$id" >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT

bash "$REPO/scripts/mk-busybox-rootfs.sh" "$work/busybox.tar"
"${B[@]}" import "$work/busybox.tar" busybox:latest >/dev/null
"${B[@]}" run -d --name cm --network none busybox sleep 1000000 >/dev/null
pid=$("${B[@]}" inspect -f '{{.State.Pid}}' cm)
# The changes: half in one file, half in 1 MiB files, written into the running container.
ch=/proc/$pid/root/changes
mkdir -p "$ch/many"
head -c $((SIZE_MB / 2))M /dev/urandom >"$ch/one"
for i in $(seq 1 $((SIZE_MB / 2))); do head -c 1M /dev/urandom >"$ch/many/f$i"; done
tar -C /proc/$pid/root -cf "$work/changes.tar" changes
echo "changes: $(du -sh --apparent-size "$ch" | cut -f1), tar $(( $(stat -c %s "$work/changes.tar") / 1000000 )) MB" >&2

now() { date +%s%N; }
secs() { echo "scale=3; ($2 - $1) / 1000000000" | bc; }
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2}'; }
c=(); i=()
for r in $(seq 1 "$RUNS"); do
  sync
  t0=$(now); "${B[@]}" commit cm snap:$r >/dev/null; t1=$(now)
  c+=("$(secs "$t0" "$t1")")
  "${B[@]}" rmi snap:$r >/dev/null; sync
  t0=$(now); "${B[@]}" import "$work/changes.tar" imp:$r >/dev/null; t1=$(now)
  i+=("$(secs "$t0" "$t1")")
  "${B[@]}" rmi imp:$r >/dev/null
done
cm=$(printf '%s\n' "${c[@]}" | median); im=$(printf '%s\n' "${i[@]}" | median)
echo
echo "commit of ${SIZE_MB} MB of changes vs import of the same as a tar, median of $RUNS, seconds:"
echo "  commit  $cm  (${c[*]})"
echo "  import  $im  (${i[*]})"
printf '  commit / import: %.2fx (target <= 1.2x)\n' "$(echo "$cm / $im" | bc -l)"
