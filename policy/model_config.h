// The `model:` section of a recipe: which policy to build (a preset or a checkpoint),
// in which dtype, with which training-time MoE/MTP settings.
#pragma once

#include <string>

#include "core/config.h"
#include "core/enum_names.h"
#include "policy/model.h"

namespace r1kit::policy {

// The floating-point formats a recipe may name for weights or compute.
enum class Precision { kF32, kBf16 };
inline constexpr EnumName<Precision> kPrecisionNames[] = {{Precision::kF32, "f32"},
                                                          {Precision::kBf16, "bf16"}};
inline torch::Dtype to_torch_dtype(Precision p) {
  return p == Precision::kBf16 ? torch::kBFloat16 : torch::kFloat;
}

// The compute of training (`model.compute`): f32, bf16 autocast over fp32 master weights,
// or auto (bf16 where the CPU multiplies bf16 natively, else f32; train/compute.h).
enum class Compute { kF32, kBf16, kAuto };
inline constexpr EnumName<Compute> kComputeNames[] = {
    {Compute::kF32, "f32"}, {Compute::kBf16, "bf16"}, {Compute::kAuto, "auto"}};

struct ModelConfig {
  std::string preset = "tiny";  // nano | tiny | small | tiny-dense (ignored when `from` is set)
  std::string from;             // checkpoint directory to start from (native or Hugging Face)
  Precision dtype = Precision::kF32;  // weight dtype: f32 or bf16 (training needs f32)
  Compute compute = Compute::kF32;    // training compute: f32 | bf16 | auto
  int64_t n_mtp_layers = -1;          // MTP depths; -1 keeps the preset's/checkpoint's (0 = off)
  double mtp_lambda = -1;             // MTP loss weight; -1 keeps the model's (0.3 by default)
  double aux_loss_alpha = -1;         // sequence-wise balance loss weight; -1 keeps the model's
  double bias_update_gamma = -1;      // aux-loss-free bias step; -1 keeps the model's

  void visit(ConfigVisitor& v) {
    v.field("preset", preset, "nano | tiny | small | tiny-dense (ignored when `from` is set)",
            OneOf{"nano", "tiny", "small", "tiny-dense"});
    v.field("from", from, "checkpoint directory to start from; empty: a fresh preset");
    v.field("dtype", dtype, "weight dtype (sft, distill and grpo need f32: fp32 master weights)",
            kPrecisionNames);
    v.field("compute", compute,
            "training compute: f32; bf16 (autocast: matmuls in bf16, weights, gradients, AdamW "
            "state, output head, log-softmax and loss in fp32); auto (bf16 where the CPU has "
            "native bf16, AVX512_BF16 or AMX, else f32)",
            kComputeNames);
    v.field("n_mtp_layers", n_mtp_layers, "MTP depths; -1 keeps the model's, 0 = off",
            Range::at_least(-1));
    v.field("mtp_lambda", mtp_lambda, "MTP loss weight; -1 keeps the model's", Range::at_least(-1));
    v.field("aux_loss_alpha", aux_loss_alpha,
            "sequence-wise balance loss weight; -1 keeps the model's", Range::at_least(-1));
    v.field("bias_update_gamma", bias_update_gamma,
            "aux-loss-free bias update step; -1 keeps the model's", Range::at_least(-1));
  }

  torch::Dtype torch_dtype() const { return to_torch_dtype(dtype); }
  // The args this section describes for a vocabulary of `vocab_size` (fresh presets only).
  StatusOr<ModelArgs> resolve_args(int64_t vocab_size) const;
  // Builds the model: a fresh preset initialised with `seed`, or loaded from `from`.
  StatusOr<Transformer> build(int64_t vocab_size, uint64_t seed) const;
};

// Casts a model to `dtype`, keeping the MoE correction biases in fp32.
void cast_model(TransformerImpl& model, torch::Dtype dtype);

}  // namespace r1kit::policy
