#include "data/task_source.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <numeric>
#include <stdexcept>

#include "core/logging.h"
#include "core/rng.h"

namespace r1kit::data {
namespace {

constexpr uint64_t kTrainStream = 0x545241494eULL;  // "TRAIN"
constexpr uint64_t kEvalStream = 0x4556414cULL;     // "EVAL"

}  // namespace

TaskSection::TaskSection(const TaskSection& o)
    : name(o.name),
      seed(o.seed),
      eval_size(o.eval_size),
      chat_template(o.chat_template),
      prefill_think(o.prefill_think),
      task_(o.task_ ? o.task_->clone() : nullptr),
      task_name_(o.task_name_) {}

TaskSection& TaskSection::operator=(const TaskSection& o) {
  if (this != &o) *this = TaskSection(o);
  return *this;
}

TaskSection::~TaskSection() = default;

void TaskSection::visit(ConfigVisitor& v) {
  const TaskRegistry& registry = TaskRegistry::global();
  const OneOf names(registry.names());
  // Bound first: the keys after prefill_think are the named task's.
  v.field("name", name, "the task (`r1kit task list`): a procedural generator, or jsonl (a file)",
          names);
  v.field("seed", seed, "problem stream seed (train and held-out streams derive from it)");
  v.field("eval_size", eval_size, "held-out problems (never trained on)", Range::non_negative());
  v.field("chat_template", chat_template,
          "prompt template: auto (the one model.from records, else r1_zero) | r1_zero | plain "
          "| model (the checkpoint's own Jinja chat template, from model.from's "
          "tokenizer_config.json) | a .jinja file");
  v.field("prefill_think", prefill_think, "prompts end in ' <think>'");
  if (!registry.contains(name)) return;  // the name's check reports it
  v.scope(fmt::format("task {}", name));
  task().visit(v);
}

Status TaskSection::validate() const {
  if (!TaskRegistry::global().contains(name)) {
    std::string known;
    for (const std::string& n : TaskRegistry::global().names())
      known += (known.empty() ? "" : ", ") + n;
    return InvalidArgument("task.name={}: unknown task (known tasks: {})", name, known);
  }
  if (chat_template != kAutoChatTemplate)
    RETURN_IF_ERROR(
        parse_chat_template_spec(chat_template).status().with_context("task.chat_template"));
  return task().validate();
}

const Task& TaskSection::task() const {
  if (task_ && task_name_ == name) return *task_;
  const Task* prototype = TaskRegistry::global().prototype(name);
  if (prototype == nullptr) throw std::logic_error("task.name=" + name + ": not a registered task");
  return *prototype;
}

Task& TaskSection::task() {
  if (!task_ || task_name_ != name) {
    task_ = static_cast<const TaskSection&>(*this).task().clone();
    task_name_ = name;
  }
  return *task_;
}

std::vector<reward::RewardSpec> TaskSection::default_rewards() const {
  return task().default_rewards(prefill_think);
}

StatusOr<TaskSection> TaskSection::with_model_format(std::string_view model_dir,
                                                     ResolvedPromptFormat* resolved,
                                                     std::string_view what) const {
  ASSIGN_OR_RETURN(ResolvedPromptFormat r,
                   resolve_prompt_format(chat_template, prefill_think, model_dir, "r1_zero", what));
  log_prompt_format(r);
  TaskSection s = *this;
  s.chat_template = r.chat_template;
  s.prefill_think = r.prefill_think;
  if (resolved != nullptr) *resolved = std::move(r);
  return s;
}

StatusOr<ChatTemplateOptions> TaskSection::template_options(std::string_view model_dir) const {
  if (chat_template == kAutoChatTemplate) {
    ASSIGN_OR_RETURN(const ResolvedPromptFormat r,
                     resolve_prompt_format(chat_template, prefill_think, model_dir, "r1_zero",
                                           "task.chat_template"));
    TaskSection s = *this;
    s.chat_template = r.chat_template;
    s.prefill_think = r.prefill_think;
    return s.template_options(model_dir);
  }
  const StatusOr<ChatTemplateSpec> spec = parse_chat_template_spec(chat_template);
  if (!spec.ok()) return spec.status().with_context("task.chat_template");
  auto opts = resolve_chat_template(*spec, model_dir, prefill_think);
  if (!opts.ok()) return opts.status().with_context("task.chat_template");
  return opts;
}

StatusOr<TaskSource> TaskSource::create(const TaskSection& section, std::string_view model_dir) {
  RETURN_IF_ERROR(section.validate());
  TaskSource t;
  if (section.chat_template == kAutoChatTemplate) {
    ASSIGN_OR_RETURN(t.section_, section.with_model_format(model_dir));
  } else {
    t.section_ = section;
  }
  ASSIGN_OR_RETURN(t.template_, t.section_.template_options(model_dir));
  if (!section.task().procedural()) {
    ASSIGN_OR_RETURN(TaskFile file, section.task().load());
    t.skipped_lines_ = file.skipped_lines;
    t.skip_reasons_ = file.skip_reasons;
    if (file.skipped_lines > 0) {
      R1_LOG(warn, "task {}: skipped {} bad line(s) (task.skip_bad_lines); the first {}: {}",
             section.name, file.skipped_lines, file.skip_reasons.size(),
             fmt::join(file.skip_reasons, "; "));
    }
    std::vector<TaskSample>& all = file.samples;
    if (all.empty())
      return InvalidArgument("task {}: no problems{}", section.name,
                             file.skipped_lines > 0
                                 ? fmt::format(" ({} bad lines skipped: {})", file.skipped_lines,
                                               fmt::join(file.skip_reasons, "; "))
                                 : "");
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
      (i < n_eval ? t.eval_ : t.file_train_).push_back(std::move(all[order[i]]));
    for (const auto& e : t.eval_) t.eval_questions_.insert(e.identity());
    if (static_cast<int64_t>(n_eval) < section.eval_size)
      t.eval_shortfall_ =
          fmt::format("the file has {} problems and keeps one for training", all.size());
    return t;
  }
  for (int64_t i = 0; i < section.eval_size; ++i) {
    TaskSample s = t.generate(kEvalStream, i);
    // Duplicates inside the eval set would weigh a problem twice.
    if (t.eval_questions_.insert(s.identity()).second) t.eval_.push_back(std::move(s));
  }
  const int64_t repeats = section.eval_size - static_cast<int64_t>(t.eval_.size());
  if (repeats > 0)
    t.eval_shortfall_ = fmt::format(
        "{} of the {} generated questions repeat an earlier one and are dropped (the task's "
        "settings allow few distinct questions)",
        repeats, section.eval_size);
  return t;
}

Status apply_task_args(TaskSection& section, const std::vector<std::string>& args) {
  if (args.empty()) return OkStatus();
  // The section as YAML, with the KEY=VALUE overrides on top.
  ASSIGN_OR_RETURN(section,
                   load_config_string<TaskSection>(dump_config(section), args, "--task-arg"));
  return OkStatus();
}

TaskSample TaskSource::generate(uint64_t stream, uint64_t index) const {
  return section_.task().generate(derive_seed(section_.seed, {stream}), index);
}

TaskSample TaskSource::train(uint64_t index) const {
  if (!file_train_.empty()) return file_train_[index % file_train_.size()];
  // Problem `index` of the training stream is the index-th generated problem that is not
  // held out: walk a sub-stream per index until one is not an eval question, so the
  // mapping stays a pure function of index.
  for (uint64_t attempt = 0;; ++attempt) {
    TaskSample s = generate(kTrainStream, attempt == 0 ? index : derive_seed(index, {attempt}));
    if (!eval_questions_.contains(s.identity()) || attempt >= 64) return s;
  }
}

std::vector<TaskSample> TaskSource::train_batch(uint64_t first, int64_t n) const {
  std::vector<TaskSample> out;
  out.reserve(n);
  for (int64_t i = 0; i < n; ++i) out.push_back(train(first + i));
  return out;
}

PromptFormat TaskSource::prompt_format() const {
  return prompt_format_of(template_, config_to_json(section_));
}

std::string TaskSource::render(const TaskSample& s) const {
  if (s.messages.is_array()) {
    StatusOr<std::string> out = try_render_conversation_prompt(template_, s.messages, s.question);
    if (!out.ok()) throw std::runtime_error(out.status().to_string());
    return std::move(out).value();
  }
  return render_prompt(template_, s.question);
}

std::string TaskSource::sft_response(const TaskSample& s) const {
  return data::sft_response(s, section_.prefill_think);
}

StatusOr<std::vector<std::pair<std::string, std::string>>> TaskSource::solved_problems(
    int64_t n) const {
  // A file's training lines are used once each at most.
  if (!file_train_.empty()) n = std::min<int64_t>(n, static_cast<int64_t>(file_train_.size()));
  std::vector<std::pair<std::string, std::string>> out;
  for (int64_t i = 0; i < n; ++i) {
    TaskSample p = train(static_cast<uint64_t>(i));
    std::string resp = sft_response(p);
    if (resp.empty())
      return InvalidArgument(
          "task.name={}: training problem {} (\"{}\") has no step-by-step solution to learn "
          "from{}",
          section_.name, i, p.question.substr(0, 60),
          section_.task().procedural() ? "" : " (give each line a \"trace\")");
    if (!p.metadata.contains("answer"))
      return InvalidArgument(
          "task.name={}: training problem {} (\"{}\") has no answer to end its response in "
          "(give each line an \"answer\")",
          section_.name, i, p.question.substr(0, 60));
    out.emplace_back(std::move(p.question), std::move(resp));
  }
  return out;
}

nlohmann::json task_record(const TaskSample& task, bool with_trace) {
  nlohmann::json out = task.metadata.is_object() ? task.metadata : nlohmann::json::object();
  out["prompt"] = task.question;
  if (with_trace) out["trace"] = task.trace;
  return out;
}

std::string sft_response(const TaskSample& s, bool prefill_think) {
  if (s.trace.empty()) return "";
  // The answer the trace reaches (a slipped trace's own, see the arithmetic task).
  const char* key = s.metadata.contains("trace_answer") ? "trace_answer" : "answer";
  const std::string answer = s.metadata.contains(key) && s.metadata[key].is_string()
                                 ? s.metadata[key].get<std::string>()
                                 : s.metadata.value(key, nlohmann::json()).dump();
  return prefill_think ? fmt::format("{} </think> <answer> {} </answer>", s.trace, answer)
                       : fmt::format("<think> {} </think> <answer> {} </answer>", s.trace, answer);
}

Status write_tasks_jsonl(const TaskSection& task, uint64_t seed, int64_t n, bool with_traces,
                         std::ostream& out, TaskFileFormat format) {
  if (n < 0) return InvalidArgument("--n: must be >= 0, got {}", n);
  RETURN_IF_ERROR(task.validate());
  if (!task.task().procedural())
    return InvalidArgument("task {}: not a generator (it reads task.path)", task.name);
  for (int64_t i = 0; i < n; ++i) {
    const TaskSample s = task.task().generate(seed, static_cast<uint64_t>(i));
    if (format == TaskFileFormat::kSft) {
      const std::string response = sft_response(s, task.prefill_think);
      if (response.empty())
        return InvalidArgument("task {}: problem {} has no step-by-step solution", task.name, i);
      out << nlohmann::json{{"prompt", s.question}, {"response", response}}.dump() << '\n';
    } else {
      out << task_record(s, with_traces).dump() << '\n';
    }
    if (!out) return Internal("writing task {} failed", i);
  }
  return OkStatus();
}

}  // namespace r1kit::data
