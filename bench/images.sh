#!/usr/bin/env bash
# Image store benchmarks (issue 2):
#  1. `berth import` of a ~200 MB rootfs tar vs `tar -x` of the same file into the same disk
#     (target: within 1.5x). import also hashes the stream and stores it as a blob, fsynced.
#  2. `berth images` with 1,000 images (target: under 50 ms).
#   bench/images.sh            (BENCH_DIR=... to choose the scratch dir, RUNS=5, N_IMAGES=1000)
# Needs: hyperfine, tar. Run as root to compare like with like (owners kept).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-5}
n_images=${N_IMAGES:-1000}
work=${BENCH_DIR:-$(mktemp -d /var/tmp/berth-images-bench.XXXXXX)}
mkdir -p "$work"
cleanup() { rm -rf "$work/x" "$work/root" "$work/many"; [ -n "${BENCH_DIR:-}" ] || rm -rf "$work"; }
trap cleanup EXIT

if [ -z "${BERTH:-}" ]; then
  cargo build --release -q -p berth
  BERTH=$PWD/target/release/berth
fi

tarball=$work/rootfs.tar
if [ ! -s "$tarball" ]; then
  # A rootfs-like mix (about 200 MB): many small headers and Python sources, some shared
  # objects. Whatever of these exists on the host is taken.
  srcs=()
  for d in usr/include usr/lib/python3.11 usr/lib/python3; do
    [ -d "/$d" ] && srcs+=("$d")
  done
  tar -cf "$tarball" --numeric-owner -C / "${srcs[@]}"
fi
mb=$(( $(stat -c %s "$tarball") / 1000000 ))
echo "rootfs tar: ${mb} MB, $(tar -tf "$tarball" | wc -l) entries"

echo "== import vs tar -x"
hyperfine --style basic --warmup 1 --runs "$runs" \
  --export-markdown "$work/import.md" \
  -n "tar -x" --prepare "rm -rf $work/x && mkdir $work/x && sync" \
  "tar -xpf $tarball --numeric-owner -C $work/x" \
  -n "berth import" --prepare "rm -rf $work/root && sync" \
  "$BERTH --root $work/root import $tarball bench/rootfs:1"
cat "$work/import.md"

echo "== berth images with $n_images images"
many=$work/many
rm -rf "$many"
tiny=$work/tiny.tar
mkdir -p "$work/tinydir" && echo hi > "$work/tinydir/hello" && tar -cf "$tiny" -C "$work/tinydir" .
start=$(date +%s.%N)
seq "$n_images" | xargs -P 2 -I{} "$BERTH" --root "$many" import "$tiny" "bench/many:{}" >/dev/null
echo "created $n_images images in $(echo "$(date +%s.%N) - $start" | bc) s"
count=$("$BERTH" --root "$many" images -q | wc -l)
echo "berth images lists $count rows"
hyperfine --style basic --warmup 3 --runs 20 --export-markdown "$work/images.md" \
  -n "berth images ($n_images)" "$BERTH --root $many images" \
  -n "berth images -q ($n_images)" "$BERTH --root $many images -q"
cat "$work/images.md"
