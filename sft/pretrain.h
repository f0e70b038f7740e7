// `r1kit pretrain RECIPE`: causal-LM training of a policy on a generated task corpus.
//
// The foundation's end-to-end job: generate a corpus (arithmetic problems with their
// step-by-step solutions, rendered in the R1 format), train a SentencePiece tokenizer
// on it, and train the policy with next-token cross-entropy (plus the MoE balance and
// MTP losses when on), printing the loss. It also makes the "base model" of an
// R1-Zero run. Batches are a pure function of (seed, step), so a run resumed from a
// checkpoint continues exactly as the uninterrupted one.
#pragma once

#include <string>

#include "core/config.h"
#include "core/status.h"
#include "policy/model_config.h"
#include "train/optim.h"
#include "train/sections.h"

namespace r1kit::sft {

struct CorpusSection {
  std::string task = "arithmetic";      // procedural task that generates the corpus
  int64_t n_examples = 20000;           // problems generated
  uint64_t seed = 1;                    // generator seed
  int64_t max_a = 99;                   // arithmetic: a in [2, max_a]
  int64_t max_b = 9;                    // arithmetic: b in [2, max_b]
  int64_t max_c = 99;                   // arithmetic: c in [0, max_c]
  std::string trace = "direct";         // arithmetic: direct | columns (data/arithmetic.h)
  double holdout_fraction = 0.02;       // share of tokens kept for the evaluation loss
  std::string chat_template = "plain";  // how a problem and its solution are rendered
  void visit(ConfigVisitor& v) {
    v.field("task", task, "procedural task", OneOf{"arithmetic"});
    v.field("n_examples", n_examples, "problems generated", Range::at_least(10));
    v.field("seed", seed, "generator seed");
    v.field("max_a", max_a, "arithmetic: a in [2, max_a]", Range::at_least(2));
    v.field("max_b", max_b, "arithmetic: b in [2, max_b]", Range::at_least(2));
    v.field("max_c", max_c, "arithmetic: c in [0, max_c]", Range::at_least(0));
    v.field("trace", trace,
            "arithmetic: SFT trace, direct (23*7=161. ...) or columns (digit by digit)",
            OneOf{"direct", "columns"});
    v.field("holdout_fraction", holdout_fraction,
            "share of the token stream (its tail) held out for the eval loss",
            Range::between(0, 0.5));
    v.field("chat_template", chat_template,
            "prompt template: plain (User:/Assistant:) or r1_zero (the R1-Zero preamble)",
            OneOf{"plain", "r1_zero"});
  }
};

struct TrainSection {
  int64_t steps = 200;       // optimizer steps
  int64_t batch_size = 16;   // sequences per step
  int64_t seq_len = 128;     // tokens per sequence
  uint64_t seed = 1;         // model init and batch sampling
  train::OptimConfig optim;         // AdamW and schedule
  int64_t log_every = 10;    // console cadence (steps); JSONL gets every step
  int64_t eval_every = 50;   // held-out loss cadence (steps); 0 = only at the end
  int64_t eval_batches = 4;  // batches of the held-out loss
  int64_t stop_after = 0;    // end this invocation after N steps (checkpointed); 0 = run all
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
  }
};

struct PretrainRecipe {
  policy::ModelConfig model;
  train::TokenizerSection tokenizer;
  CorpusSection data;
  TrainSection train;
  train::CheckpointSection checkpoint;
  train::DistSection dist;
  void visit(ConfigVisitor& v) {
    v.section("model", model, "the policy to train");
    v.section("tokenizer", tokenizer, "SentencePiece tokenizer");
    v.section("data", data, "generated training corpus");
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

// Renders one example through the chat template (`template_name`: plain | r1_zero) with
// the R1 answer format as the response: "<think> trace </think> <answer> x </answer>".
std::string render_corpus_line(const std::string& template_name, const std::string& question,
                               const std::string& trace, const std::string& answer);

// A caller-made corpus (the pipeline's pretrain stage builds it from the task's training
// problems, so the held-out ones never appear). Empty: generate one from `data`.
struct PretrainHooks {
  std::vector<std::string> lines;  // one document each, rendered as render_corpus_line does
};

StatusOr<PretrainResult> run_pretrain(const PretrainRecipe& recipe,
                                      const PretrainHooks& hooks = {});

}  // namespace r1kit::sft
