// Math answer extraction, normalisation and exact equivalence, for math_accuracy.
//
// Follows Math-Verify, hendrycks MATH and verl's scorers (docs/rewards.md,
// "math_accuracy"): extraction in the order <answer> tag, last \boxed{} (hendrycks
// last_boxed_only_string, brace-matched), "final answer is" (Math-Verify's priority-0/50
// anchors), GSM8K "####" (verl gsm8k.py); normalisation from hendrycks strip_string and
// Math-Verify's NormalizationConfig (units, \left/\right, \dfrac, thousands separators,
// trailing period, degrees, percent); equivalence as in Math-Verify's verify(gold, pred)
// with gold first and asymmetric roles.
// Different on purpose:
// - Numbers are compared exactly (reward/exact.h), never rounded: 1/2004! != 1/2006!,
//   0.25 == \frac14, 10.0 == 10, 72. == 72 (verl's string compare gets these wrong).
// - No SymPy and no timeouts: the parser is a bounded recursive descent that runs in
//   time linear in its input, so a hostile answer cannot hang a trainer thread.
// - Several distinct \boxed answers (or more than 16 distinct ones, whatever their
//   values) are a hedge and score 0 (Math-Verify's boxed="all"
//   turns them into a set; we reject them outright). No whole-text fallback, no
//   substring matches, an empty answer never matches.
// - `4\sqrt(2)` reads as 4·√2 (Math-Verify read it as 4), `\text{13}` as 13 (Math-Verify
//   before 0.8.0 did not); docs/rewards.md, "Where other implementations go wrong".
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "data/task_answer.h"

namespace r1kit::reward {

// Where an answer can come from, tried in the order the caller lists them.
enum class AnswerSource {
  kAnswerTag,    // the last <answer>...</answer> (a \boxed inside it is unwrapped)
  kBoxed,        // the last \boxed{...} or \fbox{...} in the completion
  kFinalAnswer,  // "final answer is X" (case-insensitive), up to the end of the sentence
  kGsm8k,        // "#### X", up to the end of the line
};

struct ExtractedAnswer {
  bool found = false;   // an answer was found where the sources allow
  bool hedged = false;  // several distinct \boxed answers: never correct
  std::string text;     // the raw answer text (not normalised)
  AnswerSource source = AnswerSource::kAnswerTag;
};

// The default source order: tag, boxed, "final answer is", "####".
std::vector<AnswerSource> default_answer_sources();

// Finds the model's final answer in a completion. Linear in the completion's length.
ExtractedAnswer extract_answer(std::string_view completion,
                               const std::vector<AnswerSource>& sources = default_answer_sources());

// Gold answers as datasets give them (data/task_answer.h, shared with the jsonl task):
// last_boxed(text, all) is the contents of the last brace-matched \boxed{...} (or
// \fbox{...}; every boxed content in order into `all`); gold_answer_text(gold) reads a
// MATH solution (its last \boxed), a GSM8K answer ("... #### 72"), or the bare answer.
using data::gold_answer_text;
using data::last_boxed;

// Canonical text of an answer: LaTeX spacing, $, \left/\right, \dfrac/\tfrac, \text
// units, degrees, percent, a trailing period and thousands separators removed; spaces
// dropped. normalize_answer("\$1,234.") == "1234".
std::string normalize_answer(std::string_view answer);

// Whether `pred` (the model's answer) is equivalent to `gold`. Asymmetric: `x = 3`
// matches gold `3`, but gold `x = 3` needs an equation with the same left side. Empty
// answers never match. Exact on numbers, fractions, decimals, scientific notation,
// \frac, \sqrt, \pi, \cdot, \times, integer powers; tuples ordered, sets unordered,
// intervals with their brackets. Either side longer than 4096 characters never matches.
bool answers_match(std::string_view gold, std::string_view pred);

}  // namespace r1kit::reward
