#include "train/checkpoint.h"

#include <algorithm>
#include <filesystem>
#include <set>

#include "core/atomic_file.h"
#include "core/json.h"
#include "core/logging.h"
#include "policy/checkpoint.h"
#include "train/optim.h"

namespace r1kit::train {
namespace fs = std::filesystem;

namespace {
// (step, path) of every complete checkpoint, oldest first.
std::vector<std::pair<int64_t, std::string>> list_checkpoints(const std::string& run_dir) {
  std::vector<std::pair<int64_t, std::string>> out;
  std::error_code ec;
  const fs::path root = fs::path(run_dir) / "checkpoints";
  if (!fs::is_directory(root, ec)) return out;
  for (const auto& e : fs::directory_iterator(root, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("step-", 0) != 0 || name.find(".tmp.") != std::string::npos) continue;
    if (!fs::exists(e.path() / "trainer_state.json", ec)) continue;
    const std::string digits = name.substr(5);
    if (digits.empty() || digits.size() > 15 ||
        !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
      continue;
    out.emplace_back(std::stoll(digits), e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}
}  // namespace

std::string first_non_finite(policy::TransformerImpl& model) {
  torch::NoGradGuard ng;
  for (const auto& p : model.named_parameters())
    if (!torch::isfinite(p.value()).all().item<bool>()) return p.key();
  for (const auto& b : model.named_buffers())
    if (b.value().is_floating_point() && !torch::isfinite(b.value()).all().item<bool>())
      return b.key();
  return "";
}

namespace {
Status refuse_non_finite(policy::TransformerImpl& model, const std::string& dir) {
  const std::string bad = first_non_finite(model);
  if (bad.empty()) return OkStatus();
  return FailedPrecondition("not writing {}: weight '{}' holds a NaN or an infinity", dir, bad);
}
}  // namespace

void remove_interrupted_saves(const std::string& run_dir) {
  std::error_code ec;
  std::vector<fs::path> stale;
  for (const auto& e : fs::directory_iterator(fs::path(run_dir) / "checkpoints", ec))
    if (e.path().filename().string().find(".tmp.") != std::string::npos) stale.push_back(e.path());
  for (const auto& e : fs::directory_iterator(run_dir, ec))
    if (e.path().filename().string().rfind("final.tmp.", 0) == 0) stale.push_back(e.path());
  for (const auto& p : stale) {
    fs::remove_all(p, ec);
    R1_LOG(info, "removed {} (left by a save that was interrupted)", p.string());
  }
}

std::string latest_checkpoint(const std::string& run_dir) {
  auto all = list_checkpoints(run_dir);
  return all.empty() ? "" : all.back().second;
}

Status save_train_checkpoint(policy::TransformerImpl& model, torch::optim::AdamW& opt,
                             const std::string& run_dir, int64_t step, nlohmann::json state,
                             const std::string& tokenizer_path, int64_t keep_last,
                             const std::function<Status(const std::string& dir)>& extra,
                             const std::optional<data::PromptFormat>& format) {
  const std::string dir = fmt::format("{}/checkpoints/step-{:06d}", run_dir, step);
  RETURN_IF_ERROR(refuse_non_finite(model, dir));
  const std::string tmp = temp_sibling(dir);
  policy::SaveOptions so;
  so.tokenizer_path = tokenizer_path;
  so.prompt_format = format;
  RETURN_IF_ERROR(policy::save_model(model, tmp, so));
  RETURN_IF_ERROR(save_adamw_state(opt, model.named_parameters(), tmp + "/optimizer.safetensors"));
  if (extra) RETURN_IF_ERROR(extra(tmp));
  state["step"] = step;
  RETURN_IF_ERROR(write_file_atomic(tmp + "/trainer_state.json", state.dump(2) + "\n"));
  RETURN_IF_ERROR(rename_dir_atomic(tmp, dir));
  R1_LOG(info, "checkpoint {}", dir);
  if (keep_last > 0) {
    auto all = list_checkpoints(run_dir);
    for (size_t i = 0; i + keep_last < all.size(); ++i) {
      std::error_code ec;
      fs::remove_all(all[i].second, ec);
    }
  }
  return OkStatus();
}

StatusOr<std::string> save_final_model(policy::TransformerImpl& model, const std::string& run_dir,
                                       const std::string& tokenizer_path,
                                       const std::optional<data::PromptFormat>& format) {
  const std::string dir = run_dir + "/final";
  RETURN_IF_ERROR(refuse_non_finite(model, dir));
  policy::SaveOptions so;
  so.tokenizer_path = tokenizer_path;
  so.prompt_format = format;
  RETURN_IF_ERROR(policy::save_model(model, dir, so));
  R1_LOG(info, "final model: {}", dir);
  return dir;
}

StatusOr<nlohmann::json> load_train_checkpoint(policy::TransformerImpl& model,
                                               torch::optim::AdamW& opt, const std::string& dir) {
  RETURN_IF_ERROR(policy::load_weights(model, dir));
  RETURN_IF_ERROR(load_adamw_state(opt, model.named_parameters(), dir + "/optimizer.safetensors"));
  ASSIGN_OR_RETURN(std::string text, read_file(dir + "/trainer_state.json"));
  auto state = parse_json_or_discarded(text);
  if (state.is_discarded() || !state.is_object() || !state.contains("step") ||
      !state["step"].is_number_integer())
    return DataLoss("{}/trainer_state.json: missing or malformed 'step'", dir);
  return state;
}

namespace {
bool allowed(const std::string& key, const std::vector<std::string>& may_change) {
  for (const auto& p : may_change)
    if (key == p || key.rfind(p + ".", 0) == 0) return true;
  return false;
}
// The first differing leaf under `prefix`, or "" when equal.
std::string first_difference(const nlohmann::json& a, const nlohmann::json& b,
                             const std::string& prefix,
                             const std::vector<std::string>& may_change) {
  if (allowed(prefix, may_change)) return "";
  if (a.is_object() && b.is_object()) {
    std::set<std::string> keys;
    for (auto it = a.begin(); it != a.end(); ++it) keys.insert(it.key());
    for (auto it = b.begin(); it != b.end(); ++it) keys.insert(it.key());
    for (const auto& k : keys) {
      const std::string key = prefix.empty() ? k : prefix + "." + k;
      const nlohmann::json null;
      auto d = first_difference(a.contains(k) ? a[k] : null, b.contains(k) ? b[k] : null, key,
                                may_change);
      if (!d.empty()) return d;
    }
    return "";
  }
  return a == b ? "" : prefix;
}
}  // namespace

const nlohmann::json& json_at_path(const nlohmann::json& j, const std::string& key) {
  static const nlohmann::json null;
  const nlohmann::json* cur = &j;
  size_t pos = 0;
  while (pos <= key.size()) {
    size_t end = key.find('.', pos);
    if (end == std::string::npos) end = key.size();
    const std::string part = key.substr(pos, end - pos);
    if (!cur->is_object() || !cur->contains(part)) return null;
    cur = &(*cur)[part];
    pos = end + 1;
  }
  return *cur;
}

std::string first_changed_key(const nlohmann::json& saved, const nlohmann::json& now,
                              const std::vector<std::string>& may_change) {
  return first_difference(saved, now, "", may_change);
}

Status check_resume_compatible(const nlohmann::json& saved, const nlohmann::json& now,
                               const std::vector<std::string>& may_change,
                               const nlohmann::json& defaults) {
  // The keys `saved` lacks, at their defaults (a merge patch keeps every key `saved` has).
  nlohmann::json filled = defaults.is_object() ? defaults : nlohmann::json::object();
  filled.merge_patch(saved);
  const std::string key = first_changed_key(filled, now, may_change);
  if (key.empty()) return OkStatus();
  return FailedPrecondition(
      "cannot resume: {} is {} in the checkpoint's recipe but {} now; restore it, or start a "
      "new run (another checkpoint.dir, or checkpoint.resume=false)",
      key, json_at_path(saved, key).dump(), json_at_path(now, key).dump());
}

}  // namespace r1kit::train
