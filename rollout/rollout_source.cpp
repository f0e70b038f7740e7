#include "rollout/rollout_source.h"

#include <fmt/format.h>

#include <cmath>

namespace r1kit::rollout {

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::kStop: return "stop";
    case FinishReason::kLength: return "length";
    case FinishReason::kAbort: return "abort";
  }
  return "unknown";
}

std::string completion_problem(const Completion& c, const SamplingParams& sampling,
                               int64_t vocab_size) {
  if (static_cast<int64_t>(c.token_ids.size()) > sampling.max_new_tokens)
    return fmt::format("{} tokens, more than max_new_tokens={}", c.token_ids.size(),
                       sampling.max_new_tokens);
  if (c.logprobs.size() != c.token_ids.size())
    return fmt::format("{} tokens but {} log-probs", c.token_ids.size(), c.logprobs.size());
  for (size_t i = 0; i < c.token_ids.size(); ++i) {
    if (c.token_ids[i] < 0 || c.token_ids[i] >= vocab_size)
      return fmt::format("token {} is id {}, outside the vocabulary [0, {})", i, c.token_ids[i],
                         vocab_size);
    if (!std::isfinite(c.logprobs[i]))
      return fmt::format("token {} has log-prob {}", i, c.logprobs[i]);
  }
  return "";
}

}  // namespace r1kit::rollout
