// The fused element-wise nodes of the training path against the chains of LibTorch ops
// they replace, forward and backward, on the shapes of a GRPO update of the `tiny`
// preset (rows = tokens of a micro-batch): RMSNorm (policy/rms_norm.h; the layers' norms
// over d = 256 and MLA's kv norm over 64) and the query's RoPE with the softmax scale
// (policy/rope.h; [rows, 4 heads, 48] with the last 16 rotated) and the key's (16, all
// rotated); and one AdamW step over the `tiny` preset's parameters (train/fused_adamw.h
// against LibTorch's AdamW). Each round times the fused form and the chain back to
// back, so that a machine whose speed drifts affects both alike; reported: the medians.
//
// Usage: fused_ops_bench [--rows 6880] [--rounds 7] [--reps 10] [--threads 1]
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "policy/model.h"
#include "policy/model_args.h"
#include "policy/rms_norm.h"
#include "policy/rope.h"
#include "train/optim.h"

using namespace r1kit;
using namespace r1kit::policy;
using namespace r1kit::bench;

namespace {

// Seconds per forward + backward of `fn` on a fresh leaf of x, mean over reps.
double time_fwd_bwd(const std::function<torch::Tensor(const torch::Tensor&)>& fn,
                    const torch::Tensor& x, const torch::Tensor& g, int reps) {
  const auto t0 = std::chrono::steady_clock::now();
  for (int r = 0; r < reps; ++r) {
    auto xl = x.detach().requires_grad_();
    auto y = fn(xl);
    y.backward(g.to(y.scalar_type()));
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / reps;
}

}  // namespace

int main(int argc, char** argv) {
  bench_init();
  int64_t rows = 6880;
  int rounds = 7, reps = 10, threads = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--rows")
      rows = std::stoll(v);
    else if (k == "--rounds")
      rounds = std::stoi(v);
    else if (k == "--reps")
      reps = std::stoi(v);
    else if (k == "--threads")
      threads = std::stoi(v);
  }
  at::set_num_threads(threads);
  std::printf("%lld rows, %d threads, medians of %d rounds of %d forward+backward each\n",
              static_cast<long long>(rows), at::get_num_threads(), rounds, reps);
  std::printf("| op | dtype | fused ms | chain ms | chain / fused |\n|---|---|---|---|---|\n");
  torch::manual_seed(1);
  auto w256 = (torch::randn({256}) * 0.1 + 1).requires_grad_();
  auto w64 = (torch::randn({64}) * 0.1 + 1).requires_grad_();
  auto ang = torch::randn({1, rows, 8});
  auto cos = torch::cos(ang), sin = torch::sin(ang);
  struct Case {
    std::string name;
    torch::Tensor x;
    std::function<torch::Tensor(const torch::Tensor&)> fused, chain;
  };
  for (auto dtype : {torch::kBFloat16, torch::kFloat}) {
    const char* dname = dtype == torch::kFloat ? "f32" : "bf16";
    std::vector<Case> cases = {
        // The residual stream is fp32 under autocast: the layers' norms take fp32 rows.
        {"RMSNorm [rows, 256], fp32 in", torch::randn({rows, 256}),
         [&](const torch::Tensor& x) { return rms_norm(x, w256, 1e-6); },
         [&](const torch::Tensor& x) { return rms_norm_reference(x, w256, 1e-6); }},
        {"RMSNorm [rows, 64] (kv)", torch::randn({rows, 64}).to(dtype),
         [&](const torch::Tensor& x) { return rms_norm(x, w64, 1e-6); },
         [&](const torch::Tensor& x) { return rms_norm_reference(x, w64, 1e-6); }},
        {"RoPE q [1, rows, 4, 48]", torch::randn({1, rows, 4, 48}).to(dtype),
         [&](const torch::Tensor& x) { return rope_tail(x, cos, sin, true, 0.14); },
         [&](const torch::Tensor& x) { return rope_tail_reference(x, cos, sin, true, 0.14); }},
        {"RoPE k [1, rows, 1, 16]", torch::randn({1, rows, 1, 16}).to(dtype),
         [&](const torch::Tensor& x) { return rope_tail(x, cos, sin, true, 1.0); },
         [&](const torch::Tensor& x) { return rope_tail_reference(x, cos, sin, true, 1.0); }},
    };
    for (auto& c : cases) {
      if (dtype == torch::kFloat && c.name.find("fp32 in") != std::string::npos) continue;
      auto g = torch::randn(c.x.sizes());
      time_fwd_bwd(c.fused, c.x, g, 1);  // warm-up
      time_fwd_bwd(c.chain, c.x, g, 1);
      std::vector<double> f, ch;
      for (int r = 0; r < rounds; ++r) {
        f.push_back(time_fwd_bwd(c.fused, c.x, g, reps));
        ch.push_back(time_fwd_bwd(c.chain, c.x, g, reps));
      }
      std::printf("| %s | %s | %.2f | %.2f | %.1fx |\n", c.name.c_str(),
                  c.name.find("fp32 in") != std::string::npos ? "f32" : dname, median(f) * 1e3,
                  median(ch) * 1e3, median(ch) / median(f));
    }
  }

  // One AdamW step over the `tiny` preset's parameters (make_adamw's two groups, random
  // gradients): FusedAdamW against LibTorch's AdamW, each on its own copy.
  {
    Transformer m(*preset("tiny", 512));
    m->init_weights(1);
    auto make = [&](bool fused) {
      torch::OrderedDict<std::string, torch::Tensor> ps;
      for (const auto& p : m->named_parameters())
        ps.insert(p.key(), p.value().detach().clone().requires_grad_());
      for (auto& p : ps) p.value().mutable_grad() = torch::randn(p.value().sizes()) * 1e-2;
      train::OptimConfig cfg;
      std::unique_ptr<torch::optim::AdamW> opt = train::make_adamw(ps, cfg);
      if (!fused) {  // the same groups, LibTorch's step
        std::vector<torch::optim::OptimizerParamGroup> groups;
        for (auto& g : opt->param_groups())
          groups.emplace_back(g.params(), g.options().clone());
        opt = std::make_unique<torch::optim::AdamW>(groups, train::adamw_options(cfg));
      }
      return std::make_pair(ps, std::move(opt));
    };
    auto [pf, of] = make(true);
    auto [pl, ol] = make(false);
    auto time_step = [&](torch::optim::Optimizer& o) {
      const auto t0 = std::chrono::steady_clock::now();
      for (int r = 0; r < reps; ++r) o.step();
      return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / reps;
    };
    time_step(*of), time_step(*ol);  // warm-up, and the moments' allocation
    std::vector<double> f, l;
    for (int r = 0; r < rounds; ++r) {
      f.push_back(time_step(*of));
      l.push_back(time_step(*ol));
    }
    int64_t n = 0;
    for (const auto& p : pf) n += p.value().numel();
    std::printf("| AdamW step, tiny's %lld parameters | f32 | %.2f | %.2f | %.1fx |\n",
                static_cast<long long>(n), median(f) * 1e3, median(l) * 1e3, median(l) / median(f));
  }
  return 0;
}
