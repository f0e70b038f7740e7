// Shaping rewards: length (DAPO soft overlong, cosine, Kimi), repetition, language
// consistency.
//
// Follows DAPO §3.4, Eq. 13 (soft overlong punishment, in tokens),
// Demystify-Long-CoT's cosine reward as in open-r1 get_cosine_scaled_reward, Kimi 1.5's
// length reward (len_reward), open-r1's repetition penalty, and DeepSeek-R1 §2.3.2's
// language-consistency reward (share of target-language words in the CoT).
// Different on purpose:
// - Lengths are tokens (Sample::completion_ids), not characters (ms-swift mixed the two
//   up; docs/rewards.md, "Where other implementations go wrong").
// - Cosine clamps progress to [0, 1], so it stays monotonic past max_length (open-r1's
//   cosine reward does not clamp it and rises again past max_length).
// - Kimi's min/max are taken over the group (one prompt's samples), as in the paper;
//   open-r1 takes them over everything passed to the call.
// - Correctness for cosine/Kimi comes from an inner reward built by name from the
//   registry (math_accuracy by default, with the map `correctness_args` as its
//   arguments); an inner NaN gives NaN.
// - Repetition splits words on whitespace and treats each CJK ideograph as a word
//   (open-r1 uses jieba for Chinese, which Debian does not ship).
//
// Thread-safety: immutable after construction.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "reward/reward.h"

namespace r1kit::reward {

struct OverlongOptions {
  int64_t max_length = 16384;   // L_max, tokens: beyond it the reward is -1
  int64_t cache_length = 4096;  // L_cache, tokens: the linear band before L_max
  void visit(ConfigVisitor& v) {
    v.field("max_length", max_length, "L_max in tokens", Range::positive());
    v.field("cache_length", cache_length, "L_cache in tokens", Range::non_negative());
  }
  Status validate() const;
};

// DAPO Eq. 13: 0 if L <= L_max - L_cache; (L_max - L_cache - L) / L_cache inside the
// band; -1 if L > L_max. L = completion_ids.size() (NaN when ids are missing but the
// text is not empty).
class OverlongReward final : public Reward {
 public:
  explicit OverlongReward(const OverlongOptions& o) : o_(o) {}
  Scores score(std::span<const Sample> group) const override;

 private:
  OverlongOptions o_;
};

struct CosineOptions {
  int64_t max_length = 1000;                  // tokens at which progress reaches 1
  double correct_short = 1.0;                 // correct, length 0
  double correct_long = 0.5;                  // correct, length >= max_length
  double wrong_short = -1.0;                  // wrong, length 0
  double wrong_long = -0.5;                   // wrong, length >= max_length
  std::string correctness = "math_accuracy";  // inner reward deciding correct (> 0.5)
  void visit(ConfigVisitor& v) {
    v.field("max_length", max_length, "tokens where progress reaches 1", Range::positive());
    v.field("correct_short", correct_short, "reward of a correct empty completion");
    v.field("correct_long", correct_long, "reward of a correct completion at max_length");
    v.field("wrong_short", wrong_short, "reward of a wrong empty completion");
    v.field("wrong_long", wrong_long, "reward of a wrong completion at max_length");
    v.field("correctness", correctness, "reward that decides correctness (> 0.5)");
  }
};

// r = long + 0.5 (short - long)(1 + cos(pi * min(1, L / max_length))).
class CosineLengthReward final : public Reward {
 public:
  CosineLengthReward(const CosineOptions& o, std::unique_ptr<Reward> correctness)
      : o_(o), correctness_(std::move(correctness)) {}
  Scores score(std::span<const Sample> group) const override;

 private:
  CosineOptions o_;
  std::unique_ptr<Reward> correctness_;
};

struct KimiLengthOptions {
  std::string correctness = "math_accuracy";  // inner reward deciding correct (> 0.5)
  void visit(ConfigVisitor& v) {
    v.field("correctness", correctness, "reward that decides correctness (> 0.5)");
  }
};

// Kimi 1.5: lambda = 0.5 - (L - min) / (max - min) over the group; correct -> lambda,
// wrong -> min(0, lambda); 0 for everyone when all lengths are equal.
class KimiLengthReward final : public Reward {
 public:
  KimiLengthReward(const KimiLengthOptions& o, std::unique_ptr<Reward> correctness)
      : o_(o), correctness_(std::move(correctness)) {}
  Scores score(std::span<const Sample> group) const override;

 private:
  KimiLengthOptions o_;
  std::unique_ptr<Reward> correctness_;
};

struct RepetitionOptions {
  int64_t ngram_size = 3;     // n
  double max_penalty = -1.0;  // reward when every n-gram repeats
  void visit(ConfigVisitor& v) {
    v.field("ngram_size", ngram_size, "n of the n-grams", Range::between(1, 64));
    v.field("max_penalty", max_penalty, "reward when no n-gram is unique", Range::at_most(0));
  }
};

// (1 - unique n-grams / total n-grams) * max_penalty over lower-cased words; 0 when the
// text has fewer than n words.
class RepetitionReward final : public Reward {
 public:
  explicit RepetitionReward(const RepetitionOptions& o) : o_(o) {}
  Scores score(std::span<const Sample> group) const override;
  double score_one(std::string_view text) const;

 private:
  RepetitionOptions o_;
};

struct LanguageConsistencyOptions {
  std::string script = "latin";  // the target script of the chain of thought
  bool prefilled_think = false;  // the CoT starts at the completion's start
  void visit(ConfigVisitor& v) {
    v.field("script", script, "target script",
            OneOf{"latin", "han", "cyrillic", "arabic", "devanagari", "hangul", "japanese"});
    v.field("prefilled_think", prefilled_think, "the prompt ends with <think>");
  }
};

// The share of chain-of-thought words (the <think> block, else the whole completion)
// written in the target script; words without letters (numbers, symbols) are not
// counted; each Han/kana character is a word. 0 when the CoT has no words.
class LanguageConsistencyReward final : public Reward {
 public:
  explicit LanguageConsistencyReward(const LanguageConsistencyOptions& o) : o_(o) {}
  Scores score(std::span<const Sample> group) const override;
  double score_one(std::string_view completion) const;

 private:
  LanguageConsistencyOptions o_;
};

// Decodes one UTF-8 code point at s[*i], advancing *i; invalid bytes give U+FFFD and
// advance by one.
char32_t next_code_point(std::string_view s, size_t* i);

}  // namespace r1kit::reward
