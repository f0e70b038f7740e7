// AdamW with its state sharded over the data-parallel ranks: ZeRO stage 1, the
// optimizer-state partitioning P_os of Rajbhandari et al., "ZeRO: Memory Optimizations
// Toward Training Trillion Parameter Models" (SC 2020), section 5.1. docs/distributed.md.
//
// The trainable parameters, in the model's order, are laid end to end as one flat vector
// of N numbers; rank r owns the contiguous range [r * C, min(N, (r + 1) * C)) with
// C = ceil(N / W), which may cut a parameter in two. This rank's AdamW holds views of
// the pieces of the parameters in its range, and the moments of those pieces only: 1/W
// of the unsharded state. A step:
//   1. the gradients are reduce-scattered (train/grad_sync.h, scatter_to_shards): this
//      rank holds the summed gradients of its range; the global-norm clip sums the
//      ranks' squared norms of their ranges (clip_grad_norm), which is exact;
//   2. each piece takes its slice of its parameter's gradient, and AdamW updates the
//      pieces (AdamW is element-wise, so a piece's update is its slice of the unsharded
//      update, bit for bit; a parameter without a gradient is skipped on every rank);
//   3. every rank's range is all-gathered into every rank's parameters, in rounds whose
//      buffers take about 4 MB (kGatherMb).
// Step 1 is ZeRO's reduce-scatter: each rank receives only its range's sums, half the
// traffic of an all-reduce, in the overlapped buckets of train/grad_sync.h.
//
// Checkpoints hold the whole state (gather_state on every rank, then rank 0 writes it:
// train/optim.h's save_adamw_state), so a checkpoint does not depend on the world size
// or on sharding; set_state takes a parameter's whole state and keeps this rank's slice.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"
#include "train/data_parallel.h"
#include "train/fused_adamw.h"
#include "train/optim.h"

namespace r1kit::train {

class ShardedAdamW : public FusedAdamW {
 public:
  // AdamW over this rank's share of the trainable tensors of `params` (name -> tensor,
  // the groups of make_adamw: decay for >= 2-D, none for 1-D). They must be contiguous
  // and of one dtype (InvalidArgument naming the first that is not). `dp` must outlive
  // the optimizer; `gather_mb` bounds the all-gather rounds' buffers (megabytes).
  static StatusOr<std::unique_ptr<ShardedAdamW>> make(
      const torch::OrderedDict<std::string, torch::Tensor>& params, const OptimConfig& cfg,
      DataParallel& dp, double gather_mb = kGatherMb);
  // The default bound of the all-gather buffers: large enough that Gloo's per-message cost
  // is small, small against the state it saves on any model where sharding pays.
  static constexpr double kGatherMb = 4;

  // Steps this rank's pieces with the parameters' (summed) gradients, then all-gathers
  // the updated parameters. Every rank calls it, or none (guarded_step skips together).
  torch::Tensor step(LossClosure closure = nullptr) override;

  // The global L2 norm of the gradients from this rank's range of them (its pieces'
  // slices; the rest may be unsummed or zero), the squares summed over the ranks; then
  // scales the gradients by max_norm / norm when max_norm > 0 and the norm exceeds it,
  // as train::clip_grad_norm does in one process. Collective.
  double clip_grad_norm(double max_norm);

  // The trainable numbers in all (N), the size C of a rank's range, and this rank's
  // range [begin, end) of them.
  int64_t total_numel() const { return offsets_.back(); }
  int64_t chunk() const { return chunk_; }
  int64_t shard_begin() const { return begin_; }
  int64_t shard_end() const { return end_; }

  // Collective (every rank calls it): the whole state, in save_adamw_state's tensors
  // ("exp_avg.NAME", "exp_avg_sq.NAME", "step.NAME" for each parameter stepped so far),
  // on rank 0; empty on the others.
  std::vector<std::pair<std::string, torch::Tensor>> gather_state();
  // gather_state kept for save_adamw_state (train/optim.h), which rank 0 calls after it:
  // every rank calls gather_for_save before a checkpoint is written.
  void gather_for_save() {
    gathered_ = gather_state();
    have_gathered_ = true;
  }
  // What gather_for_save gathered (and forgets it); FailedPrecondition when nothing was.
  StatusOr<std::vector<std::pair<std::string, torch::Tensor>>> take_gathered();
  // Parameter `name`'s whole state (moments shaped like it): this rank keeps its slice.
  void set_state(const std::string& name, const torch::Tensor& exp_avg,
                 const torch::Tensor& exp_avg_sq, int64_t step);

 private:
  struct Piece {
    size_t param = 0;    // index into names_/params_
    int64_t offset = 0;  // first element of the parameter in the piece
    int64_t numel = 0;   // elements in the piece
    torch::Tensor view;  // [numel], aliasing the parameter's storage
  };
  ShardedAdamW(std::vector<torch::optim::OptimizerParamGroup> groups,
               torch::optim::AdamWOptions defaults)
      : FusedAdamW(std::move(groups), std::move(defaults)) {}
  // Copies this rank's range of flat elements [begin, end) between the parameters and
  // `buf` ([end - begin]); to_params false reads the parameters into buf.
  void copy_range(int64_t begin, int64_t end, torch::Tensor& buf, bool to_params);
  void gather_params();

  DataParallel* dp_ = nullptr;
  std::vector<std::string> names_;
  std::vector<torch::Tensor> params_;  // the trainable parameters, in order
  std::vector<int64_t> offsets_;       // [params_.size() + 1] flat start of each
  std::vector<Piece> pieces_;          // this rank's, in flat order
  int64_t begin_ = 0, end_ = 0, chunk_ = 0, round_ = 0;
  std::vector<std::pair<std::string, torch::Tensor>> gathered_;
  bool have_gathered_ = false;
};

// Bytes of optimizer state this process holds (AdamW's moments of every parameter or
// piece stepped so far): what sharding divides by the world size.
int64_t optimizer_state_bytes(torch::optim::Optimizer& opt);

}  // namespace r1kit::train
