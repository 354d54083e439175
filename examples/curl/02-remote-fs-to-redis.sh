#!/usr/bin/env bash
# Move RemoteBackend from an fs:// directory to a redis-server while traffic runs, over
# HTTP: close it, point remote_url at redis, create it again. Hits continue throughout.
#   REDIS_URL=redis://127.0.0.1:6379 KVT_URL=... bash examples/curl/02-remote-fs-to-redis.sh
# Needs a server whose config has remote_url: fs://DIR, and a reachable redis-server.
. "$(dirname "$0")/lib.sh"
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
need_backend RemoteBackend

call 200 GET /backends/RemoteBackend
expect mode fs
call 200 POST '/cache/store?tokens_mock=0,2048'
drained RemoteBackend

# Check the change first: what changes and when it takes effect.
call 200 POST '/conf?dry_run=true' "{\"remote_url\": \"$REDIS_URL\"}"
call 200 DELETE /backends/RemoteBackend
call 200 POST /conf "{\"remote_url\": \"$REDIS_URL\"}"
call 200 POST /backends                      # creates what the config asks for and lacks
expect status success
printf '%s' "$BODY" | grep -q '"created":{"RemoteBackend"' || { echo "FAILED: not created" >&2; exit 1; }
call 200 GET /backends/RemoteBackend
expect mode redis

# Hits continue (from the CPU tier), new chunks reach redis.
call 200 POST '/cache/retrieve?tokens_mock=0,2048'
expect num_retrieved 2048
call 200 POST '/cache/store?tokens_mock=2048,4096'
drained RemoteBackend
# With the tiers above it bypassed, the chunks come back from redis.
only_from RemoteBackend LocalCPUBackend LocalDiskBackend GdsBackend
call 200 POST '/cache/retrieve?tokens_mock=2048,4096'
expect num_retrieved 2048
unbypass_all
echo
echo "02-remote-fs-to-redis: ok"
