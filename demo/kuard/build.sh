#!/usr/bin/env bash
# Builds kuard as one static binary (glibc, +crt-static) and puts it at demo/kuard/kuard,
# where demo/kuard/Dockerfile's `COPY kuard /kuard` finds it.
#   demo/kuard/build.sh [VERSION]     # VERSION (default 1) is shown on the page, in its colour
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
# Copy then rename: a build reading demo/kuard/kuard at the same time sees a whole binary.
install -m 0755 "$bin" "$here/.kuard.tmp.$$"
mv -f "$here/.kuard.tmp.$$" "$here/kuard"
echo "built $here/kuard (version $version, $(stat -c %s "$here/kuard") bytes, static)"
