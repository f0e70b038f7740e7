// The task registry; see task.h. The built-in tasks are the files of data/tasks/, listed
// by data/CMakeLists.txt into builtin_tasks.inc as R1KIT_TASK(<name>) lines.
#include "data/task.h"

#include <stdexcept>

namespace r1kit::data {

// Each data/tasks/<name>.cpp defines register_<name>_task.
#define R1KIT_TASK(name) void register_##name##_task(TaskRegistry& registry);
#include "builtin_tasks.inc"
#undef R1KIT_TASK

std::vector<reward::RewardSpec> checker_and_format(std::string checker, bool prefill_think) {
  std::vector<reward::RewardSpec> out(2);
  out[0].name = std::move(checker);
  out[0].weight = 1.0;
  out[0].role = reward::kRoleAccuracy;
  out[1].name = "format";
  out[1].weight = 0.2;
  out[1].role = reward::kRoleFormat;
  out[1].args = {{"prefilled_think", prefill_think}};
  return out;
}

TaskRegistry& TaskRegistry::global() {
  static TaskRegistry* registry = [] {
    auto* r = new TaskRegistry();  // never destroyed: prototypes outlive static destructors
    register_builtin_tasks(*r);
    return r;
  }();
  return *registry;
}

Status TaskRegistry::add(std::string name, std::unique_ptr<Task> prototype, std::string doc) {
  if (name.empty()) return InvalidArgument("task name must not be empty");
  if (!prototype) return InvalidArgument("task {}: no task given", name);
  std::lock_guard<std::mutex> lock(mu_);
  if (entries_.count(name)) return AlreadyExists("task {} is already registered", name);
  entries_.emplace(std::move(name), Entry{std::move(prototype), std::move(doc)});
  return OkStatus();
}

StatusOr<std::unique_ptr<Task>> TaskRegistry::create(std::string_view name) const {
  if (const Task* t = prototype(name)) return t->clone();
  std::string known;
  for (const std::string& n : names()) known += (known.empty() ? "" : ", ") + n;
  return NotFound("unknown task \"{}\" (known tasks: {})", name, known);
}

const Task* TaskRegistry::prototype(std::string_view name) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(name);
  return it == entries_.end() ? nullptr : it->second.prototype.get();
}

bool TaskRegistry::contains(std::string_view name) const {
  return prototype(name) != nullptr;
}

std::vector<std::pair<std::string, std::string>> TaskRegistry::list() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& kv : entries_) out.emplace_back(kv.first, kv.second.doc);
  return out;
}

std::vector<std::string> TaskRegistry::names() const {
  std::vector<std::string> out;
  for (auto& [name, doc] : list()) out.push_back(std::move(name));
  return out;
}

void add_builtin_task(TaskRegistry& registry, std::string name, std::unique_ptr<Task> prototype,
                      std::string doc) {
  Status s = registry.add(std::move(name), std::move(prototype), std::move(doc));
  if (!s.ok()) throw std::logic_error(s.to_string());
}

void register_builtin_tasks(TaskRegistry& registry) {
#define R1KIT_TASK(name) register_##name##_task(registry);
#include "builtin_tasks.inc"
#undef R1KIT_TASK
}

}  // namespace r1kit::data
