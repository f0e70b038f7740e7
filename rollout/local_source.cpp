// LocalRolloutSource: see local_source.h.
#include "rollout/local_source.h"

#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <unordered_map>

#include "data/tokenizer.h"
#include "policy/logprobs.h"
#include "policy/model_config.h"

namespace r1kit::rollout {

LocalRolloutSource::LocalRolloutSource(policy::Transformer model, EngineOptions options,
                                       DecodeFn decode, int64_t initial_version)
    : args_(model->args()),
      model_(model),
      engine_(std::move(model), options, std::move(decode)),
      version_(initial_version) {}

std::unique_ptr<LocalRolloutSource> LocalRolloutSource::copy_of(policy::TransformerImpl& model,
                                                                EngineOptions options,
                                                                DecodeFn decode,
                                                                int64_t initial_version,
                                                                torch::Dtype dtype) {
  policy::Transformer copy(model.args());
  {
    torch::NoGradGuard no_grad;
    auto dst = copy->named_parameters();
    for (const auto& p : model.named_parameters()) dst[p.key()].copy_(p.value());
    auto dst_b = copy->named_buffers();
    for (const auto& b : model.named_buffers()) dst_b[b.key()].copy_(b.value());
  }
  policy::cast_model(*copy, dtype);
  return std::make_unique<LocalRolloutSource>(std::move(copy), options, std::move(decode),
                                              initial_version);
}

StatusOr<std::unique_ptr<LocalRolloutSource>> LocalRolloutSource::from_checkpoint(
    const std::string& dir, EngineOptions options, const policy::LoadOptions& load,
    int64_t initial_version) {
  ASSIGN_OR_RETURN(policy::Transformer model, policy::load_model(dir, load));
  DecodeFn decode;
  const std::string tok_path = data::tokenizer_file_in(dir);
  if (std::filesystem::exists(tok_path)) {
    ASSIGN_OR_RETURN(data::Tokenizer tok, data::Tokenizer::load(tok_path));
    decode = tokenizer_decoder(tok);
  }
  return std::make_unique<LocalRolloutSource>(std::move(model), options, std::move(decode),
                                              initial_version);
}

StatusOr<std::vector<Group>> LocalRolloutSource::generate(
    const GenerateRequest& request, const std::function<void(const Group&)>& on_group) {
  std::lock_guard<std::mutex> lock(mu_);
  return engine_.generate(request, version_.load(), on_group);
}

StatusOr<ScoreResult> LocalRolloutSource::score(const ScoreRequest& request) {
  const std::string problem =
      score_request_problem(request, args_.vocab_size, engine_.max_seq_len());
  if (!problem.empty()) return InvalidArgument("score: {}", problem);
  std::lock_guard<std::mutex> lock(mu_);
  torch::NoGradGuard no_grad;
  model_->eval();
  ScoreResult out;
  out.policy_version = version_.load();
  const int64_t n = static_cast<int64_t>(request.prompts.size());
  out.logprobs.resize(n);
  constexpr int64_t kRowsPerForward = 64;  // bounds the activations of one forward
  for (int64_t first = 0; first < n; first += kRowsPerForward) {
    const int64_t B = std::min(kRowsPerForward, n - first);
    int64_t T = 0;
    for (int64_t i = first; i < first + B; ++i)
      T = std::max<int64_t>(T, static_cast<int64_t>(request.completions[i].size()));
    if (T == 0) continue;
    auto comps = torch::zeros({B, T}, torch::kLong);  // [B, T] right-padded
    auto mask = torch::zeros({B, T}, torch::kFloat);  // [B, T]
    auto ca = comps.accessor<int64_t, 2>();
    auto ma = mask.accessor<float, 2>();
    std::vector<std::vector<int64_t>> prompts(request.prompts.begin() + first,
                                              request.prompts.begin() + first + B);
    for (int64_t b = 0; b < B; ++b) {
      const auto& c = request.completions[first + b];
      for (size_t t = 0; t < c.size(); ++t) {
        ca[b][t] = c[t];
        ma[b][t] = 1.f;
      }
    }
    auto lp = policy::completion_logprobs(*model_, prompts, comps, mask, /*temperature=*/1.0,
                                          /*with_entropy=*/false)
                  .logprobs.to(torch::kFloat)
                  .contiguous();  // [B, T]
    auto la = lp.accessor<float, 2>();
    for (int64_t b = 0; b < B; ++b) {
      auto& row = out.logprobs[first + b];
      row.resize(request.completions[first + b].size());
      for (size_t t = 0; t < row.size(); ++t) row[t] = la[b][t];
    }
  }
  return out;
}

Status LocalRolloutSource::update_weights(const NamedTensors& weights, int64_t version) {
  // The model's tensors by native name.
  std::unordered_map<std::string, torch::Tensor> own;
  for (const auto& p : model_->named_parameters()) own.emplace(p.key(), p.value());
  for (const auto& b : model_->named_buffers()) own.emplace(b.key(), b.value());

  // Resolve and check everything first: a bad update must change nothing.
  std::vector<std::pair<torch::Tensor, torch::Tensor>> plan;  // (destination, source)
  plan.reserve(weights.size());
  std::unordered_map<std::string, bool> seen;
  for (const auto& [name, t] : weights) {
    std::string native = name;
    if (!own.count(native)) {
      auto n = policy::from_hf_name(name, args_);
      if (!n.ok()) return InvalidArgument("update_weights: unknown tensor '{}'", name);
      if (n->empty()) continue;  // deliberately ignored (MTP copies of shared tensors)
      native = *n;
      if (!own.count(native)) return InvalidArgument("update_weights: unknown tensor '{}'", name);
    }
    if (seen[native]) return InvalidArgument("update_weights: tensor '{}' given twice", name);
    seen[native] = true;
    const auto& dst = own.at(native);
    if (!t.defined() || t.sizes() != dst.sizes())
      return InvalidArgument("update_weights: '{}' has shape {}, the model's is {}", name,
                             t.defined() ? fmt::format("{}", fmt::join(t.sizes(), "x")) : "none",
                             fmt::format("{}", fmt::join(dst.sizes(), "x")));
    if (!t.is_floating_point())
      return InvalidArgument("update_weights: '{}' is not a floating-point tensor", name);
    plan.emplace_back(dst, t);
  }
  for (const auto& [n, _] : own)
    if (!seen.count(n)) return InvalidArgument("update_weights: tensor '{}' is missing", n);

  std::lock_guard<std::mutex> lock(mu_);
  torch::NoGradGuard no_grad;
  for (auto& [dst, src] : plan) dst.copy_(src);
  version_.store(version);
  return OkStatus();
}

}  // namespace r1kit::rollout
