// grpo.log_samples: every N steps, every completion of the step with its rewards is
// appended to RUN/samples.jsonl (TRL's GRPOConfig.log_completions) and one of them is
// printed, so a person sees what the policy writes while it trains (docs/grpo.md).
//
// One line per completion:
//   {"step": 10, "problem": 3, "sample": 0, "prompt": "...", "completion": "...",
//    "answer": "42", "reward": 1.5, "rewards": {"accuracy": 1, "format": 0.5},
//    "finish_reason": "stop", "length": 57}
// A reward that could not judge a sample is null. A resumed run first drops the lines of
// steps after its checkpoint, as for metrics.jsonl.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/status.h"
#include "grpo/rollout_step.h"
#include "rollout/engine.h"

namespace r1kit::grpo {

// The records of every completion of `rollout`, taken at step `step_done` (1-based), its
// tokens decoded by `decode` (rollout::tokenizer_decoder of the run's tokenizer).
std::vector<nlohmann::json> sample_records(const RolloutBatch& rollout,
                                           const rollout::DecodeFn& decode, int64_t step_done);

// A record as the console shows it: a header line with the step, rewards and answer,
// then the completion (cut to `max_chars`, marked "[...]").
std::string format_sample(const nlohmann::json& record, size_t max_chars = 1200);

class SampleLog {
 public:
  // `every` = grpo.log_samples (0: off, nothing is written); `path` = RUN/samples.jsonl.
  // `resume_step` >= 0 drops the lines of later steps first.
  static StatusOr<SampleLog> open(const std::string& path, int64_t every, int64_t resume_step);

  // At every `every`-th step: appends every record of `rollout` and prints the first.
  Status log(const RolloutBatch& rollout, const rollout::DecodeFn& decode, int64_t step_done) const;

 private:
  std::string path_;
  int64_t every_ = 0;
};

}  // namespace r1kit::grpo
