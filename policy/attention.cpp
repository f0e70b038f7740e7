// See attention.h.
#include "policy/attention.h"

#include <algorithm>
#include <cmath>

namespace r1kit::policy {

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
    auto scores = torch::matmul(qb, e == S ? kT : kT.narrow(-1, 0, e));
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
    return torch::matmul(p, e == S ? v : v.narrow(-2, 0, e));
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
