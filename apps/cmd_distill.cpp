// `r1kit distill RECIPE [key.sub=value ...]`: teacher traces by rejection sampling, then
// a student trained on them by SFT (optionally with logit distillation). See
// docs/distill.md.
#include <cstdio>

#include "apps/commands.h"
#include "core/config.h"
#include "sft/distill.h"

namespace r1kit::apps {

namespace {
Status run_distill_command(const std::string& path, const std::vector<std::string>& overrides,
                           bool print_only) {
  ASSIGN_OR_RETURN(sft::DistillRecipe recipe,
                   load_config_file<sft::DistillRecipe>(path, overrides));
  std::printf("# resolved recipe (%s)\n%s\n", path.c_str(), dump_config(recipe).c_str());
  if (print_only) return OkStatus();
  ASSIGN_OR_RETURN(sft::DistillResult res, sft::run_distill(recipe));
  const auto& t = res.traces;
  std::printf("traces: %s (%s): %lld kept from %lld prompts, acceptance %.1f%% (%lld/%lld)\n",
              res.traces_path.c_str(), res.sampled ? "sampled" : "reused",
              static_cast<long long>(t.kept), static_cast<long long>(t.prompts),
              100.0 * t.acceptance(), static_cast<long long>(t.passed),
              static_cast<long long>(t.completions));
  const auto& s = res.student;
  if (!s.finished) {
    std::printf("student: stopped after %lld steps; run the same command again to resume\n",
                static_cast<long long>(s.steps_run));
  } else if (s.steps_run == 0) {
    std::printf("student: already trained; model in %s\n", s.final_dir.c_str());
  } else {
    std::printf("student: %lld steps, loss %.4f -> %.4f, held-out loss %.4f; model in %s\n",
                static_cast<long long>(s.steps_run), s.first_loss, s.final_loss, s.eval_loss,
                s.final_dir.c_str());
  }
  return OkStatus();
}
}  // namespace

void add_distill_command(CLI::App& root, int* exit_code) {
  auto* cmd = root.add_subcommand(
      "distill",
      "Distillation: the teacher samples K completions per task problem, the recipe's "
      "rewards keep the right and well-formed ones (at most M per problem) in a JSONL trace "
      "file, and a student is trained on them by SFT, optionally mixed with top-k logit "
      "distillation (kd.alpha). Stages whose output exists are skipped, so rerunning "
      "continues. Overrides such as sample.n_prompts=64 follow the recipe path.");
  static std::string recipe;
  static std::vector<std::string> overrides;
  static bool print_only = false;
  cmd->add_option("recipe", recipe, "YAML recipe, e.g. recipes/distill-tiny.yaml")->required();
  cmd->add_option("overrides", overrides, "key.sub=value overrides of the recipe");
  cmd->add_flag("--print-recipe", print_only, "print the resolved recipe and exit");
  cmd->callback([=] { *exit_code = report(run_distill_command(recipe, overrides, print_only)); });
}

}  // namespace r1kit::apps
