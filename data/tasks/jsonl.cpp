// Task `jsonl`: the user's own problems, one JSON object per line of `task.path`, in the
// shapes datasets are downloaded in (docs/recipes.md, "Your own data: the jsonl task"):
//   - a question: {"prompt"|"question"|"problem": ..., "answer"|"solution": ..., ...}
//     (GSM8K, MATH, `r1kit task generate`), with an optional string "trace";
//   - a conversation: {"messages": [{"role": ..., "content": ...}, ...]} (the chat/SFT
//     shape of TRL and torchtune), kept whole in TaskSample::messages; the question is
//     the last user message before the final assistant turn, the trace that turn.
// Field names are recipe keys (task.prompt_field, ...). Answers are read as datasets
// write them (data/task_answer.h): GSM8K's "#### 72" and MATH's \boxed{} give the gold
// answer, and the worked reasoning around them is the SFT trace unless
// task.solution_trace is false. Every other field is metadata for the rewards.
// Blank lines are skipped; any other bad line is an error naming the file, line and
// field, or with task.skip_bad_lines is skipped and counted (TaskFile). Checked by
// default by `math_accuracy`.
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <fstream>
#include <optional>

#include "core/json.h"
#include "data/task.h"
#include "data/task_answer.h"

namespace r1kit::data {
namespace {

// Where a line's fields come from when the recipe does not name them, in the order tried.
constexpr std::array<const char*, 3> kJsonlPromptFields = {"prompt", "question", "problem"};
constexpr std::array<const char*, 2> kJsonlAnswerFields = {"answer", "solution"};
constexpr const char* kJsonlTraceField = "trace";
constexpr const char* kJsonlMessagesField = "messages";
constexpr std::array<const char*, 4> kJsonlRoles = {"system", "user", "assistant", "tool"};
// Skip reasons kept (and logged) when task.skip_bad_lines skips lines.
constexpr size_t kJsonlSkipReasonsKept = 5;

struct JsonlTaskOptions {
  std::string path;
  std::string prompt_field;    // "": the first present of kJsonlPromptFields
  std::string answer_field;    // "": the first present of kJsonlAnswerFields
  std::string trace_field;     // "": "trace"
  std::string messages_field;  // "": "messages"
  bool solution_trace = true;  // a solution's worked reasoning is the trace
  bool skip_bad_lines = false;

  void visit(ConfigVisitor& v) {
    v.field("path", path,
            "one JSON object per line: {\"prompt\"|\"question\"|\"problem\", "
            "\"answer\"|\"solution\", \"trace\"?, ...} or {\"messages\": [{role, content}, ...]}");
    v.field("prompt_field", prompt_field,
            "the question's field on every line (empty: the first of prompt, question, problem; "
            "a line with \"messages\" is a conversation)");
    v.field("answer_field", answer_field,
            "the gold answer's field, read as GSM8K (#### 42), MATH (\\boxed{42}) or bare (empty: "
            "the first of answer, solution; optional on a line)");
    v.field("trace_field", trace_field,
            "the worked solution SFT learns, a string (empty: trace; optional on a line)");
    v.field("messages_field", messages_field,
            "the conversation's field on every line: [{role, content}, ...] (empty: messages, "
            "when a line has it)");
    v.field("solution_trace", solution_trace,
            "a line without a trace learns the reasoning of its GSM8K/MATH solution (the text "
            "before ####, the whole \\boxed solution)");
    v.field("skip_bad_lines", skip_bad_lines,
            "skip bad lines (counted, the first few logged) instead of failing on the first");
  }

  // The candidates a line is searched for, by role.
  std::vector<std::string> prompt_names() const {
    if (!prompt_field.empty()) return {prompt_field};
    return {kJsonlPromptFields.begin(), kJsonlPromptFields.end()};
  }
  std::vector<std::string> answer_names() const {
    if (!answer_field.empty()) return {answer_field};
    return {kJsonlAnswerFields.begin(), kJsonlAnswerFields.end()};
  }
  std::string trace_name() const { return trace_field.empty() ? kJsonlTraceField : trace_field; }
  std::string messages_name() const {
    return messages_field.empty() ? kJsonlMessagesField : messages_field;
  }

