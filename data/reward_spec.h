// One entry of a recipe's reward list, typed: the reward's registered name, its weight
// in the total, its role, and its arguments.
//
// Recipe syntax (a YAML list; every key other than name, label, weight and role is an argument
// of the reward, checked strictly by the reward's own options struct when it is built):
//   reward:
//     - {name: arithmetic, weight: 1.0, role: accuracy, format_score: 0.0}
//     - {name: format, weight: 0.2}
//
// Roles say what a score means, so nothing depends on a reward's position in the list:
//   accuracy  the task's checker: a sample is correct iff its score >= 1 (GRPO's
//             `accuracy` metric, evaluation's pass@k). A reward list has exactly one.
//   format    the R1 format reward: evaluation's format rate.
//   other     shaping (length, repetition, ...): only summed into the total.
//   auto      (the default) accuracy when the name is the task's checker (the reward
//             the task's defaults mark accuracy), format when the name is "format",
//             else other; see reward::resolve_roles.
//
// The struct lives in data/ rather than reward/ because tasks (data/tasks/) name their
// default rewards and reward/ depends on data/ (rewards read task samples' metadata);
// reward/reward.h builds rewards from these specs.
//
// Thread-safety: a plain value.
#pragma once

#include <cmath>
#include <nlohmann/json.hpp>
#include <string>

#include "core/config.h"
#include "core/status.h"

namespace r1kit::reward {

inline constexpr const char* kRoleAuto = "auto";
inline constexpr const char* kRoleAccuracy = "accuracy";
inline constexpr const char* kRoleFormat = "format";
inline constexpr const char* kRoleOther = "other";

struct RewardSpec {
  std::string name;                                // registry name
  double weight = 1.0;                             // weight in the total
  std::string role = kRoleAuto;                    // auto | accuracy | format | other
  std::string label;                               // logged as; "" = name
  nlohmann::json args = nlohmann::json::object();  // every other key of the entry

  void visit(ConfigVisitor& v) {
    v.field("name", name, "registered reward name (`r1kit reward list`)");
    v.field("label", label,
            "the name its scores are logged and reported under (rewards/<label>/mean); "
            "default: the name, a repeat numbered name#2, name#3, ...");
    v.field("weight", weight, "weight in the total reward");
    v.field("role", role,
            "accuracy (the task's checker), format, other (shaping), or auto: accuracy for "
            "the task's checker, format for `format`, else other",
            OneOf{kRoleAuto, kRoleAccuracy, kRoleFormat, kRoleOther});
    v.rest(args, "the reward's arguments (its options, checked when it is built)");
  }
  Status validate() const {
    if (name.empty()) return InvalidArgument("name: required, a registered reward name");
    if (!std::isfinite(weight)) return InvalidArgument("weight={}: must be finite", weight);
    return OkStatus();
  }
};

}  // namespace r1kit::reward
