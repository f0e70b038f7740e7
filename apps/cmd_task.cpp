// `r1kit task generate`: write procedural problems (data/tasks.h, data/arithmetic.h) as
// JSONL, one {"prompt": question, "answer": ..., ...metadata} object a line, plus
// "trace" (a step-by-step solution for SFT) with --traces. Problem i is a pure function
// of (--seed, i, the difficulty); the file is a valid `task: {name: jsonl, path: FILE}`
// input and a valid `r1kit reward score` input once a "completion" is added.
// --task-arg KEY=VALUE (repeatable) sets a key of the recipe's `task:` section, as in
// `r1kit eval`: the difficulty, e.g. --task-arg max_a=9 --task-arg trace=columns.
#include <cstdio>
#include <sstream>

#include "apps/commands.h"
#include "core/atomic_file.h"
#include "data/task_source.h"
#include "reward/jsonl.h"

namespace r1kit::apps {
namespace {

struct TaskGenerateFlags {
  std::string task;
  int64_t n = 1000;
  uint64_t seed = 1;
  std::string out;
  bool traces = false;
  std::vector<std::string> task_args;  // KEY=VALUE onto the task section (max_a=9)
};

Status run_task_generate(const TaskGenerateFlags& f) {
  data::TaskSection task;
  task.name = f.task;
  for (const std::string& kv : f.task_args) {
    const std::string key = kv.substr(0, kv.find('='));
    if (key == "name" || key == "seed")
      return InvalidArgument("--task-arg {}: use --{} instead", kv, key == "name" ? "task" : key);
  }
  RETURN_IF_ERROR(data::apply_task_args(task, f.task_args));
  std::ostringstream out;
  RETURN_IF_ERROR(reward::write_tasks_jsonl(task, f.seed, f.n, f.traces, out));
  RETURN_IF_ERROR(write_file_atomic(f.out, out.str()));
  std::printf("wrote %lld %s problems to %s\n", static_cast<long long>(f.n), f.task.c_str(),
              f.out.c_str());
  return OkStatus();
}

}  // namespace

void add_task_command(CLI::App& root, int* exit_code) {
  auto* task = root.add_subcommand("task", "Procedural reasoning tasks");
  task->require_subcommand(1);
  static TaskGenerateFlags f;
  auto* gen = task->add_subcommand(
      "generate",
      "Write N seeded problems with their ground-truth metadata as JSONL (and step-by-step "
      "traces with --traces)");
  gen->add_option("--task", f.task, "the task")
      ->required()
      ->check(CLI::IsMember({"countdown", "arithmetic", "knights_knaves"}));
  gen->add_option("--n", f.n, "number of problems")->check(CLI::NonNegativeNumber);
  gen->add_option("--seed", f.seed, "problem stream seed");
  gen->add_option("--out", f.out, "output JSONL file")->required();
  gen->add_flag("--traces", f.traces, "add a step-by-step solution trace to every line");
  gen->add_option("--task-arg", f.task_args,
                  "KEY=VALUE of the recipe's task section, repeatable: the difficulty, e.g. "
                  "--task-arg max_a=9 --task-arg max_numbers=5");
  gen->callback([=] { *exit_code = report(run_task_generate(f)); });
}

}  // namespace r1kit::apps
