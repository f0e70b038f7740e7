// JSON-lines records for the reward and task CLIs; see jsonl.h.
#include "reward/jsonl.h"

#include <algorithm>
#include <cmath>

#include "data/arithmetic.h"

namespace r1kit::reward {
namespace {

std::vector<std::string> split_csv(std::string_view s) {
  std::vector<std::string> out;
  if (s.empty()) return out;
  size_t start = 0;
  while (true) {
    size_t comma = s.find(',', start);
    std::string item(s.substr(start, comma == std::string_view::npos ? s.npos : comma - start));
    while (!item.empty() && item.front() == ' ') item.erase(item.begin());
    while (!item.empty() && item.back() == ' ') item.pop_back();
    out.push_back(item);
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return out;
}

nlohmann::json number_or_null(double x) {
  return std::isnan(x) ? nlohmann::json(nullptr) : nlohmann::json(x);
}

}  // namespace

StatusOr<Sample> sample_from_record(const nlohmann::json& record) {
  if (!record.is_object()) return InvalidArgument("expected a JSON object");
  Sample s;
  nlohmann::json meta = record;
  auto c = meta.find("completion");
  if (c == meta.end() || !c->is_string()) {
    return InvalidArgument("completion: required, a string");
  }
  s.completion = c->get<std::string>();
  meta.erase("completion");
  if (auto p = meta.find("prompt"); p != meta.end()) {
    if (!p->is_string()) return InvalidArgument("prompt: expected a string");
    s.prompt = p->get<std::string>();
    meta.erase("prompt");
  }
  if (auto ids = meta.find("completion_ids"); ids != meta.end()) {
    if (!ids->is_array()) return InvalidArgument("completion_ids: expected a list of integers");
    for (const auto& x : *ids) {
      if (!x.is_number_integer()) {
        return InvalidArgument("completion_ids: expected a list of integers");
      }
      s.completion_ids.push_back(x.get<int32_t>());
    }
    meta.erase("completion_ids");
  }
  s.metadata = std::move(meta);
  return s;
}

nlohmann::json score_record(const GroupScores& scores, size_t i) {
  nlohmann::json rewards = nlohmann::json::object();
  for (size_t k = 0; k < scores.names.size(); ++k) {
    rewards[scores.names[k]] = number_or_null(scores.components[k][i]);
  }
  return {{"total", number_or_null(scores.total[i])}, {"rewards", std::move(rewards)}};
}

StatusOr<std::vector<RewardSpec>> specs_from_flags(std::string_view rewards_csv,
                                                   std::string_view weights_csv,
                                                   std::string_view args_json) {
  std::vector<std::string> names = split_csv(rewards_csv);
  if (names.empty()) return InvalidArgument("--rewards: name at least one reward");
  std::vector<std::string> weights = split_csv(weights_csv);
  if (!weights.empty() && weights.size() != names.size()) {
    return InvalidArgument("--weights: {} values for {} rewards", weights.size(), names.size());
  }
  nlohmann::json args = nlohmann::json::object();
  if (!args_json.empty()) {
    args = nlohmann::json::parse(args_json, nullptr, /*allow_exceptions=*/false);
    if (args.is_discarded() || !args.is_object()) {
      return InvalidArgument("--args: expected a JSON object keyed by reward name");
    }
  }
  std::vector<RewardSpec> out;
  for (size_t i = 0; i < names.size(); ++i) {
    RewardSpec s;
    s.name = names[i];
    if (s.name.empty()) return InvalidArgument("--rewards: empty name at position {}", i + 1);
    if (!weights.empty()) {
      try {
        size_t used = 0;
        s.weight = std::stod(weights[i], &used);
        if (used != weights[i].size() || !std::isfinite(s.weight)) throw std::invalid_argument("");
      } catch (const std::exception&) {
        return InvalidArgument("--weights: \"{}\" is not a number", weights[i]);
      }
    }
    if (args.contains(s.name)) s.args = args[s.name];
    out.push_back(std::move(s));
  }
  for (auto it = args.begin(); it != args.end(); ++it) {
    if (std::find(names.begin(), names.end(), it.key()) == names.end()) {
      return InvalidArgument("--args: \"{}\" is not among --rewards", it.key());
    }
  }
  return out;
}

nlohmann::json task_record(const data::TaskSample& task, bool with_trace) {
  nlohmann::json out = task.metadata.is_object() ? task.metadata : nlohmann::json::object();
  out["prompt"] = task.question;
  if (with_trace) out["trace"] = task.trace;
  return out;
}

StatusOr<data::TaskSample> generate_task(std::string_view name, uint64_t seed, uint64_t index) {
  if (name == "countdown") return data::countdown_task(seed, index);
  if (name == "knights_knaves") return data::knights_knaves_task(seed, index);
  if (name == "arithmetic") {
    data::TaskExample ex = data::arithmetic_example(seed, index);
    return data::TaskSample{ex.question, ex.trace, {{"answer", ex.answer}}};
  }
  return InvalidArgument("unknown task \"{}\" (known: arithmetic, countdown, knights_knaves)",
                         name);
}

}  // namespace r1kit::reward
