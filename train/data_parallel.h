// The seam a data-parallel trainer goes through: rank, world size, and the collectives
// the trainers need (sum all-reduce, synchronous or launched in the background,
// broadcast from rank 0, barrier). The default is one process: rank 0 of 1, and every
// collective is the identity, so a one-process run computes exactly what it did before
// data parallelism existed. The multi-process implementation is c10d's process group
// (train/distributed.h; docs/distributed.md).
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

namespace r1kit::train {

class DataParallel {
 public:
  virtual ~DataParallel() = default;
  virtual int rank() const { return 0; }
  virtual int world_size() const { return 1; }
  // "gloo", "nccl"; "none" for one process.
  virtual std::string backend() const { return "none"; }
  // In place: the sum over ranks (gradients, loss normalisers, metric sums).
  virtual void all_reduce_sum(torch::Tensor& /*t*/) {}
  // Starts the in-place sum of `t` and returns the function that waits for it. Every
  // rank starts the same reductions in the same order.
  virtual std::function<void()> all_reduce_sum_async(torch::Tensor t) {
    all_reduce_sum(t);
    return [] {};
  }
  // Starts a summing reduce-scatter and returns the function that waits for it. `in`
  // ([counts[0] + ... + counts[W - 1]], contiguous) holds rank r's part after the parts
  // of ranks 0..r-1; once the function returned, `mine` ([counts[rank()]]) holds the sum
  // over the ranks of their parts for this rank. Every rank passes the same counts (a
  // count may be 0). One process: `mine` = `in`.
  virtual std::function<void()> reduce_scatter_sum_async(torch::Tensor in, torch::Tensor mine,
                                                         std::vector<int64_t> /*counts*/) {
    mine.copy_(in);
    return [] {};
  }
  // In place: rank 0's `t` on every rank.
  virtual void broadcast(torch::Tensor& /*t*/) {}
  // `all` ([world_size * n], contiguous) gets every rank's `mine` ([n]), rank r's at
  // [r * n, (r + 1) * n). One process: `all` = `mine`.
  virtual void all_gather(const torch::Tensor& mine, torch::Tensor& all) { all.copy_(mine); }
  // Returns once every rank has called it. No time limit while every rank is alive:
  // ranks wait here while rank 0 works alone (a tokenizer, a checkpoint, an evaluation).
  virtual void barrier() {}
  // Collective, called by every rank at the same point: a second group of the same ranks
  // with connections of its own, for the collectives of another thread of this process.
  // Two threads must not issue collectives on one c10d group at once (Gloo pairs each
  // collective with the other ranks' by its order on the group, so two threads' calls
  // would interleave differently on each rank); GRPO's overlapped rollout reduces on
  // its own group (docs/distributed.md). One process: a one-process group.
  virtual std::unique_ptr<DataParallel> new_group();

  // Gradients of a model in training (train/grad_sync.h overlaps them with the backward
  // pass). The next backward pass is the last before sum_gradients: an overlapping
  // implementation starts sending gradients as they are ready.
  virtual void before_last_backward() {}
  // In place: every parameter's gradient summed over the ranks (a parameter without one
  // takes part with zeros). One process: nothing.
  virtual void sum_gradients(const std::vector<torch::Tensor>& params);
};

// This process's group: the one joined by join_process_group (train/distributed.h), else
// the one-process default. Trainers reach their ranks through it.
DataParallel& process_group();

// Rank `rank`'s share [begin, end) of `n` items split into `world` contiguous shards
// (sizes differ by at most one; the first ranks take the larger ones).
struct Shard {
  int64_t begin = 0;
  int64_t end = 0;
  int64_t size() const { return end - begin; }
};
Shard shard_of(int64_t n, int rank, int world);

// Each of `values` summed over the ranks, in one all-reduce (one process: unchanged).
void sum_over_ranks(std::initializer_list<double*> values, DataParallel& dp);
void sum_over_ranks(std::initializer_list<int64_t*> values, DataParallel& dp);

// Whether `flag` holds on any rank (a stop or a time limit one rank saw, so that every
// rank stops after the same step). One process: `flag`.
bool any_rank(bool flag, DataParallel& dp);

}  // namespace r1kit::train
