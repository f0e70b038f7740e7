// LocalRolloutSource: the in-process RolloutSource, the embedded default (no server).
// It owns an Engine over its own copy of the policy and applies weight updates to that
// copy under the same lock as generation.
//
// The GRPO loop hands it the new weights after every step (docs/grpo-training.md, "One
// step", step 6). It copies them instead of sharing the trainer's tensors: the trainer
// keeps training (its parameters change in place during the optimizer step) while the
// source still generates with the version it was given, and the rollout model may use
// another dtype (bf16) than the trainer's master weights.
//
// Thread-safety: every method may be called from any thread. generate() and
// update_weights() exclude each other (one mutex): an update waits for the running
// generate() to end, and a generate() never sees half-updated weights. abort() does
// not wait; it ends the running generate() at its next decode step.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>

#include "policy/checkpoint.h"
#include "policy/model.h"
#include "rollout/engine.h"
#include "rollout/rollout_source.h"

namespace r1kit::rollout {

class LocalRolloutSource final : public RolloutSource {
 public:
  // The source takes `model` as its own: nothing else may change its weights.
  // `decode` is needed only for stop strings.
  LocalRolloutSource(policy::Transformer model, EngineOptions options = {}, DecodeFn decode = {},
                     int64_t initial_version = 0);

  // A source over a copy of `model` (e.g. the trainer's policy) in `dtype`: a fresh
  // Transformer with the same args, every parameter and buffer copied. The trainer's
  // model is not referenced afterwards.
  static std::unique_ptr<LocalRolloutSource> copy_of(policy::TransformerImpl& model,
                                                     EngineOptions options = {},
                                                     DecodeFn decode = {},
                                                     int64_t initial_version = 0,
                                                     torch::Dtype dtype = torch::kFloat);

  // Loads a checkpoint directory (config.json + safetensors), and its tokenizer.json or
  // tokenizer.model when present (for stop strings).
  static StatusOr<std::unique_ptr<LocalRolloutSource>> from_checkpoint(
      const std::string& dir, EngineOptions options = {}, const policy::LoadOptions& load = {},
      int64_t initial_version = 0);

  // See RolloutSource. Bad requests (no prompt, empty prompt, ids outside the
  // vocabulary, n < 1, max_new_tokens over the cache, bad sampling values) return
  // InvalidArgument naming the problem.
  StatusOr<std::vector<Group>> generate(
      const GenerateRequest& request,
      const std::function<void(const Group&)>& on_group = {}) override;

  // Copies `weights` into the model and sets the version. Names are the model's own
  // (Transformer::named_parameters / named_buffers: "layers.0.self_attn.kv_b_proj.weight")
  // or their Hugging Face form ("model.layers.0..."); every parameter and buffer must be
  // given once, with its shape (any float dtype: values are cast). Everything is checked
  // before anything is copied, so a bad update changes nothing.
  Status update_weights(const NamedTensors& weights, int64_t version) override;

  int64_t policy_version() const override { return version_.load(); }

  // The model's log-probs of the given tokens (RolloutSource::score): one no-grad forward
  // per 64 rows through policy::completion_logprobs at temperature 1, under the same lock
  // as generate() and update_weights(). Rows longer than max_seq_len() are refused.
  StatusOr<ScoreResult> score(const ScoreRequest& request) override;

  // Ends the running generate() early: its unfinished samples get FinishReason::kAbort.
  void abort() { engine_.abort(); }

  // Counters of the last generate().
  EngineStats last_stats() const { return engine_.last_stats(); }
  const policy::ModelArgs& model_args() const { return args_; }
  int64_t max_seq_len() const { return engine_.max_seq_len(); }

 private:
  policy::ModelArgs args_;
  policy::Transformer model_;
  Engine engine_;
  std::mutex mu_;  // generate() vs update_weights()
  std::atomic<int64_t> version_;
};

}  // namespace r1kit::rollout
