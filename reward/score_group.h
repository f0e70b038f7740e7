// One prompt's completions scored as a group, the step every user of a CombinedReward
// takes after generation (the GRPO rollout collector, the evaluator, distillation's
// rejection sampling): each completion becomes a Sample with the rendered prompt, the
// problem's metadata, its token ids and its decoded text, and the group is scored at
// once (group rewards see exactly one prompt's samples; reward.h).
//
// Token ids come as spans of int64 (the rollout engine's type) and are decoded by the
// caller's function, so this needs neither the engine nor a tokenizer.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "reward/reward.h"

namespace r1kit::reward {

// A completion's token ids (no prompt) -> its text.
using DecodeIds = std::function<std::string(std::span<const int64_t>)>;

struct ScoredGroup {
  std::vector<Sample> samples;  // [G] completion order; Sample::completion is the text
  GroupScores scores;           // rewards.score(samples)
};

// Scores the completions of `prompt` (the rendered text the policy continued) whose
// ground truth is `metadata`. `drop_ids` (the stop ids the engine kept, e.g.
// Tokenizer::stop_ids()) are left out of each sample's ids before they are decoded.
ScoredGroup score_group(const CombinedReward& rewards, const std::string& prompt,
                        const nlohmann::json& metadata,
                        std::span<const std::span<const int64_t>> completion_ids,
                        const DecodeIds& decode, std::span<const int64_t> drop_ids = {});

// The same over a range of completions that hold their ids in `token_ids`
// (rollout::Completion).
template <class Completions>
ScoredGroup score_completions(const CombinedReward& rewards, const std::string& prompt,
                              const nlohmann::json& metadata, const Completions& completions,
                              const DecodeIds& decode,
                              std::span<const int64_t> drop_ids = {}) {
  std::vector<std::span<const int64_t>> ids;
  for (const auto& c : completions) ids.emplace_back(c.token_ids);
  return score_group(rewards, prompt, metadata, ids, decode, drop_ids);
}

}  // namespace r1kit::reward
