#include "reward/score_group.h"

#include <algorithm>

namespace r1kit::reward {

ScoredGroup score_group(const CombinedReward& rewards, const std::string& prompt,
                        const nlohmann::json& metadata,
                        std::span<const std::span<const int64_t>> completion_ids,
                        const DecodeIds& decode, std::span<const int64_t> drop_ids) {
  ScoredGroup out;
  out.samples.resize(completion_ids.size());
  std::vector<int64_t> kept;
  for (size_t j = 0; j < completion_ids.size(); ++j) {
    std::span<const int64_t> ids = completion_ids[j];
    if (!drop_ids.empty()) {
      kept.clear();
      for (int64_t id : ids)
        if (std::find(drop_ids.begin(), drop_ids.end(), id) == drop_ids.end()) kept.push_back(id);
      ids = kept;
    }
    Sample& s = out.samples[j];
    s.prompt = prompt;
    s.completion = decode(ids);
    s.completion_ids.assign(ids.begin(), ids.end());
    s.metadata = metadata;
  }
  out.scores = rewards.score(out.samples);
  return out;
}

}  // namespace r1kit::reward
