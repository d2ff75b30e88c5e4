#!/usr/bin/env bash
# Registry benchmarks (issue 6), berth side by side with the distribution registry
# (`docker-registry`) and skopeo, in one run, on loopback:
#  1. manifest GET by tag, `wrk -t2 -c16` (target >= 20,000 req/s);
#  2. push and pull of a 200 MB pre-compressed (incompressible) layer, every blob hashed and
#     fsynced before it is acknowledged: berth push/pull vs skopeo with docker-registry, and vs
#     `dd conv=fdatasync` of the same bytes on the same disk (targets: 2x skopeo, 0.9x dd);
#  3. push with gzip of a ~200 MB uncompressed rootfs layer (target: 2x skopeo);
#  4. idle RSS of both servers (target <= 10 MB).
#
# Like with like: skopeo reads an OCI layout (berth reads its store), so nothing is converted on
# the way; its pull is `skopeo copy` to an OCI layout, the blob fsynced (`sync FILE`, as berth
# fsyncs its blobs) and unpacked with `tar -xzf` (berth's pull unpacks the layer; neither
# fsyncs the unpacked files), with the blob-only figure recorded too; for push with gzip the
# OCI layout holds the layer uncompressed, so skopeo compresses it on the way as berth does.
# Transfers run XFER_RUNS times (default 5), each against both registries started afresh on
# empty storage, tools alternating; the figures are medians with min and max.
#
#   sudo bench/registry.sh   (BENCH_WORK=dir for the scratch dir, DURATION=10 for wrk, XFER_RUNS=5)
#
# Under bench/run.sh the figures go to $BENCH_RESULTS through $BENCH; alone it prints them.
# Needs: wrk, skopeo, docker-registry, curl; root (import keeps owners). Starts two servers on
# 127.0.0.1 and stops them at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${DURATION:-10}
work=${BENCH_WORK:-$(mktemp -d /var/tmp/berth-registry-bench.XXXXXX)}
mkdir -p "$work"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$work"/{storage,dist,r1,r2,r3,run,skopeo-pull,skopeo-x,layer.bin,*.tar,*.tar.gz,oci-*,dd.out,xs-*,xd-*}
  [ -n "${BENCH_WORK:-}" ] || rm -rf "$work"
}
trap cleanup EXIT

if [ -z "${BERTH:-}" ]; then
  cargo build --release -q -p berth
  BERTH=$PWD/target/release/berth
fi
export DOCKER_CONFIG=$work/docker-config

