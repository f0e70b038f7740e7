// The rollout half of a GRPO step (DeepSeekMath §4.1.2, DeepSeek-R1 §2.2), as typed data:
//   collect: P training problems, G completions each from the RolloutSource, with the
//            engine's log-probs (refilled under dynamic sampling, DAPO §3.2);
//   score:   the recipe's rewards, every component kept for metrics;
//   prepare: the groups packed into [B, T] tensors, the reference's log-probs when a KL
//            term needs them, the KL folded into the reward when asked, group-relative
//            advantages and the loss mask.
// The update half (the mu / mini-batch / micro-batch loop) is grpo/update_step.h.
//
// Everything random is a pure function of (seed, step, data position), so a resumed run
// collects the same rollout.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "data/task_source.h"
#include "data/tokenizer.h"
#include "grpo/advantages.h"
#include "grpo/completion_batch.h"
#include "grpo/recipe.h"
#include "policy/model.h"
#include "reward/reward.h"
#include "rollout/rollout_source.h"
#include "train/data_parallel.h"

namespace r1kit::grpo {

// One step's scored groups.
struct RolloutBatch {
  std::vector<data::TaskSample> problems;
  std::vector<std::vector<int64_t>> prompt_ids;  // [N] prompt tokens
  std::vector<rollout::Group> groups;            // [N] G completions each
  torch::Tensor rewards;                         // [N, G] float64 weighted totals (NaN allowed)
  std::vector<std::string> names;                // reward component names
  std::vector<torch::Tensor> components;         // [K] of [N, G] float64
  int64_t accuracy_component = -1;               // index of the checker (role accuracy); -1: none
  uint64_t data_pos_after = 0;                   // next unused training problem
  int64_t rounds = 0;                            // generation rounds (dynamic sampling)
  double pass_rate = 1;                          // informative groups / groups seen
  int64_t groups_seen = 0;                       // groups generated this step
  int64_t zero_std_groups = 0;                   // groups with no signal among those seen
  double generate_s = 0, reward_s = 0;           // wall times
  int64_t generated_tokens = 0;                  // every completion token generated
  int64_t reward_failures = 0;  // samples a reward failed to score (reward::Scores::failures)
  int64_t rejected_groups = 0;  // groups CheckedRolloutSource rejected (cannot judge)
  // [N] each group's place among the step's kept groups of every rank (the order one
  // process keeps them in), and how many those are: the global batch across data-parallel
  // ranks (grpo/data_parallel.h). Empty job_groups: this batch alone.
  std::vector<int64_t> job_groups;
  int64_t job_groups_total = 0;
};

// Samples and scores rollouts for one trainer (one data-parallel rank).
class RolloutCollector {
 public:
  // Every reference must outlive the collector. Each rank of `dp` generates its shard of
  // every round's problems (grpo/data_parallel.h).
  RolloutCollector(const GrpoRecipe& recipe, const data::Tokenizer& tokenizer,
                   const data::TaskSource& tasks, const reward::CombinedReward& rewards,
                   rollout::RolloutSource& source,
                   train::DataParallel& dp = train::process_group());

  // The rollout of `step`, starting at training problem `data_pos`: P groups, or under
  // dynamic sampling the first P informative ones within the round limit.
  StatusOr<RolloutBatch> collect(int64_t step, uint64_t data_pos) const;
  // The exact mode its requests ask for (rollout.exact: the trainer's compute precision).
  void set_exact(rollout::ExactMode mode) { exact_ = mode; }
  // Whether its requests ask for bf16 compute (rollout.compute).
  void set_bf16_compute(bool on) { bf16_compute_ = on; }

 private:
  struct Round;  // one generation round's problems, groups and scores
  StatusOr<Round> generate_round(int64_t step, uint64_t first, int64_t n) const;
  void score_round(Round& round, RolloutBatch& out) const;

  const GrpoRecipe& r_;
  const data::Tokenizer& tok_;
  const data::TaskSource& tasks_;
  const reward::CombinedReward& rewards_;
  rollout::RolloutSource& source_;
  train::DataParallel& dp_;
  rollout::ExactMode exact_ = rollout::ExactMode::kOff;
  bool bf16_compute_ = false;
};

// What the update trains on: the packed completions with their advantages.
struct TrainBatch {
  CompletionBatch completions;                    // [B, T], B = N * G, group-major
  std::vector<std::vector<int64_t>> row_prompts;  // [B] the prompt of every row
  torch::Tensor rewards;                          // [B] float32, before any KL penalty
  Advantages advantages;                          // [B]
  torch::Tensor mask;                             // [B, T] loss mask (unscored, truncated: 0)
  torch::Tensor ref_logprobs;                     // [B, T] under the reference; undefined if none
  torch::Tensor routed_experts;  // [B, S, L, K] the engine's MoE routing (routing_replay.h)
  double ref_seconds = 0;        // time spent on the reference's log-probs
  // [B] each row's place in the step's global batch (RolloutBatch::job_groups), and its
  // size; empty job_rows: this batch alone.
  std::vector<int64_t> job_rows;
  int64_t job_rows_total = 0;
};

// Log-probs of every row of `completions` (prompt rows `row_prompts`), in micro-batches
// of `micro` rows, without gradient, under the sampling distribution (temperature,
// truncation; policy/logprobs.h), replaying `replay_experts` [B, S, L, K] when given;
// else with `shared_prompt`, each distinct prompt of a micro-batch computed once
// (policy::shared_prompt_logprobs). `exact`: the values of the exact forward
// (policy::make_logprobs_exact; rollout.exact).
torch::Tensor logprobs_no_grad(policy::TransformerImpl& model,
                               const std::vector<std::vector<int64_t>>& row_prompts,
                               const CompletionBatch& completions, double temperature,
                               int64_t micro, const policy::Truncation& truncation = {},
                               const torch::Tensor& replay_experts = {}, bool shared_prompt = false,
                               bool exact = false);

// Packs a non-empty rollout and computes its advantages (grpo/advantages.h), with the
// reference's log-probs when `reference` is given (needed by any KL term, grpo/kl.h).
// With scale_rewards: batch on several ranks of `dp` the batch statistics are the whole
// job's (grpo/data_parallel.h, job_advantages): every rank takes part.
TrainBatch prepare_train_batch(const RolloutBatch& rollout, const GrpoRecipe& recipe,
                               policy::TransformerImpl* reference,
                               train::DataParallel& dp = train::process_group());

}  // namespace r1kit::grpo
