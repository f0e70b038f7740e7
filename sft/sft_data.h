// SFT data: prompt/response examples as token ids, and the batches the trainer sees,
// packed or padded, with the loss on response tokens only.
//
// Follows the usual SFT recipe (torchtune's PackedDataset, TRL's completion-only loss):
// - a sample is prompt ids followed by response ids (+ EOS); the prompt and response
//   are tokenized separately, so the ids are exactly what a policy sampling after the
//   prompt would produce;
// - packing puts several samples in one row; attention stays inside each sample
//   (block-diagonal causal mask) and RoPE positions restart at each sample, so a
//   packed row computes the same per-token losses as the samples alone.
// Loss normalisation is the caller's: batches report how many tokens their loss covers
// so gradient accumulation can divide by the whole step's count.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "data/chat_template.h"
#include "data/tokenizer.h"

namespace r1kit::sft {

struct SftSample {
  std::vector<int64_t> ids;  // prompt ids ++ response ids (the response ends with EOS)
  int64_t n_prompt = 0;      // ids[0, n_prompt) are the prompt (no loss)
  // Multi-turn conversations: trained[i] != 0 when ids[i] is in an assistant turn (then
  // n_prompt is the first such token). Empty: every token from n_prompt on is trained.
  std::vector<uint8_t> trained = {};
};

// A text example before tokenization.
struct TextExample {
  std::string question;                      // the user's turn, rendered by the template
  std::string response;                      // the assistant's answer (the trained part)
  std::optional<std::string> system_prompt;  // overrides the template's preamble
  // A multi-turn conversation (Jinja chat templates only): its messages, every assistant
  // turn trained; question, response and system_prompt are then unused. Null otherwise.
  nlohmann::ordered_json messages;
};

// Reads a JSONL file of {"prompt": ..., "response": ...} or {"messages": [{"role":
// "system"|"user"|"assistant", "content": ...}, ...]} objects (one system message at
// most, then exactly one user and one assistant turn). With `multi_turn` (a Jinja chat
// template renders them, docs/chat_templates.md) any other conversation with an
// assistant message is kept whole in TextExample::messages. Blank lines are skipped.
// Errors name the file and line.
StatusOr<std::vector<TextExample>> read_sft_jsonl(const std::string& path, bool multi_turn = false);

// Renders and tokenizes: ids = encode(prompt) ++ encode(response) ++ [eos] (no eos for a
// Jinja template, whose rendering ends the turn: <|im_end|>, <|eot_id|>, ...). A
// multi-turn example (kJinja) is rendered by data::render_assistant_spans (one sample;
// or one per assistant turn, render_assistant_turns, when the template is not
// prefix-stable) and encoded piece by piece, the assistant spans trained and no EOS
// added (the template ends its turns). Samples longer than max_len are truncated; one
// with no trained token left (a prompt alone of max_len tokens or more) is dropped and
// counted in *dropped. Errors: a template that fails to render an example.
StatusOr<std::vector<SftSample>> tokenize_examples(const std::vector<TextExample>& examples,
                                                   const data::Tokenizer& tok,
                                                   data::ChatTemplateOptions opts, int64_t max_len,
                                                   int64_t* dropped = nullptr);

// The text a tokenizer is trained on for `ex` (the whole rendered example).
StatusOr<std::string> example_text(const TextExample& ex, const data::ChatTemplateOptions& opts);

struct SftBatch {
  torch::Tensor inputs;       // [B, T] int64 token ids (pad id where empty)
  torch::Tensor targets;      // [B, T] int64 next tokens (0 where the mask is 0)
  torch::Tensor loss_mask;    // [B, T] float32: 1 where targets[b, t] is a response token
  torch::Tensor positions;    // [B, T] int64 RoPE positions (restart per packed sample)
  torch::Tensor attn_mask;    // [B, T, T] bool, or undefined for plain causal attention
  torch::Tensor token_mask;   // [B, T] bool: true at sample tokens, false at padding
  int64_t n_loss_tokens = 0;  // loss_mask.sum()
  int64_t n_tokens = 0;       // non-padding input tokens
};

// One sample per row, padded on the right to the longest sample.
SftBatch make_padded_batch(const std::vector<const SftSample*>& samples, int64_t pad_id);

// Rows of up to row_len tokens, each holding the samples listed for it (in order).
SftBatch make_packed_batch(const std::vector<std::vector<const SftSample*>>& rows, int64_t row_len,
                           int64_t pad_id);

// Next-fit packing of samples (in the given order) into rows of up to row_len tokens:
// returns, per row, the indices into `order`'s samples. Samples longer than row_len
// must have been truncated before.
std::vector<std::vector<int64_t>> pack_rows(const std::vector<const SftSample*>& order,
                                            int64_t row_len);

}  // namespace r1kit::sft
