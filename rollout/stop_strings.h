// Stop strings over streamed text: the engine feeds each sampled id of a sequence and
// learns whether a stop string has just been completed.
//
// Ids go through a data::IncrementalDecoder, so text is matched only once each character
// is whole: with a byte-level tokenizer (Qwen, Llama 3, DeepSeek-V3) a CJK character or
// an emoji is often two to four ids, and a decode of a partial window yields U+FFFD for
// the unfinished bytes, which a window-based matcher could match (or miss) by accident.
// The matcher keeps the last (longest stop - 1) bytes of text, so a stop string that
// straddles ids is found at the id that completes it and never earlier.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/incremental_decoder.h"

namespace r1kit::rollout {

class StopStringMatcher {
 public:
  // `stops`: non-empty strings (SamplingParams::stop_strings).
  StopStringMatcher(data::DecodeIdsFn decode, const std::vector<std::string>& stops);

  // Feeds the next id; true when the text up to it now contains a stop string.
  bool push(int64_t id);

 private:
  data::IncrementalDecoder decoder_;
  const std::vector<std::string>* stops_;  // not owned: outlives the matcher
  size_t keep_ = 0;                        // bytes of text kept between calls
  std::string recent_;                     // the newest text, at most keep_ bytes + a push
};

}  // namespace r1kit::rollout
