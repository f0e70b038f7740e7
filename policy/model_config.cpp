#include "policy/model_config.h"

#include "policy/checkpoint.h"

namespace r1kit::policy {

namespace {
void apply_overrides(const ModelConfig& c, ModelArgs& a) {
  if (c.n_mtp_layers >= 0) a.n_mtp_layers = c.n_mtp_layers;
  if (c.mtp_lambda >= 0) a.mtp_lambda = c.mtp_lambda;
  if (c.aux_loss_alpha >= 0) a.aux_loss_alpha = c.aux_loss_alpha;
  if (c.bias_update_gamma >= 0) a.bias_update_gamma = c.bias_update_gamma;
}
}  // namespace

StatusOr<ModelArgs> ModelConfig::resolve_args(int64_t vocab_size) const {
  ASSIGN_OR_RETURN(ModelArgs a, policy::preset(preset, vocab_size));
  apply_overrides(*this, a);
  RETURN_IF_ERROR(a.validate());
  return a;
}

void cast_model(TransformerImpl& model, torch::Dtype dtype) {
  // Keep the exact fp32 correction biases aside: a round trip through bf16 would round them.
  std::vector<std::pair<torch::Tensor, torch::Tensor>> biases;
  for (auto& b : model.named_buffers())
    if (b.key().find("e_score_correction_bias") != std::string::npos)
      biases.emplace_back(b.value(), b.value().detach().clone().to(torch::kFloat));
  model.to(dtype);
  for (auto& [buffer, exact] : biases) buffer.set_data(exact);
}

StatusOr<Transformer> ModelConfig::build(int64_t vocab_size, uint64_t seed) const {
  const int64_t bytes = c10::elementSize(torch_dtype());
  if (from.empty()) {
    ASSIGN_OR_RETURN(ModelArgs a, resolve_args(vocab_size));
    RETURN_IF_ERROR(check_model_memory(a, bytes, "model.preset=" + preset));
    Transformer m(a);
    m->init_weights(seed);
    cast_model(*m, torch_dtype());
    return m;
  }
  ASSIGN_OR_RETURN(ModelArgs a, load_hf_config(from + "/config.json"));
  if (vocab_size > 0 && a.vocab_size < vocab_size)
    return InvalidArgument("model.from={}: vocabulary {} is smaller than the tokenizer's {}", from,
                           a.vocab_size, vocab_size);
  const int64_t file_mtp = a.n_mtp_layers;
  apply_overrides(*this, a);
  if (a.n_mtp_layers != file_mtp)
    return InvalidArgument("model.n_mtp_layers={} differs from the checkpoint's {} ({})",
                           a.n_mtp_layers, file_mtp, from);
  RETURN_IF_ERROR(check_model_memory(a, bytes, from + "/config.json"));
  Transformer m(a, torch_dtype(), /*init=*/false);  // no fp32 copy of a bf16 model
  RETURN_IF_ERROR(load_weights(*m, from));
  return m;
}

}  // namespace r1kit::policy
