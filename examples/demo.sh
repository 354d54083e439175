#!/usr/bin/env bash
# kvtier demo: installs what is missing, builds, then
#   1. runs kvtier-embed, a program that embeds the library as an inference engine would
#      (examples/embed.c; arguments of this script go to it, e.g. --requests 40);
#   2. starts kvtier-server (LocalCPU + LocalDisk + Remote fs://) and a private
#      redis-server, and walks through the admin API with curl (examples/curl/): list the
#      backends, move RemoteBackend from fs:// to redis://, move LocalDiskBackend to
#      GdsBackend, with stores and retrieves showing the hits continue.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash tests/install-deps.sh
# Configured exactly as tests/run.sh configures build/ (same compiler and options), so
# running one after the other reuses the build instead of resetting the cache.
cmake -S . -B build -DCMAKE_C_COMPILER=gcc -DKVT_SANITIZE= -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" --target kvtier-embed kvtier-server
echo "==== 1. kvtier-embed: the library inside an engine"
build/bin/kvtier-embed "$@"
echo
echo "==== 2. kvtier-server and its admin API"
exec bash examples/walkthrough.sh build/bin/kvtier-server "$root" "$root/build/tmp/demo" --show
