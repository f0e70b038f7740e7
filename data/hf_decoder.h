// Decoders and post-processors of a Hugging Face tokenizer.json (data/hf_tokenizer.h), as
// the Rust `tokenizers` library defines them (https://huggingface.co/docs/tokenizers/
// components, "Decoders" and "PostProcessor").
//
// A decoder turns the tokens of the ids (their vocabulary strings) back into text. Each
// decoder maps a list of token strings to a new list; the results are concatenated:
//   ByteLevel      every token whose characters are all in the byte-level alphabet
//                  (hf_pretokenizer.h) becomes those bytes, any other token its own UTF-8
//                  bytes; the bytes of all tokens are then read as UTF-8 with every ill-formed
//                  subsequence replaced by U+FFFD (Rust String::from_utf8_lossy).
//   ByteFallback   runs of "<0xXX>" tokens become their bytes: the UTF-8 text when valid,
//                  else one U+FFFD per byte.
//   Metaspace{replacement, prepend_scheme}  `replacement` becomes " ", except in the first
//                  token when prepend_scheme is not "never" (there it is dropped).
//   Fuse           join all tokens into one.
//   Strip{content, start, stop}  remove up to `start` leading and `stop` trailing `content`
//                  characters from each token.
//   Replace{pattern, content}  every match of the pattern in each token becomes content.
//   Sequence{decoders}  apply each in order.
// A null decoder joins the tokens with " " (as the Rust library does).
//
// The post-processor decides what encode(text, add_special=true) adds around the ids:
//   TemplateProcessing{single, special_tokens}  the "single" template, e.g. Llama 3's
//       [SpecialToken <|begin_of_text|>, Sequence A]: each SpecialToken contributes the ids
//       special_tokens[name].ids, Sequence A stands for the text's ids;
//   ByteLevel      nothing (it only adjusts offsets);
//   Sequence{processors}  each in order, every template wrapping the result so far.
// A null post-processor adds nothing.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/status.h"

namespace r1kit::data::hf {

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual std::vector<std::string> decode_chain(std::vector<std::string> tokens) const = 0;
};

// The decoder described by `j` (null -> nullptr). `where` names it in errors.
StatusOr<std::unique_ptr<Decoder>> parse_decoder(const nlohmann::json& j, const std::string& where);

// What add_special puts around a text's ids.
struct SpecialWrap {
  std::vector<int32_t> prefix;
  std::vector<int32_t> suffix;
};

// The post-processor described by `j` (null -> nothing added).
StatusOr<SpecialWrap> parse_post_processor(const nlohmann::json& j, const std::string& where);

}  // namespace r1kit::data::hf
