// `r1kit grpo RECIPE`: the GRPO trainer (DeepSeekMath §4, DeepSeek-R1 §2.2).
//
// One step, as data:
//   1-3. the rollout (grpo/rollout_step.h): P training problems rendered and tokenized,
//        G completions each with their log-probs from the RolloutSource, every reward
//        component, packed with group-relative advantages (optionally after dynamic
//        sampling and with the KL to a frozen reference folded into the reward);
//   4.   the update (grpo/update_step.h): mu passes over `mini_batches` mini-batches of
//        micro-batches, AdamW steps, MoE bias updates;
//   5.   the new weights go to the RolloutSource with version step + 1;
//   6.   metrics (grpo/step_metrics.h: console, JSONL, TensorBoard), held-out evaluation
//        and atomic checkpoints.
//
// Follows TRL's GRPOTrainer and verl's ray_trainer in what it logs and in its knobs
// (num_iterations = mu, steps_per_generation = mini_batches, beta, epsilon/_high,
// loss_type, scale_rewards, mask_truncated_completions, top_entropy off).
// Different on purpose:
// - the loss of every micro-batch is its exact share of the mini-batch loss, so the
//   gradient does not depend on micro_batch_size (TRL's GRPOTrainer once normalised
//   each micro-batch by its own token count; docs/grpo.md, "Aggregation and the global
//   normaliser");
// - pi_old is the trainer's own log-prob of the rollout (recomputed before the first
//   update when mu > 1 or mini_batches > 1, else the detached current log-prob), and
//   the engine's log-probs enter only through truncated importance sampling;
// - the reference model exists only when kl_coef > 0;
// - everything random is a pure function of (seed, step), and the checkpoint holds the
//   data position and policy version, so a resumed run continues exactly.
// Data parallelism goes through train/data_parallel.h; one process uses the identity.
#pragma once

#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/blas_threads.h"
#include "core/status.h"
#include "data/task_source.h"
#include "data/tokenizer.h"
#include "grpo/recipe.h"
#include "grpo/rollout_step.h"
#include "grpo/sample_log.h"
#include "grpo/step_metrics.h"
#include "policy/model.h"
#include "reward/reward.h"
#include "rollout/rollout_source.h"
#include "train/data_parallel.h"
#include "train/setup.h"

namespace r1kit::grpo {

// Makes the RolloutSource of a run from the recipe and the trainer's policy (called once,
// after a resume has loaded the weights). apps/ passes one that knows gRPC; without it
// rollout.workers must be empty and the in-process engine is used.
using RolloutFactory = std::function<StatusOr<std::unique_ptr<rollout::RolloutSource>>(
    const GrpoRecipe&, policy::TransformerImpl& policy)>;

struct GrpoResult {
  int64_t steps_run = 0;           // steps executed by this call
  bool finished = false;           // reached grpo.steps or max_minutes
  double first_reward = 0;         // mean reward of the first step run
  double last_reward = 0;          // mean reward of the last step run
  std::vector<double> rewards;     // mean reward of every step run
  std::vector<double> accuracies;  // share of correct samples (role accuracy) every step run
  std::string final_dir;           // the final model
};

class GrpoTrainer {
 public:
  // Set-up: plug-ins, tokenizer, task, rewards, policy and optimizer (resumed from the
  // newest checkpoint), the reference when a KL term needs it, the rollout source holding
  // the current weights. `dp` may be null (one process); it must outlive the trainer.
  static StatusOr<std::unique_ptr<GrpoTrainer>> create(const GrpoRecipe& recipe,
                                                       const RolloutFactory& make_source = {},
                                                       train::DataParallel* dp = nullptr);
  // Clean-up: waits for an overlapped rollout still in flight.
  ~GrpoTrainer();

  // Runs steps until grpo.steps, grpo.stop_after or grpo.max_minutes; saves checkpoints
  // on the way and the final model when training is over.
  StatusOr<GrpoResult> run();
  // One step (rollout, update, weight sync, evaluation, metrics, checkpoint when due).
  // Returns the step's metrics.
  StatusOr<std::map<std::string, double>> step();
  // Writes a checkpoint of the steps done so far.
  Status save();

  int64_t next_step() const { return step_; }
  bool out_of_time() const { return out_of_time_; }

 private:
  GrpoTrainer(const GrpoRecipe& recipe, train::DataParallel& dp, train::ResolvedTokenizer tok,
              data::TaskSource tasks, reward::CombinedReward rewards, train::TrainingRun run);
  Status make_reference();
  Status make_source(const RolloutFactory& make_source);
  StatusOr<RolloutBatch> next_rollout();
  Status sync_weights();
  Status evaluate(std::map<std::string, double>& m);
  void wait_for_overlap();

  const GrpoRecipe& r_;
  train::DataParallel& dp_;
  train::ResolvedTokenizer tok_;
  data::TaskSource tasks_;
  reward::CombinedReward rewards_;
  train::TrainingRun run_;
  policy::Transformer ref_{nullptr};  // frozen reference (kl_coef > 0 only)
  std::unique_ptr<rollout::RolloutSource> source_;
  // rollout.overlap with dynamic sampling on several ranks: the rollout thread's own group
  // for the collector's reductions (train::DataParallel::new_group).
  std::unique_ptr<train::DataParallel> rollout_dp_;
  std::unique_ptr<RolloutCollector> collector_;
  std::optional<BlasThreadsGuard> one_blas_thread_;  // rollout.overlap: a core each
  std::future<StatusOr<RolloutBatch>> next_;         // rollout.overlap: the next rollout
  int64_t step_ = 0;                                 // the next step to run (0-based)
  int64_t reward_failures_ = 0;  // samples the rewards failed to score in this run
  uint64_t data_pos_ = 0;        // the next unused training problem
  std::chrono::steady_clock::time_point t_start_;
  bool out_of_time_ = false;
  std::optional<ProgressLine> progress_;  // the console line
  SampleLog samples_;                     // grpo.log_samples
  NoSignalWatch no_signal_;               // warns after steps without a learning signal
};

// GrpoTrainer::create(...)->run().
StatusOr<GrpoResult> run_grpo(const GrpoRecipe& recipe, const RolloutFactory& make_source = {},
                              train::DataParallel* dp = nullptr);

// The recipe keys (dotted prefixes) that may change between a run and its resume: they do
// not change what is computed (steps, logging cadence, time box, workers, threads).
const std::vector<std::string>& resumable_keys();

}  // namespace r1kit::grpo
