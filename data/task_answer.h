// Answers as math datasets write them: MATH's last \boxed{...} (hendrycks
// last_boxed_only_string, brace-matched), GSM8K's "#### 72" line (verl's gsm8k.py), and
// a worked solution split into its reasoning and its final answer. The jsonl task reads
// its lines' answers with these (data/tasks/jsonl.cpp), and math_accuracy reads gold
// answers with the same functions (reward/math_verify.h re-exports them), so the answer
// a line is trained towards is the one it is scored against (docs/recipes.md, "Your own
// data: the jsonl task").
//
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace r1kit::data {

// Position just past the brace group that opens at `open` (s[open] == '{'), or npos when
// it never closes. \{ and \} are escaped braces, not group delimiters.
size_t match_brace(std::string_view s, size_t open);

// The contents of the last brace-matched \boxed{...} (or \fbox{...}, or hendrycks'
// "\boxed 5") in `text`; with `all` non-null, every boxed content in order. Empty when
// there is none.
std::string last_boxed(std::string_view text, std::vector<std::string>* all = nullptr);

// The text after the last "####" up to the end of its line, trimmed; nullopt without one.
std::optional<std::string> gsm8k_answer(std::string_view text);

// A solution split into its reasoning and its final answer.
struct WorkedSolution {
  std::string reasoning;  // the worked steps; "" when the text is only the answer
  std::string answer;     // the final answer ("" when none)
  bool marked = false;    // the answer came from a marker (\boxed, ####, <answer>)
};

// A dataset's solution:
//   MATH  "... so $x = \boxed{\frac34}$."  -> reasoning: the whole text, answer: \frac34
//         (reasoning "" when nothing but the boxed answer is there, e.g. "$\boxed{5}$")
//   GSM8K "Natalia sold ... clips.\n#### 72" -> reasoning: the text before ####, answer: 72
//   bare  " 17 "                            -> reasoning: "", answer: 17, not marked
// A non-empty \boxed wins over ####, as gold_answer_text reads them.
WorkedSolution split_solution(std::string_view text);

// A model-style response: R1's "<think> R </think> <answer> A </answer>" (the opening
// <think> optional, as after a prefilled one; a \boxed inside <answer> unwrapped) gives
// R and A; otherwise split_solution's MATH and GSM8K forms; otherwise the whole text is
// the reasoning and there is no answer (marked false, answer "").
WorkedSolution split_response(std::string_view text);

// The gold answer of a dataset's solution: split_solution(gold).answer. A MATH solution
// gives its last \boxed, a GSM8K answer its "####" line, anything else itself, trimmed.
std::string gold_answer_text(std::string_view gold);

}  // namespace r1kit::data
