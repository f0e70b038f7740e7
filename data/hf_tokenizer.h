// A Hugging Face `tokenizer.json` tokenizer (the format of DeepSeek-V3/R1, Qwen2.5/Qwen3 and
// Llama 3 checkpoints), encoding and decoding exactly as the Rust `tokenizers` library
// does (https://huggingface.co/docs/tokenizers/pipeline). Callers use it through
// data::Tokenizer (tokenizer.h), which loads it from a tokenizer.json file or a
// checkpoint directory; docs/tokenizers.md lists what is supported.
//
// encode(text, add_special):
//   0. Invalid UTF-8 in `text`: each maximal ill-formed subsequence becomes U+FFFD
//      (hf_text.h utf8_replace_invalid), then the result is encoded.
//   1. Added tokens that are not `normalized` are found in the raw text, leftmost-longest
//      (so "<|im_start|>" is one id wherever it occurs); each becomes its id, the text
//      between them goes on. A token with `single_word` only matches when no word
//      character (\w) touches it; `lstrip` / `rstrip` take the whitespace to its left /
//      right into the match.
//   2. Each remaining piece is normalized (hf_normalizer.h); then the `normalized` added
//      tokens are found in the normalized text the same way.
//   3. Each remaining piece is pre-tokenized (hf_pretokenizer.h) and every resulting word
//      encoded by the model (hf_bpe.h).
//   4. With add_special, the post-processor's ids go around the result (hf_decoder.h).
// decode(ids, keep_special): each id becomes its token (an added token's content, else
// the model's vocabulary string; unknown ids are dropped), the decoder (hf_decoder.h)
// turns the tokens into text. keep_special=false drops the ids of BOS, EOS and PAD first.
//
// Special ids: tokenizer_config.json beside tokenizer.json names bos_token, eos_token,
// pad_token and unk_token (a string or an {"content": ...} object; null = none). A key
// the config lacks (or no config at all) falls back to: BOS = the first id the
// post-processor puts before the text, else the first added special token named <s>,
// <|begin_of_text|>, <｜begin▁of▁sentence｜> or <|startoftext|>; EOS = the last id the
// post-processor puts after the text, else the first added special token named </s>,
// <|end_of_text|>, <｜end▁of▁sentence｜> or <|endoftext|>; PAD = none; UNK = the model's
// unk_token. A name the config gives that the vocabulary lacks is an error.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/status.h"
#include "data/hf_bpe.h"
#include "data/hf_decoder.h"
#include "data/hf_normalizer.h"
#include "data/hf_pretokenizer.h"
#include "data/tokenizer_impl.h"

namespace r1kit::data::hf {

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool special = false;
  bool lstrip = false;
  bool rstrip = false;
  bool single_word = false;
  bool normalized = false;
};

// A byte trie over added-token strings for leftmost-longest matching.
class AddedTokenTrie {
 public:
  void insert(std::string_view text, int token);
  bool empty() const { return nodes_.size() <= 1; }
  // The longest inserted string starting at text[pos]: its token and end, or token -1.
  std::pair<int, size_t> longest_at(std::string_view text, size_t pos) const;

 private:
  struct Node {
    std::vector<std::pair<unsigned char, int>> next;  // sorted by byte
    int token = -1;
  };
  std::vector<Node> nodes_ = std::vector<Node>(1);
};

class HfTokenizer final : public TokenizerImpl {
 public:
  // `json_text`: the tokenizer.json content; `config_text`: tokenizer_config.json's, or
  // "" when there is none. `name` (a path) prefixes error messages.
  static StatusOr<std::shared_ptr<const HfTokenizer>> parse(std::string json_text,
                                                            const std::string& config_text,
                                                            const std::string& name);

  TokenizerFormat format() const override { return TokenizerFormat::kHuggingFace; }
  std::vector<int32_t> encode(std::string_view text, bool add_special) const override;
  std::string decode(std::span<const int32_t> ids, bool keep_special) const override;
  std::string id_to_piece(int id) const override;
  int piece_to_id(std::string_view piece) const override;
  std::string model_bytes() const override { return json_text_; }

 private:
  struct Segment {
    std::string text;
    int32_t id = -1;  // an added token's id, or -1 for text still to encode
    bool at_start = false;
  };
  Status parse_added_tokens(const nlohmann::json& j, const std::string& where);
  // Gives `t` its id as the Rust library's AddedVocabulary does (the "id" in the file is
  // only checked): the model's id for a token the vocabulary holds, else the next id from
  // the vocabulary's size on; a token listed twice keeps its first id.
  void add_token(AddedToken t, const std::string& where);
  Status parse_config(const std::string& config_text, const std::string& name);
  // Cuts `seg` at the added tokens of `trie` (step 1 / 2 above).
  void split_added(const Segment& seg, const AddedTokenTrie& trie, std::vector<Segment>& out) const;
  void encode_words(const Segment& seg, std::vector<int32_t>& ids) const;
  const AddedToken* added_by_id(int32_t id) const;

  std::string json_text_;
  std::unique_ptr<Normalizer> normalizer_;
  std::unique_ptr<PreTokenizer> pre_tokenizer_;
  std::unique_ptr<BpeModel> model_;
  std::unique_ptr<Decoder> decoder_;
  SpecialWrap post_;
  std::vector<AddedToken> added_;           // in file order
  StringIdMap added_ids_;                   // content -> id
  int32_t next_added_id_ = 0;               // the id of the next added token not in the vocabulary
  std::vector<int> added_index_by_id_;      // id -> index in added_ (-1 when not added)
  std::vector<std::string> added_decoded_;  // per added_: its text when decoding
  AddedTokenTrie raw_trie_;                 // tokens with normalized=false
  AddedTokenTrie normalized_trie_;          // tokens with normalized=true (normalized content)
};

}  // namespace r1kit::data::hf
