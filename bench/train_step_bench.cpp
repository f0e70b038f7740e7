// Training-step throughput and model FLOP utilisation (MFU) of the policy presets, in
// fp32 and bf16, against the matmul peak measured in the same run; and the KV-cache
// bytes per token of MLA against the same model with full multi-head attention.
//
// FLOPs of one training step (forward + backward = 3x forward), counted as executed:
//   matmul weights: 2 * tokens * (active non-embedding weights + lm_head) per forward,
//     where "active" counts the top-k routed experts, the shared experts, the router,
//     attention projections and dense FFNs actually run for each token;
//   attention: 2 * B * H * T^2 * (d_qk + d_v) per layer per forward (the full masked
//     score and value products, as computed);
//   embeddings lookups, norms, RoPE and softmax are not counted.
// MFU = counted FLOP/s / peak FLOP/s, where the peak is the best of several square
// matmuls (2048^3) in the same dtype, measured in this process with the same threads.
//
// Usage: train_step_bench [--presets tiny,small] [--dtypes f32,bf16] [--batch 8]
//                         [--seq 256] [--steps 5] [--threads N]
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <sstream>

#include "bench/bench_util.h"
#include "policy/model.h"
#include "policy/model_config.h"

using namespace r1kit::policy;
using namespace r1kit::bench;

namespace {

// Forward FLOPs per step as documented above.
double step_flops(const ModelArgs& a, int64_t B, int64_t T) {
  const ParamCount pc = count_params(a);
  // Active weights used in matmuls: active params minus the embedding table(s) and
  // norm weights, plus the lm_head (which is the embedding when tied).
  const int64_t emb = a.vocab_size * a.dim;
  int64_t norms = a.dim * (2 * a.n_layers + 1);
  if (a.attention == AttentionKind::kMLA)
    norms += a.n_layers * (a.kv_lora_rank + (a.q_lora_rank > 0 ? a.q_lora_rank : 0));
  const double weights = static_cast<double>(pc.active - pc.embedding - norms + emb);
  const double tokens = static_cast<double>(B * T);
  const double dqk = a.attention == AttentionKind::kMLA ? a.qk_head_dim() : a.head_dim;
  const double dv = a.attention == AttentionKind::kMLA ? a.v_head_dim : a.head_dim;
  const double attn = 2.0 * B * a.n_heads * static_cast<double>(T) * T * (dqk + dv) * a.n_layers;
  return 3.0 * (2.0 * tokens * weights + attn);
}

}  // namespace

int main(int argc, char** argv) {
  std::string presets = "tiny,small", dtypes = "f32,bf16";
  int64_t B = 8, T = 256, steps = 5, threads = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--presets"))
      presets = argv[i + 1];
    else if (!std::strcmp(argv[i], "--dtypes"))
      dtypes = argv[i + 1];
    else if (!std::strcmp(argv[i], "--batch"))
      B = std::stoll(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--seq"))
      T = std::stoll(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--steps"))
      steps = std::stoll(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--threads"))
      threads = std::stoll(argv[i + 1]);
  }
  if (threads > 0) at::set_num_threads(static_cast<int>(threads));
  std::printf("threads %d, batch %lld x seq %lld, %lld timed steps after 1 warm-up\n",
              at::get_num_threads(), static_cast<long long>(B), static_cast<long long>(T),
              static_cast<long long>(steps));
  std::map<std::string, double> peak;
  for (const auto& d : split(dtypes)) {
    peak[d] = matmul_peak_gflops(d == "bf16" ? torch::kBFloat16 : torch::kFloat);
    std::printf("matmul peak %s: %.1f GFLOP/s\n", d.c_str(), peak[d]);
  }
  std::printf("\n| preset | dtype | params total / active | step s | tokens/s | GFLOP/s | MFU |\n");
  std::printf("|---|---|---|---|---|---|---|\n");
  for (const auto& p : split(presets)) {
    auto args_or = preset(p);
    if (!args_or.ok()) {
      std::fprintf(stderr, "%s\n", args_or.status().to_string().c_str());
      return 1;
    }
    const ModelArgs a = *args_or;
    for (const auto& d : split(dtypes)) {
      const auto dtype = d == "bf16" ? torch::kBFloat16 : torch::kFloat;
      Transformer m(a);
      m->init_weights(1);
      cast_model(*m, dtype);
      m->train();
      torch::optim::SGD opt(m->parameters(), torch::optim::SGDOptions(1e-4));
      auto ids = torch::randint(a.vocab_size, {B, T + 1}, torch::kLong);
      auto run_step = [&]() {
        auto out = m->forward(ids.narrow(1, 0, T));
        auto loss = torch::nn::functional::cross_entropy(out.logits.reshape({-1, a.vocab_size}),
                                                         ids.narrow(1, 1, T).reshape({-1})) +
                    out.aux_loss;
        opt.zero_grad();
        loss.backward();
        opt.step();
      };
      run_step();  // warm-up
      auto t = Clock::now();
      for (int64_t s = 0; s < steps; ++s) run_step();
      const double sec = seconds_since(t) / steps;
      const double gflops = step_flops(a, B, T) / sec / 1e9;
      const ParamCount pc = count_params(a);
      std::printf("| %s | %s | %.1fM / %.1fM | %.3f | %.0f | %.1f | %.1f%% |\n", p.c_str(),
                  d.c_str(), pc.total / 1e6, pc.active / 1e6, sec, B * T / sec, gflops,
                  100.0 * gflops / peak[d]);
      std::fflush(stdout);
    }
  }
  std::printf("\nKV cache per token (bf16 elements):\n");
  for (const auto& p : split(presets)) {
    const ModelArgs a = *preset(p);
    std::printf("  %s: MLA %lld B, same model with full MHA %lld B (%.1f%%)\n", p.c_str(),
                static_cast<long long>(a.kv_cache_bytes_per_token(2)),
                static_cast<long long>(a.mha_cache_bytes_per_token(2)),
                100.0 * a.kv_cache_bytes_per_token(2) / a.mha_cache_bytes_per_token(2));
  }
  return 0;
}
