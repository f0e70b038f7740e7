#!/bin/bash
# Runs the r1kit commands of README.md and docs/*.md as they are written, in a temporary
# directory, and checks that each exits 0 and makes what the docs say it makes.
#
#   scripts/docs-check.sh [--short] [--build DIR] [--keep] [--list]
#
# The commands are read from the docs themselves: every line of a code block (fenced, or
# indented by four spaces) that starts with `r1kit` or `build/r1kit` (a trailing `\`
# joins the next line, a `  # comment` is dropped). Each one must have an entry in the
# table below, by its text: either run (with what it must produce) or skipped with a
# reason. A documented command without an entry, or an entry no doc has any more, is an
# error, so the script breaks when the docs and the table drift apart.
#
# --short applies each entry's `short:` overrides (appended recipe keys: steps, sizes) and
# `sub:` replacements (smaller --n/--k), so that the whole list runs in a few minutes;
# they only shrink work, through keys and flags the docs document. Without --short the
# commands run exactly as written (hours: every recipe's full training run).
# --build DIR: the build directory holding r1kit (default: build/ of this checkout).
# --keep: leave the temporary directory. --list: print the extracted commands and exit.
#
# Table entries (one `@ COMMAND` line, then indented fields):
#   skip: REASON       not run (a synopsis with placeholders, a server, ...)
#   before: SHELL      a documented non-r1kit step run first (cp, g++), in order
#   short: ARGS        appended in --short mode
#   sub: A => B        replaced (every occurrence) in --short mode
#   listens: PORT      a server started with a trailing `&`: runs in the background until
#                      the end, and must accept connections on PORT within a minute
#   file: PATH         must exist and be non-empty afterwards
#   lines: PATH N      must have at least N lines afterwards
#   output: REGEX      the command's output (stdout + stderr) must match (grep -E)
# Commands run with bash in the temporary directory, with $DOCS_PORT set to 50051 when
# that port is free (else to another free port, which `sub:` puts in place of 50051).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$ROOT/build
SHORT=0
KEEP=0
LIST=0
while [ $# -gt 0 ]; do
  case $1 in
    --short) SHORT=1 ;;
    --keep) KEEP=1 ;;
    --list) LIST=1 ;;
    --build) BUILD=$(cd "$2" && pwd); shift ;;
    *) echo "docs-check: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

