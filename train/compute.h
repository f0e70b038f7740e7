// The compute precision of training (`model.compute`, policy/model_config.h), chosen in
// one place for every trainer (pretrain, sft, distill, grpo).
//
// bf16 is mixed precision as in Micikevicius et al., "Mixed Precision Training" (2018),
// §3, with bf16 instead of fp16 (no loss scaling: bf16 has fp32's exponent range): the
// parameters, their gradients and AdamW's moments stay fp32 (the master weights), and
// CPU autocast runs the matmuls of the forward and backward in bf16. The output head,
// log-softmax and losses stay fp32 (policy/logprobs.h): an RL ratio of two log-probs is
// sensitive to the head's precision (MiniMax-M1 technical report, §3.2, raised the LM
// head to fp32 to align training and inference probabilities).
//
// `auto` is bf16 only where the CPU multiplies bf16 natively (the AVX512_BF16 or AMX-BF16
// instructions; oneDNN uses them through LibTorch); elsewhere a bf16 matmul is emulated and
// many times slower than fp32 (bench/RESULTS.md), so auto means f32 there.
#pragma once

#include <string>
#include <string_view>

#include "policy/model_config.h"

namespace r1kit::train {

// Whether a CPU with these feature flags (the space-separated "flags" line of
// /proc/cpuinfo) multiplies bf16 natively: avx512_bf16 or amx_bf16 among them.
bool has_native_bf16(std::string_view cpu_flags);

// This machine's CPU flags: the first "flags" line of /proc/cpuinfo, read once ("" where
// there is none, which `auto` takes as f32).
const std::string& this_cpu_flags();

// The precision `compute` means on a CPU with `cpu_flags`: f32 and bf16 as they are,
// auto per has_native_bf16.
policy::Precision resolve_compute(policy::Compute compute,
                                  std::string_view cpu_flags = this_cpu_flags());

// "bf16", "f32", "bf16 (auto)" or "f32 (auto)": the start-up log of every trainer.
std::string describe_compute(policy::Compute compute,
                             std::string_view cpu_flags = this_cpu_flags());

}  // namespace r1kit::train
