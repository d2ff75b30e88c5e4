#!/usr/bin/env bash
# Builds kuard as one static binary (glibc, +crt-static) and puts it at demo/kuard/kuard,
# where demo/kuard/Dockerfile's `COPY kuard /kuard` finds it.
#   demo/kuard/build.sh [VERSION]     # VERSION (default 1) is shown on the page, in its colour
# Then: berth build -t kuard-amd64:1 demo/kuard, or for another version kept alongside,
#       berth build --build-arg KUARD=kuard-v2 -t kuard-amd64:2 demo/kuard
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
version=${1:-${KUARD_VERSION:-1}}
target=x86_64-unknown-linux-gnu
cd "$root"
# --target keeps RUSTFLAGS off build scripts and proc macros (they must stay dynamic) and
# puts the static binary in its own directory, apart from the workspace's normal builds.
KUARD_VERSION="$version" RUSTFLAGS="-C target-feature=+crt-static -C strip=symbols" \
  cargo build --release -p kuard --target "$target" ${CARGO_QUIET:+-q}
bin="$root/target/$target/release/kuard"
if ! file "$bin" | grep -qE 'statically linked|static-pie linked'; then
  echo "error: $bin is not statically linked" >&2
  exit 1
fi
# Copy then rename: a build reading the binary at the same time sees a whole one.
# `kuard` is the latest build; `kuard-vN` keeps each version for `--build-arg KUARD=kuard-vN`.
for name in kuard "kuard-v$version"; do
  install -m 0755 "$bin" "$here/.kuard.tmp.$$"
  mv -f "$here/.kuard.tmp.$$" "$here/$name"
done
echo "built $here/kuard and $here/kuard-v$version (version $version, $(stat -c %s "$here/kuard") bytes, static)"
