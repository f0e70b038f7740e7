// The BPE model of a Hugging Face tokenizer.json (data/hf_tokenizer.h): byte-pair encoding
// (Sennrich et al. 2016, "Neural Machine Translation of Rare Words with Subword Units",
// section 3.2) as the Rust `tokenizers` library applies it
// (https://huggingface.co/docs/tokenizers/api/models, "BPE").
//
// Encoding one pre-tokenized word w:
//   1. ignore_merges and w in the vocabulary: [id(w)].
//   2. Split w into characters c_1..c_n; c_i (i > 1) gets continuing_subword_prefix in
//      front, c_n gets end_of_word_suffix behind; each becomes its vocabulary id. A
//      character not in the vocabulary becomes, with byte_fallback, the ids of "<0xXX>"
//      for each of its UTF-8 bytes (when all exist); else unk_token's id (consecutive
//      unknowns fused into one with fuse_unk), or nothing when there is no unk_token.
//   3. Repeatedly merge the adjacent pair (a, b) with the lowest merge rank (the pair's
//      index in "merges"; ties: the leftmost pair) into id(a + b without b's prefix),
//      until no adjacent pair has a merge.
// Merges are listed as "a b" strings or ["a", "b"] pairs; a merge whose parts or result
// are not in the vocabulary is an error (as in the Rust library). Words shorter than 256
// bytes are cached (10,000 per model, as the Rust library's default cache); the cache is
// thread-safe. dropout must be null or 0 (r1kit encodes deterministically).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/status.h"

namespace r1kit::data::hf {

// Hash and equality that let std::string-keyed maps be searched with a string_view.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using StringIdMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

class BpeModel {
 public:
  // The model object `j` ("type": "BPE"). `where` names it in errors.
  static StatusOr<std::unique_ptr<BpeModel>> parse(const nlohmann::json& j,
                                                   const std::string& where);

  // Appends the ids of the word `word` (step 1-3 above) to `out`.
  void tokenize(std::string_view word, std::vector<int32_t>& out) const;

  int32_t token_to_id(std::string_view token) const;  // -1 when absent
  const std::string* id_to_token(int32_t id) const;   // nullptr when absent
  int32_t max_id() const { return static_cast<int32_t>(vocab_r_.size()) - 1; }
  int32_t vocab_len() const { return static_cast<int32_t>(vocab_.size()); }  // entries
  int32_t unk_id() const { return unk_id_; }

 private:
  struct MergeTarget {
    int32_t rank;
    int32_t new_id;
  };
  void split_word(std::string_view word, std::vector<int32_t>& ids) const;
  void merge_all(std::vector<int32_t>& ids) const;
  Status add_merge(std::string_view a, std::string_view b, int32_t rank, const std::string& where);
  static uint64_t pair_key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }

  StringIdMap vocab_;
  std::vector<std::string> vocab_r_;  // id -> token ("" for ids the vocabulary skips)
  std::vector<bool> has_id_;
  std::unordered_map<uint64_t, MergeTarget> merges_;
  std::string prefix_;  // continuing_subword_prefix
  std::string suffix_;  // end_of_word_suffix
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  bool fuse_unk_ = false;
  int32_t unk_id_ = -1;
  int32_t byte_ids_[256];  // ids of "<0x00>".."<0xFF>", -1 when absent

  static constexpr size_t kCacheCapacity = 10000;
  static constexpr size_t kCacheMaxWord = 256;
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> cache_;
};

}  // namespace r1kit::data::hf
