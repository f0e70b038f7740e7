#include "eval/report.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <set>

#include "core/atomic_file.h"
#include "core/json.h"
#include "core/metric_names.h"

namespace r1kit::eval {
namespace {

namespace fs = std::filesystem;

constexpr double kReportNaN = std::numeric_limits<double>::quiet_NaN();
constexpr const char* kExpertPrefix = metric::kMoeLoadPrefix;

bool contains(std::string_view key, std::string_view part) {
  return key.find(part) != std::string_view::npos;
}

}  // namespace

std::string expert_load_key(int64_t layer, int64_t expert) {
  return metric::moe_load_key(layer, expert);
}

bool parse_expert_load_key(std::string_view key, int64_t* layer, int64_t* expert) {
  const std::string_view prefix = kExpertPrefix;
  if (!key.starts_with(prefix)) return false;
  key.remove_prefix(prefix.size());
  auto read_int = [&key](int64_t* v) {
    size_t i = 0;
    int64_t x = 0;
    while (i < key.size() && i < 12 && key[i] >= '0' && key[i] <= '9')
      x = x * 10 + (key[i++] - '0');
    if (i == 0) return false;
    *v = x;
    key.remove_prefix(i);
    return true;
  };
  if (!read_int(layer)) return false;
  if (!key.starts_with("/expert")) return false;
  key.remove_prefix(7);
  return read_int(expert) && key.empty();
}

void add_expert_load_metrics(const std::vector<std::vector<double>>& counts,
                             const std::vector<int64_t>& layer_ids,
                             std::map<std::string, double>* out) {
  for (size_t r = 0; r < counts.size(); ++r) {
    double sum = 0;
    for (double c : counts[r]) sum += c;
    const int64_t layer = r < layer_ids.size() ? layer_ids[r] : static_cast<int64_t>(r);
    for (size_t e = 0; e < counts[r].size(); ++e)
      (*out)[expert_load_key(layer, e)] = sum > 0 ? counts[r][e] / sum : 0.0;
  }
}

std::string metric_group(std::string_view key) {
  int64_t l = 0, e = 0;
  if (parse_expert_load_key(key, &l, &e)) return "";
  // r1kit's own metrics by name (core/metric_names.h); the patterns below are for
  // names it does not know (a plug-in reward's component, an evaluation's keys).
  if (const std::string_view known = metric::known_metric_group(key); !known.empty())
    return std::string(known);
  if (key.starts_with("reward")) return "Reward";
  if (key.starts_with("eval/") || contains(key, "acc") || contains(key, "pass@") ||
      contains(key, "maj@"))
    return "Accuracy and evaluation";
  if (contains(key, "kl")) return "KL";
  if (contains(key, "entropy")) return "Entropy";
  if (contains(key, "len")) return "Completion length";
  if (contains(key, "clip")) return "Clip ratios";
  if (contains(key, "loss")) return "Loss";
  return "Other";
}

MetricsLog parse_metrics_jsonl(std::string_view text, const std::string& name) {
  MetricsLog log;
  std::map<std::string, std::map<int64_t, double>> series;
  size_t pos = 0;
  int64_t line_no = 0;
  while (pos <= text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) {
      if (end == text.size()) break;
      continue;
    }
    ++log.lines;
    const nlohmann::json j = parse_json_or_discarded(line);
    if (j.is_discarded()) {
      log.warnings.push_back(fmt::format("{}:{}: not valid JSON, line skipped", name, line_no));
      continue;
    }
    if (!j.is_object()) {
      log.warnings.push_back(fmt::format("{}:{}: not a JSON object, line skipped", name, line_no));
      continue;
    }
    auto st = j.find("step");
    if (st == j.end() || !st->is_number_integer()) {
      log.warnings.push_back(
          fmt::format("{}:{}: no integer \"step\", line skipped", name, line_no));
      continue;
    }
    const int64_t step = st->get<int64_t>();
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (it.key() == "step") continue;
      if (it->is_number()) {
        series[it.key()][step] = it->get<double>();
      } else if (it->is_null()) {
        series[it.key()][step] = kReportNaN;
      } else {
        log.warnings.push_back(
            fmt::format("{}:{}: \"{}\" is not a number, value skipped", name, line_no, it.key()));
      }
    }
    if (end == text.size()) break;
  }
  for (auto& [key, pts] : series) log.series[key].assign(pts.begin(), pts.end());
  return log;
}

StatusOr<MetricsLog> read_metrics_jsonl(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return NotFound("{}: no such file", path);
  ASSIGN_OR_RETURN(std::string text, read_file(path));
  return parse_metrics_jsonl(text, path);
}

