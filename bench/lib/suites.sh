# The built-in suites of bench/run.sh (sourced). A suite that has its own bench/<suite>.sh
# (written by the engineer who owns that area) runs that script instead; see bench/README.md.
# Each suite measures berth and every ready peer in one run, alternating tool by tool.
# shellcheck shell=bash

RUNS=${RUNS:-20}

# peers each suite wants set up
suite_peers() {
  case $1 in
    start) echo "runc crun podman docker" ;;
    publish) echo "podman docker" ;;
    memory) echo "podman docker registry" ;;
    import) echo "podman docker" ;;
    build) echo "podman docker" ;;
    registry) echo "registry" ;;
    *) echo "" ;;
  esac
}

suite_start() {
  local cmds=(--cmd "berth=$BERTH run --rm --network none busybox-bench true")
  has_peer runc && cmds+=(--cmd "runc=runc --root $RUNC_ROOT run -b $RUNC_BUNDLE bench-runc")
  has_peer crun && cmds+=(--cmd "crun=crun --root $CRUN_ROOT run -b $RUNC_BUNDLE bench-crun")
  has_peer podman && cmds+=(--cmd "podman=podman run --rm --network none localhost/busybox-bench true")
  has_peer docker && cmds+=(--cmd "docker=$DOCKER run --rm --network none busybox-bench true")
  "$BENCH" time --suite start --metric "run --rm IMAGE true (--network none)" --runs "$RUNS" --warmup 3 \
    --target "<=12, <runc, 10x podman, 10x docker" "${cmds[@]}"

  cmds=(--cmd "berth=$BERTH run --rm busybox-bench true")
  has_peer podman && cmds+=(--cmd "podman=podman run --rm localhost/busybox-bench true")
  has_peer docker && cmds+=(--cmd "docker=$DOCKER run --rm busybox-bench true")
  "$BENCH" time --suite start --metric "run --rm IMAGE true (default bridge)" --runs "$RUNS" --warmup 3 \
    --target "<=20" "${cmds[@]}"
}

suite_publish() {
  local httpd="httpd -f -p 80 -h /var/www" p args=() ip
  p=$(free_port)
  # podman (netavark) publishes with DNAT rules only, which loopback traffic does not pass
  # through; so every tool publishes on all addresses and is fetched at this host's own
  # address (the traffic stays on this machine).
  ip=$(ip -4 -o addr show scope global 2>/dev/null | awk '{sub("/.*", "", $4); print $4; exit}')
  ip=${ip:-127.0.0.1}
  args+=(--cmd "berth=$BERTH run -d --name bench-pub -p $p:80 busybox-bench $httpd"
         --cleanup "berth=$BERTH rm -f bench-pub")
  # One URL for all tools: each tool publishes the same host port in its turn.
  if has_peer podman; then
    args+=(--cmd "podman=podman run -d --name bench-pub -p $p:80 localhost/busybox-bench $httpd"
           --cleanup "podman=podman rm -f -t 0 bench-pub")
  fi
  if has_peer docker; then
    args+=(--cmd "docker=$DOCKER run -d --name bench-pub -p $p:80 busybox-bench $httpd"
           --cleanup "docker=$DOCKER rm -f bench-pub")
  fi
  "$BENCH" time --suite publish --metric "run -d -p to first HTTP 200" --runs "$RUNS" --warmup 2 \
    --http "http://$ip:$p/" --timeout 20 --target "<=30" "${args[@]}"
}

