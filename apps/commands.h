// The r1kit CLI's subcommands. Each apps/cmd_<name>.cpp defines one add_<name>_command
// that registers its subcommand (with flags and --help text) on the root app. A
// subcommand's callback stores its exit code in *exit_code; errors are printed as
// "error: <Status>" on stderr and give exit code 1 (bad usage: CLI11's non-zero codes).
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"

namespace r1kit {
struct TlsClientFiles;
}
namespace r1kit::grpo {
struct GrpoRecipe;
}
namespace r1kit::policy {
class TransformerImpl;
}
namespace r1kit::rollout {
class RolloutSource;
}

namespace r1kit::apps {

void add_model_command(CLI::App& root, int* exit_code);      // model init|info|logits
void add_tokenizer_command(CLI::App& root, int* exit_code);  // tokenizer train|encode|decode
void add_pretrain_command(CLI::App& root, int* exit_code);   // pretrain RECIPE
void add_sft_command(CLI::App& root, int* exit_code);        // sft RECIPE
void add_distill_command(CLI::App& root, int* exit_code);    // distill RECIPE
void add_grpo_command(CLI::App& root, int* exit_code);       // grpo RECIPE
void add_run_command(CLI::App& root, int* exit_code);        // run RECIPE (the pipeline)
void add_generate_command(CLI::App& root, int* exit_code);   // generate --model DIR --prompt ...
void add_rollout_worker_command(CLI::App& root, int* exit_code);  // rollout-worker --model DIR
void add_eval_command(CLI::App& root, int* exit_code);            // eval --model DIR --task NAME
void add_report_command(CLI::App& root, int* exit_code);          // report RUN_DIR
void add_reward_command(CLI::App& root, int* exit_code);          // reward score|list
void add_task_command(CLI::App& root, int* exit_code);            // task generate --task NAME

// The trainer's RolloutSource for a GRPO recipe (grpo::RolloutFactory): the gRPC pool of
// rollout.workers (with rollout.token_file's token), or null for the in-process engine.
// Shared by `r1kit grpo` and `r1kit run`.
// The gRPC client pool over `workers` (apps/cmd_grpo.cpp), with the bearer token of
// `token_file` ("" = none) and TLS from `tls`; errors name `key` ("rollout.tls").
StatusOr<std::unique_ptr<rollout::RolloutSource>> grpc_worker_pool(
    const std::vector<std::string>& workers, const std::string& token_file,
    const TlsClientFiles& tls, const std::string& key);
StatusOr<std::unique_ptr<rollout::RolloutSource>> grpo_rollout_source(const grpo::GrpoRecipe& r,
                                                                      policy::TransformerImpl&);
// "5,17,42" -> {5, 17, 42}, for --ids flags; InvalidArgument naming a bad item.
StatusOr<std::vector<int64_t>> parse_id_list(const std::string& text);
// Prints a non-ok status as "error: ..." and returns the process exit code (0 or 1).
int report(const Status& status);

}  // namespace r1kit::apps
