// See attention.h.
#include "policy/attention.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>

#include "core/torch_compat.h"

namespace r1kit::policy {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// out[i, j] = a[i, j] b[i, j] for a [B, H, n, k] and b [B, H, k, m] (any strides), one
// GEMM per matrix, the B H matrices shared among the intra-op threads so that each GEMM
// runs on one thread. The pool's threads do not inherit the caller's grad mode.
torch::Tensor mm_per_matrix(const torch::Tensor& a, const torch::Tensor& b) {
  const int64_t B = a.size(0), H = a.size(1);
  auto out = torch::empty({B, H, a.size(2), b.size(3)}, a.options());
  at::parallel_for(0, B * H, 1, [&](int64_t i0, int64_t i1) {
    torch::NoGradGuard no_grad;
    for (int64_t i = i0; i < i1; ++i) {
      auto o = out.select(0, i / H).select(0, i % H);
      torch::mm_out(o, a.select(0, i / H).select(0, i % H), b.select(0, i / H).select(0, i % H));
    }
  });
  return out;
}

class PerMatrixMmFn : public torch::autograd::Function<PerMatrixMmFn> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& a,
                               const torch::Tensor& b) {
    ctx->save_for_backward({a, b});
    return mm_per_matrix(a, b);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &a = saved[0], &b = saved[1];
    torch::Tensor da, db;
    if (ctx->needs_input_grad(0)) da = mm_per_matrix(grads[0], b.transpose(-1, -2));
    if (ctx->needs_input_grad(1)) db = mm_per_matrix(a.transpose(-1, -2), grads[0]);
    return {da, db};
  }
};

// a @ b for the attention's [B, H, ., .] operands. LibTorch's fp32 bmm on the CPU splits
// poorly over threads: at the attention's shapes it runs at about a quarter of the fp32
// GEMM peak on two threads, where one GEMM per matrix, the matrices shared among the
// threads, runs at three times that (bench/RESULTS.md, "fp32 attention by matrices").
// So fp32 on the CPU without autocast takes mm_per_matrix, with autograd through the same;
// everything else (bf16, whose bmm is oneDNN's batched GEMM, autocast, other devices,
// broadcast batch dims) torch::matmul.
torch::Tensor attention_matmul(const torch::Tensor& a, const torch::Tensor& b) {
  const bool per_matrix = a.is_cpu() && b.is_cpu() && a.scalar_type() == torch::kFloat &&
                          b.scalar_type() == torch::kFloat && a.dim() == 4 && b.dim() == 4 &&
                          a.size(0) == b.size(0) && a.size(1) == b.size(1) &&
                          a.size(3) == b.size(2) && !compat::cpu_autocast_enabled();
  if (!per_matrix) return torch::matmul(a, b);
  return PerMatrixMmFn::apply(a, b);
}

}  // namespace

torch::Tensor masked_softmax_f32(const torch::Tensor& scores, const torch::Tensor& mask,
                                 const torch::Tensor& like) {
  torch::Tensor p;
  if (mask.defined()) {
    auto bias = torch::zeros(mask.sizes(), scores.options().dtype(torch::kFloat))
                    .masked_fill_(mask.logical_not(), -INFINITY);
    p = torch::softmax(scores + bias, /*dim=*/-1);
  } else {
    p = torch::softmax(scores, /*dim=*/-1, torch::kFloat);
  }
  return p.to(like.scalar_type());
}

std::vector<int64_t> key_extents(const torch::Tensor& mask, int64_t T, int64_t S) {
  if (!mask.defined() || T < 2 * kAttnRowBlock || mask.dim() < 2 || mask.size(-2) != T ||
      mask.size(-1) != S)
    return {};
  auto m = mask.reshape({-1, T, S}).any(0);  // [T, S]: some row of the batch may attend
  std::vector<int64_t> ext;
  bool shorter = false;
  for (int64_t t0 = 0; t0 < T; t0 += kAttnRowBlock) {
    // The keys some position of the block may see, [S]; the extent ends at the last one.
    const auto seen =
        m.narrow(0, t0, std::min(kAttnRowBlock, T - t0)).any(0).to(torch::kCPU).contiguous();
    const bool* sp = seen.data_ptr<bool>();
    int64_t e = S;
    while (e > 1 && !sp[e - 1]) --e;
    ext.push_back(e);
    shorter = shorter || e < S;
  }
  if (!shorter) ext.clear();
  return ext;
}

torch::Tensor masked_attention(const torch::Tensor& q, const torch::Tensor& kT,
                               const torch::Tensor& v, const torch::Tensor& mask, int64_t g) {
  const int64_t T = q.size(-2) / g, S = kT.size(-1);
  // The scores [..., T * g, S] seen as [..., T, g, S] and the mask as [..., T, 1, S]. Keys
  // are narrowed only when a block stops early: a narrow's backward zero-fills a gradient
  // of the whole input, which the unblocked path need not pay.
  auto attend = [&](const torch::Tensor& qb, const torch::Tensor& mb, int64_t e) {
    auto scores = attention_matmul(qb, e == S ? kT : kT.narrow(-1, 0, e));
    torch::Tensor p;
    if (g == 1) {
      p = masked_softmax_f32(scores, mb, v);
    } else {
      auto shape = scores.sizes().vec();  // [..., rows * g, e] -> [..., rows, g, e]
      shape[shape.size() - 2] /= g;
      shape.insert(shape.end() - 1, g);
      p = masked_softmax_f32(scores.view(shape), mb.defined() ? mb.unsqueeze(-2) : mb, v)
              .view(scores.sizes());
    }
    return attention_matmul(p, e == S ? v : v.narrow(-2, 0, e));
  };
  const auto ext = key_extents(mask, T, S);
  if (ext.empty()) return attend(q, mask, S);
  std::vector<torch::Tensor> outs;
  for (size_t i = 0; i < ext.size(); ++i) {
    const int64_t t0 = static_cast<int64_t>(i) * kAttnRowBlock;
    const int64_t rows = std::min(kAttnRowBlock, T - t0), e = ext[i];
    outs.push_back(
        attend(q.narrow(-2, t0 * g, rows * g), mask.narrow(-2, t0, rows).narrow(-1, 0, e), e));
  }
  return torch::cat(outs, -2);
}

}  // namespace r1kit::policy
