// Task problems for RL, SFT, pretraining, evaluation and distillation: one recipe
// section (`task:`) that names a task of the registry (data/task.h: arithmetic,
// countdown, knights_knaves, multiplication, jsonl, ...) and carries that task's keys,
// and the split of its problems into a training stream and a held-out evaluation set.
//
//   task: {name: arithmetic, seed: 1, eval_size: 200, max_a: 9, trace: columns}
//
// The keys every task has are below; the others are the named task's own (`r1kit run
// RECIPE --print-recipe` lists them), checked strictly: a key another task has is an
// error naming the task ("task.max_a: unknown key of task countdown").
//
// Every problem is a TaskSample: the question, a step-by-step trace (SFT and
// pretraining learn from it), and the metadata the rewards read (always "answer").
//
// Held-out means held out: the evaluation set is the first `eval_size` problems of its
// own seed stream, and the training stream skips every problem whose question is in the
// evaluation set (procedural generators can repeat a question across streams). For a
// file task (jsonl) a seeded shuffle puts `eval_size` lines aside.
// Training problems are a pure function of (seed, index), so a resumed run sees the
// same prompts.
// Thread-safety: TaskSource is immutable after construction; its methods are const.
#pragma once

#include <cstdint>
#include <memory>
#include <ostream>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "core/config.h"
#include "core/status.h"
#include "data/chat_template.h"
#include "data/prompt_format.h"
#include "data/reward_spec.h"
#include "data/task.h"

namespace r1kit::data {

struct TaskSection {
  std::string name = "arithmetic";  // a registered task (TaskRegistry)
  uint64_t seed = 1;                // problem streams (train and eval derive from it)
  int64_t eval_size = 200;          // held-out problems
  // auto (the model's recorded template, else r1_zero) | r1_zero | plain | model (the
  // checkpoint's own Jinja template) | a .jinja file
  std::string chat_template = std::string(kAutoChatTemplate);
  bool prefill_think = false;  // prompts end in " <think>" ("<think>\n" for Jinja templates)

  TaskSection() = default;
  TaskSection(const TaskSection& o);
  TaskSection& operator=(const TaskSection& o);
  TaskSection(TaskSection&&) noexcept = default;
  TaskSection& operator=(TaskSection&&) noexcept = default;
  ~TaskSection();

  // name, seed, eval_size, chat_template, prefill_think, then the named task's keys.
  void visit(ConfigVisitor& v);
  // A registered name, a chat_template spelling (parse_chat_template_spec), and the
  // task's own cross-key checks (min <= max, jsonl's path).
  Status validate() const;
  // The chat template options of this section, the template loaded and checked
  // (resolve_chat_template); `model_dir` is the checkpoint's directory, which
  // chat_template=model reads (FailedPrecondition without one) and chat_template=auto
  // takes the recorded template of.
  StatusOr<ChatTemplateOptions> template_options(std::string_view model_dir = {}) const;
  // This section with chat_template and prefill_think resolved against the prompt format
  // recorded in `model_dir` (resolve_prompt_format, fallback r1_zero), the decision
  // logged: `auto` becomes the recorded template, a contradicting choice a WARNING. The
  // resolution goes to `resolved` when given. For the model a run starts from or
  // evaluates; "" = none (auto is r1_zero). `what` names the setting in the log.
  StatusOr<TaskSection> with_model_format(std::string_view model_dir,
                                          ResolvedPromptFormat* resolved = nullptr,
                                          std::string_view what = "task.chat_template") const;
  // The task `name` names with the section's options for it. After `name` is assigned in
  // code, its options are the task's defaults until set (load_config_string,
  // apply_task_args). Requires a registered name (validate() first); throws
  // std::logic_error otherwise.
  const Task& task() const;
  Task& task();
  // The task's default rewards: its checker (role accuracy) and the format reward.
  std::vector<reward::RewardSpec> default_rewards() const;

 private:
  std::unique_ptr<Task> task_;  // the options of task `task_name_`
  std::string task_name_;       // the name task_ was made for
};

class TaskSource {
 public:
  // Reads the task's file (a file task), loads the chat template (`model_dir`: the
  // checkpoint's directory, for chat_template=model, and auto: with_model_format) and
  // builds the held-out set.
  static StatusOr<TaskSource> create(const TaskSection& section, std::string_view model_dir = {});

