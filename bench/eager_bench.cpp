// r1kit against a PyTorch-eager implementation of the same model, side by side: training
// steps (f32, and bf16 autocast over fp32 weights) and batched decode, alternating within
// each round so that the host's speed drifts touch both alike.
//
// The eager reference is written here from the equations of the Hugging Face DeepSeek-V3
// modeling code, the way a Python user running transformers + TRL on a CPU gets it:
//   - MLA without absorption: the latent is expanded to per-head keys and values
//     (DeepSeek-V2, section 2.1.2, eq. 9-10) and attention is a masked softmax over
//     Q K^T (no fused kernel);
//   - MoE (group-limited top-k routing) as a loop over the routed experts, each gathering its
//   tokens with a mask and
//     adding its weighted output back (index_add), plus the shared expert;
//   - decode with a cache of the expanded keys and values, concatenated every step.
// It takes its weights from the r1kit model (the same checkpoint) and is checked to give
// the same loss (within 1e-4, f32) before anything is timed.
//
// Usage: eager_bench [--preset small] [--batch 4] [--seq 256] [--rounds 5]
//                    [--decode-batch 64] [--prompt 16] [--new 64] [--threads N]
//                    [--sections train,decode] [--ab 1]
// Decode: r1kit's engine with decode_threads = --threads over one LibTorch thread, the
// eager model with --threads intra-op threads (each side's way of using the cores); in
// fp32, then on a CPU with native bf16 in each side's bf16 (r1kit's bf16 compute, the
// eager model's weights in bf16).
// Prints per round the seconds of each side, then tokens/s and the r1kit/eager ratios
// (medians over rounds); for training also each side's share of the matmul peak of the
// step's dtype (bench_util.h: step_flops over the best 2048^3 matmul at these threads,
// measured before every round). --ab 1 adds a third side to the training rounds: r1kit with the
// MoE layers' per-expert reference path (ExecutionContext::kernels.grouped_experts off),
// the same weights, so that the grouped path's gain is measured in the same rotation.
#include <torch/torch.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "core/blas_threads.h"
#include "core/torch_compat.h"
#include "policy/model.h"
#include "policy/model_config.h"
#include "rollout/engine.h"
#include "train/compute.h"
#include "train/fused_adamw.h"
#include "train/optim.h"

using namespace r1kit;
using namespace r1kit::policy;
using namespace r1kit::bench;

namespace {

// The eager model: a name -> tensor map of the r1kit model's weights (cloned, so each
// side trains its own copy) and a forward in the Hugging Face structure.
class Eager {
 public:
  explicit Eager(const Transformer& m) : a_(m->args()) {
    for (const auto& p : m->named_parameters())
      w_[p.key()] = p.value().detach().clone().requires_grad_(true);
    for (const auto& b : m->named_buffers()) w_[b.key()] = b.value().detach().clone();
  }

  // The weights in `dtype`, as a model loaded with Hugging Face's torch_dtype is.
  void cast(torch::Dtype dtype) {
    for (auto& [name, t] : w_)
      if (t.is_floating_point()) t = t.detach().to(dtype);
  }

  std::vector<torch::Tensor> parameters() const {
    std::vector<torch::Tensor> out;
    for (const auto& [name, t] : w_)
      if (t.requires_grad()) out.push_back(t);
    return out;
  }

  // Logits [B, T, V] of `ids` [B, T]; with `cache`, the keys and values of every layer
  // are appended to it (decode), and positions start at the cached length.
  torch::Tensor forward(const torch::Tensor& ids,
                        std::vector<std::pair<torch::Tensor, torch::Tensor>>* cache) {
    const int64_t B = ids.size(0), T = ids.size(1);
    const int64_t past = cache && !cache->empty() ? (*cache)[0].first.size(2) : 0;
    auto x = torch::embedding(w("embed_tokens.weight"), ids);
    auto pos = torch::arange(past, past + T, torch::kFloat);
    for (int64_t l = 0; l < a_.n_layers; ++l) {
      const std::string p = "layers." + std::to_string(l) + ".";
      auto h = rms_norm(x, p + "input_layernorm.weight");
      std::pair<torch::Tensor, torch::Tensor>* kv = nullptr;
      if (cache) {
        if (static_cast<int64_t>(cache->size()) <= l) cache->emplace_back();
        kv = &(*cache)[l];
      }
      x = x + attention(h, pos, p + "self_attn.", kv, B, T);
      h = rms_norm(x, p + "post_attention_layernorm.weight");
      x = x + (a_.is_moe_layer(l) ? moe(h, p + "mlp.") : mlp(h, p + "mlp."));
    }
    x = rms_norm(x, "norm.weight");
    return linear(x, "lm_head.weight");
  }

