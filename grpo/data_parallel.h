// GRPO across data-parallel ranks (train/data_parallel.h, docs/distributed.md): what the
// collector and the update add to one process's step so that every rank takes the same
// decisions and the job trains the same weights as one process.
//
// - rollout.prompts_per_step is global: each round's problems are split into contiguous
//   shards, and sampling is seeded by the global problem index and the sample number
//   (rollout/rollout_source.h), so the samples do not depend on the world size.
// - Dynamic sampling decides on every group's rewards (gathered from the ranks), so every
//   rank keeps the same groups and runs the same number of rounds.
// - The update sums loss normalisers, the count of trained rows and gradients; a rank
//   whose shard kept no group still takes part in every collective (sit_out_update).
#pragma once

#include <torch/torch.h>

#include <cstdint>

#include "core/status.h"
#include "grpo/policy_loss.h"
#include "grpo/recipe.h"
#include "grpo/update_step.h"
#include "policy/model.h"
#include "train/data_parallel.h"

namespace r1kit::grpo {

// The recipe settings that are not (yet) exact across `world` ranks are an error naming
// the key: fewer prompts than ranks, mini_batches > 1 (its shuffle is per rank), the
// batch reward scale (a per-rank std), and overlap with dynamic sampling (the rollout
// thread's reductions would interleave with the update's). One rank: always OK.
Status check_data_parallel(const GrpoRecipe& r, int world);

// The [n, G] rewards of a whole round on every rank; `mine` ([n_mine, G]) holds this
// rank's rows [shard.begin, shard.end).
torch::Tensor gather_round_rewards(const torch::Tensor& mine, const train::Shard& shard, int64_t n,
                                   train::DataParallel& dp);

// Sums a mini-batch's normaliser over the ranks; returns whether any rank trains a row in
// it (with one process: whether `rows_trained` > 0, and `norm` is untouched).
bool reduce_mini_batch(LossNormalizer& norm, int64_t rows_trained, train::DataParallel& dp);

// A rank with no rows this step while others have some: the collectives update_policy
// runs (with mini_batches = 1), with nothing of its own to add, and the same AdamW steps.
UpdateResult sit_out_update(policy::TransformerImpl& model, torch::optim::Optimizer& optimizer,
                            const GrpoRecipe& r, train::DataParallel& dp);

}  // namespace r1kit::grpo