namespace {

bool is_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

bool is_eval_json(const fs::path& p) {
  const std::string name = p.filename().string();
  return name.starts_with("eval") && name.ends_with(".json") && is_file(p);
}

// The files of `dir` whose names `pred` accepts, sorted.
std::vector<fs::path> files_in(const fs::path& dir, bool (*pred)(const fs::path&)) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec))
    if (pred(entry.path())) out.push_back(entry.path());
  std::sort(out.begin(), out.end());
  return out;
}

bool has_run_files(const fs::path& dir) {
  return is_file(dir / "metrics.jsonl") || !files_in(dir, is_eval_json).empty();
}

// The evaluation reports in `dir`; a stage evaluated twice keeps its first report.
void read_evals(const fs::path& dir, RunData* run) {
  for (const fs::path& p : files_in(dir, is_eval_json)) {
    StatusOr<std::string> text = read_file(p.string());
    if (!text.ok()) {
      run->warnings.push_back(text.status().to_string());
      continue;
    }
    nlohmann::json j = parse_json_or_discarded(*text);
    if (j.is_discarded() || !j.is_object()) {
      run->warnings.push_back(fmt::format("{}: not a JSON object, skipped", p.string()));
      continue;
    }
    std::string stage = p.stem().string();
    stage = stage.starts_with("eval_") ? stage.substr(5) : stage;
    if (j.contains("name") && j["name"].is_string()) stage = j["name"].get<std::string>();
    const bool seen = std::any_of(run->evals.begin(), run->evals.end(),
                                  [&](const NamedEval& e) { return e.stage == stage; });
    if (seen) {
      run->warnings.push_back(
          fmt::format("{}: a second evaluation of '{}', skipped", p.string(), stage));
      continue;
    }
    run->evals.push_back({p.filename().string(), stage, std::move(j)});
  }
}

// Reads a JSONL file's objects; bad lines become warnings "path:line: why".
std::vector<nlohmann::json> read_jsonl_objects(const fs::path& p, RunData* run) {
  std::vector<nlohmann::json> out;
  StatusOr<std::string> text = read_file(p.string());
  if (!text.ok()) {
    run->warnings.push_back(text.status().to_string());
    return out;
  }
  size_t pos = 0;
  for (int64_t line_no = 1; pos < text->size(); ++line_no) {
    size_t end = text->find('\n', pos);
    if (end == std::string::npos) end = text->size();
    const std::string_view line(text->data() + pos, end - pos);
    pos = end + 1;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    nlohmann::json j = parse_json_or_discarded(line);
    if (j.is_object())
      out.push_back(std::move(j));
    else
      run->warnings.push_back(
          fmt::format("{}:{}: not a JSON object, line skipped", p.string(), line_no));
  }
  return out;
}

// A member of a JSON object; null when it is missing.
const nlohmann::json& member(const nlohmann::json& j, const char* key) {
  static const nlohmann::json kNull;
  auto it = j.find(key);
  return it == j.end() ? kNull : *it;
}

// A string member; "" when missing or not a string.
std::string text_member(const nlohmann::json& j, const char* key) {
  const nlohmann::json& v = member(j, key);
  return v.is_string() ? v.get<std::string>() : "";
}

std::string json_text(const nlohmann::json& j) {
  if (j.is_string()) return j.get<std::string>();
  if (j.is_number_float()) return fmt::format("{:.4g}", j.get<double>());
  return j.dump();
}

// The expected answer in a problem's metadata: its "answer", else the metadata itself
// when short.
std::string gold_answer(const nlohmann::json& metadata) {
  if (!metadata.is_object()) return "";
  for (const char* key : {"answer", "gold", "target", "solution"})
    if (metadata.contains(key) && !metadata[key].is_null()) return json_text(metadata[key]);
  const std::string all = metadata.dump();
  return all.size() <= 120 ? all : "";
}

// One evaluation-record sample (eval.h's SampleRecord as JSON) as a shown completion.
ShownCompletion record_completion(const std::string& label, const nlohmann::json& s) {
  ShownCompletion c;
  c.label = label;
  c.text = text_member(s, "text");
  std::vector<std::string> facts;
  if (member(s, "correct").is_boolean()) {
    c.correct = member(s, "correct").get<bool>() ? 1 : 0;
    facts.push_back(c.correct == 1 ? "correct" : "wrong");
  }
  const std::string answer = text_member(s, "answer");
  facts.push_back(answer.empty() ? "no answer" : "answer " + answer);
  if (member(s, "length").is_number()) facts.push_back(json_text(s["length"]) + " tokens");
  const std::string finish = text_member(s, "finish_reason");
  if (!finish.empty() && finish != "stop") facts.push_back("finished: " + finish);
  c.facts = fmt::format("{}", fmt::join(facts, " · "));
  return c;
}

