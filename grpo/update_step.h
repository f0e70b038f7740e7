// The update half of a GRPO step (DeepSeekMath §4.1.2; PPO's epochs over one batch):
// mu passes over the rollout batch; each pass shuffles it into `mini_batches`
// mini-batches, one AdamW step each; a mini-batch runs in micro-batches whose losses are
// each their exact share of the mini-batch loss (grpo/policy_loss.h), so the gradient does
// not depend on micro_batch_size. After every optimizer step the MoE routers' bias is
// updated from the tokens routed in it (DeepSeek-V3 §2.1.2).
//
// A completion whose advantage is 0 (its group's rewards were all equal) adds nothing to
// the clipped surrogate whatever its ratio, so with no KL or entropy term in the loss and no
// MTP loss it needs no forward/backward (`skip_zero_advantage`): the policy gradient is
// unchanged (the normaliser still counts its tokens); only the MoE balance loss and the
// logged entropy/clip statistics then cover the trained completions alone.
//
// Data parallelism (train/data_parallel.h): loss normalisers and gradients are summed over
// ranks; every rank takes part in every all-reduce, in the same order.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <string>

#include "grpo/policy_loss.h"
#include "grpo/recipe.h"
#include "grpo/rollout_step.h"
#include "grpo/routing_replay.h"
#include "policy/model.h"
#include "train/data_parallel.h"

namespace r1kit::grpo {

struct UpdateResult {
  PolicyLossStats stats;     // merged over every micro-batch of every update
  double grad_norm_sum = 0;  // sum over updates of the pre-clip gradient norm
  double aux_loss_sum = 0;   // sum over updates of the MoE balance loss
  int64_t updates = 0;       // optimizer steps taken
  int64_t rows = 0;          // completions visited (B * mu)
  int64_t skipped_rows =
      0;               // of which skipped (advantage 0 with skip_zero_advantage, or no loss tokens)
  double seconds = 0;  // wall time, including the pi_old recomputation
  torch::Tensor expert_load;  // [L, E] routed-token counts of the first update, all ranks
  // Of `updates`, those skipped for a non-finite loss or gradient norm (train/optim.h).
  int64_t skipped_updates = 0;
  // Trainer vs engine MoE experts over every forward (moe/route_mismatch; MoE only).
  RouteMismatch route_mismatch;
  // max |trainer - engine| log-prob over the completion tokens the trainer recomputed with
  // the weights that generated them (rows of policy version `step`, before the first
  // optimizer step): rollout/logprob_max_abs_diff, exactly 0 with rollout.exact. < 0: none
  // measured (every row stale under rollout.overlap).
  double logprob_max_abs_diff = -1;
};

// Runs the mu / mini-batch / micro-batch loop of `step` on `batch` and returns its
// statistics. Mini-batch order is a pure function of (grpo.seed, step, pass).
UpdateResult update_policy(policy::TransformerImpl& model, torch::optim::Optimizer& optimizer,
                           const TrainBatch& batch, const GrpoRecipe& recipe, int64_t step,
                           train::DataParallel& dp);

}  // namespace r1kit::grpo
