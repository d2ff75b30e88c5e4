#!/usr/bin/env bash
# Layer apply speed: berth-oci's secure apply of a ~200 MB rootfs tar vs `tar -x` of the same
# file into the same disk (target: within 1.5x), and gzip / zstd apply throughput (one pass:
# decompression streams into extraction).
#   bench/oci-apply.sh            (BENCH_DIR=... to choose the scratch dir, RUNS=5)
#   bench/run.sh oci-apply        (records through $BENCH into bench/results, like every suite)
# Needs: hyperfine (alone) or $BENCH (under run.sh), tar, gzip, zstd. Run as root to compare
# like with like (owners kept).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-5}
work=${BENCH_DIR:-${BENCH_WORK:-$(mktemp -d /var/tmp/berth-oci-bench.XXXXXX)}}
mkdir -p "$work"
cleanup() { rm -rf "$work/x"; [ -n "${BENCH_DIR:-}${BENCH_WORK:-}" ] || rm -rf "$work"; }
trap cleanup EXIT

cargo build --release -q -p berth-oci --example oci-apply
bin=$PWD/target/release/examples/oci-apply

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
gzip -6 -c "$tarball" > "$tarball.gz"
zstd -q -3 -f "$tarball" -o "$tarball.zst"
mb=$(( $(stat -c %s "$tarball") / 1000000 ))
echo "rootfs tar: ${mb} MB, $(tar -tf "$tarball" | wc -l) entries; gzip $(( $(stat -c %s "$tarball.gz") / 1000000 )) MB, zstd $(( $(stat -c %s "$tarball.zst") / 1000000 )) MB"

prep="rm -rf $work/x && mkdir $work/x"
if [ -n "${BENCH:-}" ]; then
  # Under bench/run.sh: the shared tool alternates the tools run by run and records.
  for kind in tar gz zst; do
    f=$tarball; taropt="-xpf"
    [ "$kind" = gz ] && f=$tarball.gz && taropt="-xzpf"
    [ "$kind" = zst ] && f=$tarball.zst && taropt="--zstd -xpf"
    "$BENCH" time --suite oci-apply --metric "apply ${mb} MB rootfs layer (.$kind)" --runs "$runs" \
      --target "0.67x tar" \
      --prepare "berth=$prep" --prepare "tar=$prep" \
      --cmd "berth=$bin apply $f $work/x" \
      --cmd "tar=tar $taropt $f --numeric-owner -C $work/x"
  done
  rm -rf "$work/x" && mkdir "$work/x"
  mbs=$("$bin" apply "$tarball.gz" "$work/x" | sed -n 's/.* (\([0-9.]*\) MB\/s of tar.*/\1/p')
  "$BENCH" record --suite oci-apply --metric "gzip layer apply (uncompressed MB/s)" --tool berth \
    --unit MB/s --higher-is-better --value "$mbs"
  exit 0
fi
hyperfine --style basic --warmup 1 --runs "$runs" --prepare "$prep" \
  --export-markdown "$work/results.md" \
  -n "berth-oci apply (tar)" "$bin apply $tarball $work/x" \
  -n "tar -x (tar)" "tar -xpf $tarball --numeric-owner -C $work/x" \
  -n "berth-oci apply (gzip)" "$bin apply $tarball.gz $work/x" \
  -n "tar -xz (gzip)" "tar -xzpf $tarball.gz --numeric-owner -C $work/x" \
  -n "berth-oci apply (zstd)" "$bin apply $tarball.zst $work/x" \
  -n "tar --zstd -x (zstd)" "tar --zstd -xpf $tarball.zst --numeric-owner -C $work/x"
cat "$work/results.md"
echo
# The reverse direction: a deterministic layer tar of the applied tree vs `tar -c`.
rm -rf "$work/x" && mkdir "$work/x" && "$bin" apply "$tarball" "$work/x" >/dev/null
hyperfine --style basic --warmup 1 --runs "$runs" --export-markdown "$work/results-write.md" \
  -n "berth-oci write_dir_tar" "$bin tar $work/x $work/out.tar" \
  -n "tar -c" "tar -cf $work/out.tar --numeric-owner -C $work/x ."
cat "$work/results-write.md"
echo
echo "one more run of each berth-oci apply, with its own MB/s figures:"
for f in "$tarball" "$tarball.gz" "$tarball.zst"; do
  rm -rf "$work/x" && mkdir "$work/x"
  "$bin" apply "$f" "$work/x" | sed -n 1p
done
