#!/usr/bin/env bash
# Peak resident memory of loading a ~0.5B-parameter random Qwen3 checkpoint (bf16
# safetensors, Qwen3-0.6B's shape with a 65536 vocabulary) and of a short `r1kit generate`
# on it, in bf16 and fp32; `legacy` rows replay the loading steps used before loading
# built the model in its dtype (bench/load_bench.cpp). Figures: bench/RESULTS.md,
# "Loading memory".
#   bench/load_memory.sh [BUILD_DIR] [CHECKPOINT_DIR]
# The checkpoint (~1 GB) is written by tests/golden/make_golden.py --big when missing;
# keep it out of the repository.
set -euo pipefail
build=${1:-build}
ckpt=${2:-/tmp/r1kit_qwen3_0.5b}
[ -f "$ckpt/model.safetensors" ] || /usr/bin/python3 tests/golden/make_golden.py --big "$ckpt"
echo "== $(date -u '+%F %H:%M UTC'), $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs"
for dtype in bf16 f32; do
  "$build/load_bench" "$ckpt" "$dtype" | tail -1
  "$build/load_bench" "$ckpt" "$dtype" legacy | tail -1
done
for dtype in bf16 f32; do
  /usr/bin/time -f "generate $dtype: peak RSS %M KiB, %e s wall" \
    "$build/r1kit" generate --model "$ckpt" --ids 1,2,3,4,5,6,7,8 -n 1 --max-new-tokens 8 \
    --temperature 0 --dtype "$dtype" 2>&1 >/dev/null | grep -E '^(generate|prompt)'
done
