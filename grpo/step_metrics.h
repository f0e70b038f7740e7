// The metrics of one GRPO step, named as TRL's GRPOTrainer and verl log them where they
// have a counterpart (reward, reward_std, frac_reward_zero_std, completions/*, kl,
// entropy, clip_ratio/*, grad_norm, ...). docs/grpo-training.md lists every key.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "grpo/rollout_step.h"
#include "grpo/update_step.h"

namespace r1kit::grpo {

using StepMetrics = std::map<std::string, double>;

// The keys the console line shows (every metric goes to metrics.jsonl and TensorBoard).
const std::vector<std::string>& console_metric_keys();

// Rollout: timings, staleness, zero-std groups, dynamic sampling.
void add_rollout_metrics(const RolloutBatch& rollout, int64_t step, bool dynamic_sampling,
                         StepMetrics& m);
// Rewards (total, per component, accuracy) and completion lengths of a non-empty batch.
void add_batch_metrics(const RolloutBatch& rollout, const TrainBatch& batch, StepMetrics& m);
// Loss statistics of the update; `kl` only with a reference, MoE loads when present.
void add_update_metrics(const UpdateResult& update, const TrainBatch& batch, bool has_reference,
                        bool moe, StepMetrics& m);

// Mean over finite entries (NaN: "no score"); NaN when there are none.
double finite_mean(const torch::Tensor& t);

}  // namespace r1kit::grpo
