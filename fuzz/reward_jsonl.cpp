// Fuzz target: `r1kit reward score` input, one JSON record a line (fuzz/fuzz_target.h).
#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "fuzz/fuzz_target.h"
#include "reward/jsonl.h"

namespace r1kit::fuzz {
namespace {

constexpr std::string_view kRewardTarget = "reward_jsonl";

// Every built-in rule reward with its defaults: all but code_execution (runs programs in
// a sandbox) and remote (a gRPC server). They read the records' metadata (answer, target,
// numbers, solution, ...), so the records reach each reward's own parsing.
const reward::CombinedReward& all_rule_rewards() {
  static const reward::CombinedReward rewards = [] {
    auto specs = reward::specs_from_flags(
        "math_accuracy,format,tag_count,arithmetic,countdown,knights_knaves,overlong,"
        "cosine_length,kimi_length,repetition,language_consistency",
        "", "{}");
    if (!specs.ok()) bug(kRewardTarget, "reward specs: " + specs.status().message());
    auto built = reward::build_rewards(*specs);
    if (!built.ok()) bug(kRewardTarget, "rewards: " + built.status().message());
    return std::move(*built);
  }();
  return rewards;
}

}  // namespace

Outcome reward_jsonl(std::span<const uint8_t> data) {
  const reward::CombinedReward& rewards = all_rule_rewards();
  std::istringstream in{std::string(as_text(data))};
  std::ostringstream out;
  int64_t unjudged = 0;
  auto scored = reward::score_jsonl(in, "fuzz.jsonl", rewards, out, &unjudged);
  if (!scored.ok()) return classify(kRewardTarget, scored.status());

  // reward/jsonl.h: one output record a scored input, each {"total": x, "rewards": {...}}.
  std::istringstream lines(out.str());
  std::string line;
  int64_t n = 0, nulls = 0;
  while (std::getline(lines, line)) {
    ++n;
    auto record = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!record.is_object() || !record.contains("total") || !record.contains("rewards"))
      bug(kRewardTarget, fmt::format("output line {} is not a score record: {}", n, line));
    if (record["total"].is_null()) ++nulls;
  }
  if (n != *scored)
    bug(kRewardTarget, fmt::format("{} output lines for {} scored records", n, *scored));
  if (nulls != unjudged)
    bug(kRewardTarget, fmt::format("{} null totals, but unjudged says {}", nulls, unjudged));
  return Outcome::kAccepted;
}

}  // namespace r1kit::fuzz
