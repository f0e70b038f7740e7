// See decode_threads.h.
#include "policy/decode_threads.h"

#include <ATen/Parallel.h>

#include <algorithm>

#include "core/blas_threads.h"
#include "core/torch_compat.h"
#include "core/parallel.h"
#include "policy/kernel_util.h"

namespace r1kit::policy {
using kernel::fp32_cpu;

torch::Tensor decode_linear(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b,
                            const ExecutionContext& exec) {
  const int threads = exec.decode_threads;
  const int64_t N = w.size(0), K = w.size(1);
  if (threads <= 1 || N < 64 || torch::GradMode::is_enabled() || compat::cpu_autocast_enabled() ||
      !fp32_cpu(x) || !fp32_cpu(w) ||
      (b.defined() && !fp32_cpu(b)) || x.size(-1) != K || at::in_parallel_region() ||
      BlasThreadsGuard::current() > 1)
    return torch::linear(x, w, b);
  const auto x2 = x.reshape({-1, K});
  auto y = torch::empty({x2.size(0), N}, x.options());
  const int64_t blocks = (N + 15) / 16;
  const int parts = static_cast<int>(std::min<int64_t>(threads, blocks));
  exec.parallel_pool().run(parts, [&](int p) {
    torch::NoGradGuard no_grad;  // grad mode is per thread, and w may require grad
    const int64_t n0 = std::min(N, blocks * p / parts * 16);
    const int64_t n1 = std::min(N, blocks * (p + 1) / parts * 16);
    if (n1 <= n0) return;
    // A column slice of y: the BLAS call writes it in place through its leading dimension.
    auto yp = y.narrow(1, n0, n1 - n0);
    const auto wp = w.narrow(0, n0, n1 - n0).t();
    if (b.defined())
      torch::addmm_out(yp, b.narrow(0, n0, n1 - n0), x2, wp);
    else
      torch::mm_out(yp, x2, wp);
  });
  auto shape = x.sizes().vec();
  shape.back() = N;
  return y.view(shape);
}

}  // namespace r1kit::policy
