// The `r1kit grpo` recipe: its sections (rollout sampling, the RL loop) and the shared
// training sections (train/sections.h). docs/grpo-training.md lists every key.
#pragma once

#include <string>
#include <vector>

#include "core/config.h"
#include "core/status.h"
#include "core/tls_files.h"
#include "data/reward_spec.h"
#include "data/task_source.h"
#include "grpo/config.h"
#include "grpo/routing_replay.h"
#include "policy/model_config.h"
#include "policy/truncation.h"
#include "train/optim.h"
#include "train/sections.h"

namespace r1kit::grpo {

// The compute of the rollouts (`rollout.compute`): the trainer's (model.compute as
// resolved: bf16 compute in the engine when the trainer computes in bf16; docs/rollout.md,
// "bf16 compute") or f32 whatever the trainer's.
enum class RolloutCompute { kTrain, kF32 };
inline constexpr EnumName<RolloutCompute> kRolloutComputeNames[] = {
    {RolloutCompute::kTrain, "train"}, {RolloutCompute::kF32, "f32"}};

struct RolloutSection {
  std::vector<std::string> workers;  // gRPC worker addresses; empty = in-process engine
  std::string token_file;            // bearer token for the workers; empty = none
  TlsClientFiles tls;                // TLS to the workers (CA bundle, client cert); off
  int64_t group_size = 8;            // G completions per prompt
  int64_t prompts_per_step = 16;     // P prompts per step (batch = P * G completions)
  double temperature = 1.0;          // sampling temperature (> 0 for RL)
  int64_t top_k = 0;                 // 0 = off
  double top_p = 1.0;                // 1 = off
  int64_t max_new_tokens = 64;       // completion cap, tokens
  int64_t max_batch = 256;           // in-process engine: sequences decoded at once
  bool overlap = false;              // generate step k+1 while training step k (1 step stale)
  int64_t decode_threads = 1;        // in-process engine: threads for a decode step's experts
  bool exact = false;  // engine and trainer log-probs bitwise equal (policy/exact_forward.h)
  RolloutCompute compute = RolloutCompute::kTrain;  // train | f32

  // The truncation the engine samples with, which the trainer's log-probs apply too.
  policy::Truncation truncation() const { return {top_k, top_p, 0.0}; }

  void visit(ConfigVisitor& v) {
    v.field("workers", workers,
            "gRPC rollout workers (host:port); empty = the in-process engine, no server");
    v.field("token_file", token_file, "file holding the workers' bearer token");
    v.section("tls", tls,
              "TLS to the workers: ca_file (turns it on), cert_file/key_file (mutual TLS)");
    v.field("group_size", group_size, "G: completions per prompt", Range::at_least(2));
    v.field("prompts_per_step", prompts_per_step, "P: prompts per step", Range::at_least(1));
    v.field("temperature", temperature, "sampling temperature", Range::positive());
    v.field("top_k", top_k, "keep the k most likely tokens; 0 = off", Range::non_negative());
    v.field("top_p", top_p, "nucleus sampling mass; 1 = off", Range::between(0, 1));
    v.field("max_new_tokens", max_new_tokens, "completion length cap, tokens", Range::at_least(1));
    v.field("max_batch", max_batch, "in-process engine: sequences decoded at once",
            Range::at_least(1));
    v.field("overlap", overlap,
            "generate the next step's rollout while training on this one (one step off-policy)");
    v.field("decode_threads", decode_threads,
            "in-process engine: threads for each decode step's heavy parts, at least the "
            "trainer's LibTorch threads (all cores without overlap); keep 1 with overlap",
            Range::between(1, 64));
    v.field("exact", exact,
            "exact on-policy mode: engine and trainer compute log-probs with the batch-invariant "
            "exact forward, so they are bitwise equal (rollout/logprob_max_abs_diff = 0); "
            "costs time (docs/grpo-training.md, \"Exact mode\")");
    v.field("compute", compute,
            "the engine's compute: train (bf16 where the trainer computes in bf16, rounded as "
            "its autocast rounds; docs/rollout.md, \"bf16 compute\") or f32",
            kRolloutComputeNames);
  }
};

struct GrpoTrainSection {
  int64_t steps = 40;               // GRPO steps (rollout batches)
  int64_t mu = 1;                   // passes over each rollout batch (TRL num_iterations)
  int64_t mini_batches = 1;         // optimizer steps per pass (TRL steps_per_generation)
  int64_t micro_batch_size = 32;    // completions per forward/backward
  uint64_t seed = 1;                // sampling, shuffling, fresh-model init
  GrpoLossConfig loss;              // advantages, clipping, KL, TIS, dynamic sampling
  int64_t ref_reset_every = 0;      // reset the reference to the policy every N steps; 0 = never
  double mtp_coef = 0.0;            // MTP loss weight during RL (needs MTP layers); 0 = off
  bool skip_zero_advantage = true;  // no forward/backward for completions whose advantage is 0
  RoutingReplay routing_replay = RoutingReplay::kNone;  // MoE: replay the engine's experts
  bool shared_prompt = true;  // each group's prompt computed once per micro-batch
  train::OptimConfig optim{1e-5, 1.0, 0, 0.0, 0.9, 0.99, 1e-8, 1.0};  // constant lr by default
  int64_t log_every = 1;                                              // console cadence
  int64_t log_samples = 0;     // every N steps: completions to RUN/samples.jsonl; 0 = off
  int64_t eval_every = 0;      // held-out accuracy cadence (steps); 0 = off
  int64_t eval_problems = 64;  // held-out problems per evaluation
  int64_t stop_after = 0;      // end this invocation after N steps (checkpointed); 0 = off
  double max_minutes = 0;      // end training after this wall time (saves final); 0 = off
  uint64_t first_problem = 0;  // index of the first training problem drawn (task stream)
  // Non-finite steps in a row that end the run (train/setup.h, TrainingRun::count_step).
  int64_t max_skipped_steps = 10;

