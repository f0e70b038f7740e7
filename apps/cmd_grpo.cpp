// `r1kit grpo RECIPE [key.sub=value ...]`: GRPO training (grpo/trainer.h), with rollouts
// from the in-process engine or, when rollout.workers lists addresses, from gRPC
// rollout workers (`r1kit rollout-worker`).
#include <cstdio>

#include "apps/commands.h"
#include "core/config.h"
#include "grpo/trainer.h"
#include "rollout/grpc/grpc_source.h"
#include "rollout/grpc/worker.h"

namespace r1kit::apps {

StatusOr<std::unique_ptr<rollout::RolloutSource>> grpo_rollout_source(const grpo::GrpoRecipe& r,
                                                                      policy::TransformerImpl&) {
  if (r.rollout.workers.empty()) return std::unique_ptr<rollout::RolloutSource>();
  rollout::GrpcSourceOptions o;
  o.workers = r.rollout.workers;
  if (!r.rollout.token_file.empty()) {
    ASSIGN_OR_RETURN(o.token, rollout::read_token_file(r.rollout.token_file));
  }
  return rollout::make_grpc_rollout_source(o);
}

namespace {

Status run_grpo_command(const std::string& path, const std::vector<std::string>& overrides,
                        bool print_only) {
  ASSIGN_OR_RETURN(grpo::GrpoRecipe recipe, load_config_file<grpo::GrpoRecipe>(path, overrides));
  std::printf("# resolved recipe (%s)\n%s\n", path.c_str(), dump_config(recipe).c_str());
  if (print_only) return OkStatus();
  ASSIGN_OR_RETURN(grpo::GrpoResult res, grpo::run_grpo(recipe, grpo_rollout_source));
  if (!res.finished) {
    std::printf("stopped after %lld steps; run the same command again to resume\n",
                static_cast<long long>(res.steps_run));
    return OkStatus();
  }
  std::printf("done: %lld steps, mean reward %.4f -> %.4f; model in %s\n",
              static_cast<long long>(res.steps_run), res.first_reward, res.last_reward,
              res.final_dir.c_str());
  return OkStatus();
}

}  // namespace

void add_grpo_command(CLI::App& root, int* exit_code) {
  auto* cmd = root.add_subcommand(
      "grpo",
      "GRPO reinforcement learning: sample groups of completions per prompt, score them with "
      "the recipe's rewards, and push each by its advantage over its group. Rollouts come "
      "from the in-process engine, or from the gRPC workers in rollout.workers. Overrides "
      "such as grpo.steps=10 follow the recipe path.");
  static std::string recipe;
  static std::vector<std::string> overrides;
  static bool print_only = false;
  cmd->add_option("recipe", recipe, "YAML recipe, e.g. recipes/grpo-tiny.yaml")->required();
  cmd->add_option("overrides", overrides, "key.sub=value overrides of the recipe");
  cmd->add_flag("--print-recipe", print_only, "print the resolved recipe and exit");
  cmd->callback([=] { *exit_code = report(run_grpo_command(recipe, overrides, print_only)); });
}

}  // namespace r1kit::apps
