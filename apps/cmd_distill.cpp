// `r1kit distill RECIPE [key.sub=value ...]`: teacher traces by rejection sampling, then
// a student trained on them by SFT (optionally with logit distillation). See
// docs/distill.md.
#include "apps/commands.h"
#include "apps/recipe_command.h"
#include "core/tls_files.h"
#include "sft/distill.h"

namespace r1kit::apps {
namespace {

// teacher.workers: the gRPC pool serving the teacher (traces, or on-policy scoring);
// otherwise the in-process teacher (sft::make_teacher_source's default).
StatusOr<std::unique_ptr<rollout::RolloutSource>> distill_teacher_source(
    const sft::DistillRecipe& r) {
  if (r.teacher.workers.empty()) return sft::make_teacher_source(r, {});
  return grpc_worker_pool(r.teacher.workers, r.teacher.token_file, r.teacher.tls, "teacher.tls");
}

void print_distill_summary(const sft::DistillResult& res) {
  const auto& s = res.student;
  if (!res.on_policy) {
    const auto& t = res.traces;
    std::printf("traces: %s (%s): %lld kept from %lld prompts, acceptance %.1f%% (%lld/%lld)\n",
                res.traces_path.c_str(), res.sampled ? "sampled" : "reused",
                static_cast<long long>(t.kept), static_cast<long long>(t.prompts),
                100.0 * t.acceptance(), static_cast<long long>(t.passed),
                static_cast<long long>(t.completions));
  }
  if (!s.finished) {
    print_stopped(s.steps_run, "student: ");
  } else if (s.steps_run == 0) {
    std::printf("student: already trained; model in %s\n", s.final_dir.c_str());
  } else if (res.on_policy) {
    std::printf(
        "student: %lld on-policy steps, reverse KL %.4f -> %.4f, held-out %.4f -> %.4f; model "
        "in %s\n",
        static_cast<long long>(s.steps_run), s.first_loss, s.final_loss, res.eval_reverse_kl_before,
        s.eval_loss, s.final_dir.c_str());
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
       "distillation (kd.alpha). With mode=on_policy the student samples instead and "
       "minimises the per-token reverse KL to the teacher's log-probs on its own samples "
       "(teacher in-process or on gRPC workers, teacher.workers). Stages whose output exists "
       "are skipped, so rerunning continues. Overrides such as sample.n_prompts=64 follow the "
       "recipe path.",
       "recipes/distill-tiny.yaml"},
      [](const sft::DistillRecipe& r) { return sft::run_distill(r, distill_teacher_source); },
      print_distill_summary);
}

}  // namespace r1kit::apps
