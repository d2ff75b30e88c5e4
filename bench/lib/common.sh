# Shared helpers of bench/run.sh (sourced). Logging, package installation, host snapshots.
# shellcheck shell=bash

b_bold=$'\e[1m'; b_red=$'\e[31m'; b_green=$'\e[32m'; b_reset=$'\e[0m'
if [ ! -t 2 ]; then b_bold=; b_red=; b_green=; b_reset=; fi

log() { printf '%s==> %s%s\n' "$b_bold" "$*" "$b_reset" >&2; }
warn() { printf '%swarning: %s%s\n' "$b_red" "$*" "$b_reset" >&2; }
die() { printf '%sbench: error: %s%s\n' "$b_red" "$*" "$b_reset" >&2; exit 1; }

# The Debian package that provides each command the benches use.
declare -A PKG_OF=(
  [hyperfine]=hyperfine [wrk]=wrk [runc]=runc [crun]=crun [podman]=podman [buildah]=buildah
  [skopeo]=skopeo [dockerd]=docker.io [containerd]=containerd [docker-registry]=docker-registry
  [curl]=curl [busybox]=busybox-static [nft]=nftables [ip]=iproute2 [iptables]=iptables
)

# install_missing CMD...: apt-get installs the packages of the commands that are missing.
# Never starts services: policy-rc.d refuses them for the length of the install.
install_missing() {
  local need=() c
  for c in "$@"; do
    command -v "$c" >/dev/null 2>&1 || need+=("${PKG_OF[$c]:-$c}")
  done
  [ ${#need[@]} -eq 0 ] && return 0
  log "installing from Debian: ${need[*]}"
  local made_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && made_policy=1
  fi
  local rc=0
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null 2>&1 || rc=$?
  [ "$made_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
  [ "$rc" = 0 ] || warn "apt-get install ${need[*]} failed (exit $rc); the peers they provide will be missing"
  return 0
}

# free_port: a free TCP port on loopback.
free_port() {
  local p
  for _ in $(seq 100); do
    p=$((20000 + RANDOM % 30000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return 0; }
  done
  die "no free port found"
}

# snapshot_host FILE: what a bench could leave behind (daemons, mounts, bridges, veths, netns,
# nft tables, iptables rules, peers' configs). Paths of other processes' temp dirs are left
# out so tests running at the same time do not count.
snapshot_host() {
  local out=$1
  {
    echo "## daemons"
    for d in dockerd containerd containerd-shim containerd-shim-runc-v2 podman conmon docker-registry registry buildah crun runc netavark aardvark-dns; do
      pgrep -x "$d" >/dev/null 2>&1 && echo "running: $d"
    done
    pgrep -f 'berth registry serve' >/dev/null 2>&1 && echo "running: berth registry serve"
    echo "## mounts"
    awk '{print $2" "$3}' /proc/self/mounts | grep -Ev '^/tmp/(\.tmp|tmp\.|berth-test|berth-chapter2)' \
      | grep -Ev '^/(proc|sys|dev)/? ' | sort
    echo "## bridges"
    ip -o link show type bridge 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' | sort
    echo "## veths"
    ip -o link show type veth 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' | grep -Ev '^(vb|vethb|bt)' | sort
    echo "## netns"
    ls /run/netns 2>/dev/null | sort
    echo "## nft tables"
    nft list tables 2>/dev/null | sort
    echo "## iptables"
    if command -v iptables-save >/dev/null 2>&1; then iptables-save 2>/dev/null | grep -Ev '^(#|:)' | sed 's/\[[0-9:]*\]//' | sort; fi
    echo "## configs"
    for f in /etc/containers/containers.conf /etc/containers/storage.conf /etc/docker/daemon.json \
             /etc/cni/net.d/* /etc/containers/networks/* /usr/sbin/policy-rc.d; do
      [ -e "$f" ] && sha256sum "$f"
    done
    echo "## cgroup layout"
    cgroup_layout
    echo "## cgroups"
    find /sys/fs/cgroup -mindepth 2 -maxdepth 2 -type d 2>/dev/null | grep -E '/(docker|libpod_parent|machine\.slice|berth|bench[^/]*)$' | sort
    echo "## state dirs"
    for d in /var/lib/docker /var/lib/containers/storage /run/docker /run/containers /var/run/docker.sock; do
      [ -e "$d" ] && echo "exists: $d"
    done
  } >"$out" 2>/dev/null || true
}

# cgroup_layout: the controllers the cgroup v2 mount holds, and the v1 hierarchy each
# controller is bound to (/proc/cgroups; 0: none, or the v2 mount). A bench that moves a
# controller (crun's setup, peers.sh) must hand it back: snapshot_host records this before and
# after, and a change shows as left behind. The hierarchy's cgroup count is left out: it moves.
cgroup_layout() {
  local v2=/sys/fs/cgroup/unified/cgroup.controllers
  [ -f "$v2" ] || v2=/sys/fs/cgroup/cgroup.controllers
  if [ -f "$v2" ]; then
    echo "cgroup v2 mount controllers: $(tr '\n' ' ' <"$v2" | sed 's/ *$//')"
  fi
  awk 'NR > 1 {print "cgroup controller " $1 ": v1 hierarchy " $2 ", enabled " $4}' /proc/cgroups
}

# check_cgroup_layout BEFORE_FILE: fails (1) naming each line that changed since BEFORE_FILE
# (the output of cgroup_layout then).
check_cgroup_layout() {
  local before=$1 now
  now=$(cgroup_layout)
  [ "$now" = "$(cat "$before")" ] && return 0
  warn "the host's cgroup layout is not as it was:"
  diff <(cat "$before") <(printf '%s\n' "$now") | grep '^[<>]' \
    | sed 's/^< /    was: /; s/^> /    now: /' >&2
  return 1
}
