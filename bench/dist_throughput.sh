#!/usr/bin/env bash
# Data-parallel throughput on one machine (docs/distributed.md): SFT tokens/s and GRPO
# step time of one preset at three layouts, run alternately in rounds so that a drift of
# the machine's speed hits all three alike:
#   1x1  one process, dist.threads=1
#   1x2  one process, dist.threads=2
#   2x1  two ranks launched by torchrun, dist.threads=1 each
# and, as the machine's ceiling for 2x1, two independent one-thread SFT runs at once (their
# tokens/s added): what two cores give two jobs that never talk.
# SFT: recipes/sft-tiny.yaml (16 packed rows of 128 tokens a step, global) with
# model.preset=PRESET; the median tokens/s of its log windows after the first. GRPO:
# recipes/grpo-tiny.yaml from a 30-step SFT model of the same preset written first (its
# completions are poor, so long: the same work at every layout, since GRPO samples the
# same completions on any number of ranks); the median step_time after the first two
# steps, with rollout.overlap=false (the recipe overlaps the rollout on a second thread,
# which would give the one-process layouts two cores already). Prints one line per run and then the medians and the ratios to 1x1.
#
# Usage: bench/dist_throughput.sh [PRESET=tiny] [ROUNDS=2] [SFT_STEPS=40] [GRPO_STEPS=6]
set -euo pipefail
cd "$(dirname "$0")/.."
preset=${1:-tiny}
rounds=${2:-2}
sft_steps=${3:-40}
grpo_steps=${4:-6}
bin=$PWD/build/r1kit
work=$(mktemp -d /tmp/dist_throughput.XXXXXX)
trap 'rm -rf "$work"' EXIT
port=$((29500 + RANDOM % 1000))

# run LAYOUT DIR ARGS...: one r1kit job at LAYOUT, its log in DIR.log.
run() {
  local layout=$1 dir=$2
  shift 2
  case $layout in
    1x1) "$bin" "$@" checkpoint.dir="$dir" dist.threads=1 > "$dir.log" 2>&1 ;;
    1x2) "$bin" "$@" checkpoint.dir="$dir" dist.threads=2 > "$dir.log" 2>&1 ;;
    2x1)
      port=$((port + 1))
      torchrun --nproc_per_node 2 --master_port "$port" --redirects 2 --tee 2 --no_python \
        "$bin" "$@" checkpoint.dir="$dir" dist.threads=1 > "$dir.log" 2>&1 ;;
  esac
}

# median KEY SKIP FILE: the median of KEY over the lines of metrics FILE that have it,
# after the first SKIP of them.
median() {
  python3 - "$@" <<'EOF'
import json, statistics, sys
key, skip, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
v = [json.loads(l)[key] for l in open(path) if key in json.loads(l)][skip:]
print(f"{statistics.median(v):.3f}" if v else "nan")
EOF
}

echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) vCPU; preset $preset; $(date -u '+%F %H:%M UTC')"
"$bin" sft recipes/sft-tiny.yaml model.preset="$preset" train.steps=30 train.eval_every=0 \
  checkpoint.every=0 checkpoint.dir="$work/base" > "$work/base.log" 2>&1 ||
  { cat "$work/base.log"; exit 1; }

declare -A sft grpo
ceiling=""
for r in $(seq 1 "$rounds"); do
  args="sft recipes/sft-tiny.yaml model.preset=$preset train.steps=$sft_steps train.log_every=5 train.eval_every=0 checkpoint.every=0"
  run 1x1 "$work/ind-a-$r" $args & a=$!
  run 1x1 "$work/ind-b-$r" $args
  wait $a
  c=$(python3 -c "print($(median tokens_per_s 1 "$work/ind-a-$r/metrics.jsonl") + $(median tokens_per_s 1 "$work/ind-b-$r/metrics.jsonl"))")
  echo "round $r two independent 1x1 SFT runs: $c tok/s together"
  ceiling+="$c "
  for layout in 1x1 1x2 2x1; do
    d=$work/sft-$layout-$r
    run "$layout" "$d" sft recipes/sft-tiny.yaml model.preset="$preset" train.steps="$sft_steps" \
      train.log_every=5 train.eval_every=0 checkpoint.every=0 || { cat "$d.log"; exit 1; }
    s=$(median tokens_per_s 1 "$d/metrics.jsonl")
    d=$work/grpo-$layout-$r
    run "$layout" "$d" grpo recipes/grpo-tiny.yaml model.from="$work/base/final" \
      grpo.steps="$grpo_steps" grpo.log_every=1 grpo.eval_every=0 checkpoint.every=0 \
      rollout.overlap=false ||
      { cat "$d.log"; exit 1; }
    g=$(median step_time 2 "$d/metrics.jsonl")
    echo "round $r $layout: SFT $s tok/s, GRPO $g s/step"
    sft[$layout]+="$s " grpo[$layout]+="$g "
  done
done
python3 - "$ceiling" "${sft[1x1]}" "${sft[1x2]}" "${sft[2x1]}" "${grpo[1x1]}" "${grpo[1x2]}" "${grpo[2x1]}" <<'EOF'
import statistics, sys
med = [statistics.median(map(float, a.split())) for a in sys.argv[2:]]
ceiling = statistics.median(map(float, sys.argv[1].split()))
print(f"two independent 1x1 SFT runs: {ceiling:.0f} tok/s together ({ceiling / med[0]:.2f}x)")
names = ["1x1", "1x2", "2x1"]
for i, n in enumerate(names):
    print(f"{n}: SFT {med[i]:.0f} tok/s ({med[i] / med[0]:.2f}x), "
          f"GRPO {med[3 + i]:.2f} s/step ({med[3] / med[3 + i]:.2f}x)")
EOF
