// r1kit: the single command-line entry point. One subcommand per job; see
// apps/commands.h. Exceptions are caught here and only here.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "apps/commands.h"
#include "core/logging.h"
#include "core/memory.h"
#include "reward/grpc/remote.h"
#include "train/distributed.h"

namespace r1kit::apps {

int report(const Status& status) {
  if (status.ok()) return 0;
  std::fprintf(stderr, "error: %s\n", status.to_string().c_str());
  return 1;
}

StatusOr<std::vector<int64_t>> parse_id_list(const std::string& text) {
  std::vector<int64_t> ids;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) continue;
    try {
      size_t used = 0;
      const long long v = std::stoll(item, &used);
      if (used != item.size()) throw std::invalid_argument(item);
      ids.push_back(v);
    } catch (...) {
      return InvalidArgument("--ids: '{}' is not an integer", item);
    }
  }
  return ids;
}

}  // namespace r1kit::apps

int main(int argc, char** argv) {
  r1kit::init_logging();
  r1kit::retain_freed_memory();  // no per-step page faults (core/memory.h)
  CLI::App app{
      "r1kit: DeepSeek-R1-style reasoning post-training (SFT, GRPO, distillation) on a\n"
      "MoE + MLA policy, in C++ on LibTorch. Run `r1kit <command> --help` for details."};
  app.require_subcommand(1);
  app.set_version_flag("--version", "r1kit 0.1.0");
  // The `remote` reward links gRPC, so it is registered here rather than with the
  // built-ins in r1kit_reward (reward/grpc/remote.h).
  if (r1kit::Status s =
          r1kit::reward::register_remote_reward(r1kit::reward::RewardRegistry::global());
      !s.ok()) {
    std::fprintf(stderr, "error: %s\n", s.to_string().c_str());
    return 1;
  }
  int exit_code = 0;
  r1kit::apps::add_model_command(app, &exit_code);
  r1kit::apps::add_tokenizer_command(app, &exit_code);
  r1kit::apps::add_pretrain_command(app, &exit_code);
  r1kit::apps::add_sft_command(app, &exit_code);
  r1kit::apps::add_distill_command(app, &exit_code);
  r1kit::apps::add_grpo_command(app, &exit_code);
  r1kit::apps::add_run_command(app, &exit_code);
  r1kit::apps::add_generate_command(app, &exit_code);
  r1kit::apps::add_rollout_worker_command(app, &exit_code);
  r1kit::apps::add_eval_command(app, &exit_code);
  r1kit::apps::add_report_command(app, &exit_code);
  r1kit::apps::add_reward_command(app, &exit_code);
  r1kit::apps::add_task_command(app, &exit_code);
  try {
    app.parse(argc, argv);
    // A data-parallel job ends together (train/distributed.h); one process: nothing.
    if (exit_code == 0) r1kit::train::leave_process_group();
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return exit_code;
}
