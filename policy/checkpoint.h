// Model checkpoints: Hugging Face import/export and r1kit's native checkpoint directory.
//
// The native directory *is* a Hugging Face one (docs/model.md, "Checkpoints"): config.json,
// model.safetensors (or shards + model.safetensors.index.json), and the tokenizer's files
// when the model has one (tokenizer.model, or tokenizer.json + tokenizer_config.json). So a
// model trained here loads in transformers, and a DeepSeek-V2/V3, Qwen2, Qwen3, Qwen3-MoE or
// Llama checkpoint loads here. Names follow the Hugging Face modeling code of those families
// (docs/model.md, "Tensor names"):
//   r1kit module path            Hugging Face tensor name
//   embed_tokens.weight          model.embed_tokens.weight
//   layers.N.<rest>              model.layers.N.<rest>
//   norm.weight                  model.norm.weight
//   lm_head.weight               lm_head.weight (absent when tied)
//   mtp.K.block.<rest>           model.layers.{L+K}.<rest>
//   mtp.K.<enorm|hnorm|eh_proj|shared_head.norm>.weight  model.layers.{L+K}.<same>
// The MTP layer's embed_tokens / shared_head.head copies are written on export (as the
// DeepSeek-V3 release has them) and ignored on import (they are the shared ones).
// FP8 (F8_E4M3 + weight_scale_inv) tensors are dequantised on import.
#pragma once

#include <torch/torch.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"
#include "data/prompt_format.h"
#include "policy/model.h"

namespace r1kit::policy {

struct SaveOptions {
  int64_t max_shard_bytes = 4LL << 30;  // shard model.safetensors above this size
  // A tokenizer (what data::Tokenizer::load accepts) whose files are copied into <dir>
  // byte for byte when set: tokenizer.model, or tokenizer.json (+ tokenizer_config.json).
  std::string tokenizer_path;
  torch::Dtype dtype = torch::kFloat;  // tensors are written in this dtype (F32 or BF16)
  // The prompt format the model was trained with, when set: tokenizer_config.json gets
  // its chat_template and record (data::merge_tokenizer_config; a copied one keeps its
  // other keys byte for byte).
  std::optional<data::PromptFormat> prompt_format;
};

struct LoadOptions {
  torch::Dtype dtype = torch::kFloat;  // model weights are cast to this dtype
  // Extra tensors in the file that the model does not have are an error when strict;
  // otherwise they are skipped with a warning. Missing tensors are always an error.
  bool strict = true;
};

// HF name of a native parameter/buffer name, and back. The inverse returns "" for
// tensors that are deliberately ignored (MTP copies of the shared embedding and head,
// rotary inv_freq buffers).
std::string to_hf_name(const std::string& native, const ModelArgs& args);
StatusOr<std::string> from_hf_name(const std::string& hf, const ModelArgs& args);

// The model's tensors under their HF names, in `dtype`, ready to write.
std::vector<std::pair<std::string, torch::Tensor>> export_tensors(TransformerImpl& model,
                                                                  torch::Dtype dtype);

// Writes config.json + safetensors (+ the tokenizer's files, + the prompt format) into
// `dir`, atomically: the directory is built beside the target and renamed into place.
Status save_model(TransformerImpl& model, const std::string& dir, const SaveOptions& opts = {});

// Loads a native or Hugging Face checkpoint directory (config.json + safetensors). The model
// is built in opts.dtype and each tensor converted straight into it, so a bf16 load never
// holds an fp32 copy nor the whole file (docs/model.md, "Loading rules").
StatusOr<Transformer> load_model(const std::string& dir, const LoadOptions& opts = {});

// Every parameter and buffer of `model` under its native name, to one safetensors file
// and back (a trainer's extra model, e.g. GRPO's frozen reference, inside a training
// checkpoint). Loading needs every tensor, with the model's shapes.
Status save_state(TransformerImpl& model, const std::string& path);
Status load_state(TransformerImpl& model, const std::string& path);

// Loads tensors from `dir` into an existing model with matching args.
Status load_weights(TransformerImpl& model, const std::string& dir, const LoadOptions& opts = {});

}  // namespace r1kit::policy
