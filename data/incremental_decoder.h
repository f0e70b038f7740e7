// Incremental decoding: ids fed one at a time in, complete text out.
//
// A byte-level BPE token can end in the middle of a UTF-8 character (a CJK character or an
// emoji is often two or three tokens), and decoding such a prefix gives U+FFFD for the
// unfinished bytes. IncrementalDecoder emits text only once it is complete: after each
// id it decodes a short window of ids twice, up to the previous id and up to this one
// (the window starts at the last point where all text was complete, so every format's
// context rules, like SentencePiece's leading space, apply as in a full decode), and
// emits the difference unless the new text ends in U+FFFD (an unfinished character:
// wait for more ids). This is the algorithm of the Rust library's DecodeStream
// (https://huggingface.co/docs/tokenizers/api/decoders) and vLLM's incremental
// detokenizer. Invariant: the concatenation of everything push() and finish() return
// equals tokenizer.decode(all ids) whenever the decode of every prefix ending at an
// emission point is a prefix of the full decode (true for byte-level BPE and
// SentencePiece).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "data/tokenizer.h"

namespace r1kit::data {

// Ids -> text with Tokenizer::decode's contract (the rollout engine's DecodeFn).
using DecodeIdsFn = std::function<std::string(std::span<const int64_t>)>;

class IncrementalDecoder {
 public:
  explicit IncrementalDecoder(Tokenizer tokenizer, bool keep_special = false);
  // Over any decode function whose prefixes behave as a tokenizer's (see above).
  explicit IncrementalDecoder(DecodeIdsFn decode) : decode_(std::move(decode)) {}

  // Feeds one id; returns the text it completes ("" while a character is unfinished).
  std::string push(int64_t id);
  // The text still held back (an unfinished character at the end, as U+FFFD), and resets.
  std::string finish();

 private:
  std::string decode_window(size_t end) const;

  DecodeIdsFn decode_;
  std::vector<int64_t> ids_;  // ids since the window start (the last complete point)
  size_t emitted_ = 0;        // bytes of decode(ids_) already emitted
};

}  // namespace r1kit::data
