// A task: one kind of problem with a verifiable answer, and the task registry.
//
// A task is one file, data/tasks/<name>.cpp, holding
//   - its options: a struct with visit() whose keys sit in the recipe's `task:` section
//     next to name/seed/eval_size (data/task_source.h), checked strictly like every key;
//   - its generator: problem `index` of stream `seed`, a pure function of (options,
//     seed, index), with the metadata its checker reads (always "answer") and a worked
//     solution (the SFT trace) — or, for a file task (jsonl), a loader;
//   - its default rewards: its checker with role accuracy, then R1's format reward;
//   - void register_<name>_task(TaskRegistry&), which adds it under its name.
// data/CMakeLists.txt lists the files of data/tasks/ and register_builtin_tasks calls
// each register_<name>_task, so adding a task touches no other file (docs/recipes.md,
// "Adding a task").
//
// Follows reward/reward.h's registry (name -> factory, a doc line, list()). Different on
// purpose: the registry holds one prototype per task (its default options) and hands out
// copies, because a task's options are bound into a recipe's section, not built once.
//
// Thread-safety: Task methods other than visit() are const and safe to call concurrently.
// The registry is safe for concurrent lookups; registration takes a lock.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/config.h"
#include "core/status.h"
#include "data/reward_spec.h"

namespace r1kit::data {

// One prompt with its ground truth.
struct TaskSample {
  std::string question;     // the user's question (without chat template)
  std::string trace;        // a step-by-step solution, for SFT ("" if none)
  nlohmann::json metadata;  // what the rewards read; "answer" (a file's line may lack it)
  // The whole conversation when the problem came as one (a jsonl line's "messages": an
  // array of {"role", "content", ...} objects as in the file); null otherwise. `question`
  // is its last user message before the final assistant turn, `trace` that turn.
  nlohmann::json messages = nullptr;
  // What makes two problems the same, when more than the question text does (Countdown:
  // the numbers in any order and the target): the training stream skips every problem
  // whose key is a held-out one's. "" = the question.
  std::string key;

  const std::string& identity() const { return key.empty() ? question : key; }
};

// The problems of a file task's file, in file order, and the bad lines it skipped.
struct TaskFile {
  std::vector<TaskSample> samples;
  int64_t skipped_lines = 0;              // bad lines skipped (jsonl: task.skip_bad_lines)
  std::vector<std::string> skip_reasons;  // the first few, "file:line: what is wrong"
};

// A task with its options. Copy with clone(); bind the options with visit().
class Task {
 public:
  virtual ~Task() = default;
  virtual std::unique_ptr<Task> clone() const = 0;
  // The task's own keys, declared flat inside the recipe's task section.
  virtual void visit(ConfigVisitor& v) = 0;
  // Checks across those keys (min <= max, a file to read); messages name task.KEY.
  virtual Status validate() const = 0;
  // true: problems are generated (generate()); false: read from a file (load()).
  virtual bool procedural() const = 0;
  // Problem `index` of stream `seed`, a pure function of (options, seed, index).
  // Procedural tasks only (a file task returns an empty sample).
  virtual TaskSample generate(uint64_t seed, uint64_t index) const = 0;
  // Every problem of a file task, in file order (errors name the file and line), with
  // the count of bad lines skipped when the task's options say to skip them.
  // Procedural tasks: FailedPrecondition.
  virtual StatusOr<TaskFile> load() const = 0;
  // The checker (role accuracy) and R1's format reward (told whether prompts end in a
  // prefilled "<think>").
  virtual std::vector<reward::RewardSpec> default_rewards(bool prefill_think) const = 0;
};

// The usual default rewards: `checker` (weight 1, role accuracy, no arguments), then
// R1's format reward (weight 0.2, told whether prompts end in a prefilled "<think>").
std::vector<reward::RewardSpec> checker_and_format(std::string checker, bool prefill_think);

// A procedural task from its options struct (with visit(), optionally
// `Status validate() const`) and two pure functions.
template <class Options>
struct ProceduralTaskFns {
  TaskSample (*generate)(const Options& o, uint64_t seed, uint64_t index);
  std::vector<reward::RewardSpec> (*default_rewards)(const Options& o, bool prefill_think);
};

template <class Options>
class ProceduralTask final : public Task {
 public:
  explicit ProceduralTask(ProceduralTaskFns<Options> fns) : fns_(fns) {}
  std::unique_ptr<Task> clone() const override { return std::make_unique<ProceduralTask>(*this); }
  void visit(ConfigVisitor& v) override { options_.visit(v); }
  Status validate() const override {
    if constexpr (config_detail::HasConstValidate<Options>)
      return options_.validate();
    else
      return OkStatus();
  }
  bool procedural() const override { return true; }
  TaskSample generate(uint64_t seed, uint64_t index) const override {
    return fns_.generate(options_, seed, index);
  }
  StatusOr<TaskFile> load() const override {
    return FailedPrecondition("a procedural task has no file to load");
  }
  std::vector<reward::RewardSpec> default_rewards(bool prefill_think) const override {
    return fns_.default_rewards(options_, prefill_think);
  }

 private:
  Options options_;
  ProceduralTaskFns<Options> fns_;
};

// Name -> prototype (the task with its default options).
class TaskRegistry {
 public:
  // The process-wide registry, with every task of data/tasks/ in it.
  static TaskRegistry& global();

  // AlreadyExists if `name` is taken; InvalidArgument for an empty name or no task.
  Status add(std::string name, std::unique_ptr<Task> prototype, std::string doc = "");
  // A copy of the prototype; NotFound naming `name` and listing the known tasks.
  StatusOr<std::unique_ptr<Task>> create(std::string_view name) const;
  // The prototype itself (valid for the registry's lifetime); nullptr if unknown.
  const Task* prototype(std::string_view name) const;
  bool contains(std::string_view name) const;
  // Registered names, sorted, each with its one-line doc.
  std::vector<std::pair<std::string, std::string>> list() const;
  std::vector<std::string> names() const;

 private:
  struct Entry {
    std::unique_ptr<Task> prototype;
    std::string doc;
  };
  mutable std::mutex mu_;
  std::map<std::string, Entry, std::less<>> entries_;  // guarded by mu_; never erased
};

// registry.add for a built-in task: a failure (a duplicate name) is a bug and throws
// std::logic_error.
void add_builtin_task(TaskRegistry& registry, std::string name, std::unique_ptr<Task> prototype,
                      std::string doc);

// add_builtin_task of a ProceduralTask<Options> with default options.
template <class Options>
void add_procedural_task(TaskRegistry& registry, std::string name, ProceduralTaskFns<Options> fns,
                         std::string doc) {
  add_builtin_task(registry, std::move(name), std::make_unique<ProceduralTask<Options>>(fns),
                   std::move(doc));
}

// Adds every task of data/tasks/ to `registry`. global() calls it once; tests may call
// it on a fresh registry.
void register_builtin_tasks(TaskRegistry& registry);

}  // namespace r1kit::data