record() { # metric tool unit value [target]
  local metric=$1 tool=$2 unit=$3 value=$4 target=${5:-}
  printf '  %-44s %-16s %10s %s\n' "$metric" "$tool" "$value" "$unit"
  if [ -n "${BENCH:-}" ]; then
    local hib=()
    [ "$unit" = "MB" ] || hib=(--higher-is-better)
    "$BENCH" record --suite registry --metric "$metric" --tool "$tool" --unit "$unit" "${hib[@]}" \
      --value "$value" --min "$value" --max "$value" ${target:+--target "$target"} >/dev/null || true
  fi
}
# metric tool unit target v1 v2 ...: the median, with min and max
record_runs() {
  local metric=$1 tool=$2 unit=$3 target=$4
  shift 4
  local stats
  stats=$(python3 -c 'import statistics,sys; v=[float(x) for x in sys.argv[1:]]; print(round(statistics.median(v),1), min(v), max(v))' "$@")
  local med=${stats%% *} rest=${stats#* }
  local lo=${rest%% *} hi=${rest#* }
  printf '  %-44s %-16s %10s %s (%s-%s, %d runs)\n' "$metric" "$tool" "$med" "$unit" "$lo" "$hi" $#
  if [ -n "${BENCH:-}" ]; then
    "$BENCH" record --suite registry --metric "$metric" --tool "$tool" --unit "$unit" --higher-is-better \
      --value "$med" --min "$lo" --max "$hi" ${target:+--target "$target"} >/dev/null || true
  fi
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rss_mb() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
mbps() { python3 -c "print(round($1/1e6/$2, 1))"; } # bytes seconds
now() { date +%s.%N; }
elapsed() { python3 -c "print($(now) - $1)"; }

# --- servers
bport=$(free_port)
"$BERTH" registry serve --addr "127.0.0.1:$bport" --storage "$work/storage" >"$work/berth-registry.log" 2>&1 &
pids+=($!); bpid=$!
dport=$(free_port)
cat >"$work/dist.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/dist
http:
  addr: 127.0.0.1:$dport
EOF
docker-registry serve "$work/dist.yml" >"$work/dist.log" 2>&1 &
pids+=($!); dpid=$!
for p in $bport $dport; do
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$p/v2/" >/dev/null && break; sleep 0.1; done
done

echo "== idle RSS"
sleep 1
record "idle RSS" berth MB "$(rss_mb $bpid)" "<=10"
record "idle RSS" distribution MB "$(rss_mb $dpid)"

# --- one small image on both, by plain HTTP (the same bytes everywhere)
cfg='{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
cfg_d=sha256:$(printf '%s' "$cfg" | sha256sum | cut -d' ' -f1)
manifest=$(printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[]}' "$cfg_d" "${#cfg}")
for p in $bport $dport; do
  # POST then PUT: the flow both registries speak.
  loc=$(curl -fsi -X POST "http://127.0.0.1:$p/v2/bench/small/blobs/uploads/" | awk -F': ' 'tolower($1)=="location"{print $2}' | tr -d '\r')
  case $loc in http*) ;; *) loc="http://127.0.0.1:$p$loc";; esac
  sep='?'; case $loc in *\?*) sep='&';; esac
  printf '%s' "$cfg" | curl -fs -X PUT --data-binary @- -H 'Content-Type: application/octet-stream' "$loc${sep}digest=$cfg_d" -o /dev/null
  printf '%s' "$manifest" | curl -fs -X PUT --data-binary @- \
    -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
    "http://127.0.0.1:$p/v2/bench/small/manifests/latest" -o /dev/null
done

echo "== manifest GET by tag, wrk -t2 -c16 -d${duration}s"
for tool in berth distribution; do
  p=$bport; [ $tool = distribution ] && p=$dport
  rps=$(wrk -t2 -c16 -d"${duration}s" -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    "http://127.0.0.1:$p/v2/bench/small/manifests/latest" | awk '/Requests\/sec/ {print $2}')
  record "manifest GET by tag" $tool req/s "$rps" ">=20000, 2x distribution"
done
record "idle RSS after load" berth MB "$(rss_mb $bpid)"

# --- transfers: both registries afresh for every run, on empty storage
xfer_runs=${XFER_RUNS:-5}
xpids=()
start_xfer_servers() { # run number
  local n=$1
  rm -rf "$work/xs-$n" "$work/xd-$n"
  xb=$(free_port)
  "$BERTH" registry serve --addr "127.0.0.1:$xb" --storage "$work/xs-$n" >>"$work/berth-registry.log" 2>&1 &
  xpids=($!)
  xd=$(free_port)
  sed -e "s|rootdirectory: .*|rootdirectory: $work/xd-$n|" -e "s|addr: .*|addr: 127.0.0.1:$xd|" \
    "$work/dist.yml" >"$work/dist-x.yml"
  docker-registry serve "$work/dist-x.yml" >>"$work/dist.log" 2>&1 &
  xpids+=($!)
  pids+=("${xpids[@]}")
  for p in $xb $xd; do
    for _ in $(seq 100); do curl -fs "http://127.0.0.1:$p/v2/" >/dev/null && break; sleep 0.1; done
  done
}
stop_xfer_servers() { # run number
  for p in "${xpids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$work/xs-$1" "$work/xd-$1"
}

echo "== transfers: 200 MB pre-compressed layer; push with gzip of an uncompressed layer ($xfer_runs runs)"
head -c 200000000 /dev/urandom >"$work/layer.bin"
tar -C "$work" -cf - layer.bin | gzip -1 >"$work/layer.tar.gz"
rm -f "$work/layer.bin"
size=$(stat -c %s "$work/layer.tar.gz")
# A rootfs-like ~200 MB uncompressed layer (real files: headers, Python, docs, libraries).
srcs=()
for d in usr/include usr/lib/python3.11 usr/lib/python3 usr/share/doc usr/lib/x86_64-linux-gnu; do
  [ -d "/$d" ] && srcs+=("$d")
