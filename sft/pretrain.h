// `r1kit pretrain RECIPE`: causal-LM training of a policy on a task corpus.
//
// The foundation's end-to-end job: a corpus of the recipe's task (its first
// data.n_examples training problems with their step-by-step solutions, rendered through
// the task's chat template in the R1 format; the held-out problems never appear), a
// SentencePiece tokenizer trained on it, and the policy trained with next-token
// cross-entropy (plus the MoE balance and MTP losses when on), printing the loss. It
// also makes the "base model" of an R1-Zero run. Batches are a pure function of (seed,
// step), so a run resumed from a checkpoint continues exactly as the uninterrupted one.
#pragma once

#include <string>

#include "core/config.h"
#include "core/status.h"
#include "data/task_source.h"
#include "policy/model_config.h"
#include "train/optim.h"
#include "train/sections.h"

namespace r1kit::sft {

struct CorpusSection {
  int64_t n_examples = 20000;      // training problems in the corpus
  double holdout_fraction = 0.02;  // share of tokens kept for the evaluation loss
  void visit(ConfigVisitor& v) {
    v.field("n_examples", n_examples, "the task's first N training problems", Range::at_least(10));
    v.field("holdout_fraction", holdout_fraction,
            "share of the token stream (its tail) held out for the eval loss",
            Range::between(0, 0.5));
  }
};

struct TrainSection {
  int64_t steps = 200;       // optimizer steps
  int64_t batch_size = 16;   // sequences per step
  int64_t seq_len = 128;     // tokens per sequence
  uint64_t seed = 1;         // model init and batch sampling
  train::OptimConfig optim;  // AdamW and schedule
  int64_t log_every = 10;    // console cadence (steps); JSONL gets every step
  int64_t eval_every = 50;   // held-out loss cadence (steps); 0 = only at the end
  int64_t eval_batches = 4;  // batches of the held-out loss
  int64_t stop_after = 0;    // end this invocation after N steps (checkpointed); 0 = run all
  // Non-finite steps in a row that end the run (train/setup.h, TrainingRun::count_step).
  int64_t max_skipped_steps = 10;
  void visit(ConfigVisitor& v) {
    v.field("steps", steps, "optimizer steps", Range::at_least(1));
    v.field("batch_size", batch_size, "sequences per step", Range::at_least(1));
    v.field("seq_len", seq_len, "tokens per sequence", Range::at_least(8));
    v.field("seed", seed, "model init and batch sampling seed");
    v.section("optim", optim, "AdamW with warmup and cosine decay");
    v.field("log_every", log_every,
            "console cadence in steps (mean loss of the window); metrics.jsonl gets every step",
            Range::at_least(1));
    v.field("eval_every", eval_every, "held-out loss cadence in steps; 0 = at the end",
            Range::non_negative());
    v.field("eval_batches", eval_batches, "batches in the held-out loss", Range::at_least(1));
    v.field("stop_after", stop_after,
            "end this invocation after N steps, with a checkpoint (a time box); 0 = run all",
            Range::non_negative());
    v.field("max_skipped_steps", max_skipped_steps, train::kMaxSkippedStepsHelp,
            Range::at_least(1));
  }
};

struct PretrainRecipe {
  PretrainRecipe() { task.chat_template = "plain"; }  // User:/Assistant:
  policy::ModelConfig model;
  train::TokenizerSection tokenizer;
  data::TaskSection task;  // the corpus's problems and their chat template
  CorpusSection data;
  TrainSection train;
  train::CheckpointSection checkpoint;
  train::DistSection dist;
  void visit(ConfigVisitor& v) {
    v.section("model", model, "the policy to train");
    v.section("tokenizer", tokenizer, "SentencePiece tokenizer");
    v.section("task", task,
              "the corpus's task (its training problems with their traces) and chat template "
              "(plain: User:/Assistant:; r1_zero: the R1-Zero preamble, ~4x longer lines)");
    v.section("data", data, "the corpus");
    v.section("train", train, "training loop");
    v.section("checkpoint", checkpoint, "run directory and checkpoints");
    v.section("dist", dist, "threads and (later) processes");
  }
};

struct PretrainResult {
  double first_loss = 0;  // training loss of the first step
  double final_loss = 0;  // mean training loss of the last log window
  double eval_loss = 0;   // final held-out loss
  int64_t steps_run = 0;  // steps executed by this call (excludes resumed ones)
  bool finished = false;  // reached train.steps (false when stopped by stop_after)
  std::string final_dir;  // the final model checkpoint
};

StatusOr<PretrainResult> run_pretrain(const PretrainRecipe& recipe);

}  // namespace r1kit::sft
