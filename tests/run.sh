#!/usr/bin/env bash
# kvtier's test command: installs what is missing, then
#   build/       gcc, -Werror, the whole suite through ctest
#   build-asan/  clang with ASan+UBSan, the whole suite again
#   build-tsan/  clang with TSan, the concurrency stress test
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
jobs=$(nproc)

bash tests/install-deps.sh

# build/ is configured exactly as examples/demo.sh configures it (gcc, no sanitizer,
# RelWithDebInfo): a different compiler would make CMake reset the cache and rebuild all.
build() { # dir compiler sanitize [targets...]
  local dir=$1 cc=$2 san=$3
  shift 3
  cmake -S . -B "$dir" -DCMAKE_C_COMPILER="$cc" -DKVT_SANITIZE="$san" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$dir" -j "$jobs" ${1:+--target "$@"}
}

echo "== build (gcc)"
build build gcc ""
echo "== tests (gcc)"
ctest --test-dir build --output-on-failure -j "$jobs"

echo "== build (clang, ASan+UBSan)"
build build-asan clang "address,undefined"
echo "== tests (ASan+UBSan)"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j "$jobs"

echo "== build (clang, TSan): stress tests"
build build-tsan clang "thread" test_concurrency test_remote_stress
echo "== stress tests (TSan)"
TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
  ctest --test-dir build-tsan --output-on-failure -L stress
