// How an enum is spelled in recipes: one {value, "name"} line per choice, declared once
// beside the enum, e.g.
//
//   enum class RewardScale { kGroup, kBatch, kNone };
//   inline constexpr EnumName<RewardScale> kRewardScaleNames[] = {
//       {RewardScale::kGroup, "group"}, {RewardScale::kBatch, "batch"},
//       {RewardScale::kNone, "none"}};
//
// ConfigVisitor::field(key, value, doc, kRewardScaleNames) then binds the enum by name
// (a wrong spelling is an error listing the choices, with file:line), and dumps and
// saves it by name. Adding a choice is adding its line.
#pragma once

#include <span>
#include <string_view>

namespace r1kit {

template <class E>
struct EnumName {
  E value;
  const char* name;
};

// The name of `value` in `names` ("" when it has none).
template <class E>
constexpr std::string_view enum_name(E value, std::span<const EnumName<E>> names) {
  for (const auto& n : names)
    if (n.value == value) return n.name;
  return "";
}

// The value named `name`, or false when no choice has that name.
template <class E>
constexpr bool enum_from_name(std::string_view name, std::span<const EnumName<E>> names, E* out) {
  for (const auto& n : names)
    if (name == n.name) {
      *out = n.value;
      return true;
    }
  return false;
}

}  // namespace r1kit
