// `r1kit task generate|list`.
//
// generate: write a procedural task's problems (data/task.h) as JSONL, one
// {"prompt": question, "answer": ..., ...metadata} object a line, plus "trace" (a
// step-by-step solution for SFT) with --traces. Problem i is a pure function of (--seed,
// i, the task's keys); the file is a valid `task: {name: jsonl, path: FILE}` input and a
// valid `r1kit reward score` input once a "completion" is added. --format sft writes
// {"prompt", "response"} lines instead (the response "<think> trace </think> <answer> a
// </answer>"), the input of an sft recipe with data.source=jsonl. --task-arg KEY=VALUE
// (repeatable) sets a key of the recipe's `task:` section, as in `r1kit eval`: the task's
// own keys, e.g. --task-arg max_a=9 --task-arg trace=columns.
// list: the registered tasks, a line each (the names `--task` and recipes accept).
#include <cstdio>
#include <sstream>

#include "apps/commands.h"
#include "core/atomic_file.h"
#include "data/task_source.h"

namespace r1kit::apps {
namespace {

struct TaskGenerateFlags {
  std::string task;
  int64_t n = 1000;
  uint64_t seed = 1;
  std::string out;
  bool traces = false;
  std::string format = "task";         // task | sft
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
  const auto format = f.format == "sft" ? data::TaskFileFormat::kSft : data::TaskFileFormat::kTask;
  RETURN_IF_ERROR(data::write_tasks_jsonl(task, f.seed, f.n, f.traces, out, format));
  RETURN_IF_ERROR(write_file_atomic(f.out, out.str()));
  std::printf("wrote %lld %s problems to %s\n", static_cast<long long>(f.n), f.task.c_str(),
              f.out.c_str());
  return OkStatus();
}

}  // namespace

void add_task_command(CLI::App& root, int* exit_code) {
  auto* task = root.add_subcommand("task", "Reasoning tasks: generate problems, list tasks");
  task->require_subcommand(1);
  static TaskGenerateFlags f;
  auto* gen = task->add_subcommand(
      "generate",
      "Write N seeded problems with their ground-truth metadata as JSONL (and step-by-step "
      "traces with --traces)");
  std::vector<std::string> generators;
  for (const std::string& name : data::TaskRegistry::global().names())
    if (data::TaskRegistry::global().prototype(name)->procedural()) generators.push_back(name);
  gen->add_option("--task", f.task, "the task (r1kit task list)")
      ->required()
      ->check(CLI::IsMember(generators));
  gen->add_option("--n", f.n, "number of problems")->check(CLI::NonNegativeNumber);
  gen->add_option("--seed", f.seed, "problem stream seed");
  gen->add_option("--out", f.out, "output JSONL file")->required();
  gen->add_flag("--traces", f.traces, "add a step-by-step solution trace to every line");
  gen->add_option("--format", f.format,
                  "task: {prompt, ...metadata} lines (a jsonl task's input); sft: {prompt, "
                  "response} lines, the solution in the R1 format (an sft recipe's "
                  "data.source=jsonl input)")
      ->check(CLI::IsMember({"task", "sft"}))
      ->capture_default_str();
  gen->add_option("--task-arg", f.task_args,
                  "KEY=VALUE of the recipe's task section, repeatable: the task's own keys, e.g. "
                  "--task-arg max_a=9 --task-arg max_numbers=5");
  gen->callback([=] { *exit_code = report(run_task_generate(f)); });
  auto* list = task->add_subcommand("list", "List the tasks, with a line each");
  list->callback([=] {
    for (const auto& [name, doc] : data::TaskRegistry::global().list())
      std::printf("%-16s %s\n", name.c_str(), doc.c_str());
    *exit_code = 0;
  });
}

}  // namespace r1kit::apps
