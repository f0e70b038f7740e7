// `r1kit pretrain RECIPE [key.sub=value ...]`: causal-LM training on a generated corpus.
#include "apps/recipe_command.h"
#include "sft/pretrain.h"

namespace r1kit::apps {

void add_pretrain_command(CLI::App& root, int* exit_code) {
  add_recipe_command<sft::PretrainRecipe>(
      root, exit_code,
      {"pretrain",
       "Train a policy with next-token cross-entropy on a generated task corpus (corpus, "
       "tokenizer, training, checkpoints, all in the recipe's run directory). Overrides "
       "such as train.steps=50 follow the recipe path.",
       "recipes/pretrain-tiny.yaml"},
      [](const sft::PretrainRecipe& r) { return sft::run_pretrain(r); },
      [](const sft::PretrainResult& res) { print_training_summary(res); });
}

}  // namespace r1kit::apps