# RSS (MB) of a process tree rooted at PID, summed.
tree_rss_mb() {
  local pid=$1 total=0 p
  for p in $pid $(pgrep -P "$pid" 2>/dev/null); do
    total=$((total + $(awk '/VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)))
  done
  awk -v k="$total" 'BEGIN { printf "%.2f", k / 1024 }'
}

suite_memory() {
  local cmds=(--cmd "berth=$BERTH run --rm --network none busybox-bench true")
  has_peer podman && cmds+=(--cmd "podman=podman run --rm --network none localhost/busybox-bench true")
  has_peer docker && cmds+=(--cmd "docker=$DOCKER run --rm --network none busybox-bench true")
  "$BENCH" time --suite memory --metric "peak RSS of the CLI (run --rm true)" --rss --runs 5 --warmup 1 \
    --target "<=15" "${cmds[@]}"

  # The per-container monitor: the process that outlives `run -d` (not the container's own).
  if "$BERTH" run -d --name bench-mon --network none busybox-bench sleep 600 >/dev/null 2>"$BENCH_WORK/mon.err"; then
    sleep 1
    local cpid mon
    cpid=$("$BERTH" inspect -f '{{.State.Pid}}' bench-mon 2>/dev/null || true)
    mon=$( [ -n "$cpid" ] && awk '/^PPid/ {print $2}' "/proc/$cpid/status" 2>/dev/null || true)
    if [ -n "$mon" ] && [ "$mon" != 1 ]; then
      "$BENCH" record --suite memory --metric "per-container monitor RSS" --tool berth --unit MB \
        --value "$(awk '/VmRSS/ {printf "%.2f", $2/1024}' "/proc/$mon/status")" --target "<=2"
    else
      "$BENCH" record --suite memory --metric "per-container monitor RSS" --tool berth --unit MB \
        --error "could not find the monitor (container pid '$cpid', parent '$mon')"
    fi
    "$BERTH" rm -f bench-mon >/dev/null 2>&1 || true
  else
    "$BENCH" record --suite memory --metric "per-container monitor RSS" --tool berth --unit MB \
      --error "run -d failed: $(tail -n1 "$BENCH_WORK/mon.err")"
  fi
  if has_peer podman; then
    podman run -d --name bench-mon --network none localhost/busybox-bench sleep 600 >/dev/null 2>&1 && sleep 1
    local conmon
    conmon=$(pgrep -f "conmon .*-n bench-mon" | head -n1 || true)
    [ -n "$conmon" ] && "$BENCH" record --suite memory --metric "per-container monitor RSS" --tool podman \
      --unit MB --value "$(awk '/VmRSS/ {printf "%.2f", $2/1024}' "/proc/$conmon/status")"
    podman rm -f -t 0 bench-mon >/dev/null 2>&1 || true
  fi
  if has_peer docker; then
    "$DOCKER" run -d --name bench-mon --network none busybox-bench sleep 600 >/dev/null 2>&1 && sleep 1
    local cid shim
    cid=$("$DOCKER" inspect -f '{{.Id}}' bench-mon 2>/dev/null || true)
    shim=$( [ -n "$cid" ] && pgrep -f "containerd-shim-runc-v2 .*-id $cid" | head -n1 || true)
    [ -n "$shim" ] && "$BENCH" record --suite memory --metric "per-container monitor RSS" --tool docker \
      --unit MB --value "$(awk '/VmRSS/ {printf "%.2f", $2/1024}' "/proc/$shim/status")"
    "$DOCKER" rm -f bench-mon >/dev/null 2>&1 || true
  fi

  # Registries, idle after start.
  local p pid
  p=$(free_port)
  "$BERTH" registry serve --addr "127.0.0.1:$p" --storage "$BENCH_WORK/reg-berth" >"$BENCH_WORK/reg-berth.log" 2>&1 &
  pid=$!
  if "$BENCH" wait-http "http://127.0.0.1:$p/v2/" --timeout 10 2>/dev/null; then
    sleep 1
    "$BENCH" record --suite memory --metric "registry server idle RSS" --tool berth --unit MB \
      --value "$(tree_rss_mb "$pid")" --target "<=10, 1x distribution"
  else
    "$BENCH" record --suite memory --metric "registry server idle RSS" --tool berth --unit MB \
      --error "berth registry serve did not answer: $(tail -n1 "$BENCH_WORK/reg-berth.log")"
  fi
  kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true
  if command -v docker-registry >/dev/null; then
    p=$(free_port)
    cat >"$BENCH_WORK/distribution.yml" <<EOF
version: 0.1
log: { level: error }
storage: { filesystem: { rootdirectory: $BENCH_WORK/reg-dist } }
http: { addr: 127.0.0.1:$p }
EOF
    docker-registry serve "$BENCH_WORK/distribution.yml" >"$BENCH_WORK/reg-dist.log" 2>&1 &
    pid=$!
    if "$BENCH" wait-http "http://127.0.0.1:$p/v2/" --timeout 10 2>/dev/null; then
      sleep 1
      "$BENCH" record --suite memory --metric "registry server idle RSS" --tool distribution --unit MB \
        --value "$(tree_rss_mb "$pid")"
    fi
    kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true
  fi

  # The demo app, idle, and its binary and image sizes (issue 7's figures).
  if [ -x "$REPO/demo/kuard/kuard" ]; then
    p=$(free_port)
    "$REPO/demo/kuard/kuard" --address "127.0.0.1:$p" 2>/dev/null &
    pid=$!
    "$BENCH" wait-http "http://127.0.0.1:$p/healthy" --timeout 5 >/dev/null 2>&1 && sleep 0.5
    "$BENCH" record --suite memory --metric "kuard idle RSS" --tool berth --unit MB \
      --value "$(tree_rss_mb "$pid")" --target "<=5"
    kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true
    "$BENCH" record --suite memory --metric "kuard binary size" --tool berth --unit MB \
      --value "$(stat -c %s "$REPO/demo/kuard/kuard" | awk '{printf "%.2f", $1/1048576}')" --target "<=5"
  fi
}

suite_import() {
  # A 200 MB rootfs tar: the busybox base plus 200 files of 1 MiB of incompressible data.
  local tarfile=$BENCH_WORK/rootfs-200m.tar d=$BENCH_WORK/rootfs-200m
  if [ ! -f "$tarfile" ]; then
    mkdir -p "$d/data"
    tar -C "$d" -xf "$BUSYBOX_TAR"
    for i in $(seq 200); do head -c 1048576 /dev/urandom >"$d/data/blob$i"; done
    tar -C "$d" -cf "$tarfile" .
    rm -rf "$d"
  fi
  local out=$BENCH_WORK/import-out
  local cmds=(--cmd "berth=$BERTH --root $out/berth --runroot $out/berth-run import $tarfile bench-import"
              --prepare "berth=rm -rf $out/berth $out/berth-run"
              --cmd "tar=tar -C $out/tar -xf $tarfile"
              --prepare "tar=rm -rf $out/tar && mkdir -p $out/tar")
  has_peer podman && cmds+=(--cmd "podman=podman import -q $tarfile localhost/bench-import"
                            --prepare "podman=podman rmi -f localhost/bench-import || true")
  has_peer docker && cmds+=(--cmd "docker=$DOCKER import $tarfile bench-import"
                            --prepare "docker=$DOCKER rmi -f bench-import || true")
  mkdir -p "$out"
  "$BENCH" time --suite import --metric "import a 200 MB rootfs tar" --runs 5 --warmup 1 --timeout 120 \
    --target "0.667x tar" "${cmds[@]}"
  rm -rf "$out"
}

suite_build() {
  local ctx=$BENCH_WORK/build-ctx
  mkdir -p "$ctx"
  head -c $((20 * 1048576)) /dev/urandom >"$ctx/big.bin"
  cat >"$ctx/Dockerfile" <<'EOF'
FROM busybox-bench
COPY big.bin /big.bin
RUN echo hi > /x
ENTRYPOINT ["/bin/sh"]
EOF
  local cmds=(--cmd "berth=$BERTH build -q --no-cache -t bench-build $ctx")
  has_peer podman && cmds+=(--cmd "podman=podman build -q --no-cache -t bench-build $ctx")
  has_peer docker && cmds+=(--cmd "docker=DOCKER_BUILDKIT=1 $DOCKER build -q --no-cache -t bench-build $ctx")
  "$BENCH" time --suite build --metric "reference build, cold (--no-cache)" --runs 10 --warmup 1 --timeout 120 \
    --target "<=250" "${cmds[@]}"
  cmds=(--cmd "berth=$BERTH build -q -t bench-build $ctx")
  has_peer podman && cmds+=(--cmd "podman=podman build -q -t bench-build $ctx")
  has_peer docker && cmds+=(--cmd "docker=DOCKER_BUILDKIT=1 $DOCKER build -q -t bench-build $ctx")
  "$BENCH" time --suite build --metric "reference build, warm (all cached)" --runs 10 --warmup 2 --timeout 120 \
    --target "<=20" "${cmds[@]}"
}

suite_registry() {
  command -v wrk >/dev/null || { warn "wrk missing: registry suite skipped"; return 0; }
  local p pid dp dpid
  p=$(free_port)
  "$BERTH" registry serve --addr "127.0.0.1:$p" --storage "$BENCH_WORK/reg-berth2" >"$BENCH_WORK/reg-berth2.log" 2>&1 &
  pid=$!
  local accept='Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json'
  if "$BENCH" wait-http "http://127.0.0.1:$p/v2/" --timeout 10 2>/dev/null \
     && "$BERTH" tag busybox-bench "localhost:$p/bench/busybox:1" \
     && "$BERTH" push "localhost:$p/bench/busybox:1" >/dev/null 2>&1; then
    local rps
    rps=$(wrk -t2 -c16 -d5s -H "$accept" "http://127.0.0.1:$p/v2/bench/busybox/manifests/1" | awk '/Requests\/sec/ {print $2}')
    "$BENCH" record --suite registry --metric "manifest GET by tag (wrk -t2 -c16)" --tool berth --unit req/s \
      --higher-is-better --value "${rps:-0}" --target ">=20000"
  else
    "$BENCH" record --suite registry --metric "manifest GET by tag (wrk -t2 -c16)" --tool berth --unit req/s \
      --higher-is-better --error "could not serve and push: $(tail -n1 "$BENCH_WORK/reg-berth2.log")"
  fi
  if command -v docker-registry >/dev/null && command -v skopeo >/dev/null; then
    dp=$(free_port)
    cat >"$BENCH_WORK/distribution2.yml" <<EOF
version: 0.1
log: { level: error }
storage: { filesystem: { rootdirectory: $BENCH_WORK/reg-dist2 } }
http: { addr: 127.0.0.1:$dp }
EOF
    docker-registry serve "$BENCH_WORK/distribution2.yml" >"$BENCH_WORK/reg-dist2.log" 2>&1 &
    dpid=$!
    if "$BENCH" wait-http "http://127.0.0.1:$dp/v2/" --timeout 10 2>/dev/null \
       && skopeo copy -q --dest-tls-verify=false "docker-archive:$BENCH_WORK/busybox-image.tar" \
            "docker://127.0.0.1:$dp/bench/busybox:1" >/dev/null 2>&1; then
      local drps
      drps=$(wrk -t2 -c16 -d5s -H "$accept" "http://127.0.0.1:$dp/v2/bench/busybox/manifests/1" | awk '/Requests\/sec/ {print $2}')
      "$BENCH" record --suite registry --metric "manifest GET by tag (wrk -t2 -c16)" --tool distribution \
        --unit req/s --higher-is-better --value "${drps:-0}"
    else
      "$BENCH" record --suite registry --metric "manifest GET by tag (wrk -t2 -c16)" --tool distribution \
        --unit req/s --higher-is-better --error "could not set up docker-registry with an image"
    fi
    kill "$dpid" 2>/dev/null; wait "$dpid" 2>/dev/null || true
  fi
  kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true
}
