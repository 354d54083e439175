#!/usr/bin/env bash
# Installs kvtier into a temporary prefix, then builds and runs a tiny consumer twice:
# through find_package(kvtier) and through pkg-config. Usage: install_consumer.sh SRC BUILD
set -euo pipefail
src=$1 build=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null

mkdir -p "$tmp/app"
cat > "$tmp/app/main.c" <<'C'
#include <kvtier/kvtier.h>
#include <stdio.h>
#include <string.h>
int main(void)
{
    kvt_config *cfg;
    kvt_store *s;
    kvt_key k;
    char out[4] = "";
    if (kvt_config_new(&cfg) || kvt_config_set(cfg, "max_local_cpu_size", "0.01") ||
        kvt_store_open(cfg, NULL, &s) || kvt_key_init(&k, "m", 1, 0, 42, "half") ||
        kvt_put(s, &k, "abc", 4, NULL) || kvt_get_into(s, &k, out, sizeof out, NULL))
        return 1;
    kvt_store_close(s);
    kvt_config_free(cfg);
    printf("%s %s\n", kvt_version(), out);
    return strcmp(out, "abc") != 0;
}
C
cat > "$tmp/app/CMakeLists.txt" <<'C'
cmake_minimum_required(VERSION 3.18)
project(consumer C)
find_package(kvtier 0.1 REQUIRED)
add_executable(consumer main.c)
target_link_libraries(consumer PRIVATE kvtier::kvtier)
C
cmake -S "$tmp/app" -B "$tmp/app/build" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/app/build" >/dev/null
LD_LIBRARY_PATH="$tmp/prefix/lib:$tmp/prefix/lib/x86_64-linux-gnu" "$tmp/app/build/consumer"

libdir=$(dirname "$(find "$tmp/prefix" -name kvtier.pc)")
export PKG_CONFIG_PATH="$libdir"
cc "$tmp/app/main.c" -o "$tmp/app/pc-consumer" $(pkg-config --cflags --libs kvtier)
LD_LIBRARY_PATH="$libdir/..:$tmp/prefix/lib" "$tmp/app/pc-consumer"

# Only kvt_* symbols are exported, and the SONAME is libkvtier.so.0.
so=$(find "$tmp/prefix" -name 'libkvtier.so.0' | head -1)
objdump -p "$so" | grep -q 'SONAME *libkvtier.so.0'
bad=$(nm -D --defined-only "$so" | awk '{print $3}' | grep -v '^kvt_' || true)
[ -z "$bad" ] || { echo "unexpected exported symbols: $bad"; exit 1; }
echo "install consumer ok"
