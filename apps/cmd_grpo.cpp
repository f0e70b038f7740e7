// `r1kit grpo RECIPE [key.sub=value ...]`: GRPO training (grpo/trainer.h), with rollouts
// from the in-process engine or, when rollout.workers lists addresses, from gRPC
// rollout workers (`r1kit rollout-worker`).
#include "apps/recipe_command.h"
#include "core/atomic_file.h"
#include "core/tls_files.h"
#include "grpo/trainer.h"
#include "rollout/grpc/grpc_source.h"
#include "train/data_parallel.h"

namespace r1kit::apps {

StatusOr<std::unique_ptr<rollout::RolloutSource>> grpc_worker_pool(
    const std::vector<std::string>& workers, const std::string& token_file,
    const TlsClientFiles& tls_files, const std::string& key) {
  rollout::GrpcSourceOptions o;
  o.workers = workers;
  if (!token_file.empty()) {
    ASSIGN_OR_RETURN(o.token, read_token_file(token_file));
  }
  ASSIGN_OR_RETURN(const TlsClientPem tls, read_tls_client_files(tls_files, key));
  o.tls_root_pem = tls.ca;
  o.tls_cert_pem = tls.cert;
  o.tls_key_pem = tls.key;
  // Data parallelism: rank 0 alone pushes the weights, each rank starts on its own worker
  // (grpo/data_parallel.h, docs/distributed.md).
  const train::DataParallel& dp = train::process_group();
  o.push_weights = dp.rank() == 0;
  o.first_worker = dp.rank();
  return rollout::make_grpc_rollout_source(o);
}

StatusOr<std::unique_ptr<rollout::RolloutSource>> grpo_rollout_source(const grpo::GrpoRecipe& r,
                                                                      policy::TransformerImpl&) {
  if (r.rollout.workers.empty()) return std::unique_ptr<rollout::RolloutSource>();
  return grpc_worker_pool(r.rollout.workers, r.rollout.token_file, r.rollout.tls, "rollout.tls");
}

void add_grpo_command(CLI::App& root, int* exit_code) {
  add_recipe_command<grpo::GrpoRecipe>(
      root, exit_code,
      {"grpo",
       "GRPO reinforcement learning: sample groups of completions per prompt, score them with "
       "the recipe's rewards, and push each by its advantage over its group. Rollouts come "
       "from the in-process engine, or from the gRPC workers in rollout.workers. Overrides "
       "such as grpo.steps=10 follow the recipe path.",
       "recipes/grpo-tiny.yaml"},
      [](const grpo::GrpoRecipe& r) { return grpo::run_grpo(r, grpo_rollout_source); },
      [](const grpo::GrpoResult& res) {
        if (!res.finished) {
          print_stopped(res.steps_run);
        } else {
          std::printf("done: %lld steps, mean reward %.4f -> %.4f; model in %s\n",
                      static_cast<long long>(res.steps_run), res.first_reward, res.last_reward,
                      res.final_dir.c_str());
        }
      });
}

}  // namespace r1kit::apps
