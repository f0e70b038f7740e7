#include "core/metrics.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/json.h"

namespace r1kit {

Status truncate_jsonl_after_step(const std::string& jsonl_path, int64_t step) {
  std::error_code ec;
  if (!std::filesystem::exists(jsonl_path, ec)) return OkStatus();
  ASSIGN_OR_RETURN(std::string text, read_file(jsonl_path));
  std::string kept;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    auto j = parse_json_or_discarded(line);
    // A torn last line (the process died mid-write) is dropped too.
    if (j.is_discarded() || !j.is_object() || !j.contains("step") ||
        !j["step"].is_number_integer() || j["step"].get<int64_t>() > step)
      continue;
    kept += line + "\n";
  }
  return write_file_atomic(jsonl_path, kept);
}

StatusOr<std::unique_ptr<MetricsWriter>> MetricsWriter::open(const std::string& jsonl_path,
                                                             const std::string& tensorboard_dir,
                                                             int64_t resume_step) {
  auto w = std::unique_ptr<MetricsWriter>(new MetricsWriter());
  if (!jsonl_path.empty()) {
    std::error_code ec;
    auto parent = std::filesystem::path(jsonl_path).parent_path();
    if (!parent.empty()) std::filesystem::create_directories(parent, ec);
    if (resume_step >= 0) RETURN_IF_ERROR(truncate_jsonl_after_step(jsonl_path, resume_step));
    w->file_ = std::fopen(jsonl_path.c_str(), "ae");  // e: O_CLOEXEC, never inherited
    if (!w->file_) return Internal("open {}: {}", jsonl_path, std::strerror(errno));
  }
  if (!tensorboard_dir.empty()) {
    std::error_code ec;
    if (resume_step == 0)
      for (const auto& e : std::filesystem::directory_iterator(tensorboard_dir, ec))
        if (e.path().filename().string().rfind("events.out.tfevents.", 0) == 0)
          std::filesystem::remove(e.path(), ec);
    ASSIGN_OR_RETURN(w->tensorboard_, TensorBoardWriter::open(tensorboard_dir));
  }
  return w;
}

MetricsWriter::~MetricsWriter() {
  if (file_) std::fclose(file_);
}

Status MetricsWriter::write(int64_t step, const std::map<std::string, double>& values) {
  if (tensorboard_) RETURN_IF_ERROR(tensorboard_->write_scalars(step, values));
  if (!file_) return OkStatus();
  nlohmann::json j;
  j["step"] = step;
  for (const auto& [k, v] : values) j[k] = std::isfinite(v) ? nlohmann::json(v) : nlohmann::json();
  const std::string line = j.dump() + "\n";
  if (std::fwrite(line.data(), 1, line.size(), file_) != line.size() || std::fflush(file_) != 0)
    return Internal("write metrics: {}", std::strerror(errno));
  return OkStatus();
}

std::string format_duration(double seconds) {
  const int64_t s = std::max<int64_t>(0, std::llround(seconds));
  if (s < 60) return fmt::format("{}s", s);
  if (s < 3600) return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{}h{:02}m", s / 3600, (s % 3600) / 60);
}

std::string format_metric_value(double v) {
  if (std::isnan(v)) return "-";
  const double a = std::fabs(v);
  if (a == 0) return "0";
  if (a < 0.01 || a >= 1e7) return fmt::format("{:.1e}", v);
  if (a < 1) return fmt::format("{:.3f}", v);
  if (a >= 1000) return fmt::format("{:.0f}", v);
  return fmt::format("{:.3g}", v);
}

ProgressLine::ProgressLine(int64_t start_step, int64_t total_steps,
                           std::vector<ConsoleMetric> metrics, double max_seconds)
    : start_step_(start_step),
      total_(total_steps),
      metrics_(std::move(metrics)),
      max_seconds_(max_seconds),
      t0_(SteadyClock::now()) {}

std::string ProgressLine::format(int64_t step_done, const std::map<std::string, double>& values,
                                 double elapsed_s) const {
  std::string line = fmt::format("step {}/{} | {}", step_done, total_, format_duration(elapsed_s));
  const int64_t ran = step_done - start_step_, left = total_ - step_done;
  if (ran > 0 && left > 0) {
    const double eta = elapsed_s / ran * left;
    const double box_left = std::max(0.0, max_seconds_ - elapsed_s);
    line += max_seconds_ > 0 && box_left < eta
                ? ", eta " + format_duration(box_left) + " (time box)"
                : ", eta " + format_duration(eta);
  }
  for (const auto& m : metrics_) {
    auto it = values.find(m.key);
    if (it == values.end()) continue;
    const std::string part = fmt::format(" | {} {}", m.label, format_metric_value(it->second));
    if (line.size() + part.size() <= kWidth) line += part;
  }
  return line;
}

void ProgressLine::print(int64_t step_done, const std::map<std::string, double>& values) const {
  const std::string line = format(step_done, values, seconds_since(t0_));
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

}  // namespace r1kit
