// Training-step throughput and model FLOP utilisation (MFU) of the policy presets, in
// fp32 and bf16, against the matmul peak measured in the same run; and the KV-cache
// bytes per token of MLA against the same model with full multi-head attention.
//
// FLOPs of one training step: bench_util.h's step_flops (forward + backward = 3x the
// forward's matmul and attention FLOPs, counted as executed).
// MFU = counted FLOP/s / peak FLOP/s, where the peak is the best 2048^3 matmul of the
// same dtype (bench_util.h), measured in this process with the same threads.
//
// The hosts this runs on change speed by 2-5x within minutes, so a preset's dtypes are
// measured in rounds: each round measures every dtype's matmul peak and then one step
// of every dtype, back to back. Reported per preset and dtype: the median step, MFU of
// the median step against the highest peak of the whole run (the conservative figure),
// and the median over rounds of the step against the peak measured just before it; and
// the median over rounds of the fp32/bf16 step-time ratio (the bf16 speed-up).
//
// Usage: train_step_bench [--presets tiny,small] [--dtypes f32,bf16] [--batch 8]
//                         [--seq 256] [--steps 5] [--threads N] [--peak 1]
//   --steps: rounds (timed steps per dtype), after one warm-up step each.
//   --peak 0: skip the matmul peak measurements (no MFU figures; for profiling the step).
//   --trace FILE: LibTorch's (legacy) profiler over the last round's steps, written to
//     FILE as a Chrome trace (every op with its start and duration, forward and backward;
//     scripts/op_profile.py sums each op's own time).
//   --dtypes: f32 and bf16 are the model's weight dtype; amp is bf16 autocast over fp32
//     weights (what the trainers run with model.compute: bf16), its MFU taken against the
//     bf16 peak. A dtype with the suffix "-ref" (f32-ref, bf16-ref) runs the MoE layers'
//     per-expert reference path (ExecutionContext::kernels.grouped_experts off), so that
//     "f32,f32-ref" measures the grouped training path against it, alternating.
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#if __has_include(<torch/csrc/autograd/profiler_legacy.h>)
#include <torch/csrc/autograd/profiler_legacy.h>
#define R1KIT_HAS_RECORD_PROFILE 1
#endif
#include "core/torch_compat.h"
#include "policy/model.h"
#include "policy/model_config.h"
#include "train/optim.h"

using namespace r1kit::policy;
using namespace r1kit::bench;

