#include "core/metrics.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/metric_names.h"

namespace r1kit {

StatusOr<std::unique_ptr<MetricsWriter>> MetricsWriter::open(const std::string& jsonl_path,
                                                             const std::string& tensorboard_dir,
                                                             int64_t resume_step) {
  auto w = std::unique_ptr<MetricsWriter>(new MetricsWriter());
  if (!jsonl_path.empty()) {
    std::error_code ec;
    auto parent = std::filesystem::path(jsonl_path).parent_path();
    if (!parent.empty()) std::filesystem::create_directories(parent, ec);
    if (resume_step >= 0 && std::filesystem::exists(jsonl_path, ec)) {
      ASSIGN_OR_RETURN(std::string text, read_file(jsonl_path));
      std::string kept;
      size_t pos = 0;
      while (pos < text.size()) {
        size_t end = text.find('\n', pos);
        if (end == std::string::npos) end = text.size();
        const std::string line = text.substr(pos, end - pos);
        pos = end + 1;
        auto j = nlohmann::json::parse(line, nullptr, false);
        // A torn last line (the process died mid-write) is dropped too.
        if (j.is_discarded() || !j.is_object() || !j.contains("step") ||
            !j["step"].is_number_integer() || j["step"].get<int64_t>() > resume_step)
          continue;
        kept += line + "\n";
      }
      RETURN_IF_ERROR(write_file_atomic(jsonl_path, kept));
    }
    w->file_ = std::fopen(jsonl_path.c_str(), "a");
    if (!w->file_) return Internal("open {}: {}", jsonl_path, std::strerror(errno));
  }
  if (!tensorboard_dir.empty()) {
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

void MetricsWriter::print(int64_t step, int64_t total, const std::map<std::string, double>& values,
                          const std::vector<std::string>& keys) {
  std::string line = fmt::format("step {}/{}", step, total);
  for (const auto& k : keys) {
    auto it = values.find(k);
    if (it == values.end()) continue;
    const double v = it->second;
    if (k == metric::kLr)
      line += fmt::format(" | {} {:.2e}", k, v);
    else if (std::fabs(v) >= 1000)
      line += fmt::format(" | {} {:.0f}", k, v);
    else
      line += fmt::format(" | {} {:.4f}", k, v);
  }
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

}  // namespace r1kit
