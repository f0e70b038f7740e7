// Reward plug-ins from shared libraries; see plugin.h and plugin_abi.h.
#include "reward/plugin.h"

#include <dlfcn.h>

#include <filesystem>
#include <mutex>
#include <set>
#include <utility>

#include "core/logging.h"
#include "reward/plugin_abi.h"

namespace r1kit::reward {
namespace {

constexpr size_t kErrSize = 512;

// (registry, dlopen handle) pairs whose rewards are registered: loading a library again
// into the same registry is a no-op. dlopen returns the same handle for the same file
// under any path, so "./lib.so" and "/abs/lib.so" count as one library.
std::mutex g_loaded_mu;
std::set<std::pair<const RewardRegistry*, void*>> g_loaded;  // guarded by g_loaded_mu

// One instance of a plug-in reward.
class PluginReward final : public Reward {
 public:
  PluginReward(const r1kit_reward_plugin_v1* p, void* instance) : p_(p), instance_(instance) {}
  ~PluginReward() override {
    if (p_->destroy) p_->destroy(instance_);
  }
  Scores score(std::span<const Sample> group) const override {
    std::vector<double> out(group.size(), kNoScore);
    if (group.empty()) return out;
    std::string json = samples_to_json(group);
    char err[kErrSize] = {0};
    int rc = p_->score(instance_, json.c_str(), group.size(), out.data(), err, kErrSize);
    if (rc != 0) {
      err[kErrSize - 1] = 0;
      spdlog::warn("reward plug-in {}: score failed ({}): {}; batch marked cannot-judge", p_->name,
                   rc, err);
      out.assign(group.size(), kNoScore);
      return {std::move(out), static_cast<int64_t>(group.size())};
    }
    return out;
  }

 private:
  const r1kit_reward_plugin_v1* p_;  // static description inside the library
  void* instance_;                   // owned; destroyed with p_->destroy
};

}  // namespace

std::string samples_to_json(std::span<const Sample> group) {
  nlohmann::json arr = nlohmann::json::array();
  for (const Sample& s : group) {
    arr.push_back({{"prompt", s.prompt},
                   {"completion", s.completion},
                   {"completion_ids", s.completion_ids},
                   {"metadata", s.metadata}});
  }
  // Invalid UTF-8 in model output is replaced, never an exception.
  return arr.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Status load_reward_plugin(const std::string& path, RewardRegistry& registry) {
  if (path.empty()) return InvalidArgument("reward plug-in: empty path");
  // A relative path is the current directory's, never a search of the library path.
  std::error_code ec;
  const std::filesystem::path resolved = std::filesystem::absolute(path, ec);
  if (ec) return InvalidArgument("reward plug-in {}: {}", path, ec.message());
  if (!std::filesystem::exists(resolved, ec)) {
    return NotFound("reward plug-in {}: no such file ({})", path, resolved.string());
  }
  void* handle = dlopen(resolved.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* e = dlerror();
    return InvalidArgument("reward plug-in {}: dlopen failed: {}", path, e ? e : "unknown error");
  }
  // Already registered here (every name still present): harmless, nothing to do. The
  // name check keeps a new registry that reuses a destroyed one's address from matching.
  std::lock_guard<std::mutex> loaded_lock(g_loaded_mu);
  const bool seen = g_loaded.count({&registry, handle}) > 0;
  auto fn = reinterpret_cast<r1kit_reward_plugins_fn>(dlsym(handle, R1KIT_REWARD_PLUGINS_SYMBOL));
  if (fn == nullptr) {
    return InvalidArgument("reward plug-in {}: no symbol {} (see reward/plugin_abi.h)", path,
                           R1KIT_REWARD_PLUGINS_SYMBOL);
  }
  size_t count = 0;
  const r1kit_reward_plugin_v1* plugins = fn(&count);
  if (plugins == nullptr || count == 0) {
    return InvalidArgument("reward plug-in {}: exports no rewards", path);
  }
  if (seen) {
    bool all_present = true;
    for (size_t i = 0; i < count; ++i)
      all_present = all_present && plugins[i].name && registry.contains(plugins[i].name);
    if (all_present) return OkStatus();
  }
  for (size_t i = 0; i < count; ++i) {
    const r1kit_reward_plugin_v1* p = &plugins[i];
    if (p->abi_version != R1KIT_REWARD_PLUGIN_ABI_VERSION) {
      return FailedPrecondition("reward plug-in {}: ABI version {}, this r1kit needs {}", path,
                                p->abi_version, R1KIT_REWARD_PLUGIN_ABI_VERSION);
    }
    if (!p->name || !p->create || !p->score) {
      return InvalidArgument("reward plug-in {}: entry {} lacks name, create or score", path, i);
    }
    std::string name = p->name;
    RewardFactory factory =
        [p, name, path](const nlohmann::json& args) -> StatusOr<std::unique_ptr<Reward>> {
      char err[kErrSize] = {0};
      std::string text = args.is_null() ? "{}" : args.dump();
      void* instance = p->create(text.c_str(), err, kErrSize);
      if (instance == nullptr) {
        err[kErrSize - 1] = 0;
        return InvalidArgument("reward {} (plug-in {}): {}", name, path, err);
      }
      return std::unique_ptr<Reward>(std::make_unique<PluginReward>(p, instance));
    };
    Status s = registry.add(name, std::move(factory), p->doc ? p->doc : "");
    if (!s.ok()) return s.with_context(fmt::format("reward plug-in {}", path));
  }
  g_loaded.insert({&registry, handle});
  return OkStatus();  // the handle stays open for the life of the process
}

Status load_reward_plugins(const std::vector<std::string>& paths, RewardRegistry& registry) {
  for (const std::string& p : paths) RETURN_IF_ERROR(load_reward_plugin(p, registry));
  return OkStatus();
}

}  // namespace r1kit::reward
