#include "rollout/stop_strings.h"

#include <algorithm>

namespace r1kit::rollout {

StopStringMatcher::StopStringMatcher(data::DecodeIdsFn decode,
                                     const std::vector<std::string>& stops)
    : decoder_(std::move(decode)), stops_(&stops) {
  for (const auto& s : stops) keep_ = std::max(keep_, s.size());
  if (keep_ > 0) --keep_;
}

bool StopStringMatcher::push(int64_t id) {
  const std::string piece = decoder_.push(id);
  if (piece.empty()) return false;  // an unfinished character: nothing new to match
  recent_ += piece;
  for (const auto& stop : *stops_)
    if (recent_.find(stop) != std::string::npos) return true;
  if (recent_.size() > keep_) recent_.erase(0, recent_.size() - keep_);
  return false;
}

}  // namespace r1kit::rollout
