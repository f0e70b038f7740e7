// Text primitives of the Hugging Face tokenizer (data/hf_tokenizer.h): UTF-8 helpers, the
// Unicode character classes the Rust `tokenizers` library tests with Rust's `char`
// methods, and the split patterns (a regex, a literal string, a character predicate)
// with the library's "find matches" rule (docs/tokenizers.md, "Pre-tokenizers").
//
// Patterns cover their input with contiguous, ordered pieces, each flagged match or not:
//   "" -> [("", no match)]; "a1b" with \d -> [("a", no) ("1", yes) ("b", no)].
// Regexes are Oniguruma's (the engine the Rust library uses), compiled once with
// ONIG_OPTION_NONE, ONIG_SYNTAX_DEFAULT and UTF-8, and searched over the whole input from
// the last match's end (so look-behind sees the text before). An empty match right where
// the previous match ended is skipped and the search moves on one character, as the
// Rust `onig` crate's find_iter does.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace r1kit::data::hf {

// --- UTF-8 -----------------------------------------------------------------------------

// Bytes in the UTF-8 character that starts with `lead` (1 for a stray continuation byte).
inline size_t utf8_len(unsigned char lead) {
  return lead < 0x80 ? 1 : lead < 0xE0 ? (lead < 0xC0 ? 1 : 2) : lead < 0xF0 ? 3 : 4;
}
// The code point at s[pos] (s is valid UTF-8); `len` receives its byte length.
char32_t utf8_decode(std::string_view s, size_t pos, size_t* len);
void utf8_append(std::string& out, char32_t cp);
// True when `s` is well-formed UTF-8 (no overlongs, surrogates or values above U+10FFFF).
bool utf8_valid(std::string_view s);
// `s` with every maximal ill-formed subsequence replaced by U+FFFD, as the Unicode
// standard's "substitution of maximal subparts" (ch. 3.9), WHATWG's decoder, Python's
// errors="replace" and Rust's String::from_utf8_lossy do. Valid input is returned as is.
std::string utf8_replace_invalid(std::string_view s);

// --- character classes (Rust's char methods and regex crate classes) -------------------

bool is_rust_whitespace(char32_t c);  // char::is_whitespace: the White_Space property
bool is_rust_numeric(char32_t c);     // char::is_numeric: categories Nd, Nl, No
// The regex crate's Unicode \w: letters, marks, Nd, Nl, Pc and the joiners U+200C/D.
bool is_rust_word(char32_t c);

// --- split patterns ---------------------------------------------------------------------

struct Match {
  size_t begin = 0;
  size_t end = 0;
  bool is_match = false;
};

class Pattern {
 public:
  virtual ~Pattern() = default;
  // Covers `text` with contiguous pieces (see the header comment).
  virtual std::vector<Match> find_matches(std::string_view text) const = 0;
};

// A compiled Oniguruma regex. Searching is thread-safe (the compiled program is shared,
// each search has its own region).
class Regex final : public Pattern {
 public:
  // InvalidArgument naming the pattern and Oniguruma's message when it does not compile.
  static StatusOr<std::shared_ptr<const Regex>> compile(std::string_view pattern);
  ~Regex() override;
  std::vector<Match> find_matches(std::string_view text) const override;
  // Calls fn(begin, end) for every match, left to right (the rule above).
  void for_each_match(std::string_view text, const std::function<void(size_t, size_t)>& fn) const;

 private:
  Regex() = default;
  void* regex_ = nullptr;  // OnigRegex (kept out of this header)
};

// A literal string: leftmost non-overlapping occurrences. The empty string matches nothing.
class LiteralPattern final : public Pattern {
 public:
  explicit LiteralPattern(std::string literal) : literal_(std::move(literal)) {}
  std::vector<Match> find_matches(std::string_view text) const override;

 private:
  std::string literal_;
};

// Every character for which `pred` is true is a match of its own.
class CharPattern final : public Pattern {
 public:
  explicit CharPattern(std::function<bool(char32_t)> pred) : pred_(std::move(pred)) {}
  std::vector<Match> find_matches(std::string_view text) const override;

 private:
  std::function<bool(char32_t)> pred_;
};

// Flips every piece's match flag (the Split pre-tokenizer's `invert`).
std::vector<Match> invert_matches(std::vector<Match> matches);

// Replaces every match of `pattern` in `text` by `content`.
std::string replace_all(const Pattern& pattern, std::string_view text, std::string_view content);

}  // namespace r1kit::data::hf
