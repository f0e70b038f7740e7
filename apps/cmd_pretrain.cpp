// `r1kit pretrain RECIPE [key.sub=value ...]`: causal-LM training on a generated corpus.
#include <cstdio>

#include "apps/commands.h"
#include "core/config.h"
#include "sft/pretrain.h"

namespace r1kit::apps {

namespace {
Status run_pretrain_command(const std::string& path, const std::vector<std::string>& overrides,
                            bool print_only) {
  ASSIGN_OR_RETURN(sft::PretrainRecipe recipe,
                   load_config_file<sft::PretrainRecipe>(path, overrides));
  std::printf("# resolved recipe (%s)\n%s\n", path.c_str(), dump_config(recipe).c_str());
  if (print_only) return OkStatus();
  ASSIGN_OR_RETURN(sft::PretrainResult res, sft::run_pretrain(recipe));
  if (!res.finished) {
    std::printf("stopped after %lld steps; run the same command again to resume\n",
                static_cast<long long>(res.steps_run));
    return OkStatus();
  }
  std::printf("done: %lld steps, loss %.4f -> %.4f, held-out loss %.4f; model in %s\n",
              static_cast<long long>(res.steps_run), res.first_loss, res.final_loss, res.eval_loss,
              res.final_dir.c_str());
  return OkStatus();
}
}  // namespace

void add_pretrain_command(CLI::App& root, int* exit_code) {
  auto* cmd = root.add_subcommand(
      "pretrain",
      "Train a policy with next-token cross-entropy on a generated task corpus (corpus, "
      "tokenizer, training, checkpoints, all in the recipe's run directory). Overrides "
      "such as train.steps=50 follow the recipe path.");
  static std::string recipe;
  static std::vector<std::string> overrides;
  static bool print_only = false;
  cmd->add_option("recipe", recipe, "YAML recipe, e.g. recipes/pretrain-tiny.yaml")->required();
  cmd->add_option("overrides", overrides, "key.sub=value overrides of the recipe");
  cmd->add_flag("--print-recipe", print_only, "print the resolved recipe and exit");
  cmd->callback([=] { *exit_code = report(run_pretrain_command(recipe, overrides, print_only)); });
}

}  // namespace r1kit::apps
