// `r1kit distill RECIPE [key.sub=value ...]`: teacher traces by rejection sampling, then
// a student trained on them by SFT (optionally with logit distillation). See
// docs/distill.md.
#include "apps/recipe_command.h"
#include "sft/distill.h"

namespace r1kit::apps {
namespace {

void print_distill_summary(const sft::DistillResult& res) {
  const auto& t = res.traces;
  std::printf("traces: %s (%s): %lld kept from %lld prompts, acceptance %.1f%% (%lld/%lld)\n",
              res.traces_path.c_str(), res.sampled ? "sampled" : "reused",
              static_cast<long long>(t.kept), static_cast<long long>(t.prompts),
              100.0 * t.acceptance(), static_cast<long long>(t.passed),
              static_cast<long long>(t.completions));
  const auto& s = res.student;
  if (!s.finished) {
    print_stopped(s.steps_run, "student: ");
  } else if (s.steps_run == 0) {
    std::printf("student: already trained; model in %s\n", s.final_dir.c_str());
  } else {
    print_loss_line(s, "student: ");
  }
}

}  // namespace

void add_distill_command(CLI::App& root, int* exit_code) {
  add_recipe_command<sft::DistillRecipe>(
      root, exit_code,
      {"distill",
       "Distillation: the teacher samples K completions per task problem, the recipe's "
       "rewards keep the right and well-formed ones (at most M per problem) in a JSONL trace "
       "file, and a student is trained on them by SFT, optionally mixed with top-k logit "
       "distillation (kd.alpha). Stages whose output exists are skipped, so rerunning "
       "continues. Overrides such as sample.n_prompts=64 follow the recipe path.",
       "recipes/distill-tiny.yaml"},
      [](const sft::DistillRecipe& r) { return sft::run_distill(r); }, print_distill_summary);
}

}  // namespace r1kit::apps
