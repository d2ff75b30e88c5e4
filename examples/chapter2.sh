#!/usr/bin/env bash
# The chapter "Creating and Running Containers", typed with berth instead of docker.
#
#   bash examples/chapter2.sh
#
# Builds berth (release) and the demo app (demo/kuard), then: builds the kuard image from the
# book's three-line Dockerfile, tags it for a registry on loopback, serves that registry with
# `berth registry serve`, pushes, removes the local image, pulls it back, runs it with a
# published port, checks it over HTTP, runs it again under --memory 200m --memory-swap 1G
# --cpu-shares 1024 and watches a 300 MB allocation get it OOM-killed, then stops, removes and
# prunes. Every command is printed before it runs. Everything lives under a temporary --root;
# on exit (success or not) the registry is stopped, containers removed and the temp dir deleted.
#
# Environment: BERTH=path (use this berth binary, skip its build), KUARD_BIN=path (use this
# kuard binary), KEEP_GOING=1 (report failing steps and go on: for trying it while verbs land),
# NO_BUILD=1 (use target/release/berth and demo/kuard/kuard as they are).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
keep_going=${KEEP_GOING:-0}
step="start"
failed_steps=()

bold=$'\e[1m'; red=$'\e[31m'; green=$'\e[32m'; dim=$'\e[2m'; reset=$'\e[0m'
if [ ! -t 1 ]; then bold=; red=; green=; dim=; reset=; fi

