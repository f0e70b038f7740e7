// Fuzz target: the math answer parser (fuzz/fuzz_target.h). The input's first line is a
// gold answer as a dataset gives it, the rest a model's completion.
#include <fmt/format.h>

#include "fuzz/fuzz_target.h"
#include "reward/math_verify.h"

namespace r1kit::fuzz {

Outcome math_answer(std::span<const uint8_t> data) {
  constexpr std::string_view kName = "math_answer";
  const std::string_view text = as_text(data);
  const auto [gold_raw, completion] = split_at(text, '\n');

  const std::string gold = reward::gold_answer_text(gold_raw);
  (void)reward::normalize_answer(gold);
  const reward::ExtractedAnswer found = reward::extract_answer(completion);
  for (reward::AnswerSource source : reward::default_answer_sources()) {
    const reward::ExtractedAnswer one = reward::extract_answer(completion, {source});
    if (one.found && found.found && one.source == found.source && one.text != found.text)
      bug(kName, fmt::format("source {} finds '{}' alone, '{}' with the others",
                             static_cast<int>(source), one.text, found.text));
  }
  // The whole text as both sides: the parser on long, unbalanced input.
  (void)reward::answers_match(text, completion);
  if (!found.found) return Outcome::kRejected;
  (void)reward::normalize_answer(found.text);
  const bool match = reward::answers_match(gold, found.text);
  if (reward::answers_match(gold, found.text) != match)
    bug(kName, "answers_match is not deterministic");
  // Accepted: the completion's answer is right, as math_accuracy would score it (a hedge,
  // several distinct \boxed answers, never is).
  return match && !found.hedged ? Outcome::kAccepted : Outcome::kRejected;
}

}  // namespace r1kit::fuzz
