// The tokenizer: one value type over two formats.
//
// - SentencePiece (Kudo & Richardson 2018), the tokenizer r1kit trains itself (train):
//   Llama-style settings for an LLM vocabulary: BPE, byte fallback (any text encodes,
//   nothing is <unk>), digits split into single digits, and user-defined symbols such as
//   <think> kept as single pieces. What it does differently from SentencePiece's
//   defaults, on purpose:
//   - identity normalization, no whitespace collapsing and no dummy "▁" prefix, so that
//     decode(encode(s)) == s for valid UTF-8 and decode(a ++ b) == decode(a) + decode(b):
//     a completion decodes the same alone as after its prompt;
//   - decode skips ids outside [0, vocab_size()) instead of failing.
//   SentencePiece itself lives in libr1kit_spm.so, loaded with dlopen (linking it beside
//   LibTorch crashes; docs/design.md, "SentencePiece: the shim and its two traps"), found
//   beside the running binary or at $R1KIT_SPM_LIB.
// - Hugging Face tokenizer.json (byte-level BPE as DeepSeek-V3/R1, Qwen2.5/Qwen3 and
//   Llama 3 ship it), encoding exactly as the Rust `tokenizers` library does
//   (data/hf_tokenizer.h; docs/tokenizers.md).
//
// Design: Tokenizer is a cheap-to-copy handle on an immutable implementation
// (data/tokenizer_impl.h: one subclass per format); every method forwards to it, so
// callers hold a data::Tokenizer whatever the format. Format-specific operations stay
// static here (train: SentencePiece only).
//
// Encode never adds BOS/EOS unless asked (encode(text, true) applies the tokenizer's own
// rule: nothing for SentencePiece, the post-processor's template for tokenizer.json).
//
// Thread-safety: a Tokenizer is immutable once loaded; encode, decode and the lookups
// may run on many threads at once. Copies are cheap and share one implementation.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"
#include "data/tokenizer_impl.h"

namespace r1kit::data {

// How to train a tokenizer (see Tokenizer::train). Sentences come from `input_files`,
// then `lines`; at least one of them must be non-empty.
struct TokenizerTrainOptions {
  std::vector<std::string> input_files;  // corpus files, one sentence per line
  std::vector<std::string> lines;        // in-memory sentences (read after the files)
  // Target number of pieces, counting the reserved and user-defined ones. With byte
  // fallback it must be >= 256 + reserved + user-defined pieces (+ the corpus's
  // distinct characters, which SentencePiece checks itself).
  int vocab_size = 512;
  // "bpe" (what Llama and DeepSeek use) or "unigram".
  std::string model_type = "bpe";
  // Pieces that always encode to one id wherever they occur in the text. No commas
  // (SentencePiece's list separator), no empty strings, no duplicates.
  std::vector<std::string> user_defined_symbols = {"<think>", "</think>", "<answer>", "</answer>"};
  bool split_digits = true;   // every digit its own piece: "123" -> "1","2","3"
  bool byte_fallback = true;  // unknown characters become UTF-8 byte pieces <0xNN>, not <unk>
  // Share of the corpus's characters that get their own piece (the rest go to bytes or
  // <unk>). 1.0 suits small alphabets; 0.9995 is SentencePiece's default for CJK corpora.
  double character_coverage = 1.0;
  // false: vocab_size is an upper bound, so a small corpus still trains (the model
  // may come out smaller: use Tokenizer::vocab_size(), not this field).
  bool hard_vocab_limit = false;
  // Reserved ids: distinct, inside [0, vocab_size); -1 disables bos/eos/pad (never unk).
  int unk_id = 0;  // "<unk>"
  int bos_id = 1;  // "<s>"
  int eos_id = 2;  // "</s>"
  int pad_id = 3;  // "<pad>"
  // Normalization: "identity" (exact round trips) or one of SentencePiece's "nmt_nfkc",
  // "nfkc", "nmt_nfkc_cf", "nfkc_cf" (NFKC folds look-alike characters; nmt_ variants
  // also turn control characters such as '\n' into spaces).
  std::string normalization = "identity";
  // Prepend "▁" to the text before encoding (SentencePiece's default, off here: see the
  // header comment). On: "Hi" and " Hi" encode alike, and decode drops a leading space.
  bool add_dummy_prefix = false;
  uint32_t seed = 0;    // SentencePiece's random generator (unigram sampling, shuffling)
  int num_threads = 0;  // trainer threads; 0 = all cores
  int max_sentence_length = 16384;  // sentences longer than this many bytes are skipped
};

class Tokenizer {
 public:
  // Loads a tokenizer from `path`, which is one of
  // - a SentencePiece .model file;
  // - a Hugging Face tokenizer.json (any file whose name ends in .json), with
  //   tokenizer_config.json from the same directory when present (it names BOS/EOS/PAD;
  //   data/hf_tokenizer.h gives the rule when it does not);
  // - a directory (a checkpoint) holding tokenizer.json (preferred) or tokenizer.model.
  // NotFound if the path is missing, InvalidArgument for a directory with neither file or
  // a tokenizer.json using something r1kit does not support (naming it), DataLoss if a
  // file is not a tokenizer, FailedPrecondition if libr1kit_spm.so cannot be loaded.
  static StatusOr<Tokenizer> load(const std::string& path);
  // Loads a tokenizer from its serialized bytes (what model_bytes() returns): the content
  // of a .model file, or of a tokenizer.json (text starting with '{'; no config).
  static StatusOr<Tokenizer> from_bytes(std::string_view model_bytes);