 private:
  const torch::Tensor& w(const std::string& name) const {
    auto it = w_.find(name);
    TORCH_CHECK(it != w_.end(), "eager reference: no weight ", name);
    return it->second;
  }
  torch::Tensor linear(const torch::Tensor& x, const std::string& name) const {
    return torch::matmul(x, w(name).t());
  }
  torch::Tensor rms_norm(const torch::Tensor& x, const std::string& name) const {
    auto xf = x.to(torch::kFloat);
    auto y = xf * torch::rsqrt(xf.pow(2).mean(-1, true) + a_.norm_eps);
    return w(name) * y.to(x.scalar_type());
  }
  // Rotates pairs (2i, 2i+1) of the last dimension by position * theta^(-2i/d).
  torch::Tensor rope(const torch::Tensor& x, const torch::Tensor& pos) const {  // [B, h, T, d]
    const int64_t d = x.size(-1);
    auto inv = torch::pow(a_.rope_theta, -torch::arange(0, d, 2, torch::kFloat) / d);
    auto ang = torch::outer(pos, inv);  // [T, d/2]
    auto c = torch::cos(ang), s = torch::sin(ang);
    auto xr = x.to(torch::kFloat).unflatten(-1, {d / 2, 2});
    auto x0 = xr.select(-1, 0), x1 = xr.select(-1, 1);
    return torch::stack({x0 * c - x1 * s, x0 * s + x1 * c}, -1).flatten(-2).to(x.scalar_type());
  }
  torch::Tensor attention(const torch::Tensor& x, const torch::Tensor& pos, const std::string& p,
                          std::pair<torch::Tensor, torch::Tensor>* kv, int64_t B, int64_t T) {
    const int64_t H = a_.n_heads, dn = a_.qk_nope_head_dim, dr = a_.qk_rope_head_dim,
                  dv = a_.v_head_dim, dc = a_.kv_lora_rank;
    auto q = a_.q_lora_rank > 0
                 ? linear(rms_norm(linear(x, p + "q_a_proj.weight"), p + "q_a_layernorm.weight"),
                          p + "q_b_proj.weight")
                 : linear(x, p + "q_proj.weight");
    q = q.view({B, T, H, dn + dr}).transpose(1, 2);  // [B, H, T, dn + dr]
    auto ckv = linear(x, p + "kv_a_proj_with_mqa.weight");
    auto k_pe = ckv.narrow(-1, dc, dr).view({B, T, 1, dr}).transpose(1, 2);
    auto kvx =
        linear(rms_norm(ckv.narrow(-1, 0, dc), p + "kv_a_layernorm.weight"), p + "kv_b_proj.weight")
            .view({B, T, H, dn + dv})
            .transpose(1, 2);
    auto q_all = torch::cat({q.narrow(-1, 0, dn), rope(q.narrow(-1, dn, dr), pos)}, -1);
    auto k_all = torch::cat({kvx.narrow(-1, 0, dn), rope(k_pe, pos).expand({B, H, T, dr})}, -1);
    auto v = kvx.narrow(-1, dn, dv);
    if (kv) {  // the expanded cache, grown by concatenation
      kv->first = kv->first.defined() ? torch::cat({kv->first, k_all}, 2) : k_all;
      kv->second = kv->second.defined() ? torch::cat({kv->second, v}, 2) : v;
      k_all = kv->first;
      v = kv->second;
    }
    const int64_t S = k_all.size(2);
    auto scores = torch::matmul(q_all, k_all.transpose(-1, -2)) * a_.softmax_scale();
    if (T > 1) {
      auto mask = torch::ones({T, S}, torch::kBool).triu(S - T + 1);
      scores = scores.masked_fill(mask, -INFINITY);
    }
    auto o = torch::matmul(torch::softmax(scores.to(torch::kFloat), -1).to(v.scalar_type()), v);
    return linear(o.transpose(1, 2).reshape({B, T, H * dv}), p + "o_proj.weight");
  }
  torch::Tensor mlp(const torch::Tensor& x, const std::string& p) const {
    return linear(torch::silu(linear(x, p + "gate_proj.weight")) * linear(x, p + "up_proj.weight"),
                  p + "down_proj.weight");
  }
  torch::Tensor moe(const torch::Tensor& x, const std::string& p) const {
    const auto shape = x.sizes().vec();
    auto xf = x.reshape({-1, x.size(-1)});
    auto logits = torch::matmul(xf.to(torch::kFloat), w(p + "gate.weight").to(torch::kFloat).t());
    auto scores =
        a_.score_func == ScoreFunc::kSoftmax ? torch::softmax(logits, -1) : torch::sigmoid(logits);
    auto choice = scores.detach();
    if (a_.expert_bias) choice = choice + w(p + "gate.e_score_correction_bias");
    if (a_.n_expert_groups > 1) {  // group-limited routing (DeepSeek-V3, section 2.1.2)
      const int64_t N = choice.size(0), G = a_.n_expert_groups;
      auto grouped = choice.view({N, G, -1});
      auto group_score =
          a_.expert_bias ? std::get<0>(grouped.topk(2, -1)).sum(-1) : std::get<0>(grouped.max(-1));
      auto keep = std::get<1>(group_score.topk(a_.n_limited_groups, -1));
      auto drop = torch::ones({N, G}, torch::kBool).scatter_(1, keep, false);
      choice = grouped.masked_fill(drop.unsqueeze(-1), -INFINITY).view({N, -1});
    }
    auto idx = std::get<1>(choice.topk(a_.n_activated_experts, -1));  // [N, K]
    auto wt = scores.gather(1, idx);
    if (a_.norm_topk_prob && a_.n_activated_experts > 1) wt = wt / (wt.sum(-1, true) + 1e-20);
    wt = (wt * a_.route_scale).to(x.scalar_type());
    auto out = torch::zeros_like(xf);
    for (int64_t e = 0; e < a_.n_routed_experts; ++e) {
      auto hit = (idx == e).nonzero();  // [n, 2]: token, slot
      if (hit.size(0) == 0) continue;
      auto tok = hit.select(1, 0), slot = hit.select(1, 1);
      auto y = mlp(xf.index_select(0, tok), p + "experts." + std::to_string(e) + ".");
      auto g = wt.index({tok, slot}).unsqueeze(1);
      out = out.index_add(0, tok, (y * g).to(out.scalar_type()));
    }
    if (a_.n_shared_experts > 0) out = out + mlp(xf, p + "shared_experts.");
    return out.view(shape);
  }