say() { printf '\n%s# %s%s\n' "$bold" "$*" "$reset"; }
die() {
  printf '%schapter2.sh: FAILED at step "%s": %s%s\n' "$red" "$step" "$*" "$reset" >&2
  exit 1
}
# A command line as a person would type it (arguments with spaces or specials in quotes).
show() {
  local a line=""
  for a in "$@"; do
    if [[ $a =~ [[:space:]\"\'\$\{\}\*\?\|\&\;\<\>\(\)] ]]; then line+=" '$a'"; else line+=" $a"; fi
  done
  printf '%s$%s%s\n' "$bold" "$line" "$reset"
}
# Runs a command after printing it the way a person would type it.
run() {
  show "$@"
  local rc=0
  "$@" || rc=$?
  if [ "$rc" -ne 0 ]; then
    if [ "$keep_going" = 1 ]; then
      printf '%s(step "%s" failed: exit status %s; KEEP_GOING=1, going on)%s\n' "$red" "$step" "$rc" "$reset" >&2
      failed_steps+=("$step")
      return 0
    fi
    die "'$*' exited with status $rc"
  fi
}
# Like run, but the command's output is captured into $out (and printed).
capture() {
  show "$@"
  local rc=0
  out=$("$@" 2>&1) || rc=$?
  [ -n "$out" ] && printf '%s\n' "$out"
  if [ "$rc" -ne 0 ]; then
    if [ "$keep_going" = 1 ]; then
      printf '%s(step "%s" failed: exit status %s; going on)%s\n' "$red" "$step" "$rc" "$reset" >&2
      failed_steps+=("$step")
      return 1
    fi
    die "'$*' exited with status $rc"
  fi
}
check() { # check "what" condition...
  local what=$1; shift
  if "$@"; then
    printf '%s  ok: %s%s\n' "$green" "$what" "$reset"
  elif [ "$keep_going" = 1 ]; then
    printf '%s  NOT OK: %s%s\n' "$red" "$what" "$reset" >&2
    failed_steps+=("$step")
  else
    die "check failed: $what"
  fi
}

[ "$(id -u)" = 0 ] || die "run me as root: containers need namespaces, mounts and cgroups"
command -v curl >/dev/null || die "curl is missing (apt-get install curl)"

# ---------------------------------------------------------------------------- build the tools
step="build berth and kuard"
say "Building berth (release) and the demo app"
if [ -n "${BERTH:-}" ]; then
  berth_bin=$BERTH
elif [ "${NO_BUILD:-0}" = 1 ]; then
  berth_bin=$repo/target/release/berth
else
  run cargo build --release -q -p berth --manifest-path "$repo/Cargo.toml"
  berth_bin=$repo/target/release/berth
fi
[ -x "$berth_bin" ] || die "no berth binary at $berth_bin"
if [ -n "${KUARD_BIN:-}" ]; then
  # The Dockerfile copies demo/kuard/kuard; KUARD_BIN may already be that file.
  [ "$KUARD_BIN" -ef "$repo/demo/kuard/kuard" ] || install -m 0755 "$KUARD_BIN" "$repo/demo/kuard/kuard"
elif [ "${NO_BUILD:-0}" != 1 ] || [ ! -x "$repo/demo/kuard/kuard" ]; then
  run env CARGO_QUIET=1 bash "$repo/demo/kuard/build.sh" 1
fi

# ---------------------------------------------------------------------------- a private world
work=$(mktemp -d /tmp/berth-chapter2.XXXXXX)
export BERTH_ROOT=$work/root BERTH_RUNROOT=$work/run
registry_pid=""
containers=(kuard)

cleanup() {
  local rc=$?
  set +e
  trap - ERR
  printf '\n%s# cleaning up%s\n' "$dim" "$reset"
  for c in "${containers[@]}"; do "$berth_bin" rm -f "$c" >/dev/null 2>&1; done
  if [ -n "$registry_pid" ] && kill -0 "$registry_pid" 2>/dev/null; then
    kill "$registry_pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$registry_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$registry_pid" 2>/dev/null
  fi
  # Anything still mounted under the temp dir (a berth bug) is unmounted before removal, deepest
  # first, so that rm never walks into a mounted file system.
  awk -v w="$work" '$2 ~ "^"w {print $2}' /proc/self/mounts | sort -r | while read -r m; do
    echo "warning: $m was still mounted" >&2
    umount -l "$m"
  done
  rm -rf --one-file-system "$work"
  if [ ${#failed_steps[@]} -gt 0 ]; then
    printf '%sfailed steps: %s%s\n' "$red" "$(printf '%s; ' "${failed_steps[@]}")" "$reset" >&2
    [ "$rc" = 0 ] && rc=1
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'die "interrupted"' INT TERM

# `berth` as a person types it; the temp roots come from BERTH_ROOT and BERTH_RUNROOT.
berth() { "$berth_bin" "$@"; }

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pick_port() { # pick_port PREFERRED
  local p=$1
  while ! port_free "$p"; do p=$((p + 1)); done
  echo "$p"
}
wait_http() { # wait_http URL SECONDS
  local i
  for i in $(seq $(($2 * 10))); do
    curl -fsS -o /dev/null --max-time 1 "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

reg_port=$(pick_port 5000)
web_port=$(pick_port 8080)
registry=localhost:$reg_port
remote=$registry/kuar-demo/kuard-amd64:1
echo "temp root: $work; registry port $reg_port; web port $web_port"

# ---------------------------------------------------------------------------- the chapter
step="build the image"
say "Build the kuard image from the book's three-line Dockerfile"
cat "$repo/demo/kuard/Dockerfile" | grep -v '^#'
cd "$repo/demo/kuard"
run berth build -t kuard-amd64:1 .
run berth images

step="registry serve"
say "Start a registry of our own on loopback"
printf '%s$ berth registry serve --addr 127.0.0.1:%s --storage %s &%s\n' "$bold" "$reg_port" "$work/registry" "$reset"
"$berth_bin" registry serve --addr "127.0.0.1:$reg_port" --storage "$work/registry" >"$work/registry.log" 2>&1 &
registry_pid=$!
if ! wait_http "http://127.0.0.1:$reg_port/v2/" 10; then
  cat "$work/registry.log" >&2
  die "the registry did not answer on 127.0.0.1:$reg_port/v2/ within 10 s"
fi
run curl -sS -i "http://127.0.0.1:$reg_port/v2/"

step="tag and push"
say "Tag the image for the registry and push it"
run berth tag kuard-amd64:1 "$remote"
run berth push "$remote"
run curl -sS "http://127.0.0.1:$reg_port/v2/kuar-demo/kuard-amd64/tags/list"

step="rmi and pull"
say "Remove the local copies and pull the image back"
run berth rmi "$remote"
run berth rmi kuard-amd64:1
run berth images
run berth pull "$remote"
run berth tag "$remote" kuard-amd64:1
run berth images

step="run with a published port"
say "Run kuard, publishing port 8080"
run berth run -d --name kuard --publish "$web_port:8080" kuard-amd64:1
capture berth ps || true
check "kuard answers on http://localhost:$web_port/" wait_http "http://localhost:$web_port/healthy" 10
run curl -sS "http://localhost:$web_port/healthy"
# The page is HTML for a browser; here only the lines that say where it runs.
printf '%s$ curl -s http://localhost:%s/ | grep -E %s%s\n' "$bold" "$web_port" "'id=\"(version|hostname|addresses)\"'" "$reset"
page=$(curl -sS "http://localhost:$web_port/" || true)
grep -E 'id="(version|hostname|addresses)"' <<<"$page" || true
shown=$(printf '%s' "$page" | grep -o '<b id="hostname">[^<]*' | sed 's/.*>//' || true)
check "the page shows version 1" grep -q 'version 1' <<<"$page"
check "the page shows the container's host name ($shown), not this machine's ($(hostname))" \
  test -n "$shown" -a "$shown" != "$(hostname)"
run berth logs kuard
run berth stop kuard
run berth rm kuard

step="resource limits"
say "Limit memory and CPU, then allocate past the limit"
run berth run -d --name kuard --publish "$web_port:8080" --memory 200m --memory-swap 1G --cpu-shares 1024 kuard-amd64:1
check "kuard answers" wait_http "http://localhost:$web_port/healthy" 10
if capture curl -sS "http://localhost:$web_port/mem/api"; then
  check "kuard sees the 200 MiB cgroup limit" grep -q '"limit": 209715200' <<<"$out"
fi
# Without swap on the host 300 MB is past the limit; with swap, --memory-swap 1G allows up to
# 1 GiB, so ask for more than that.
alloc=300M
if [ "$(awk '/SwapTotal/ {print $2}' /proc/meminfo)" != 0 ]; then alloc=1100M; fi
printf '%s$ curl -X POST "http://localhost:%s/mem/api/alloc?size=%s"%s\n' "$bold" "$web_port" "$alloc" "$reset"
curl -sS -X POST --max-time 30 "http://localhost:$web_port/mem/api/alloc?size=$alloc" || echo "(the connection dropped: the container was killed)"
if capture berth wait kuard; then
  check "exit status 137 (SIGKILL by the OOM killer)" test "$(tail -n1 <<<"$out")" = 137
fi
if capture berth inspect --format '{{.State.OOMKilled}} {{.State.ExitCode}}' kuard; then
  check "inspect shows OOMKilled true and ExitCode 137" test "$(tail -n1 <<<"$out")" = "true 137"
fi
run berth ps -a

step="clean up like the chapter"
say "Stop, remove, and remove the images"
run berth stop kuard
run berth rm kuard
run berth images
run berth rmi kuard-amd64:1
if capture berth images -q "$registry/kuar-demo/kuard-amd64"; then
  short=$(head -n1 <<<"$out" | cut -c1-12)
  run berth rmi "$short"
fi
# A rebuild onto a tag moves the tag and leaves the old image dangling (<none>): prune removes it.
run berth build -q --label rebuild=1 -t kuard-amd64:2 .
run berth build -q --label rebuild=2 -t kuard-amd64:2 .
run berth images
run berth image prune -f
run berth rmi kuard-amd64:2
run berth images
run berth ps -a

step="done"
if [ ${#failed_steps[@]} -eq 0 ]; then
  printf '\n%sThe chapter ran green with berth.%s\n' "$green" "$reset"
fi
