// GRPO across data-parallel ranks (train/data_parallel.h, docs/distributed.md): what the
// collector and the update add to one process's step so that every rank takes the same
// decisions and the job trains the same weights as one process.
//
// - rollout.prompts_per_step is global: each round's problems are split into contiguous
//   shards, and sampling is seeded by the global problem index and the sample number
//   (rollout/rollout_source.h), so the samples do not depend on the world size.
// - Dynamic sampling decides on every group's rewards (gathered from the ranks), so every
//   rank keeps the same groups and runs the same number of rounds. With rollout.overlap
//   the next step's rounds are gathered on the rollout thread, through a group of their
//   own (train::DataParallel::new_group), while the update reduces on the trainer's.
// - The update sums loss normalisers, the count of trained rows and gradients; a rank
//   whose shard kept no group still takes part in every collective (sit_out_update).
// - The logged metrics are the job's: rollout counters summed, batch metrics computed on
//   every rank's rows gathered, loss statistics merged as one process merges micro-batches.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "core/status.h"
#include "grpo/advantages.h"
#include "grpo/policy_loss.h"
#include "grpo/recipe.h"
#include "grpo/rollout_step.h"
#include "grpo/step_metrics.h"
#include "grpo/update_step.h"
#include "policy/model.h"
#include "train/data_parallel.h"

namespace r1kit::grpo {

// The recipe settings that are not (yet) exact across `world` ranks are an error naming
// the key: fewer prompts than ranks. One rank: always OK.
// grpo.mini_batches > 1 shuffles the global batch (every rank draws the same
// permutation of the job's rows and trains its own rows of each mini-batch), and
// scale_rewards: batch takes the job's statistics (job_advantages).
Status check_data_parallel(const GrpoRecipe& r, int world);

// The [n, G] rewards of a whole round on every rank; `mine` ([n_mine, G]) holds this
// rank's rows [shard.begin, shard.end).
torch::Tensor gather_round_rewards(const torch::Tensor& mine, const train::Shard& shard, int64_t n,
                                   train::DataParallel& dp);

// Sums a mini-batch's normaliser over the ranks; returns whether any rank trains a row in
// it (with one process: whether `rows_trained` > 0, and `norm` is untouched).
bool reduce_mini_batch(LossNormalizer& norm, int64_t rows_trained, train::DataParallel& dp);

// A rank with no rows this step while others have some: the collectives
// prepare_train_batch and update_policy run, with nothing of its own to add, and the
// same AdamW steps. `job_rows_total`: the rows of the step's global batch
// (RolloutBatch::job_groups_total * G), which set the number of mini-batches.
UpdateResult sit_out_update(policy::TransformerImpl& model, torch::optim::Optimizer& optimizer,
                            const GrpoRecipe& r, int64_t job_rows_total, train::DataParallel& dp);

// With rollout.workers on several ranks, rank 0 alone pushes each step's weights to the
// workers (the others' sources only record the version: rollout/grpc/grpc_source.h,
// push_weights). Every rank calls this after its update_weights returned `pushed`: it
// waits until rank 0's push is done (a barrier without time limit while every rank
// lives), so no rank generates the next step from the old weights, and fails on every
// rank when the push failed on one. Otherwise returns `pushed`.
Status after_weight_push(Status pushed, const GrpoRecipe& r, train::DataParallel& dp);

// The advantages of this rank's rows (`rewards` [B], their places `job_rows` in the
// step's global batch of `job_total` rows): compute_advantages on them alone, except
// with grpo.loss.scale_rewards: batch on several ranks, whose batch statistics are the
// job's: every rank's rewards are gathered into the global order, the advantages
// computed there exactly as one process computes them, and this rank's rows taken.
// Every rank calls it then (one that kept no group with empty `rewards`).
Advantages job_advantages(const torch::Tensor& rewards, const std::vector<int64_t>& job_rows,
                          int64_t job_total, const GrpoRecipe& r, train::DataParallel& dp);

// The rollout's counters summed over the ranks (groups seen, zero-std and rejected
// groups, generated tokens, reward failures) and its wall times the slowest rank's, so
// that the rollout metrics are the job's. One process: unchanged.
void reduce_rollout_counts(RolloutBatch& ro, train::DataParallel& dp);

// Every rank's 1-D `mine` (undefined: none), concatenated in rank order as doubles. The
// ranks hold contiguous shards of the step's groups, so this is the global batch's order.
// One process: `mine` as doubles.
torch::Tensor gather_values(const torch::Tensor& mine, train::DataParallel& dp);

// add_batch_metrics and add_update_metrics (grpo/step_metrics.h) of the whole job: the
// batch metrics on every rank's rows, the loss statistics merged over the ranks, counts
// summed. `batch` is null on a rank that kept no group this step (it adds nothing but
// takes part in the reductions). One process: the one-process metrics.
void add_job_metrics(const RolloutBatch& ro, const TrainBatch* batch, const UpdateResult& u,
                     bool has_reference, bool moe, train::DataParallel& dp, StepMetrics& m);

}  // namespace r1kit::grpo
