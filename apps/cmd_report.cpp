// `r1kit report RUN_DIR`: writes RUN_DIR/report.html, a self-contained page with SVG
// plots of every metric in RUN_DIR/metrics.jsonl, an expert-load heat map, a summary
// table and the run's evaluation reports (RUN_DIR/eval*.json). See eval/report.h for the
// metric naming the page groups by. Corrupt lines are reported as file:line warnings.
#include <cstdio>

#include "apps/commands.h"
#include "eval/report.h"

namespace r1kit::apps {
namespace {

struct ReportFlags {
  std::string run_dir;
  std::string out;
};

Status run_report(const ReportFlags& f) {
  std::vector<std::string> warnings;
  ASSIGN_OR_RETURN(std::string path, eval::write_report(f.run_dir, f.out, &warnings));
  for (const std::string& w : warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
  std::printf("wrote %s\n", path.c_str());
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
  cmd->callback([=] { *exit_code = report(run_report(f)); });
}

}  // namespace r1kit::apps
