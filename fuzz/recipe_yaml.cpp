// Fuzz target: a recipe YAML file (fuzz/fuzz_target.h), bound onto every recipe struct
// the CLI loads (apps/recipe_command.h: load_config_file<Recipe>).
#include <fmt/format.h>

#include "core/config.h"
#include "fuzz/fuzz_target.h"
#include "grpo/recipe.h"
#include "pipeline/run.h"
#include "sft/distill.h"
#include "sft/pretrain.h"
#include "sft/sft.h"

namespace r1kit::fuzz {
namespace {

constexpr std::string_view kRecipeTarget = "recipe_yaml";

template <class Recipe>
Outcome load_recipe(std::string_view yaml, std::string_view kind) {
  auto recipe = load_config_string<Recipe>(yaml, {}, kind);
  if (!recipe.ok()) return classify(kRecipeTarget, recipe.status());
  // core/config.h: load_config_string(dump_config(x)) gives back x. `--print-recipe` and
  // every run's resolved recipe rely on it.
  const std::string dumped = dump_config(*recipe);
  auto again = load_config_string<Recipe>(dumped, {}, "dumped");
  if (!again.ok())
    bug(kRecipeTarget, fmt::format("{}: the dumped recipe does not load: {}\n{}", kind,
                                   again.status().message(), dumped));
  if (dump_config(*again) != dumped)
    bug(kRecipeTarget, fmt::format("{}: the dumped recipe loads to another one:\n{}", kind, dumped));
  (void)config_to_json(*recipe).dump();
  return Outcome::kAccepted;
}

}  // namespace

Outcome recipe_yaml(std::span<const uint8_t> data) {
  const std::string_view yaml = as_text(data);
  const Outcome outcomes[] = {
      load_recipe<pipeline::RunRecipe>(yaml, "run recipe"),
      load_recipe<grpo::GrpoRecipe>(yaml, "grpo recipe"),
      load_recipe<sft::SftRecipe>(yaml, "sft recipe"),
      load_recipe<sft::DistillRecipe>(yaml, "distill recipe"),
      load_recipe<sft::PretrainRecipe>(yaml, "pretrain recipe"),
  };
  for (Outcome o : outcomes)
    if (o == Outcome::kAccepted) return Outcome::kAccepted;
  return Outcome::kRejected;
}

}  // namespace r1kit::fuzz
