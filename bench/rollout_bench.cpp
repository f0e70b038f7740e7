// Rollout engine benchmarks: decode tokens/s at several batch sizes, the
// absorbed MLA decode path against the naive one, prefix sharing on and off, and the
// KV-cache bytes per sequence, and the small-row expert kernel (policy/expert_kernels.h):
// decode with it off, on AVX2 and on AVX-512 ("kernel", not in the default sections), decode
// with the experts' column form off and on ("columns", not in the default sections) and one
// routed expert through sgemm against it at a few row counts ("experts"); decode on one thread, on
// 2 intra-op threads and with the engine's decode_threads = 2 ("threads", not in the default
// sections); decode with the fused MLA decode kernel off and on ("fused", not in the
// default sections); every routed expert's weights streamed through the kernel at a few
// row counts ("stream", not in the default sections); the dense FFNs at decode's row counts
// with cold weights, sgemm against the column form ("ffn", not in the default sections);
// the output head below 17 rows with cold weights, sgemm against the row form ("head", not
// in the default sections).
// Runs the real engine (rollout/engine.h)
// on randomly initialised presets, sampling at temperature 1 with no stop ids, so every sequence
// runs to max_new_tokens.
//
// Decode FLOPs per generated token, counted as executed on the absorbed path:
//   2 * (active matmul weights incl. lm_head, excl. embedding lookups and norms)
//   + per layer 2 * H * S * (2 d_c + d_r) (scores against the latent and the RoPE key,
//     and the latent-weighted sum), S the mean context length during the run.
// Effective GFLOP/s = that count * generated tokens / decode seconds; it is compared
// with the best of five 2048^3 fp32 matmuls in the same process and thread count.
//
// Usage: rollout_bench [--presets tiny,small] [--batches 1,16,64,256] [--new 256]
//                      [--prompt 16] [--threads N] [--decode-threads N] [--rounds 3]
//                      [--sections
//                      decode,kernel,columns,threads,fused,stream,ffn,head,impl,prefix,cache,
//                      experts,exact,bf16,sample]
//                      [--prefix-g 16] [--prefix-len 256] [--prefix-new 32] [--dtype f32|bf16]
//   --dtype bf16: the model's weights (and so the engine's cache) in bf16.
// "bf16" (not in the default sections): decode in fp32 against bf16 compute
// (GenerateRequest::bf16_compute: the linear layers on bf16 copies of the weights).
// "sample" (not in the default sections): the sampler (rollout/sampling.h) on a decode
// step's logits [batch, vocabulary], temperature 1, on 1 and on --decode-threads threads.
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <sstream>

#include "bench/bench_util.h"
#include "policy/expert_kernels.h"
#include "policy/mla_decode.h"
#include "policy/model.h"
#include "rollout/engine.h"
#include "rollout/sampling.h"

using namespace r1kit;
using namespace r1kit::policy;
using namespace r1kit::bench;

