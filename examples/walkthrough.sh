#!/usr/bin/env bash
# Runs the examples/curl walkthroughs against a real kvtier-server (the demo shows their
# output, the test suite checks them).
# Usage: walkthrough.sh KVTIER_SERVER SRC_DIR WORK_DIR [--show]
# The server gets LocalCPU + LocalDisk + Remote (fs://) when this kvtier has those tiers,
# else LocalCPU alone, and a private redis-server when one is installed; a walkthrough
# whose tier is missing skips (77). Exit 77 only if every walkthrough but 01 skipped
# and 01 itself could not run.
set -euo pipefail
server=$1 src=$2 work=$3 show=${4:-}
rm -rf "$work"
mkdir -p "$work"
pids=()
cleanup() { for p in ${pids[@]+"${pids[@]}"}; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

start_server() { # config -> sets url, or returns 1
  "$server" --config "$1" --port 0 --kv-bytes-per-token 64 >"$work/server.out" 2>"$work/server.err" &
  spid=$!
  for _ in $(seq 100); do
    if grep -q '^listening on ' "$work/server.out"; then
      url=$(sed -n 's/^listening on \(http[^ ]*\).*/\1/p' "$work/server.out")
      pids+=("$spid")
      return 0
    fi
    kill -0 "$spid" 2>/dev/null || break
    sleep 0.1
  done
  kill "$spid" 2>/dev/null || true
  wait "$spid" 2>/dev/null || true
  return 1
}

redis_url=""
if command -v redis-server >/dev/null; then
  for port in $(shuf -i 20000-40000 -n 5); do
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no >"$work/redis.log" 2>&1 &
    rpid=$!
    sleep 0.3
    if kill -0 "$rpid" 2>/dev/null; then pids+=("$rpid"); redis_url="redis://127.0.0.1:$port"; break; fi
  done
fi

cat >"$work/full.yaml" <<YAML
chunk_size: 256
max_local_cpu_size: 0.05
local_disk: "file://$work/disk"
max_local_disk_size: 0.05
remote_url: "fs://$work/remote"
YAML
printf 'chunk_size: 256\nmax_local_cpu_size: 0.05\n' >"$work/cpu.yaml"
if ! start_server "$work/full.yaml"; then
  echo "note: LocalDisk/Remote tiers not available ($(tail -n1 "$work/server.err")); LocalCPU only"
  start_server "$work/cpu.yaml" || { cat "$work/server.err"; exit 1; }
fi
echo "server: $url"

rc=0
for w in "$src"/examples/curl/[0-9]*.sh; do
  name=$(basename "$w")
  set +e
  KVT_URL=$url REDIS_URL=${redis_url:-redis://127.0.0.1:6379} GDS_PATH="$work/gds" \
    bash "$w" >"$work/$name.log" 2>&1
  st=$?
  set -e
  if [ "$show" = --show ]; then echo "===== $name"; cat "$work/$name.log"; fi
  case $st in
    0) echo "$name: ok" ;;
    77) echo "$name: $(tail -n1 "$work/$name.log")" ;;
    *) echo "$name: FAILED (exit $st)"; tail -n 20 "$work/$name.log"; rc=1 ;;
  esac
done

# SIGTERM: flush, stop, exit 0.
kill -TERM "${pids[0]}"
set +e
wait "${pids[0]}"
st=$?
set -e
pids=("${pids[@]:1}")
if [ "$st" -ne 0 ]; then echo "kvtier-server exited $st on SIGTERM"; cat "$work/server.err"; rc=1; fi
exit $rc
