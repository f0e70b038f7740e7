#include "grpo/data_parallel.h"

#include "core/timer.h"
#include "train/grad_sync.h"
#include "train/optim.h"

namespace r1kit::grpo {

Status check_data_parallel(const GrpoRecipe& r, int world) {
  if (world == 1) return OkStatus();
  if (r.rollout.prompts_per_step < world)
    return InvalidArgument(
        "rollout.prompts_per_step={} is global and smaller than the {} ranks; raise it to at "
        "least the world size",
        r.rollout.prompts_per_step, world);
  if (r.grpo.mini_batches > 1)
    return InvalidArgument(
        "grpo.mini_batches={} across {} ranks: the mini-batch shuffle is not split across "
        "ranks yet; use grpo.mini_batches=1 (docs/distributed.md)",
        r.grpo.mini_batches, world);
  if (r.grpo.loss.scale_rewards == RewardScale::kBatch)
    return InvalidArgument(
        "grpo.loss.scale_rewards=batch across {} ranks: the batch std would be each rank's; "
        "use group or none (docs/distributed.md)",
        world);
  if (r.rollout.overlap && r.grpo.loss.dynamic_sampling)
    return InvalidArgument(
        "rollout.overlap=true with grpo.loss.dynamic_sampling=true across {} ranks: the "
        "sampling decisions would be reduced on the rollout thread while the update reduces "
        "gradients; turn one of them off (docs/distributed.md)",
        world);
  return OkStatus();
}

torch::Tensor gather_round_rewards(const torch::Tensor& mine, const train::Shard& shard, int64_t n,
                                   train::DataParallel& dp) {
  if (dp.world_size() == 1) return mine;
  auto all = torch::zeros({n, mine.size(1)}, torch::kDouble);
  if (shard.size() > 0) all.narrow(0, shard.begin, shard.size()).copy_(mine);
  dp.all_reduce_sum(all);  // x + 0 = x: every row is its rank's, exactly (NaN stays NaN)
  return all;
}

bool reduce_mini_batch(LossNormalizer& norm, int64_t rows_trained, train::DataParallel& dp) {
  if (dp.world_size() == 1) return rows_trained > 0;
  auto t = torch::tensor({norm.tokens, norm.sequences, static_cast<double>(rows_trained)},
                         torch::kDouble);
  dp.all_reduce_sum(t);
  norm.tokens = t[0].item<double>();
  norm.sequences = t[1].item<double>();
  return t[2].item<double>() > 0;
}

UpdateResult sit_out_update(policy::TransformerImpl& model, torch::optim::Optimizer& optimizer,
                            const GrpoRecipe& r, train::DataParallel& dp) {
  const auto t0 = SteadyClock::now();
  UpdateResult res;
  auto params = model.parameters();
  for (int64_t epoch = 0; epoch < r.grpo.mu; ++epoch) {
    LossNormalizer norm;
    if (!reduce_mini_batch(norm, 0, dp)) continue;
    train::zero_grad(params);
    dp.sum_gradients(params);
    double loss = 0;
    train::sum_over_ranks({&loss}, dp);  // as the ranks that train: skip together
    const train::GuardedStep gs =
        train::guarded_step(optimizer, params, r.grpo.optim.grad_clip, loss);
    res.grad_norm_sum += gs.grad_norm;
    res.skipped_updates += gs.skipped;
    auto load = train::update_expert_bias(model, dp);  // the other ranks' loads
    if (res.updates == 0) res.expert_load = load;
    ++res.updates;
  }
  res.seconds = seconds_since(t0);
  return res;
}

}  // namespace r1kit::grpo