  Status validate() const;
};

std::string jsonl_quoted_list(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& n : names) out += (out.empty() ? "\"" : ", \"") + n + "\"";
  return out;
}

Status JsonlTaskOptions::validate() const {
  if (path.empty()) return InvalidArgument("task.name=jsonl needs task.path");
  if (!prompt_field.empty() && !messages_field.empty()) {
    return InvalidArgument(
        "task.prompt_field={} and task.messages_field={}: set one (a line is a question or a "
        "conversation)",
        prompt_field, messages_field);
  }
  // A field read in two roles: an explicit name that another role reads too.
  struct Role {
    const char* key;
    std::string set;
    std::vector<std::string> reads;
  };
  // With task.messages_field every line is a conversation: no question field is read.
  const Role roles[] = {
      {"prompt_field", prompt_field,
       messages_field.empty() ? prompt_names() : std::vector<std::string>{}},
      {"answer_field", answer_field, answer_names()},
      {"trace_field", trace_field, {trace_name()}},
      {"messages_field", messages_field,
       prompt_field.empty() ? std::vector{messages_name()} : std::vector<std::string>{}}};
  for (const Role& a : roles) {
    if (a.set.empty()) continue;
    for (const Role& b : roles) {
      if (&a == &b || std::find(b.reads.begin(), b.reads.end(), a.set) == b.reads.end()) continue;
      return InvalidArgument(
          "task.{}={}: task.{} reads that field too ({}{}); name another field for one of them",
          a.key, a.set, b.key, jsonl_quoted_list(b.reads), b.set.empty() ? " when unset" : "");
    }
  }
  return OkStatus();
}

// A line's fields, read into a sample. Every error message starts with `where`
// ("file:line").
class JsonlLineReader {
 public:
  JsonlLineReader(const JsonlTaskOptions& o, std::string where, nlohmann::json line)
      : o_(o), where_(std::move(where)), j_(std::move(line)) {}

  StatusOr<TaskSample> read();

 private:
  template <typename... Args>
  Status bad(fmt::format_string<Args...> f, Args&&... args) const {
    return InvalidArgument("{}: {}", where_, fmt::format(f, std::forward<Args>(args)...));
  }
  Status read_question();
  Status read_conversation(const std::string& field);
  Status read_message(const std::string& field, size_t i) const;
  Status read_answer();
  Status read_trace();

  const JsonlTaskOptions& o_;
  std::string where_;
  nlohmann::json j_;  // the line; fields are erased as they are read
  TaskSample t_;
  std::optional<WorkedSolution> reply_;     // the final assistant turn, split
  std::optional<WorkedSolution> solution_;  // the answer field's text, split
  std::optional<nlohmann::json> gold_;      // the answer field's value (string or number)
};

StatusOr<TaskSample> JsonlLineReader::read() {
  RETURN_IF_ERROR(read_question());
  RETURN_IF_ERROR(read_answer());
  RETURN_IF_ERROR(read_trace());
  // The trace: the trace field, else the final assistant turn, else a solution's reasoning.
  if (t_.trace.empty() && reply_) t_.trace = reply_->reasoning;
  if (t_.trace.empty() && solution_ && o_.solution_trace) t_.trace = solution_->reasoning;
  if (gold_) {
    j_["answer"] = *gold_;
    // The answer the assistant turn reaches, when the gold answer is given apart.
    const std::string gold_text = gold_->is_string() ? gold_->get<std::string>() : gold_->dump();
    if (reply_ && reply_->marked && t_.trace == reply_->reasoning && reply_->answer != gold_text)
      j_["trace_answer"] = reply_->answer;
  } else if (reply_ && reply_->marked) {
    j_["answer"] = reply_->answer;
  }
  t_.metadata = std::move(j_);
  return std::move(t_);
}

Status JsonlLineReader::read_question() {
  const std::string messages = o_.messages_name();
  if (!o_.messages_field.empty() || (o_.prompt_field.empty() && j_.contains(messages)))
    return read_conversation(messages);
  const std::vector<std::string> names = o_.prompt_names();
  auto it = std::find_if(names.begin(), names.end(),
                         [&](const std::string& n) { return j_.contains(n); });
  if (it == names.end()) {
    if (!o_.prompt_field.empty())
      return bad("no \"{}\" field (task.prompt_field) for the question", o_.prompt_field);
    return bad(
        "no question: none of the fields {}, \"{}\" is present (task.prompt_field or "
        "task.messages_field names another)",
        jsonl_quoted_list(names), messages);
  }
  const nlohmann::json& q = j_[*it];
  if (q.is_array())
    return bad(
        "\"{}\" must be a string, got an array (a conversation? set task.messages_field: {})", *it,
        *it);
  if (!q.is_string()) return bad("\"{}\" must be a string, got {}", *it, q.type_name());
  t_.question = q.get<std::string>();
  if (t_.question.empty()) return bad("\"{}\" is empty", *it);
  j_.erase(*it);
  return OkStatus();
}

Status JsonlLineReader::read_message(const std::string& field, size_t i) const {
  const nlohmann::json& m = j_[field][i];
  if (!m.is_object())
    return bad("{}[{}] must be an object with \"role\" and \"content\", got {}", field, i,
               m.type_name());
  for (const char* key : {"role", "content"}) {
    if (!m.contains(key)) return bad("{}[{}] has no \"{}\"", field, i, key);
    if (!m[key].is_string())
      return bad("{}[{}].{} must be a string, got {}", field, i, key, m[key].type_name());
  }
  const std::string role = m["role"].get<std::string>();
  if (std::find(kJsonlRoles.begin(), kJsonlRoles.end(), role) == kJsonlRoles.end())
    return bad("{}[{}].role \"{}\" is not one of system, user, assistant, tool", field, i, role);
  return OkStatus();
}

Status JsonlLineReader::read_conversation(const std::string& field) {
  if (!j_.contains(field))
    return bad("no \"{}\" field (task.messages_field) for the conversation", field);
  const nlohmann::json& msgs = j_[field];
  if (!msgs.is_array())
    return bad("\"{}\" must be an array of {{role, content}} objects, got {}", field,
               msgs.type_name());
  if (msgs.empty()) return bad("\"{}\" is empty", field);
  for (size_t i = 0; i < msgs.size(); ++i) RETURN_IF_ERROR(read_message(field, i));
  // The final assistant turn (the response), and the last user turn before it.
  size_t end = msgs.size();
  if (msgs.back()["role"] == "assistant") {
    reply_ = split_response(msgs.back()["content"].get<std::string>());
    --end;
  }
  size_t user = end;
  while (user > 0 && msgs[user - 1]["role"] != "user") --user;
  if (user == 0) return bad("\"{}\" has no user message before the final assistant turn", field);
  t_.question = msgs[user - 1]["content"].get<std::string>();
  if (t_.question.empty()) return bad("{}[{}].content (the question) is empty", field, user - 1);
  t_.messages = msgs;
  j_.erase(field);
  return OkStatus();
}

Status JsonlLineReader::read_answer() {
  const std::vector<std::string> names = o_.answer_names();
  auto it = std::find_if(names.begin(), names.end(),
                         [&](const std::string& n) { return j_.contains(n); });
  if (it == names.end()) {
    if (!o_.answer_field.empty())
      return bad("no \"{}\" field (task.answer_field) for the answer", o_.answer_field);
    return OkStatus();  // no answer: rewards that need one cannot judge the line
  }
  const nlohmann::json a = j_[*it];
  j_.erase(*it);
  if (a.is_null()) return OkStatus();
  if (a.is_number()) {
    gold_ = a;
  } else if (a.is_string()) {
    solution_ = split_solution(a.get<std::string>());
    gold_ = solution_->answer;
  } else {
    return bad("\"{}\" must be a string or a number, got {}", *it, a.type_name());
  }
  return OkStatus();
}

Status JsonlLineReader::read_trace() {
  const std::string name = o_.trace_name();
  if (!j_.contains(name)) return OkStatus();
  const nlohmann::json tr = j_[name];
  if (!tr.is_null() && !tr.is_string())
    return bad("\"{}\" must be a string, got {}", name, tr.type_name());
  if (tr.is_string()) t_.trace = tr.get<std::string>();
  j_.erase(name);
  return OkStatus();
}

// One non-blank line as a sample; errors start with `where`.
StatusOr<TaskSample> read_jsonl_line(const JsonlTaskOptions& o, const std::string& where,
                                     const std::string& line) {
  RETURN_IF_ERROR(check_json_depth(line, where));
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(line);
  } catch (const nlohmann::json::parse_error& e) {
    std::string why = e.what();
    const size_t at = why.find("parse error");  // drops the "[json.exception...] " prefix
    return InvalidArgument("{}: not JSON ({})", where, why.substr(at == why.npos ? 0 : at));
  }
  if (!j.is_object())
    return InvalidArgument("{}: not a JSON object (got {})", where, j.type_name());
  return JsonlLineReader(o, where, std::move(j)).read();
}

