// `r1kit report RUN_DIR`: writes RUN_DIR/report.html, a self-contained page with SVG
// plots of every metric in RUN_DIR/metrics.jsonl, an expert-load heat map, a summary
// table and the run's evaluation reports (RUN_DIR/eval*.json). See eval/report.h for the
// metric naming the page groups by. Corrupt lines are reported as file:line warnings.
// --svg-dir also writes chosen metrics as standalone SVG files (for a README or a paper).
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
  int64_t smooth = 10;
};

// DIR/<metric, '/' -> '_'>.svg for each metric of the run's metrics.jsonl.
Status write_svgs(const ReportFlags& f) {
  ASSIGN_OR_RETURN(eval::MetricsLog m, eval::read_metrics_jsonl(f.run_dir + "/metrics.jsonl"));
  std::error_code ec;
  std::filesystem::create_directories(f.svg_dir, ec);
  if (ec) return Internal("create {}: {}", f.svg_dir, ec.message());
  for (const std::string& name : f.svg_metrics) {
    auto it = m.series.find(name);
    if (it == m.series.end())
      return NotFound("--svg-metrics: '{}' is not in {}/metrics.jsonl", name, f.run_dir);
    std::string file = name;
    std::replace(file.begin(), file.end(), '/', '_');
    const std::string path = f.svg_dir + "/" + file + ".svg";
    RETURN_IF_ERROR(write_file_atomic(path, eval::metric_svg(name, it->second, f.smooth)));
    std::printf("wrote %s\n", path.c_str());
  }
  return OkStatus();
}

Status run_report(const ReportFlags& f) {
  std::vector<std::string> warnings;
  ASSIGN_OR_RETURN(std::string path, eval::write_report(f.run_dir, f.out, &warnings));
  for (const std::string& w : warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
  std::printf("wrote %s\n", path.c_str());
  if (!f.svg_dir.empty()) RETURN_IF_ERROR(write_svgs(f));
  return OkStatus();
}

}  // namespace

void add_report_command(CLI::App& root, int* exit_code) {
  auto* cmd = root.add_subcommand(
      "report",
      "Write RUN_DIR/report.html: SVG plots of RUN_DIR/metrics.jsonl over steps, an "
      "expert-load heat map, a summary table and the RUN_DIR/eval*.json reports");
  static ReportFlags f;
  cmd->add_option("RUN_DIR", f.run_dir, "run directory (with metrics.jsonl)")->required();
  cmd->add_option("--out", f.out, "output file (default: RUN_DIR/report.html)");
  cmd->add_option("--svg-dir", f.svg_dir,
                  "also write each of --svg-metrics as a standalone SVG file in this folder");
  cmd->add_option("--svg-metrics", f.svg_metrics, "metrics for --svg-dir (comma-separated)")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--smooth", f.smooth,
                  "--svg-dir plots: moving average over this many steps over the faint raw "
                  "series (0 or 1: raw only)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->callback([=] { *exit_code = report(run_report(f)); });
}

}  // namespace r1kit::apps
