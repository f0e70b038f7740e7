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

const char* exact_mode_name(ExactMode m) {
  switch (m) {
    case ExactMode::kOff: return "off";
    case ExactMode::kF32: return "f32";
    case ExactMode::kBF16: return "bf16";
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

StatusOr<ScoreResult> RolloutSource::score(const ScoreRequest&) {
  return Unimplemented("this rollout source cannot score tokens");
}

std::string score_request_problem(const ScoreRequest& r, int64_t vocab_size, int64_t max_seq_len) {
  if (r.prompts.empty()) return "no sequence to score";
  if (r.prompts.size() != r.completions.size())
    return fmt::format("{} prompts but {} completions", r.prompts.size(), r.completions.size());
  for (size_t i = 0; i < r.prompts.size(); ++i) {
    if (r.prompts[i].empty()) return fmt::format("row {}: empty prompt", i);
    for (const auto* ids : {&r.prompts[i], &r.completions[i]})
      for (int64_t t : *ids)
        if (t < 0 || (vocab_size > 0 && t >= vocab_size))
          return fmt::format("row {}: token id {} is outside the vocabulary [0, {})", i, t,
                             vocab_size);
    const size_t len = r.prompts[i].size() + r.completions[i].size();
    if (max_seq_len > 0 && static_cast<int64_t>(len) > max_seq_len)
      return fmt::format("row {}: {} tokens, more than the model's {}", i, len, max_seq_len);
  }
  return "";
}

std::string score_result_problem(const ScoreRequest& r, const ScoreResult& res) {
  if (res.logprobs.size() != r.completions.size())
    return fmt::format("{} rows of log-probs for {} sequences", res.logprobs.size(),
                       r.completions.size());
  for (size_t i = 0; i < r.completions.size(); ++i) {
    if (res.logprobs[i].size() != r.completions[i].size())
      return fmt::format("row {}: {} log-probs for {} tokens", i, res.logprobs[i].size(),
                         r.completions[i].size());
    for (size_t t = 0; t < res.logprobs[i].size(); ++t)
      if (!std::isfinite(res.logprobs[i][t]) || res.logprobs[i][t] > 1e-4f)
        return fmt::format("row {} token {}: log-prob {}", i, t, res.logprobs[i][t]);
  }
  return "";
}

}  // namespace r1kit::rollout
