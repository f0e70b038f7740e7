// The reward registry, the recipe's reward list, and the weighted combination; see
// reward.h. Built-in rewards are registered here, by name.
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>

#include "reward/code_execution.h"
#include "reward/reward.h"
#include "reward/rule_rewards.h"
#include "reward/shaping.h"

namespace r1kit::reward {

// ---------------------------------------------------------------- registry

RewardRegistry& RewardRegistry::global() {
  static RewardRegistry* registry = [] {
    auto* r = new RewardRegistry();  // never destroyed: plug-ins may outlive statics
    register_builtin_rewards(*r);
    return r;
  }();
  return *registry;
}

Status RewardRegistry::add(std::string name, RewardFactory factory, std::string doc) {
  if (name.empty()) return InvalidArgument("reward name must not be empty");
  std::lock_guard<std::mutex> lock(mu_);
  if (entries_.count(name)) return AlreadyExists("reward {} is already registered", name);
  entries_.emplace(std::move(name), Entry{std::move(factory), std::move(doc)});
  return OkStatus();
}

StatusOr<std::unique_ptr<Reward>> RewardRegistry::create(std::string_view name,
                                                         const nlohmann::json& args) const {
  RewardFactory factory;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = entries_.find(name);
    if (it == entries_.end()) {
      std::string known;
      for (const auto& kv : entries_) known += (known.empty() ? "" : ", ") + kv.first;
      if (name == "remote") {
        return NotFound(
            "reward \"remote\" is not available in this binary: it lives in "
            "r1kit_reward_grpc (reward/grpc/remote.h), which the r1kit CLI registers at start "
            "(known rewards: {})",
            known);
      }
      return NotFound("unknown reward \"{}\" (known rewards: {})", name, known);
    }
    factory = it->second.factory;
  }
  return factory(args);
}

bool RewardRegistry::contains(std::string_view name) const {
  std::lock_guard<std::mutex> lock(mu_);
  return entries_.find(name) != entries_.end();
}

std::vector<std::pair<std::string, std::string>> RewardRegistry::list() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& kv : entries_) out.emplace_back(kv.first, kv.second.doc);
  return out;
}

// ---------------------------------------------------------------- built-ins

namespace {

// Splits `correctness_args` (a map) off the args of cosine/Kimi and builds the inner
// correctness reward.
template <class R, class Options>
RewardFactory length_factory(std::string name, RewardRegistry* registry) {
  return [name, registry](const nlohmann::json& args) -> StatusOr<std::unique_ptr<Reward>> {
    nlohmann::json rest = args.is_object() ? args : nlohmann::json::object();
    nlohmann::json inner_args = nlohmann::json::object();
    if (rest.contains("correctness_args")) {
      inner_args = rest["correctness_args"];
      rest.erase("correctness_args");
      if (!inner_args.is_object()) {
        return InvalidArgument("reward {}: correctness_args: expected a map, got {}", name,
                               inner_args.dump());
      }
    }
    ASSIGN_OR_RETURN(Options o, parse_reward_options<Options>(name, rest));
    if (o.correctness == name) {
      return InvalidArgument("reward {}: correctness: must name another reward", name);
    }
    StatusOr<std::unique_ptr<Reward>> inner = registry->create(o.correctness, inner_args);
    if (!inner.ok()) {
      return inner.status().with_context(fmt::format("reward {}: correctness", name));
    }
    return std::unique_ptr<Reward>(std::make_unique<R>(o, std::move(*inner)));
  };
}

}  // namespace

