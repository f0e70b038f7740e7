// RolloutSource: where a trainer gets groups of sampled completions from, and where it
// sends new weights. Two implementations: the in-process engine (the embedded
// default, no server) and a pool of gRPC rollout workers. Trainers (sft/, grpo/) see
// only this interface and never include gRPC headers (docs/protocol.md).
//
// Log-prob convention (shared with policy/logprobs.h and proto/rollout.proto): the
// log-prob of a sampled token is that of the processed distribution it was drawn from,
// softmax(logits / temperature) truncated by top-k/top-p/min-p and renormalised
// (policy/truncation.h), in fp32; with no filter on, the full tempered softmax. With
// temperature 0 (greedy) it is the full log-prob at temperature 1. This is exactly what
// policy::token_logprobs recomputes given the same truncation, so behaviour and trainer
// log-probs agree (docs/rollout.md, "The log-prob convention").
//
// Stopping: only stop_token_ids, stop_strings and max_new_tokens end a completion; EOS
// is not implicit (put the tokenizer's eos id in stop_token_ids).
//
// Scoring (score()): the log-probs a source's model gives to tokens it did not sample,
// e.g. a teacher's log-probs of a student's completions (on-policy distillation,
// docs/distill.md). These are of the model's own distribution: the full softmax at
// temperature 1, no truncation, fp32, whatever the source samples with.
//
// Implementations: LocalRolloutSource (rollout/local_source.h, over rollout/engine.h)
// and the gRPC client pool (rollout/grpc/).
//
// Seeding: the random stream of sample j of the prompt with index i is
// derive_seed(sampling.seed, {i, j}); the same request gives the same tokens whatever
// the batch composition, the worker, or the order in which groups finish.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"

namespace r1kit::rollout {

struct SamplingParams {
  double temperature = 1.0;               // 0 = greedy (argmax); must be >= 0
  int64_t top_k = 0;                      // keep the k most likely tokens; 0 = off
  double top_p = 1.0;                     // nucleus: smallest set with mass >= top_p; 1 = off
  double min_p = 0.0;                     // drop tokens with p < min_p * p_max; 0 = off
  int64_t max_new_tokens = 256;           // completion length cap, in tokens
  std::vector<int64_t> stop_token_ids;    // finishing on one keeps it in the output
  std::vector<std::string> stop_strings;  // finishing on one keeps the token that
                                          // completed it; needs a tokenizer
  uint64_t seed = 0;                      // see "Seeding" above
};

enum class FinishReason { kStop, kLength, kAbort };
const char* finish_reason_name(FinishReason r);  // "stop", "length", "abort"

// One prompt of a request. `index` identifies it for seeding and ordering: the
// caller's index of the prompt in its batch, kept when a group is re-sent elsewhere.
struct PromptInput {
  std::vector<int64_t> ids;  // token ids, already rendered through the chat template
  int64_t index = 0;
};

// Exact mode (docs/rollout.md, "Exact mode"): the engine runs the batch-invariant exact
// forward (policy/exact_forward.h) in this precision, so that the log-probs it returns are
// bitwise those a trainer's exact forward computes for the same tokens and weights.
enum class ExactMode { kOff, kF32, kBF16 };
const char* exact_mode_name(ExactMode m);  // "off", "f32", "bf16"

struct GenerateRequest {
  std::vector<PromptInput> prompts;
  int64_t group_size = 1;  // G completions per prompt
  SamplingParams sampling;
  bool record_experts = false;  // fill Group::prompt_experts and Completion::routed_experts
  ExactMode exact = ExactMode::kOff;
  // bf16 compute (docs/rollout.md, "bf16 compute"): the decoder's linear layers on bf16
  // copies of the weights, rounded as the trainer's bf16 autocast rounds (policy/
  // bf16_weights.h). Ignored in exact mode (which has its own precision) and by a model
  // whose weights are bf16 already.
  bool bf16_compute = false;
};

// MoE routing of a run of tokens (routing replay, grpo/routing_replay.h): the expert ids
// each token was routed to in each MoE layer, recorded by the forward that took the token
// as input. Empty for a dense model or when not asked for.
struct RoutedExperts {
  int64_t layers = 0;        // L: MoE layers of the model
  int64_t k = 0;             // K: routed experts per token
  std::vector<int16_t> ids;  // [tokens, L, K] row-major; -1 = not recorded
};

struct Completion {
  std::vector<int64_t> token_ids;  // generated tokens only (no prompt)
  std::vector<float> logprobs;     // one per token, see the convention above
  FinishReason finish_reason = FinishReason::kLength;
  int64_t policy_version = 0;  // version of the weights that produced every token
  // One entry per token of token_ids; the last token's is -1 (no forward took it as
  // input). Only with GenerateRequest::record_experts.
  RoutedExperts routed_experts;
};

struct Group {
  int64_t prompt_index = 0;             // PromptInput::index
  std::vector<Completion> completions;  // group_size entries, sample order
  RoutedExperts prompt_experts;         // one entry per prompt token (record_experts)
  // Set by CheckedRolloutSource (rollout/checked_source.h) when a completion failed
  // completion_problem twice: every completion is then empty (FinishReason::kAbort) and
  // the group cannot be judged.
  bool rejected = false;
};

// Sequences to score: row i is prompts[i] followed by completions[i]; what is scored is
// every token of completions[i] (given the prompt and the completion tokens before it).
struct ScoreRequest {
  std::vector<std::vector<int64_t>> prompts;      // [B] token ids, each non-empty
  std::vector<std::vector<int64_t>> completions;  // [B] token ids (may be empty)
};

// Per-token log-probs of a ScoreRequest: logprobs[i][t] = log p(completions[i][t] |
// prompts[i], completions[i][<t]) under the full softmax at temperature 1, fp32, nats.
struct ScoreResult {
  std::vector<std::vector<float>> logprobs;  // [B][len(completions[i])]
  int64_t policy_version = 0;                // the weights that scored them
};

// Named weights: the model's own names, as Transformer::named_parameters and
// named_buffers give them ("layers.0.self_attn.kv_b_proj.weight"), or their Hugging
// Face checkpoint names ("model.layers.0.self_attn.kv_b_proj.weight", as
// policy::export_tensors gives them); LocalRolloutSource accepts both.
using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

class RolloutSource {
 public:
  virtual ~RolloutSource() = default;

