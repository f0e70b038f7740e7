// The recipe commands (`r1kit pretrain|sft|distill|grpo|run RECIPE [key.sub=value ...]`)
// share one body: load the recipe with the overrides, write the resolved recipe to
// RUN/recipe.yaml (print it and stop there with --print-recipe), run it with Ctrl-C
// handling (core/stop_signal.h: a checkpoint at the next step boundary, exit status
// 128 + signal) and print a summary of the result.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "apps/commands.h"
#include "core/atomic_file.h"
#include "core/config.h"
#include "core/stop_signal.h"

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

// The run directory of a recipe: checkpoint.dir of a trainer's, run.dir of a pipeline's.
template <class Recipe>
const std::string& recipe_run_dir(const Recipe& r) {
  if constexpr (requires { r.checkpoint.dir; })
    return r.checkpoint.dir;
  else
    return r.run.dir;
}

// Writes the resolved recipe (every default filled in, with its comments) to
// RUN/recipe.yaml and prints a line pointing at it.
template <class Recipe>
Status write_resolved_recipe(const Recipe& recipe, const std::string& source) {
  const std::string dir = recipe_run_dir(recipe);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Internal("create {}: {}", dir, ec.message());
  const std::string path = dir + "/recipe.yaml";
  RETURN_IF_ERROR(write_file_atomic(
      path, "# resolved recipe (" + source + " with its overrides)\n" + dump_config(recipe)));
  std::printf("resolved recipe: %s (--print-recipe prints it)\n", path.c_str());
  std::fflush(stdout);
  return OkStatus();
}

// Registers `c` on `root`: `recipe` (required), `overrides`, --print-recipe. Its callback
// loads the Recipe and prints it (--print-recipe, then stops) or writes it to
// RUN/recipe.yaml, then prints `summary(run(recipe))`. A run stopped by SIGINT/SIGTERM
// exits with 128 + the signal's number.
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
    StopSignalScope stop_on_signal;
    *exit_code = report([&]() -> Status {
      ASSIGN_OR_RETURN(Recipe recipe,
                       load_config_file<Recipe>(
                           args->recipe, aliases ? aliases(args->overrides) : args->overrides));
      if (args->print_only) {
        std::printf("# resolved recipe (%s)\n%s\n", args->recipe.c_str(),
                    dump_config(recipe).c_str());
        return OkStatus();
      }
      RETURN_IF_ERROR(write_resolved_recipe(recipe, args->recipe));
      auto result = run(recipe);
      if (!result.ok()) return result.status();
      summary(*result);
      return OkStatus();
    }());
    if (*exit_code == 0 && stop_requested()) *exit_code = 128 + stop_signal();
  });
}

}  // namespace r1kit::apps
