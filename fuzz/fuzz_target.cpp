// The shared pieces of the fuzz targets: findings, Status classification, the list.
#include "fuzz/fuzz_target.h"

#include <fmt/format.h>

#include <array>

namespace r1kit::fuzz {

void bug(std::string_view target, std::string_view what) {
  throw FuzzBug(fmt::format("r1kit fuzz target {}: {}", target, what));
}

Outcome classify(std::string_view target, const Status& status) {
  if (status.ok()) return Outcome::kAccepted;
  if (status.code() == StatusCode::kInternal)
    bug(target, fmt::format("an Internal status is a bug: {}", status.message()));
  if (status.message().empty())
    bug(target, fmt::format("a {} status without a message", status_code_name(status.code())));
  return Outcome::kRejected;
}

std::span<const Target> targets() {
  static constexpr std::array<Target, 6> kTargets = {{
      {"safetensors_header", &safetensors_header},
      {"hf_config", &hf_config},
      {"recipe_yaml", &recipe_yaml},
      {"reward_jsonl", &reward_jsonl},
      {"math_answer", &math_answer},
      {"tokenizer_json", &tokenizer_json},
  }};
  return kTargets;
}

}  // namespace r1kit::fuzz