namespace {

// Microseconds a call of f(c), c taking each of `copies` weight copies in turn (so that
// every call finds its weights cold): the best of 5 passes over the copies.
template <typename Fn>
double best_us_over(int64_t copies, const Fn& f) {
  double best = 1e30;
  for (int pass = 0; pass < 5; ++pass) {
    auto t = Clock::now();
    for (int64_t c = 0; c < copies; ++c) f(c);
    best = std::min(best, 1e6 * seconds_since(t) / static_cast<double>(copies));
  }
  return best;
}

// Decode FLOPs of one generated token at mean context length S (see the header).
double decode_flops_per_token(const ModelArgs& a, double S) {
  const ParamCount pc = count_params(a);
  const int64_t emb = a.vocab_size * a.dim;
  int64_t norms = a.dim * (2 * a.n_layers + 1);
  if (a.attention == AttentionKind::kMLA)
    norms += a.n_layers * (a.kv_lora_rank + (a.q_lora_rank > 0 ? a.q_lora_rank : 0));
  const double weights = static_cast<double>(pc.active - pc.embedding - norms + emb);
  const double attn = a.attention == AttentionKind::kMLA
                          ? 2.0 * a.n_heads * S * (2.0 * a.kv_lora_rank + a.qk_rope_head_dim)
                          : 2.0 * a.n_heads * S * 2.0 * a.head_dim;
  return 2.0 * weights + attn * a.n_layers;
}

rollout::GenerateRequest make_request(const ModelArgs& a, int64_t prompts, int64_t G, int64_t P,
                                      int64_t new_tokens) {
  rollout::GenerateRequest r;
  auto gen = at::detail::createCPUGenerator(7);
  for (int64_t i = 0; i < prompts; ++i) {
    auto t = torch::randint(3, a.vocab_size, {P}, gen, torch::kLong);
    r.prompts.push_back(
        {std::vector<int64_t>(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + P), i});
  }
  r.group_size = G;
  r.sampling.max_new_tokens = new_tokens;
  r.sampling.seed = 1;
  return r;
}

rollout::EngineStats run(Transformer& m, const rollout::GenerateRequest& r,
                         rollout::EngineOptions o) {
  rollout::Engine engine(m, o);
  auto out = engine.generate(r, 0);
  if (!out.ok()) {
    std::fprintf(stderr, "%s\n", out.status().to_string().c_str());
    std::exit(1);
  }
  return engine.last_stats();
}

// Decode of B one-sample prompts of P tokens, N new tokens each, a slot per sequence, on
// `decode_threads` with the given kernel choices (the engine passes both to its forwards).
rollout::EngineStats decode(Transformer& m, const ModelArgs& a, int64_t B, int64_t P, int64_t N,
                            int decode_threads, const KernelChoices& kernels = {}) {
  rollout::EngineOptions o;
  o.max_batch = B;
  o.max_seq_len = P + N;
  o.decode_threads = decode_threads;
  o.kernels = kernels;
  return run(m, make_request(a, B, 1, P, N), o);
}

}  // namespace

