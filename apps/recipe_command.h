// The recipe commands (`r1kit pretrain|sft|distill|grpo|run RECIPE [key.sub=value ...]`)
// share one body: load the recipe with the overrides, print the resolved recipe, stop
// there with --print-recipe, else run it and print a summary of the result.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "apps/commands.h"
#include "core/config.h"

namespace r1kit::apps {

// A recipe command's subcommand name, --help text and example recipe path, and the
// spellings of other commands' keys it accepts among its overrides.
struct RecipeCommand {
  const char* name;
  const char* description;
  const char* example;  // e.g. "recipes/sft-tiny.yaml"
  // Rewrites the command line's overrides before they apply (nullptr: as given).
  std::vector<std::string> (*aliases)(const std::vector<std::string>&) = nullptr;
};

// "<prefix>stopped after N steps; run the same command again to resume".
inline void print_stopped(int64_t steps_run, const char* prefix = "") {
  std::printf("%sstopped after %lld steps; run the same command again to resume\n", prefix,
              static_cast<long long>(steps_run));
}

// "<prefix>N steps, loss A -> B, held-out loss C; model in DIR" of a language-model
// training result (sft::SftResult, sft::PretrainResult).
template <class Result>
void print_loss_line(const Result& res, const char* prefix) {
  std::printf("%s%lld steps, loss %.4f -> %.4f, held-out loss %.4f; model in %s\n", prefix,
              static_cast<long long>(res.steps_run), res.first_loss, res.final_loss, res.eval_loss,
              res.final_dir.c_str());
}

// The summary of `r1kit pretrain` and `r1kit sft`.
template <class Result>
void print_training_summary(const Result& res) {
  if (!res.finished) {
    print_stopped(res.steps_run);
  } else {
    print_loss_line(res, "done: ");
  }
}

// Registers `c` on `root`: `recipe` (required), `overrides`, --print-recipe. Its callback
// loads the Recipe, prints it, then (without --print-recipe) prints `summary(run(recipe))`.
// run: StatusOr<Result>(const Recipe&); summary: void(const Result&).
template <class Recipe, class Run, class Summary>
void add_recipe_command(CLI::App& root, int* exit_code, const RecipeCommand& c, Run run,
                        Summary summary) {
  struct Args {
    std::string recipe;
    std::vector<std::string> overrides;
    bool print_only = false;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = root.add_subcommand(c.name, c.description);
  cmd->add_option("recipe", args->recipe, std::string("YAML recipe, e.g. ") + c.example)
      ->required();
  cmd->add_option("overrides", args->overrides, "key.sub=value overrides of the recipe");
  cmd->add_flag("--print-recipe", args->print_only, "print the resolved recipe and exit");
  cmd->callback([args, exit_code, run, summary, aliases = c.aliases] {
    *exit_code = report([&]() -> Status {
      ASSIGN_OR_RETURN(Recipe recipe,
                       load_config_file<Recipe>(
                           args->recipe, aliases ? aliases(args->overrides) : args->overrides));
      std::printf("# resolved recipe (%s)\n%s\n", args->recipe.c_str(),
                  dump_config(recipe).c_str());
      if (args->print_only) return OkStatus();
      auto result = run(recipe);
      if (!result.ok()) return result.status();
      summary(*result);
      return OkStatus();
    }());
  });
}

}  // namespace r1kit::apps