  // Generates group_size completions for every prompt. `on_group`, when set, is called
  // once per group as soon as it is finished (any order, possibly from another thread
  // but never concurrently), so scoring can start early. Returns every group, in the
  // order of request.prompts.
  virtual StatusOr<std::vector<Group>> generate(
      const GenerateRequest& request, const std::function<void(const Group&)>& on_group = {}) = 0;

  // Replaces the weights with `weights` (every parameter and buffer of the model) and
  // tags what is generated afterwards with `version`. Atomic: no completion ever
  // comes from half-updated weights. Returns once every replica has them.
  virtual Status update_weights(const NamedTensors& weights, int64_t version) = 0;

  // The version of the weights the next generate() uses.
  virtual int64_t policy_version() const = 0;

  // Scores given tokens (see "Scoring" above). Atomic with respect to update_weights,
  // like generate(). Bad requests (no row, an empty prompt, a row count mismatch, ids
  // outside the vocabulary, rows longer than the model takes) get InvalidArgument naming
  // the row. A source that cannot score returns Unimplemented.
  virtual StatusOr<ScoreResult> score(const ScoreRequest& request);
};

// Why `request` cannot be scored by a model of `vocab_size` ids taking sequences of at
// most `max_seq_len` tokens (0 = unchecked), or "" when it can: the checks every
// implementation of score() makes first.
std::string score_request_problem(const ScoreRequest& request, int64_t vocab_size,
                                  int64_t max_seq_len);
// Why `result` is not a valid answer to `request` (a row count or a row length that
// differs, a log-prob that is not finite or is above 0), or "" when it is.
std::string score_result_problem(const ScoreRequest& request, const ScoreResult& result);

// Why completion `c` of a request with `sampling` cannot be trained on, or "" when it
// can: more tokens than sampling.max_new_tokens, a token id outside [0, vocab_size), a
// log-prob count that differs from the token count, or a log-prob that is not finite.
// The check at the boundary where completions come in from any source.
std::string completion_problem(const Completion& c, const SamplingParams& sampling,
                               int64_t vocab_size);

}  // namespace r1kit::rollout
