// Pre-tokenizers of a Hugging Face tokenizer.json (data/hf_tokenizer.h), as the Rust
// `tokenizers` library defines them (https://huggingface.co/docs/tokenizers/components,
// "Pre-tokenizers"). A pre-tokenizer cuts the normalized text into pieces ("words") that
// the model encodes one by one; pieces that come out empty are dropped.
//
//   Split{pattern, behavior, invert}  cut at the pattern's matches ({"String": s} literal or
//       {"Regex": r} Oniguruma), `invert` swapping matches and the text between them.
//       behavior, for "a1b2" split at digits (matches 1 and 2):
//         Removed            a | b            (matches dropped)
//         Isolated           a | 1 | b | 2    (every piece its own)
//         MergedWithPrevious a1 | b2          (a match joins the piece before it)
//         MergedWithNext     a | 1b | 2       (a match joins the piece after it)
//         Contiguous         a | 1 | b | 2    (runs of adjacent matches join; "12" stays one)
//   ByteLevel{add_prefix_space, use_regex, trim_offsets}  (GPT-2's byte-level BPE, Radford
//       et al. 2019, section 2.2): prepend " " to each piece that does not start with one
//       (add_prefix_space); with use_regex cut with GPT-2's pattern
//         's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//       (Isolated); then write every UTF-8 byte as one printable character (bytes 0x21-0x7E,
//       0xA1-0xAC, 0xAE-0xFF as themselves, the other 68 as U+0100.. in byte order, so a
//       space is "Ġ" U+0120). trim_offsets only changes offsets, which r1kit does not report.
//   Digits{individual_digits}  Unicode numeric characters (Rust char::is_numeric) Isolated
//       one by one (true) or in Contiguous runs (false).
//   Metaspace{replacement, prepend_scheme, split}  (SentencePiece style) spaces become
//       `replacement` ("▁"); prepend_scheme "always" prepends it to each piece not starting
//       with it, "first" only to the piece at the start of the input, "never" not at all
//       (legacy add_prefix_space=false means "never"); split=true (default) cuts before
//       every replacement character (MergedWithNext).
//   Whitespace     keep runs of \w+ and of [^\w\s]+, drop the whitespace between.
//   WhitespaceSplit  cut at whitespace (Rust char::is_whitespace), dropping it.
//   Sequence{pretokenizers}  apply each in order.
// Any other type or option value is an InvalidArgument naming the component.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/status.h"
#include "data/hf_text.h"

namespace r1kit::data::hf {

// A piece of the input on its way to the model.
struct Piece {
  std::string text;
  bool at_start = false;  // begins at offset 0 of the original input (Metaspace "first")
};

enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

// Cuts `piece` at `matches` (from a Pattern over piece.text) following `behavior`,
// dropping empty results.
std::vector<Piece> split_piece(const Piece& piece, const std::vector<Match>& matches,
                               SplitBehavior behavior);

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Replaces `pieces` with their pre-tokenized pieces, in order.
  virtual void pre_tokenize(std::vector<Piece>& pieces) const = 0;
};

// The pre-tokenizer described by `j` (null -> nullptr). `where` names it in errors.
StatusOr<std::unique_ptr<PreTokenizer>> parse_pre_tokenizer(const nlohmann::json& j,
                                                            const std::string& where);

// The byte-level alphabet: the character (as UTF-8) that stands for each byte, and back
// (-1 for characters that stand for no byte).
const std::string& byte_to_char(unsigned char b);
int char_to_byte(char32_t c);

}  // namespace r1kit::data::hf
