#!/usr/bin/env bash
# Tour of the admin API on any kvtier-server: liveness, the tiers, synthetic KV through
# the real data path, bypass, freeze, config with its version, metrics.
#   KVT_URL=http://127.0.0.1:6999 bash examples/curl/01-basics.sh
. "$(dirname "$0")/lib.sh"

call 200 GET /healthz
call 200 GET /version
call 200 GET /backends                       # {name: class} in tier order
call 200 GET /backends/LocalCPUBackend       # state, mode, bypass, health, usage, counters
expect state active
call 404 GET /backends/NoSuchBackend
expect status not_found

# Synthetic KV for tokens 0..2047; the retrieve verifies every chunk's bytes.
call 200 POST '/cache/store?tokens_mock=0,2048'
expect num_tokens 2048
call 200 POST '/cache/retrieve?tokens_mock=0,2048'
expect num_retrieved 2048
call 200 POST '/cache/retrieve?tokens_mock=0,4096'   # shares the first 2048 tokens
expect num_retrieved 2048

# Freeze: nothing new is stored, reads keep working.
call 200 PUT /freeze/enable
expect freeze true
call 200 POST '/cache/store?tokens_mock=10000,12048'
call 200 POST '/cache/retrieve?tokens_mock=10000,12048'
expect num_retrieved 0
call 200 PUT /freeze/disable
call 200 GET /freeze/status
expect freeze false

call 200 GET /bypass/list

# Config: read it with its version (ETag), try a change, apply it.
call 200 GET '/conf?names=chunk_size,blocking_timeout_secs,backend_close_timeout_ms'
call 200 POST '/conf?dry_run=true' '{"backend_close_timeout_ms": 5000, "blocking_timeout_secs": 5}'
call 400 POST /conf '{"chunk_size": 512}'    # not mutable at runtime: nothing changes
call 400 POST /conf '{"storage_plugins": ["x"]}'
call 200 POST /conf '{"backend_close_timeout_ms": 5000}'
expect backend_close_timeout_ms 5000

call 200 GET /status
call 200 DELETE /cache/clear
call 200 POST '/cache/retrieve?tokens_mock=0,2048'
expect num_retrieved 0
call 200 GET /metrics
echo
echo "01-basics: ok"
