#!/usr/bin/env bash
# Builds the unit tests with AddressSanitizer + UndefinedBehaviorSanitizer into build-asan/
# and runs them (ctest -L unit). docs/testing.md, "Sanitizers".
#
#   scripts/sanitize.sh [CTEST ARGS...]     e.g. scripts/sanitize.sh -R 'Safetensors|Config'
#
# The build is clang's, with R1KIT_FUZZ=ON: the same instrumented libraries serve the
# fuzzers (scripts/fuzz.sh), so the two share one build instead of two. It needs
# `scripts/setup.sh --fuzz`. R1KIT_ASAN_JOBS sets the build's parallelism (default: nproc).
#
# LibTorch, OpenBLAS, gRPC and the other Debian libraries are not instrumented: ASan
# checks r1kit's own code (every allocation is tracked, but only our loads and stores
# are checked), and UBSan aborts on the first finding (-fno-sanitize-recover).
# The ASAN_OPTIONS / UBSAN_OPTIONS below are appended to any already set, so they win
# for the keys they name and the environment's other keys still apply.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=build-asan
JOBS=${R1KIT_ASAN_JOBS:-$(nproc)}

if [ ! -f "$BUILD/CMakeCache.txt" ]; then
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_CXX_COMPILER=clang++-14 -DR1KIT_FUZZ=ON -DR1KIT_SANITIZE=address,undefined \
    -DR1KIT_BUILD_BENCH=OFF > "$BUILD.log" 2>&1 || { cat "$BUILD.log"; exit 1; }
fi
# Every unit-test binary (r1kit_<folder>_tests), and the CLI and plug-in some of them run.
targets=$(ninja -C "$BUILD" -t targets all |
  sed -n 's/^\(r1kit_[a-z_]*_tests\): CXX_EXECUTABLE_LINKER.*/\1/p' | grep -v '^r1kit_integration_tests$')
cmake --build "$BUILD" -j"$JOBS" --target r1kit r1kit_example_reward_plugin $targets

# detect_leaks=0: LibTorch and gRPC keep process-lifetime allocations that LeakSanitizer
# reports at exit (they are not ours to fix); leaks in r1kit would need a suppression list
# for those first. Everything else is ASan's default: heap, stack and global overflows,
# use-after-free, use-after-return is off (the default), double free.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0:abort_on_error=1:print_stacktrace=1"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}print_stacktrace=1:halt_on_error=1"
ctest --test-dir "$BUILD" -L unit --output-on-failure -j"$JOBS" "$@"
