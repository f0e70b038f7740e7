#!/usr/bin/env bash
# The default recipe's GRPO step with two r1kit binaries, A and B, from one SFT model:
# recipes/r1-tiny.yaml's SFT stage once (with A), then GRPO_STEPS steps of its GRPO stage
# per run, the two binaries in ABBA order ROUNDS times, so that a steady drift of the
# machine's speed and an advantage of going second in a pair both cancel. Prints each run's
# medians (after the first two steps) of step_time, timing/train and timing/generate, and
# then the medians over runs and B's speed-up.
#
# Usage: bench/grpo_step_ab.sh BIN_A BIN_B [ROUNDS=2] [GRPO_STEPS=30]
#   BIN_A / BIN_B: r1kit binaries (an older one from a git worktree's build/, say; a
#   binary outside build/ needs R1KIT_SPM_LIB, README).
set -euo pipefail
cd "$(dirname "$0")/.."
a=$1
b=$2
rounds=${3:-2}
steps=${4:-30}
work=$(mktemp -d /tmp/grpo_step_ab.XXXXXX)
trap 'rm -rf "$work"' EXIT

# run LABEL BIN: the GRPO stage anew with BIN, one result line.
run() {
  rm -rf "$work/run/grpo"
  "$2" run recipes/r1-tiny.yaml "run.stages=[sft,grpo]" "grpo.train.steps=$steps" \
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
  run A "$a"
  run B "$b"
  run B "$b"
  run A "$a"
done
python3 - "$work/results" <<'PY'
import statistics, sys
runs = [l.split() for l in open(sys.argv[1])]
for i, name in enumerate(("step", "train", "generate"), start=1):
    ma = statistics.median(float(r[i]) for r in runs if r[0] == "A")
    mb = statistics.median(float(r[i]) for r in runs if r[0] == "B")
    print(f"{name}: A {ma:.3f} s, B {mb:.3f} s, A / B {ma / mb:.3f}x")
PY
