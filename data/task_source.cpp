#include "data/task_source.h"

#include <fmt/format.h>

#include <algorithm>
#include <numeric>

#include "core/rng.h"
#include "data/arithmetic.h"

namespace r1kit::data {
namespace {

constexpr uint64_t kTrainStream = 0x545241494eULL;  // "TRAIN"
constexpr uint64_t kEvalStream = 0x4556414cULL;     // "EVAL"

}  // namespace

Status TaskSection::validate() const {
  if (name == "jsonl" && path.empty()) return InvalidArgument("task.name=jsonl needs task.path");
  if (min_numbers > max_numbers)
    return InvalidArgument("task.min_numbers={} > task.max_numbers={}", min_numbers, max_numbers);
  if (min_people > max_people)
    return InvalidArgument("task.min_people={} > task.max_people={}", min_people, max_people);
  return OkStatus();
}

ChatTemplateOptions TaskSection::template_options() const {
  ChatTemplateOptions o;
  o.kind = chat_template == "plain" ? ChatTemplateKind::kPlain : ChatTemplateKind::kR1Zero;
  o.prefill_think = prefill_think;
  return o;
}

StatusOr<TaskSource> TaskSource::create(const TaskSection& section) {
  RETURN_IF_ERROR(section.validate());
  TaskSource t;
  t.section_ = section;
  if (section.name == "jsonl") {
    ASSIGN_OR_RETURN(auto all, load_task_jsonl(section.path));
    if (all.empty()) return InvalidArgument("task.path={}: no problems", section.path);
    // A seeded shuffle, then the first eval_size lines are held out (files are often
    // sorted by difficulty or source).
    std::vector<size_t> order(all.size());
    std::iota(order.begin(), order.end(), 0);
    uint64_t s = derive_seed(section.seed, {kEvalStream});
    for (size_t i = order.size(); i > 1; --i) {
      s = mix64(s);
      std::swap(order[i - 1], order[s % i]);
    }
    const size_t n_eval = std::min<size_t>(section.eval_size, all.size() - 1);
    for (size_t i = 0; i < order.size(); ++i)
      (i < n_eval ? t.eval_ : t.jsonl_train_).push_back(std::move(all[order[i]]));
    for (const auto& e : t.eval_) t.eval_questions_.insert(e.question);
    return t;
  }
  for (int64_t i = 0; i < section.eval_size; ++i) {
    TaskSample s = t.generate(kEvalStream, i);
    // Duplicates inside the eval set would weigh a question twice.
    if (t.eval_questions_.insert(s.question).second) t.eval_.push_back(std::move(s));
  }
  return t;
}

TaskSample generate_problem(const TaskSection& c, uint64_t seed, uint64_t index) {
  if (c.name == "countdown") {
    CountdownTaskOptions o;
    o.min_numbers = static_cast<int>(c.min_numbers);
    o.max_numbers = static_cast<int>(c.max_numbers);
    o.max_number = c.max_number;
    o.max_target = c.max_target;
    return countdown_task(seed, index, o);
  }
  if (c.name == "knights_knaves") {
    KnightsKnavesTaskOptions o;
    o.min_people = static_cast<int>(c.min_people);
    o.max_people = static_cast<int>(c.max_people);
    return knights_knaves_task(seed, index, o);
  }
  const auto ex = arithmetic_example(
      seed, index, {c.max_a, c.max_b, c.max_c, parse_arithmetic_trace(c.trace), c.trace_slips});
  nlohmann::json meta{{"answer", ex.answer}};
  if (ex.trace_answer != ex.answer) meta["trace_answer"] = ex.trace_answer;  // a slipped trace
  return {ex.question, ex.trace, std::move(meta)};
}

Status apply_task_args(TaskSection& section, const std::vector<std::string>& args) {
  if (args.empty()) return OkStatus();
  // The section as YAML, with the KEY=VALUE overrides on top.
  ASSIGN_OR_RETURN(section,
                   load_config_string<TaskSection>(dump_config(section), args, "--task-arg"));
  return OkStatus();
}

TaskSample TaskSource::generate(uint64_t stream, uint64_t index) const {
  return generate_problem(section_, derive_seed(section_.seed, {stream}), index);
}

TaskSample TaskSource::train(uint64_t index) const {
  if (!jsonl_train_.empty()) return jsonl_train_[index % jsonl_train_.size()];
  // Problem `index` of the training stream is the index-th generated problem that is not
  // held out: walk a sub-stream per index until one is not an eval question, so the
  // mapping stays a pure function of index.
  for (uint64_t attempt = 0;; ++attempt) {
    TaskSample s = generate(kTrainStream, attempt == 0 ? index : derive_seed(index, {attempt}));
    if (!eval_questions_.contains(s.question) || attempt >= 64) return s;
  }
}

std::vector<TaskSample> TaskSource::train_batch(uint64_t first, int64_t n) const {
  std::vector<TaskSample> out;
  out.reserve(n);
  for (int64_t i = 0; i < n; ++i) out.push_back(train(first + i));
  return out;
}

std::string TaskSource::render(const TaskSample& s) const {
  return render_prompt(section_.template_options(), s.question);
}

std::string TaskSource::sft_response(const TaskSample& s) const {
  if (s.trace.empty()) return "";
  // The answer the trace reaches (a slipped trace's own, see TaskSection::trace_slips).
  const char* key = s.metadata.contains("trace_answer") ? "trace_answer" : "answer";
  const std::string answer = s.metadata.contains(key) && s.metadata[key].is_string()
                                 ? s.metadata[key].get<std::string>()
                                 : s.metadata.value(key, nlohmann::json()).dump();
  return section_.prefill_think
             ? fmt::format("{} </think> <answer> {} </answer>", s.trace, answer)
             : fmt::format("<think> {} </think> <answer> {} </answer>", s.trace, answer);
}

std::string default_task_rewards(const TaskSection& section) {
  const std::string accuracy = section.name == "jsonl" ? "math_accuracy" : section.name;
  return fmt::format(
      "[{{name: {}, weight: 1.0}}, {{name: format, weight: 0.2, prefilled_think: {}}}]", accuracy,
      section.prefill_think ? "true" : "false");
}

}  // namespace r1kit::data
