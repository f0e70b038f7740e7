// masked_attention against the whole masked softmax written out here (every key, every
// head of a group expanded): outputs and gradients of q, k and v, for one query per
// position (MLA) and for three (GQA's heads per key), under masks that let block-wise
// attention stop early (causal, keys held back, a padded batch) and ones that do not; and
// key_extents on hand-made masks.
#include "policy/attention.h"

#include <gtest/gtest.h>

#include <vector>

namespace r1kit::policy {
namespace {

// softmax(q k^T masked) v with q [B, H, T * g, d] (row t * g + j), k as kT [B, H, d, S].
torch::Tensor reference(const torch::Tensor& q, const torch::Tensor& kT, const torch::Tensor& v,
                        const torch::Tensor& mask, int64_t g) {
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2) / g, S = kT.size(-1);
  auto scores = torch::matmul(q, kT).view({B, H, T, g, S});
  auto m = mask.unsqueeze(-2).expand({B, H, T, g, S});
  auto p = torch::softmax(scores.masked_fill(m.logical_not(), -INFINITY), -1);
  return torch::matmul(p.view({B, H, T * g, S}), v);
}

TEST(AttentionTest, KeyExtentsFollowTheMask) {
  const int64_t T = 2 * kAttnRowBlock + 10;
  auto causal = torch::ones({T, T}, torch::kBool).tril().view({1, 1, T, T});
  EXPECT_EQ(key_extents(causal, T, T), (std::vector<int64_t>{kAttnRowBlock, 2 * kAttnRowBlock, T}));
  // A prefix of 5 cached keys: every block sees 5 more.
  auto prefixed = torch::ones({T, T + 5}, torch::kBool).tril(5).view({1, 1, T, T + 5});
  EXPECT_EQ(key_extents(prefixed, T, T + 5),
            (std::vector<int64_t>{kAttnRowBlock + 5, 2 * kAttnRowBlock + 5, T + 5}));
  // Any row of the batch counts.
  auto two = torch::zeros({2, 1, T, T}, torch::kBool);
  two.select(0, 1).select(1, 3).narrow(-1, 0, 50).fill_(true);
  EXPECT_EQ(key_extents(two, T, T), (std::vector<int64_t>{50, 1, 1}));
  // Nothing to gain: no mask, all keys visible, a key-only mask, too few positions.
  EXPECT_TRUE(key_extents({}, T, T).empty());
  EXPECT_TRUE(key_extents(torch::ones({1, 1, T, T}, torch::kBool), T, T).empty());
  EXPECT_TRUE(key_extents(torch::ones({1, 1, 1, T}, torch::kBool), T, T).empty());
  const int64_t short_T = 2 * kAttnRowBlock - 1;
  EXPECT_TRUE(
      key_extents(causal.narrow(-2, 0, short_T).narrow(-1, 0, short_T), short_T, short_T).empty());
}

TEST(AttentionTest, BlockWiseEqualsTheWholeSoftmaxWithGradients) {
  torch::manual_seed(3);
  const int64_t B = 2, H = 2, T = 2 * kAttnRowBlock + 44, d = 8, dv = 6;
  auto causal = torch::ones({T, T}, torch::kBool).tril().view({1, 1, T, T});
  auto held_back = causal.clone();
  held_back.narrow(-2, 2 * kAttnRowBlock, 44).narrow(-1, 200, T - 200).fill_(false);
  auto padded = causal.expand({B, 1, T, T}).clone();
  padded.narrow(-1, 150, T - 150).fill_(false);
  padded.narrow(-2, 150, T - 150).narrow(-1, 0, 1).fill_(true);  // pad rows see key 0
  auto full = torch::ones({B, 1, T, T}, torch::kBool);           // no block stops early
  for (int64_t g : {1, 3}) {
    for (const auto& mask : {causal, held_back, padded, full}) {
      auto q = torch::randn({B, H, T * g, d}), kT = torch::randn({B, H, d, T});
      auto v = torch::randn({B, H, T, dv}), go = torch::randn({B, H, T * g, dv});
      std::vector<torch::Tensor> outs, grads;
      for (bool blocks : {true, false}) {
        auto ql = q.clone().requires_grad_(), kl = kT.clone().requires_grad_();
        auto vl = v.clone().requires_grad_();
        auto o = blocks ? masked_attention(ql, kl, vl, mask, g) : reference(ql, kl, vl, mask, g);
        o.backward(go);
        outs.push_back(o.detach());
        grads.insert(grads.end(), {ql.grad(), kl.grad(), vl.grad()});
      }
      EXPECT_LT((outs[0] - outs[1]).abs().max().item<double>(), 1e-5) << "g=" << g;
      for (int i = 0; i < 3; ++i)
        EXPECT_LT((grads[i] - grads[3 + i]).abs().max().item<double>(), 1e-4)
            << "g=" << g << " gradient " << i;
    }
  }
}

// In fp32 on the CPU the attention's two products take one GEMM per (batch, head) matrix,
// the matrices shared among the threads (each GEMM on one thread): outputs and gradients
// are the same bits at one and two threads, and through strided operands (keys as a
// permuted view, values as a transposed one, as MLA and GQA pass them).
TEST(AttentionTest, Fp32ProductsAreTheSameBitsAtOneAndTwoThreads) {
  torch::manual_seed(5);
  const int previous = at::get_num_threads();
  const int64_t B = 2, H = 3, T = 2 * kAttnRowBlock + 20, d = 16, dv = 12;
  auto causal = torch::ones({T, T}, torch::kBool).tril().view({1, 1, T, T});
  auto q0 = torch::randn({B, H, T, d}), k0 = torch::randn({B, T, H, d});
  auto v0 = torch::randn({B, T, H, dv}), go = torch::randn({B, H, T, dv});
  std::vector<std::vector<torch::Tensor>> runs;
  for (int threads : {1, 2}) {
    at::set_num_threads(threads);
    auto q = q0.clone().requires_grad_(), k = k0.clone().requires_grad_();
    auto v = v0.clone().requires_grad_();
    auto o = masked_attention(q, k.permute({0, 2, 3, 1}), v.transpose(1, 2), causal);
    o.backward(go);
    runs.push_back({o.detach(), q.grad(), k.grad(), v.grad()});
    // And the whole softmax written out agrees, as above.
    auto ref = reference(q0, k0.permute({0, 2, 3, 1}), v0.transpose(1, 2), causal, 1);
    EXPECT_LT((o.detach() - ref).abs().max().item<double>(), 1e-5);
  }
  at::set_num_threads(previous);
  for (size_t i = 0; i < runs[0].size(); ++i)
    EXPECT_TRUE(torch::equal(runs[0][i], runs[1][i])) << "tensor " << i;
}

}  // namespace
}  // namespace r1kit::policy
