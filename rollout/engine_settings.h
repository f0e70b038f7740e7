// EngineSettings: the in-process engine's settings as recipes and command-line flags give
// them (the GRPO recipe's rollout section, the distillation teacher, `r1kit generate`,
// `r1kit eval`, `r1kit rollout-worker`), turned into EngineOptions and LoadOptions in one
// place.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"
#include "policy/checkpoint.h"
#include "rollout/engine.h"

namespace r1kit::rollout {

struct EngineSettings {
  int64_t max_batch = 64;      // KV-cache slots: sequences decoded together
  int64_t decode_threads = 1;  // threads for each decode step (EngineOptions::decode_threads)
  std::string dtype = "f32";   // weights and cache: f32 | bf16

  // The engine's options, with `max_seq_len` tokens per slot (0: the model's).
  EngineOptions engine_options(int64_t max_seq_len = 0) const;
  // The checkpoint's load options in `dtype`; InvalidArgument "<what> 'x': use f32 or
  // bf16" for any other dtype.
  StatusOr<policy::LoadOptions> load_options(std::string_view what = "dtype") const;
};

}  // namespace r1kit::rollout
