// The built-in rule rewards: format, tag_count, regex, math_accuracy and the
// procedural-task checkers (countdown, arithmetic, knights_knaves).
//
// Follows the format reward of DeepSeek-R1 §2.2.2, open-r1's format/tag_count and
// Logic-RL's structure check; math accuracy as in reward/math_verify.h; TinyZero's
// countdown/multiply and Logic-RL's knights-and-knaves scorers (docs/rewards.md).
// Different on purpose:
// - format matches the whole completion (open-r1's MULTILINE `$` let trailing junk and
//   duplicated blocks through) and accepts any whitespace between the tags, since the
//   R1-Zero template writes "<think> ... </think> <answer> ... </answer>" with spaces.
//   `prefilled_think` is for prompts that end in "<think>" (the completion must then
//   not repeat it), the case where open-r1's `^<think>` regex always gives 0.
// - countdown parses its own grammar (integers, + - * /, parentheses) into exact
//   rationals: `**`, `//`, decimals, unary minus and multi-line answers are handled
//   deliberately instead of by eval() and a character whitelist.
// - knights_knaves reads "Name is a knight/knave" per name with word boundaries, so
//   "knights" elsewhere in the text does not break parsing (Logic-RL counted
//   substrings), and a name claimed both ways is a hedge, never correct.
//
// Thread-safety: every reward here is immutable after construction.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/config.h"
#include "data/hf_text.h"
#include "reward/exact.h"
#include "reward/math_verify.h"
#include "reward/reward.h"

namespace r1kit::reward {

// ---------------------------------------------------------------- format, tag_count

struct FormatOptions {
  // The prompt ends with "<think>": the completion starts inside the reasoning and must
  // not contain another <think>.
  bool prefilled_think = false;
  // Whitespace-only reasoning or answer fails the format.
  bool require_nonempty = true;
  void visit(ConfigVisitor& v) {
    v.field("prefilled_think", prefilled_think, "the prompt ends with <think>");
    v.field("require_nonempty", require_nonempty, "empty <think> or <answer> content fails");
  }
};

// 1.0 when the whole completion is `<think> R </think> <answer> A </answer>` (any
// whitespace around and between the blocks, each tag exactly once, R and A free of tags),
// else 0.0.
class FormatReward final : public Reward {
 public:
  explicit FormatReward(const FormatOptions& o) : o_(o) {}
  Scores score(std::span<const Sample> group) const override;
  double score_one(std::string_view completion) const;

 private:
  FormatOptions o_;
};

struct TagCountOptions {
  bool prefilled_think = false;  // count "<think>" as expected 0 times instead of once
  void visit(ConfigVisitor& v) {
    v.field("prefilled_think", prefilled_think, "the prompt ends with <think>");
  }
};

// +0.25 for each of <think>, </think>, <answer>, </answer> occurring exactly once
// (open-r1 tag_count_reward, without its newline requirements).
class TagCountReward final : public Reward {
 public:
  explicit TagCountReward(const TagCountOptions& o) : o_(o) {}
  Scores score(std::span<const Sample> group) const override;

 private:
  TagCountOptions o_;
};

// ---------------------------------------------------------------- regex

enum class RegexScope { kCompletion, kThink, kAnswer };
inline constexpr EnumName<RegexScope> kRegexScopeNames[] = {{RegexScope::kCompletion, "completion"},
                                                            {RegexScope::kThink, "think"},
                                                            {RegexScope::kAnswer, "answer"}};

struct RegexOptions {
  std::string pattern;                      // Oniguruma (Ruby) syntax, required
  RegexScope in = RegexScope::kCompletion;  // the text searched
  double match_score = 1.0;                 // a match somewhere in it
  double miss_score = 0.0;                  // no match (or no such part)
  void visit(ConfigVisitor& v) {
    v.field("pattern", pattern, "the regex searched for (Oniguruma syntax)");
    v.field("in", in,
            "what is searched: completion (all of it), think (the reasoning, before "
            "</think>) or answer (the last <answer>...</answer>)",
            kRegexScopeNames);
    v.field("match_score", match_score, "score when the pattern matches");
    v.field("miss_score", miss_score, "score when it does not");
  }
  Status validate() const {
    if (pattern.empty()) return InvalidArgument("pattern: required (a regex)");
    return OkStatus();
  }
};

// match_score when `pattern` matches somewhere in the chosen part of the completion,
// else miss_score. With weight 0 it only measures: GRPO logs rewards/<name>/mean and
// evaluation its mean, e.g. the share of answers that work the steps (docs/rewards.md).
class RegexReward final : public Reward {
 public:
  RegexReward(const RegexOptions& o, std::shared_ptr<const data::hf::Regex> regex)
      : o_(o), regex_(std::move(regex)) {}
  Scores score(std::span<const Sample> group) const override;

