// CheckedRolloutSource: see checked_source.h.
#include "rollout/checked_source.h"

#include "core/logging.h"

namespace r1kit::rollout {

CheckedRolloutSource::CheckedRolloutSource(std::unique_ptr<RolloutSource> inner, int64_t vocab_size)
    : inner_(std::move(inner)), vocab_size_(vocab_size) {}

std::string CheckedRolloutSource::group_problem(const Group& g,
                                                const SamplingParams& sampling) const {
  for (size_t j = 0; j < g.completions.size(); ++j) {
    std::string why = completion_problem(g.completions[j], sampling, vocab_size_);
    if (!why.empty()) return fmt::format("completion {}: {}", j, why);
  }
  return "";
}

StatusOr<std::vector<Group>> CheckedRolloutSource::generate(
    const GenerateRequest& request, const std::function<void(const Group&)>& on_group) {
  auto pass_on = [&](const Group& g) {
    if (on_group && group_problem(g, request.sampling).empty()) on_group(g);
  };
  ASSIGN_OR_RETURN(std::vector<Group> groups, inner_->generate(request, pass_on));
  for (size_t i = 0; i < groups.size(); ++i) {
    Group& g = groups[i];
    std::string why = group_problem(g, request.sampling);
    if (why.empty()) continue;
    R1_LOG(warn, "rollout group {}: {}; requesting it again", g.prompt_index, why);
    ++rerequested_;
    GenerateRequest again = request;
    again.prompts = {request.prompts[i]};
    ASSIGN_OR_RETURN(std::vector<Group> retry, inner_->generate(again));
    if (retry.size() == 1 && (why = group_problem(retry[0], request.sampling)).empty()) {
      g = std::move(retry[0]);
      if (on_group) on_group(g);
      continue;
    }
    R1_LOG(warn, "rollout group {}: {} again; rejected (cannot be judged)", g.prompt_index, why);
    ++rejected_;
    g.rejected = true;
    for (Completion& c : g.completions) {
      Completion aborted;  // no tokens, so nothing of it trains
      aborted.finish_reason = FinishReason::kAbort;
      aborted.policy_version = c.policy_version;
      c = std::move(aborted);
    }
    if (on_group) on_group(g);
  }
  return groups;
}

StatusOr<ScoreResult> CheckedRolloutSource::score(const ScoreRequest& request) {
  ASSIGN_OR_RETURN(ScoreResult res, inner_->score(request));
  const std::string problem = score_result_problem(request, res);
  if (!problem.empty()) return Internal("score: the source answered badly: {}", problem);
  return res;
}

}  // namespace r1kit::rollout
