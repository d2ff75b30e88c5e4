#!/usr/bin/env bash
# Registry benchmarks (issue 6), berth side by side with the distribution registry
# (`docker-registry`) and skopeo, in one run, on loopback:
#  1. manifest GET by tag, `wrk -t2 -c16` (target >= 20,000 req/s);
#  2. push and pull of a 200 MB pre-compressed (incompressible) layer, every blob hashed and
#     fsynced before it is acknowledged: berth push/pull vs skopeo with docker-registry, and vs
#     `dd conv=fdatasync` on the same disk (targets: 2x skopeo, 0.9x dd);
#  3. push with gzip of a ~200 MB uncompressed rootfs layer (target: 2x skopeo);
#  4. idle RSS of both servers (target <= 10 MB).
#
#   sudo bench/registry.sh          (BENCH_WORK=dir to choose the scratch dir, DURATION=10 for wrk)
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
  rm -rf "$work"/{storage,dist,r1,r2,r3,run,skopeo-pull,layer.bin,*.tar,*.tar.gz,oci-*,dd.out}
  [ -n "${BENCH_WORK:-}" ] || rm -rf "$work"
}
trap cleanup EXIT

if [ -z "${BERTH:-}" ]; then
  cargo build --release -q -p berth
  BERTH=$PWD/target/release/berth
fi
export DOCKER_CONFIG=$work/docker-config

record() { # suite metric tool unit value [target]
  local metric=$1 tool=$2 unit=$3 value=$4 target=${5:-}
  printf '  %-44s %-16s %10s %s\n' "$metric" "$tool" "$value" "$unit"
  if [ -n "${BENCH:-}" ]; then
    local hib=()
    [ "$unit" = "MB" ] || hib=(--higher-is-better)
    "$BENCH" record --suite registry --metric "$metric" --tool "$tool" --unit "$unit" "${hib[@]}" \
      --value "$value" --min "$value" --max "$value" ${target:+--target "$target"} >/dev/null || true
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

# --- 200 MB pre-compressed layer
echo "== 200 MB pre-compressed layer"
head -c 200000000 /dev/urandom >"$work/layer.bin"
tar -C "$work" -cf - layer.bin | gzip -1 >"$work/layer.tar.gz"
size=$(stat -c %s "$work/layer.tar.gz")
sync
t=$(now); dd if="$work/layer.tar.gz" of="$work/dd.out" bs=1M conv=fdatasync status=none; s=$(elapsed "$t")
rm -f "$work/dd.out"
record "durable write (dd conv=fdatasync)" dd MB/s "$(mbps "$size" "$s")"

b="--root $work/r1 --runroot $work/run"
ref=127.0.0.1:$bport/bench/big:1
"$BERTH" $b import "$work/layer.tar.gz" "$ref" >/dev/null
sync
t=$(now); "$BERTH" $b push -q "$ref" >/dev/null; s=$(elapsed "$t")
record "push 200 MB gzip layer" berth MB/s "$(mbps "$size" "$s")" "2x skopeo, 0.9x dd"
sync
t=$(now); "$BERTH" --root "$work/r2" --runroot "$work/run" pull -q "$ref" >/dev/null; s=$(elapsed "$t")
record "pull 200 MB gzip layer (+unpack)" berth MB/s "$(mbps "$size" "$s")" "2x skopeo"

# skopeo with distribution: the same image, from a docker-archive that berth saves.
"$BERTH" $b save -o "$work/big.tar" "$ref"
sync
t=$(now)
skopeo copy -q --dest-tls-verify=false "docker-archive:$work/big.tar" "docker://127.0.0.1:$dport/bench/big:1"
s=$(elapsed "$t")
record "push 200 MB gzip layer" skopeo MB/s "$(mbps "$size" "$s")"
sync
t=$(now)
skopeo copy -q --src-tls-verify=false "docker://127.0.0.1:$dport/bench/big:1" "oci:$work/skopeo-pull:big"
sync; s=$(elapsed "$t")
record "pull 200 MB gzip layer (+unpack)" skopeo MB/s "$(mbps "$size" "$s")"

# --- gzip on push: a rootfs-like ~200 MB uncompressed layer
echo "== push with gzip of an uncompressed layer"
srcs=()
for d in usr/include usr/lib/python3.11 usr/lib/python3 usr/share/doc usr/lib/x86_64-linux-gnu; do
  [ -d "/$d" ] && srcs+=("$d")
done
tar -cf - --numeric-owner -C / "${srcs[@]}" 2>/dev/null | head -c 200000000 >"$work/rootfs.tar" || true
# head may cut mid-entry: re-pack a clean tar of what fits
mkdir -p "$work/oci-x" && tar -xf "$work/rootfs.tar" -C "$work/oci-x" 2>/dev/null || true
tar -cf "$work/rootfs.tar" -C "$work/oci-x" . && rm -rf "$work/oci-x"
usize=$(stat -c %s "$work/rootfs.tar")
gref=127.0.0.1:$bport/bench/gz:1
"$BERTH" --root "$work/r3" --runroot "$work/run" import "$work/rootfs.tar" "$gref" >/dev/null
sync
t=$(now); "$BERTH" --root "$work/r3" --runroot "$work/run" push -q "$gref" >/dev/null; s=$(elapsed "$t")
record "push with gzip ($((usize/1000000)) MB uncompressed)" berth MB/s "$(mbps "$usize" "$s")" "2x skopeo"
"$BERTH" --root "$work/r3" --runroot "$work/run" save -o "$work/gz.tar" "$gref"
# an uncompressed OCI layout for skopeo to compress on the way
skopeo copy -q "docker-archive:$work/gz.tar" "oci:$work/oci-gz:gz" --dest-decompress 2>/dev/null \
  || skopeo copy -q "docker-archive:$work/gz.tar" "oci:$work/oci-gz:gz"
sync
t=$(now)
skopeo copy -q --dest-tls-verify=false --dest-compress "oci:$work/oci-gz:gz" "docker://127.0.0.1:$dport/bench/gz:1"
s=$(elapsed "$t")
record "push with gzip ($((usize/1000000)) MB uncompressed)" skopeo MB/s "$(mbps "$usize" "$s")"