int main(int argc, char** argv) {
  bench_init();
  std::string presets = "tiny", batches = "1,16,64,256";
  std::string sections = "decode,impl,prefix,cache,experts";
  int64_t new_tokens = 256, P = 16, threads = 0, prefix_g = 16, prefix_len = 256, prefix_new = 32;
  int rounds = 3, decode_threads = 1;
  std::string dtype = "f32";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--presets")
      presets = v;
    else if (k == "--batches")
      batches = v;
    else if (k == "--sections")
      sections = v;
    else if (k == "--new")
      new_tokens = std::stoll(v);
    else if (k == "--prompt")
      P = std::stoll(v);
    else if (k == "--threads")
      threads = std::stoll(v);
    else if (k == "--decode-threads")
      decode_threads = static_cast<int>(std::stoll(v));
    else if (k == "--rounds")
      rounds = static_cast<int>(std::stoll(v));
    else if (k == "--prefix-g")
      prefix_g = std::stoll(v);
    else if (k == "--prefix-len")
      prefix_len = std::stoll(v);
    else if (k == "--prefix-new")
      prefix_new = std::stoll(v);
    else if (k == "--dtype")
      dtype = v;
  }
  if (threads > 0) at::set_num_threads(static_cast<int>(threads));
  const auto secs = split(sections);
  const double peak = matmul_peak_gflops();
  std::printf("threads %d, decode threads %d, fp32 matmul peak %.1f GFLOP/s\n",
              at::get_num_threads(), decode_threads, peak);
  torch::NoGradGuard no_grad;

  for (const auto& p : split(presets)) {
    auto args_or = preset(p);
    if (!args_or.ok()) {
      std::fprintf(stderr, "%s\n", args_or.status().to_string().c_str());
      return 1;
    }
    const ModelArgs a = *args_or;
    Transformer m(a);
    m->init_weights(1);
    if (dtype == "bf16") m->to(torch::kBFloat16);
    m->eval();
    // Warm-up (allocator, OpenMP pool).
    run(m, make_request(a, 2, 1, P, 4), rollout::EngineOptions{2, P + 4});

    // An engine with a slot per sequence of B, each long enough for the whole request.
    auto slot_per_sequence = [&](int64_t B) {
      rollout::EngineOptions o;
      o.max_batch = B;
      o.max_seq_len = P + new_tokens;
      o.decode_threads = decode_threads;
      return o;
    };
    if (has(secs, "exact")) {
      // Exact mode (policy/exact_forward.h) against the normal kernels: the same request,
      // a slot per sequence, off / f32 / bf16 in turn.
      std::printf(
          "\n%s: decode, exact mode, prompt %lld tokens, %lld new tokens, decode threads %d\n",
          p.c_str(), static_cast<long long>(P), static_cast<long long>(new_tokens), decode_threads);
      std::printf(
          "| batch | off tokens/s | exact f32 tokens/s | f32 / off | exact bf16 tokens/s | "
          "bf16 / off |\n|---|---|---|---|---|---|\n");
      for (const auto& bs : split(batches)) {
        const int64_t B = std::stoll(bs);
        const rollout::EngineOptions o = slot_per_sequence(B);
        auto r = make_request(a, B, 1, P, new_tokens);
        double tps[3];
        const rollout::ExactMode modes[3] = {rollout::ExactMode::kOff, rollout::ExactMode::kF32,
                                             rollout::ExactMode::kBF16};
        for (int k = 0; k < 3; ++k) {
          r.exact = modes[k];
          const auto st = run(m, r, o);
          tps[k] = st.generated_tokens / st.decode_seconds;
        }
        std::printf("| %lld | %.0f | %.0f | %.2f | %.0f | %.2f |\n", static_cast<long long>(B),
                    tps[0], tps[1], tps[1] / tps[0], tps[2], tps[2] / tps[0]);
        std::fflush(stdout);
      }
    }

    if (has(secs, "bf16")) {
      // bf16 compute (GenerateRequest::bf16_compute, policy/bf16_weights.h) against fp32: the
      // same request, alternating, `rounds` times; medians.
      std::printf(
          "\n%s: decode, bf16 compute, prompt %lld tokens, %lld new tokens, decode threads %d, "
          "medians of %d rounds (fp32 then bf16 each)\n",
          p.c_str(), static_cast<long long>(P), static_cast<long long>(new_tokens), decode_threads,
          rounds);
      std::printf(
          "| batch | fp32 tokens/s | bf16 compute tokens/s | bf16 / fp32 |\n|---|---|---|---|\n");
      for (const auto& bs : split(batches)) {
        const int64_t B = std::stoll(bs);
        const rollout::EngineOptions o = slot_per_sequence(B);
        auto r = make_request(a, B, 1, P, new_tokens);
        std::vector<double> tps[2];
        for (int i = 0; i < rounds; ++i)
          for (int k = 0; k < 2; ++k) {
            r.bf16_compute = k == 1;
            const auto st = run(m, r, o);
            tps[k].push_back(st.generated_tokens / st.decode_seconds);
          }
        const double f = median(tps[0]), b = median(tps[1]);
        std::printf("| %lld | %.0f | %.0f | %.2f |\n", static_cast<long long>(B), f, b, b / f);
        std::fflush(stdout);
      }
    }

    if (has(secs, "decode")) {
      std::printf("\n%s: decode, prompt %lld tokens, %lld new tokens, fp32, absorbed MLA\n",
                  p.c_str(), static_cast<long long>(P), static_cast<long long>(new_tokens));
      std::printf(
          "| batch | decode tokens/s | ms/step | mean batch | GFLOP/s | %% of matmul peak |\n");
      std::printf("|---|---|---|---|---|---|\n");
      for (const auto& bs : split(batches)) {
        const int64_t B = std::stoll(bs);
        auto st = decode(m, a, B, P, new_tokens, decode_threads);
        const double tps = st.generated_tokens / st.decode_seconds;
        const double gf = decode_flops_per_token(a, P + new_tokens / 2.0) * tps / 1e9;
        std::printf("| %lld | %.0f | %.1f | %.1f | %.1f | %.1f%% |\n", static_cast<long long>(B),
                    tps, 1e3 * st.decode_seconds / st.decode_steps, st.mean_batch, gf,
                    100 * gf / peak);
        std::fflush(stdout);
      }
    }

    if (has(secs, "kernel") && small_rows_kernels_available()) {
      // Decode with the small-row expert kernel off, on AVX2 and on AVX-512 (where the CPU
      // has it), alternating in one process (so that all see the same machine), at the
      // first of --batches.
      const int64_t B = std::stoll(split(batches).front());
      const bool avx512 = small_rows_avx512_available();
      std::printf("\n%s: decode batch %lld, small-row expert kernel off / AVX2%s, tokens/s\n",
                  p.c_str(), static_cast<long long>(B), avx512 ? " / AVX-512" : "");
      std::printf("| round | kernel off | AVX2 | AVX2 / off |%s\n|---|---|---|---|%s\n",
                  avx512 ? " AVX-512 | AVX-512 / off |" : "", avx512 ? "---|---|" : "");
      for (int round = 1; round <= 3; ++round) {
        double tps[3] = {0, 0, 0};
        for (int v = 0; v < (avx512 ? 3 : 2); ++v) {
          KernelChoices k;
          k.small_rows = v > 0;
          k.small_rows_avx512 = v == 2;
          auto st = decode(m, a, B, P, new_tokens, decode_threads, k);
          tps[v] = st.generated_tokens / st.decode_seconds;
        }
        std::printf("| %d | %.0f | %.0f | %.2fx |", round, tps[0], tps[1], tps[1] / tps[0]);
        if (avx512) std::printf(" %.0f | %.2fx |", tps[2], tps[2] / tps[0]);
        std::printf("\n");
        std::fflush(stdout);
      }
    }

    if (has(secs, "columns") && small_rows_avx512_available()) {
      // Decode with the experts' column form off (rows 17-64 through sgemm on one thread)
      // and on (expert_kernels.h, kColumnRowsMin), alternating in one process, at the first
      // of --batches.
      const int64_t B = std::stoll(split(batches).front());
      std::printf(
          "\n%s: decode batch %lld, %lld new tokens, expert column form off / on, "
          "tokens/s\n| round | off | on | on / off |\n|---|---|---|---|\n",
          p.c_str(), static_cast<long long>(B), static_cast<long long>(new_tokens));
      for (int round = 1; round <= rounds; ++round) {
        double tps[2] = {0, 0};
        for (int v = 0; v < 2; ++v) {
          KernelChoices k;
          k.small_rows_columns = v == 1;
          auto st = decode(m, a, B, P, new_tokens, decode_threads, k);
          tps[v] = st.generated_tokens / st.decode_seconds;
        }
        std::printf("| %d | %.0f | %.0f | %.2fx |\n", round, tps[0], tps[1], tps[1] / tps[0]);
        std::fflush(stdout);
      }
    }

    if (has(secs, "threads")) {
      // Decode on one thread, on 2 intra-op threads (every LibTorch op, and the experts
      // through the MoE inference path), and with the engine's decode_threads = 2 (the
      // experts alone on core/parallel.h's pool, OpenBLAS on one thread), alternating in
      // one process, each round after a fresh matmul peak (the host's speed moves). The
      // intra-op count is LibTorch's own, process-wide: this main sets it, as a CLI does
      // from --threads; the decode threads go through the engine's options.
      const int64_t B = std::stoll(split(batches).front());
      std::printf("\n%s: decode batch %lld, %lld new tokens, threads\n", p.c_str(),
                  static_cast<long long>(B), static_cast<long long>(new_tokens));
      std::printf(
          "| round | matmul peak GFLOP/s | 1 thread tokens/s | %% of peak | 2 intra-op threads "
          "| %% of peak | decode_threads 2 | %% of peak |\n|---|---|---|---|---|---|---|---|\n");
      const int saved = at::get_num_threads();
      const double flops_per_token = decode_flops_per_token(a, P + new_tokens / 2.0);
      for (int round = 1; round <= rounds; ++round) {
        at::set_num_threads(saved);
        const double pk = matmul_peak_gflops();
        double tps[3];
        for (int v = 0; v < 3; ++v) {
          at::set_num_threads(v == 1 ? 2 : 1);
          auto st = decode(m, a, B, P, new_tokens, /*decode_threads=*/v == 2 ? 2 : 1);
          tps[v] = st.generated_tokens / st.decode_seconds;
        }
        at::set_num_threads(saved);
        std::printf("| %d | %.1f |", round, pk);
        for (double t : tps)
          std::printf(" %.0f | %.1f%% |", t, 100 * flops_per_token * t / 1e9 / pk);
        std::printf("\n");
        std::fflush(stdout);
      }
    }

    if (has(secs, "fused") && a.attention == AttentionKind::kMLA) {
      // Decode with the fused MLA decode kernel (policy/mla_decode.h) off and on, at the
      // first of --batches and --decode-threads, alternating in one process, each round
      // after a fresh matmul peak.
      const int64_t B = std::stoll(split(batches).front());
      std::printf(
          "\n%s: decode batch %lld, %lld new tokens, decode threads %d, fused MLA "
          "decode kernel off / on\n",
          p.c_str(), static_cast<long long>(B), static_cast<long long>(new_tokens), decode_threads);
      std::printf(
          "| round | matmul peak GFLOP/s | off tokens/s | %% of peak | on tokens/s | %% "
          "of peak | on / off |\n|---|---|---|---|---|---|---|\n");
      const double flops_per_token = decode_flops_per_token(a, P + new_tokens / 2.0);
      for (int round = 1; round <= rounds; ++round) {
        const double pk = matmul_peak_gflops();
        double tps[2];
        for (int v = 0; v < 2; ++v) {
          KernelChoices k;
          k.mla_decode = v == 1;
          auto st = decode(m, a, B, P, new_tokens, decode_threads, k);
          tps[v] = st.generated_tokens / st.decode_seconds;
        }
        std::printf("| %d | %.1f |", round, pk);
        for (double t : tps)
          std::printf(" %.0f | %.1f%% |", t, 100 * flops_per_token * t / 1e9 / pk);
        std::printf(" %.2fx |\n", tps[1] / tps[0]);
        std::fflush(stdout);
      }
    }

    if (has(secs, "impl") && a.attention == AttentionKind::kMLA) {
      const int64_t B = 16, ctx = 256;
      std::printf("\n%s: absorbed vs naive MLA decode, batch %lld, prompt %lld, %lld new tokens\n",
                  p.c_str(), static_cast<long long>(B), static_cast<long long>(ctx),
                  static_cast<long long>(new_tokens / 4));
      std::printf("| decode path | decode tokens/s | ms/step |\n|---|---|---|\n");
      for (auto impl : {AttnImpl::kAbsorb, AttnImpl::kNaive}) {
        rollout::EngineOptions o;
        o.max_batch = B;
        o.max_seq_len = ctx + new_tokens / 4;
        o.decode_impl = impl;
        auto st = run(m, make_request(a, B, 1, ctx, new_tokens / 4), o);
        std::printf("| %s | %.0f | %.1f |\n", impl == AttnImpl::kAbsorb ? "absorbed" : "naive",
                    st.generated_tokens / st.decode_seconds,
                    1e3 * st.decode_seconds / st.decode_steps);
        std::fflush(stdout);
      }
    }

    if (has(secs, "prefix")) {
      std::printf(
          "\n%s: prefix sharing, 4 prompts x G=%lld, prompt %lld tokens, %lld new tokens, %lld "
          "slots\n",
          p.c_str(), static_cast<long long>(prefix_g), static_cast<long long>(prefix_len),
          static_cast<long long>(prefix_new), static_cast<long long>(prefix_g));
      std::printf("| prefix sharing | prefill tokens | prefill s | decode s | total s |\n");
      std::printf("|---|---|---|---|---|\n");
      double total[2] = {0, 0};
      for (bool share : {true, false}) {
        rollout::EngineOptions o;
        o.max_batch = prefix_g;
        o.max_seq_len = prefix_len + prefix_new;
        o.share_prefix = share;
        auto st = run(m, make_request(a, 4, prefix_g, prefix_len, prefix_new), o);
        total[share ? 0 : 1] = st.total_seconds;
        std::printf("| %s | %lld | %.2f | %.2f | %.2f |\n", share ? "on" : "off",
                    static_cast<long long>(st.prefill_tokens), st.prefill_seconds,
                    st.decode_seconds, st.total_seconds);
        std::fflush(stdout);
      }
      std::printf("speed-up of the whole rollout: %.2fx\n", total[1] / total[0]);
    }

    if (has(secs, "experts") && a.n_routed_experts > 0 && small_rows_kernels_available()) {
      // One routed expert with M rows: the three sgemm's of LibTorch's linear against the
      // fused small-row kernel (policy/expert_kernels.h), the same weights and inputs.
      const int64_t d = a.dim, I = a.moe_inter_dim;
      auto wg = torch::randn({I, d}) * 0.05, wu = torch::randn({I, d}) * 0.05;
      auto wd = torch::randn({d, I}) * 0.05;
      std::printf("\n%s: one routed expert (%lld -> %lld -> %lld), microseconds a call\n",
                  p.c_str(), static_cast<long long>(d), static_cast<long long>(I),
                  static_cast<long long>(d));
      const bool avx512 = small_rows_avx512_available();
      std::printf("| rows | sgemm (F::linear x3) | kernel, AVX2 | speed-up |%s\n",
                  avx512 ? " kernel, AVX-512 | speed-up |" : "");
      std::printf("|---|---|---|---|%s\n", avx512 ? "---|---|" : "");
      namespace F = torch::nn::functional;
      for (int64_t M : {1, 2, 4, 8, 12, 16, 24, 32}) {
        auto x = torch::randn({M, d});
        auto time_us = [&](auto&& f) {
          for (int i = 0; i < 20; ++i) f();
          const int reps = 400;
          auto t = Clock::now();
          for (int i = 0; i < reps; ++i) f();
          return 1e6 * seconds_since(t) / reps;
        };
        const double blas =
            time_us([&] { return F::linear(F::silu(F::linear(x, wg)) * F::linear(x, wu), wd); });
        const KernelChoices avx2{.small_rows_avx512 = false}, wide;
        const double fused = time_us([&] { return swiglu_small_rows(x, wg, wu, wd, avx2); });
        std::printf("| %lld | %.1f | %.1f | %.2fx |", static_cast<long long>(M), blas, fused,
                    blas / fused);
        if (avx512) {
          const double t512 = time_us([&] { return swiglu_small_rows(x, wg, wu, wd, wide); });
          std::printf(" %.1f | %.2fx |", t512, blas / t512);
        }
        std::printf("\n");
        std::fflush(stdout);
      }
    }

    if (has(secs, "ffn") && small_rows_avx512_available()) {
      // The dense layers' FFN and the shared expert at decode's row counts: sgemm (LibTorch's
      // three linears, SiLU and product) against the column form (expert_kernels.h), with
      // the weights cold as in a decode step: each call takes the next of enough copies to
      // fill 64 MB. Microseconds a call, best of 5 passes over the copies.
      namespace F = torch::nn::functional;
      std::vector<std::pair<const char*, int64_t>> ffns;
      if (a.n_dense_layers > 0) ffns.push_back({"dense FFN", a.inter_dim});
      if (a.n_shared_experts > 0)
        ffns.push_back({"shared expert", a.n_shared_experts * a.moe_inter_dim});
      std::printf("\n%s: dense FFNs at decode, weights cold, microseconds a call\n", p.c_str());
      std::printf(
          "| FFN | rows | sgemm | GFLOP/s | column form | GFLOP/s | speed-up |\n"
          "|---|---|---|---|---|---|---|\n");
      for (const auto& [name, I] : ffns) {
        const int64_t d = a.dim, copies = std::max<int64_t>(4, (64 << 20) / (12 * d * I));
        std::vector<torch::Tensor> wg, wu, wd;
        for (int64_t c = 0; c < copies; ++c) {
          wg.push_back(torch::randn({I, d}) * 0.05);
          wu.push_back(torch::randn({I, d}) * 0.05);
          wd.push_back(torch::randn({d, I}) * 0.05);
        }
        for (int64_t M : {kColumnRowsMax / 2, kColumnRowsMax * 3 / 4, kColumnRowsMax}) {
          auto x = torch::randn({M, d});
          const double blas = best_us_over(copies, [&](int64_t c) {
            return F::linear(F::silu(F::linear(x, wg[c])) * F::linear(x, wu[c]), wd[c]);
          });
          const double cols = best_us_over(
              copies, [&](int64_t c) { return swiglu_small_rows(x, wg[c], wu[c], wd[c], {}); });
          const double gflop = 6.0 * M * d * I / 1e9;
          std::printf("| %s %lld -> %lld | %lld | %.1f | %.1f | %.1f | %.1f | %.2fx |\n", name,
                      static_cast<long long>(d), static_cast<long long>(I),
                      static_cast<long long>(M), blas, gflop / blas * 1e6, cols, gflop / cols * 1e6,
                      blas / cols);
          std::fflush(stdout);
        }
      }
    }

    if (has(secs, "head") && small_rows_kernels_available()) {
      // The output head at the row counts below the column form (a decode step's tail, as
      // sequences finish): sgemm (torch::linear) against the row form (linear_rows_raw, what
      // decode_linear runs there), with the weights cold: each call takes the next of
      // enough copies to fill 64 MB. Microseconds a call, best of 5 passes over the copies.
      const int64_t d = a.dim, V = a.vocab_size;
      const int64_t copies = std::max<int64_t>(4, (64 << 20) / (4 * d * V));
      std::vector<torch::Tensor> w;
      for (int64_t c = 0; c < copies; ++c) w.push_back(torch::randn({V, d}) * 0.05);
      std::printf("\n%s: output head %lld -> %lld, weights cold, microseconds a call\n", p.c_str(),
                  static_cast<long long>(d), static_cast<long long>(V));
      std::printf("| rows | sgemm | row form | speed-up |\n|---|---|---|---|\n");
      for (int64_t M : {int64_t{1}, int64_t{2}, int64_t{4}, int64_t{8}, kSmallRowsMax}) {
        auto x = torch::randn({M, d});
        auto y = torch::empty({M, V});
        const double blas = best_us_over(copies, [&](int64_t c) { return torch::linear(x, w[c]); });
        const double rows = best_us_over(copies, [&](int64_t c) {
          linear_rows_raw(x.data_ptr<float>(), M, d, w[c].data_ptr<float>(), V, nullptr,
                          y.data_ptr<float>(), V, {});
        });
        std::printf("| %lld | %.1f | %.1f | %.2fx |\n", static_cast<long long>(M), blas, rows,
                    blas / rows);
        std::fflush(stdout);
      }
    }

    if (has(secs, "sample")) {
      // The sampler on a decode step's logits: microseconds a call, the median of 9 rounds
      // of 20 calls each, alternating one thread and --decode-threads.
      std::printf("\n%s: sampling from [batch, %lld] logits, temperature 1, microseconds a call\n",
                  p.c_str(), static_cast<long long>(a.vocab_size));
      std::printf("| batch | 1 thread | %d threads | speed-up |\n|---|---|---|---|\n",
                  decode_threads);
      rollout::SamplingParams sp;
      for (const auto& bs : split(batches)) {
        const int64_t B = std::stoll(bs);
        auto z = torch::randn({B, a.vocab_size}) * 3;
        std::vector<double> u(static_cast<size_t>(B));
        for (int64_t b = 0; b < B; ++b) u[b] = rollout::sample_uniform(1, b);
        std::vector<double> us[2];
        for (int r = 0; r < 9; ++r) {
          for (int k = 0; k < 2; ++k) {
            ExecutionContext exec;
            exec.decode_threads = k == 0 ? 1 : decode_threads;
            auto t0 = Clock::now();
            for (int i = 0; i < 20; ++i) rollout::sample_tokens(z, sp, u, exec);
            us[k].push_back(seconds_since(t0) / 20 * 1e6);
          }
        }
        std::printf("| %lld | %.1f | %.1f | %.2fx |\n", static_cast<long long>(B), median(us[0]),
                    median(us[1]), median(us[0]) / median(us[1]));
        std::fflush(stdout);
      }
    }

    if (has(secs, "stream") && a.n_routed_experts > 0 && small_rows_kernels_available()) {
      // Every routed expert of every MoE layer at R rows each through the small-row kernel,
      // as one decode step runs them: the weights (far larger than the caches) stream from
      // memory. GB/s counts each weight byte once per call.
      const int64_t d = a.dim, I = a.moe_inter_dim;
      const int64_t n = a.n_routed_experts * (a.n_layers - a.n_dense_layers);
      auto w = torch::randn({n, 3, I, d}) * 0.05;  // gate, up, down (down read as [d, I])
      std::printf("\n%s: %lld routed experts (%.0f MB), R rows each, the kernel on T threads\n",
                  p.c_str(), static_cast<long long>(n), w.numel() * 4 / 1e6);
      std::printf("| rows | threads | ms per pass | GFLOP/s | GB/s |\n|---|---|---|---|---|\n");
      for (int64_t R : {1, 4, 6, 8, 12, 16, 64}) {
        auto x = torch::randn({n, R, d});
        auto y = torch::empty({n, R, d});
        std::vector<ExpertJob> jobs;
        for (int64_t e = 0; e < n; ++e) {
          float* we = w[e].data_ptr<float>();
          jobs.push_back({x[e].data_ptr<float>(), R, I, we, we + I * d, we + 2 * I * d,
                          y[e].data_ptr<float>()});
        }
        const ExecutionContext exec;  // the global pool, every kernel
        for (int t : {1, 2}) {
          swiglu_experts_small_rows(jobs, d, t, exec);
          std::vector<double> ms;
          for (int i = 0; i < 5; ++i) {
            auto t0 = Clock::now();
            swiglu_experts_small_rows(jobs, d, t, exec);
            ms.push_back(1e3 * seconds_since(t0));
          }
          const double m = median(ms);
          std::printf("| %lld | %d | %.2f | %.1f | %.1f |\n", static_cast<long long>(R), t, m,
                      6.0 * n * R * I * d / m / 1e6, w.numel() * 4 / m / 1e6);
          std::fflush(stdout);
        }
      }
    }

    if (has(secs, "cache")) {
      rollout::EngineOptions o;
      o.max_batch = 1;
      o.max_seq_len = P + new_tokens;
      rollout::Engine e(m, o);
      std::printf(
          "\n%s: KV cache, %lld-token sequence: %lld bytes in fp32 (measured), %lld in "
          "bf16; full multi-head attention would hold %lld in bf16 (%.1fx)\n",
          p.c_str(), static_cast<long long>(P + new_tokens),
          static_cast<long long>(e.cache_bytes_per_slot()),
          static_cast<long long>(a.kv_cache_bytes_per_token(2) * (P + new_tokens)),
          static_cast<long long>(a.mha_cache_bytes_per_token(2) * (P + new_tokens)),
          static_cast<double>(a.mha_cache_bytes_per_token(2)) / a.kv_cache_bytes_per_token(2));
    }
  }
  return 0;
}