void register_builtin_rewards(RewardRegistry& r) {
  auto must = [](Status s) {
    if (!s.ok()) throw std::logic_error(s.to_string());  // a duplicate built-in: a bug
  };
  must(r.add("format", make_factory<FormatReward, FormatOptions>("format"),
             "1 when the completion is exactly <think>...</think> <answer>...</answer>"));
  must(r.add("tag_count", make_factory<TagCountReward, TagCountOptions>("tag_count"),
             "0.25 per R1 tag present exactly once"));
  must(r.add(
      "regex",
      [](const nlohmann::json& args) -> StatusOr<std::unique_ptr<Reward>> {
        ASSIGN_OR_RETURN(RegexOptions o, parse_reward_options<RegexOptions>("regex", args));
        StatusOr<std::shared_ptr<const data::hf::Regex>> re = data::hf::Regex::compile(o.pattern);
        if (!re.ok()) return re.status().with_context("reward regex: pattern");
        return std::unique_ptr<Reward>(std::make_unique<RegexReward>(o, std::move(*re)));
      },
      "match_score when a regex matches the completion, its reasoning or its answer"));
  must(r.add("math_accuracy",
             make_factory<MathAccuracyReward, MathAccuracyOptions>("math_accuracy"),
             "1 when the final answer is equivalent to metadata.answer (exact arithmetic)"));
  must(r.add("countdown", make_factory<CountdownReward, CountdownOptions>("countdown"),
             "1 / 0.1 / 0 for a countdown expression using metadata.numbers to hit .target"));
  must(r.add("countdown_search",
             make_factory<CountdownSearchReward, CountdownSearchOptions>("countdown_search"),
             "1 / 0 when every claim of a countdown search trace is true / one is not"));
  must(r.add("arithmetic", make_factory<ArithmeticReward, ArithmeticRewardOptions>("arithmetic"),
             "1 / 0.1 / 0 for the integer in <answer> against metadata.answer"));
  must(r.add("knights_knaves",
             make_factory<KnightsKnavesReward, KnightsKnavesRewardOptions>("knights_knaves"),
             "roles stated in <answer> against metadata.names/.roles"));
  must(r.add("overlong", make_factory<OverlongReward, OverlongOptions>("overlong"),
             "DAPO soft overlong punishment (tokens)"));
  must(r.add("cosine_length",
             length_factory<CosineLengthReward, CosineOptions>("cosine_length", &r),
             "cosine length reward, correct and wrong bands (tokens, clamped)"));
  must(r.add("kimi_length", length_factory<KimiLengthReward, KimiLengthOptions>("kimi_length", &r),
             "Kimi 1.5 length reward over the group"));
  must(r.add("repetition", make_factory<RepetitionReward, RepetitionOptions>("repetition"),
             "n-gram repetition penalty"));
  must(r.add(
      "language_consistency",
      make_factory<LanguageConsistencyReward, LanguageConsistencyOptions>("language_consistency"),
      "share of chain-of-thought words in the target script"));
  must(r.add("code_execution",
             make_factory<CodeExecutionReward, CodeExecutionOptions>("code_execution"),
             "fraction of stdin/stdout tests the last ```python block passes, sandboxed"));
}

// ---------------------------------------------------------------- recipe list

namespace {

// A reward list bound as a recipe's `reward:` key.
struct RewardList {
  std::vector<RewardSpec> reward;  // the list
  void visit(ConfigVisitor& v) { v.field("reward", reward, "rewards"); }
};

}  // namespace

StatusOr<std::vector<RewardSpec>> parse_reward_specs(std::string_view text,
                                                     std::string_view source) {
  YAML::Node list;
  try {
    list = YAML::Load(std::string(text));
  } catch (const YAML::ParserException& e) {
    return InvalidArgument("{}:{}:{}: YAML syntax error: {}", source, e.mark.line + 1,
                           e.mark.column + 1, e.msg);
  } catch (const YAML::Exception& e) {
    return InvalidArgument("{}: YAML error: {}", source, e.what());
  }
  if (list.IsNull()) return std::vector<RewardSpec>{};
  YAML::Node root(YAML::NodeType::Map);
  root.force_insert("reward", list);  // the list's nodes keep their marks
  RewardList out;
  RETURN_IF_ERROR(load_config(root, out, {}, source));
  return std::move(out.reward);
}

