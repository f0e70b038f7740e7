// See decode_threads.h.
#include "policy/decode_threads.h"

#include <ATen/Parallel.h>

#include <algorithm>

#include "core/blas_threads.h"
#include "core/parallel.h"
#include "core/torch_compat.h"
#include "policy/bf16_weights.h"
#include "policy/expert_kernels.h"
#include "policy/kernel_util.h"

namespace r1kit::policy {
using kernel::fp32_cpu;

namespace {

// Splits the N output columns into at most `threads` parts of whole `block`-column blocks
// and calls fn(n0, n1) for each non-empty part [n0, n1) on exec's pool (one part: on this
// thread).
template <typename Fn>
void over_column_parts(int64_t N, int64_t block, int threads, const ExecutionContext& exec,
                       const Fn& fn) {
  const int64_t blocks = (N + block - 1) / block;
  const int parts = static_cast<int>(std::clamp<int64_t>(threads, 1, blocks));
  exec.parallel_pool().run(parts, [&](int p) {
    const int64_t n0 = std::min(N, blocks * p / parts * block);
    const int64_t n1 = std::min(N, blocks * (p + 1) / parts * block);
    if (n1 > n0) fn(n0, n1);
  });
}

}  // namespace

torch::Tensor decode_linear(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b,
                            const ExecutionContext& exec) {
  const int threads = exec.decode_threads;
  const int64_t N = w.size(0), K = w.size(1);
  const int64_t M = x.numel() / std::max<int64_t>(K, 1);
  auto shape = x.sizes().vec();
  shape.back() = N;
  // What every path but plain torch::linear needs: no autograd or autocast, an fp32 CPU
  // input of width K.
  const bool plain_x = !torch::GradMode::is_enabled() && !compat::cpu_autocast_enabled() &&
                       fp32_cpu(x) && x.size(-1) == K;
  // bf16 compute (policy/bf16_weights.h): the bf16 kernels up to kColumnRowsMax rows, else
  // torch::linear on the copies.
  const torch::Tensor* w16 = exec.bf16 ? exec.bf16->find(w) : nullptr;
  if (w16 && plain_x) {
    const torch::Tensor* b16 = exec.bf16->find(b);
    const torch::Tensor b16v = b16 ? *b16 : b.defined() ? b.to(torch::kBFloat16) : torch::Tensor();
    if (M > kColumnRowsMax || !bf16_kernels_apply(exec.kernels, K) || at::in_parallel_region())
      return torch::linear(x.to(torch::kBFloat16), *w16, b16v).to(torch::kFloat);
    const auto x2 = x.reshape({M, K}).contiguous();
    const torch::Tensor bf = b16v.defined() ? b16v.to(torch::kFloat) : torch::Tensor();
    auto y = torch::empty({M, N}, x.options());
    over_column_parts(N, 6, threads, exec, [&](int64_t n0, int64_t n1) {
      linear_bf16_raw(x2.data_ptr<float>(), M, K, w16->data_ptr<at::BFloat16>() + n0 * K, n1 - n0,
                      bf.defined() ? bf.data_ptr<float>() + n0 : nullptr, y.data_ptr<float>() + n0,
                      N, exec.kernels);
    });
    return y.view(shape);
  }
  // The fp32 paths also need fp32 weights, and not to be inside a parallel region already.
  const bool plain =
      plain_x && fp32_cpu(w) && (!b.defined() || fp32_cpu(b)) && !at::in_parallel_region();
  const bool kernels = plain && exec.kernels.small_rows && !exec.kernels.grouped_without_grad &&
                       w.is_contiguous() && (!b.defined() || b.is_contiguous());
  const bool columns = kernels && takes_columns(exec.kernels, M);
  const bool rows = kernels && M < kColumnRowsMin && small_rows_kernels_available();
  const bool blas_split = plain && threads > 1 && !exec.same_bits_any_threads && N >= 64 &&
                          BlasThreadsGuard::one_thread_here();
  if (!columns && !rows && !blas_split) return torch::linear(x, w, b);
  const auto x2 = x.reshape({M, K}).contiguous();
  auto y = torch::empty({M, N}, x.options());
  if (columns || rows) {
    const float* bp = b.defined() ? b.data_ptr<float>() : nullptr;
    // Parts of whole blocks of the kernels' 6 weight rows: each output is computed as it
    // would be in one part.
    over_column_parts(N, 6, threads, exec, [&](int64_t n0, int64_t n1) {
      const float* wp = w.data_ptr<float>() + n0 * K;
      if (columns)
        linear_columns_raw(x2.data_ptr<float>(), M, K, wp, n1 - n0, bp ? bp + n0 : nullptr,
                           y.data_ptr<float>() + n0, N);
      else
        linear_rows_raw(x2.data_ptr<float>(), M, K, wp, n1 - n0, bp ? bp + n0 : nullptr,
                        y.data_ptr<float>() + n0, N, exec.kernels);
    });
  } else {
    over_column_parts(N, 16, threads, exec, [&](int64_t n0, int64_t n1) {
      torch::NoGradGuard no_grad;  // grad mode is per thread, and w may require grad
      // A column slice of y: the BLAS call writes it in place through its leading dimension.
      auto yp = y.narrow(1, n0, n1 - n0);
      const auto wp = w.narrow(0, n0, n1 - n0).t();
      if (b.defined())
        torch::addmm_out(yp, b.narrow(0, n0, n1 - n0), x2, wp);
      else
        torch::mm_out(yp, x2, wp);
    });
  }
  return y.view(shape);
}

}  // namespace r1kit::policy
