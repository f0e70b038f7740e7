// `r1kit sft RECIPE`: supervised fine-tuning (the R1 cold start), and the SFT half of
// distillation.
//
// Follows torchtune's full fine-tune recipe and TRL's SFTTrainer: prompt/response data
// (JSONL or a procedural task's step-by-step traces) rendered through the recipe's
// chat template, loss on response tokens only, optional packing, AdamW with warmup and
// cosine decay, gradient clipping, held-out loss, atomic checkpoints and exact resume.
// What it does differently, on purpose:
// - gradient accumulation divides every micro-batch's summed token loss by the number
//   of response tokens in the WHOLE step, so a step's gradient does not depend on how it
//   is split (the HF/TRL accumulation bug of 2024);
// - bf16 compute (model.compute) is autocast over fp32 master weights (the model and AdamW
//   stay fp32; train/compute.h);
// - batches are a pure function of (seed, step): a resumed run sees the same data.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/status.h"
#include "data/task_source.h"
#include "data/tokenizer.h"
#include "policy/model_config.h"
#include "sft/pretrain.h"
#include "sft/sft_data.h"
#include "train/optim.h"
#include "train/sections.h"

namespace r1kit::sft {

// Where SFT examples come from: the recipe's task (its problems' traces) or a JSONL file.
enum class SftSource { kTask, kJsonl };
inline constexpr EnumName<SftSource> kSftSourceNames[] = {{SftSource::kTask, "task"},
                                                          {SftSource::kJsonl, "jsonl"}};

struct SftDataSection {
  SftSource source = SftSource::kTask;  // task | jsonl
  std::string path;                     // jsonl: the file
  int64_t n_examples = 4000;            // task: training problems learned
  uint64_t seed = 1;                    // shuffles the train/held-out split
  double holdout_fraction = 0.05;       // examples held out for the eval loss
  bool pack = true;                     // pack samples into rows of max_seq_len
  int64_t max_seq_len = 256;            // row length (packed) / truncation length

  void visit(ConfigVisitor& v) {
    v.field("source", source,
            "where examples come from: task (the recipe's task: its training problems with "
            "their step-by-step traces) or jsonl (prompt/response pairs in data.path)",
            kSftSourceNames);
    v.field("path", path, "jsonl: {prompt, response} or {messages} objects, one per line");
    v.field("n_examples", n_examples,
            "task: the first N problems of the task's training stream (never its held-out ones)",
            Range::at_least(2));
    v.field("seed", seed, "shuffles the train/held-out split of the examples");
    v.field("holdout_fraction", holdout_fraction, "share of examples held out for eval_loss",
            Range::between(0, 0.5));
    v.field("pack", pack,
            "pack several samples per row (block-diagonal attention, positions restart)");
    v.field("max_seq_len", max_seq_len, "row length in tokens; longer samples are truncated",
            Range::at_least(8));
  }
  Status validate() const {
    if (source == SftSource::kJsonl && path.empty())
      return InvalidArgument("data.source=jsonl needs data.path");
    return OkStatus();
  }
};

struct SftTrainSection {
  int64_t steps = 300;                                  // optimizer steps
  int64_t batch_size = 8;                               // rows per micro-batch
  int64_t grad_accum = 1;                               // micro-batches per optimizer step
  uint64_t seed = 1;                                    // model init and data order
  train::OptimConfig optim;                             // AdamW and schedule
  int64_t log_every = 10;    // console cadence; JSONL/TensorBoard get every step
  int64_t eval_every = 100;  // held-out loss cadence; 0 = only at the end
  int64_t eval_batches = 4;  // micro-batches of the held-out loss
  int64_t stop_after = 0;    // end this invocation after N steps (checkpointed); 0 = run all
  double max_minutes = 0;    // end training after this wall time (saves final); 0 = off
  // Non-finite steps in a row that end the run (train/setup.h, TrainingRun::count_step).
  int64_t max_skipped_steps = 10;

