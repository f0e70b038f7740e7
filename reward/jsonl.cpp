// JSON-lines records for the reward CLI; see jsonl.h.
#include "reward/jsonl.h"

#include <algorithm>
#include <cmath>

#include "core/json.h"

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
    args = parse_json_or_discarded(args_json);
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

StatusOr<int64_t> score_jsonl(std::istream& in, std::string_view source,
                              const CombinedReward& rewards, std::ostream& out, int64_t* unjudged) {
  std::vector<Sample> group;  // consecutive records with the same prompt
  int64_t scored = 0;
  if (unjudged) *unjudged = 0;
  auto flush = [&]() -> Status {
    if (group.empty()) return OkStatus();
    GroupScores scores = rewards.score(group);
    for (size_t i = 0; i < group.size(); ++i) {
      // Key order as documented: total first, then the rewards in --rewards order.
      const nlohmann::json rec = score_record(scores, i);
      if (unjudged && rec["total"].is_null()) ++*unjudged;
      nlohmann::ordered_json line;
      line["total"] = rec["total"];
      line["rewards"] = nlohmann::ordered_json::object();
      for (const std::string& name : scores.names) line["rewards"][name] = rec["rewards"][name];
      out << line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
    }
    scored += static_cast<int64_t>(group.size());
    group.clear();
    if (!out) return Internal("{}: writing the scores failed", source);
    return OkStatus();
  };
  std::string line;
  for (int64_t line_no = 1; std::getline(in, line); ++line_no) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    ASSIGN_OR_RETURN(nlohmann::json rec, parse_json(line, fmt::format("{}:{}", source, line_no)));
    StatusOr<Sample> s = sample_from_record(rec);
    if (!s.ok()) return InvalidArgument("{}:{}: {}", source, line_no, s.status().message());
    if (!group.empty() && group.front().prompt != s->prompt) RETURN_IF_ERROR(flush());
    group.push_back(std::move(*s));
  }
  if (in.bad()) return Internal("{}: read error", source);
  RETURN_IF_ERROR(flush());
  return scored;
}

}  // namespace r1kit::reward