StatusOr<TaskFile> read_task_lines(const JsonlTaskOptions& o) {
  std::ifstream in(o.path);
  if (!in) return NotFound("{}: cannot open", o.path);
  TaskFile out;
  std::string line;
  int64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (std::all_of(line.begin(), line.end(),
                    [](char c) { return std::isspace(static_cast<unsigned char>(c)); })) {
      continue;
    }
    StatusOr<TaskSample> s = read_jsonl_line(o, fmt::format("{}:{}", o.path, line_no), line);
    if (s.ok()) {
      out.samples.push_back(std::move(*s));
      continue;
    }
    if (!o.skip_bad_lines) return s.status();
    ++out.skipped_lines;
    if (out.skip_reasons.size() < kJsonlSkipReasonsKept)
      out.skip_reasons.push_back(s.status().message());
  }
  return out;
}

class JsonlTask final : public Task {
 public:
  std::unique_ptr<Task> clone() const override { return std::make_unique<JsonlTask>(*this); }
  void visit(ConfigVisitor& v) override { options_.visit(v); }
  Status validate() const override { return options_.validate(); }
  bool procedural() const override { return false; }
  TaskSample generate(uint64_t, uint64_t) const override { return {}; }
  StatusOr<TaskFile> load() const override { return read_task_lines(options_); }
  std::vector<reward::RewardSpec> default_rewards(bool prefill_think) const override {
    return checker_and_format("math_accuracy", prefill_think);
  }

 private:
  JsonlTaskOptions options_;
};

}  // namespace

void register_jsonl_task(TaskRegistry& registry) {
  add_builtin_task(registry, "jsonl", std::make_unique<JsonlTask>(),
                   "your own problems from task.path, one JSON object a line: {prompt|question|"
                   "problem, answer|solution (GSM8K ####, MATH \\boxed), trace?, ...} or "
                   "{messages: [{role, content}, ...]}; checker: math_accuracy");
}

}  // namespace r1kit::data