  // Trains a SentencePiece model and writes it to `out_model_path` atomically (temporary
  // file, then rename). InvalidArgument for bad options (naming the field), NotFound for
  // a missing corpus file.
  static Status train(const TokenizerTrainOptions& options, const std::string& out_model_path);

  TokenizerFormat format() const;

  // Text -> ids, with no BOS/EOS. Any text encodes: SentencePiece has byte fallback, and
  // tokenizer.json is byte-level. Invalid UTF-8 is replaced by U+FFFD first (each maximal
  // invalid subsequence, docs/tokenizers.md). Safe to call from many threads.
  std::vector<int32_t> encode(std::string_view text) const;
  // The same, with add_special: the special ids the tokenizer itself adds around a text
  // (a tokenizer.json's post-processor, e.g. Llama 3's <|begin_of_text|>; SentencePiece
  // models here add none).
  std::vector<int32_t> encode(std::string_view text, bool add_special) const;
  // Ids -> text. Unknown ids are skipped; BOS/EOS/PAD decode to nothing; SentencePiece's
  // <unk> decodes to " ⁇ ". With keep_special, BOS/EOS/PAD of a tokenizer.json decode to
  // their text too (so decode(encode(s), true) == s when s names them inline).
  std::string decode(std::span<const int32_t> ids) const;
  std::string decode(std::span<const int32_t> ids, bool keep_special) const;

  int vocab_size() const;  // number of ids (largest id + 1), the policy's minimum V
  int bos_id() const;      // -1 when the model has none
  int eos_id() const;      // -1 when the model has none
  int pad_id() const;      // -1 when the model has none
  int unk_id() const;      // -1 when the model has none (SentencePiece always has one)
  // The ids that end a generation: eos_id(), then, for a tokenizer loaded from a
  // checkpoint directory (or a file inside one), the `eos_token_id` (an id or a list) of
  // the directory's generation_config.json, else of its config.json, as Hugging Face's
  // generate() reads them. Llama 3.1 Instruct lists <|end_of_text|>, <|eom_id|> and
  // <|eot_id|> there; its tokenizer's EOS alone would let a chat turn run on. No
  // duplicates; empty when there is no EOS at all.
  std::vector<int64_t> stop_ids() const;
  // The piece of an id ("▁the", "<0x0A>", "<think>", "Ġthe"); "" when out of range.
  std::string id_to_piece(int id) const;
  // The id of a piece, or -1 when the vocabulary does not hold it.
  int piece_to_id(std::string_view piece) const;

  // The serialized tokenizer (a .model file's bytes, or the tokenizer.json text), e.g. to
  // compare two tokenizers.
  std::string model_bytes() const;
  // Writes model_bytes() to `path` atomically.
  Status save(const std::string& path) const;

 private:
  explicit Tokenizer(std::shared_ptr<const TokenizerImpl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const TokenizerImpl> impl_;  // shared by copies
  std::vector<int64_t> config_stop_ids_;       // the checkpoint's eos_token_id list
};

// The tokenizer file of a checkpoint directory: DIR/tokenizer.json if that exists, else
// DIR/tokenizer.model (whether or not it exists: callers check, and name it in errors).
std::string tokenizer_file_in(const std::string& dir);

// The files that make up the tokenizer at `path` (what Tokenizer::load accepts), each as
// (source path, file name in a checkpoint): {path, "tokenizer.model"} for SentencePiece;
// {tokenizer.json, "tokenizer.json"} plus {tokenizer_config.json,
// "tokenizer_config.json"} when that exists beside it. Checkpoints copy them byte for
// byte, so a checkpoint directory reloads with its tokenizer. NotFound when `path` is a
// directory without a tokenizer or does not exist.
StatusOr<std::vector<std::pair<std::string, std::string>>> tokenizer_files(const std::string& path);

// Where libr1kit_spm.so is looked for: $R1KIT_SPM_LIB if set, else beside the running
// binary (/proc/self/exe), then in ../lib from it. For error messages and diagnostics.
std::vector<std::string> spm_library_candidates();

}  // namespace r1kit::data
