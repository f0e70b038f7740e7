// CheckedRolloutSource: a RolloutSource that lets only trainable completions through.
// Every completion another source returns is checked with completion_problem
// (rollout/rollout_source.h): its length against the request's max_new_tokens, its ids
// against the model's vocabulary, its log-probs for NaN and infinities. A group with a
// bad completion is requested once more on its own (a pool of workers may send it
// elsewhere); if it is bad again it comes back with Group::rejected set and every
// completion emptied (FinishReason::kAbort), so a trainer cannot judge it and takes no
// gradient from it (grpo/rollout_step.h). A NaN from one worker never reaches the loss.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "rollout/rollout_source.h"

namespace r1kit::rollout {

class CheckedRolloutSource final : public RolloutSource {
 public:
  // `vocab_size`: the model's vocabulary (ids at or above it are refused).
  CheckedRolloutSource(std::unique_ptr<RolloutSource> inner, int64_t vocab_size);

  // The groups of `inner`, checked. `on_group` sees only groups that passed.
  StatusOr<std::vector<Group>> generate(
      const GenerateRequest& request,
      const std::function<void(const Group&)>& on_group = {}) override;
  Status update_weights(const NamedTensors& weights, int64_t version) override {
    return inner_->update_weights(weights, version);
  }
  int64_t policy_version() const override { return inner_->policy_version(); }
  // Scores through `inner`, checked: one finite log-prob per token, else Internal.
  StatusOr<ScoreResult> score(const ScoreRequest& request) override;

  // Groups requested again, and groups rejected, since construction.
  int64_t rerequested_groups() const { return rerequested_.load(); }
  int64_t rejected_groups() const { return rejected_.load(); }

 private:
  // The first problem of `g` ("" when every completion passes).
  std::string group_problem(const Group& g, const SamplingParams& sampling) const;

  std::unique_ptr<RolloutSource> inner_;
  int64_t vocab_size_;
  std::atomic<int64_t> rerequested_{0}, rejected_{0};
};

}  // namespace r1kit::rollout