  void visit(ConfigVisitor& v) {
    v.field("steps", steps, "GRPO steps (one rollout batch each)", Range::at_least(1));
    v.field("mu", mu, "passes over each rollout batch (TRL num_iterations)", Range::at_least(1));
    v.field("mini_batches", mini_batches,
            "optimizer steps per pass; the rollout batch is split into this many",
            Range::at_least(1));
    v.field("micro_batch_size", micro_batch_size,
            "completions per forward/backward (does not change the gradient)", Range::at_least(1));
    v.field("seed", seed, "sampling, shuffling and fresh-model init seed");
    v.section("loss", loss, "advantages, clipped surrogate, KL, truncated IS, dynamic sampling");
    v.field("ref_reset_every", ref_reset_every,
            "copy the policy into the reference every N steps; 0 = never", Range::non_negative());
    v.field("mtp_coef", mtp_coef, "MTP loss weight during RL (model needs MTP layers); 0 = off",
            Range::non_negative());
    v.field("routing_replay", routing_replay,
            "MoE routing replay: none (the trainer routes itself) or rollout (its forward and "
            "backward use the experts the rollout engine chose; the gate still learns)",
            kRoutingReplayNames);
    v.field("skip_zero_advantage", skip_zero_advantage,
            "skip the forward/backward of completions with advantage 0 (all-equal groups): "
            "same policy gradient, less compute; off when a KL or entropy term or MTP needs them");
    v.field("shared_prompt", shared_prompt,
            "compute each distinct prompt of a micro-batch once, its completions attending its "
            "keys/values (the same log-probs and gradients; off with MTP and with routing replay, "
            "which need the per-row forward)");
    v.section("optim", optim, "AdamW; the schedule runs over grpo.steps");
    v.field("log_every", log_every, "console cadence in steps", Range::at_least(1));
    v.field("log_samples", log_samples,
            "every N steps, append the step's completions with their rewards to "
            "RUN/samples.jsonl and print one; 0 = off",
            Range::non_negative());
    v.field("eval_every", eval_every, "held-out accuracy every N steps (greedy); 0 = off",
            Range::non_negative());
    v.field("eval_problems", eval_problems, "held-out problems per evaluation", Range::at_least(1));
    v.field("stop_after", stop_after, "end this invocation after N steps, with a checkpoint",
            Range::non_negative());
    v.field("max_minutes", max_minutes,
            "stop after this many minutes and save the final model; 0 = off",
            Range::non_negative());
    v.field("first_problem", first_problem,
            "index in the task's training stream of the first problem drawn (r1kit run "
            "starts after the problems its SFT/pretrain stages trained on)");
    v.field("max_skipped_steps", max_skipped_steps, train::kMaxSkippedStepsHelp,
            Range::at_least(1));
  }
};

struct GrpoRecipe {
  policy::ModelConfig model;  // model.from: usually the SFT run's final model
  train::TokenizerSection tokenizer;
  data::TaskSection task;
  std::vector<reward::RewardSpec> reward;   // empty = the task's defaults
  std::vector<std::string> reward_plugins;  // shared libraries loaded before `reward` is built
  RolloutSection rollout;
  GrpoTrainSection grpo;
  train::CheckpointSection checkpoint{"runs/grpo", 20, true};
  train::DistSection dist;

  void visit(ConfigVisitor& v) {
    v.section("model", model, "the policy (model.from: a checkpoint, usually the SFT result)");
    v.section("tokenizer", tokenizer, "tokenizer: path, else model.from's");
    v.section("task", task, "problems to train on, and the held-out set");
    v.field("reward", reward,
            "list of {name, weight, role, ...args} (docs/rewards.md); empty = the task's checker "
            "+ format");
    v.field("reward_plugins", reward_plugins,
            "reward plug-in libraries (.so) loaded at start, before `reward` is built; "
            "relative paths resolve against the current directory");
    v.section("rollout", rollout, "sampling: group size, prompts per step, temperature");
    v.section("grpo", grpo, "the RL loop");
    v.section("checkpoint", checkpoint, "run directory and checkpoints");
    v.section("dist", dist, "threads");
  }
  Status validate() const;

  // Whether the trainer computes log-probs with shared prompts (grpo.shared_prompt): not
  // with the MTP loss or routing replay, which need each row's full forward.
  bool use_shared_prompt() const {
    return grpo.shared_prompt && grpo.mtp_coef == 0 && grpo.routing_replay == RoutingReplay::kNone;
  }
};

}  // namespace r1kit::grpo
