// The Reward interface, the reward registry, and the weighted combination of rewards.
//
// Follows DeepSeek-R1 §2.2.2 (rule-based accuracy + format rewards, summed) and the
// reward-function registries of open-r1 (`REWARD_FUNCS_REGISTRY`) and verl
// (`default_compute_score`); docs/rewards.md.
// Different on purpose:
// - A Reward scores a whole group (the G completions of one prompt) at once, so group
//   rewards (Kimi's length reward) see exactly one prompt's samples, never a batch that
//   spans several prompts as in open-r1's len_reward.
// - NaN means "cannot judge" (missing ground truth, a dead plug-in): it is excluded from
//   statistics, never silently 0 or 1 (open-r1's accuracy reward once gave unparseable
//   gold 1.0).
// - Rewards never throw and never hang on model output; hostile text scores, it does
//   not crash (docs/rewards.md, "The interface").
// - Built-in rewards are registered explicitly (a static library drops self-registering
//   objects nobody references); R1KIT_REGISTER_REWARD is for the user's own binaries.
//
// Recipe syntax: a list of reward::RewardSpec (data/reward_spec.h; every key other than
// name, weight and role is the reward's argument, checked strictly by the reward's own
// options struct):
//   reward:
//     - {name: math_accuracy, weight: 1.0, role: accuracy}
//     - {name: format, weight: 0.5, prefilled_think: true}
//     - {name: countdown, weight: 1.0, format_score: 0.1}
//
// Thread-safety: Reward::score is const and every built-in reward is safe to call from
// several threads at once. The registry is safe for concurrent lookups; registration
// takes a lock.
#pragma once

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.h"
#include "core/status.h"
#include "data/reward_spec.h"

namespace r1kit::reward {

// "Cannot judge": excluded from statistics and from advantages.
inline constexpr double kNoScore = std::numeric_limits<double>::quiet_NaN();
inline bool is_no_score(double x) {
  return std::isnan(x);
}

// One completion to score.
struct Sample {
  std::string prompt;                   // the rendered prompt text the policy continued
  std::string completion;               // the decoded completion (no prompt)
  std::vector<int32_t> completion_ids;  // its token ids [T]; length rewards count these
  // Ground truth and task fields, e.g. {"answer": "3/4"} or {"numbers": [3, 5, 7],
  // "target": 26}, or {"tests": [{"input": "1\n", "output": "2\n"}]}.
  nlohmann::json metadata = nlohmann::json::object();
};

// What a reward returns for a list of samples: a score per sample, and how many of them
// it failed to score.
struct Scores {
  Scores() = default;
  // Implicit, so that a rule reward, which cannot fail, returns its std::vector<double>.
  Scores(std::vector<double> v, int64_t failed = 0) : values(std::move(v)), failures(failed) {}

  std::vector<double> values;  // one per sample, in order; kNoScore where it cannot be judged
  // Samples among them left kNoScore because scoring failed: a remote server's timeout,
  // error status or malformed reply (reward/grpc/remote.h), a plug-in's error
  // (reward/plugin.h). A sample that simply cannot be judged (no ground truth) is not a
  // failure. The GRPO trainer sums them into reward/remote_failures.
  int64_t failures = 0;
};

// A rule that scores completions. Implementations must not throw on any completion.
class Reward {
 public:
  virtual ~Reward() = default;
  // One score per sample, in order; kNoScore where the sample cannot be judged, counted in
  // Scores::failures when a failure is why. The span is one group (completions of the
  // same prompt) or any list of samples for rewards that do not look across samples.
  virtual Scores score(std::span<const Sample> group) const = 0;
};

// Builds a reward from its arguments (a JSON object: the recipe keys other than name,
// weight and role). Errors name the bad argument.
using RewardFactory = std::function<StatusOr<std::unique_ptr<Reward>>(const nlohmann::json& args)>;

// Name -> factory. global() holds every built-in reward plus whatever was registered
// or loaded from a plug-in library.
class RewardRegistry {
 public:
  // The process-wide registry, with the built-in rewards already in it.
  static RewardRegistry& global();

  // AlreadyExists if `name` is taken.
  Status add(std::string name, RewardFactory factory, std::string doc = "");
  // NotFound naming `name` and listing the known rewards; else the factory's result.
  StatusOr<std::unique_ptr<Reward>> create(std::string_view name, const nlohmann::json& args) const;
  bool contains(std::string_view name) const;
  // Registered names, sorted, each with its one-line doc.
  std::vector<std::pair<std::string, std::string>> list() const;

