// `r1kit report RUN_DIR`: writes RUN_DIR/report.html, a self-contained page of a run or a
// pipeline directory (eval/report.h, docs/eval.md): the headline evaluation numbers per
// stage, the evaluation table, sample completions, and per stage SVG plots of its
// metrics.jsonl. Corrupt lines are reported as file:line warnings. --svg-dir also writes
// chosen metrics as standalone SVG files (for a README or a paper).
#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "apps/commands.h"
#include "core/atomic_file.h"
#include "eval/report.h"

namespace r1kit::apps {
namespace {

struct ReportFlags {
  std::string run_dir;
  std::string out;
  std::string svg_dir;
  std::vector<std::string> svg_metrics = {"reward", "accuracy", "entropy",
                                          "completions/mean_length"};
  double smoothing = eval::ReportOptions{}.smoothing;
};

// The series `name` names: "STAGE/metric" (sft/loss) in a pipeline's stage, else the
// first stage, in pipeline order, that logged `name`.
const eval::Points* find_series(const eval::RunData& run, const std::string& name) {
  for (const eval::StageLog& s : run.stages) {
    const std::string prefix = s.stage + "/";
    if (!s.stage.empty() && name.starts_with(prefix)) {
      auto it = s.metrics.series.find(name.substr(prefix.size()));
      if (it != s.metrics.series.end()) return &it->second;
    }
  }
  for (const eval::StageLog& s : run.stages) {
    auto it = s.metrics.series.find(name);
    if (it != s.metrics.series.end()) return &it->second;
  }
  return nullptr;
}

// DIR/<metric, '/' -> '_'>.svg for each chosen metric of the run; "a+b+c" is one file of
// the three stacked over one step axis.
Status write_svgs(const ReportFlags& f) {
  ASSIGN_OR_RETURN(eval::RunData run, eval::read_run(f.run_dir));
  std::error_code ec;
  std::filesystem::create_directories(f.svg_dir, ec);
  if (ec) return Internal("create {}: {}", f.svg_dir, ec.message());
  for (const std::string& entry : f.svg_metrics) {
    std::vector<std::pair<std::string, const eval::Points*>> panels;
    for (size_t at = 0; at <= entry.size();) {
      const size_t plus = std::min(entry.find('+', at), entry.size());
      const std::string name = entry.substr(at, plus - at);
      const eval::Points* pts = find_series(run, name);
      if (pts == nullptr)
        return NotFound("--svg-metrics: '{}' is not in the metrics.jsonl of {}", name, f.run_dir);
      panels.emplace_back(name, pts);
      at = plus + 1;
    }
    std::string file = entry;
    std::replace(file.begin(), file.end(), '/', '_');
    const std::string path = f.svg_dir + "/" + file + ".svg";
    RETURN_IF_ERROR(write_file_atomic(
        path, panels.size() == 1 ? eval::metric_svg(entry, *panels[0].second, f.smoothing)
                                 : eval::stacked_metric_svg(panels, f.smoothing)));
    std::printf("wrote %s\n", path.c_str());
  }
  return OkStatus();
}

Status run_report(const ReportFlags& f) {
  std::vector<std::string> warnings;
  eval::ReportOptions o;
  o.smoothing = f.smoothing;
  ASSIGN_OR_RETURN(std::string path, eval::write_report(f.run_dir, f.out, &warnings, o));
  for (const std::string& w : warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
  std::printf("wrote %s\n", path.c_str());
  if (!f.svg_dir.empty()) RETURN_IF_ERROR(write_svgs(f));
  return OkStatus();
}

}  // namespace

void add_report_command(CLI::App& root, int* exit_code) {
  auto* cmd = root.add_subcommand(
      "report",
      "Write RUN_DIR/report.html for a run or an `r1kit run` pipeline directory: the "
      "evaluations per stage (headline and full table), sample completions, and SVG plots "
      "of each stage's metrics.jsonl");
  static ReportFlags f;
  cmd->add_option("RUN_DIR", f.run_dir,
                  "run directory (metrics.jsonl, eval*.json) or pipeline directory (sft/, "
                  "grpo/, ...)")
      ->required();
  cmd->add_option("--out", f.out, "output file (default: RUN_DIR/report.html)");
  cmd->add_option("--svg-dir", f.svg_dir,
                  "also write each of --svg-metrics as a standalone SVG file in this folder");
  cmd->add_option("--svg-metrics", f.svg_metrics,
                  "metrics for --svg-dir (comma-separated; STAGE/metric picks a pipeline "
                  "stage's, e.g. sft/loss; a+b+c stacks several in one file over one step "
                  "axis)")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--smoothing", f.smoothing,
                  "EMA weight of the smoothed line drawn over the faint raw one, as "
                  "TensorBoard's smoothing slider (0: raw only)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 0.999));
  cmd->callback([=] { *exit_code = report(run_report(f)); });
}

}  // namespace r1kit::apps
