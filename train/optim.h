// Optimizer set-up shared by every trainer: AdamW with weight decay off for norms,
// biases and other 1-D tensors; linear warmup then cosine decay to a floor; global
// gradient-norm clipping; and the optimizer state saved to / restored from
// safetensors for exact resumption.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>

#include "core/config.h"
#include "core/status.h"

namespace r1kit::train {

struct OptimConfig {
  double lr = 1e-3;           // peak learning rate
  double min_lr_ratio = 0.1;  // cosine floor as a fraction of lr
  int64_t warmup_steps = 20;  // linear warmup from 0
  double weight_decay = 0.1;  // decoupled decay on 2-D weights only
  double beta1 = 0.9;         // AdamW first-moment decay
  double beta2 = 0.95;        // AdamW second-moment decay
  double eps = 1e-8;          // AdamW epsilon
  double grad_clip = 1.0;     // max global gradient norm; 0 = off

  void visit(ConfigVisitor& v) {
    v.field("lr", lr, "peak learning rate", Range::positive());
    v.field("min_lr_ratio", min_lr_ratio, "cosine floor as a fraction of lr", Range::between(0, 1));
    v.field("warmup_steps", warmup_steps, "linear warmup steps", Range::non_negative());
    v.field("weight_decay", weight_decay, "decoupled weight decay (2-D weights only)",
            Range::non_negative());
    v.field("beta1", beta1, "AdamW beta1", Range::between(0, 1).and_less_than(1));
    v.field("beta2", beta2, "AdamW beta2", Range::between(0, 1).and_less_than(1));
    v.field("eps", eps, "AdamW epsilon", Range::positive());
    v.field("grad_clip", grad_clip, "max global gradient norm; 0 = off", Range::non_negative());
  }
};

// AdamW's options from `cfg` (lr, betas, eps, weight decay).
torch::optim::AdamWOptions adamw_options(const OptimConfig& cfg);

// AdamW over `params` (name -> tensor): group 0 decays, group 1 (1-D tensors) does not.
// A train::FusedAdamW (train/fused_adamw.h): LibTorch's AdamW in one pass a parameter.
std::unique_ptr<torch::optim::AdamW> make_adamw(
    const torch::OrderedDict<std::string, torch::Tensor>& params, const OptimConfig& cfg);

// Learning rate at `step` (0-based) of `total_steps`.
double lr_at(int64_t step, int64_t total_steps, const OptimConfig& cfg);
void set_lr(torch::optim::Optimizer& opt, double lr);

// Drops every gradient (set to none, as PyTorch 2's default). A parameter that gets no
// gradient in a step (an expert no token was routed to) is then skipped by AdamW, the
// same way in a fresh and in a resumed run; zero-filled gradients would instead make
// the optimizer's behaviour depend on whether the expert was ever routed in this process.
void zero_grad(const std::vector<torch::Tensor>& params);

// Clips the global L2 norm of the gradients to `max_norm` (when > 0); returns the norm
// before clipping.
double clip_grad_norm(const std::vector<torch::Tensor>& params, double max_norm);

// One optimizer step of every trainer. A loss or a gradient norm that is not finite
// (NaN, inf) never reaches the weights or AdamW's moments: the gradients are dropped and
// the step is skipped (TrainingRun::count_step counts it and ends a run that skips too
// many in a row).
struct GuardedStep {
  double grad_norm = 0;  // before clipping
  bool skipped = false;  // loss or grad_norm was not finite; nothing changed
};
// Clips the gradients of `params` to `max_norm` (when > 0) and steps `opt`, unless `loss`
// or the gradient norm is not finite. A train::ShardedAdamW computes the norm from every
// rank's range (ShardedAdamW::clip_grad_norm): then every rank calls it, or none.
GuardedStep guarded_step(torch::optim::Optimizer& opt, const std::vector<torch::Tensor>& params,
                         double max_norm, double loss);

// AdamW moments and step counts, keyed by parameter name, to/from a safetensors file.
// For a train::ShardedAdamW (train/sharded_adamw.h) the file holds the whole state too:
// save writes what ShardedAdamW::gather_for_save gathered on rank 0 (every rank calls
// that first), and load keeps this rank's slices. The file does not depend on sharding.
Status save_adamw_state(torch::optim::AdamW& opt,
                        const torch::OrderedDict<std::string, torch::Tensor>& params,
                        const std::string& path);
Status load_adamw_state(torch::optim::AdamW& opt,
                        const torch::OrderedDict<std::string, torch::Tensor>& params,
                        const std::string& path);

}  // namespace r1kit::train
