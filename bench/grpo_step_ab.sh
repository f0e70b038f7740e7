#!/usr/bin/env bash
# The default recipe's GRPO step with two r1kit binaries, A and B, from one SFT model:
# recipes/r1-tiny.yaml's SFT stage once (with A, unless SFT_DIR gives one), then
# GRPO_STEPS steps of its GRPO stage per run, the two binaries in ABBA order ROUNDS times,
# so that a steady drift of the machine's speed and an advantage of going second in a
# pair both cancel. Prints each run's
# medians (after the first two steps) of step_time, timing/train and timing/generate, and
# then the medians over runs and B's speed-up.
#
# Usage: bench/grpo_step_ab.sh BIN_A BIN_B [ROUNDS=2] [GRPO_STEPS=30]
#   BIN_A / BIN_B: r1kit binaries (an older one from a git worktree's build/, say; a
#   binary outside build/ needs R1KIT_SPM_LIB, README).
# Environment:
#   RECIPE_A / RECIPE_B  the recipe each binary runs (default recipes/r1-tiny.yaml): an
#                        older binary may need the recipe of its own commit.
#   SFT_DIR              a finished SFT stage (RUN_DIR/sft) to start from instead of
#                        training one with A.
# The SFT stage's recorded recipe is dropped, so each binary reuses the one SFT model
# whatever its recipe says (a stage without it is reused as is).
set -euo pipefail
cd "$(dirname "$0")/.."
a=$1
b=$2
rounds=${3:-2}
steps=${4:-30}
recipe_a=$(realpath "${RECIPE_A:-recipes/r1-tiny.yaml}")
recipe_b=$(realpath "${RECIPE_B:-recipes/r1-tiny.yaml}")
work=$(mktemp -d /tmp/grpo_step_ab.XXXXXX)
trap 'rm -rf "$work"' EXIT
if [[ -n "${SFT_DIR:-}" ]]; then
  mkdir -p "$work/run/sft"
  cp -r "$SFT_DIR/final" "$SFT_DIR"/tokenizer.* "$work/run/sft/"
else
  "$a" run "$recipe_a" "run.stages=[sft]" "run.dir=$work/run" > "$work/sft.log" 2>&1 ||
    { tail -5 "$work/sft.log"; exit 1; }
fi
rm -f "$work/run/sft/recipe.json"

# run LABEL BIN RECIPE: the GRPO stage anew with BIN, one result line.
run() {
  rm -rf "$work/run/grpo"
  "$2" run "$3" "run.stages=[sft,grpo]" "grpo.train.steps=$steps" \
    "run.dir=$work/run" > "$work/$1.log" 2>&1 || { tail -5 "$work/$1.log"; exit 1; }
  python3 - "$1" "$work/run/grpo/metrics.jsonl" <<'PY' | tee -a "$work/results"
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[2])][2:]
med = lambda k: statistics.median(r[k] for r in rows)
print(sys.argv[1], *(f"{med(k):.3f}" for k in ("step_time", "timing/train", "timing/generate")))
PY
}

echo "run step_s train_s generate_s"
for ((i = 0; i < rounds; i++)); do
  run A "$a" "$recipe_a"
  run B "$b" "$recipe_b"
  run B "$b" "$recipe_b"
  run A "$a" "$recipe_a"
done
python3 - "$work/results" <<'PY'
import statistics, sys
runs = [l.split() for l in open(sys.argv[1])]
for i, name in enumerate(("step", "train", "generate"), start=1):
    ma = statistics.median(float(r[i]) for r in runs if r[0] == "A")
    mb = statistics.median(float(r[i]) for r in runs if r[0] == "B")
    print(f"{name}: A {ma:.3f} s, B {mb:.3f} s, A / B {ma / mb:.3f}x")
PY