 private:
  RegexOptions o_;
  std::shared_ptr<const data::hf::Regex> regex_;
};

// ---------------------------------------------------------------- math_accuracy

struct MathAccuracyOptions {
  std::string gold_key = "answer";  // metadata field holding the gold answer
  // Where to look for the answer, in priority order.
  std::vector<std::string> sources = {"answer_tag", "boxed", "final_answer", "gsm8k"};
  double correct_score = 1.0;  // score for an equivalent answer
  double wrong_score = 0.0;    // score for a wrong, missing, empty or hedged answer
  void visit(ConfigVisitor& v) {
    v.field("gold_key", gold_key, "metadata field with the gold answer");
    v.field("sources", sources, "answer locations in priority order",
            OneOf{"answer_tag", "boxed", "final_answer", "gsm8k"});
    v.field("correct_score", correct_score, "score when the answer is equivalent");
    v.field("wrong_score", wrong_score, "score when it is wrong, missing or hedged");
  }
  Status validate() const;
};

// correct_score / wrong_score; NaN when the sample has no gold answer.
class MathAccuracyReward final : public Reward {
 public:
  explicit MathAccuracyReward(const MathAccuracyOptions& o);
  Scores score(std::span<const Sample> group) const override;
  // NaN without gold; else whether the completion's answer matches.
  double score_one(const Sample& s) const;

 private:
  MathAccuracyOptions o_;
  std::vector<AnswerSource> sources_;
};

// The gold answer in metadata[key] as text (strings as is, numbers printed exactly);
// nullopt when absent, null, empty or of another type.
std::optional<std::string> metadata_answer(const nlohmann::json& metadata, const std::string& key);

// ---------------------------------------------------------------- countdown

struct CountdownOptions {
  double correct_score = 1.0;  // right expression
  double format_score = 0.1;   // well-formed expression, wrong value or wrong numbers
  void visit(ConfigVisitor& v) {
    v.field("correct_score", correct_score, "score for a right expression");
    v.field("format_score", format_score, "score for a well-formed but wrong expression");
  }
};

// How a countdown answer was judged.
enum class CountdownVerdict {
  kNoAnswer,      // no <answer>...</answer>
  kMalformed,     // not an expression of the grammar (e.g. `**`, `//`, letters)
  kWrongNumbers,  // well-formed, but the numbers used are not the given multiset
  kWrongValue,    // well-formed, right numbers, wrong value (or division by zero)
  kCorrect,
};

// Judges `expr` (the answer text): integers, + - * /, parentheses, optionally followed
// by "= N" where N must be the target.
CountdownVerdict judge_countdown(std::string_view expr, const std::vector<int64_t>& numbers,
                                 int64_t target);
// Evaluates an expression of the countdown grammar; the integers it used go to `used`.
// nullopt when malformed; `*div_by_zero`/`*overflow` flag a well-formed expression whose
// value is undefined or beyond 2^126.
std::optional<Rational> eval_countdown(std::string_view expr, std::vector<int64_t>* used,
                                       bool* undefined);

class CountdownReward final : public Reward {
 public:
  explicit CountdownReward(const CountdownOptions& o) : o_(o) {}
  Scores score(std::span<const Sample> group) const override;

