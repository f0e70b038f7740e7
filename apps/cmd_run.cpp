// `r1kit run RECIPE [key.sub=value ...]`: the whole pipeline (pipeline/run.h): SFT cold
// start, GRPO, held-out evaluation, report. Stages whose output exists are skipped.
#include <cstdio>

#include "apps/commands.h"
#include "core/config.h"
#include "pipeline/run.h"

namespace r1kit::apps {

namespace {

Status run_pipeline_command(const std::string& path, const std::vector<std::string>& overrides,
                            bool print_only) {
  ASSIGN_OR_RETURN(pipeline::RunRecipe recipe,
                   load_config_file<pipeline::RunRecipe>(path, overrides));
  std::printf("# resolved recipe (%s)\n%s\n", path.c_str(), dump_config(recipe).c_str());
  if (print_only) return OkStatus();
  ASSIGN_OR_RETURN(pipeline::RunResult res, pipeline::run_pipeline(recipe, grpo_rollout_source));
  std::string ran, skipped;
  for (const auto& s : res.ran) ran += " " + s;
  for (const auto& s : res.skipped) skipped += " " + s;
  std::printf("done: ran [%s ] skipped [%s ]%s%s\n", ran.c_str(), skipped.c_str(),
              res.report_path.empty() ? "" : "; report ", res.report_path.c_str());
  return OkStatus();
}

}  // namespace

void add_run_command(CLI::App& root, int* exit_code) {
  auto* cmd = root.add_subcommand(
      "run",
      "The whole R1 pipeline of a recipe: SFT cold start on the task's traces, GRPO, "
      "held-out evaluation of both models, HTML report. Stages whose output exists are "
      "skipped, so rerunning continues an interrupted run.");
  static std::string recipe;
  static std::vector<std::string> overrides;
  static bool print_only = false;
  cmd->add_option("recipe", recipe, "YAML recipe, e.g. recipes/r1-tiny.yaml")->required();
  cmd->add_option("overrides", overrides, "key.sub=value overrides of the recipe");
  cmd->add_flag("--print-recipe", print_only, "print the resolved recipe and exit");
  cmd->callback([=] { *exit_code = report(run_pipeline_command(recipe, overrides, print_only)); });
}

}  // namespace r1kit::apps
