#!/usr/bin/env bash
# Installs the system packages berth's tests use as real peers and base-image sources.
# Idempotent: does nothing when everything is present.
set -euo pipefail
need=()
for pair in busybox:busybox-static skopeo:skopeo umoci:umoci runc:runc \
            docker-registry:docker-registry htpasswd:apache2-utils ip:iproute2 nft:nftables \
            chromium:chromium curl:curl; do
  cmd=${pair%%:*}; pkg=${pair#*:}
  command -v "$cmd" >/dev/null 2>&1 || need+=("$pkg")
done
[ -e /bin/busybox ] || need+=(busybox-static)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
