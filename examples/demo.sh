#!/usr/bin/env bash
# kvtier demo: installs what is missing, builds, and runs kvtier-embed, a program that
# embeds the library as an inference engine would (see examples/embed.c).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash tests/install-deps.sh
# Configured exactly as tests/run.sh configures build/ (same compiler and options), so
# running one after the other reuses the build instead of resetting the cache.
cmake -S . -B build -DCMAKE_C_COMPILER=gcc -DKVT_SANITIZE= -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" --target kvtier-embed
exec build/bin/kvtier-embed "$@"
