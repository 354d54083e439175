#!/usr/bin/env bash
# Replace LocalDiskBackend with GdsBackend over HTTP: close the disk tier, configure GDS,
# create it. Hits continue throughout.
#   GDS_PATH=/mnt/nvme/kvtier-gds KVT_URL=... bash examples/curl/03-disk-to-gds.sh
# Needs a server with LocalDiskBackend; GdsBackend runs in gds mode with a GPU and
# cuFile, in compat mode without (its "mode" says which).
. "$(dirname "$0")/lib.sh"
GDS_PATH=${GDS_PATH:-/tmp/kvtier-gds}
mkdir -p "$GDS_PATH"
need_backend LocalDiskBackend

call 200 POST '/cache/store?tokens_mock=0,2048'
drained LocalDiskBackend

call 200 POST '/conf?dry_run=true' "{\"local_disk\": null, \"gds_path\": \"$GDS_PATH\", \"max_gds_size\": 1}"
call 200 DELETE /backends/LocalDiskBackend
# local_disk null: the config no longer asks for LocalDisk, so create makes GDS only.
call 200 POST /conf "{\"local_disk\": null, \"gds_path\": \"$GDS_PATH\", \"max_gds_size\": 1}"
call 200 POST /backends
printf '%s' "$BODY" | grep -q '"created":{"GdsBackend"' || { echo "FAILED: not created" >&2; exit 1; }
call 200 GET /backends/GdsBackend            # mode: gds, cufile or compat
call 200 POST '/cache/retrieve?tokens_mock=0,2048'
expect num_retrieved 2048
call 200 POST '/cache/store?tokens_mock=4096,6144'
drained GdsBackend
# With every other tier bypassed, the new chunks come back from GdsBackend's files.
only_from GdsBackend LocalCPUBackend RemoteBackend
call 200 POST '/cache/retrieve?tokens_mock=4096,6144'
expect num_retrieved 2048
unbypass_all
echo
echo "03-disk-to-gds: ok"