 private:
  CountdownOptions o_;
};

// ---------------------------------------------------------------- countdown_search

// The claims of a Countdown search trace, the form data::countdown_search writes
// ("29 from 4 3 4 1. 29 = x + 4: 25 from 3 4 1 (max 16) no. ... 28 = x * 4: 7 from 3 4
// (7 1 12) yes, 4 + 3 = 7. 28 = (4 + 3) * 4. 29 = ((4 + 3) * 4) + 1."), each checked for
// truth, not against the solver's order: a trace that tries fewer branches, or others, is
// as true as the solver's. Checked: the first line is the problem; a split "t = x op n"
// uses a number n of its node and names the x it needs (x * n: t / n, exact; x + n:
// t - n > 0; n - x: n - t > 0; x - n: t + n; x / n: t * n); the node below it is that x
// from exactly the numbers left; a pair's list is what the two make (sum, difference,
// product, exact quotient, the search's order) and "yes" / "no" says whether x is in it,
// a "yes" naming an expression of the two worth x; "(max M)" is the largest value the
// numbers make and "no" after it says x is above it; "t = E." closes a node with an
// expression worth t over exactly its numbers; "none." closes a node from which no search
// of this form reaches its t.
struct SearchTraceCheck {
  int64_t claims = 0;        // claims checked
  int64_t false_claims = 0;  // of which false
  std::string error;         // the first false claim or the first sentence not of the
                             // form, quoted ("" when there is none)
  bool all_true() const { return error.empty() && claims > 0; }
};
SearchTraceCheck check_countdown_search(std::string_view trace, const std::vector<int64_t>& numbers,
                                        int64_t target);

struct CountdownSearchOptions {
  double true_score = 1.0;   // every claim of the reasoning true
  double false_score = 0.0;  // a false claim, a sentence not of the form, or no reasoning
  void visit(ConfigVisitor& v) {
    v.field("true_score", true_score, "score when every claim of the search trace is true");
    v.field("false_score", false_score,
            "score when a claim is false or the reasoning is not a search trace");
  }
};

// A process reward for Countdown's search traces (`task.trace: search`): true_score when
// the reasoning (the completion before "</think>", the "<think>" tag dropped) is a search
// trace whose every claim is true (check_countdown_search), whatever it found; NaN
// without metadata.numbers/.target. The answer is the `countdown` reward's to judge.
class CountdownSearchReward final : public Reward {
 public:
  explicit CountdownSearchReward(const CountdownSearchOptions& o) : o_(o) {}
  Scores score(std::span<const Sample> group) const override;

 private:
  CountdownSearchOptions o_;
};

// ---------------------------------------------------------------- arithmetic

struct ArithmeticRewardOptions {
  std::string gold_key = "answer";  // metadata field with the integer answer
  double correct_score = 1.0;       // the exact value
  double format_score = 0.1;        // a number in <answer>, but wrong
  void visit(ConfigVisitor& v) {
    v.field("gold_key", gold_key, "metadata field with the answer");
    v.field("correct_score", correct_score, "score for the exact value");
    v.field("format_score", format_score, "score for a wrong number in <answer>");
  }
};

// The <answer> tag must hold a number equal to the gold (exactly: "166", "166.0",
// "1,066" all read as numbers); TinyZero's multiply scorer, with exact comparison.
class ArithmeticReward final : public Reward {
 public:
  explicit ArithmeticReward(const ArithmeticRewardOptions& o) : o_(o) {}
  Scores score(std::span<const Sample> group) const override;

 private:
  ArithmeticRewardOptions o_;
};

// ---------------------------------------------------------------- knights_knaves

struct KnightsKnavesRewardOptions {
  double correct_score = 1.0;      // every person's role right (Logic-RL: 2)
  double wrong_score = 0.0;        // parsed, but some role wrong (Logic-RL: -1.5)
  double unparseable_score = 0.0;  // missing answer, a person unnamed or hedged (Logic-RL: -2)
  void visit(ConfigVisitor& v) {
    v.field("correct_score", correct_score, "every role right");
    v.field("wrong_score", wrong_score, "some role wrong");
    v.field("unparseable_score", unparseable_score, "no answer, or a person missing or hedged");
  }
};

// metadata: {"names": ["Zoey", ...], "roles": ["knight", "knave", ...]}. The answer
// must state "Name is a knight" or "Name is a knave" for every name, once per name.
class KnightsKnavesReward final : public Reward {
 public:
  explicit KnightsKnavesReward(const KnightsKnavesRewardOptions& o) : o_(o) {}
  Scores score(std::span<const Sample> group) const override;

 private:
  KnightsKnavesRewardOptions o_;
};

// The roles the text claims for each name ("knight"/"knave"; "" when none, "?" when
// both are claimed).
std::vector<std::string> parse_knights_knaves(std::string_view answer,
                                              const std::vector<std::string>& names);

// The contents of the last <answer>...</answer> in `completion`, or nullopt.
std::optional<std::string_view> last_answer_tag(std::string_view completion);

}  // namespace r1kit::reward