// Problems from eval_<stage>.records.jsonl: per problem its question and each model's
// greedy completion and first sample; problems with right and wrong completions first.
void read_eval_records(const std::vector<fs::path>& dirs, const ReportOptions& o, RunData* run) {
  struct Problem {
    std::string question, gold;
    std::vector<ShownCompletion> shown;
    std::set<int> verdicts;
  };
  std::map<int64_t, Problem> problems;
  for (const NamedEval& e : run->evals) {
    const std::string file = fs::path(e.name).stem().string() + ".records.jsonl";
    for (const fs::path& dir : dirs) {
      if (!is_file(dir / file)) continue;
      int64_t position = 0;
      for (const nlohmann::json& rec : read_jsonl_objects(dir / file, run)) {
        const nlohmann::json& index = member(rec, "index");
        Problem& p = problems[index.is_number_integer() ? index.get<int64_t>() : position];
        ++position;
        p.question = text_member(rec, "question");
        p.gold = gold_answer(member(rec, "metadata"));
        const std::string who = stage_label(e.stage);
        if (rec.contains("greedy") && rec["greedy"].is_object())
          p.shown.push_back(record_completion(who + ", greedy", rec["greedy"]));
        const nlohmann::json& samples = member(rec, "samples");
        if (samples.is_array() && !samples.empty() && samples[0].is_object())
          p.shown.push_back(
              record_completion(fmt::format("{}, sample 1 of {}{}", who, samples.size(),
                                            member(rec, "num_correct").is_number()
                                                ? " (" + json_text(rec["num_correct"]) + " correct)"
                                                : std::string()),
                                samples[0]));
      }
      break;
    }
  }
  std::vector<std::pair<int64_t, Problem*>> order;
  for (auto& [i, p] : problems) {
    for (const ShownCompletion& c : p.shown) p.verdicts.insert(c.correct);
    order.emplace_back(i, &p);
  }
  std::stable_sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
    return a.second->verdicts.size() > b.second->verdicts.size();
  });
  for (size_t k = 0; k < order.size() && static_cast<int64_t>(k) < o.max_problems; ++k)
    run->samples.push_back({fmt::format("held-out problem {}", order[k].first),
                            order[k].second->question, order[k].second->gold,
                            std::move(order[k].second->shown)});
}

// A samples.jsonl line as a shown completion. The line (GRPO's grpo.log_samples,
// docs/grpo-training.md): step, problem, sample, prompt, completion, answer (the
// expected one), reward, rewards {component: score}, finish_reason, length; other
// scalars are shown as they are. Right or wrong: its "correct", else an "accuracy" score
// (top level or among the rewards) >= 1, else unknown.
ShownCompletion logged_completion(const nlohmann::json& j, int64_t index) {
  static const std::set<std::string> kShownApart = {
      "step",     "problem",  "sample", "prompt",        "question", "completion", "text",
      "response", "metadata", "answer", "finish_reason", "length",   "correct"};
  ShownCompletion c;
  const nlohmann::json& sample = member(j, "sample");
  c.label =
      fmt::format("sample {}", sample.is_number_integer() ? sample.get<int64_t>() + 1 : index + 1);
  for (const char* key : {"completion", "text", "response"})
    if (member(j, key).is_string()) {
      c.text = j[key].get<std::string>();
      break;
    }
  const nlohmann::json& rewards = member(j, "rewards");
  const nlohmann::json& accuracy = member(j, "accuracy").is_number() || !rewards.is_object()
                                       ? member(j, "accuracy")
                                       : member(rewards, "accuracy");
  if (member(j, "correct").is_boolean())
    c.correct = j["correct"].get<bool>() ? 1 : 0;
  else if (accuracy.is_number())
    c.correct = accuracy.get<double>() >= 1.0 ? 1 : 0;
  std::vector<std::string> facts;
  for (auto it = j.begin(); it != j.end(); ++it)
    if (!kShownApart.contains(it.key()) && !it->is_structured())
      facts.push_back(it.key() + " " + json_text(*it));
  if (rewards.is_object())
    for (auto it = rewards.begin(); it != rewards.end(); ++it)
      facts.push_back(it.key() + " " + (it->is_null() ? "cannot judge" : json_text(*it)));
  if (member(j, "length").is_number()) facts.push_back(json_text(j["length"]) + " tokens");
  const std::string finish = text_member(j, "finish_reason");
  if (!finish.empty() && finish != "stop") facts.push_back("finished: " + finish);
  c.facts = fmt::format("{}", fmt::join(facts, " · "));
  return c;
}

