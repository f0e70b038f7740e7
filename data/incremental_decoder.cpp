// Incremental decoding (see incremental_decoder.h).
#include "data/incremental_decoder.h"

namespace r1kit::data {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

bool ends_unfinished(std::string_view s) {
  return s.size() >= kReplacement.size() &&
         s.compare(s.size() - kReplacement.size(), kReplacement.size(), kReplacement) == 0;
}

}  // namespace

IncrementalDecoder::IncrementalDecoder(Tokenizer tokenizer, bool keep_special)
    : decode_([tok = std::move(tokenizer), keep_special](std::span<const int64_t> ids) {
        const std::vector<int32_t> ids32(ids.begin(), ids.end());
        return tok.decode(ids32, keep_special);
      }) {}

std::string IncrementalDecoder::decode_window(size_t end) const {
  return decode_(std::span<const int64_t>(ids_.data(), end));
}

std::string IncrementalDecoder::push(int64_t id) {
  ids_.push_back(id);
  const std::string text = decode_window(ids_.size());
  if (ends_unfinished(text) || text.size() <= emitted_) return {};
  std::string out = text.substr(emitted_);
  // Everything so far is complete: the next window starts at the previous id, which
  // keeps one id of context for the formats whose decoding depends on it.
  ids_.erase(ids_.begin(), ids_.end() - 1);
  emitted_ = decode_window(1).size();
  return out;
}

std::string IncrementalDecoder::finish() {
  const std::string text = decode_window(ids_.size());
  std::string out = text.size() > emitted_ ? text.substr(emitted_) : std::string();
  ids_.clear();
  emitted_ = 0;
  return out;
}

}  // namespace r1kit::data
