// Packing rollout groups into padded tensors; see completion_batch.h.
#include "grpo/completion_batch.h"

#include <torch/torch.h>

#include <algorithm>

namespace r1kit::grpo {

CompletionBatch pack_completions(const std::vector<rollout::Group>& groups) {
  TORCH_CHECK(!groups.empty(), "pack_completions: no groups");
  const auto g = static_cast<int64_t>(groups.front().completions.size());
  TORCH_CHECK(g >= 1, "pack_completions: empty group");
  int64_t t = 1;
  for (const auto& grp : groups) {
    TORCH_CHECK(static_cast<int64_t>(grp.completions.size()) == g, "pack_completions: group ",
                grp.prompt_index, " has ", grp.completions.size(), " completions, expected ", g);
    for (const auto& c : grp.completions) {
      TORCH_CHECK(c.logprobs.size() == c.token_ids.size(), "pack_completions: group ",
                  grp.prompt_index, ": ", c.token_ids.size(), " tokens but ", c.logprobs.size(),
                  " log-probs");
      t = std::max<int64_t>(t, static_cast<int64_t>(c.token_ids.size()));
    }
  }
  const int64_t b = static_cast<int64_t>(groups.size()) * g;
  CompletionBatch out;
  out.group_size = g;
  out.token_ids = torch::zeros({b, t}, torch::kInt64);
  out.behaviour_logprobs = torch::zeros({b, t}, torch::kFloat32);
  out.mask = torch::zeros({b, t}, torch::kFloat32);
  out.truncated = torch::zeros({b}, torch::kBool);
  out.policy_version = torch::zeros({b}, torch::kInt64);
  auto ids = out.token_ids.accessor<int64_t, 2>();
  auto lp = out.behaviour_logprobs.accessor<float, 2>();
  auto m = out.mask.accessor<float, 2>();
  auto tr = out.truncated.accessor<bool, 1>();
  auto ver = out.policy_version.accessor<int64_t, 1>();
  int64_t row = 0;
  for (const auto& grp : groups)
    for (const auto& c : grp.completions) {
      for (size_t j = 0; j < c.token_ids.size(); ++j) {
        ids[row][static_cast<int64_t>(j)] = c.token_ids[j];
        lp[row][static_cast<int64_t>(j)] = c.logprobs[j];
        m[row][static_cast<int64_t>(j)] = 1.0f;
      }
      tr[row] = c.finish_reason == rollout::FinishReason::kLength;
      ver[row] = c.policy_version;
      ++row;
    }
  return out;
}

}  // namespace r1kit::grpo
