#!/usr/bin/env bash
# Builds the libFuzzer binaries (clang, ASan + UBSan, in build-asan/ beside
# scripts/sanitize.sh's build) and fuzzes one target. docs/testing.md, "Fuzzing".
#
#   scripts/fuzz.sh TARGET [SECONDS] [LIBFUZZER ARGS...]   default 600 s
#   scripts/fuzz.sh --list                                   the targets
#
# TARGET is a fuzz/fuzz_target.h target (safetensors_header, hf_config, recipe_yaml,
# reward_jsonl, math_answer, tokenizer_json). One process: the committed corpus
# fuzz/corpus/TARGET is read, and new inputs go to build-asan/fuzz-corpus/TARGET (not
# the committed folder: copy an interesting input there by hand, as valid-*, invalid-*
# or a name of its own). A crash writes build-asan/fuzz-artifacts/TARGET/crash-<sha1>
# and stops; replay it with `build-asan/r1kit_fuzz_TARGET FILE`.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=build-asan
TARGETS="safetensors_header hf_config recipe_yaml reward_jsonl math_answer tokenizer_json"
if [ "${1:-}" = "--list" ]; then tr ' ' '\n' <<<"$TARGETS"; exit 0; fi
target=${1:?usage: scripts/fuzz.sh TARGET [SECONDS] [LIBFUZZER ARGS...] (--list for targets)}
seconds=${2:-600}
shift $(( $# >= 2 ? 2 : 1 ))
grep -qw -- "$target" <<<"$TARGETS" || { echo "fuzz.sh: unknown target '$target' (--list)" >&2; exit 2; }

if [ ! -f "$BUILD/CMakeCache.txt" ]; then
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_CXX_COMPILER=clang++-14 -DR1KIT_FUZZ=ON -DR1KIT_SANITIZE=address,undefined \
    -DR1KIT_BUILD_BENCH=OFF > "$BUILD.log" 2>&1 || { cat "$BUILD.log"; exit 1; }
fi
cmake --build "$BUILD" -j"${R1KIT_ASAN_JOBS:-$(nproc)}" --target "r1kit_fuzz_$target"

work=$BUILD/fuzz-corpus/$target
artifacts=$BUILD/fuzz-artifacts/$target
mkdir -p "$work" "$artifacts"
# Leaks off as in scripts/sanitize.sh (LibTorch's process-lifetime allocations).
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}print_stacktrace=1:halt_on_error=1"
# -timeout: an input taking 10 s is a hang (the parsers promise linear time);
# -rss_limit_mb: 2 GB for a few-KB input is a memory bug. Inputs grow up to libFuzzer's
# default -max_len (4096 bytes, or the largest corpus file).
exec "$BUILD/r1kit_fuzz_$target" "$work" "fuzz/corpus/$target" \
  -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
  -artifact_prefix="$artifacts/" -print_final_stats=1 "$@"
