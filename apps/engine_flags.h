// The in-process engine's flags of `r1kit generate`, `r1kit eval` and
// `r1kit rollout-worker`: --max-batch, --decode-threads, --dtype and --threads.
#pragma once

#include <torch/torch.h>

#include <CLI/CLI.hpp>
#include <cstdint>

#include "core/status.h"
#include "rollout/engine_settings.h"

namespace r1kit::apps {

struct EngineFlags {
  rollout::EngineSettings engine;
  int64_t threads = 0;  // LibTorch intra-op threads; 0 = its default

  // Sets LibTorch's intra-op threads when --threads was given.
  void apply_threads() const {
    if (threads > 0) at::set_num_threads(static_cast<int>(threads));
  }
  // InvalidArgument "--dtype 'x': use f32 or bf16" for a bad --dtype.
  StatusOr<policy::LoadOptions> load_options() const { return engine.load_options("--dtype"); }
};

inline void add_engine_flags(CLI::App* cmd, EngineFlags& f) {
  cmd->add_option("--max-batch", f.engine.max_batch, "KV-cache slots (sequences decoded together)")
      ->capture_default_str();
  cmd->add_option("--decode-threads", f.engine.decode_threads,
                  "threads for each decode step's heavy parts, at least --threads (1-64)")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  cmd->add_option("--dtype", f.engine.dtype, "f32 or bf16 weights and cache")
      ->capture_default_str();
  cmd->add_option("--threads", f.threads, "intra-op threads (0 = LibTorch's default)");
}

}  // namespace r1kit::apps
