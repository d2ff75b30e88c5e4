#!/usr/bin/env bash
# Builds berth in release mode and installs it: the binary, shell completion and man pages.
#   PREFIX=/usr/local bash scripts/install.sh      (the default prefix)
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=${PREFIX:-/usr/local}
cargo build --release -p berth
install -D -m 0755 target/release/berth "$DESTDIR$prefix/bin/berth"
bin="$DESTDIR$prefix/bin/berth"
install -d "$DESTDIR$prefix/share/bash-completion/completions" \
           "$DESTDIR$prefix/share/zsh/site-functions" \
           "$DESTDIR$prefix/share/fish/vendor_completions.d"
"$bin" completion bash > "$DESTDIR$prefix/share/bash-completion/completions/berth"
"$bin" completion zsh > "$DESTDIR$prefix/share/zsh/site-functions/_berth"
"$bin" completion fish > "$DESTDIR$prefix/share/fish/vendor_completions.d/berth.fish"
"$bin" _man "$DESTDIR$prefix/share/man/man1"
echo "installed $bin (completion for bash, zsh, fish; man pages in $prefix/share/man/man1)"