done
tar -cf - --numeric-owner -C / "${srcs[@]}" 2>/dev/null | head -c 200000000 >"$work/rootfs.tar" || true
# head may cut mid-entry: re-pack a clean tar of what fits
mkdir -p "$work/oci-x" && tar -xf "$work/rootfs.tar" -C "$work/oci-x" 2>/dev/null || true
tar -cf "$work/rootfs.tar" -C "$work/oci-x" . && rm -rf "$work/oci-x"
usize=$(stat -c %s "$work/rootfs.tar")

b="--root $work/r1 --runroot $work/run"
g="--root $work/r3 --runroot $work/run"
"$BERTH" $b import "$work/layer.tar.gz" bench/big:1 >/dev/null
"$BERTH" $g import "$work/rootfs.tar" bench/gz:1 >/dev/null
# skopeo's sources: OCI layouts of the same bytes (berth's save writes an OCI layout too):
# the 200 MB layer gzip, as in berth's store; the rootfs layer uncompressed, so that skopeo
# compresses it on the push, as berth does.
"$BERTH" $b save -o "$work/big.tar" bench/big:1
"$BERTH" $g save -o "$work/gz.tar" bench/gz:1
mkdir -p "$work/oci-big" "$work/oci-gz"
tar -xf "$work/big.tar" -C "$work/oci-big" && tar -xf "$work/gz.tar" -C "$work/oci-gz"
rm -f "$work/big.tar" "$work/gz.tar"
grep -q 'vnd.oci.image.layer.v1.tar"' "$work"/oci-gz/blobs/sha256/* \
  || echo "warning: the OCI layout of the rootfs layer is not uncompressed" >&2

dd_v=() push_dd=() bpush=() spush=() bpull=() spull=() sblob=() bgz=() sgz=()
for i in $(seq "$xfer_runs"); do
  start_xfer_servers "$i"
  sync
  t=$(now); dd if="$work/layer.tar.gz" of="$work/dd.out" bs=1M conv=fdatasync status=none; s=$(elapsed "$t")
  rm -f "$work/dd.out"
  dd_v+=("$(mbps "$size" "$s")")

  for tool in berth skopeo; do
    # alternate which tool goes first
    [ $((i % 2)) = 0 ] && { [ $tool = berth ] && tool=skopeo || tool=berth; }
    sync
    if [ $tool = berth ]; then
      "$BERTH" $b tag bench/big:1 "127.0.0.1:$xb/bench/big:$i"
      t=$(now); "$BERTH" $b push -q "127.0.0.1:$xb/bench/big:$i" >/dev/null; s=$(elapsed "$t")
      "$BERTH" $b rmi "127.0.0.1:$xb/bench/big:$i" >/dev/null
      bpush+=("$(mbps "$size" "$s")")
    else
      t=$(now)
      skopeo copy -q --dest-tls-verify=false "oci:$work/oci-big:1" "docker://127.0.0.1:$xd/bench/big:$i"
      s=$(elapsed "$t")
      spush+=("$(mbps "$size" "$s")")
    fi
  done

  for tool in berth skopeo; do
    [ $((i % 2)) = 0 ] && { [ $tool = berth ] && tool=skopeo || tool=berth; }
    rm -rf "$work/r2" "$work/skopeo-pull" "$work/skopeo-x"
    sync
    if [ $tool = berth ]; then
      t=$(now); "$BERTH" --root "$work/r2" --runroot "$work/run" pull -q "127.0.0.1:$xb/bench/big:$i" >/dev/null; s=$(elapsed "$t")
      bpull+=("$(mbps "$size" "$s")")
    else
      t=$(now)
      skopeo copy -q --src-tls-verify=false "docker://127.0.0.1:$xd/bench/big:$i" "oci:$work/skopeo-pull:big"
      sync "$work"/skopeo-pull/blobs/sha256/*
      s1=$(elapsed "$t")
      layer=$(find "$work/skopeo-pull/blobs/sha256" -size +100M | head -n1)
      mkdir "$work/skopeo-x" && tar -xzf "$layer" -C "$work/skopeo-x"
      s=$(elapsed "$t")
      sblob+=("$(mbps "$size" "$s1")")
      spull+=("$(mbps "$size" "$s")")
    fi
  done
  rm -rf "$work/r2" "$work/skopeo-pull" "$work/skopeo-x"

  for tool in berth skopeo; do
    [ $((i % 2)) = 0 ] && { [ $tool = berth ] && tool=skopeo || tool=berth; }
    sync
    if [ $tool = berth ]; then
      "$BERTH" $g tag bench/gz:1 "127.0.0.1:$xb/bench/gz:$i"
      t=$(now); "$BERTH" $g push -q "127.0.0.1:$xb/bench/gz:$i" >/dev/null; s=$(elapsed "$t")
      "$BERTH" $g rmi "127.0.0.1:$xb/bench/gz:$i" >/dev/null
      bgz+=("$(mbps "$usize" "$s")")
    else
      t=$(now)
      skopeo copy -q --dest-tls-verify=false "oci:$work/oci-gz:1" "docker://127.0.0.1:$xd/bench/gz:$i"
      s=$(elapsed "$t")
      sgz+=("$(mbps "$usize" "$s")")
      if [ "$i" = 1 ] && ! curl -fs -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
        -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
        "http://127.0.0.1:$xd/v2/bench/gz/manifests/$i" | grep -q 'tar+gzip\|tar.gzip'; then
        echo "warning: skopeo did not compress the rootfs layer" >&2
      fi
    fi
  done
  # The disk again, at the end of the run: the run's push is compared with the faster of its
  # two dd figures (the disk's speed varies from minute to minute on a shared host).
  sync
  t=$(now); dd if="$work/layer.tar.gz" of="$work/dd.out" bs=1M conv=fdatasync status=none; s=$(elapsed "$t")
  rm -f "$work/dd.out"
  dd_end=$(mbps "$size" "$s")
  best_dd=$(python3 -c "print(max(${dd_v[-1]}, $dd_end))")
  push_dd+=("$(python3 -c "print(round(${bpush[-1]} / $best_dd, 3))")")
  if [ "$i" = "$xfer_runs" ]; then
    # the compressed sizes, to read the throughputs by
    bsz=$(find "$work/xs-$i" -type f -size +10M -printf '%s\n' | sort -n | head -n1)
    ssz=$(find "$work/xd-$i" -type f -size +10M -name data -printf '%s\n' | sort -n | head -n1)
    gz_sizes="berth $((bsz / 1000000)) MB, skopeo $((ssz / 1000000)) MB"
  fi
  stop_xfer_servers "$i"
done

record_runs "durable write (dd conv=fdatasync)" dd MB/s "" "${dd_v[@]}"
record_runs "push 200 MB gzip layer" berth MB/s "2x skopeo, 0.9x dd" "${bpush[@]}"
record_runs "push 200 MB gzip layer" skopeo MB/s "" "${spush[@]}"
record_runs "push 200 MB gzip layer" dd MB/s "" "${dd_v[@]}"
record_runs "push / dd in the same run (the faster of 2 dd)" berth x ">=0.9" "${push_dd[@]}"
record_runs "pull 200 MB gzip layer (+unpack)" berth MB/s "2x skopeo" "${bpull[@]}"
record_runs "pull 200 MB gzip layer (+unpack)" skopeo MB/s "" "${spull[@]}"
record_runs "pull 200 MB gzip layer, skopeo blob only (no unpack)" skopeo MB/s "" "${sblob[@]}"
record_runs "push with gzip ($((usize/1000000)) MB uncompressed)" berth MB/s "2x skopeo" "${bgz[@]}"
record_runs "push with gzip ($((usize/1000000)) MB uncompressed)" skopeo MB/s "" "${sgz[@]}"
echo "  (gzip layer sizes: ${gz_sizes:-unknown}; gzip -1 would be $(( $(gzip -1 -c "$work/rootfs.tar" | wc -c) / 1000000 )) MB)"
