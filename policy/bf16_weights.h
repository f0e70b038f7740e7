// bf16 copies of a model's matmul weights, for forwards in bf16 compute without autograd:
// the rollout engine's, when it samples for a trainer in bf16 compute
// (GenerateRequest::bf16_compute, rollout/rollout_source.h).
//
// The trainer's bf16 compute (train/compute.h) is CPU autocast over fp32 master weights:
// every linear layer of the decoder runs on bf16 casts of its input, weight and bias and
// returns bf16. A forward whose ExecutionContext::bf16 points at these copies computes
// its linear layers the same way: decode_linear (policy/decode_threads.h) and the SwiGLU
// kernels look each weight up here and, where they find it, run in bf16
// (policy/expert_kernels.h, "bf16 compute"; torch::linear on the copies where those
// kernels do not apply), so that the engine rounds where the trainer rounds and only the
// order of the sums differs. The copies are of the nn::Linear layers within the module
// given; the engine gives the decoder layers (TransformerImpl::layers): attention
// projections, dense FFNs, routed and shared experts. Not the embedding, the router or
// the output head, which the trainer's forward keeps in fp32 too, nor the MTP blocks (not
// used to decode). Where MLA decodes through its absorbed attention, the up-projection
// is read from kv_b_proj's fp32 weight (policy/mla_decode.h): the one matmul of a decode
// step that stays fp32.
//
// Thread-safety: assign() must not run concurrently with readers; find() is const.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <unordered_map>

namespace r1kit::policy {

class Bf16Weights {
 public:
  // Casts the fp32 weights and biases of every nn::Linear within `root` (itself included)
  // to bf16 (rounding to nearest even, as a cast does), in place of any earlier copies,
  // reusing their buffers where the tensors are the same. Call it again after every
  // change of the weights: the copies do not follow them.
  void assign(torch::nn::Module& root);
  // The bf16 copy of t (contiguous, t's shape), or nullptr when t has none.
  const torch::Tensor* find(const torch::Tensor& t) const;
  // Tensors copied.
  int64_t size() const { return static_cast<int64_t>(copies_.size()); }

 private:
  std::unordered_map<const c10::TensorImpl*, torch::Tensor> copies_;
};

}  // namespace r1kit::policy
