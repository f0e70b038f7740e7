// AdamW in one pass over each parameter.
//
// LibTorch's torch::optim::AdamW updates a parameter with nine tensor ops (the decay, two
// for each moment, a square root, a division, an addition and the final addcdiv), each a
// pass over memory and some a new tensor: about 20 passes of the parameter's size. For the
// `tiny` policy (6.6M parameters) that was 31-35 ms a step on a Zen 4, several percent of
// a GRPO or SFT step. FusedAdamW computes the same update (Loshchilov & Hutter,
// "Decoupled Weight Decay Regularization", Algorithm 2, as LibTorch writes it):
//   p <- p (1 - lr wd)
//   m <- beta1 m + (1 - beta1) g
//   v <- beta2 v + (1 - beta2) g^2
//   p <- p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
// in one loop per fp32 CPU parameter that reads p, g, m and v once and writes p, m and v
// once (loops compiled for AVX-512, AVX2 and the baseline, chosen at run time). Its state is
// LibTorch's (torch::optim::AdamWParamState per parameter), so train/optim.h's
// save_adamw_state and load_adamw_state, checkpoints and resumption are unchanged. Other
// parameters (another dtype or device, non-contiguous) and amsgrad take LibTorch's ops.
// Results equal LibTorch's AdamW up to rounding (fused multiply-adds; tested to 1e-6).
//
// Thread-safety: as torch::optim::AdamW (one thread steps an optimizer).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>

namespace r1kit::train {

// The key under which LibTorch's optimizers keep a parameter's state (Optimizer::state()).
std::string adamw_state_key(const torch::Tensor& p);

class FusedAdamW : public torch::optim::AdamW {
 public:
  using torch::optim::AdamW::AdamW;
  torch::Tensor step(LossClosure closure = nullptr) override;
};

}  // namespace r1kit::train
