// Task `jsonl`: the user's own problems, one JSON object per line of `task.path`. The
// question is the first present of `prompt`, `question`; a string `trace` is the worked
// solution SFT and pretraining learn from (lines without one can still be used for RL
// and evaluation); every other field is metadata for the rewards (`answer`, `numbers`,
// ...). `r1kit task generate` writes this format. Blank lines are skipped; errors name
// the file and line. Checked by default by `math_accuracy` (exact arithmetic over
// metadata.answer).
#include <algorithm>
#include <cctype>
#include <fstream>

#include "data/task.h"

namespace r1kit::data {
namespace {

struct JsonlTaskOptions {
  std::string path;  // one {"prompt"|"question", "answer", ...} object per line

  void visit(ConfigVisitor& v) {
    v.field("path", path,
            "one {\"prompt\" or \"question\", \"answer\", \"trace\"?, ...} object per line; every "
            "field but the question and trace is metadata for the rewards");
  }
  Status validate() const {
    if (path.empty()) return InvalidArgument("task.name=jsonl needs task.path");
    return OkStatus();
  }
};

StatusOr<std::vector<TaskSample>> read_task_lines(const std::string& path) {
  std::ifstream in(path);
  if (!in) return NotFound("{}: cannot open", path);
  std::vector<TaskSample> out;
  std::string line;
  int64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (std::all_of(line.begin(), line.end(),
                    [](char c) { return std::isspace(static_cast<unsigned char>(c)); })) {
      continue;
    }
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) {
      return InvalidArgument("{}:{}: not a JSON object", path, line_no);
    }
    TaskSample t;
    const char* key = j.contains("prompt") ? "prompt" : j.contains("question") ? "question" : "";
    if (!*key || !j[key].is_string()) {
      return InvalidArgument("{}:{}: needs a string \"prompt\" (or \"question\")", path, line_no);
    }
    t.question = j[key].get<std::string>();
    j.erase(key);
    if (j.contains("trace") && j["trace"].is_string()) {
      t.trace = j["trace"].get<std::string>();
      j.erase("trace");
    }
    t.metadata = std::move(j);
    out.push_back(std::move(t));
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
  StatusOr<std::vector<TaskSample>> load() const override { return read_task_lines(options_.path); }
  std::vector<reward::RewardSpec> default_rewards(bool prefill_think) const override {
    return checker_and_format("math_accuracy", prefill_think);
  }

 private:
  JsonlTaskOptions options_;
};

}  // namespace

void register_jsonl_task(TaskRegistry& registry) {
  add_builtin_task(registry, "jsonl", std::make_unique<JsonlTask>(),
                   "your own problems, one {prompt, answer, trace?, ...} JSON object per line of "
                   "task.path; checker: math_accuracy");
}

}  // namespace r1kit::data