# "FILE:LINE<TAB>COMMAND" for every r1kit command in a code block.
extract() {
  (cd "$ROOT" && awk '
    FNR == 1 { fence = 0; pending = "" }
    /^[[:space:]]*```/ { fence = !fence; next }
    {
      line = $0
      if (pending != "") {
        sub(/^[[:space:]]+/, "", line)
        cmd = pending " " line
      } else {
        if (!fence && line !~ /^    /) next
        sub(/^[[:space:]]+/, "", line)
        sub(/^\$ /, "", line)
        if (line !~ /^(build\/)?r1kit( |$)/) next
        cmd = line
        where = FILENAME ":" FNR
      }
      if (cmd ~ /\\$/) { sub(/[[:space:]]*\\$/, "", cmd); pending = cmd; next }
      pending = ""
      sub(/[[:space:]]+#[[:space:]].*$/, "", cmd)
      sub(/^build\//, "", cmd)
      gsub(/[[:space:]]+/, " ", cmd)
      sub(/ $/, "", cmd)
      print where "\t" cmd
    }' README.md docs/*.md)
}

if [ $LIST = 1 ]; then extract; exit 0; fi

TABLE=$(cat <<'EOF'
@ r1kit --help
  output: Subcommands
@ r1kit --version
  output: ^r1kit [0-9]+\.[0-9]+
@ r1kit model init --preset tiny --seed 1 --out runs/tiny-init
  file: runs/tiny-init/model.safetensors
@ r1kit model info runs/tiny-init
  output: parameters
@ r1kit model info runs/tiny-init --json
  output: "parameters_total"
@ r1kit model info tiny
  output: parameters
@ r1kit model logits --model runs/tiny-init --ids 5,17,42
  output: "logits"
@ r1kit model init --preset nano --out runs/nano-init
  file: runs/nano-init/model.safetensors
@ r1kit generate --model runs/nano-init --ids 5,17,42 --n 2 --max-new-tokens 8 --temperature 0
  output: sample 1
@ r1kit pretrain recipes/pretrain-tiny.yaml train.steps=50
  short: train.steps=2 data.n_examples=400 train.eval_every=0
  file: runs/pretrain-tiny/corpus.txt
  file: runs/pretrain-tiny/tokenizer.model
  file: runs/pretrain-tiny/final/model.safetensors
@ r1kit pretrain recipes/pretrain-tiny.yaml
  short: train.steps=2 data.n_examples=400 train.eval_every=0
  file: runs/pretrain-tiny/final/model.safetensors
@ r1kit pretrain recipes/pretrain-tiny.yaml train.steps=50 model.compute=bf16 checkpoint.dir=runs/pretrain-bf16
  short: train.steps=2 data.n_examples=400 train.eval_every=0
  file: runs/pretrain-bf16/final/model.safetensors
@ r1kit pretrain recipes/pretrain-tiny.yaml --print-recipe
  output: resolved recipe
@ r1kit eval --model runs/pretrain-tiny/final --task arithmetic --task-arg max_a=9 --task-arg max_b=9 --task-arg max_c=99 --chat-template plain --n 200 --k 8 --max-new-tokens 64 --greedy --seed 1
  sub: --n 200 --k 8 --max-new-tokens 64 => --n 4 --k 2 --max-new-tokens 32
  output: pass@1
@ r1kit tokenizer train --input runs/pretrain-tiny/corpus.txt --out tok.model --vocab-size 512
  file: tok.model
@ r1kit tokenizer encode --model tok.model --text "What is 12*3+4?"
  output: ^[0-9]+(,[0-9]+)+
@ r1kit tokenizer encode --model tok.model --text "What is 12*3+4?" --pieces
@ r1kit tokenizer decode --model tok.model --ids 5,17,42
@ r1kit tokenizer decode --model tok.model --ids 296,275,301
@ r1kit tokenizer encode --model runs/pretrain-tiny/tokenizer.model --text "What is 12*3+4? <think> 36 </think>" --pieces
  output: <think>
@ r1kit tokenizer encode --model runs/pretrain-tiny/tokenizer.model --text "é" --pieces
@ r1kit sft recipes/sft-tiny.yaml
  short: train.steps=2 data.n_examples=300 train.eval_every=0
  file: runs/sft-tiny/final/model.safetensors
@ r1kit sft recipes/sft-tiny.yaml train.steps=50 checkpoint.dir=runs/sft-50
  short: train.steps=2 data.n_examples=300 train.eval_every=0
  file: runs/sft-50/final/model.safetensors
@ r1kit sft recipes/sft-tiny.yaml --print-recipe
  output: resolved recipe
@ r1kit eval --model runs/sft-tiny/final --task arithmetic --task-arg max_a=9 --task-arg max_b=9 --task-arg max_c=99 --chat-template plain --n 200 --k 8 --max-new-tokens 64 --greedy --seed 1
  sub: --n 200 --k 8 --max-new-tokens 64 => --n 4 --k 2 --max-new-tokens 32
  output: pass@1
@ r1kit grpo recipes/grpo-tiny.yaml
  short: grpo.steps=1 rollout.group_size=2 rollout.prompts_per_step=2 grpo.eval_every=0
  file: runs/grpo-tiny/final/model.safetensors
  file: runs/grpo-tiny/metrics.jsonl
@ r1kit eval --model runs/grpo-tiny/final --task arithmetic --task-arg max_a=9 --task-arg max_b=9 --task-arg max_c=99 --chat-template plain --n 200 --k 8 --max-new-tokens 64 --greedy --seed 1
  sub: --n 200 --k 8 --max-new-tokens 64 => --n 4 --k 2 --max-new-tokens 32
  output: pass@1
@ r1kit generate --model runs/sft-tiny/final --prompt "What is 7*8+45?" --n 4
  sub: --n 4 => --n 2 --max-new-tokens 16
  output: sample 1
@ r1kit eval --model runs/grpo-tiny/final --k 8 --greedy
  sub: --k 8 => --n 4 --k 2 --max-new-tokens 32
  output: pass@1
@ r1kit eval --model runs/grpo-tiny/final --n 20 --k 4 --records samples.jsonl --format score
  sub: --n 20 --k 4 => --n 4 --k 2 --max-new-tokens 32
  lines: samples.jsonl 8
@ r1kit eval --model runs/grpo-tiny/final --plugin build/libr1kit_example_reward_plugin.so --rewards '[{name: arithmetic}, {name: keyword_bonus, keyword: therefore}]'
  short: --n 4 --k 2 --max-new-tokens 32
  output: keyword_bonus
@ r1kit eval --model runs/sft-tiny/final --n 20 --k 4 --records samples.jsonl --format score
  sub: --n 20 --k 4 => --n 4 --k 2 --max-new-tokens 32
  lines: samples.jsonl 8
@ r1kit reward score --rewards arithmetic,format --input samples.jsonl
  output: "total"
@ r1kit reward score --rewards arithmetic,format --input samples.jsonl --output scores.jsonl
  lines: scores.jsonl 8
@ r1kit reward score --rewards math_accuracy,format --weights 1,0.5 --input samples.jsonl
  output: "math_accuracy"
@ r1kit reward score --rewards math_accuracy,format --weights 1,0.5 --args '{"format": {"prefilled_think": true}}' --input samples.jsonl --output scores.jsonl
  lines: scores.jsonl 8
@ r1kit reward score --plugin ./libmy_reward.so --rewards my_reward --args '{"my_reward": {"keyword": "therefore"}}' --input samples.jsonl
  before: cp reward/examples/keyword_bonus_plugin.cpp my_reward.cpp
  before: sed -i '87s/"keyword_bonus"/"my_reward"/' my_reward.cpp
  before: g++ -std=c++17 -O2 -shared -fPIC -I. my_reward.cpp -o libmy_reward.so
  output: "my_reward"
@ r1kit report runs/grpo-tiny
  file: runs/grpo-tiny/report.html
@ r1kit rollout-worker --model runs/sft-tiny/final --port 50051 --token-file tok.txt &
  before: head -c 24 /dev/urandom | base64 > tok.txt
  sub: 50051 => $DOCS_PORT
  listens: $DOCS_PORT
@ r1kit generate --model runs/sft-tiny/final --prompt "What is 7*8+45?" --chat-template plain --n 2 --seed 3 --worker 127.0.0.1:50051 --token-file tok.txt
  sub: 50051 => $DOCS_PORT
  short: --max-new-tokens 16
  output: sample 1
@ r1kit grpo recipes/grpo-tiny.yaml "rollout.workers=[127.0.0.1:50051]" rollout.token_file=tok.txt
  sub: 50051 => $DOCS_PORT
  short: grpo.steps=2 rollout.group_size=2 rollout.prompts_per_step=2 grpo.eval_every=0
  file: runs/grpo-tiny/checkpoints/step-000002/model.safetensors
@ r1kit task list
  output: countdown
@ r1kit task generate --task countdown --n 1000 --seed 1 --out cd.jsonl --traces
  lines: cd.jsonl 1000
@ r1kit task generate --task countdown --n 1000 --seed 1 --out countdown.jsonl --traces
  lines: countdown.jsonl 1000
@ r1kit task generate --task arithmetic --n 500 --task-arg max_a=9 --task-arg max_c=9 --out easy.jsonl --traces
  lines: easy.jsonl 500
@ r1kit task generate --task arithmetic --n 2000 --out sft.jsonl --format sft
  lines: sft.jsonl 2000
@ r1kit sft recipes/sft-tiny.yaml data.source=jsonl data.path=sft.jsonl checkpoint.dir=runs/sft-mine
  short: train.steps=2 train.eval_every=0
  file: runs/sft-mine/final/model.safetensors
@ r1kit distill recipes/distill-tiny.yaml
  short: sample.n_prompts=8 sample.samples_per_prompt=2 sample.max_new_tokens=32 sample.min_reward=-1 sample.require_stop=false train.steps=2 train.eval_every=0
  file: runs/distill-tiny/traces.jsonl
  file: runs/distill-tiny/final/model.safetensors
@ r1kit distill recipes/distill-tiny.yaml sample.n_prompts=32 train.steps=20 kd.alpha=0 checkpoint.dir=runs/distill-quick
  short: sample.n_prompts=8 sample.samples_per_prompt=2 sample.max_new_tokens=32 sample.min_reward=-1 sample.require_stop=false train.steps=2 train.eval_every=0
  file: runs/distill-quick/final/model.safetensors
@ r1kit distill recipes/distill-tiny.yaml --print-recipe
  output: resolved recipe
@ r1kit eval --model runs/distill-tiny/final --task arithmetic --task-arg max_a=9 --task-arg max_b=9 --task-arg max_c=99 --chat-template plain --n 200 --k 8 --max-new-tokens 64 --greedy --seed 1
  sub: --n 200 --k 8 --max-new-tokens 64 => --n 4 --k 2 --max-new-tokens 32
  output: pass@1
@ r1kit run recipes/r1-tiny.yaml
  short: run.max_minutes=0 sft.n_examples=300 sft.train.steps=2 sft.train.eval_every=0 grpo.steps=1 rollout.group_size=2 rollout.prompts_per_step=2 eval.problems=3 eval.k=2 eval.max_new_tokens=32
  file: runs/r1-tiny/sft/final/model.safetensors
  file: runs/r1-tiny/grpo/final/model.safetensors
  file: runs/r1-tiny/grpo/eval_grpo.json
  file: runs/r1-tiny/report.html
@ r1kit run recipes/r1-tiny.yaml "run.stages=[control,eval]"
  short: run.max_minutes=0 sft.n_examples=300 sft.train.steps=2 sft.train.eval_every=0 grpo.steps=1 rollout.group_size=2 rollout.prompts_per_step=2 eval.problems=3 eval.k=2 eval.max_new_tokens=32
  file: runs/r1-tiny/control/final/model.safetensors
  file: runs/r1-tiny/grpo/eval_control.json
@ r1kit report runs/r1-tiny/grpo --svg-dir plots
  file: plots/accuracy.svg
@ r1kit report runs/r1-tiny --svg-dir docs/img/r1-tiny --svg-metrics accuracy,reward,sft/loss
  before: mkdir -p docs/img/r1-tiny
  file: docs/img/r1-tiny/accuracy.svg
@ r1kit distill recipes/distill-r1-tiny.yaml
  short: sample.n_prompts=8 sample.samples_per_prompt=2 sample.max_new_tokens=32 sample.min_reward=-1 sample.require_stop=false train.steps=2 train.eval_every=0
  file: runs/distill-r1-tiny/final/model.safetensors
@ r1kit distill recipes/distill-on-policy-tiny.yaml
  short: train.steps=2 on_policy.prompts_per_step=2 on_policy.samples_per_prompt=2 on_policy.max_new_tokens=32 on_policy.eval_problems=2 train.eval_every=0
  file: runs/distill-on-policy-tiny/final/model.safetensors
@ r1kit eval --model runs/distill-on-policy-tiny/final --task arithmetic --task-arg max_a=9 --task-arg max_b=9 --task-arg max_c=99 --chat-template plain --n 200 --k 8 --max-new-tokens 64 --greedy --seed 1
  sub: --n 200 --k 8 --max-new-tokens 64 => --n 4 --k 2 --max-new-tokens 32
  output: pass@1
@ r1kit distill recipes/distill-r1-tiny.yaml checkpoint.dir=runs/cmp-offline
  short: sample.n_prompts=8 sample.samples_per_prompt=2 sample.max_new_tokens=32 sample.min_reward=-1 sample.require_stop=false train.steps=2 train.eval_every=0
  file: runs/cmp-offline/final/model.safetensors
@ r1kit distill recipes/distill-on-policy-tiny.yaml 'model.from=""' train.steps=240 train.optim.lr=3.0e-3 train.optim.warmup_steps=20 checkpoint.dir=runs/cmp-on-policy
  short: train.steps=2 on_policy.prompts_per_step=2 on_policy.samples_per_prompt=2 on_policy.max_new_tokens=32 on_policy.eval_problems=2 train.eval_every=0
  file: runs/cmp-on-policy/final/model.safetensors
@ r1kit distill recipes/distill-on-policy-tiny.yaml model.from=runs/cmp-offline/final checkpoint.dir=runs/cmp-refine
  short: train.steps=2 on_policy.prompts_per_step=2 on_policy.samples_per_prompt=2 on_policy.max_new_tokens=32 on_policy.eval_problems=2 train.eval_every=0
  file: runs/cmp-refine/final/model.safetensors
@ r1kit rollout-worker --model runs/r1-tiny/grpo/final --port 50061 &
  listens: 50061
@ r1kit distill recipes/distill-on-policy-tiny.yaml "teacher.workers=[127.0.0.1:50061]" on_policy.loss=sampled checkpoint.dir=runs/distill-op-workers
  short: train.steps=2 on_policy.prompts_per_step=2 on_policy.samples_per_prompt=2 on_policy.max_new_tokens=32 on_policy.eval_problems=2 train.eval_every=0
  file: runs/distill-op-workers/final/model.safetensors
@ r1kit run recipes/r1-zero-tiny.yaml
  short: pretrain.n_examples=300 pretrain.train.steps=2 pretrain.train.eval_every=0 grpo.steps=1 rollout.group_size=2 rollout.prompts_per_step=2 eval.problems=3 eval.k=2 eval.max_new_tokens=32
  file: runs/r1-zero-tiny/grpo/final/model.safetensors
  file: runs/r1-zero-tiny/report.html
@ r1kit run recipes/r1-longer-tiny.yaml
  short: sft.n_examples=300 sft.train.steps=2 sft.train.eval_every=0 grpo.steps=1 rollout.group_size=2 rollout.prompts_per_step=2 grpo.train.eval_problems=2 eval.problems=3 eval.k=2 eval.max_new_tokens=32
  file: runs/r1-longer-tiny/grpo/final/model.safetensors
  file: runs/r1-longer-tiny/report.html
@ r1kit run recipes/r1-longer-tiny.yaml "run.stages=[sft,grpo,control,eval,report]"
  short: sft.n_examples=300 sft.train.steps=2 sft.train.eval_every=0 grpo.steps=1 rollout.group_size=2 rollout.prompts_per_step=2 grpo.train.eval_problems=2 eval.problems=3 eval.k=2 eval.max_new_tokens=32
  file: runs/r1-longer-tiny/grpo/final/model.safetensors
  file: runs/r1-longer-tiny/control/final/model.safetensors
  file: runs/r1-longer-tiny/report.html
@ r1kit report runs/r1-longer-tiny --svg-dir plots --smoothing 0 --svg-metrics grpo/eval/pass@1+grpo/eval/sample_mean_length+grpo/eval/reward/worked
  file: plots/grpo_eval_pass@1+grpo_eval_sample_mean_length+grpo_eval_reward_worked.svg
@ r1kit run recipes/r1-countdown-tiny.yaml
  short: sft.n_examples=300 sft.train.steps=2 sft.train.eval_every=0 grpo.steps=1 rollout.group_size=2 rollout.prompts_per_step=2 eval.problems=3 eval.k=2 eval.max_new_tokens=32
  file: runs/r1-countdown-tiny/grpo/final/model.safetensors
  file: runs/r1-countdown-tiny/report.html
@ r1kit run recipes/r1-countdown-search-tiny.yaml
  short: sft.n_examples=300 sft.max_seq_len=256 sft.train.steps=2 sft.train.eval_every=0 grpo.steps=1 rollout.group_size=2 rollout.prompts_per_step=2 rollout.max_new_tokens=32 eval.problems=3 eval.k=2 eval.max_new_tokens=32
  file: runs/r1-countdown-search-tiny/grpo/final/model.safetensors
  file: runs/r1-countdown-search-tiny/report.html
@ r1kit run recipes/r1-countdown-search-tiny.yaml "run.stages=[control,eval]"
  short: sft.n_examples=300 sft.max_seq_len=256 sft.train.steps=2 sft.train.eval_every=0 grpo.steps=1 rollout.group_size=2 rollout.prompts_per_step=2 rollout.max_new_tokens=32 eval.problems=3 eval.k=2 eval.max_new_tokens=32
  file: runs/r1-countdown-search-tiny/control/final/model.safetensors
@ r1kit run recipes/r1-countdown-tiny.yaml run.dir=runs/cd-search "run.stages=[sft]" task.trace=search sft.n_examples=30000 sft.max_seq_len=512 sft.train.steps=600 grpo.rollout.max_new_tokens=320 eval.max_new_tokens=320
  short: sft.n_examples=300 sft.train.steps=2 sft.train.eval_every=0
  file: runs/cd-search/sft/final/model.safetensors
@ r1kit eval --model runs/cd-search/sft/final --n 200 --k 8 --greedy --temperature 1 --max-new-tokens 384 --max-batch 128 --batch 32
  sub: --n 200 --k 8 --greedy --temperature 1 --max-new-tokens 384 => --n 4 --k 2 --greedy --temperature 1 --max-new-tokens 32
  output: pass@1
@ r1kit run RECIPE run.dir=D run.stages=[sft,grpo] run.max_minutes=0 grpo.steps=N grpo.train.max_minutes=0 grpo.shared_prompt=false [grpo.rollout.exact=true] [grpo.routing_replay=rollout]
  skip: synopsis with placeholders (docs/grpo-training.md's A/B loop)
@ r1kit eval --model D/grpo/final --k 8 --greedy --json D.eval.json
  skip: synopsis with placeholders (docs/grpo-training.md's A/B loop)
@ r1kit rollout-worker --model runs/sft-tiny/final --port 50051 --token-file tok.txt
  skip: the same server as the run `... --token-file tok.txt &` (docs/rollout.md)
@ r1kit rollout-worker --model runs/sft/final --port 50051
  skip: a server, runs until stopped (tests/rollout/grpc covers it)
@ r1kit rollout-worker --model runs/sft/final --port 50051 --bind 0.0.0.0 --token-file worker.token --tls-cert worker.crt --tls-key worker.key
  skip: a server with your TLS certificate and key
@ r1kit tokenizer render --model CHECKPOINT_DIR --input conversations.jsonl
  skip: placeholders: your checkpoint and conversations
@ r1kit tokenizer render --model DIR --input conversations.jsonl > rendered.jsonl
  skip: placeholders: your checkpoint and conversations
@ r1kit tokenizer render --template chatml.jinja --input conversations.jsonl
  skip: your template and conversations files
@ r1kit tokenizer encode --model DIR_OR_FILE --text "Hello World"
  skip: placeholder: a Hugging Face tokenizer.json (docs/tokenizers.md)
@ r1kit tokenizer encode --model DIR_OR_FILE --text "Hello World" --add-special
  skip: placeholder: a Hugging Face tokenizer.json (docs/tokenizers.md)
@ r1kit tokenizer encode --model DIR_OR_FILE --input texts.jsonl > ids.jsonl
  skip: placeholder: a Hugging Face tokenizer.json (docs/tokenizers.md)
@ r1kit tokenizer decode --model DIR_OR_FILE --ids 9906,4435
  skip: placeholder: a Hugging Face tokenizer.json (docs/tokenizers.md)
@ r1kit tokenizer decode --model DIR_OR_FILE --input ids.jsonl > texts.jsonl
  skip: placeholder: a Hugging Face tokenizer.json (docs/tokenizers.md)
@ r1kit eval --model DIR [--task arithmetic] [--task-path F] [--n 500] [--k 8]
  skip: synopsis
@ r1kit generate --model DIR (--prompt "What is 7 * 6?" | --chat "What is 2+3?" | --ids 5,17,42)
  skip: synopsis
@ r1kit report RUN_DIR [--out FILE] [--smoothing W]
  skip: synopsis
@ r1kit model init|info|logits docs/model.md
  skip: synopsis (docs/design.md's command table)
@ r1kit tokenizer train|encode|decode docs/tokenizer.md, docs/tokenizers.md
  skip: synopsis (docs/design.md's command table)
@ r1kit tokenizer render docs/chat_templates.md
  skip: synopsis (docs/design.md's command table)
@ r1kit pretrain RECIPE [key=value] docs/recipes.md
  skip: synopsis (docs/design.md's command table)
@ r1kit sft RECIPE [key=value] docs/sft.md
  skip: synopsis (docs/design.md's command table)
@ r1kit distill RECIPE [key=value] docs/distill.md
  skip: synopsis (docs/design.md's command table)
@ r1kit grpo RECIPE [key=value] docs/grpo-training.md
  skip: synopsis (docs/design.md's command table)
@ r1kit run RECIPE [key=value] docs/pipeline.md
  skip: synopsis (docs/design.md's command table)
@ r1kit generate | eval | report docs/rollout.md, docs/eval.md
  skip: synopsis (docs/design.md's command table)
@ r1kit rollout-worker docs/protocol.md
  skip: synopsis (docs/design.md's command table)
@ r1kit reward score | task generate docs/rewards.md
  skip: synopsis (docs/design.md's command table)
EOF
)

fail() { echo "docs-check: FAIL: $*" >&2; FAILED=$((FAILED + 1)); }
FAILED=0

# The documented commands, first occurrence first, with where they are written.
declare -A WHERE
while IFS=$'\t' read -r where cmd; do
  [ -n "${WHERE[$cmd]:-}" ] && WHERE[$cmd]+=" $where" || WHERE[$cmd]=$where
done < <(extract)

# The table's entries: the command, then its fields (one per line, "key: value").
declare -a ORDER
declare -A FIELDS
cur=
while IFS= read -r line; do
  case $line in
    "@ "*) cur=${line#@ }; ORDER+=("$cur"); FIELDS[$cur]= ;;
    "  "*) FIELDS[$cur]+="${line#  }"$'\n' ;;
  esac
done <<<"$TABLE"

for cmd in "${!WHERE[@]}"; do
  [ -n "${FIELDS[$cmd]+x}" ] || fail "${WHERE[$cmd]}: '$cmd' is neither run nor skipped here (add it to scripts/docs-check.sh's table)"
done
for cmd in "${ORDER[@]}"; do
  [ -n "${WHERE[$cmd]:-}" ] ||
    fail "table entry '$cmd' is in no doc any more (the docs changed: update the entry)"
done
[ $FAILED = 0 ] || exit 1

[ -x "$BUILD/r1kit" ] || { echo "docs-check: no $BUILD/r1kit (build first)" >&2; exit 2; }
WORK=$(mktemp -d "${TMPDIR:-/tmp}/r1kit-docs-check.XXXXXX")
BG_PIDS=()
cleanup() {
  for pid in "${BG_PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  [ $KEEP = 1 ] && echo "docs-check: working in $WORK" >&2 || rm -rf "$WORK"
}
trap cleanup EXIT
# True when something accepts connections on 127.0.0.1:$1.
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
export DOCS_PORT=50051
while listening $DOCS_PORT; do DOCS_PORT=$((DOCS_PORT + 1)); done
mkdir -p "$WORK/bin" "$WORK/reward"
ln -s "$BUILD" "$WORK/build"
ln -s "$BUILD/r1kit" "$WORK/bin/r1kit"
cp -r "$ROOT/recipes" "$WORK/"
cp -r "$ROOT/reward/examples" "$ROOT/reward/plugin_abi.h" "$WORK/reward/"
export PATH="$WORK/bin:$PATH"
cd "$WORK" || exit 2

ran=0
skipped=0
for cmd in "${ORDER[@]}"; do
  f=${FIELDS[$cmd]}
  if reason=$(grep -m1 '^skip: ' <<<"$f"); then
    skipped=$((skipped + 1))
    continue
  fi
  run=$cmd
  if [ $SHORT = 1 ]; then
    while IFS= read -r s; do
      from=${s%% => *}
      [[ $run == *"$from"* ]] || fail "'$cmd': its sub: '$from' is not in the command"
      run=${run//"$from"/"${s#* => }"}
    done < <(grep '^sub: ' <<<"$f" | sed 's/^sub: //')
    extra=$(grep '^short: ' <<<"$f" | sed 's/^short: //')
    [ -n "$extra" ] && run="$run $extra"
  fi
  while IFS= read -r b; do
    bash -c "$b" >>before.log 2>&1 || fail "'$cmd': its step '$b' failed (before.log)"
  done < <(grep '^before: ' <<<"$f" | sed 's/^before: //')
  echo "docs-check: $run" >&2
  start=$SECONDS
  ran=$((ran + 1))
  if port=$(grep -m1 '^listens: ' <<<"$f"); then
    port=$(bash -c "echo ${port#listens: }")
    bash -c "exec ${run% &}" >"server.$ran.log" 2>&1 &
    BG_PIDS+=($!)
    for _ in $(seq 60); do listening "$port" && break; sleep 1; done
    if listening "$port"; then
      echo "docs-check:   ok, listening on $port (stopped at the end)" >&2
    else
      fail "'$run' (${WHERE[$cmd]}): nothing listens on $port after a minute:"$'\n'"$(tail -n 5 "server.$ran.log")"
    fi
    continue
  fi
  out=$(bash -c "$run" 2>&1)
  rc=$?
  if [ $rc != 0 ]; then
    fail "'$run' (${WHERE[$cmd]}) exited $rc:"$'\n'"$(tail -n 15 <<<"$out")"
    continue
  fi
  echo "docs-check:   ok, $((SECONDS - start)) s" >&2
  while IFS= read -r p; do
    [ -s "$p" ] || fail "'$cmd' (${WHERE[$cmd]}): no $p afterwards"
  done < <(grep '^file: ' <<<"$f" | sed 's/^file: //')
  while read -r p n; do
    have=$(wc -l <"$p" 2>/dev/null || echo 0)
    [ "$have" -ge "$n" ] || fail "'$cmd' (${WHERE[$cmd]}): $p has $have lines, expected at least $n"
  done < <(grep '^lines: ' <<<"$f" | sed 's/^lines: //')
  while IFS= read -r re; do
    grep -qE -- "$re" <<<"$out" || fail "'$cmd' (${WHERE[$cmd]}): output does not match /$re/:"$'\n'"$(tail -n 5 <<<"$out")"
  done < <(grep '^output: ' <<<"$f" | sed 's/^output: //')
done
echo "docs-check: $ran commands run, $skipped skipped with a reason, $FAILED failures" >&2
[ $FAILED = 0 ]