 private:
  struct Entry {
    RewardFactory factory;
    std::string doc;
  };
  mutable std::mutex mu_;
  std::map<std::string, Entry, std::less<>> entries_;  // guarded by mu_
};

// Registers the built-in rewards (format, tag_count, math_accuracy, countdown, ...) into
// `registry`. global() calls it once; tests may call it on a fresh registry.
void register_builtin_rewards(RewardRegistry& registry);

// Binds `args` (a JSON object) onto an options struct with visit(), strictly: an unknown
// key or a wrong type is an error naming the reward and the key.
template <config_detail::Section Options>
StatusOr<Options> parse_reward_options(std::string_view reward_name, const nlohmann::json& args) {
  if (!args.is_null() && !args.is_object()) {
    return InvalidArgument("reward {}: arguments must be a map, got {}", reward_name, args.dump());
  }
  std::string text = args.is_null() || args.empty() ? std::string("{}") : args.dump();
  StatusOr<Options> opts =
      load_config_string<Options>(text, {}, fmt::format("reward {}", reward_name));
  if (!opts.ok()) return opts.status().with_context(fmt::format("reward {}", reward_name));
  return opts;
}

// A reward whose options struct is bound from the args: Make(const Options&).
template <class R, class Options>
RewardFactory make_factory(std::string name) {
  return [name](const nlohmann::json& args) -> StatusOr<std::unique_ptr<Reward>> {
    ASSIGN_OR_RETURN(Options o, parse_reward_options<Options>(name, args));
    return std::unique_ptr<Reward>(std::make_unique<R>(o));
  };
}

// Parses a reward list given as text (YAML or JSON: a list of maps, e.g. `r1kit eval
// --rewards`), bound like a recipe's `reward:` key; errors name `source`, the line, the
// entry and the key.
StatusOr<std::vector<RewardSpec>> parse_reward_specs(std::string_view yaml_list,
                                                     std::string_view source = "reward list");

// Settles `auto` roles (data/reward_spec.h): accuracy for the reward named `checker`,
// format for one named "format", other for the rest; explicit roles are kept. With a
// checker (a task's), the result must have exactly one accuracy reward: none or two is
// an error naming the fix. Without one ("" ), no accuracy is required.
StatusOr<std::vector<RewardSpec>> resolve_roles(std::vector<RewardSpec> specs,
                                                std::string_view checker);

// The checker of a task's default rewards: the name of the spec with role accuracy
// ("" when there is none).
std::string checker_of(const std::vector<RewardSpec>& task_defaults);

// The scores of one group: the weighted total and every component for metrics.
struct GroupScores {
  std::vector<double> total;                    // [G] sum of weight * component; NaN if any
                                                // weighted component is NaN
  std::vector<std::string> names;               // [K] component names, recipe order
  std::vector<std::vector<double>> components;  // [K][G] raw component scores
  int64_t failures = 0;  // the components' Scores::failures, summed (a sample that two
                         // components failed to score counts twice)
};

// Several rewards summed with weights. Thread-safe when its components are.
class CombinedReward {
 public:
  struct Component {
    std::string name;                // registry name (a repeated name gets "#2", "#3")
    double weight = 1.0;             // weight in the total
    std::string role = kRoleOther;   // accuracy | format | other (never auto)
    std::unique_ptr<Reward> reward;  // the rule
  };
  CombinedReward() = default;
  explicit CombinedReward(std::vector<Component> components) : components_(std::move(components)) {}

  GroupScores score(std::span<const Sample> group) const;
  const std::vector<Component>& components() const { return components_; }
  // The index of the first component with `role` (kRoleAccuracy, kRoleFormat), -1 if none.
  int64_t role_index(std::string_view role) const;

 private:
  std::vector<Component> components_;
};

// Builds every spec with `registry`; the first error is returned with the entry's index.
// `auto` roles are settled without a checker (resolve_roles(specs, "")).
StatusOr<CombinedReward> build_rewards(const std::vector<RewardSpec>& specs,
                                       const RewardRegistry& registry = RewardRegistry::global());

// The rewards of a run on a task: `listed` (the recipe's `reward:` list), or the task's
// defaults when it is empty, with `auto` roles settled against the task's checker
// (checker_of(task_defaults)); exactly one accuracy reward, else an error.
StatusOr<CombinedReward> build_task_rewards(
    const std::vector<RewardSpec>& listed, const std::vector<RewardSpec>& task_defaults,
    const RewardRegistry& registry = RewardRegistry::global());

}  // namespace r1kit::reward

// Registers a reward class into RewardRegistry::global() at static-initialisation time,
// for rewards compiled into the user's own binary or a plug-in library loaded with
// RTLD_GLOBAL symbols. `Class` needs a constructor from `Options` (a struct with visit()).
//   struct MyOptions { double bonus = 1; void visit(r1kit::ConfigVisitor& v) {...} };
//   class MyReward : public r1kit::reward::Reward { ... explicit MyReward(const MyOptions&); };
//   R1KIT_REGISTER_REWARD(my_reward, MyReward, MyOptions, "one-line description");
#define R1KIT_REGISTER_REWARD(name, Class, Options, doc)                   \
  static const bool r1kit_reward_registered_##name = [] {                  \
    ::r1kit::Status s = ::r1kit::reward::RewardRegistry::global().add(     \
        #name, ::r1kit::reward::make_factory<Class, Options>(#name), doc); \
    return s.ok();                                                         \
  }()
