// Task problems for RL, evaluation and distillation: one recipe section (`task:`) that
// names a procedural task (arithmetic, countdown, knights_knaves) or a JSONL file, and
// the split of its problems into a training stream and a held-out evaluation set.
//
// Every problem is a TaskSample (data/tasks.h): the question, a step-by-step trace
// (procedural tasks only; SFT learns from it), and the metadata the rewards read
// (always "answer"; countdown adds "numbers"/"target", knights_knaves "names"/"roles").
//
// Held-out means held out: the evaluation set is the first `eval_size` problems of its
// own seed stream, and the training stream skips every problem whose question is in the
// evaluation set (procedural generators can repeat a question across streams). For a
// JSONL file a seeded shuffle puts `eval_size` lines aside.
// Training problems are a pure function of (seed, index), so a resumed run sees the
// same prompts.
// Thread-safety: TaskSource is immutable after construction; its methods are const.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_set>
#include <vector>

#include "core/config.h"
#include "core/status.h"
#include "data/chat_template.h"
#include "data/tasks.h"

namespace r1kit::data {

struct TaskSection {
  std::string name = "arithmetic";  // arithmetic | countdown | knights_knaves | jsonl
  std::string path;                 // jsonl: {"prompt"|"question", "answer", ...} per line
  uint64_t seed = 1;                // problem streams (train and eval derive from it)
  int64_t eval_size = 200;          // held-out problems
  // arithmetic: a*b+c
  int64_t max_a = 99;            // a in [2, max_a]
  int64_t max_b = 9;             // b in [2, max_b]
  int64_t max_c = 99;            // c in [0, max_c]
  std::string trace = "direct";  // direct | columns (data/arithmetic.h)
  double trace_slips = 0;         // share of SFT traces with a slipped product
  // countdown
  int64_t min_numbers = 3;   // operands per problem
  int64_t max_numbers = 4;   // operands per problem
  int64_t max_number = 99;   // operands in [1, max_number]
  int64_t max_target = 999;  // targets in [1, max_target]
  // knights_knaves
  int64_t min_people = 3;  // people per puzzle
  int64_t max_people = 5;  // people per puzzle
  // prompts
  std::string chat_template = "r1_zero";  // r1_zero | plain
  bool prefill_think = false;             // prompts end in " <think>"

  void visit(ConfigVisitor& v) {
    v.field("name", name, "the task: a procedural generator, or jsonl (task.path)",
            OneOf{"arithmetic", "countdown", "knights_knaves", "jsonl"});
    v.field("path", path,
            "jsonl: one {\"prompt\" or \"question\", \"answer\", ...} object per line; every "
            "field but the question is metadata for the rewards");
    v.field("seed", seed, "problem stream seed (train and held-out streams derive from it)");
    v.field("eval_size", eval_size, "held-out problems (never trained on)", Range::non_negative());
    v.field("max_a", max_a, "arithmetic: a in [2, max_a]", Range::at_least(2));
    v.field("max_b", max_b, "arithmetic: b in [2, max_b]", Range::at_least(2));
    v.field("max_c", max_c, "arithmetic: c in [0, max_c]", Range::at_least(0));
    v.field("trace", trace,
            "arithmetic: the SFT trace, direct (23*7=161. 161+5=166.) or columns (digit by "
            "digit with carries: 23*7: 3*7=21, 2*7+2=16, so 161. ...)",
            OneOf{"direct", "columns"});
    v.field("trace_slips", trace_slips,
            "arithmetic: share of SFT traces with a slip, as an imperfect teacher writes them "
            "(a*b misremembered as a*(b-1) or a*(b+1) and carried to a wrong answer); rewards "
            "and evaluation always check the true answer",
            Range::between(0, 1));
    v.field("min_numbers", min_numbers, "countdown: fewest operands", Range::between(2, 8));
    v.field("max_numbers", max_numbers, "countdown: most operands", Range::between(2, 8));
    v.field("max_number", max_number, "countdown: operands in [1, max_number]", Range::at_least(1));
    v.field("max_target", max_target, "countdown: targets in [1, max_target]", Range::at_least(1));
    v.field("min_people", min_people, "knights_knaves: fewest people", Range::between(2, 8));
    v.field("max_people", max_people, "knights_knaves: most people", Range::between(2, 8));
    v.field("chat_template", chat_template, "prompt template", OneOf{"r1_zero", "plain"});
    v.field("prefill_think", prefill_think, "prompts end in ' <think>'");
  }
  // Cross-field checks (min <= max, jsonl needs a path).
  Status validate() const;
  // The chat template options of this section.
  ChatTemplateOptions template_options() const;
};

class TaskSource {
 public:
  // Reads the JSONL file (if any) and builds the held-out set.
  static StatusOr<TaskSource> create(const TaskSection& section);

  // Training problem number `index` (0, 1, 2, ...; endless for procedural tasks, cycling
  // through the shuffled training lines of a JSONL file). Never an eval problem.
  TaskSample train(uint64_t index) const;
  // Training problems [first, first + n).
  std::vector<TaskSample> train_batch(uint64_t first, int64_t n) const;
  // The held-out problems.
  const std::vector<TaskSample>& eval() const { return eval_; }
  // The prompt text of a problem under the section's chat template.
  std::string render(const TaskSample& s) const;
  // The SFT response for a problem's trace ("<think> trace </think> <answer> a </answer>",
  // without the leading "<think>" when prefill_think). "" when the task has no trace.
  std::string sft_response(const TaskSample& s) const;
  const TaskSection& section() const { return section_; }

 private:
  TaskSample generate(uint64_t stream, uint64_t index) const;
  TaskSection section_;
  std::vector<TaskSample> jsonl_train_;  // jsonl: the training lines, shuffled
  std::vector<TaskSample> eval_;
  std::unordered_set<std::string> eval_questions_;
};

// Problem `index` of a procedural task (section.name: arithmetic, countdown,
// knights_knaves) with the section's difficulty keys, from stream `seed` as given (the
// section's own seed is not used). A pure function of its arguments.
TaskSample generate_problem(const TaskSection& section, uint64_t seed, uint64_t index);

// Applies `args` ("KEY=VALUE", the --task-arg flags of the CLI) onto `section`, checked
// like a recipe's task section; the error names the key.
Status apply_task_args(TaskSection& section, const std::vector<std::string>& args);

// Default reward list (YAML text) for a task: its accuracy checker and the R1 format.
std::string default_task_rewards(const TaskSection& section);

}  // namespace r1kit::data
