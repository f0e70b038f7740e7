// Packs the rollout's groups (rollout/rollout_source.h) into the padded [B, T] tensors
// the GRPO math takes: completion tokens, behaviour log-probs, the completion mask and
// the truncation flags. Row order is group-major (sample j of group i at i*G + j),
// which is what compute_advantages expects.
//
// Only the completions are packed (no prompts): the trainer's forward pass puts each
// prompt in front and gathers the log-probs of exactly these tokens. Padding is on the
// right, with token 0, log-prob 0 and mask 0.
// Thread-safety: a pure function.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <vector>

#include "rollout/rollout_source.h"

namespace r1kit::grpo {

struct CompletionBatch {
  torch::Tensor token_ids;           // [B, T] int64, T = longest completion (>= 1)
  torch::Tensor behaviour_logprobs;  // [B, T] float32, the engine's log-probs
  torch::Tensor mask;                // [B, T] float32, 1 on completion tokens
  torch::Tensor truncated;           // [B] bool, finish_reason == kLength (hit the cap)
  torch::Tensor policy_version;      // [B] int64, version that generated each completion
  int64_t group_size = 0;            // G
};

// Every group must have the same number of completions (>= 1), and every completion
// one log-prob per token (TORCH_CHECK otherwise).
CompletionBatch pack_completions(const std::vector<rollout::Group>& groups);

}  // namespace r1kit::grpo
