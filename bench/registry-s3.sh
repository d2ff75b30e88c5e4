#!/usr/bin/env bash
# The registry on S3 (issue 17), berth side by side with the distribution registry from Debian
# (`docker-registry`, its S3 driver), both on one `s3s-fs` on loopback (separate buckets):
#  1. push and pull of a 200 MB blob (curl as the client of both: POST, then one PUT of the
#     whole blob with its digest; GET to /dev/null), XFER_RUNS runs alternating (target 2x);
#  2. manifest GET by tag with 2 replicas of each on its bucket: `wrk -t1 -c8` on each replica
#     at once (together `-t2 -c16`), req/s summed (target 10x distribution);
#  3. a replica's idle RSS (target <= 15 MB).
#
#   bench/registry-s3.sh   (BERTH=path, BENCH_WORK=dir, DURATION=10, XFER_RUNS=3)
#
# Needs: s3s-fs and python3-boto3 (scripts/install-test-deps.sh installs s3s-fs and moto, which
# brings boto3), docker-registry, wrk, curl. Starts its servers on 127.0.0.1, stops them at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${DURATION:-10}
xfer_runs=${XFER_RUNS:-3}
work=${BENCH_WORK:-$(mktemp -d /var/tmp/berth-registry-s3-bench.XXXXXX)}
mkdir -p "$work"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$work"/{s3,blob.bin,*.yml,*.log,*.lua}
  [ -n "${BENCH_WORK:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
if [ -z "${BERTH:-}" ]; then
  cargo build --release -q -p berth
  BERTH=$PWD/target/release/berth
fi
S3S=$(command -v s3s-fs || echo "$HOME/.cargo/bin/s3s-fs")

record() { # metric tool unit value [target] [min max]
  local metric=$1 tool=$2 unit=$3 value=$4 target=${5:-} lo=${6:-$4} hi=${7:-$4}
  printf '  %-40s %-13s %10s %s (%s-%s)\n' "$metric" "$tool" "$value" "$unit" "$lo" "$hi"
  if [ -n "${BENCH:-}" ]; then
    local hib=()
    [ "$unit" = "MB" ] || hib=(--higher-is-better)
    "$BENCH" record --suite registry-s3 --metric "$metric" --tool "$tool" --unit "$unit" "${hib[@]}" \
      --value "$value" --min "$lo" --max "$hi" ${target:+--target "$target"} >/dev/null || true
  fi
}
stats() { python3 -c 'import statistics,sys; v=[float(x) for x in sys.argv[1:]]; print(round(statistics.median(v),1), min(v), max(v))' "$@"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rss_mb() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
now() { date +%s.%N; }
elapsed() { python3 -c "print($(now) - $1)"; }
wait_http() {
  for _ in $(seq 200); do curl -fs -o /dev/null "$1" && return 0; sleep 0.1; done
  echo "no answer: $1" >&2; tail -n 5 "$work"/*.log >&2; return 1
}

# (a CA bundle set for the host breaks distribution's S3 client on a plain-HTTP endpoint)
unset AWS_CA_BUNDLE
export AWS_ACCESS_KEY_ID=benchkey AWS_SECRET_ACCESS_KEY=benchsecret0123456789 AWS_REGION=us-east-1
s3port=$(free_port)
mkdir -p "$work/s3"
"$S3S" --host 127.0.0.1 --port "$s3port" --access-key "$AWS_ACCESS_KEY_ID" \
  --secret-key "$AWS_SECRET_ACCESS_KEY" "$work/s3" >"$work/s3s.log" 2>&1 &
pids+=($!)
export AWS_ENDPOINT_URL=http://127.0.0.1:$s3port
for _ in $(seq 100); do curl -s -o /dev/null "$AWS_ENDPOINT_URL/" && break; sleep 0.1; done
python3 - <<PY
import boto3
s3 = boto3.client("s3", endpoint_url="$AWS_ENDPOINT_URL")
s3.create_bucket(Bucket="dist")
PY

# --- servers: 2 berth replicas on s3://berth/registry, 2 distribution replicas on bucket dist
start_berth() { # port
  "$BERTH" registry serve --addr "127.0.0.1:$1" --storage s3://berth/registry >>"$work/berth.log" 2>&1 &
  pids+=($!)
}
start_dist() { # port
  cat >"$work/dist-$1.yml" <<YML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  s3:
    accesskey: $AWS_ACCESS_KEY_ID
    secretkey: $AWS_SECRET_ACCESS_KEY
    region: us-east-1
    regionendpoint: $AWS_ENDPOINT_URL
    bucket: dist
    rootdirectory: /registry
    secure: false
    v4auth: true
    chunksize: 8388608
  redirect:
    disable: true
http:
  addr: 127.0.0.1:$1
  secret: bench-shared-secret
YML
  docker-registry serve "$work/dist-$1.yml" >>"$work/dist.log" 2>&1 &
  pids+=($!)
}
b1=$(free_port); start_berth "$b1"; b1pid=$!
b2=$(free_port); start_berth "$b2"
d1=$(free_port); start_dist "$d1"; d1pid=$!
d2=$(free_port); start_dist "$d2"
for p in $b1 $b2 $d1 $d2; do wait_http "http://127.0.0.1:$p/v2/"; done

echo "== idle RSS of a replica"
sleep 2
record "replica idle RSS" berth MB "$(rss_mb $b1pid)" "<=15"
record "replica idle RSS" distribution MB "$(rss_mb $d1pid)"

# --- transfers
echo "== push and pull of a 200 MB blob through s3s-fs ($xfer_runs runs)"
head -c 200000000 /dev/urandom >"$work/blob.bin"
size=$(stat -c %s "$work/blob.bin")
digest=sha256:$(sha256sum "$work/blob.bin" | cut -d' ' -f1)
push() { # port repo
  local loc sep
  loc=$(curl -fsi -X POST "http://127.0.0.1:$1/v2/$2/blobs/uploads/" | awk -F': ' 'tolower($1)=="location"{print $2}' | tr -d '\r')
  case $loc in http*) ;; *) loc="http://127.0.0.1:$1$loc";; esac
  sep='?'; case $loc in *\?*) sep='&';; esac
  curl -fs -X PUT -H 'Content-Type: application/octet-stream' -T "$work/blob.bin" "$loc${sep}digest=$digest" -o /dev/null
}
pull() { # port repo
  local got
  got=$(curl -fsL "http://127.0.0.1:$1/v2/$2/blobs/$digest" | sha256sum | cut -d' ' -f1)
  [ "sha256:$got" = "$digest" ] || { echo "pull from $1 returned other bytes" >&2; return 1; }
}
mbps() { python3 -c "print(round($size/1e6/$1, 1))"; }
bpush=() dpush=() bpull=() dpull=() derr=
for i in $(seq "$xfer_runs"); do
  order="berth distribution"; [ $((i % 2)) = 0 ] && order="distribution berth"
  for tool in $order; do
    p=$b1; [ $tool = distribution ] && p=$d1
    t=$(now)
    if push "$p" "bench/big$i"; then
      s=$(elapsed "$t")
      if [ $tool = berth ]; then bpush+=("$(mbps "$s")"); else dpush+=("$(mbps "$s")"); fi
    else
      echo "  $tool: push failed" >&2; [ $tool = distribution ] && derr="push failed"
    fi
  done
  for tool in $order; do
    # pulled through the other replica
    p=$b2; [ $tool = distribution ] && p=$d2
    t=$(now)
    if pull "$p" "bench/big$i"; then
      s=$(elapsed "$t")
      if [ $tool = berth ]; then bpull+=("$(mbps "$s")"); else dpull+=("$(mbps "$s")"); fi
    else
      echo "  $tool: pull failed" >&2; [ $tool = distribution ] && derr="pull failed"
    fi
  done
done
for m in push pull; do
  eval "bv=(\"\${b$m[@]}\"); dv=(\"\${d$m[@]}\")"
  if [ ${#bv[@]} -gt 0 ]; then read -r med lo hi <<<"$(stats "${bv[@]}")"; record "$m 200 MB blob (S3, s3s-fs)" berth MB/s "$med" "2x distribution" "$lo" "$hi"; fi
  if [ ${#dv[@]} -gt 0 ]; then read -r med lo hi <<<"$(stats "${dv[@]}")"; record "$m 200 MB blob (S3, s3s-fs)" distribution MB/s "$med" "" "$lo" "$hi"; fi
done
[ -z "$derr" ] || echo "  distribution: $derr in some runs"
rm -f "$work/blob.bin"

# --- manifest GET by tag, 2 replicas each
cfg='{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
cfg_d=sha256:$(printf '%s' "$cfg" | sha256sum | cut -d' ' -f1)
manifest=$(printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[]}' "$cfg_d" "${#cfg}")
push_small() { # port
  local p=$1 loc sep
  loc=$(curl -fsi -X POST "http://127.0.0.1:$p/v2/bench/small/blobs/uploads/" | awk -F': ' 'tolower($1)=="location"{print $2}' | tr -d '\r')
  case $loc in http*) ;; *) loc="http://127.0.0.1:$p$loc";; esac
  sep='?'; case $loc in *\?*) sep='&';; esac
  printf '%s' "$cfg" | curl -fs -X PUT --data-binary @- -H 'Content-Type: application/octet-stream' "$loc${sep}digest=$cfg_d" -o /dev/null
  printf '%s' "$manifest" | curl -fs -X PUT --data-binary @- \
    -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
    "http://127.0.0.1:$p/v2/bench/small/manifests/latest" -o /dev/null
}
push_small "$b1"
push_small "$d1" || echo "  distribution: pushing the small image failed"
echo "== manifest GET by tag, 2 replicas, wrk -t1 -c8 on each (-t2 -c16 in all), ${duration}s"
for tool in berth distribution; do
  pa=$b1 pb=$b2; [ $tool = distribution ] && { pa=$d1; pb=$d2; }
  serves=1
  for p in $pa $pb; do
    curl -fs -o /dev/null -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://127.0.0.1:$p/v2/bench/small/manifests/latest" \
      || { echo "  $tool replica $p does not serve the manifest" >&2; serves=0; }
  done
  [ $serves = 1 ] || continue
  wrk -t1 -c8 -d"${duration}s" -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    "http://127.0.0.1:$pa/v2/bench/small/manifests/latest" >"$work/wrk-a.log" &
  wa=$!
  wrk -t1 -c8 -d"${duration}s" -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    "http://127.0.0.1:$pb/v2/bench/small/manifests/latest" >"$work/wrk-b.log"
  wait $wa
  ra=$(awk '/Requests\/sec/ {print $2}' "$work/wrk-a.log"); rb=$(awk '/Requests\/sec/ {print $2}' "$work/wrk-b.log")
  non2xx=$(cat "$work/wrk-a.log" "$work/wrk-b.log" | awk '/Non-2xx/ {s+=$NF} END {print s+0}')
  [ "$non2xx" = 0 ] || echo "  $tool: $non2xx non-2xx answers" >&2
  total=$(python3 -c "print(round($ra + $rb))")
  record "manifest GET by tag, 2 replicas" $tool req/s "$total" "$([ $tool = berth ] && echo '10x distribution')"
done
record "replica RSS after load" berth MB "$(rss_mb $b1pid)"
record "replica RSS after load" distribution MB "$(rss_mb $d1pid)"