StatusOr<std::vector<RewardSpec>> resolve_roles(std::vector<RewardSpec> specs,
                                                std::string_view checker) {
  std::vector<std::string> accuracy;  // "reward[i] (name)" of every accuracy reward
  for (size_t i = 0; i < specs.size(); ++i) {
    RewardSpec& s = specs[i];
    if (s.role == kRoleAuto) {
      s.role = !checker.empty() && s.name == checker ? kRoleAccuracy
               : s.name == "format"                  ? kRoleFormat
                                                     : kRoleOther;
    }
    if (s.role == kRoleAccuracy) accuracy.push_back(fmt::format("reward[{}] ({})", i, s.name));
  }
  if (checker.empty()) return specs;
  if (accuracy.empty()) {
    return InvalidArgument(
        "reward: no reward has role accuracy; the task's checker is {} (list it, or mark "
        "your own checker with role: accuracy; its score >= 1 counts as correct)",
        checker);
  }
  if (accuracy.size() > 1) {
    std::string all;
    for (const std::string& a : accuracy) all += (all.empty() ? "" : ", ") + a;
    return InvalidArgument("reward: {} rewards have role accuracy ({}); give exactly one",
                           accuracy.size(), all);
  }
  return specs;
}

std::string checker_of(const std::vector<RewardSpec>& task_defaults) {
  for (const RewardSpec& s : task_defaults)
    if (s.role == kRoleAccuracy) return s.name;
  return "";
}

// ---------------------------------------------------------------- combination

GroupScores CombinedReward::score(std::span<const Sample> group) const {
  GroupScores out;
  out.total.assign(group.size(), 0.0);
  for (const Component& c : components_) {
    Scores s = c.reward->score(group);
    if (s.values.size() != group.size()) {  // a broken reward: nothing scored
      s.values.assign(group.size(), kNoScore);
      s.failures = static_cast<int64_t>(group.size());
    }
    for (size_t i = 0; i < group.size(); ++i) {
      if (c.weight != 0.0) out.total[i] += c.weight * s.values[i];  // NaN propagates
    }
    out.names.push_back(c.name);
    out.components.push_back(std::move(s.values));
    out.failures += s.failures;
  }
  return out;
}

int64_t CombinedReward::role_index(std::string_view role) const {
  for (size_t i = 0; i < components_.size(); ++i)
    if (components_[i].role == role) return static_cast<int64_t>(i);
  return -1;
}

StatusOr<CombinedReward> build_rewards(const std::vector<RewardSpec>& listed,
                                       const RewardRegistry& registry) {
  ASSIGN_OR_RETURN(const std::vector<RewardSpec> specs, resolve_roles(listed, ""));
  std::vector<CombinedReward::Component> components;
  std::map<std::string, int> seen;
  for (size_t i = 0; i < specs.size(); ++i) {
    const RewardSpec& s = specs[i];
    StatusOr<std::unique_ptr<Reward>> r = registry.create(s.name, s.args);
    if (!r.ok()) return r.status().with_context(fmt::format("reward[{}] ({})", i, s.name));
    const std::string& base = s.label.empty() ? s.name : s.label;
    int n = ++seen[base];
    if (n > 1 && !s.label.empty())
      return InvalidArgument("reward[{}] ({}): label '{}' is already used in the list", i, s.name,
                             s.label);
    std::string name = n == 1 ? base : fmt::format("{}#{}", base, n);
    components.push_back(CombinedReward::Component{name, s.weight, s.role, std::move(*r)});
  }
  return CombinedReward(std::move(components));
}

StatusOr<CombinedReward> build_task_rewards(const std::vector<RewardSpec>& listed,
                                            const std::vector<RewardSpec>& task_defaults,
                                            const RewardRegistry& registry) {
  ASSIGN_OR_RETURN(
      std::vector<RewardSpec> specs,
      resolve_roles(listed.empty() ? task_defaults : listed, checker_of(task_defaults)));
  return build_rewards(specs, registry);
}

}  // namespace r1kit::reward