  // Training problem number `index` (0, 1, 2, ...; endless for procedural tasks, cycling
  // through the shuffled training lines of a file task). Never an eval problem.
  TaskSample train(uint64_t index) const;
  // Training problems [first, first + n).
  std::vector<TaskSample> train_batch(uint64_t first, int64_t n) const;
  // The held-out problems.
  const std::vector<TaskSample>& eval() const { return eval_; }
  // Why eval() has fewer than task.eval_size problems ("" when it has them all): a
  // generated task drops questions that repeat an earlier held-out one; a file keeps at
  // least one line for training.
  const std::string& eval_shortfall() const { return eval_shortfall_; }
  // A file task's bad lines skipped (task.skip_bad_lines; logged as a warning by
  // create()), and the first few reasons, "file:line: what is wrong".
  int64_t skipped_lines() const { return skipped_lines_; }
  const std::vector<std::string>& skip_reasons() const { return skip_reasons_; }
  // The prompt text of a problem under the section's chat template; a conversation
  // (TaskSample::messages) under a Jinja template with its earlier turns
  // (try_render_conversation_prompt).
  std::string render(const TaskSample& s) const;
  // The SFT response for a problem's trace ("<think> trace </think> <answer> a </answer>",
  // without the leading "<think>" when prefill_think; `a` is metadata "trace_answer" when
  // present, the answer the trace reaches, else "answer"). "" when it has no trace.
  std::string sft_response(const TaskSample& s) const;
  // The first `n` training problems as SFT examples (question, sft_response): what SFT
  // and pretraining learn from. InvalidArgument naming the task when one has no trace
  // or no answer.
  StatusOr<std::vector<std::pair<std::string, std::string>>> solved_problems(int64_t n) const;
  const TaskSection& section() const { return section_; }
  // The section's chat template, loaded.
  const ChatTemplateOptions& template_options() const { return template_; }
  // What a model trained on these prompts records (data/prompt_format.h): the template
  // and the section.
  PromptFormat prompt_format() const;

 private:
  TaskSample generate(uint64_t stream, uint64_t index) const;
  TaskSection section_;
  ChatTemplateOptions template_;
  std::vector<TaskSample> file_train_;  // file task: the training lines, shuffled
  std::vector<TaskSample> eval_;
  std::unordered_set<std::string> eval_questions_;  // TaskSample::identity() of eval_
  int64_t skipped_lines_ = 0;
  std::vector<std::string> skip_reasons_;
  std::string eval_shortfall_;
};

// Applies `args` ("KEY=VALUE", the --task-arg flags of the CLI) onto `section`, checked
// like a recipe's task section; the error names the key.
Status apply_task_args(TaskSection& section, const std::vector<std::string>& args);

// A problem as a JSONL record, the format the jsonl task reads: {"prompt": question,
// ...metadata} plus "trace" when `with_trace`.
nlohmann::json task_record(const TaskSample& task, bool with_trace);

// The SFT response of a problem with a trace: "<think> trace </think> <answer> a </answer>"
// (without the leading "<think>" when `prefill_think`); `a` is metadata "trace_answer"
// when present (the answer the trace reaches), else "answer". "" when it has no trace.
std::string sft_response(const TaskSample& s, bool prefill_think);

// The lines `r1kit task generate` writes: task_record's (a jsonl task's input), or
// {"prompt", "response"} pairs, the SFT JSONL shape (`data.source: jsonl`).
enum class TaskFileFormat { kTask, kSft };

// `r1kit task generate`: problems 0..n-1 of the section's procedural task from stream
// `seed` as given (the section's own seed, eval_size and prompt keys are not used), one
// line a problem in `format` (kSft: its sft_response under task.prefill_think).
// InvalidArgument for a file task, a bad section or n < 0.
Status write_tasks_jsonl(const TaskSection& task, uint64_t seed, int64_t n, bool with_traces,
                         std::ostream& out, TaskFileFormat format = TaskFileFormat::kTask);

}  // namespace r1kit::data
