// The interface behind data::Tokenizer (tokenizer.h): one implementation per tokenizer
// format, SentencePiece (tokenizer.cpp) and Hugging Face tokenizer.json (hf_tokenizer.h).
// Tokenizer holds a shared_ptr<const TokenizerImpl> and forwards to it; implementations
// are immutable after loading (any cache inside must be thread-safe), so one instance
// serves every copy of a Tokenizer on every thread.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace r1kit::data {

enum class TokenizerFormat { kSentencePiece, kHuggingFace };

// The vocabulary size and the special ids, fixed at load (-1: none).
struct TokenizerIds {
  int vocab_size = 0;
  int bos = -1;
  int eos = -1;
  int pad = -1;
  int unk = -1;
};

class TokenizerImpl {
 public:
  virtual ~TokenizerImpl() = default;
  virtual TokenizerFormat format() const = 0;
  // See Tokenizer::encode / decode for the contracts.
  virtual std::vector<int32_t> encode(std::string_view text, bool add_special) const = 0;
  virtual std::string decode(std::span<const int32_t> ids, bool keep_special) const = 0;
  const TokenizerIds& ids() const { return ids_; }
  virtual std::string id_to_piece(int id) const = 0;
  virtual int piece_to_id(std::string_view piece) const = 0;
  // The serialized tokenizer: a .model file's bytes, or the tokenizer.json text.
  virtual std::string model_bytes() const = 0;

 protected:
  TokenizerIds ids_;  // set by the implementation while loading
};

}  // namespace r1kit::data
