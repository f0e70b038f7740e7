// `r1kit sft RECIPE [key.sub=value ...]`: supervised fine-tuning (cold start).
#include "apps/recipe_command.h"
#include "sft/sft.h"

namespace r1kit::apps {

void add_sft_command(CLI::App& root, int* exit_code) {
  add_recipe_command<sft::SftRecipe>(
      root, exit_code,
      {"sft",
       "Supervised fine-tuning on prompt/response examples (a JSONL file or a generated "
       "task's step-by-step traces), loss on response tokens only, optional packing. "
       "Overrides such as train.steps=50 follow the recipe path.",
       "recipes/sft-tiny.yaml"},
      [](const sft::SftRecipe& r) { return sft::run_sft(r); },
      [](const sft::SftResult& res) { print_training_summary(res); });
}

}  // namespace r1kit::apps