  void visit(ConfigVisitor& v) {
    v.field("steps", steps, "optimizer steps", Range::at_least(1));
    v.field("batch_size", batch_size, "rows per micro-batch", Range::at_least(1));
    v.field("grad_accum", grad_accum, "micro-batches per optimizer step", Range::at_least(1));
    v.field("seed", seed, "model init and data order seed");
    v.section("optim", optim, "AdamW with warmup and cosine decay");
    v.field("log_every", log_every, "console cadence in steps", Range::at_least(1));
    v.field("eval_every", eval_every, "held-out loss cadence in steps; 0 = at the end",
            Range::non_negative());
    v.field("eval_batches", eval_batches, "micro-batches in the held-out loss", Range::at_least(1));
    v.field("stop_after", stop_after,
            "end this invocation after N steps, with a checkpoint; 0 = run all",
            Range::non_negative());
    v.field("max_minutes", max_minutes,
            "stop training after this many minutes and save the final model (a fixed time "
            "budget, e.g. for fair comparisons); 0 = off",
            Range::non_negative());
    v.field("max_skipped_steps", max_skipped_steps, train::kMaxSkippedStepsHelp,
            Range::at_least(1));
  }
};

struct SftRecipe {
  policy::ModelConfig model;
  train::TokenizerSection tokenizer;
  data::TaskSection task;  // the problems (data.source=task) and the prompt template
  SftDataSection data;
  SftTrainSection train;
  train::CheckpointSection checkpoint{"runs/sft", 100, true};
  train::DistSection dist;
  void visit(ConfigVisitor& v) {
    v.section("model", model, "the policy to fine-tune (model.from: a checkpoint)");
    v.section("tokenizer", tokenizer,
              "tokenizer: path, else model.from's, else trained on the examples");
    v.section("task", task,
              "the task whose training problems SFT learns (data.source=task; its held-out "
              "ones never), and the chat template of every prompt");
    v.section("data", data, "SFT examples");
    v.section("train", train, "training loop");
    v.section("checkpoint", checkpoint, "run directory and checkpoints");
    v.section("dist", dist, "threads and (later) processes");
  }
  Status validate() const;
};

struct SftResult {
  double first_loss = 0;  // training loss of the first step run
  double final_loss = 0;  // mean training loss of the last log window
  double eval_loss = 0;   // last held-out loss
  int64_t steps_run = 0;  // steps executed by this call
  bool finished = false;  // reached train.steps or max_minutes
  std::string final_dir;  // the final model
};

// The examples a recipe describes, before the split: the first data.n_examples training
// problems of its task with their worked solutions (TaskSource::solved_problems; any
// task whose problems have traces, JSONL task files with a "trace" field included), or
// data.path's prompt/response pairs (and, under a Jinja chat template, multi-turn
// conversations).
StatusOr<std::vector<TextExample>> load_sft_examples(const SftRecipe& recipe);

// Token-level SFT loss terms of one micro-batch: the SUM of response-token negative
// log-likelihoods (divide by the step's token count), the balance loss and the MTP
// loss (per micro-batch means: divide by the number of micro-batches).
struct SftLossTerms {
  torch::Tensor nll_sum;  // scalar, differentiable
  torch::Tensor aux;      // scalar, differentiable
  torch::Tensor mtp;      // scalar, differentiable (0 when MTP is off)
  torch::Tensor hidden;   // [B, T, d] final-normed hidden states (the lm_head input)
};
SftLossTerms sft_loss_terms(policy::TransformerImpl& model, const SftBatch& batch);

// What another trainer built on the SFT loop (distillation) plugs into it.
struct SftHooks {
  // An extra per-token loss mixed with the NLL: the micro-batch loss becomes
  //   ((1 - token_loss_weight) * nll_sum + token_loss_weight * token_loss(...)) / N
  // with N the step's response-token count. token_loss returns the SUM over the
  // batch's response tokens (loss_mask) of a differentiable per-token loss; it gets the
  // student, the batch and the student's hidden states [B, T, d]. Logged per step as
  // `token_loss_name` (divided by N); `loss` stays the NLL so runs compare.
  std::function<torch::Tensor(policy::TransformerImpl& model, const SftBatch& batch,
                              const torch::Tensor& hidden)>
      token_loss;
  double token_loss_weight = 0;
  std::string token_loss_name = "token_loss";
};

StatusOr<SftResult> run_sft(const SftRecipe& recipe, const SftHooks& hooks = {});

// The keys of `r1kit sft` and `r1kit pretrain` recipes (dotted prefixes) that may change
// between a run and its resume: they do not change what is computed (steps, logging and
// evaluation cadence, time box, checkpoint, threads).
const std::vector<std::string>& resumable_keys();

}  // namespace r1kit::sft
