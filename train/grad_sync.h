// What data parallelism does to the model in training, on top of a train::DataParallel
// group: rank 0's weights on every rank, gradients summed over the ranks in buckets
// launched from autograd hooks while the backward pass still runs (the scheme of
// PyTorch's DistributedDataParallel: Li et al., "PyTorch Distributed: Experiences on
// Accelerating Data Parallel Training", VLDB 2020, section 3.2), and the MoE expert
// loads summed before the bias update. docs/distributed.md.
//
// A trainer's step, with `dp` the TrainingRun's (one process: every call is a no-op):
//   for (micro-batch m) { if (m is the last) dp.before_last_backward(); loss.backward(); }
//   dp.sum_gradients(params);          // waits for the buckets, writes the sums to .grad
//   clip; optimizer.step(); train::update_expert_bias(model, dp);
#pragma once

#include <torch/torch.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "policy/model.h"
#include "train/data_parallel.h"

namespace r1kit::train {

// Overwrites every parameter and buffer of `model` with rank 0's.
void broadcast_model(policy::TransformerImpl& model, DataParallel& dp);

// The aux-loss-free bias update (policy::MoEImpl::update_bias) from the expert loads
// summed over the ranks, so every rank moves the biases alike; one process: the model's
// own update_expert_bias. Returns the routed-token counts the update used for the main
// layers' MoE blocks, [MoE layers, experts] summed over the ranks (the MTP blocks'
// are left out), for the logs; an empty tensor for a dense model.
torch::Tensor update_expert_bias(policy::TransformerImpl& model, DataParallel& dp);

// Adds `moe/load/layer{L}/expert{E}` (each expert's share of its layer's routed tokens)
// and `moe/max_load_over_mean` (the busiest expert's share over the mean share, averaged
// over the layers) for counts `load` [MoE layers, experts]; nothing when it is empty.
void add_moe_load_metrics(const torch::Tensor& load, std::map<std::string, double>* m);

// A DataParallel for one model's parameters: the group's collectives, plus gradient
// sums in buckets of about `bucket_mb` megabytes, in reverse parameter order (roughly the
// order the backward pass produces them). A bucket is launched when every parameter in it
// has accumulated its gradient during the armed backward pass, and only after the buckets
// before it, so every rank launches the same reductions in the same order; a parameter
// that got no gradient (an expert no token reached) is sent as zeros when the step ends.
// A bucket lays its parameters out in parameter order, so that with scatter_to_shards each
// rank's part of it is one contiguous run.
class GradientSync : public DataParallel {
 public:
  GradientSync(const std::vector<torch::Tensor>& params, DataParallel& group, double bucket_mb);
  ~GradientSync() override;

  int rank() const override { return group_.rank(); }
  int world_size() const override { return group_.world_size(); }
  std::string backend() const override { return group_.backend(); }
  void all_reduce_sum(torch::Tensor& t) override { group_.all_reduce_sum(t); }
  std::function<void()> all_reduce_sum_async(torch::Tensor t) override {
    return group_.all_reduce_sum_async(std::move(t));
  }
  std::function<void()> reduce_scatter_sum_async(torch::Tensor in, torch::Tensor mine,
                                                 std::vector<int64_t> counts) override {
    return group_.reduce_scatter_sum_async(std::move(in), std::move(mine), std::move(counts));
  }
  void broadcast(torch::Tensor& t) override { group_.broadcast(t); }
  void all_gather(const torch::Tensor& mine, torch::Tensor& all) override {
    group_.all_gather(mine, all);
  }
  void barrier() override { group_.barrier(); }
  std::unique_ptr<DataParallel> new_group() override { return group_.new_group(); }

  void before_last_backward() override;
  void sum_gradients(const std::vector<torch::Tensor>& params) override;

  // dist.shard_optimizer (ZeRO stage 1, train/sharded_adamw.h): from now on each bucket is
  // reduce-scattered instead of all-reduced, so sum_gradients leaves on this rank the
  // summed gradients of its own range [rank * chunk, min(total, (rank + 1) * chunk)) of
  // the trainable numbers (in parameter order: train::ShardedAdamW's ranges) and zeros
  // elsewhere; a parameter keeps no gradient when no rank has one, as before. `total`
  // must be the trainable numbers' count.
  void scatter_to_shards(int64_t total, int64_t chunk);

  int64_t n_buckets() const;
  // Buckets sent from the autograd hooks, while a backward pass ran (since construction).
  int64_t sent_during_backward() const;

 private:
  struct State;
  DataParallel& group_;
  // Shared with the autograd hooks only weakly: hooks outliving this object do nothing.
  std::shared_ptr<State> state_;
};

}  // namespace r1kit::train
