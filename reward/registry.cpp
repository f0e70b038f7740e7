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
  must(r.add("math_accuracy",
             make_factory<MathAccuracyReward, MathAccuracyOptions>("math_accuracy"),
             "1 when the final answer is equivalent to metadata.answer (exact arithmetic)"));
  must(r.add("countdown", make_factory<CountdownReward, CountdownOptions>("countdown"),
             "1 / 0.1 / 0 for a countdown expression using metadata.numbers to hit .target"));
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

// A YAML node as JSON: plain scalars typed (null, bool, int, float), quoted ones strings.
StatusOr<nlohmann::json> yaml_json(const YAML::Node& n, const std::string& where) {
  switch (n.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined: return nlohmann::json(nullptr);
    case YAML::NodeType::Sequence: {
      nlohmann::json out = nlohmann::json::array();
      for (const YAML::Node& c : n) {
        ASSIGN_OR_RETURN(nlohmann::json j, yaml_json(c, where));
        out.push_back(std::move(j));
      }
      return out;
    }
    case YAML::NodeType::Map: {
      nlohmann::json out = nlohmann::json::object();
      for (auto it = n.begin(); it != n.end(); ++it) {
        std::string key = it->first.as<std::string>();
        if (out.contains(key)) return InvalidArgument("{}.{}: duplicate key", where, key);
        ASSIGN_OR_RETURN(nlohmann::json j, yaml_json(it->second, where + "." + key));
        out[key] = std::move(j);
      }
      return out;
    }
    case YAML::NodeType::Scalar: {
      const std::string& s = n.Scalar();
      if (n.Tag() == "!") return nlohmann::json(s);  // quoted: a string
      if (s == "null" || s == "~") return nlohmann::json(nullptr);
      if (s == "true") return nlohmann::json(true);
      if (s == "false") return nlohmann::json(false);
      // An integer or a float, exactly as written; anything else stays a string.
      try {
        size_t used = 0;
        long long v = std::stoll(s, &used);
        if (used == s.size()) return nlohmann::json(v);
      } catch (const std::exception&) {
      }
      try {
        size_t used = 0;
        double v = std::stod(s, &used);
        if (used == s.size()) return nlohmann::json(v);
      } catch (const std::exception&) {
      }
      return nlohmann::json(s);
    }
  }
  return nlohmann::json(nullptr);
}

}  // namespace

StatusOr<std::vector<RewardSpec>> parse_reward_specs(std::string_view text) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return InvalidArgument("reward: not valid YAML: {}", e.what());
  }
  std::vector<RewardSpec> out;
  if (root.IsNull()) return out;
  if (!root.IsSequence()) {
    return InvalidArgument("reward: expected a list of {{name: ..., weight: ...}} maps");
  }
  for (size_t i = 0; i < root.size(); ++i) {
    std::string where = fmt::format("reward.{}", i);
    ASSIGN_OR_RETURN(nlohmann::json entry, yaml_json(root[i], where));
    if (!entry.is_object()) return InvalidArgument("{}: expected a map", where);
    RewardSpec spec;
    auto name = entry.find("name");
    if (name == entry.end() || !name->is_string() || name->get<std::string>().empty()) {
      return InvalidArgument("{}.name: required, the reward's registered name", where);
    }
    spec.name = name->get<std::string>();
    if (auto w = entry.find("weight"); w != entry.end()) {
      if (!w->is_number()) {
        return InvalidArgument("{}.weight: expected a number, got {}", where, w->dump());
      }
      spec.weight = w->get<double>();
      if (!std::isfinite(spec.weight)) return InvalidArgument("{}.weight: must be finite", where);
    }
    entry.erase("name");
    entry.erase("weight");
    spec.args = std::move(entry);
    out.push_back(std::move(spec));
  }
  return out;
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

StatusOr<CombinedReward> build_rewards(const std::vector<RewardSpec>& specs,
                                       const RewardRegistry& registry) {
  std::vector<CombinedReward::Component> components;
  std::map<std::string, int> seen;
  for (size_t i = 0; i < specs.size(); ++i) {
    const RewardSpec& s = specs[i];
    StatusOr<std::unique_ptr<Reward>> r = registry.create(s.name, s.args);
    if (!r.ok()) return r.status().with_context(fmt::format("reward.{}", i));
    int n = ++seen[s.name];
    std::string name = n == 1 ? s.name : fmt::format("{}#{}", s.name, n);
    components.push_back(CombinedReward::Component{name, s.weight, std::move(*r)});
  }
  return CombinedReward(std::move(components));
}

}  // namespace r1kit::reward