// The expected answer of a samples.jsonl line: its "answer", else its metadata's.
std::string logged_gold(const nlohmann::json& j) {
  const nlohmann::json& answer = member(j, "answer");
  return answer.is_null() ? gold_answer(member(j, "metadata")) : json_text(answer);
}

void read_logged_samples(const fs::path& path, const std::string& stage, const ReportOptions& o,
                         RunData* run) {
  const std::vector<nlohmann::json> lines = read_jsonl_objects(path, run);
  if (lines.empty()) return;
  auto step_of = [](const nlohmann::json& j) {
    const nlohmann::json& s = member(j, "step");
    return s.is_number_integer() ? s.get<int64_t>() : int64_t{-1};
  };
  std::set<int64_t> steps;
  for (const auto& j : lines) steps.insert(step_of(j));
  std::set<int64_t> shown_steps = {*steps.begin(), *steps.rbegin()};
  for (int64_t step : shown_steps) {
    int64_t taken = 0;
    for (const auto& j : lines) {
      if (step_of(j) != step || taken >= o.max_samples) continue;
      const std::string prompt =
          j.contains("prompt") ? text_member(j, "prompt") : text_member(j, "question");
      if (run->samples.empty() || run->samples.back().prompt != prompt ||
          run->samples.back().title.find("step " + std::to_string(step)) == std::string::npos) {
        const std::string who = stage.empty() ? "training" : stage_label(stage) + " training";
        run->samples.push_back({fmt::format("{}, step {}", who, step), prompt, logged_gold(j), {}});
      }
      run->samples.back().completions.push_back(logged_completion(j, taken++));
    }
  }
}

}  // namespace

StatusOr<RunData> read_run(const std::string& run_dir, const ReportOptions& options) {
  std::error_code ec;
  const fs::path root(run_dir);
  if (!fs::is_directory(root, ec))
    return NotFound(
        "{}: not a directory (want a run directory, with metrics.jsonl or "
        "eval*.json, or a pipeline's stage folders sft/, grpo/ ...)",
        run_dir);
  RunData run;
  run.dir = run_dir;
  // The folders read: the run's own, and a pipeline's stage folders.
  std::vector<std::pair<std::string, fs::path>> dirs = {{"", root}};
  if (!is_file(root / "metrics.jsonl"))
    for (const char* stage : kPipelineStages)
      if (has_run_files(root / stage)) dirs.emplace_back(stage, root / stage);
  run.pipeline = dirs.size() > 1;
  std::vector<fs::path> all_dirs;
  for (const auto& [stage, dir] : dirs) {
    all_dirs.push_back(dir);
    const fs::path metrics = dir / "metrics.jsonl";
    if (is_file(metrics)) {
      ASSIGN_OR_RETURN(MetricsLog log, read_metrics_jsonl(metrics.string()));
      run.warnings.insert(run.warnings.end(), log.warnings.begin(), log.warnings.end());
      run.stages.push_back({stage, metrics.string(), std::move(log)});
    }
    read_evals(dir, &run);
  }
  if (run.stages.empty() && run.evals.empty())
    return NotFound(
        "{}: nothing to report on: no metrics.jsonl or eval*.json here, nor in a pipeline "
        "stage folder (pretrain/, sft/, grpo/, control/)",
        run_dir);
  sort_by_stage(&run.evals);
  read_eval_records(all_dirs, options, &run);
  for (const auto& [stage, dir] : dirs)
    if (is_file(dir / "samples.jsonl"))
      read_logged_samples(dir / "samples.jsonl", stage.empty() ? "grpo" : stage, options, &run);
  if (is_file(root / "timing.json")) {
    StatusOr<std::string> text = read_file((root / "timing.json").string());
    nlohmann::json t = text.ok() ? parse_json_or_discarded(*text) : nlohmann::json();
    if (t.is_object())
      run.timing = std::move(t);
    else
      run.warnings.push_back((root / "timing.json").string() + ": not a JSON object, ignored");
  }
  return run;
}

StatusOr<std::string> write_report(const std::string& run_dir, const std::string& out_path,
                                   std::vector<std::string>* warnings,
                                   const ReportOptions& options) {
  ASSIGN_OR_RETURN(RunData run, read_run(run_dir, options));
  const std::string out =
      out_path.empty() ? (fs::path(run_dir) / "report.html").string() : out_path;
  RETURN_IF_ERROR(write_file_atomic(out, render_report_html(run, options)));
  if (warnings) *warnings = run.warnings;
  return out;
}

std::string html_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

}  // namespace r1kit::eval
