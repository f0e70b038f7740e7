#include "grpo/sample_log.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "core/metrics.h"

namespace r1kit::grpo {
namespace {

nlohmann::json json_number(double v) {
  return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json();
}

}  // namespace

std::vector<nlohmann::json> sample_records(const RolloutBatch& ro, const rollout::DecodeFn& decode,
                                           int64_t step_done) {
  std::vector<nlohmann::json> out;
  for (size_t i = 0; i < ro.groups.size(); ++i) {
    const std::string prompt_text = decode(ro.prompt_ids[i]);
    const auto& meta = ro.problems[i].metadata;
    const auto& completions = ro.groups[i].completions;
    for (size_t j = 0; j < completions.size(); ++j) {
      const auto& c = completions[j];
      nlohmann::json rec;
      rec["step"] = step_done;
      rec["problem"] = i;
      rec["sample"] = j;
      rec["prompt"] = prompt_text;
      rec["completion"] = decode(c.token_ids);
      if (meta.is_object() && meta.contains("answer")) rec["answer"] = meta["answer"];
      rec["reward"] = json_number(ro.rewards[i][j].item<double>());
      nlohmann::json rewards = nlohmann::json::object();
      for (size_t k = 0; k < ro.names.size(); ++k)
        rewards[ro.names[k]] = json_number(ro.components[k][i][j].item<double>());
      rec["rewards"] = std::move(rewards);
      // Right or wrong by the checker (the accuracy metric's rule); absent without one,
      // null when it could not judge.
      if (ro.accuracy_component >= 0) {
        const double a = ro.components[ro.accuracy_component][i][j].item<double>();
        rec["correct"] = std::isfinite(a) ? nlohmann::json(a >= 1.0 - 1e-9) : nlohmann::json();
      }
      rec["finish_reason"] = rollout::finish_reason_name(c.finish_reason);
      rec["length"] = c.token_ids.size();
      out.push_back(std::move(rec));
    }
  }
  return out;
}

std::string format_sample(const nlohmann::json& rec, size_t max_chars) {
  auto value = [](const nlohmann::json& v) {
    return v.is_number() ? format_metric_value(v.get<double>()) : std::string("null");
  };
  std::string head = fmt::format("--- sample, step {}: reward {}", rec.value("step", int64_t{0}),
                                 value(rec.value("reward", nlohmann::json())));
  std::string parts;
  if (rec.contains("rewards") && rec["rewards"].is_object())
    for (auto it = rec["rewards"].begin(); it != rec["rewards"].end(); ++it)
      parts += fmt::format("{}{} {}", parts.empty() ? "" : ", ", it.key(), value(it.value()));
  if (!parts.empty()) head += " (" + parts + ")";
  if (rec.contains("answer"))
    head += ", answer " +
            (rec["answer"].is_string() ? rec["answer"].get<std::string>() : rec["answer"].dump());
  head += fmt::format(", {} tokens, {} ---", rec.value("length", int64_t{0}),
                      rec.value("finish_reason", std::string()));
  std::string text = rec.value("completion", std::string());
  if (text.size() > max_chars) text = text.substr(0, max_chars) + " [...]";
  return head + "\n" + text;
}

StatusOr<SampleLog> SampleLog::open(const std::string& path, int64_t every, int64_t resume_step) {
  SampleLog log;
  log.path_ = path;
  log.every_ = every;
  if (every > 0 && resume_step >= 0) RETURN_IF_ERROR(truncate_jsonl_after_step(path, resume_step));
  return log;
}

Status SampleLog::log(const RolloutBatch& ro, const rollout::DecodeFn& decode,
                      int64_t step_done) const {
  if (every_ <= 0 || step_done % every_ != 0 || ro.groups.empty()) return OkStatus();
  const std::vector<nlohmann::json> records = sample_records(ro, decode, step_done);
  std::string lines;
  for (const auto& rec : records)  // decoded text may cut a UTF-8 character: replaced
    lines += rec.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  std::FILE* f = std::fopen(path_.c_str(), "ae");  // e: O_CLOEXEC
  if (!f) return Internal("open {}: {}", path_, std::strerror(errno));
  const bool ok = std::fwrite(lines.data(), 1, lines.size(), f) == lines.size();
  if (std::fclose(f) != 0 || !ok) return Internal("write {}: {}", path_, std::strerror(errno));
  std::printf("%s\n", format_sample(records.front()).c_str());
  std::fflush(stdout);
  return OkStatus();
}

}  // namespace r1kit::grpo
