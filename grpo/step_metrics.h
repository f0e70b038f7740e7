// The metrics of one GRPO step, named as TRL's GRPOTrainer and verl log them where they
// have a counterpart (reward, reward_std, frac_reward_zero_std, completions/*, kl,
// entropy, clip_ratio/*, grad_norm, ...). docs/grpo-training.md lists every key.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/metrics.h"
#include "grpo/rollout_step.h"
#include "grpo/update_step.h"

namespace r1kit::grpo {

using StepMetrics = std::map<std::string, double>;

// The metrics the console line shows: reward, accuracy, held-out greedy accuracy (on
// evaluation steps), mean completion length, grad norm. Every metric goes to
// metrics.jsonl and TensorBoard.
const std::vector<ConsoleMetric>& console_metrics();

// Rollout: timings, staleness, zero-std groups, dynamic sampling.
void add_rollout_metrics(const RolloutBatch& rollout, int64_t step, bool dynamic_sampling,
                         StepMetrics& m);
// What the batch metrics are computed from: one rank's rows (batch_metric_inputs), or
// the whole job's, gathered over the ranks (grpo/data_parallel.h).
struct BatchMetricInputs {
  std::vector<std::string> names;         // reward components
  int64_t accuracy_component = -1;        // index into names; -1: none
  torch::Tensor rewards;                  // [B] total rewards (NaN: unscored)
  std::vector<torch::Tensor> components;  // per name: [N * G] component scores
  torch::Tensor lengths;                  // [B] completion tokens
  torch::Tensor truncated;                // [B] 1: cut at max_new_tokens
};
BatchMetricInputs batch_metric_inputs(const RolloutBatch& rollout, const TrainBatch& batch);
// Rewards (total, per component, accuracy) and completion lengths of a non-empty batch.
void add_batch_metrics(const BatchMetricInputs& in, StepMetrics& m);
inline void add_batch_metrics(const RolloutBatch& rollout, const TrainBatch& batch,
                              StepMetrics& m) {
  add_batch_metrics(batch_metric_inputs(rollout, batch), m);
}
// Loss statistics of the update; `kl` only with a reference, MoE loads when present.
// When no row was trained (every group all-equal and skipped, grpo.skip_zero_advantage)
// the update's statistics (loss, grad_norm, entropy, clip ratios, ...) are NaN: null in
// metrics.jsonl, "-" on the console, rather than a 0 that looks like a converged policy.
// `num_tokens`: the loss tokens of the batch (its mask's sum).
void add_update_metrics(const UpdateResult& update, double num_tokens, bool has_reference, bool moe,
                        StepMetrics& m);
inline void add_update_metrics(const UpdateResult& update, const TrainBatch& batch,
                               bool has_reference, bool moe, StepMetrics& m) {
  add_update_metrics(update, batch.mask.sum().item<double>(), has_reference, moe, m);
}

// Counts steps in a row without a learning signal (frac_reward_zero_std = 1: every
// group's completions scored alike, so every advantage is 0) and says when to warn.
class NoSignalWatch {
 public:
  static constexpr int64_t kWarnAfter = 3;  // steps in a row
  // Records step metrics `m`; true when this step makes kWarnAfter in a row.
  bool update(const StepMetrics& m);
  int64_t streak() const { return streak_; }

 private:
  int64_t streak_ = 0;
};

// Mean over finite entries (NaN: "no score"); NaN when there are none.
double finite_mean(const torch::Tensor& t);

}  // namespace r1kit::grpo