int main(int argc, char** argv) {
  bench_init();
  std::string presets = "tiny,small", dtypes = "f32,bf16", trace;
  int64_t B = 8, T = 256, steps = 5, threads = 0, peak = 1;
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
    else if (!std::strcmp(argv[i], "--peak"))
      peak = std::stoll(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--trace"))
      trace = argv[i + 1];
  }
  if (threads > 0) at::set_num_threads(static_cast<int>(threads));
  std::printf("threads %d, batch %lld x seq %lld, %lld rounds after 1 warm-up step\n",
              at::get_num_threads(), static_cast<long long>(B), static_cast<long long>(T),
              static_cast<long long>(steps));
  const auto dtype_of = [](const std::string& d) {
    return d.rfind("bf16", 0) == 0 ? torch::kBFloat16 : torch::kFloat;
  };
  const auto is_amp = [](const std::string& d) { return d.rfind("amp", 0) == 0; };
  // The dtype whose matmul peak an MFU is taken against.
  const auto peak_dtype_of = [&](const std::string& d) {
    return is_amp(d) ? torch::kBFloat16 : dtype_of(d);
  };
  const auto is_ref = [](const std::string& d) {
    return d.size() > 4 && d.compare(d.size() - 4, 4, "-ref") == 0;
  };
  const auto base_of = [&](const std::string& d) {
    return is_ref(d) ? d.substr(0, d.size() - 4) : d;
  };
  // The peak a dtype's MFU is taken against: amp's is bf16's.
  const auto peak_key = [&](const std::string& d) {
    return is_amp(d) ? std::string("bf16") : base_of(d);
  };
  const std::vector<std::string> dts = split(dtypes);
  const auto f32 = std::find(dts.begin(), dts.end(), "f32");
  const auto bf16 = std::find(dts.begin(), dts.end(), "bf16");
  std::map<std::string, double> best_peak;
  struct Row {
    std::string preset, dtype;
    std::vector<double> step_s, mfu_near;
  };
  std::vector<Row> rows;
  std::map<std::string, std::vector<double>> bf16_speedup;  // preset -> per-round f32/bf16
  // "preset dtype" -> per-round step of the per-expert path / step of the grouped path
  std::map<std::string, std::vector<double>> grouped_speedup;
  for (const auto& p : split(presets)) {
    auto args_or = preset(p);
    if (!args_or.ok()) {
      std::fprintf(stderr, "%s\n", args_or.status().to_string().c_str());
      return 1;
    }
    const ModelArgs a = *args_or;
    const double flops = step_flops(a, B, T);
    auto ids = torch::randint(a.vocab_size, {B, T + 1}, torch::kLong);
    struct Model {
      Transformer m{nullptr};
      std::unique_ptr<torch::optim::SGD> opt;
      ForwardOptions fo;
      bool amp = false;
    };
    std::vector<Model> models;
    for (const auto& d : dts) {
      Model mo;
      mo.m = Transformer(a);
      mo.m->init_weights(1);
      cast_model(*mo.m, dtype_of(d));
      mo.m->train();
      mo.fo.execution.kernels.grouped_experts = !is_ref(d);
      mo.amp = is_amp(d);
      mo.opt =
          std::make_unique<torch::optim::SGD>(mo.m->parameters(), torch::optim::SGDOptions(1e-4));
      models.push_back(std::move(mo));
    }
    auto run_step = [&](Model& mo) {
      r1kit::compat::CpuAutocastGuard autocast(mo.amp);
      auto out = mo.m->forward(ids.narrow(1, 0, T), mo.fo);
      auto loss = torch::nn::functional::cross_entropy(out.logits.reshape({-1, a.vocab_size}),
                                                       ids.narrow(1, 1, T).reshape({-1})) +
                  out.aux_loss;
      r1kit::train::zero_grad(mo.m->parameters());  // dropped, as the trainers do
      loss.backward();
      mo.opt->step();
    };
    for (auto& mo : models) run_step(mo);  // warm-up
    const size_t first_row = rows.size();
    for (const auto& d : dts) rows.push_back({p, d, {}, {}});
    for (int64_t r = 0; r < steps; ++r) {
      std::vector<double> step_s(dts.size());
      for (size_t i = 0; i < dts.size(); ++i) {
        const double pk = peak ? matmul_peak_gflops(peak_dtype_of(dts[i])) : 1.0;
        best_peak[peak_key(dts[i])] = std::max(best_peak[peak_key(dts[i])], pk);
        auto t = Clock::now();
        if (!trace.empty() && r + 1 == steps) {
#ifdef R1KIT_HAS_RECORD_PROFILE
          torch::autograd::profiler::RecordProfile rec(trace + "." + p + "." + dts[i] + ".json");
          run_step(models[i]);
#else
          std::fprintf(stderr, "train_step_bench: --trace needs LibTorch's legacy profiler\n");
          return 1;
#endif
        } else {
          run_step(models[i]);
        }
        step_s[i] = seconds_since(t);
        rows[first_row + i].step_s.push_back(step_s[i]);
        rows[first_row + i].mfu_near.push_back(flops / step_s[i] / 1e9 / pk);
      }
      std::printf("  %s round %lld:", p.c_str(), static_cast<long long>(r + 1));
      for (size_t i = 0; i < dts.size(); ++i) std::printf("  %s %.3f s", dts[i].c_str(), step_s[i]);
      std::printf("\n");
      std::fflush(stdout);
      if (f32 != dts.end() && bf16 != dts.end())
        bf16_speedup[p].push_back(step_s[f32 - dts.begin()] / step_s[bf16 - dts.begin()]);
      for (size_t i = 0; i < dts.size(); ++i) {
        const auto g = std::find(dts.begin(), dts.end(), base_of(dts[i]));
        if (is_ref(dts[i]) && g != dts.end())
          grouped_speedup[p + " " + *g].push_back(step_s[i] / step_s[g - dts.begin()]);
      }
    }
  }
  std::printf("\nhighest matmul peak of the run:");
  for (const auto& [d, pk] : best_peak) std::printf("  %s %.1f GFLOP/s", d.c_str(), pk);
  std::printf(
      "\n\n| preset | dtype | params total / active | median step s | tokens/s | GFLOP/s "
      "| MFU (highest peak) | MFU (median, peak beside each step) |\n");
  std::printf("|---|---|---|---|---|---|---|---|\n");
  for (const auto& row : rows) {
    const ModelArgs a = *preset(row.preset);
    const ParamCount pc = count_params(a);
    const double sec = median(row.step_s);
    const double gflops = step_flops(a, B, T) / sec / 1e9;
    std::printf("| %s | %s | %.1fM / %.1fM | %.3f | %.0f | %.1f | %.1f%% | %.1f%% |\n",
                row.preset.c_str(), row.dtype.c_str(), pc.total / 1e6, pc.active / 1e6, sec,
                B * T / sec, gflops, 100.0 * gflops / best_peak[peak_key(row.dtype)],
                100.0 * median(row.mfu_near));
  }
  for (const auto& [p, v] : bf16_speedup) {
    std::printf("bf16 speed-up over f32, %s: median %.2fx (rounds:", p.c_str(), median(v));
    for (double x : v) std::printf(" %.2fx", x);
    std::printf(")\n");
  }
  for (const auto& [k, v] : grouped_speedup) {
    std::printf("grouped MoE path over the per-expert one, %s: median %.2fx (rounds:", k.c_str(),
                median(v));
    for (double x : v) std::printf(" %.2fx", x);
    std::printf(")\n");
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
