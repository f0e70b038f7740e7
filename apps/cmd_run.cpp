// `r1kit run RECIPE [key.sub=value ...]`: the whole pipeline (pipeline/run.h): SFT cold
// start, GRPO, held-out evaluation, report. Stages whose output exists are skipped when
// made from the same recipe (pipeline::finished_stage_reuse).
#include "apps/recipe_command.h"
#include "pipeline/run.h"

namespace r1kit::apps {

void add_run_command(CLI::App& root, int* exit_code) {
  add_recipe_command<pipeline::RunRecipe>(
      root, exit_code,
      {"run",
       "The whole R1 pipeline of a recipe: SFT cold start on the task's traces, GRPO, "
       "held-out evaluation of both models, HTML report. Stages whose output exists and was "
       "made from the same recipe are skipped, so rerunning continues an interrupted run (a "
       "changed key is refused by name; a raised step count continues that stage). "
       "`r1kit grpo`'s spellings work too: grpo.steps=N, rollout.group_size=G.",
       "recipes/r1-tiny.yaml", pipeline::expand_grpo_spellings},
      [](const pipeline::RunRecipe& r) { return pipeline::run_pipeline(r, grpo_rollout_source); },
      [](const pipeline::RunResult& res) {
        std::string ran, skipped;
        for (const auto& s : res.ran) ran += " " + s;
        for (const auto& s : res.skipped) skipped += " " + s;
        if (!res.stopped_in.empty()) {
          std::printf("stopped in stage %s: ran [%s ] skipped [%s ]; run the same command "
                      "again to resume\n",
                      res.stopped_in.c_str(), ran.c_str(), skipped.c_str());
          return;
        }
        std::printf("done: ran [%s ] skipped [%s ]%s%s\n", ran.c_str(), skipped.c_str(),
                    res.report_path.empty() ? "" : "; report ", res.report_path.c_str());
      });
}

}  // namespace r1kit::apps