  ModelArgs a_;
  std::map<std::string, torch::Tensor> w_;
};

double lm_loss(const torch::Tensor& logits, const torch::Tensor& targets) {
  return torch::nn::functional::cross_entropy(
             logits.reshape({-1, logits.size(-1)}).to(torch::kFloat), targets.reshape({-1}))
      .item<double>();
}

}  // namespace

int main(int argc, char** argv) {
  bench_init();
  std::string preset_name = "small", sections = "train,decode";
  int64_t B = 4, T = 256, rounds = 5, DB = 64, P = 16, N = 64, threads = 0, ab = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    const std::string v = argv[i + 1];
    if (k == "--preset")
      preset_name = v;
    else if (k == "--batch")
      B = std::stoll(v);
    else if (k == "--seq")
      T = std::stoll(v);
    else if (k == "--rounds")
      rounds = std::stoll(v);
    else if (k == "--decode-batch")
      DB = std::stoll(v);
    else if (k == "--prompt")
      P = std::stoll(v);
    else if (k == "--new")
      N = std::stoll(v);
    else if (k == "--threads")
      threads = std::stoll(v);
    else if (k == "--sections")
      sections = v;
    else if (k == "--ab")
      ab = std::stoll(v);
    else {
      std::fprintf(stderr, "eager_bench: unknown option %s\n", k.c_str());
      return 2;
    }
  }
  if (threads > 0) at::set_num_threads(static_cast<int>(threads));
  auto args_or = preset(preset_name);
  if (!args_or.ok()) {
    std::fprintf(stderr, "%s\n", args_or.status().to_string().c_str());
    return 1;
  }
  ModelArgs a = *args_or;
  if (a.attention != AttentionKind::kMLA || a.yarn() || a.rope_llama3 || a.tie_embeddings ||
      a.n_mtp_layers > 0 || !a.rope_interleave) {
    std::fprintf(stderr,
                 "eager_bench: the reference covers MLA + MoE without YaRN, MTP or tied "
                 "embeddings; preset %s has one of them\n",
                 preset_name.c_str());
    return 1;
  }
  a.aux_loss_alpha = 0;  // the HF structure trains without the balance loss
  Transformer m(a);
  m->init_weights(1);
  Eager eager(m);
  // Both sides' fp32 GEMMs go to OpenBLAS. Its pthreads build keeps a pool of its own, so
  // at more than one LibTorch thread the eager side's GEMMs start threads on cores that
  // LibTorch's already use and the eager figures (decode most) come out several times too
  // slow: the ratios are only fair with the OpenMP build (bench/RESULTS.md, "The eager
  // ratios after these, and what the decode ratio was measuring").
  std::printf("OpenBLAS: %s\n", BlasThreadsGuard::shares_openmp()
                                    ? "the OpenMP build (on LibTorch's threads)"
                                    : "a build with its own thread pool (at more than one thread "
                                      "the eager side oversubscribes the cores: unfair ratios)");
  std::printf(
      "preset %s, threads %d; training batch %lld x %lld, decode batch %lld (prompt %lld, "
      "%lld new tokens), %lld rounds\n",
      preset_name.c_str(), at::get_num_threads(), (long long)B, (long long)T, (long long)DB,
      (long long)P, (long long)N, (long long)rounds);

  auto ids = torch::randint(3, a.vocab_size, {B, T + 1}, torch::kLong);
  auto in = ids.narrow(1, 0, T), tgt = ids.narrow(1, 1, T);
  {  // the same model: equal losses before anything trains
    torch::NoGradGuard ng;
    m->eval();
    const double lr = lm_loss(m->forward(in).logits, tgt);
    const double le = lm_loss(eager.forward(in, nullptr), tgt);
    std::printf("reference check: loss r1kit %.6f, eager %.6f\n", lr, le);
    if (std::abs(lr - le) > 1e-4) {
      std::fprintf(stderr, "eager_bench: the eager reference is not the same model\n");
      return 1;
    }
  }

  const auto secs = split(sections);
  if (has(secs, "train")) {
    m->train();
    // The per-expert reference path of r1kit (--ab 1): a second model with the same weights.
    Transformer m_ref(a);
    m_ref->init_weights(1);
    m_ref->train();
    // r1kit's sides step with the trainers' optimizer (train/fused_adamw.h), the eager
    // side with LibTorch's AdamW, as a PyTorch user's loop would. Both drop the gradients
    // before the backward (train::zero_grad), as the trainers do and as PyTorch's
    // zero_grad() does by default since 2.0 (set_to_none); LibTorch 1.13's zero_grad()
    // fills them with zeros instead, which costs a pass over every gradient and turns the
    // backward's first write of each into an addition.
    train::FusedAdamW opt_r(m->parameters(), torch::optim::AdamWOptions(1e-5));
    train::FusedAdamW opt_ref(m_ref->parameters(), torch::optim::AdamWOptions(1e-5));
    torch::optim::AdamW opt_e(eager.parameters(), torch::optim::AdamWOptions(1e-5));
    torch::optim::Optimizer* opts[] = {&opt_r, &opt_ref, &opt_e};
    ForwardOptions fo_ref;
    fo_ref.execution.kernels.grouped_experts = false;
    enum Side { kOurs, kRef, kEager };
    auto step = [&](Side side, bool bf16) {
      auto t0 = Clock::now();
      torch::Tensor loss;
      auto& opt = *opts[side];
      {
        compat::CpuAutocastGuard ac(bf16);
        auto logits = side == kOurs  ? m->forward(in).logits
                      : side == kRef ? m_ref->forward(in, fo_ref).logits
                                     : eager.forward(in, nullptr);
        loss = torch::nn::functional::cross_entropy(
            logits.reshape({-1, a.vocab_size}).to(torch::kFloat), tgt.reshape({-1}));
      }
      train::zero_grad(side == kOurs  ? m->parameters()
                       : side == kRef ? m_ref->parameters()
                                      : eager.parameters());
      loss.backward();
      opt.step();
      return seconds_since(t0);
    };
    for (bool bf16 : {false, true}) {
      step(kOurs, bf16), step(kEager, bf16);  // warm-up
      if (ab) step(kRef, bf16);
      std::vector<double> ours, refs, theirs, ratio, ratio_ref, gain;
      double peak = 0;  // the best matmul of the step's dtype at these threads, any round
      for (int64_t r = 0; r < rounds; ++r) {
        peak = std::max(peak, matmul_peak_gflops(bf16 ? torch::kBFloat16 : torch::kFloat));
        ours.push_back(step(kOurs, bf16));
        if (ab) refs.push_back(step(kRef, bf16));
        theirs.push_back(step(kEager, bf16));
        ratio.push_back(theirs.back() / ours.back());
        std::printf("  train %s round %lld: r1kit %.3f s, eager %.3f s", bf16 ? "bf16" : "f32",
                    (long long)r + 1, ours.back(), theirs.back());
        if (ab) {
          ratio_ref.push_back(theirs.back() / refs.back());
          gain.push_back(refs.back() / ours.back());
          std::printf(", r1kit per-expert %.3f s", refs.back());
        }
        std::printf("\n");
        std::fflush(stdout);
      }
      const double gflop = step_flops(a, B, T) / 1e9;
      std::printf(
          "train %s: r1kit %.0f tokens/s, eager %.0f tokens/s, r1kit/eager %.2fx; of the "
          "%s matmul peak (%.1f GFLOP/s): r1kit %.1f%%, eager %.1f%%\n",
          bf16 ? "bf16 autocast" : "f32", B * T / median(ours), B * T / median(theirs),
          median(ratio), bf16 ? "bf16" : "f32", peak, 100 * gflop / median(ours) / peak,
          100 * gflop / median(theirs) / peak);
      if (ab)
        std::printf(
            "train %s: r1kit per-expert path %.0f tokens/s, per-expert/eager %.2fx, "
            "grouped/per-expert %.2fx\n",
            bf16 ? "bf16 autocast" : "f32", B * T / median(refs), median(ratio_ref), median(gain));
    }
  }
  if (has(secs, "decode")) {
    torch::NoGradGuard ng;
    m->eval();
    auto prompts = torch::randint(3, a.vocab_size, {DB, P}, torch::kLong);
    rollout::GenerateRequest req;
    for (int64_t i = 0; i < DB; ++i) {
      auto row = prompts[i].contiguous();
      req.prompts.push_back(
          {std::vector<int64_t>(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + P), i});
    }
    req.group_size = 1;
    req.sampling.max_new_tokens = N;
    req.sampling.seed = 1;
    rollout::EngineOptions o;
    o.max_batch = DB;
    o.max_seq_len = P + N;
    // The engine's way of using the threads at decode (its own pool splits each step's
    // linears, with one LibTorch thread, as `--threads 1 --decode-threads N` runs it;
    // docs/rollout.md); the eager side gets them as LibTorch's intra-op threads.
    const int threads = at::get_num_threads();
    o.decode_threads = threads;
    auto ours = [&](bool bf16) {
      at::set_num_threads(1);
      rollout::Engine engine(m, o);
      req.bf16_compute = bf16;
      auto out = engine.generate(req, 0);
      at::set_num_threads(threads);
      TORCH_CHECK(out.ok(), out.status().to_string());
      const auto st = engine.last_stats();
      return st.decode_seconds / static_cast<double>(st.decode_steps);  // a batched step
    };
    auto theirs = [&](Eager& e) {
      std::vector<std::pair<torch::Tensor, torch::Tensor>> cache;
      auto logits = e.forward(prompts, &cache);  // prefill, not timed (as the engine's)
      auto gen = at::detail::createCPUGenerator(1);
      auto draw = [&](const torch::Tensor& z) {
        return torch::multinomial(torch::softmax(z.to(torch::kFloat), -1), 1, false, gen);
      };
      auto next = draw(logits.select(1, P - 1));
      auto t0 = Clock::now();
      for (int64_t t = 1; t < N; ++t) {
        logits = e.forward(next, &cache);
        next = draw(logits.select(1, 0));
      }
      return seconds_since(t0) / static_cast<double>(N - 1);
    };
    // fp32 on both sides; then, where the CPU has native bf16 (where `compute: auto` picks
    // it), each side's bf16: r1kit's bf16 compute (GenerateRequest::bf16_compute: bf16
    // copies of the linear layers' weights, attention and sampling in fp32) against the
    // eager model with every weight in bf16, as Hugging Face loads it with
    // torch_dtype=torch.bfloat16 (its cache then bf16 too).
    std::vector<bool> dtypes = {false};
    std::unique_ptr<Eager> eager16;
    if (train::has_native_bf16(train::this_cpu_flags())) {
      dtypes.push_back(true);
      eager16 = std::make_unique<Eager>(m);
      eager16->cast(torch::kBFloat16);
    }
    for (const bool bf16 : dtypes) {
      Eager& e = bf16 ? *eager16 : eager;
      const char* name = bf16 ? "bf16" : "f32";
      ours(bf16), theirs(e);  // warm-up
      std::vector<double> r_s, e_s, ratio;
      for (int64_t r = 0; r < rounds; ++r) {
        r_s.push_back(ours(bf16));
        e_s.push_back(theirs(e));
        ratio.push_back(e_s.back() / r_s.back());
        std::printf("  decode %s round %lld: a step of the batch, r1kit %.4f s, eager %.4f s\n",
                    name, (long long)r + 1, r_s.back(), e_s.back());
        std::fflush(stdout);
      }
      std::printf(
          "decode batch %lld, %s: r1kit %.0f tokens/s, eager %.0f tokens/s, r1kit/eager %.2fx\n",
          (long long)DB, name, DB / median(r_s), DB / median(e_s), median(ratio));
    }
  }
  return 0;
}
